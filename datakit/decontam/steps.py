"""Pipeline step of the `decontam` stage: keep a sample, or quarantine it with the rule that caught it.

Rules run cheapest first and the first that fires decides: repository name / former name, fork network (the
`source` root and the whole parent chain), commit (the sample's base or head is a Verified base commit), mirror
(the repository's git history holds a Verified base commit or a reference root commit), then the text rules: a
Verified instance id anywhere in the text, and n-gram overlap with the problem statements, gold patches and test
patches. A chat sample (`messages`) is checked on its messages' contents, concatenated. Nothing is deleted: a
quarantined sample is kept whole in `quarantine/`, and its match (rule, instance, score, span, the sample's role)
is written to `matches/`.

Fail closed: with the mirror rules on, a sample that came from a git mirror (its `source.kind` is git, github or
gharchive and it names a repository) whose mirror is missing is quarantined as `mirror_unavailable`, never kept
unchecked. With the rules off (`mirror_rules=False`) the step counts `decontam.mirror_rules_off` per such sample,
so stats.json and the audit say what was not checked.

Speed: the step reads its Parquet files itself in Arrow batches and decides a whole batch at once (one hashing
pass, `datakit.decontam.content.batch_flags`); kept rows are written back as Arrow slices of the input, never as
Python dicts, so a few-KB sample costs a few microseconds of Python. Reads only `id, kind, role, text, messages,
meta, source` (and a PullRecord-style `fork_of` / `repo_meta` where present).
"""

from __future__ import annotations

import json
from pathlib import Path

from datakit.io.storage import arrow, as_path, replace
from datakit.pipeline.memory import release_freed_memory
from datakit.pipeline.step import CountingStep

SPAN_CHARS = 2000
MIRROR_KINDS = ("git", "github", "gharchive")  # source kinds whose code came from a git mirror
BATCH_ROWS = 2048
READ_COLUMNS = ("id", "kind", "role", "text", "messages", "meta", "source", "fork_of", "repo_meta")
TEXT_TYPES = ("string", "large_string")  # what the kernel reads in place


def sample_text(sample: dict) -> str:
    """What the text rules read: the messages' contents for a chat sample, else `text`."""
    if sample.get("messages"):
        return "\n".join((m or {}).get("content") or "" for m in sample["messages"])
    return sample.get("text") or ""


def mirror_status(mirrors_dir: str | None) -> str | None:
    """None when `mirrors_dir` is a folder holding git mirrors; otherwise what is wrong with it."""
    if not mirrors_dir:
        return "no mirrors folder given"
    path = Path(mirrors_dir)
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_dir():
        return f"{path} is not a folder"
    for child in path.glob("*.git"):
        if (child / "HEAD").is_file() and (child / "objects").is_dir():
            return None
    return f"{path} holds no git mirrors (owner__name.git)"


