"""The `synth.ingest` step: rows of synthetic data → validated chat Samples (kind `synthetic`, role `none`).

Unit `rows`: every row read is written, quarantined with its reason (a bad line, an unknown format, a rule of
`schemas/chat.schema.json` broken) or filtered (`duplicate`: the same conversation twice in one task). Tasks take
whole files when there are at least as many files as tasks, else every task reads every file and keeps the rows
i ≡ rank (mod tasks).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from datatrove.data import Document

from datakit.pipeline.step import CountingStep
from datakit.synth.formats import FormatError, convert, tools_of
from datakit.synth.readers import RowError, input_bytes, iter_rows, load_dataset_rows
from datakit.tokens.chat import ChatError, check_messages, render_chat_text, stored_tools

TEMPLATE = "qwen2.5-chat@1"  # how `text` is rendered (datakit.tokens.chat)


def sample_id(messages: list[dict], tools: list[str] | None = None) -> str:
    """Content-derived: the same conversation (and tools offered) gets the same id wherever it comes from."""
    canon = json.dumps(messages if tools is None else [messages, tools], ensure_ascii=False, sort_keys=True,
                       separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def to_sample(row, fmt: str = "auto", max_turn_chars: int | None = None) -> tuple[dict, dict]:
    """One row → (Sample record, the format's meta: exit_status, submission); FormatError / ChatError (with a
    reason) when it cannot be one."""
    fmt, messages, meta = convert(row, fmt)
    check_messages(messages, max_turn_chars)
    tools = tools_of(row)
    missing = [k for k, v in meta.items() if v is None]
    return {
        "id": sample_id(messages, tools),
        "kind": "synthetic",
        "role": "none",
        "text": render_chat_text(messages, tools=stored_tools(tools)),
        "prompt_chars": None,
        "messages": messages,
        "tools": tools,
        "meta": {"template": TEMPLATE, "files": [], "problem_source": None},
        "source": {"kind": "synthetic", "method": fmt, "repo": None, "pr": None, "commit": None,
                   "crawled_at": None, "landing": None, "missing": missing},
    }, meta


def file_label(path: Path, root: str | None) -> str:
    """How a row's file is named in ids and quarantine records: relative to the inputs' root, else its name."""
    if root and path.is_relative_to(root):
        return str(path.relative_to(root))
    return path.name


class ChatRows(CountingStep):
    """The reader half of a chat-row stage: rows of `inputs` (files and saved datasets) sharded over the tasks,
    each turned into a Sample by `convert` (FormatError / ChatError → quarantined with the reason), filtered by
    `keep` (a reason → counted as filtered), deduplicated by id within the task (`duplicate`). Unit `rows`:
    read = written + quarantined + filtered. Tasks take whole files when there are at least as many files as
    tasks, else every task reads every file and keeps the rows i ≡ rank (mod tasks)."""

    type = "📖 - READER"

    def __init__(self, stage: str, inputs: list[str], quarantine_dir: str, loader: str = "datakit", limit: int = -1,
                 root: str | None = None):
        super().__init__(stage, quarantine_dir)
        self.inputs = inputs
        self.loader = loader
        self.limit = limit
        self.root = root

    def convert(self, row) -> tuple[dict, dict]:
        """(Sample, the format's meta) of a row."""
        raise NotImplementedError

    def keep(self, sample: dict, meta: dict) -> str | None:
        """Why a valid sample is left out (its filter reason), or None."""
        return None

    def _rows(self, rank: int, world_size: int):
        paths = [Path(p) for p in self.inputs]
        if self.loader != "datakit":  # datasets.load_dataset over all files: one table, sharded by row
            yield "+".join(p.name for p in paths), load_dataset_rows(paths, self.loader), \
                sum(map(input_bytes, paths)) if rank == 0 else 0
            return
        by_file = len(paths) >= world_size
        for k, path in enumerate(paths):
            if by_file and k % world_size != rank:
                continue
            r, w = (0, 1) if by_file else (rank, world_size)
            size = input_bytes(path) if by_file or rank == 0 else 0
            yield file_label(path, self.root), iter_rows(path, r, w), size

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        seen: set[str] = set()
        n = 0
        try:
            for label, rows, size in self._rows(rank, world_size):
                self.stat_update(f"{self.stage}.input_bytes", value=size)
                for index, row in rows:
                    if 0 <= self.limit <= n:
                        return
                    n += 1
                    self.read("rows")
                    where = {"id": f"{label}#{index}", "file": label, "index": index}
                    if isinstance(row, RowError):
                        self.reject("rows", {**where, "row": row.raw}, row.reason, f"{label}: {row.detail}", rank)
                        continue
                    try:
                        sample, meta = self.convert(row)
                    except (FormatError, ChatError) as exc:
                        self.reject("rows", {**where, "row": row}, exc.reason, f"{label}#{index}: {exc}", rank)
                        continue
                    reason = self.keep(sample, meta)
                    if reason is None and sample["id"] in seen:
                        reason = "duplicate"
                    if reason is not None:
                        self.filter_out("rows", reason)
                        continue
                    seen.add(sample["id"])
                    self.written("rows")
                    self.stat_update(f"{self.stage}.format.{sample['source']['method']}")
                    self.stat_update(f"{self.stage}.messages", value=len(sample["messages"]))
                    self.stat_update(f"{self.stage}.tool_calls", value=sum(len(m["tool_calls"] or ())
                                                                         for m in sample["messages"]))
                    yield Document(text=sample["text"], id=sample["id"], metadata=sample)
        finally:
            self.close_outputs()


class SynthIngest(ChatRows):
    name = "🧪 synth ingest"

    def __init__(self, inputs: list[str], quarantine_dir: str, fmt: str = "auto", max_turn_chars: int = 200_000,
                 loader: str = "datakit", limit: int = -1, root: str | None = None,
                 keep_exit_status: tuple[str, ...] = ()):
        super().__init__("synth", inputs, quarantine_dir, loader, limit, root)
        self.fmt = fmt
        self.max_turn_chars = max_turn_chars
        self.keep_exit_status = tuple(keep_exit_status)

    def convert(self, row) -> tuple[dict, dict]:
        return to_sample(row, self.fmt, self.max_turn_chars)

    def keep(self, sample: dict, meta: dict) -> str | None:
        status = meta.get("exit_status")
        if self.keep_exit_status and status is not None and status not in self.keep_exit_status:
            return "exit_status"  # an agent run that ended otherwise (e.g. a limit)
        return None
