"""`datakit plan RECIPE`: what a recipe will make and cost, before it runs at scale.

1. The stages in order, with their inputs and output folders (from the recipe alone).
2. A *sample run*: the recipe runs on its first N repositories (`--sample-repos`, default 20) into a temporary
   folder with the local executor; every stage's documents, tokens per source and bytes on disk are measured
   there and scaled by (repositories in the recipe / repositories sampled). Stages that do not read a repository
   list (GH Archive hours, synthetic files) are run whole in the sample and scaled by 1, and say so.
3. A cost projection: core-hours per stage = the stage's projected work / a throughput measured by a benchmark
   (`datakit/data/throughputs.json`, written by `benchmarks/ship_figures.py` from `benchmarks/results/*.json`;
   every figure names its file and key), and the wall time on `--nodes` × `--cores` (stages run one after the
   other; each spreads over every core).
Every number printed names where it comes from: `sample×k` (measured on the sample, scaled by k), or the
benchmark figure.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from datakit.recipe import Recipe

REPO_SOURCES = ("sources.git", "sources.github")


@dataclass
class StagePlan:
    name: str
    type: str
    inputs: list[str]
    output: str
    documents: float | None = None
    tokens: dict[str, float] = field(default_factory=dict)  # per mixture source
    disk_bytes: float | None = None
    work: float | None = None  # in the figure's unit
    work_unit: str = ""
    core_hours: float | None = None
    scale: float = 1.0
    provenance: str = ""  # where documents / tokens / disk come from
    figure: str = ""  # where the throughput comes from


def throughputs() -> dict:
    """The shipped benchmark figures: {stage type: {value, unit, file, key, note}}."""
    text = resources.files("datakit").joinpath("data/throughputs.json").read_text(encoding="utf-8")
    return json.loads(text)["figures"]


def _rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in sorted(folder.glob("*.parquet")))


def _disk(folder: Path) -> int:
    """The stage's data bytes: its state and its dataset card (a few KiB whatever the size) are not scaled."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and ".datakit" not in p.parts
               and p.relative_to(folder) != Path("README.md"))


def _text_mb(folder: Path, column: str = "text") -> float:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    total = 0
    for p in sorted(folder.glob("*.parquet")):
        table = pq.read_table(p, columns=[column])
        total += pc.sum(pc.binary_length(table[column])).as_py() or 0
    return total / 1e6


def _total_repos(recipe: Recipe, sample_root: Path, failed: dict[str, str]) -> int:
    """How many repositories the recipe's repo-list sources read (their inputs as the sample run made them)."""
    from datakit.pipeline.stages import StageContext
    from datakit.sources.stages import repo_specs

    total = 0
    for spec in recipe.stages:
        if spec.type.type_name not in REPO_SOURCES or any(i in failed for i in spec.inputs):
            continue
        inp = None
        if spec.input is not None:
            names = {s.name for s in recipe.stages}
            inp = (sample_root / spec.input) if spec.input in names else Path(spec.input).resolve()
        ctx = StageContext(spec.name, sample_root / spec.name, inp, sample_root, sample_root / "mirrors")
        total += len(repo_specs(list(getattr(spec.options, "repos", []) or []), ctx))
    return total


def _work(spec_type: str, out: Path, stats: dict, tokens: dict[str, float]) -> tuple[float | None, str]:
    """The stage's work in its throughput figure's unit, measured on the sample."""
    units = stats.get("units", {})
    if spec_type in ("sources.git", "sources.github", "samples.agentless", "bundles.commits"):
        key = "pulls" if "pulls" in units else next(iter(units), None)
        if spec_type == "samples.agentless":
            return float(max((u.get("read", 0) for u in units.values()), default=0)), "PRs"
        return float(units.get(key, {}).get("read", 0)) if key else None, "PRs"
    if spec_type == "sources.gharchive":
        return float(stats.get("counters", {}).get("lines.read", 0)), "events"
    if spec_type == "decontam":
        # the text it read: kept samples' text, plus the quarantined records (JSON: an upper bound)
        return _text_mb(out) + _text_mb(out / "quarantine", "record"), "MB"
    if spec_type in ("tokens", "export.megatron"):
        return float(sum(tokens.values())), "tokens"
    if spec_type in ("synth.ingest", "sft.agent"):
        return float(sum(u.get("read", 0) for u in units.values())), "rows"
    if spec_type in ("dedup", "redact"):
        return float(sum(u.get("read", 0) for u in units.values())), "samples"
    if spec_type == "sft.agentless":
        return float(units.get("generations", {}).get("read", 0)), "rows"
    return None, ""