class DecontamFilter(CountingStep):
    """Unit `samples`: read = written (kept) + quarantined (per rule). Reads `input_dir` itself — one folder, or a
    list (a recipe's `inputs:`: Agentless samples, bundles, synthetic data) — sharded by file, and writes kept
    samples to `output_dir/{rank:05d}.parquet`."""

    name = "🧽 decontam"
    type = "🔻 - FILTER"

    def __init__(self, input_dir: str, output_dir: str, quarantine_dir: str, matches_dir: str,
                 index_path: str | None, mirrors_dir: str | None, threshold: float | None, min_matched: int | None,
                 text_rules: bool = True, mirror_rules: bool = True, roots_file: str | None = None,
                 limit: int = -1):
        super().__init__("decontam", quarantine_dir)
        self.input_dir, self.output_dir, self.matches_dir = input_dir, output_dir, matches_dir
        self.index_path = index_path
        self.mirrors_dir = mirrors_dir
        self.threshold = threshold
        self.min_matched = min_matched
        self.text_rules = text_rules
        self.mirror_rules = mirror_rules
        self.roots_file = roots_file
        self.limit = limit

    # -- set-up --------------------------------------------------------------------------------------------
    def _load(self):
        from datakit.decontam.index import FingerprintIndex, default_index
        from datakit.decontam.repos import MirrorRules, reference_root_commits

        index = FingerprintIndex.load(self.index_path) if self.index_path else default_index()
        mirror_rules = MirrorRules(index.base_commits, reference_root_commits(self.roots_file))
        return index, mirror_rules

    # -- repository-level verdicts (once per repository and fork metadata) -----------------------------------
    def _repo_verdict(self, repo_name: str | None, forks: dict, from_mirror: bool, mirror_rules):
        """A RepoMatch, "mirror_unavailable", "mirror_rules_off", or None."""
        from datakit.decontam.repos import fork_rule, name_rule

        match = name_rule(repo_name) or fork_rule(forks or None)
        if match is not None or not from_mirror or not repo_name or "/" not in repo_name:
            return match
        if not self.mirror_rules:
            return "mirror_rules_off"
        from datakit.sources.git_mirror import MirrorError, mirror_path, open_mirror  # (pygit2: only for mirrors)

        path = mirror_path(self.mirrors_dir, repo_name) if self.mirrors_dir else None
        if path is None or not path.exists():
            return "mirror_unavailable"
        try:
            return mirror_rules.check(open_mirror(path))
        except MirrorError:
            return "mirror_unavailable"

    # -- the batch -----------------------------------------------------------------------------------------
    def _decide(self, batch, index, mirror_rules, verdicts: dict, kwargs: dict) -> list[dict | None]:
        """Per row of an Arrow batch: None (keep) or the match row (rule, detail, …). Reads columns, not rows."""
        import numpy as np

        from datakit.decontam.content import (CHUNK_BYTES, ArrowTexts, batch_matches, content_matches, kernel,
                                              plain_mask)

        n = batch.num_rows
        col = {name: batch.column(name) for name in batch.schema.names}
        nothing = [None] * n

        def values(arr) -> list:  # (an all-null column, as fork metadata usually is, costs no conversion)
            return nothing if arr is None or arr.null_count == n else arr.to_pylist()

        def field(struct_name: str, name: str) -> list:
            arr = col.get(struct_name)
            if arr is None or not hasattr(arr.type, "get_field_index") or arr.type.get_field_index(name) < 0:
                return nothing
            return values(arr.field(name))

        repos, bases, heads = field("meta", "repo"), field("meta", "base_sha"), field("meta", "head_sha")
        fork_cols = [field("meta", "fork_of"), field("meta", "repo_meta"), values(col.get("fork_of")),
                     values(col.get("repo_meta"))]
        kinds = field("source", "kind")
        # one verdict per (repository, fork metadata, from a mirror): a batch holds few repositories
        forks = list(zip(*fork_cols))
        if all(c is nothing for c in fork_cols):
            keys = [(repo, "", bool(repo) and kind in MIRROR_KINDS) for repo, kind in zip(repos, kinds)]
        else:
            keys = [(repo, json.dumps(f, sort_keys=True, default=str) if any(f) else "",
                     bool(repo) and kind in MIRROR_KINDS) for repo, f, kind in zip(repos, forks, kinds)]
        distinct: dict = {}  # key -> its first row (first-seen order: the verdicts are made in the order of the rows)
        for i, key in enumerate(keys):
            distinct.setdefault(key, i)
        for key, first in distinct.items():
            if key not in verdicts:
                f = forks[first]
                meta = {"fork_of": f[0], "repo_meta": f[1], "parents": list(f[2:])}
                verdicts[key] = self._repo_verdict(key[0], {k: v for k, v in meta.items() if v}, key[2], mirror_rules)
        row_verdicts = [verdicts[k] for k in keys]
        off = row_verdicts.count("mirror_rules_off")
        if off:
            self.stat_update("decontam.mirror_rules_off", value=off)
        out: list[dict | None] = [None] * n
        if (bases is nothing and heads is nothing and self.text_rules
                and all(verdicts[k] is None or verdicts[k] == "mirror_rules_off" for k in distinct)):
            text_rows = list(range(n))  # (most batches: no repository or commit verdict, only the text to check)
        else:
            text_rows = self._rows_for_text(row_verdicts, bases, heads, repos, index, out)
        if not text_rows:
            return out
        messages = col["messages"].to_pylist() if "messages" in col and col["messages"].null_count < n else None
        text_col = col.get("text")
        if not messages and text_col is not None and kernel() is not None and str(text_col.type) in TEXT_TYPES:
            # the kernel reads the plain texts from the Arrow buffer: no Python str for most rows
            plain = plain_mask(text_col)[text_rows]
            texts = ArrowTexts(text_col, text_rows, plain)
        else:
            texts_all = text_col.to_pylist() if text_col is not None else [""] * n
            texts = ([sample_text({"text": texts_all[i], "messages": messages[i]}) for i in text_rows] if messages
                     else [texts_all[i] or "" for i in text_rows])
            plain = None
            if not messages and sum(map(len, texts)) >= CHUNK_BYTES:  # (from a chunk on: its pass pays for itself)
                plain = plain_mask(text_col)[text_rows]
        flags, named, strongest = batch_matches(texts, index, plain=plain, **kwargs)
        for k in sorted(set(np.flatnonzero(flags).tolist()).union(named)):  # (the few rows a text rule caught)
            i, text = text_rows[k], texts[k]
            if k in named:  # an instance id ("django__django-11099") names the task outright
                iid = named[k]
                at = text.lower().find(iid)
                span = (at, at + len(iid), text[at:at + len(iid)]) if at >= 0 else (None, None, None)
                out[i] = _row("text_instance_id", iid, index.repos[index.instance_ids.index(iid)], 1.0,
                              f"the text names the SWE-bench instance {iid}", span=span)
                continue
            best = strongest.get(k) or max(content_matches(text, index, **kwargs),
                                           key=lambda m: (m.score, m.matched_ngrams))
            out[i] = _row(f"text_{best.field}", best.instance_id, best.repo, float(best.score),
                          f"{best.matched_ngrams} n-grams of {best.instance_id} {best.field}, score {best.score:.3f}",
                          ngrams=int(best.matched_ngrams),
                          span=(int(best.span_start), int(best.span_end),
                                text[best.span_start:best.span_end][:SPAN_CHARS]))
        return out

    def _rows_for_text(self, row_verdicts: list, bases: list, heads: list, repos: list, index, out: list) -> list:
        """The rows the text rules read; the others get their repository or commit verdict in `out`."""
        from datakit.decontam.repos import RepoMatch, commit_rule

        text_rows = []
        for i, verdict in enumerate(row_verdicts):
            if verdict is None or verdict == "mirror_rules_off":
                if not (bases[i] or heads[i]):  # (most rows: nothing but the text to check)
                    if self.text_rules:
                        text_rows.append(i)
                    continue
                verdict = None
            if verdict == "mirror_unavailable":
                out[i] = _row("mirror_unavailable", None, None, 1.0,
                              f"the mirror of {repos[i]} is not in {self.mirrors_dir}: its history cannot be "
                              "checked (fetch it, or run with --no-mirror-rules)")
                continue
            match = verdict if isinstance(verdict, RepoMatch) else commit_rule([bases[i], heads[i]], index.base_commits)
            if match is not None:
                out[i] = _row(match.rule, match.matched_instance_id, match.matched_repo, 1.0, match.detail)
            elif self.text_rules:
                text_rows.append(i)
        return text_rows

    def run(self, data, rank: int = 0, world_size: int = 1):
        import pyarrow as pa
        import pyarrow.parquet as pq

        from datakit.io.schemas import arrow_schema

        if data:  # a terminal step that reads its own input; anything before it is passed through unread
            yield from data
        _pyarrow_without_pandas()
        index, mirror_rules = self._load()
        kwargs = {k: v for k, v in (("threshold", self.threshold), ("min_matched", self.min_matched)) if v is not None}
        verdicts: dict = {}
        schema = arrow_schema("sample")
        dirs = [self.input_dir] if isinstance(self.input_dir, str) else list(self.input_dir)
        files = [p for d in dirs for p in sorted(as_path(d).glob("*.parquet"))][rank::world_size]
        kept = _BatchWriter(self.output_dir, "sample", rank)
        quarantine = _BatchWriter(self.quarantine.output_folder, "quarantine", rank)
        matches = _BatchWriter(self.matches_dir, "decontam_match", rank)
        left = self.limit
        done = False
        try:
            for path in files:
                src, fs = arrow(path)
                pf = pq.ParquetFile(src, filesystem=fs)
                have = [c for c in READ_COLUMNS if c in pf.schema_arrow.names]
                for batch in pf.iter_batches(batch_size=BATCH_ROWS, use_threads=False):  # (Arrow's pool: more CPU)
                    if left == 0:
                        break
                    if 0 < left < batch.num_rows:
                        batch = batch.slice(0, left)
                    left -= batch.num_rows if left > 0 else 0
                    verdict = self._decide(batch.select(have), index, mirror_rules, verdicts, kwargs)
                    self.stat_update("samples.read", value=batch.num_rows)
                    out = [j for j, v in enumerate(verdict) if v is not None]
                    if len(out) < batch.num_rows:
                        self.stat_update("samples.written", value=batch.num_rows - len(out))
                        whole = _conform_batch(batch, schema)
                        # the runs of kept rows as zero-copy slices, one table (pyarrow.compute is not needed)
                        cuts = [-1, *out, batch.num_rows]
                        kept.write_table(pa.Table.from_batches(
                            [whole.slice(a + 1, b - a - 1) for a, b in zip(cuts, cuts[1:]) if b > a + 1], schema))
                    if out:
                        rows = pa.Table.from_batches([batch.slice(j, 1) for j in out]).to_pylist()  # (take() would
                        self._reject_batch(rows, [verdict[j] for j in out], quarantine, matches)  # import pyarrow.compute)
                release_freed_memory(arrow_pool=True)  # (a file's batches freed: its peak is not the next one's floor)
                if left == 0:
                    break
            done = True
        finally:
            for writer in (kept, quarantine, matches):
                writer.close(publish=done)

    def _reject_batch(self, records: list[dict], rows: list[dict], quarantine: "_BatchWriter",
                    matches: "_BatchWriter") -> None:
        """The whole samples (every column) to quarantine/, with the rule's detail, and their matches to matches/,
        one table per batch."""
        q_rows = []
        for record, row in zip(records, rows):
            detail = row.pop("detail")
            q_rows.append({"id": str(record.get("id")), "stage": self.stage, "role": None, "reason": row["rule"],
                           "detail": detail,
                           "record": json.dumps(record, ensure_ascii=False, sort_keys=True, default=str)})
            row.update(sample_id=record["id"], sample_repo=(record.get("meta") or {}).get("repo"),
                       role=record.get("role"), kind=record.get("kind"))
            self.stat_update(f"samples.quarantined.{row['rule']}")
        quarantine.write_rows(q_rows)
        matches.write_rows(rows)


