"""Pipeline steps of the SFT stages: `sft.agentless` (Agentless samples + a teacher's generations → validated
BugFixer / TestWriter trajectories) and `sft.agent` (agent trajectories → filtered multi-turn chats).

Both yield sft Samples whose `text` is the chat rendered with Qwen2.5's template; the stage writes them as Sample
records and as the trainer-ready `messages` Parquet (datakit.sft.messages), and the tokens stage renders them with
their assistant-only loss masks.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

from datatrove.data import Document

from datakit.io.storage import arrow, as_path
from datakit.pipeline.step import CountingStep
from datakit.sft.agent import AgentLimits, agent_sample
from datakit.sft.agentless import STEPS, SftReject, ThinkTags, trajectory
from datakit.sft.generations import parse_generation
from datakit.synth.readers import RowError, iter_rows
from datakit.synth.steps import ChatRows, file_label, sample_id
from datakit.tokens.chat import normalize_message, render_chat, render_chat_text, stored_tools


def owner(key: str, world_size: int) -> int:
    """The task that handles `key`, whatever the file order or the reading task."""
    return int(hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:8], 16) % world_size


def fold_reasoning(messages: list[dict], tags: ThinkTags) -> list[dict]:
    """Messages in the chat schema, each assistant's reasoning moved into its content between `tags` (dropped
    when `tags.keep` is False), so every template renders the same text."""
    out = []
    for m in messages:
        m = normalize_message(m)
        if m["reasoning"] is not None:
            content = m["content"]
            if tags.keep:
                content = f"{tags.open}\n{m['reasoning']}\n{tags.close}\n\n{content}"
            m = {**m, "content": content, "reasoning": None}
        out.append(m)
    return out


def rendered(sample: dict) -> Document:
    sample["text"] = render_chat_text(sample["messages"], tools=stored_tools(sample.get("tools")))
    return Document(text=sample["text"], id=sample["id"], metadata=sample)


def sample_index(folders: list[str]) -> dict[str, tuple[str, str, str]]:
    """id → (kind, role, unit `repo#pr/role`) of the Agentless samples (localize, edit) in `folders`."""
    import pyarrow.parquet as pq

    index: dict[str, tuple[str, str, str]] = {}
    for folder in folders:
        for src, fs in map(arrow, sorted(as_path(folder).glob("*.parquet"))):
            table = pq.read_table(src, columns=["id", "kind", "role", "meta"], filesystem=fs)
            metas = table.column("meta").combine_chunks()
            repos, prs = metas.field("repo").to_pylist(), metas.field("pr").to_pylist()
            for sid, kind, role, repo, pr in zip(table.column("id").to_pylist(), table.column("kind").to_pylist(),
                                                 table.column("role").to_pylist(), repos, prs):
                if kind in STEPS:
                    index[sid] = (kind, role, f"{repo}#{pr}/{role}")
    return index


def load_samples(folders: list[str], ids: set[str]) -> dict[str, dict]:
    """The full Sample records of `ids` (read column-filtered, one file at a time)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    found: dict[str, dict] = {}
    if not ids:
        return found
    wanted = list(ids)
    for folder in folders:
        for src, fs in map(arrow, sorted(as_path(folder).glob("*.parquet"))):
            table = pq.read_table(src, filters=pc.field("id").isin(wanted), filesystem=fs)
            for row in table.to_pylist():
                found[row["id"]] = row
    return found