def plan_recipe(recipe: Recipe, sample_repos: int = 20, nodes: int = 1, cores: int = 32,
                keep: Path | None = None) -> tuple[list[StagePlan], dict]:
    """Run the sample, measure, project. Returns the per-stage plans and the totals."""
    from datakit.pipeline.runner import run_recipe
    from datakit.recipe import parse_recipe

    figures = throughputs()
    tmp = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="datakit-plan-"))
    try:
        sample = parse_recipe(_sample_data(recipe, tmp), f"plan sample of {recipe.name}", base_output=str(tmp))
        sample.sample_repos = sample_repos
        failed: dict[str, str] = {}  # stage → why it has no sample (it failed, or an input of it did)
        for sspec in sample.stages:
            broken = [i for i in sspec.inputs if i in failed]
            if broken:
                failed[sspec.name] = f"input {broken[0]} has no sample"
                continue
            try:
                run_recipe(sample, only=[sspec.name], console=None)
            except Exception as exc:  # a source that needs the network or a path of another machine
                failed[sspec.name] = " ".join(str(exc).split())[:200]
        total = _total_repos(recipe, tmp, failed)
        sampled = min(sample_repos, total)
        plans = []
        for spec, sspec in zip(recipe.stages, sample.stages):
            out = sspec.output
            if spec.name in failed:
                p = StagePlan(spec.name, spec.type.type_name, list(spec.inputs), str(spec.output),
                              provenance=f"not sampled: {failed[spec.name]}",
                              figure=(figures.get(spec.type.type_name) or {}).get("what", ""))
                _from_budgets(p, spec, recipe, figures)
                plans.append(p)
                continue
            stats = json.loads((out / "stats.json").read_text()) if (out / "stats.json").is_file() else {}
            reads_repos = spec.type.type_name not in ("sources.gharchive", "synth.ingest", "sft.agent", "demo.repo")
            scale = total / sampled if reads_repos and sampled else 1.0
            p = StagePlan(spec.name, spec.type.type_name, list(spec.inputs), str(spec.output), scale=scale)
            p.provenance = f"sample×{scale:g} ({sampled} of {total} repositories)" if reads_repos else \
                "sample×1 (reads no repository list: run whole)"
            if spec.type.type_name != "demo.repo":
                p.documents = _rows(out) * scale
                p.disk_bytes = _disk(out) * scale
            manifest = out / "manifest.json"
            if manifest.is_file():  # tokens and export: documents and tokens per source as their manifest counts
                m = json.loads(manifest.read_text())
                p.tokens = {src: float(v.get("tokens", 0)) * scale for src, v in (m.get("per_source") or {}).items()}
                if isinstance(m.get("documents"), (int, float)):
                    p.documents = m["documents"] * scale
            work, unit = _work(spec.type.type_name, out, stats, {k: v / scale for k, v in p.tokens.items()} or
                               _upstream_tokens(plans, scale))
            fig = figures.get(spec.type.type_name)
            if work is not None:
                p.work, p.work_unit = work * scale, unit
            if fig and p.work is not None and fig["unit"].startswith(unit):
                p.core_hours = p.work / fig["value"] / 3600
                p.figure = f"{fig['value']:,.4g} {fig['unit']} ({fig['file']}: {fig['key']})"
            elif fig:
                p.figure = fig.get("note") or f"{fig['file']}: {fig['key']}"
            else:
                p.figure = "no benchmark figure for this stage"
            plans.append(p)
        core_hours = sum(p.core_hours or 0 for p in plans)
        totals = {"repositories": total, "sampled": sampled, "core_hours": core_hours,
                  "wall_hours": core_hours / (nodes * cores), "nodes": nodes, "cores_per_node": cores,
                  "disk_bytes": sum(p.disk_bytes or 0 for p in plans)}
        return plans, totals
    finally:
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