class _BatchWriter:
    """One task's Parquet file of one record schema (`{folder}/{rank:05d}.parquet`, opened on the first rows),
    written a table at a time with `datakit.io.records.RecordWriter`'s settings (zstd, dictionary and statistics
    on all but the large text columns, page index, page checksums) and, like it, as `….parquet.tmp` renamed when
    the task succeeds: a killed or failed task leaves no half file under a final name. The step writes Arrow
    batches, not datatrove Documents: kept rows are slices of the input, and the (few) quarantined rows and their
    matches are gathered into tables of ROWS_PER_TABLE (a row group per input batch cost ~3 % of the stage)."""

    ROWS_PER_TABLE = 1024

    def __init__(self, folder: str, record: str, rank: int):
        from datakit.io.records import PARTIAL
        from datakit.io.schemas import arrow_schema

        self.path = as_path(folder) / f"{rank:05d}.parquet"
        self.partial = as_path(folder) / f"{rank:05d}.parquet{PARTIAL}"
        self.schema = arrow_schema(record)
        self._writer = None
        self._rows: list[dict] = []

    def write_table(self, table) -> None:
        if self._writer is None:
            import pyarrow.parquet as pq

            from datakit.io.records import dictionary_columns

            self.path.parent.mkdir(parents=True, exist_ok=True)
            columns = dictionary_columns(self.schema)
            where, fs = arrow(self.partial)
            self._writer = pq.ParquetWriter(where, self.schema, filesystem=fs, compression="zstd",
                                            use_dictionary=columns, write_statistics=columns, write_page_index=True,
                                            write_page_checksum=True)
        self._writer.write_table(table)

    def write_rows(self, rows: list[dict]) -> None:
        names = self.schema.names
        self._rows.extend({k: r.get(k) for k in names} for r in rows)
        if len(self._rows) >= self.ROWS_PER_TABLE:
            self._flush_rows()

    def _flush_rows(self) -> None:
        import pyarrow as pa

        if self._rows:
            rows, self._rows = self._rows, []
            self.write_table(pa.Table.from_pylist(rows, schema=self.schema))

    def close(self, publish: bool = True) -> None:
        """The rows gathered and the footer; then, when the task succeeded, the rename to the final name."""
        if publish:
            self._flush_rows()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            if publish:
                replace(self.partial, self.path)


