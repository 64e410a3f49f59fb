"""`datakit stats DIR`: the figures of `collect` as terminal tables, JSON, and one self-contained HTML report.

`write_report(dir)` writes `corpus_stats.html` and `corpus_stats.json` into `<run>/corpus_stats/` (for a single
stage folder: `<its parent>/corpus_stats/<stage>/`), never into a stage folder: the runner owns those (a stage
rerun with other options wipes its folder, and a stage's files are its downstream's input). Both are rewritten only
when their text changes, and hold no timestamp and no absolute path, so the same run gives the same bytes and a
rerun rewrites nothing. The HTML reuses the decontamination audit's style and table helpers; its charts are
`datakit.stats.svg`; its only link is the relative one to each decontam stage's `audit/audit.html` (written by
`datakit audit`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl

from datakit.stats import svg
from datakit.stats.collect import (RunStats, decontamination, histogram, load, reasons, repositories,
                                   samples_by_source, set_aside_by_repo, stage_table, tokens_by_source, upsampling)

OUT_DIR = "corpus_stats"
HTML_FILE, JSON_FILE = "corpus_stats.html", "corpus_stats.json"
TOP_REPOS = 20  # per stage in the terminal and the charts
HTML_ROWS = 200  # per stage in the HTML's repository tables; every repository is in the JSON
AUDIT = Path("audit") / "audit.html"


def default_out(rs: RunStats) -> Path:
    return rs.root.parent / OUT_DIR / rs.root.name if rs.single else rs.root / OUT_DIR


def _audit_link(stage_path: Path, out: Path) -> str | None:
    """The audit report of a decontam stage, relative to the report's folder (None until `datakit audit` ran)."""
    target = stage_path / AUDIT
    return Path(os.path.relpath(target.resolve(), out.resolve())).as_posix() if target.is_file() else None


def token_totals(rs: RunStats) -> list[dict[str, Any]]:
    """Per tokens / export stage (and validation split), the manifest's totals."""
    out = []
    for s in rs.stages:
        for split, m in (("train", s.manifest), ("valid", s.valid_manifest)):
            if m:
                out.append({"stage": s.name, "split": split, "format": m.get("format"), "rows": m.get("rows"),
                            "documents": m.get("documents"), "tokens": m.get("tokens"),
                            "padding_tokens": m.get("padding_tokens"), "seq_len": m.get("seq_len"),
                            "tokenizer": (m.get("tokenizer") or {}).get("name")})
    return out


def figures(rs: RunStats, out: Path | None = None) -> dict[str, Any]:
    """Every figure of the report, JSON-ready (what `--json` prints and corpus_stats.json holds)."""
    out = out or default_out(rs)
    decon = decontamination(rs)
    for d in decon:
        path = rs.stage(d["stage"]).path
        # the folder as the run names it (no absolute path: the same run gives the same bytes anywhere)
        d["folder"] = path.name if rs.single else f"{rs.root.name}/{path.name}"
        d["audit"] = _audit_link(path, out)
    return {
        "dir": rs.root.name, "single_stage": rs.single,
        "stages": stage_table(rs).to_dicts(), "reasons": reasons(rs).to_dicts(),
        "set_aside": set_aside_by_repo(rs).to_dicts(),
        "samples": samples_by_source(rs).to_dicts(), "tokens": tokens_by_source(rs).to_dicts(),
        "token_totals": token_totals(rs), "upsampling": upsampling(rs).to_dicts(),
        "repositories": repositories(rs).to_dicts(), "decontamination": decon,
    }


