"""The decontamination audit: what the decontam stage removed and why, per repository, per rule, with examples.

Reads a decontam stage's output folder (DESIGN §4)::

    <dir>/{rank:05d}.parquet              kept samples (schemas/sample.schema.json)
    <dir>/quarantine/{rank:05d}.parquet   quarantined samples, whole (schemas/quarantine.schema.json)
    <dir>/matches/{rank:05d}.parquet      one row per quarantined sample, its strongest match (decontam_match)
    <dir>/stats.json                      stage_stats, unit "samples"

`load_audit(dir)` loads it into polars frames and checks that the numbers add up (read = kept + quarantined
[+ filtered] in stats.json and on disk; one match row per quarantined sample, same rule as the quarantine's reason);
a folder that does not add up raises `AuditError` saying which number disagrees.

`write_audit(dir)` writes `<dir>/audit/audit.md` (with its charts as PNG files beside it) and `audit.html` (one
self-contained file: inline CSS, charts as inline base64 PNG, one inline script of its own (filters and pages the removal list; it never inserts text as HTML), no external URL; all sample text is
HTML-escaped, samples are untrusted). The same input gives the same bytes: no timestamp unless `generated_at` is
passed, and the PNGs carry no software/date metadata.

The pieces (`totals`, `by_rule`, `by_repo`, `plot_*`, `examples`) are public so the notebook
`notebooks/decontamination_audit.ipynb` shows the same tables and charts interactively.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from datakit.io.schemas import arrow_schema

UNIT = "samples"

# rule → (level, what it means); the report lists every rule, in this order, zeros included.
RULES: dict[str, tuple[str, str]] = {
    "repo_name": ("repository", "the sample's repository is a SWE-bench repository (normalised name)"),
    "repo_renamed": ("repository", "a known former name of a SWE-bench repository"),
    "repo_fork": ("repository", "a fork of a SWE-bench repository (fork / parent / source)"),
    "mirror_root_commit": (
        "repository", "a mirror or vendored copy: shares a git root commit with a SWE-bench repository"
    ),
    "mirror_base_commit": ("commit", "the sample's base commit is in a SWE-bench repository's history"),
    "mirror_unavailable": (
        "repository", "the sample came from a git mirror that is missing: its history could not be checked (fail closed)"
    ),
    "commit_base": ("commit", "the sample's base commit is a SWE-bench instance's base commit"),
    "text_instance_id": ("text", "the text names a SWE-bench instance id (e.g. django__django-11099)"),
    "text_problem_statement": ("text", "n-gram overlap with a SWE-bench problem statement"),
    "text_patch": ("text", "n-gram overlap with a SWE-bench gold patch"),
    "text_test_patch": ("text", "n-gram overlap with a SWE-bench test patch"),
}
# text rule → the reference field its span is compared with
REFERENCE_FIELD = {
    "text_problem_statement": "problem_statement",
    "text_patch": "patch",
    "text_test_patch": "test_patch",
}
REFERENCE_NOTE = (
    "The reference text is not shipped with the output: the decontam index holds n-gram hashes only. "
    "Pass `reference={instance_id: {problem_statement, patch, test_patch}}` (e.g. loaded from "
    "princeton-nlp/SWE-bench_Verified) to show it beside the matched span."
)
MAX_REFERENCE_CHARS = 6000
PLOT_FILES = {"rules": "audit_by_rule.png", "repos": "audit_by_repo.png", "scores": "audit_scores.png",
              "decision": "audit_decision.png"}
PAGE_ROWS = 50  # removals per page in the HTML list


class AuditError(ValueError):
    """The decontam output folder is missing a part or its numbers do not add up."""


@dataclass
class AuditData:
    """A decontam output folder, loaded.

    kept:       id, kind, role, repo (meta.repo) of every kept sample
    quarantine: id, sample_id (the sample's own id, from the record), stage, role, kind, repo, reason, detail
    matches:    the decontam_match rows (sample_id, sample_repo, rule, matched_instance_id, matched_repo, score,
                matched_ngrams, span_start, span_end, span_text)
    stats:      stats.json as a dict
    """

    dir: Path
    kept: pl.DataFrame
    quarantine: pl.DataFrame
    matches: pl.DataFrame
    stats: dict[str, Any]
    unit: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # decontam.json: decision rule, mirror rules, roots

    @property
    def read(self) -> int:
        return int(self.unit.get("read", 0))

    @property
    def quarantined(self) -> dict[str, int]:
        return {k: int(v) for k, v in (self.unit.get("quarantined") or {}).items()}

    @property
    def filtered(self) -> dict[str, int]:
        return {k: int(v) for k, v in (self.unit.get("filtered") or {}).items()}

    @property
    def counters(self) -> dict[str, float]:
        return dict(self.stats.get("counters") or {})


# --------------------------------------------------------------------------------------------------- loading


def _read_parquet(folder: Path, schema_name: str, columns: list[str]) -> pa.Table:
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    schema = arrow_schema(schema_name)
    tables = []
    for path in files:
        try:
            names = pq.read_schema(path).names
            missing = [c for c in columns if c not in names]
            if missing:
                raise AuditError(f"{path}: missing column(s) {', '.join(missing)} of the {schema_name} schema")
            tables.append(pq.read_table(path, columns=columns).select(columns))  # never the sample text
        except AuditError:
            raise
        except Exception as exc:  # a truncated file, not Parquet, …
            raise AuditError(f"{path}: cannot be read as Parquet ({exc})") from exc
    if not tables:
        return pa.schema([schema.field(c) for c in columns]).empty_table()
    return pa.concat_tables(tables, promote_options="permissive")


def _load_stats(path: Path) -> tuple[dict, dict]:
    if not path.is_file():
        raise AuditError(f"{path}: missing (is {path.parent} a finished decontam stage output folder?)")
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AuditError(f"{path}: not valid JSON ({exc})") from exc
    units = stats.get("units") or {}
    if UNIT in units:
        unit = units[UNIT]
    elif len(units) == 1:
        unit = next(iter(units.values()))
    else:
        raise AuditError(f"{path}: no {UNIT!r} unit in units (have: {', '.join(sorted(units)) or 'none'})")
    return stats, unit


def load_audit(dir: str | Path) -> AuditData:
    """Load a decontam output folder and check it adds up; raises `AuditError` (a ValueError) when it does not."""
    root = Path(dir)
    if not root.is_dir():
        raise AuditError(f"{root}: not a folder")
    stats, unit = _load_stats(root / "stats.json")

    kept_t = _read_parquet(root, "sample", ["id", "kind", "role", "meta"])
    kept = pl.from_arrow(kept_t)
    kept = kept.select(
        pl.col("id"), pl.col("kind"), pl.col("role"), pl.col("meta").struct.field("repo").alias("repo")
    ).sort("id", maintain_order=True)

    q_cols = ["id", "stage", "role", "reason", "detail", "record"]
    quarantine = pl.from_arrow(_read_parquet(root / "quarantine", "quarantine", q_cols))
    quarantine = (
        quarantine.with_columns(
            pl.col("record").str.json_path_match("$.id").alias("_rid"),
            pl.col("record").str.json_path_match("$.kind").alias("kind"),
            pl.col("record").str.json_path_match("$.meta.repo").alias("repo"),
            pl.coalesce(pl.col("role"), pl.col("record").str.json_path_match("$.role")).alias("role"),
        )
        .with_columns(pl.coalesce("_rid", "id").alias("sample_id"))
        .select("id", "sample_id", "stage", "role", "kind", "repo", "reason", "detail")
        .sort("sample_id", "id", maintain_order=True)
    )

    m_cols = arrow_schema("decontam_match").names
    matches = pl.from_arrow(_read_parquet(root / "matches", "decontam_match", m_cols))
    matches = matches.sort("sample_id", "rule", maintain_order=True)

    settings_path = root / "decontam.json"
    try:
        settings = json.loads(settings_path.read_text(encoding="utf-8")) if settings_path.is_file() else {}
    except json.JSONDecodeError as exc:
        raise AuditError(f"{settings_path}: not valid JSON ({exc})") from exc
    data = AuditData(dir=root, kept=kept, quarantine=quarantine, matches=matches, stats=stats, unit=unit,
                     settings=settings)
    check(data)
    return data


def check(data: AuditData) -> None:
    """The invariants the report states; raises AuditError naming the first one that fails."""
    where = data.dir
    read, written = data.read, int(data.unit.get("written", 0))
    q_total, f_total = sum(data.quarantined.values()), sum(data.filtered.values())
    if read != written + q_total + f_total:
        raise AuditError(
            f"{where}/stats.json: read ({read}) != written ({written}) + quarantined ({q_total})"
            + (f" + filtered ({f_total})" if f_total else "")
            + f" — {read - written - q_total - f_total:+d} samples unaccounted for"
        )
    if data.kept.height != written:
        raise AuditError(f"{where}: {data.kept.height} kept samples on disk, stats.json says written = {written}")
    if data.quarantine.height != q_total:
        raise AuditError(
            f"{where}/quarantine: {data.quarantine.height} rows on disk, stats.json says quarantined = {q_total}"
        )
    on_disk = _counts(data.quarantine, "reason")
    if on_disk != {k: v for k, v in data.quarantined.items() if v}:
        raise AuditError(
            f"{where}/quarantine: rows per reason {_fmt_counts(on_disk)} != stats.json quarantined "
            f"{_fmt_counts(data.quarantined)}"
        )
    if data.matches.height != data.quarantine.height:
        raise AuditError(
            f"{where}/matches: {data.matches.height} match rows, but {data.quarantine.height} quarantined samples "
            "(there must be exactly one match row per quarantined sample)"
        )
    dup = data.matches.filter(pl.col("sample_id").is_duplicated())["sample_id"].unique().sort().to_list()
    if dup:
        raise AuditError(f"{where}/matches: more than one row for sample(s) {', '.join(map(str, dup[:5]))}")
    q_pairs = data.quarantine.select("sample_id", pl.col("reason").alias("rule"))
    m_pairs = data.matches.select("sample_id", "rule")
    only_q = q_pairs.join(m_pairs, on=["sample_id", "rule"], how="anti")
    if only_q.height:
        first = only_q.row(0, named=True)
        raise AuditError(
            f"{where}: {only_q.height} quarantined sample(s) without a match row of the same rule "
            f"(first: {first['sample_id']!r}, reason {first['rule']!r})"
        )


def _counts(frame: pl.DataFrame, col: str) -> dict[str, int]:
    if frame.height == 0:
        return {}
    rows = frame.group_by(col).len().sort(col).iter_rows()
    return {str(k): int(n) for k, n in rows}


def _fmt_counts(counts: Mapping[str, int]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + "}"


# ---------------------------------------------------------------------------------------------------- tables


def rule_order(data: AuditData) -> list[str]:
    extra = sorted((set(data.quarantined) | set(_counts(data.matches, "rule"))) - set(RULES))
    return list(RULES) + extra


def totals(data: AuditData) -> dict[str, Any]:
    """read, kept, quarantined (total and per rule, every rule listed), filtered, and whether read adds up."""
    q = {rule: data.quarantined.get(rule, 0) for rule in rule_order(data)}
    kept, q_total, f_total = data.kept.height, sum(q.values()), sum(data.filtered.values())
    return {
        "read": data.read,
        "kept": kept,
        "quarantined": q_total,
        "filtered": f_total,
        "per_rule": q,
        "invariant_holds": data.read == kept + q_total + f_total,
    }


def invariant_text(t: Mapping[str, Any]) -> str:
    rhs = f"kept ({t['kept']:,}) + quarantined ({t['quarantined']:,})"
    if t["filtered"]:
        rhs += f" + filtered ({t['filtered']:,})"
    sign = "=" if t["invariant_holds"] else "≠"
    return f"read ({t['read']:,}) {sign} {rhs}" + (" — holds" if t["invariant_holds"] else " — DOES NOT HOLD")


def by_rule(data: AuditData) -> pl.DataFrame:
    """One row per rule (all rules, zeros included): level, removed samples, share of read, distinct matched
    SWE-bench repositories and instances, score range, description."""
    m = data.matches
    agg = (
        m.group_by("rule").agg(
            pl.len().alias("removed"),
            pl.col("matched_repo").drop_nulls().n_unique().alias("matched_repos"),
            pl.col("matched_instance_id").drop_nulls().n_unique().alias("matched_instances"),
            pl.col("score").min().alias("score_min"),
            pl.col("score").median().alias("score_median"),
            pl.col("score").max().alias("score_max"),
        )
        if m.height
        else None
    )
    rows = []
    have = {r["rule"]: r for r in agg.iter_rows(named=True)} if agg is not None else {}
    for rule in rule_order(data):
        level, what = RULES.get(rule, ("other", "(not a known decontam rule)"))
        r = have.get(rule, {})
        removed = int(r.get("removed") or data.quarantined.get(rule, 0))
        rows.append(
            {
                "rule": rule,
                "level": level,
                "removed": removed,
                "share_of_read": (removed / data.read) if data.read else 0.0,
                "matched_repos": int(r.get("matched_repos") or 0),
                "matched_instances": int(r.get("matched_instances") or 0),
                "score_min": r.get("score_min"),
                "score_median": r.get("score_median"),
                "score_max": r.get("score_max"),
                "description": what,
            }
        )
    schema = {
        "rule": pl.String, "level": pl.String, "removed": pl.Int64, "share_of_read": pl.Float64,
        "matched_repos": pl.Int64, "matched_instances": pl.Int64, "score_min": pl.Float64,
        "score_median": pl.Float64, "score_max": pl.Float64, "description": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


def by_repo(data: AuditData) -> pl.DataFrame:
    """One row per sample repository with removals: removed, kept (of that repository), then one column per rule
    that removed anything; sorted by removed (descending), then name."""
    unknown = "(unknown)"
    m = data.matches.with_columns(pl.col("sample_repo").fill_null(unknown).alias("repo"))
    rules = [r for r in rule_order(data) if data.quarantined.get(r, 0) or r in set(m["rule"].to_list())]
    kept = data.kept.with_columns(pl.col("repo").fill_null(unknown)).group_by("repo").len("kept")
    if m.height == 0:
        return pl.DataFrame(schema={"repo": pl.String, "removed": pl.Int64, "kept": pl.Int64})
    removed = m.group_by("repo").len("removed")
    wide = m.group_by("repo", "rule").len("n").pivot(on="rule", index="repo", values="n")
    out = removed.join(kept, on="repo", how="left").join(wide, on="repo", how="left")
    for rule in rules:
        if rule not in out.columns:
            out = out.with_columns(pl.lit(0, pl.UInt32).alias(rule))
    out = out.select(
        pl.col("repo"),
        pl.col("removed").cast(pl.Int64),
        pl.col("kept").fill_null(0).cast(pl.Int64),
        *[pl.col(r).fill_null(0).cast(pl.Int64) for r in rules],
    )
    return out.sort(["removed", "repo"], descending=[True, False])


def by_matched_repo(data: AuditData) -> pl.DataFrame:
    """Removals per SWE-bench repository matched (null for rules without one)."""
    m = data.matches
    if m.height == 0:
        return pl.DataFrame(schema={"matched_repo": pl.String, "removed": pl.Int64, "instances": pl.Int64})
    return (
        m.with_columns(pl.col("matched_repo").fill_null("(none)"))
        .group_by("matched_repo")
        .agg(pl.len().cast(pl.Int64).alias("removed"),
             pl.col("matched_instance_id").drop_nulls().n_unique().cast(pl.Int64).alias("instances"))
        .sort(["removed", "matched_repo"], descending=[True, False])
    )


def text_scores(data: AuditData) -> pl.DataFrame:
    """The text-rule matches (rule, score, matched_ngrams, sample_id)."""
    return data.matches.filter(pl.col("rule").str.starts_with("text_")).select(
        "rule", "score", "matched_ngrams", "sample_id"
    )


_THRESHOLD_NAMES = {"threshold", "min_score", "min_overlap"}


def thresholds(data: AuditData) -> dict[str, float]:
    """Score thresholds the stats say: counters with a dot-separated part named `threshold` (or `min_score`,
    `min_overlap`), e.g. `scores.threshold` (every text rule, key "*") or `scores.text_patch.threshold` /
    `scores.threshold.text_patch` (one rule). `scores.above_threshold` (a count) is not one."""
    out: dict[str, float] = {}
    for key, value in sorted(data.counters.items()):
        parts = key.split(".")
        if not _THRESHOLD_NAMES & set(parts) or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            continue
        rule = next((r for r in REFERENCE_FIELD if r in parts), "*")
        out[rule] = float(value)
    return out


def removals(data: AuditData) -> pl.DataFrame:
    """Every quarantined sample, one row each: sample, repository, kind, role, rule, what it matched, score,
    matched n-grams, detail; sorted by rule (report order), then score (strongest first), repository, id."""
    q = data.quarantine.select("sample_id", "role", "kind", "detail").unique("sample_id", keep="first")
    m = data.matches.drop([c for c in ("role", "kind") if c in data.matches.columns])
    m = m.join(q, on="sample_id", how="left")
    if "role" in data.matches.columns:  # the match row carries the role too; the quarantine's wins when set
        m = m.join(data.matches.select("sample_id", pl.col("role").alias("_mrole")), on="sample_id", how="left")
        m = m.with_columns(pl.coalesce("role", "_mrole").alias("role")).drop("_mrole")
    order = {r: i for i, r in enumerate(rule_order(data))}
    m = m.with_columns(pl.col("rule").replace_strict(order, default=len(order), return_dtype=pl.Int64).alias("_o"))
    return m.sort(["_o", "score", "sample_repo", "sample_id"], descending=[False, True, False, False],
                  nulls_last=True).drop("_o")


def decision_rule(data: AuditData) -> tuple[float | None, int | None, str | None]:
    """(score threshold, minimum matched n-grams, the rule in words) from decontam.json (None when unknown)."""
    st = data.settings
    th, mm = st.get("threshold"), st.get("min_matched")
    text = st.get("decision_rule")
    if text is None and th is not None and mm is not None:
        text = f"a text matches a reference item when score >= {th} OR matched distinct n-grams >= {mm}"
    return th, mm, text


def reference_span(span_text: str | None, ref_text: str | None, n: int = 13) -> tuple[int, int] | None:
    """(start, end) in `ref_text` of the part the matched span quotes: from its first to its last n-gram that
    also occurs in the span (same normalisation and hashing as the index). None when nothing is shared."""
    from datakit.decontam.ngrams import ngram_hashes

    if not span_text or not ref_text:
        return None
    sh = ngram_hashes(span_text, n)[0]
    rh, rs, re_ = ngram_hashes(ref_text, n)
    if not len(sh) or not len(rh):
        return None
    import numpy as np

    hit = np.flatnonzero(np.isin(rh, sh))
    if not len(hit):
        return None
    return int(rs[hit.min()]), int(re_[hit.max()])


def examples(
    data: AuditData,
    reference: Mapping[str, Mapping[str, str]] | None = None,
    max_examples: int | None = 20,
) -> list[dict[str, Any]]:
    """Every text-rule match, and up to `max_examples` examples per other rule (None: all), strongest score
    first: the match row, the quarantine's role/kind/detail, and the reference span the sample quotes (the
    reference text from its first to its last shared n-gram), or None with `reference_note`."""
    if data.matches.height == 0 or (max_examples is not None and max_examples <= 0):
        return []
    m = removals(data)
    n = int(data.settings.get("n") or 13)
    out = []
    for rule in rule_order(data):
        rows = m.filter(pl.col("rule") == rule)
        if rule not in REFERENCE_FIELD and max_examples is not None:
            rows = rows.head(max_examples)
        for row in rows.iter_rows(named=True):
            ref_field = REFERENCE_FIELD.get(rule)
            ref_text, note, span = None, None, None
            if ref_field is None:
                note = "repository/commit rule: the whole sample was removed, there is no text span to compare"
            elif reference is None:
                note = REFERENCE_NOTE
            else:
                inst = reference.get(row["matched_instance_id"] or "")
                if inst is None:
                    note = f"instance {row['matched_instance_id']!r} is not in the reference given"
                else:
                    full = inst.get(ref_field)
                    if full is None:
                        note = f"the reference given has no {ref_field!r} for this instance"
                    else:
                        span = reference_span(row.get("span_text"), full, n)
                        ref_text = full[span[0]:span[1]] if span else full
                        note = None if span else "no n-gram of the span was found in the reference text shown"
            out.append({**row, "reference_field": ref_field, "reference_text": ref_text, "reference_note": note,
                        "reference_span": span})
    return out


# ---------------------------------------------------------------------------------------------------- charts

_RC = {
    "svg.hashsalt": "datakit-decontam-audit",
    "svg.fonttype": "path",
    "text.parse_math": False,  # repository names are untrusted: no mathtext
    "text.usetex": False,
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "path.simplify": False,
    "hist.bins": 20,
}
_COLORS = {"repository": "#4c72b0", "commit": "#dd8452", "text": "#55a868", "other": "#8c8c8c"}


def _label(s: Any, width: int = 48) -> str:
    s = str(s) if s is not None else "(unknown)"
    s = "".join(ch if ch.isprintable() else "?" for ch in s)
    return s if len(s) <= width else s[: width - 1] + "…"


def _figure(height_rows: int, min_h: float = 2.2):
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(8.0, max(min_h, 0.8 + 0.28 * height_rows)), dpi=100, layout="constrained")
    return fig


def plot_by_rule(data: AuditData):
    """Horizontal bars: samples removed per rule (all rules), coloured by level. Returns a matplotlib Figure."""
    import matplotlib
    from matplotlib.ticker import MaxNLocator

    table = by_rule(data)
    with matplotlib.rc_context(_RC):
        fig = _figure(table.height)
        ax = fig.add_subplot()
        names = table["rule"].to_list()[::-1]
        values = table["removed"].to_list()[::-1]
        colors = [_COLORS.get(lv, _COLORS["other"]) for lv in table["level"].to_list()[::-1]]
        bars = ax.barh(range(len(names)), values, color=colors)
        ax.set_yticks(range(len(names)), [_label(n) for n in names])
        ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=2, fontsize=8)
        ax.set_xlabel("samples removed")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("Removals per rule")
        ax.margins(x=0.12)
        ax.spines[["top", "right"]].set_visible(False)
    return fig


def plot_by_repo(data: AuditData, top: int = 30):
    """Stacked horizontal bars: samples removed per repository (the `top` largest; the rest as one bar),
    stacked by rule level. Returns a matplotlib Figure."""
    import matplotlib
    from matplotlib.ticker import MaxNLocator

    table = by_repo(data)
    rules = [c for c in table.columns if c not in ("repo", "removed", "kept")]
    clipped = table.height > top
    if clipped:
        head, rest = table.head(top), table.slice(top)
        other = {"repo": f"({rest.height:,} other repositories)", "removed": int(rest["removed"].sum()),
                 "kept": int(rest["kept"].sum()), **{r: int(rest[r].sum()) for r in rules}}
        table = pl.concat([head, pl.DataFrame([other], schema=head.schema)])
    with matplotlib.rc_context(_RC):
        fig = _figure(max(table.height, 1))
        ax = fig.add_subplot()
        names = table["repo"].to_list()[::-1]
        left = [0] * len(names)
        for level in ("repository", "commit", "text", "other"):
            cols = [r for r in rules if RULES.get(r, ("other",))[0] == level]
            if not cols:
                continue
            vals = [sum(int(table[c][i]) for c in cols) for i in range(table.height)][::-1]
            ax.barh(range(len(names)), vals, left=left, color=_COLORS[level], label=f"{level} rules")
            left = [a + b for a, b in zip(left, vals)]
        ax.set_yticks(range(len(names)), [_label(n) for n in names])
        ax.set_xlabel("samples removed")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("Removals per repository" + (f" (the {top} largest)" if clipped else ""))
        if rules:
            ax.legend(loc="lower right", frameon=False, fontsize=8)
        else:
            ax.text(0.5, 0.5, "nothing removed", ha="center", va="center", transform=ax.transAxes)
        ax.spines[["top", "right"]].set_visible(False)
    return fig


def plot_scores(data: AuditData, threshold: float | Mapping[str, float] | None = None):
    """Histogram (20 bins over [0, 1], stacked by rule) of the text-rule match scores, with the threshold line(s)
    when given or when the stats' counters say them; None when there are no text-rule matches."""
    import matplotlib
    from matplotlib.ticker import MaxNLocator

    scores = text_scores(data)
    if scores.height == 0:
        return None
    if threshold is None:
        th = thresholds(data)
    elif isinstance(threshold, Mapping):
        th = dict(threshold)
    else:
        th = {"*": float(threshold)}
    rules = [r for r in rule_order(data) if r in set(scores["rule"].to_list())]
    palette = ["#55a868", "#8172b3", "#c44e52", "#937860", "#da8bc3", "#64b5cd"]
    with matplotlib.rc_context(_RC):
        fig = _figure(10, min_h=3.2)
        ax = fig.add_subplot()
        values = [scores.filter(pl.col("rule") == r)["score"].to_list() for r in rules]
        lo = min(0.0, float(scores["score"].min()))
        hi = max(1.0, float(scores["score"].max()))
        bins = [lo + (hi - lo) * i / 20 for i in range(21)]
        ax.hist(values, bins=bins, stacked=True, label=rules, color=palette[: len(rules)])
        styles = ["--", ":", "-.", (0, (5, 1))]
        for i, (rule, value) in enumerate(sorted(th.items())):
            name = "threshold" if rule == "*" else f"threshold ({rule})"
            ax.axvline(value, color="black", linestyle=styles[i % len(styles)], linewidth=1.2,
                       label=f"{name} = {value:g}")
        ax.set_xlabel("overlap score (fraction of the reference item's n-grams found in the sample)")
        ax.set_ylabel("matches")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("Overlap scores of text-rule matches")
        ax.legend(frameon=False, fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    return fig


def plot_decision(data: AuditData):
    """Every text-rule match as a point (score, matched n-grams) with the decision rule drawn: a match needs
    score >= threshold (vertical line) OR matched n-grams >= min_matched (horizontal line); the shaded region is
    what the rule removes. None when there are no text-rule matches."""
    import matplotlib

    scores = text_scores(data).filter(pl.col("rule") != "text_instance_id")
    if scores.height == 0:
        return None
    th, mm, _ = decision_rule(data)
    rules = [r for r in rule_order(data) if r in set(scores["rule"].to_list())]
    palette = ["#55a868", "#8172b3", "#c44e52", "#937860", "#da8bc3", "#64b5cd"]
    with matplotlib.rc_context(_RC):
        fig = _figure(10, min_h=3.4)
        ax = fig.add_subplot()
        top = max(float(scores["matched_ngrams"].max() or 1), float(mm or 1)) * 1.6
        if th is not None and mm is not None:
            ax.axvspan(th, 1.05, color="#eeeeee", zorder=0)
            ax.axhspan(mm, top, color="#eeeeee", zorder=0, label=f"removed: score ≥ {th:g} OR n-grams ≥ {mm}")
            ax.axvline(th, color="black", linestyle="--", linewidth=1.1)
            ax.axhline(mm, color="black", linestyle=":", linewidth=1.1)
        for i, rule in enumerate(rules):
            sub = scores.filter(pl.col("rule") == rule)
            ax.scatter(sub["score"].to_list(), [max(v, 1) for v in sub["matched_ngrams"].to_list()], s=10,
                       color=palette[i % len(palette)], label=rule, zorder=2)
        ax.set_yscale("log")
        ax.set_xlim(0, 1.05)
        ax.set_ylim(0.8, top)
        ax.set_xlabel("score (fraction of the reference item's n-grams found in the sample)")
        ax.set_ylabel("matched distinct n-grams (log)")
        ax.set_title("Decision rule and every text-rule match")
        ax.legend(frameon=False, fontsize=8, loc="lower right")
        ax.spines[["top", "right"]].set_visible(False)
    return fig


def figure_png(fig) -> bytes:
    """The figure as PNG bytes, without metadata (no software version, no date), so the bytes are stable."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------- writers


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _num(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.3f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _span(ex: Mapping[str, Any]) -> str:
    if ex.get("span_start") is None:
        return "–"
    return f"{_num(ex['span_start'])}–{_num(ex['span_end'])}"


def _counter(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else f"{v:.6g}" if isinstance(v, float) else str(v)


def _kind_role(ex: Mapping[str, Any]) -> str:
    return f"{ex.get('kind') or '–'} / {ex.get('role') or '–'}"


def _md_name(s: str) -> str:
    """A rule name as inline code when it is a plain identifier, else as escaped text."""
    return f"`{s}`" if re.fullmatch(r"[A-Za-z0-9_.-]+", s or "") else _md_cell(s)


def _md_cell(x: Any) -> str:
    s = _num(x) if not isinstance(x, str) else x
    s = html.escape(s, quote=False).replace("|", "\\|").replace("`", "\\`")
    s = s.replace("*", "\\*").replace("_", "\\_").replace("[", "\\[").replace("]", "\\]")
    return " ".join(s.split()) or " "


def _md_table(header: list[str], rows: list[list[Any]], align_right: set[int] = frozenset()) -> list[str]:
    out = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
           "|" + "|".join("---:" if i in align_right else "---" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return out


def _md_code(text: str) -> list[str]:
    fence = "`" * max(3, max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    return [fence + "text", text.rstrip("\n"), fence]


def _clip(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit:,} more characters)"


@dataclass
class _Report:
    title: str
    totals: dict[str, Any]
    rules: pl.DataFrame
    repos: pl.DataFrame
    matched: pl.DataFrame
    th: dict[str, float]
    counters: dict[str, float]
    examples: list[dict[str, Any]]
    max_examples: int
    has_scores: bool
    generated_at: str | None
    removals: pl.DataFrame = None
    settings: dict = field(default_factory=dict)
    decision: tuple = (None, None, None)


def _rule_rows(rules: pl.DataFrame) -> list[list[Any]]:
    return [
        [r["rule"], r["level"], r["removed"], _pct(r["share_of_read"]), r["matched_repos"], r["matched_instances"],
         r["score_min"], r["score_median"], r["score_max"]]
        for r in rules.iter_rows(named=True)
    ]


_RULE_HEADER = ["rule", "level", "removed", "% of read", "SWE-bench repos", "instances", "score min", "median",
                "max"]


def _settings_lines(rep: _Report) -> list[str]:
    """The run's settings in words (plain text; the writers escape it)."""
    st, (th, mm, rule) = rep.settings, rep.decision
    out = [f"Decision rule (text overlap): {rule}." if rule else
           "Decision rule: not recorded (no decontam.json in the folder)."]
    off = rep.counters.get("decontam.mirror_rules_off", 0)
    if st.get("mirror_rules") is False:
        out.append(f"WARNING: the mirror rules were OFF (--no-mirror-rules): {int(off):,} samples from git mirrors "
                   "were kept without their git history being checked for SWE-bench base or root commits.")
    elif st.get("mirror_rules"):
        out.append(f"Mirror rules: on (mirrors in {st.get('mirrors_dir')}); a sample whose mirror is missing is "
                   "quarantined as mirror_unavailable.")
    missing = st.get("repos_without_roots")
    if missing:
        out.append("No root commits are known for: " + ", ".join(missing) + " (their full-history copies are still "
                   "caught by mirror_base_commit, the Verified base commits; an early-history copy is not; add "
                   "roots with datakit decontam build-roots).")
    return out


_REMOVAL_HEADER = ["sample", "repo", "kind", "role", "rule", "matched", "score", "n-grams", "detail"]


def _removal_rows(frame: pl.DataFrame) -> list[list[Any]]:
    return [[r["sample_id"], r["sample_repo"], r.get("kind"), r.get("role"), r["rule"],
             r["matched_instance_id"] or r["matched_repo"], r["score"], r["matched_ngrams"], r.get("detail")]
            for r in frame.iter_rows(named=True)]


def _markdown(rep: _Report, plots: dict[str, str]) -> str:
    t = rep.totals
    L = [f"# {rep.title}", ""]
    if rep.generated_at:
        L += [f"Generated {_md_cell(rep.generated_at)}.", ""]
    L += ["## Totals", ""]
    L += _md_table(["", "samples"], [["read", t["read"]], ["kept", t["kept"]], ["quarantined", t["quarantined"]]]
                   + ([["filtered", t["filtered"]]] if t["filtered"] else []), {1})
    L += ["", (f"**Invariant:** {invariant_text(t)}. Every quarantined sample is kept whole in `quarantine/` with "
               "one match row in `matches/` saying which rule removed it and what it matched."), ""]
    L += ["## Settings", ""] + [f"- {'**' if x.startswith('WARNING') else ''}{_md_cell(x)}"
                                f"{'**' if x.startswith('WARNING') else ''}" for x in _settings_lines(rep)] + [""]
    L += ["## Removals per rule", ""]
    L += _md_table(_RULE_HEADER, _rule_rows(rep.rules), {2, 3, 4, 5, 6, 7, 8})
    L += [""] + [f"- {_md_name(r['rule'])} ({r['level']}): {_md_cell(r['description'])}"
                 for r in rep.rules.iter_rows(named=True)]
    L += ["", f"![Removals per rule]({plots['rules']})", ""]
    L += ["## Removals per repository", ""]
    if rep.repos.height:
        cols = rep.repos.columns
        L += _md_table(cols, [list(r) for r in rep.repos.iter_rows()], set(range(1, len(cols))))
        L += ["", f"![Removals per repository]({plots['repos']})", ""]
    else:
        L += ["Nothing was removed.", ""]
    L += ["### Per SWE-bench repository matched", ""]
    if rep.matched.height:
        L += _md_table(rep.matched.columns, [list(r) for r in rep.matched.iter_rows()], {1, 2})
    else:
        L += ["No matches."]
    L += ["", "## Overlap scores of text-rule matches", ""]
    if rep.has_scores:
        th = ", ".join(f"{'all text rules' if k == '*' else k}: {v:g}" for k, v in sorted(rep.th.items()))
        L += [f"Threshold — {th}." if th else "The stats do not record a threshold, so no threshold line is drawn.",
              "", f"![Overlap scores]({plots['scores']})", ""]
        if rep.decision[2]:
            L += [f"**{_md_cell(rep.decision[2])}.** A match below the score threshold is removed by its n-gram "
                  "count alone (a verbatim passage of a long item); the chart shows both.", ""]
        if "decision" in plots and rep.decision[0] is not None:
            L += [f"![Decision rule]({plots['decision']})", ""]
    else:
        L += ["No text-rule matches.", ""]
    if rep.counters:
        L += ["### Counters (stats.json)", ""]
        L += _md_table(["counter", "value"], [[k, _counter(v)] for k, v in sorted(rep.counters.items())], {1}) + [""]
    L += ["## Every removal", "", f"{rep.removals.height:,} quarantined samples, by rule, strongest first.", ""]
    if rep.removals.height:
        L += _md_table(_REMOVAL_HEADER, _removal_rows(rep.removals), {6, 7}) + [""]
    L += ["## Examples", "", (f"Every text-rule match and up to {rep.max_examples} per other rule, strongest score "
                              "first. The sample's matched span beside the SWE-bench reference span it quotes."), ""]
    if not rep.examples:
        L += ["No examples: nothing was removed.", ""]
    current = None
    for ex in rep.examples:
        if ex["rule"] != current:
            current = ex["rule"]
            L += [f"### {_md_name(current)}", ""]
        L += [f"#### {_md_cell(ex['sample_id'])}", ""]
        L += _md_table(["field", "value"], [
            ["sample repo", ex["sample_repo"]], ["kind / role", _kind_role(ex)],
            ["matched instance", ex["matched_instance_id"]], ["matched repo", ex["matched_repo"]],
            ["score", ex["score"]], ["matched n-grams", ex["matched_ngrams"]],
            ["span", _span(ex)], ["detail", ex.get("detail")],
        ])
        L += ["", "Sample span:", ""]
        L += _md_code(ex["span_text"]) if ex["span_text"] is not None else ["*(no text span)*"]
        L += ["", f"Reference ({ex['reference_field'] or '–'}):", ""]
        if ex["reference_text"] is not None:
            L += _md_code(_clip(ex["reference_text"], MAX_REFERENCE_CHARS))
        else:
            what = ex["matched_instance_id"] or ex["matched_repo"] or "–"
            L += [f"*{_md_cell(what)}* — {_md_cell(ex['reference_note'])}"]
        L += [""]
    return "\n".join(L).rstrip("\n") + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;
color:#222}
h1,h2,h3{font-weight:600}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f5f5f5}
.inv{padding:.5em 1em;border-left:4px solid #55a868;background:#f3faf4}.inv.bad{border-color:#c44e52;background:#fcf1f1}
img{max-width:100%;height:auto}code{background:#f5f5f5;padding:0 .2em}
.ex{border:1px solid #ddd;border-radius:4px;margin:1em 0;padding:.5em 1em}
.sbs{display:grid;grid-template-columns:1fr 1fr;gap:1em}.sbs>div{min-width:0}
pre{background:#f8f8f8;border:1px solid #eee;padding:.5em;overflow:auto;max-height:28em;white-space:pre-wrap;
word-break:break-all;font-size:.8em}
.note{color:#666;font-style:italic}.warn{color:#a00;font-weight:600}.filters input,.filters select{font-size:.9em}
"""


def _h(x: Any) -> str:
    return html.escape(x if isinstance(x, str) else _num(x), quote=True)


def _html_table(header: list[str], rows: list[list[Any]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f'<th{" class=n" if i in numeric else ""}>{_h(c)}</th>' for i, c in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{_h(c)}</td>' for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_h(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


# filter by rule / repository / minimum score and page through the removal list; the data is the table itself
# (escaped cells), so the script never touches sample text as HTML
_SCRIPT = """
(function(){var t=document.getElementById('rm');if(!t)return;var rows=[].slice.call(t.tBodies[0].rows);
var f={rule:document.getElementById('f-rule'),repo:document.getElementById('f-repo'),score:document.getElementById('f-score')};
var page=0,per=%d,info=document.getElementById('f-info');
function match(r){var s=parseFloat(r.cells[6].textContent);return(!f.rule.value||r.cells[4].textContent===f.rule.value)&&
(!f.repo.value||r.cells[1].textContent.toLowerCase().indexOf(f.repo.value.toLowerCase())>=0)&&
(!f.score.value||(!isNaN(s)&&s>=parseFloat(f.score.value)));}
function draw(){var m=rows.filter(match),n=Math.max(1,Math.ceil(m.length/per));page=Math.min(page,n-1);
rows.forEach(function(r){r.style.display='none';});m.slice(page*per,(page+1)*per).forEach(function(r){r.style.display='';});
info.textContent=m.length+' of '+rows.length+' removals; page '+(page+1)+' of '+n;}
['rule','repo','score'].forEach(function(k){f[k].addEventListener('input',function(){page=0;draw();});});
document.getElementById('f-prev').onclick=function(){page=Math.max(0,page-1);draw();};
document.getElementById('f-next').onclick=function(){page+=1;draw();};draw();})();
""" % PAGE_ROWS


def _removal_list(frame: pl.DataFrame) -> str:
    if frame.height == 0:
        return "<p>Nothing was removed.</p>"
    rules = sorted(set(frame["rule"].to_list()))
    controls = ('<p class="filters">rule <select id="f-rule"><option value="">(all)</option>' +
                "".join(f"<option>{_h(r)}</option>" for r in rules) + '</select> repository <input id="f-repo" '
                'size="24" placeholder="contains…"> score ≥ <input id="f-score" size="5" placeholder="0.0"> '
                '<button id="f-prev">◀</button> <button id="f-next">▶</button> <span id="f-info"></span></p>')
    table = _html_table(_REMOVAL_HEADER, _removal_rows(frame), {6, 7}).replace("<table>", '<table id="rm">', 1)
    return controls + table + f"<script>{_SCRIPT}</script>"


def _html(rep: _Report, pngs: dict[str, bytes]) -> str:
    t = rep.totals
    P = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         '<meta name="viewport" content="width=device-width,initial-scale=1">',
         f"<title>{_h(rep.title)}</title><style>{_CSS}</style></head><body>", f"<h1>{_h(rep.title)}</h1>"]
    if rep.generated_at:
        P.append(f"<p>Generated {_h(rep.generated_at)}.</p>")
    P.append("<h2>Totals</h2>")
    P.append(_html_table(["", "samples"], [["read", t["read"]], ["kept", t["kept"]], ["quarantined", t["quarantined"]]]
                         + ([["filtered", t["filtered"]]] if t["filtered"] else []), {1}))
    P.append(f'<p class="inv{"" if t["invariant_holds"] else " bad"}"><b>Invariant:</b> {_h(invariant_text(t))}. '
             "Every quarantined sample is kept whole in <code>quarantine/</code> with one match row in "
             "<code>matches/</code> saying which rule removed it and what it matched.</p>")
    P.append("<h2>Settings</h2><ul>" + "".join(
        f'<li{" class=warn" if x.startswith("WARNING") else ""}>{_h(x)}</li>' for x in _settings_lines(rep)) + "</ul>")
    P.append("<h2>Removals per rule</h2>")
    P.append(_html_table(_RULE_HEADER, _rule_rows(rep.rules), {2, 3, 4, 5, 6, 7, 8}))
    P.append("<ul>" + "".join(f"<li><code>{_h(r['rule'])}</code> ({_h(r['level'])}): {_h(r['description'])}</li>"
                              for r in rep.rules.iter_rows(named=True)) + "</ul>")
    P.append(_img(pngs["rules"], "Removals per rule"))
    P.append("<h2>Removals per repository</h2>")
    if rep.repos.height:
        cols = rep.repos.columns
        P.append(_html_table(cols, [list(r) for r in rep.repos.iter_rows()], set(range(1, len(cols)))))
        P.append(_img(pngs["repos"], "Removals per repository"))
    else:
        P.append("<p>Nothing was removed.</p>")
    P.append("<h3>Per SWE-bench repository matched</h3>")
    P.append(_html_table(rep.matched.columns, [list(r) for r in rep.matched.iter_rows()], {1, 2})
             if rep.matched.height else "<p>No matches.</p>")
    P.append("<h2>Overlap scores of text-rule matches</h2>")
    if rep.has_scores:
        th = ", ".join(f"{'all text rules' if k == '*' else k}: {v:g}" for k, v in sorted(rep.th.items()))
        P.append(f"<p>Threshold — {_h(th)}.</p>" if th else
                 "<p>The stats do not record a threshold, so no threshold line is drawn.</p>")
        P.append(_img(pngs["scores"], "Overlap scores of text-rule matches"))
        if rep.decision[2]:
            P.append(f"<p><b>{_h(rep.decision[2])}.</b> A match below the score threshold is removed by its n-gram "
                     "count alone (a verbatim passage of a long item); the chart shows both.</p>")
        if "decision" in pngs:
            P.append(_img(pngs["decision"], "Decision rule and every text-rule match"))
    else:
        P.append("<p>No text-rule matches.</p>")
    if rep.counters:
        P.append("<h3>Counters (stats.json)</h3>")
        P.append(_html_table(["counter", "value"], [[k, _counter(v)] for k, v in sorted(rep.counters.items())], {1}))
    P.append("<h2>Every removal</h2>")
    P.append(_removal_list(rep.removals))
    P.append("<h2>Examples</h2>")
    P.append(f"<p>Every text-rule match and up to {rep.max_examples} per other rule, strongest score first. The "
             "sample's matched span (left) beside the SWE-bench reference span it quotes (right).</p>")
    if not rep.examples:
        P.append("<p>No examples: nothing was removed.</p>")
    current = None
    for ex in rep.examples:
        if ex["rule"] != current:
            current = ex["rule"]
            P.append(f"<h3><code>{_h(current)}</code></h3>")
        meta = _html_table(["sample", "repo", "kind / role", "instance", "matched repo", "score", "n-grams", "span",
                            "detail"],
                           [[ex["sample_id"], ex["sample_repo"], _kind_role(ex),
                             ex["matched_instance_id"], ex["matched_repo"], ex["score"], ex["matched_ngrams"],
                             _span(ex), ex.get("detail")]], {5, 6})
        left = (f"<pre>{_h(ex['span_text'])}</pre>" if ex["span_text"] is not None
                else '<p class="note">(no text span)</p>')
        if ex["reference_text"] is not None:
            right = f"<pre>{_h(_clip(ex['reference_text'], MAX_REFERENCE_CHARS))}</pre>"
        else:
            what = ex["matched_instance_id"] or ex["matched_repo"] or "–"
            right = (f'<p><code>{_h(what)}</code></p>'
                     f'<p class="note">{_h(ex["reference_note"])}</p>')
        P.append(f'<div class="ex">{meta}<div class="sbs"><div><b>Sample span</b>{left}</div>'
                 f'<div><b>Reference ({_h(ex["reference_field"] or "–")})</b>{right}</div></div></div>')
    P.append("</body></html>")
    return "\n".join(P) + "\n"


def write_audit(
    dir: str | Path,
    out_dir: str | Path | None = None,
    reference: Mapping[str, Mapping[str, str]] | None = None,
    max_examples: int | None = 20,
    *,
    threshold: float | Mapping[str, float] | None = None,
    generated_at: str | None = None,
    top_repos: int = 30,
) -> tuple[Path, Path]:
    """Write `<out_dir or dir/audit>/audit.md` (+ its PNG charts beside it) and `audit.html` (self-contained);
    returns (md path, html path). `reference`: {instance_id: {problem_statement, patch, test_patch}} to show the
    reference text beside each matched span. `threshold` overrides the one read from the stats' counters;
    `generated_at` is printed when given (nothing time-dependent otherwise: same input, same bytes)."""
    data = load_audit(dir)
    out = Path(out_dir) if out_dir is not None else data.dir / "audit"
    out.mkdir(parents=True, exist_ok=True)
    if threshold is None and data.settings.get("threshold") is not None:
        threshold = data.settings["threshold"]
    th = thresholds(data) if threshold is None else (
        dict(threshold) if isinstance(threshold, Mapping) else {"*": float(threshold)})
    stage = data.stats.get("stage") or data.dir.name
    rep = _Report(
        title=f"Decontamination audit — stage {stage}",
        totals=totals(data),
        rules=by_rule(data),
        repos=by_repo(data),
        matched=by_matched_repo(data),
        th=th,
        counters=data.counters,
        examples=examples(data, reference, max_examples),
        max_examples=max_examples,
        has_scores=text_scores(data).height > 0,
        generated_at=generated_at,
        removals=removals(data),
        settings=data.settings,
        decision=decision_rule(data),
    )
    pngs = {"rules": figure_png(plot_by_rule(data))}
    if rep.repos.height:
        pngs["repos"] = figure_png(plot_by_repo(data, top=top_repos))
    scores_fig = plot_scores(data, th) if rep.has_scores else None
    if scores_fig is not None:
        pngs["scores"] = figure_png(scores_fig)
    decision_fig = plot_decision(data) if rep.has_scores and rep.decision[0] is not None else None
    if decision_fig is not None:
        pngs["decision"] = figure_png(decision_fig)
    for key, name in PLOT_FILES.items():
        path = out / name
        if key in pngs:
            path.write_bytes(pngs[key])
        elif path.exists():
            path.unlink()  # a stale chart from an earlier run
    md_path, html_path = out / "audit.md", out / "audit.html"
    md_path.write_text(_markdown(rep, PLOT_FILES), encoding="utf-8")
    html_path.write_text(_html(rep, pngs), encoding="utf-8")
    return md_path, html_path


__all__ = [
    "RULES", "AuditData", "AuditError", "by_matched_repo", "by_repo", "by_rule", "check", "decision_rule",
    "examples", "figure_png", "plot_decision", "reference_span", "removals",
    "invariant_text", "load_audit", "plot_by_repo", "plot_by_rule", "plot_scores", "text_scores", "thresholds",
    "totals", "write_audit",
]