def _pyarrow_without_pandas() -> None:
    """pyarrow imports pandas (0.5-0.6 s) on its first Python-object conversion only to ask whether an object is a
    DataFrame; this step never hands it one. When nothing has imported pandas yet, let that first check find it
    missing (pyarrow remembers "no pandas" for those checks, and still imports it for an explicit to_pandas())."""
    import sys

    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    class _NoPandas:  # a meta-path finder that refuses `pandas` for this one call
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name == "pandas" or name.startswith("pandas."):
                raise ImportError("pandas is not needed by the decontam step")
            return None

    sys.meta_path.insert(0, _NoPandas)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(_NoPandas)


def _row(rule, instance, repo, score, detail, ngrams=0, span=(None, None, None)) -> dict:
    return {"rule": rule, "matched_instance_id": instance, "matched_repo": repo, "score": score,
            "matched_ngrams": ngrams, "span_start": span[0], "span_end": span[1], "span_text": span[2],
            "detail": detail}


def _conform_batch(batch, schema):
    """The batch with the sample schema's columns, in its order (missing ones null; values cast, not rebuilt)."""
    import pyarrow as pa

    cols = []
    for field in schema:
        if field.name in batch.schema.names:
            col = batch.column(field.name)
            cols.append(col if col.type == field.type else col.cast(field.type))
        else:
            cols.append(pa.nulls(batch.num_rows, field.type))
    return pa.RecordBatch.from_arrays(cols, schema=schema)
