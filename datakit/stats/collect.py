"""Load a run's output folder (or one stage folder) into frames, and the figures `datakit stats` reports.

What it reads, by what the files hold (the schemas in `datakit/schemas/` say which columns make which record):

    <stage>/stats.json                 stage_stats: units, quarantine and filter reasons (every stage)
    <stage>/*.parquet                  sample rows (id, kind, role, meta.repo, source.repo, text) or PullRecords
                                       (repo) or token shard rows (doc_lens, source, sample_ids, padding, repeat)
    <stage>/quarantine/*.parquet       quarantine rows (counted from the footers)
    <stage>/manifest.json              token_manifest: per-source tokens, up-sampling, left-out documents
    <stage>/valid/                     a tokens stage's validation split (its own shards and manifest)
    decontam stages                    through `datakit.decontam.audit.load_audit` (the audit's own checks)

A source is the mixture source of a sample's kind (`datakit.tokens.mixture.SOURCE_BY_KIND`: agentless,
commit_bundles, synthetic, sft); a repository is `meta.repo`, else `source.repo`. Token documents get their role and
repository from the run's sample stages by sample id (ids are content-derived, the same in every stage), so a
tokens folder read alone has them as "(unknown)". Pure apart from reading the files; every frame is sorted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from datakit.io.schemas import arrow_schema

NONE, UNKNOWN = "(none)", "(unknown)"
PERCENTILES = (0.5, 0.9, 0.99)  # with min and max; the "nearest" rank, so every figure is a real length
# where a stage type sits in the data flow (DESIGN §1): the order stages are listed in (then by name)
FLOW = ("demo.repo", "sources.", "samples.", "bundles.", "synth.", "sft.", "dedup", "redact", "decontam", "tokens",
        "export.")


class StatsError(ValueError):
    """The folder is not a datakit output, or one of its files cannot be read; the message names the fix."""


@dataclass
class Stage:
    name: str
    type: str
    path: Path
    stats: dict[str, Any]  # stats.json
    kind: str  # samples | pulls | tokens | export | other: what its Parquet files hold
    rows: int | None = None  # records in <stage>/*.parquet (None: it writes none)
    quarantine_rows: int = 0
    manifest: dict[str, Any] | None = None
    valid_manifest: dict[str, Any] | None = None  # a tokens stage's validation split (<stage>/valid/manifest.json)
    audit: Any = None  # decontam stages: datakit.decontam.audit.AuditData


@dataclass
class RunStats:
    """A run's output folder, loaded.

    records:   one row per sample / PullRecord of each samples / pulls stage: stage, id, source, role, repo, chars
    set_aside: one row per record in a stage's quarantine/ and filtered/ folders: stage, outcome, reason, source,
               role, repo (from the record the quarantine keeps whole)
    documents: one row per document in each tokens stage's shards (copies `{id}@{k}` are rows of their own):
               stage, split, id, base_id, repeat, source, role, repo, chunks, tokens
    """

    root: Path
    single: bool  # root is one stage folder, not a run
    stages: list[Stage]
    records: pl.DataFrame
    documents: pl.DataFrame
    set_aside: pl.DataFrame

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def of_kind(self, kind: str) -> list[Stage]:
        return [s for s in self.stages if s.kind == kind]


# ------------------------------------------------------------------------------------------------- loading


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StatsError(f"{path}: cannot be read as JSON ({exc}); rerun the stage that wrote it") from exc


def _stage_stats(folder: Path) -> dict[str, Any] | None:
    """stats.json when it is a stage_stats document (schemas/stage_stats), else None."""
    path = folder / "stats.json"
    if not path.is_file():
        return None
    doc = _read_json(path)
    required = _schema_required("stage_stats")
    return doc if isinstance(doc, dict) and required <= set(doc) else None


def _schema_required(name: str) -> set[str]:
    from datakit.io.schemas import load_json_schema

    return set(load_json_schema(name).get("required", []))


def _holds(names: list[str], schema: str) -> bool:
    return _schema_required(schema) <= set(names) <= set(arrow_schema(schema).names)


def _columns(schema: str, *paths: str) -> list[str]:
    """The column paths (`meta.repo`: a struct's field) checked against the schema: a renamed field fails here,
    loudly, not as a column of nulls."""
    for path in paths:
        kind = arrow_schema(schema).field(path.split(".")[0]).type
        for part in path.split(".")[1:]:
            kind = kind.field(part).type
    return list(paths)


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.parquet"))


def _footer_rows(files: list[Path]) -> int:
    try:
        return sum(pq.read_metadata(f).num_rows for f in files)
    except Exception as exc:  # a truncated file, not Parquet, …
        raise StatsError(f"{files[0].parent}: a Parquet file cannot be read ({exc}); rerun its stage") from exc


def _kind(folder: Path, stage_type: str) -> str:
    files = _files(folder)
    if not files:
        return "export" if stage_type.startswith("export.") else "other"
    names = pq.read_schema(files[0]).names
    for kind, schema in (("samples", "sample"), ("pulls", "pull_record"), ("tokens", "token_shard")):
        if _holds(names, schema):
            return kind
    return "other"


def _flow_rank(stage_type: str) -> int:
    return next((i for i, p in enumerate(FLOW) if stage_type == p or (p.endswith(".") and stage_type.startswith(p))),
                len(FLOW))


BATCH_ROWS = 4096  # rows per batch read: the text of a batch is measured and dropped, never held for a whole run


def _scan(files: list[Path], paths: list[str], reduce, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """The column paths of the files (`meta.repo`: only that field of the struct), batch by batch, each batch as a
    polars frame with one column per path (named by it) passed through `reduce`; the results concatenated."""
    fields = []
    for path in paths:
        head, *rest = path.split(".")
        expr = pl.col(head)
        for part in rest:
            expr = expr.struct.field(part)
        fields.append(expr.alias(path))
    out = []
    for f in files:
        try:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=BATCH_ROWS, columns=paths):
                out.append(reduce(pl.from_arrow(batch).select(fields)))
        except Exception as exc:  # a truncated file, not Parquet, a column missing, …
            raise StatsError(f"{f}: cannot read {', '.join(paths)} ({exc}); rerun the stage that wrote it") from exc
    return pl.concat(out) if out else pl.DataFrame(schema=schema)


def _sample_rows(stage: Stage) -> pl.DataFrame:
    from datakit.tokens.mixture import SOURCE_BY_KIND

    return _scan(_files(stage.path), _columns("sample", "id", "kind", "role", "meta.repo", "source.repo", "text"),
                 lambda f: f.select(
                     pl.lit(stage.name).alias("stage"), "id",
                     pl.col("kind").replace_strict(SOURCE_BY_KIND, default=pl.col("kind")).alias("source"),
                     pl.col("role").fill_null(NONE),
                     pl.coalesce("meta.repo", "source.repo").fill_null(NONE).alias("repo"),
                     pl.col("text").str.len_chars().cast(pl.Int64).alias("chars")), _RECORDS)


def _pull_rows(stage: Stage) -> pl.DataFrame:
    return _scan(_files(stage.path), _columns("pull_record", "id", "repo"),
                 lambda f: f.select(pl.lit(stage.name).alias("stage"), "id", pl.lit("pulls").alias("source"),
                                    pl.lit(NONE).alias("role"), pl.col("repo").fill_null(NONE),
                                    pl.lit(None, pl.Int64).alias("chars")), _RECORDS)


_RECORDS = {"stage": pl.String, "id": pl.String, "source": pl.String, "role": pl.String, "repo": pl.String,
            "chars": pl.Int64}
_DOCUMENTS = {"stage": pl.String, "split": pl.String, "id": pl.String, "base_id": pl.String, "repeat": pl.Int64,
              "source": pl.String, "role": pl.String, "repo": pl.String, "chunks": pl.Int64, "tokens": pl.Int64}


def _token_documents(stage: Stage, folder: Path, split: str) -> pl.DataFrame:
    """One row per document of the shards: its segments (chunks) summed; padding is not a document."""
    files = _files(folder)
    if not files:
        return pl.DataFrame(schema={k: v for k, v in _DOCUMENTS.items() if k not in ("role", "repo")})
    has_repeat = "repeat" in pq.read_schema(files[0]).names
    repeat = ["repeat"] if has_repeat else []
    segments = _scan(files, _columns("token_shard", "doc_lens", "source", "sample_ids", *repeat),
                     lambda f: f.select(
                         pl.col("doc_lens").list.head(pl.col("sample_ids").list.len()).alias("tokens"),  # padding last
                         "source", pl.col("sample_ids").alias("id"), *repeat).explode("tokens", "source", "id", *repeat),
                     {"tokens": pl.Int32, "source": pl.String, "id": pl.String, **{r: pl.Int32 for r in repeat}})
    if not has_repeat:  # shards from before the column: copy k of a document is named "{id}@{k}"
        segments = segments.with_columns(pl.col("id").str.extract(r"@(\d+)$").cast(pl.Int64).fill_null(0)
                                         .alias("repeat"))
    return (
        segments.group_by("id").agg(pl.col("source").first(), pl.col("repeat").first().cast(pl.Int64),
                                    pl.len().cast(pl.Int64).alias("chunks"), pl.col("tokens").sum().cast(pl.Int64))
        .with_columns(pl.lit(stage.name).alias("stage"), pl.lit(split).alias("split"),
                      pl.when(pl.col("repeat") > 0).then(pl.col("id").str.replace(r"@\d+$", ""))
                      .otherwise(pl.col("id")).alias("base_id"))
        .select("stage", "split", "id", "base_id", "repeat", "source", "chunks", "tokens")
    )


# the source a stage's records are for, when its quarantined input (a PullRecord, a raw row) has no sample kind
SOURCE_BY_TYPE = {"samples.agentless": "agentless", "bundles.commits": "commit_bundles", "synth.ingest": "synthetic",
                  "sft.agentless": "sft", "sft.agent": "sft"}
_SET_ASIDE = {"stage": pl.String, "outcome": pl.String, "reason": pl.String, "source": pl.String, "role": pl.String,
              "repo": pl.String}


def _set_aside(stage: Stage) -> pl.DataFrame:
    """The records in <stage>/quarantine/ and <stage>/filtered/ (schemas/quarantine), by reason and repository."""
    from datakit.tokens.mixture import SOURCE_BY_KIND

    parts = []
    for outcome, sub in (("quarantined", "quarantine"), ("filtered", "filtered")):
        files = _files(stage.path / sub)
        if not files or not _holds(pq.read_schema(files[0]).names, "quarantine"):
            continue
        record = pl.col("record")
        default = "pulls" if stage.kind == "pulls" else SOURCE_BY_TYPE.get(stage.type, UNKNOWN)
        parts.append(_scan(files, _columns("quarantine", "role", "reason", "record"), lambda f: f.select(
            pl.lit(stage.name).alias("stage"), pl.lit(outcome).alias("outcome"), "reason",
            record.str.json_path_match("$.kind").replace_strict(SOURCE_BY_KIND, default=None)
            .fill_null(default).alias("source"),
            pl.coalesce(pl.col("role"), record.str.json_path_match("$.role")).fill_null(NONE).alias("role"),
            pl.coalesce(*(record.str.json_path_match(p) for p in ("$.meta.repo", "$.repo", "$.source.repo")))
            .fill_null(NONE).alias("repo")), _SET_ASIDE))
    return pl.concat(parts) if parts else pl.DataFrame(schema=_SET_ASIDE)


def _load_stage(folder: Path, stats: dict[str, Any]) -> Stage:
    stage = Stage(name=str(stats.get("stage") or folder.name), type=str(stats.get("type") or ""), path=folder,
                  stats=stats, kind=_kind(folder, str(stats.get("type") or "")))
    files = _files(folder)
    stage.rows = _footer_rows(files) if files else None
    q = _files(folder / "quarantine")
    stage.quarantine_rows = _footer_rows(q) if q else 0
    if (folder / "manifest.json").is_file():
        stage.manifest = _read_json(folder / "manifest.json")
    if (folder / "valid" / "manifest.json").is_file():
        stage.valid_manifest = _read_json(folder / "valid" / "manifest.json")
    if stage.type == "decontam":
        from datakit.decontam.audit import AuditError, load_audit

        try:
            stage.audit = load_audit(folder)
        except AuditError as exc:
            raise StatsError(f"{exc}; rerun the decontam stage ({stage.name})") from exc
    return stage


def load(dir: str | Path) -> RunStats:
    """Load a run's output folder (one folder per stage) or a single stage folder; raises `StatsError`."""
    root = Path(dir)
    if not root.is_dir():
        raise StatsError(f"{root}: no such folder; give a run's output folder (e.g. out/demo) or one stage folder")
    own = _stage_stats(root)
    if own is not None:
        found = [(root, own)]
    else:
        found = [(p, s) for p in sorted(root.iterdir()) if p.is_dir() and (s := _stage_stats(p)) is not None]
    if not found:
        raise StatsError(f"{root}: not a datakit output (no stats.json in it or in its subfolders); give a run's "
                         "output folder (e.g. out/demo, as `datakit run` prints) or one of its stage folders")
    stages = sorted((_load_stage(p, s) for p, s in found), key=lambda s: (_flow_rank(s.type), s.name))
    parts = [_sample_rows(s) if s.kind == "samples" else _pull_rows(s)
             for s in stages if s.kind in ("samples", "pulls") and s.rows]
    records = pl.concat(parts) if parts else pl.DataFrame(schema=_RECORDS)
    docs = []
    for s in stages:
        if s.kind == "tokens":
            docs.append(_token_documents(s, s.path, "train"))
            if (s.path / "valid").is_dir():
                docs.append(_token_documents(s, s.path / "valid", "valid"))
    documents = _attach_samples(pl.concat(docs) if docs else pl.DataFrame(schema=_DOCUMENTS), records, stages)
    set_aside = pl.concat([_set_aside(s) for s in stages])
    return RunStats(root=root, single=own is not None, stages=stages, records=records.sort("stage", "id"),
                    documents=documents.sort("stage", "split", "id"), set_aside=set_aside)


def _attach_samples(documents: pl.DataFrame, records: pl.DataFrame, stages: list[Stage]) -> pl.DataFrame:
    """Role and repository of each token document, from the sample stage nearest the tokens in the flow."""
    rank = {s.name: i for i, s in enumerate(stages)}
    known = (records.filter(pl.col("source") != "pulls")
             .with_columns(pl.col("stage").replace_strict(rank, return_dtype=pl.Int64).alias("_rank"))
             .sort("_rank", descending=True).unique("id", keep="first", maintain_order=True)
             .select(pl.col("id").alias("base_id"), "role", "repo"))
    out = documents.join(known, on="base_id", how="left").with_columns(pl.col("role").fill_null(UNKNOWN),
                                                                       pl.col("repo").fill_null(UNKNOWN))
    return out.select(list(_DOCUMENTS))


# ------------------------------------------------------------------------------------------------- figures


def _lengths(col: str, where: pl.Expr | None = None) -> list[pl.Expr]:
    """min, the PERCENTILES and max of a column (of the rows `where` holds)."""
    c = pl.col(col) if where is None else pl.col(col).filter(where)
    return [c.min().alias("min"), *[c.quantile(q, "nearest").cast(pl.Int64).alias(f"p{round(q * 100)}")
                                    for q in PERCENTILES], c.max().alias("max")]


def stage_table(rs: RunStats) -> pl.DataFrame:
    """One row per stage and unit: read, written, quarantined, filtered (stats.json), rows and quarantine rows on
    disk (the Parquet footers)."""
    rows = []
    for s in rs.stages:
        for unit, u in (s.stats.get("units") or {"-": {}}).items():
            rows.append({"stage": s.name, "type": s.type, "unit": unit, "read": int(u.get("read", 0)),
                         "written": int(u.get("written", 0)),
                         "quarantined": int(sum((u.get("quarantined") or {}).values())),
                         "filtered": int(sum((u.get("filtered") or {}).values())),
                         "rows": s.rows, "quarantine_rows": s.quarantine_rows})
    schema = {"stage": pl.String, "type": pl.String, "unit": pl.String, "read": pl.Int64, "written": pl.Int64,
              "quarantined": pl.Int64, "filtered": pl.Int64, "rows": pl.Int64, "quarantine_rows": pl.Int64}
    return pl.DataFrame(rows, schema=schema)


def reasons(rs: RunStats) -> pl.DataFrame:
    """Every quarantine and filter reason of every stage (stats.json): stage, unit, outcome, reason, count."""
    rows = [{"stage": s.name, "unit": unit, "outcome": outcome, "reason": reason, "count": int(n)}
            for s in rs.stages for unit, u in (s.stats.get("units") or {}).items()
            for outcome in ("quarantined", "filtered") for reason, n in sorted((u.get(outcome) or {}).items()) if n]
    return pl.DataFrame(rows, schema={"stage": pl.String, "unit": pl.String, "outcome": pl.String,
                                      "reason": pl.String, "count": pl.Int64})


def set_aside_by_repo(rs: RunStats) -> pl.DataFrame:
    """Quarantined and filtered records on disk per stage, repository, reason, source and role (a stage that only
    counts its filtered units, in stats.json, has no rows here for them)."""
    out = rs.set_aside.group_by("stage", "repo", "outcome", "reason", "source", "role").agg(
        pl.len().cast(pl.Int64).alias("rows"))
    return _ordered(out, rs, "repo", "outcome", "reason", "source", "role")


def _flow(rs: RunStats) -> pl.Expr:
    """A stage name's position in `rs.stages` (the flow order), to sort by."""
    return pl.col("stage").replace_strict({s.name: i for i, s in enumerate(rs.stages)}, return_dtype=pl.Int64)


def _ordered(frame: pl.DataFrame, rs: RunStats, *by: str) -> pl.DataFrame:
    return frame.sort(_flow(rs), *by)


def samples_by_source(rs: RunStats) -> pl.DataFrame:
    """Per samples / pulls stage, source and role: rows, repositories, and the length in characters of `text`."""
    r = rs.records
    if r.height == 0:
        return pl.DataFrame(schema={"stage": pl.String, "source": pl.String, "role": pl.String, "rows": pl.Int64,
                                    "repos": pl.Int64, "min": pl.Int64, "p50": pl.Int64, "p90": pl.Int64,
                                    "p99": pl.Int64, "max": pl.Int64})
    out = r.group_by("stage", "source", "role").agg(
        pl.len().cast(pl.Int64).alias("rows"), pl.col("repo").filter(pl.col("repo") != NONE).n_unique()
        .cast(pl.Int64).alias("repos"), *_lengths("chars"))
    return _ordered(out, rs, "source", "role")


def tokens_by_source(rs: RunStats) -> pl.DataFrame:
    """Per tokens stage, split, source and role: documents and tokens in the shards (copies included), unique
    documents and tokens (each once), and the length in tokens of the unique documents."""
    d = rs.documents
    out = d.group_by("stage", "split", "source", "role").agg(
        pl.len().cast(pl.Int64).alias("documents"), pl.col("tokens").sum().cast(pl.Int64),
        (pl.col("repeat") == 0).sum().cast(pl.Int64).alias("unique_documents"),
        pl.col("tokens").filter(pl.col("repeat") == 0).sum().cast(pl.Int64).alias("unique_tokens"),
        *_lengths("tokens", pl.col("repeat") == 0))
    return _ordered(out, rs, "split", "source", "role")


def repositories(rs: RunStats) -> pl.DataFrame:
    """Per stage and repository: rows (samples / pulls stages) or documents and tokens (tokens stages, copies
    included); sorted by stage, then tokens and rows (largest first), then name."""
    rows = rs.records.group_by("stage", "repo").agg(pl.len().cast(pl.Int64).alias("rows"))
    docs = rs.documents.filter(pl.col("split") == "train").group_by("stage", "repo").agg(
        pl.len().cast(pl.Int64).alias("documents"), pl.col("tokens").sum().cast(pl.Int64))
    out = pl.concat([rows.with_columns(pl.lit(None, pl.Int64).alias("documents"), pl.lit(None, pl.Int64)
                                       .alias("tokens")),
                     docs.with_columns(pl.lit(None, pl.Int64).alias("rows")).select("stage", "repo", "rows",
                                                                                    "documents", "tokens")])
    return out.sort(_flow(rs), pl.col("tokens").fill_null(0),
                    pl.col("rows").fill_null(0), "repo", descending=[False, True, True, False])


def upsampling(rs: RunStats) -> pl.DataFrame:
    """Per tokens stage and source, from its manifest: the factor, the budget and what the mixture did."""
    keys = ("upsample", "requested_tokens", "unique_documents", "documents", "unique_tokens", "tokens",
            "repeated_documents", "left_out_documents", "over_budget_documents", "downsampled_documents",
            "too_long_documents")
    rows = []
    for s in rs.of_kind("tokens"):
        for source, p in sorted(((s.manifest or {}).get("per_source") or {}).items()):
            rows.append({"stage": s.name, "source": source, **{k: p.get(k) for k in keys}})
    schema = {"stage": pl.String, "source": pl.String, "upsample": pl.Float64, "requested_tokens": pl.Float64,
              **{k: pl.Int64 for k in keys[2:]}}
    return pl.DataFrame(rows, schema=schema)


def decontamination(rs: RunStats) -> list[dict[str, Any]]:
    """Per decontam stage: the audit's totals, the rules that removed anything, removals per repository."""
    from datakit.decontam import audit

    out = []
    for s in rs.stages:
        if s.audit is None:
            continue
        t = audit.totals(s.audit)
        rules = audit.by_rule(s.audit).filter(pl.col("removed") > 0).select("rule", "level", "removed")
        repos = audit.by_repo(s.audit).select("repo", "removed", "kept")
        out.append({"stage": s.name, "read": t["read"], "kept": t["kept"], "quarantined": t["quarantined"],
                    "filtered": t["filtered"], "invariant": audit.invariant_text(t),
                    "rules": rules.to_dicts(), "repos": repos.to_dicts()})
    return out


def histogram(values: list[int]) -> list[tuple[int, int]]:
    """Power-of-two bins: (low, count) for each bin [low, 2·low) from the smallest to the largest value (empty bins
    included; 0 is a bin of its own, low 0)."""
    if not values:
        return []
    counts: dict[int, int] = {}
    for v in values:
        low = 0 if v <= 0 else 1 << (int(v).bit_length() - 1)
        counts[low] = counts.get(low, 0) + 1
    lows, top = [], max(counts)
    low = min(counts)
    if low == 0:
        lows.append(0)
        low = 1
    while low <= top:
        lows.append(low)
        low <<= 1
    return [(b, counts.get(b, 0)) for b in lows]