class AgentlessTrajectories(CountingStep):
    """Units: `generations` (rows read = grouped + quarantined (unreadable, malformed, `unknown_sample`) +
    filtered (`duplicate_generation`: a second answer for the same sample and index)) and `trajectories` (one per
    (PR, role, index) group: written + quarantined with the validation reason). Every task reads the generation
    files; a group belongs to the task `owner(unit)` names, so the result does not depend on the task count."""

    name = "🎓 sft agentless"
    type = "📖 - READER"

    def __init__(self, samples: list[str], generations: list[str], quarantine_dir: str, tags: ThinkTags = ThinkTags(),
                 min_recall: float = 0.0, limit: int = -1, root: str | None = None):
        super().__init__("sft", quarantine_dir)
        self.samples = samples
        self.generations = generations
        self.tags = tags
        self.min_recall = min_recall
        self.limit = limit
        self.root = root

    def _group(self, index, rank, world_size):
        """(unit, generation index) → {step: (Generation, prompts shown)} of this task's groups."""
        groups: dict[tuple[str, int], dict] = defaultdict(dict)
        for path in map(Path, self.generations):
            label = file_label(path, self.root)
            for i, row in iter_rows(path):
                where = f"{label}#{i}"
                if isinstance(row, RowError):
                    if owner(where, world_size) == rank:
                        self.read("generations")
                        self.reject("generations", {"id": where, "row": row.raw}, row.reason, row.detail, rank)
                    continue
                try:
                    gen, prompts = parse_generation(row, where, self.tags)
                except SftReject as exc:
                    if owner(where, world_size) == rank:
                        self.read("generations")
                        self.reject("generations", {"id": where, "row": row}, exc.reason, f"{where}: {exc}", rank)
                    continue
                info = index.get(gen.sample_id)
                if info is None:
                    if owner(gen.sample_id, world_size) == rank:
                        self.read("generations")
                        self.reject("generations", {"id": where, "row": row}, "unknown_sample",
                                    f"{where}: no Agentless sample has id {gen.sample_id!r} in the input", rank)
                    continue
                kind, _, unit = info
                if owner(unit, world_size) != rank:
                    continue
                self.read("generations")
                group = groups[(unit, gen.index)]
                if kind in group:
                    self.filter_out("generations", "duplicate_generation")
                    continue
                group[kind] = (gen, prompts)
                self.written("generations")
        return groups

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        try:
            index = sample_index(self.samples)
            groups = self._group(index, rank, world_size)
            siblings = defaultdict(dict)  # unit → {step: sample id}
            for sid, (kind, _, unit) in index.items():
                siblings[unit][kind] = sid
            wanted = {siblings[unit][k] for unit, _ in groups for k in siblings[unit]}
            samples = load_samples(self.samples, wanted)
            n = 0
            for key in sorted(groups):
                if 0 <= self.limit <= n:
                    return
                n += 1
                doc = self._trajectory(key, groups[key], siblings[key[0]], samples, rank)
                if doc is not None:
                    yield doc
        finally:
            self.close_outputs()

    def _trajectory(self, key, group, sibling_ids, samples, rank) -> Document | None:
        self.read("trajectories")
        unit, k = key
        steps = {s: samples.get(sibling_ids.get(s)) for s in STEPS}
        gens = {s: group[s][0] if s in group else None for s in STEPS}
        try:
            for s in group:
                prompts = group[s][1]
                if prompts and prompts != [steps[s]["text"][:steps[s]["prompt_chars"]]]:
                    raise SftReject("prompt_mismatch", f"the {s} chat's user turn is not the {s} sample's prompt")
            sample = trajectory(steps["localize"], steps["edit"], gens["localize"], gens["edit"], self.tags,
                                self.min_recall)
        except SftReject as exc:
            record = {"id": f"{unit}@{k}", "unit": unit, "index": k,
                      "generations": [gens[s].label for s in STEPS if gens[s] is not None]}
            self.reject("trajectories", record, exc.reason, f"{unit} (index {k}): {exc}", rank, role=unit.rsplit("/")[-1])
            return None
        sample["messages"] = fold_reasoning(sample["messages"], self.tags)
        self.written("trajectories")
        sft = sample["meta"]["sft"]
        self.stat_update(f"sft.{sample['role']}.{'+'.join(sft['steps'])}")
        if sft["matches_gold"] is not None:
            self.stat_update(f"sft.{sample['role']}.matches_gold", value=int(sft["matches_gold"]))
        if sft["localize_recall"] is not None:
            self.stat_update(f"sft.{sample['role']}.full_recall", value=int(sft["localize_recall"] == 1.0))
        return rendered(sample)


class AgentTrajectories(ChatRows):
    """Agent trajectories → sft Samples (unit `rows`, see `ChatRows`), filtered by the source's verdict and the
    turn and token budgets (reasons in datakit.sft.agent)."""

    name = "🤖 sft agent"

    def __init__(self, inputs: list[str], quarantine_dir: str, fmt: str = "auto", limits: AgentLimits = AgentLimits(),
                 tags: ThinkTags = ThinkTags(), tokenizer: str = "qwen2.5", max_turn_chars: int = 200_000,
                 loader: str = "datakit", limit: int = -1, root: str | None = None):
        super().__init__("sft", inputs, quarantine_dir, loader, limit, root)
        self.fmt = fmt
        self.limits = limits
        self.tags = tags
        self.tokenizer = tokenizer
        self.max_turn_chars = max_turn_chars
        self._tok = None

    def convert(self, row) -> tuple[dict, dict]:
        sample, outcome = agent_sample(row, self.fmt, self.max_turn_chars, self.limits.require_resolved)
        sample["messages"] = fold_reasoning(sample["messages"], self.tags)
        sample["id"] = sample_id(sample["messages"], sample["tools"])
        doc = rendered(sample)
        return doc.metadata, {"verdict": outcome}

    def keep(self, sample: dict, meta: dict) -> str | None:
        if meta["verdict"].reason:
            return meta["verdict"].reason
        sft = sample["meta"]["sft"]
        if sft["turns"] > self.limits.max_turns:
            return "too_many_turns"
        if self._tok is None:
            from datakit.tokens.tokenizer import load_tokenizer

            self._tok = load_tokenizer(self.tokenizer)
        sft["tokens"] = len(render_chat(sample["messages"], self._tok, tools=stored_tools(sample.get("tools")))[0])
        return "too_many_tokens" if sft["tokens"] > self.limits.max_tokens else None