def _from_budgets(p: StagePlan, spec, recipe: Recipe, figures: dict) -> None:
    """Without a sample, the token-bound stages still follow from the mixture's budgets: tokens per source as the
    stream will hold them (unique budget × up-sampling), core-hours from the unique tokens the stage encodes."""
    from datakit.tokens.mixture import parse_mixture

    tokens_spec = spec if spec.type.type_name == "tokens" else next(
        (s for s in recipe.stages if s.type.type_name == "tokens" and s.name in spec.inputs), None)
    if tokens_spec is None:
        return
    o = tokens_spec.options
    mix = parse_mixture(o.mixture, getattr(o, "target_tokens", 0) or 0)
    budgets = {src: m for src, m in mix.items() if m.tokens is not None}
    if not budgets:
        return
    p.tokens = {src: m.tokens * m.upsample for src, m in budgets.items()}
    unique = sum(m.tokens for m in budgets.values())
    p.provenance += f"; tokens from the recipe's budgets ({tokens_spec.name}.options.mixture, unique × upsample)"
    p.work, p.work_unit = (unique, "tokens") if spec.type.type_name == "tokens" else (sum(p.tokens.values()),
                                                                                       "tokens")
    fig = figures.get(spec.type.type_name)
    if fig and fig.get("value") and fig["unit"].startswith("tokens"):
        p.core_hours = p.work / fig["value"] / 3600
        p.figure = f"{fig['value']:,.4g} {fig['unit']} ({fig['file']}: {fig['key']})"


def _upstream_tokens(plans: list[StagePlan], scale: float) -> dict[str, float]:
    for p in reversed(plans):
        if p.tokens:
            return {k: v / scale for k, v in p.tokens.items()}
    return {}


def _sample_data(recipe: Recipe, root: Path) -> dict:
    """The recipe as data, its outputs under `root`, on the local executor with one task per stage."""
    stages = []
    names = {s.name for s in recipe.stages}
    for spec in recipe.stages:
        entry = {"name": spec.name, "stage": spec.type.type_name, "tasks": 1, "workers": 1,
                 "options": dataclasses.asdict(spec.options)}
        ins = [i if i in names else str(Path(i).resolve()) for i in spec.inputs]
        if len(ins) > 1:
            entry["inputs"] = ins
        elif ins:
            entry["input"] = ins[0]
        stages.append(entry)
    data = {"name": f"{recipe.name}-plan", "output": str(root), "executor": {"type": "local", "tasks": 1, "workers": 1},
            "stages": stages}
    mirrors = Path(recipe.mirrors)
    if mirrors.is_dir():  # reuse the mirrors that exist (a sample must not clone what is already there)
        data["mirrors"] = str(mirrors)
    return data


def _num(x: float | None, unit: str = "") -> str:
    if x is None:
        return "–"
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g} {suffix}{unit}".rstrip()
    return f"{x:.3g} {unit}".rstrip()


def render_plan(recipe: Recipe, plans: list[StagePlan], totals: dict) -> str:
    lines = [f"# plan: {recipe.name}", "",
             f"Sample run: {totals['sampled']} of {totals['repositories']} repositories; projections scale the "
             "sample's measurements (column `from`).", "",
             "| stage | type | inputs → output | documents | tokens | disk | from | work | core-hours | throughput |",
             "|---|---|---|---:|---:|---:|---|---:|---:|---|"]
    for p in plans:
        tokens = ", ".join(f"{k} {_num(v)}" for k, v in sorted(p.tokens.items())) or "–"
        lines.append(f"| {p.name} | {p.type} | {', '.join(p.inputs) or '–'} → {p.output} | {_num(p.documents)} | "
                     f"{tokens} | {_num(p.disk_bytes, 'B')} | {p.provenance} | {_num(p.work, p.work_unit)} | "
                     f"{'–' if p.core_hours is None else f'{p.core_hours:.3g}'} | {p.figure} |")
    lines += ["", f"Total: {totals['core_hours']:.3g} core-hours of measured stages; on {totals['nodes']} node(s) × "
              f"{totals['cores_per_node']} cores ≈ {totals['wall_hours']:.3g} h wall; "
              f"{_num(totals['disk_bytes'], 'B')} on disk. Stages without a figure are not in the total."]
    return "\n".join(lines) + "\n"