def to_json(fig: dict[str, Any]) -> str:
    return json.dumps(fig, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------------------------------------- the charts


def _top(frame: pl.DataFrame, stage: str, by: str, n: int = TOP_REPOS) -> pl.DataFrame:
    return frame.filter(pl.col("stage") == stage).sort(by, "repo", descending=[True, False]).head(n)


def plot_reasons(rs: RunStats) -> str | None:
    r = reasons(rs)
    if r.height == 0:
        return None
    labels = [f"{a['stage']} · {a['unit']} · {a['reason']}" for a in r.iter_rows(named=True)]
    series = {o: [a["count"] if a["outcome"] == o else 0 for a in r.iter_rows(named=True)]
              for o in ("quarantined", "filtered")}
    return svg.bars(labels, series, title="Quarantine and filter reasons by stage", xlabel="units (stats.json)")


def plot_tokens_by_source(rs: RunStats, stage: str) -> str | None:
    t = tokens_by_source(rs).filter((pl.col("stage") == stage) & (pl.col("split") == "train"))
    t = t.group_by("source").agg(pl.col("tokens").sum(), pl.col("unique_tokens").sum()).sort("source")
    if t.height == 0:
        return None
    return svg.bars(t["source"].to_list(), {"unique": t["unique_tokens"].to_list(),
                                            "up-sampled copies": (t["tokens"] - t["unique_tokens"]).to_list()},
                    title=f"Tokens by source — {stage}", xlabel="tokens in the shards")


def _length_chart(frame: pl.DataFrame, col: str, title: str, xlabel: str, ylabel: str) -> str | None:
    if frame.height == 0 or frame[col].null_count() == frame.height:
        return None
    sources = sorted(set(frame["source"].to_list()))
    per = {s: dict(histogram(frame.filter(pl.col("source") == s)[col].drop_nulls().to_list())) for s in sources}
    lows = [low for low, _ in histogram(frame[col].drop_nulls().to_list())]
    names = [f"{svg._num(low)}–{svg._num(2 * low)}" if low else "0" for low in lows]
    return svg.histogram(names, {s: [per[s].get(low, 0) for low in lows] for s in sources}, title=title,
                         xlabel=xlabel, ylabel=ylabel)


def plot_token_lengths(rs: RunStats, stage: str) -> str | None:
    d = rs.documents.filter((pl.col("stage") == stage) & (pl.col("split") == "train") & (pl.col("repeat") == 0))
    return _length_chart(d, "tokens", f"Document lengths in tokens — {stage}", "tokens per document (bins ×2)",
                         "documents")


def plot_char_lengths(rs: RunStats, stage: str) -> str | None:
    r = rs.records.filter(pl.col("stage") == stage)
    return _length_chart(r, "chars", f"Sample lengths in characters — {stage}", "characters of text (bins ×2)",
                         "samples")


def plot_top_repos(rs: RunStats, stage: str) -> str | None:
    kind = rs.stage(stage).kind
    if kind == "tokens":
        d = rs.documents.filter((pl.col("stage") == stage) & (pl.col("split") == "train"))
        value = "tokens"
    else:
        d = rs.records.filter(pl.col("stage") == stage).with_columns(pl.lit(1).alias("rows"))
        value = "rows"
    if d.height == 0:
        return None
    per = d.group_by("repo", "source").agg(pl.col(value).sum())
    top = per.group_by("repo").agg(pl.col(value).sum()).sort(value, "repo", descending=[True, False]).head(TOP_REPOS)
    repos, sources = top["repo"].to_list(), sorted(set(per["source"].to_list()))
    cell = {(r["repo"], r["source"]): r[value] for r in per.iter_rows(named=True)}
    return svg.bars(repos, {s: [cell.get((r, s), 0) for r in repos] for s in sources},
                    title=f"Top repositories by {value} — {stage}", xlabel=value)


# ------------------------------------------------------------------------------------------------- terminal


def _cells(row: dict[str, Any], cols: list[str]) -> list[str]:
    from datakit.pipeline.progress import human

    return ["-" if row.get(c) is None else human(row[c]) if isinstance(row[c], (int, float)) and
            not isinstance(row[c], bool) else str(row[c]) for c in cols]


def _table(title: str, rows: list[dict[str, Any]], cols: list[str], caption: str | None = None):
    from rich.table import Table

    t = Table(title=title, caption=caption, caption_justify="left")
    numeric = {c for c in cols if any(isinstance(r.get(c), (int, float)) for r in rows)}
    for c in cols:
        t.add_column(c, justify="right" if c in numeric else "left")
    for r in rows:
        t.add_row(*_cells(r, cols))
    return t


LENGTHS = ["min", "p50", "p90", "p99", "max"]


def _largest_first(rows: list[dict[str, Any]], size=lambda r: r["rows"]) -> list[dict[str, Any]]:
    """The rows, stages in their order, each stage's largest first (then by repository)."""
    order = {stage: i for i, stage in enumerate(dict.fromkeys(r["stage"] for r in rows))}
    return sorted(rows, key=lambda r: (order[r["stage"]], -size(r), r["repo"]))


def _top_per_stage(rows: list[dict[str, Any]], n: int = TOP_REPOS) -> list[dict[str, Any]]:
    """The first n rows of each stage (the rows come grouped by stage, largest first)."""
    seen: dict[str, int] = {}
    out = []
    for r in rows:
        seen[r["stage"]] = seen.get(r["stage"], 0) + 1
        if seen[r["stage"]] <= n:
            out.append(r)
    return out


def print_report(fig: dict[str, Any], console) -> None:
    """The figures as rich tables (stdout)."""
    console.print(_table("stages (stats.json; rows: records on disk)", fig["stages"],
                         ["stage", "type", "unit", "read", "written", "quarantined", "filtered", "rows"]))
    if fig["reasons"]:
        console.print(_table("quarantine and filter reasons", fig["reasons"],
                             ["stage", "unit", "outcome", "reason", "count"]))
    by_repo: dict[tuple[str, str], dict[str, Any]] = {}
    for r in fig["set_aside"]:
        row = by_repo.setdefault((r["stage"], r["repo"]), {"stage": r["stage"], "repo": r["repo"], "quarantined": 0,
                                                           "filtered": 0})
        row[r["outcome"]] += r["rows"]
    largest = _largest_first(list(by_repo.values()), lambda r: r["quarantined"] + r["filtered"])
    if largest:
        console.print(_table(f"quarantined / filtered on disk by repository (top {TOP_REPOS})",
                             _top_per_stage(largest), ["stage", "repo", "quarantined", "filtered"]))
    if fig["samples"]:
        console.print(_table("records by source and role (length: characters of text)", fig["samples"],
                             ["stage", "source", "role", "rows", "repos", *LENGTHS]))
    if fig["tokens"]:
        console.print(_table("tokens by source and role (length: tokens per unique document)", fig["tokens"],
                             ["stage", "split", "source", "role", "documents", "tokens", "unique_documents",
                              "unique_tokens", *LENGTHS]))
    if fig["upsampling"]:
        console.print(_table("up-sampling and the mixture (manifest)", fig["upsampling"],
                             ["stage", "source", "upsample", "requested_tokens", "unique_tokens", "tokens",
                              "repeated_documents", "left_out_documents"]))
    token_stages = {t["stage"] for t in fig["tokens"]}
    repos = [r for r in fig["repositories"] if not token_stages or r["stage"] in token_stages]
    shown = _top_per_stage(repos)  # repositories() lists each stage's largest first
    if shown:
        console.print(_table(f"top repositories ({TOP_REPOS} per stage{', tokens stages' if token_stages else ''})",
                             shown, ["stage", "repo", *(["documents", "tokens"] if token_stages else ["rows"])]))
    if fig["decontamination"]:
        rows = [{**d, "rules": ", ".join(f"{r['rule']} {r['removed']:,}" for r in d["rules"]) or "-",
                 "audit": d["audit"] or f"not written yet: datakit audit {d['folder']}"} for d in fig["decontamination"]]
        console.print(_table("decontamination", rows, ["stage", "read", "kept", "quarantined", "rules", "audit"]))


# ------------------------------------------------------------------------------------------------- HTML


_CSS_EXTRA = "svg.chart{display:block;margin:.5em 0;max-width:100%;height:auto}nav a{margin-right:1em}"


def _section(title: str, anchor: str) -> str:
    from datakit.decontam.audit import _h

    return f'<h2 id="{anchor}">{_h(title)}</h2>'


def _rows(frame_rows: list[dict[str, Any]], cols: list[str]) -> tuple[list[str], list[list[Any]], set[int]]:
    numeric = {i for i, c in enumerate(cols) if any(isinstance(r.get(c), (int, float)) for r in frame_rows)}
    return cols, [[r.get(c) for c in cols] for r in frame_rows], numeric


def render_html(rs: RunStats, fig: dict[str, Any]) -> str:
    """The report as one self-contained HTML page: the audit's CSS and tables, inline SVG charts, no script."""
    from datakit.decontam.audit import _CSS, _h, _html_table

    def table(rows, cols):
        return _html_table(*_rows(rows, cols)) if rows else "<p>None.</p>"

    def top(rows, cols):  # each stage's largest rows; all of them are in the JSON
        shown = _top_per_stage(rows, HTML_ROWS)
        more = len(rows) - len(shown)
        return table(shown, cols) + (f"<p>… and {more:,} more rows in {JSON_FILE}.</p>" if more > 0 else "")

    def chart(s):
        return s or ""

    title = f"Corpus statistics — {fig['dir']}"
    P = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         '<meta name="viewport" content="width=device-width,initial-scale=1">',
         f"<title>{_h(title)}</title><style>{_CSS}{_CSS_EXTRA}</style></head><body>", f"<h1>{_h(title)}</h1>",
         '<nav><a href="#stages">stages</a><a href="#reasons">reasons</a><a href="#tokens">tokens</a>'
         '<a href="#records">records</a><a href="#repos">repositories</a><a href="#decontam">decontamination</a></nav>',
         "<p>From the stage folders' <code>stats.json</code>, records, token shards and manifests. A source is the "
         "mixture source of a sample's kind; lengths are the nearest-rank percentiles (tokens: per unique "
         "document, chunks summed; records: characters of <code>text</code>).</p>"]
    P += [_section("Stages", "stages"),
          table(fig["stages"], ["stage", "type", "unit", "read", "written", "quarantined", "filtered", "rows",
                                "quarantine_rows"])]
    P += [_section("Quarantine and filter reasons", "reasons"), chart(plot_reasons(rs)),
          table(fig["reasons"], ["stage", "unit", "outcome", "reason", "count"]),
          "<h3>Quarantined and filtered records on disk, by repository</h3><p>From each stage's "
          "<code>quarantine/</code> and <code>filtered/</code> folders (the input record kept whole names its "
          "repository); a stage that only counts what it filters has no rows here for it.</p>",
          top(_largest_first(fig["set_aside"]), ["stage", "repo", "outcome", "reason", "source", "role", "rows"])]
    P.append(_section("Tokens", "tokens"))
    P.append(table(fig["token_totals"], ["stage", "split", "format", "rows", "documents", "tokens",
                                         "padding_tokens", "seq_len", "tokenizer"]))
    for s in rs.of_kind("tokens"):
        P += [f"<h3>{_h(s.name)}</h3>", chart(plot_tokens_by_source(rs, s.name)),
              table([t for t in fig["tokens"] if t["stage"] == s.name],
                    ["split", "source", "role", "documents", "tokens", "unique_documents", "unique_tokens", *LENGTHS]),
              chart(plot_token_lengths(rs, s.name)), "<h4>Up-sampling and the mixture (manifest)</h4>",
              table([u for u in fig["upsampling"] if u["stage"] == s.name],
                    ["source", "upsample", "requested_tokens", "unique_documents", "documents", "unique_tokens",
                     "tokens", "repeated_documents", "left_out_documents", "over_budget_documents",
                     "downsampled_documents", "too_long_documents"])]
    P.append(_section("Records by source and role", "records"))
    for s in rs.stages:
        rows = [r for r in fig["samples"] if r["stage"] == s.name]
        if rows:
            P += [f"<h3>{_h(s.name)}</h3>", table(rows, ["source", "role", "rows", "repos", *LENGTHS]),
                  chart(plot_char_lengths(rs, s.name))]
    P.append(_section("Repositories", "repos"))
    for s in rs.stages:
        rows = [r for r in fig["repositories"] if r["stage"] == s.name]
        if rows:
            cols = ["repo", "documents", "tokens"] if s.kind == "tokens" else ["repo", "rows"]
            P += [f"<h3>{_h(s.name)}</h3>", chart(plot_top_repos(rs, s.name)), top(rows, cols)]
    P.append(_section("Decontamination", "decontam"))
    if not fig["decontamination"]:
        P.append("<p>No decontam stage in this folder.</p>")
    for d in fig["decontamination"]:
        link = (f'<a href="{_h(d["audit"])}">the audit report</a> (every removal, per rule and repository, with '
                "examples)" if d["audit"] else
                f"the audit report is not written yet: <code>datakit audit {_h(d['folder'])}</code> writes it, "
                "and the next <code>datakit stats</code> links it")
        P += [f"<h3>{_h(d['stage'])}</h3>", f"<p>{_h(d['invariant'])}; {link}.</p>",
              table(d["rules"], ["rule", "level", "removed"]), table(d["repos"], ["repo", "removed", "kept"])]
    P.append("</body></html>")
    return "\n".join(P) + "\n"


def write_report(dir: str | Path, out: str | Path | None = None) -> tuple[Path, Path, dict[str, Any]]:
    """Write corpus_stats.html and corpus_stats.json (each only when its text changes); returns their paths and
    the figures."""
    from datakit.pipeline.runner import _write_if_changed

    rs = load(dir)
    folder = Path(out) if out is not None else default_out(rs)
    folder.mkdir(parents=True, exist_ok=True)
    fig = figures(rs, folder)
    html_path, json_path = folder / HTML_FILE, folder / JSON_FILE
    _write_if_changed(json_path, to_json(fig))
    _write_if_changed(html_path, render_html(rs, fig))
    return html_path, json_path, fig


__all__ = ["default_out", "figures", "plot_char_lengths", "plot_reasons", "plot_token_lengths",
           "plot_tokens_by_source", "plot_top_repos", "print_report", "render_html", "to_json", "token_totals",
           "write_report"]
