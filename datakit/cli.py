"""The `datakit` command: `datakit run RECIPE.yaml`, and one subcommand per stage.

Every subcommand builds a recipe (from the file, or a one-stage recipe from its flags) and runs it through the
same runner, so a stage behaves the same from the CLI and from a recipe.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path

from datakit import __version__

# No stage does linear algebra, but OpenBLAS starts a spinning thread per core when numpy is imported (~0.07 CPU s
# of every datakit process, its forkserver children included, which inherit this); a value the user set is kept.
# Here, before any of the CLI's imports brings numpy in.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

EXECUTOR_HELP = "where tasks run: local (default; datatrove's LocalPipelineExecutor), slurm or ray"


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is two lines (what is wrong, where to read more), not the whole usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n  see `{self.prog} --help`\n")


def _records(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"a positive number of records per task, got {n} (leave --limit out for "
                                         "all of them)")
    return n


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("execution")
    g.add_argument("--tasks", type=int, help="number of tasks (shards) per stage; overrides the recipe")
    g.add_argument("--workers", type=int, help="tasks run at the same time on this machine; overrides the recipe")
    g.add_argument("--output", help="output root; each stage writes <output>/<stage name>/ (overrides the recipe)")
    g.add_argument("--limit", type=_records, default=-1, help="at most N input records per task (for trying a recipe)")
    g.add_argument("--executor", choices=("local", "slurm", "ray"), help=EXECUTOR_HELP)
    g.add_argument("--force", action="store_true", help="discard finished work of the stages run and redo it")
    g.add_argument("--quiet", action="store_true", help="no progress bar (the summary is still printed)")
    g.add_argument("--json", action="store_true", help="print the summary as JSON on stdout (for scripts)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="datakit",
        description="Build mid-training and SFT corpora for code LLMs from GitHub PRs (Kimi-Dev style). "
                    "Stages: sources → pulls → samples → decontam → tokens → export.",
    )
    parser.add_argument("--version", action="version", version=f"datakit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a recipe (YAML): its stages in order, resuming finished work",
                         description="Run a recipe. A rerun skips finished tasks; a changed stage is redone.")
    run.add_argument("recipe", help="path to the recipe YAML (see recipes/)")
    run.add_argument("--stages", help="comma-separated stage names to run (default: all)")
    run.add_argument("--check", action="store_true", help="validate the recipe and exit without doing any work")
    _common(run)

    stages = sub.add_parser("stages", help="list the stage types and their options")
    stages.set_defaults(command="stages")

    src = sub.add_parser("sources", help="mirror repositories with pygit2 and list their merged PRs",
                         description="Mirror git repositories (URL or local path; GitHub's refs/pull/*/head too) "
                                     "and write one PullRecord per merged PR.")
    src.add_argument("repos", nargs="*", help="'owner/name [url-or-path]' entries")
    src.add_argument("--repos-file", help="a file with one 'owner/name [url-or-path]' per line")
    src.add_argument("--mirrors", help="where the bare mirrors live (default <output>/mirrors)")
    src.add_argument("--no-fetch", action="store_true", help="use the mirrors on disk as they are")
    _common(src)

    crl = sub.add_parser("crawl", help="crawl GitHub's API into PullRecords (linked issues; code from mirrors)",
                         description="Crawl the repositories in --repos through GitHub's GraphQL and REST APIs with "
                                     "the tokens in $GITHUB_TOKENS (t1,t2,…) or --tokens-file: merged PRs, their "
                                     "commits, reviews and the issues they resolve; the code from git mirrors. "
                                     "Checkpointed per repository: a killed crawl resumes, a later one fetches only "
                                     "what changed. With --gharchive, aggregate GH Archive hour files instead.")
    crl.add_argument("--repos", help="a file with one 'owner/name [git-url-or-path]' per line")
    crl.add_argument("--gharchive", nargs="+", metavar="PATH",
                     help="GH Archive hour files (YYYY-MM-DD-H.json.gz) or folders of them, instead of the API")
    crl.add_argument("--api-url", default="https://api.github.com", help="REST root (GraphQL at <api-url>/graphql)")
    crl.add_argument("--tokens-file", help="one token per line, instead of $GITHUB_TOKENS")
    crl.add_argument("--state", help="checkpoints, journals, HTTP cache (default <output>/github_state)")
    crl.add_argument("--mirrors", help="where the bare git mirrors live (default <output>/mirrors)")
    crl.add_argument("--code", choices=("mirror", "api"), default="mirror",
                     help="mirror (default): commits, files and diff from git mirrors; api: from REST, 2 calls per PR")
    crl.add_argument("--no-fetch", action="store_true", help="use the mirrors on disk as they are")
    crl.add_argument("--no-mirror-fallback", action="store_true",
                     help="--code api: quarantine a PR whose REST diff/files GitHub refuses (406 too large, 404) "
                          "instead of taking its code from the git mirror")
    crl.add_argument("--page-size", type=int, default=50, help="PRs per GraphQL request (1-100, default 50)")
    crl.add_argument("--licenses", help="comma-separated SPDX allow-list (default: permissive licences; 'any')")
    crl.add_argument("--keep-bots", action="store_true", help="keep PRs opened by bots (dependabot, renovate, …)")
    _common(crl)

    smp = sub.add_parser("samples", help="PullRecords + git mirrors → Agentless BugFixer/TestWriter samples",
                         description="Turn PullRecords into localize and edit samples for both roles; every edit "
                                     "is re-applied and checked byte for byte, failures are quarantined.")
    smp.add_argument("--input", required=True, help="folder of PullRecord Parquet files (a sources output)")
    smp.add_argument("--mirrors", required=True, help="folder of the git mirrors the PullRecords come from")
    smp.add_argument("--roles", default="bugfixer,testwriter", help="comma-separated roles (default: both)")
    smp.add_argument("--max-files", type=int, default=10, help="max target files per PR and role (default 10)")
    smp.add_argument("--max-file-bytes", type=int, default=256 * 1024, help="max bytes per target file")
    smp.add_argument("--max-prompt-bytes", type=int, default=512 * 1024, help="max bytes per prompt")
    _common(smp)

    tok = sub.add_parser("tokens", help="Samples → exact tokens (Qwen2.5 default) → packed Parquet shards",
                         description="Tokenize samples exactly as the target model does, with loss masks, apply the "
                                     "mixture and pack best-fit-decreasing into seq_len rows; writes a manifest.")
    tok.add_argument("--input", required=True, help="folder of Sample Parquet files (a samples output)")
    tok.add_argument("--tokenizer", default="qwen2.5", help="qwen2.5 (built in, offline) or a HF name / local path")
    tok.add_argument("--engine", default="auto", choices=("auto", "gigatoken", "fastokens", "tiktoken", "hf"),
                     help="auto: the fastest engine proven id-identical for this tokenizer")
    tok.add_argument("--seq-len", type=int, default=32768, help="tokens per packed row (default 32768)")
    tok.add_argument("--mixture", help='JSON (or YAML flow), e.g. {"agentless": {"tokens": 5e10}, '
                                       '"synthetic": {"upsample": 4}}')
    tok.add_argument("--seed", type=int, default=0, help="seed of the mixture's deterministic sampling")
    _common(tok)

    exp = sub.add_parser("export", help="export token shards for a trainer")
    exp_sub = exp.add_subparsers(dest="format", required=True)
    meg = exp_sub.add_parser("megatron", help="token shards → Megatron .bin/.idx + blend file",
                             description="Write MMIDIDX v1 .bin/.idx (int32) with one document per sample and a "
                                         "blend file for --data-path; the shards are checked against their manifest.")
    meg.add_argument("--input", required=True, help="folder of token shards with their manifest.json")
    _common(meg)

    dec = sub.add_parser("decontam", help="remove SWE-bench Verified leakage; rebuild the fingerprint index or roots",
                         description="run (default): keep or quarantine each sample by the repository, fork, mirror, "
                                     "commit, instance-id and text-overlap rules. The mirror rules are on: samples "
                                     "from git mirrors need --mirrors (default <output>/mirrors), or "
                                     "--no-mirror-rules, which stats.json and the audit record. build-index: rebuild "
                                     "the fingerprint index from SWE-bench files or the Hugging Face hub. "
                                     "build-roots: root commits of the SWE-bench repositories in --mirrors DIR.")
    dec.add_argument("action", nargs="?", default="run", choices=("run", "build-index", "build-roots"))
    dec.add_argument("--input", help="run: folder of Sample Parquet files")
    dec.add_argument("--mirrors", help="run: folder of git mirrors (owner__name.git) to check for SWE-bench history; "
                                       "build-roots: the mirrors to compute root commits from")
    dec.add_argument("--no-mirror-rules", action="store_true",
                     help="run: do not check git histories (recorded in stats.json and the audit)")
    dec.add_argument("--roots", default="", help="run: extra root commits (a build-roots file)")
    dec.add_argument("--index", default="", help="a fingerprint index file (default: the one shipped, Verified)")
    dec.add_argument("--threshold", type=float, default=-1.0, help="text rule: share of a reference item's n-grams")
    dec.add_argument("--min-matched", type=int, default=-1, help="text rule: n-grams that suffice on their own")
    dec.add_argument("--from-files", help="build-index: a folder with verified.jsonl (+ verified_test_patches.jsonl)")
    dec.add_argument("--from-hub", action="store_true", help="build-index: princeton-nlp/SWE-bench_Verified")
    dec.add_argument("--full", action="store_true", help="build-index: the full SWE-bench test set (hub only)")
    dec.add_argument("--background", default="stdlib,site_packages,templates",
                     help="build-index: where n-grams too common to index are looked up, comma-separated among "
                          "stdlib, site_packages, templates (default all three; site_packages is this machine's "
                          "installed packages, so leave it out for an index any machine rebuilds the same)")
    dec.add_argument("--out", help="build-index / build-roots: where to write the index / the roots JSON")
    _common(dec)

    aud = sub.add_parser("audit", help="write the decontamination audit report (Markdown + self-contained HTML)")
    aud.add_argument("dir", help="a decontam output folder")
    aud.add_argument("--out", help="report folder (default DIR/audit)")
    aud.add_argument("--reference", help="SWE-bench files (verified.jsonl…) to show reference texts side by side")

    ins = sub.add_parser("inspect", help="decode a token shard row: document boundaries and the loss mask in colour")
    ins.add_argument("shard", help="a token shard (.parquet)")
    ins.add_argument("--row", type=int, default=0, help="row number (default 0)")
    ins.add_argument("--tokenizer", help="tokenizer to decode with (default: the one in the folder's manifest)")
    ins.add_argument("--max-chars", type=int, default=4000, help="characters shown per document (default 4000)")

    pln = sub.add_parser("plan", help="what a recipe will make and cost: a sample run, scaled, with benchmark figures",
                         description="Runs the recipe on its first N repositories in a temporary folder, measures "
                                     "every stage (documents, tokens per source, disk) and scales to the whole "
                                     "recipe; projects core-hours from the benchmark figures shipped with datakit.")
    pln.add_argument("recipe", help="path to the recipe YAML")
    pln.add_argument("--sample-repos", type=int, default=20, help="repositories in the sample run (default 20)")
    pln.add_argument("--nodes", type=int, default=1, help="nodes for the wall-time projection (default 1)")
    pln.add_argument("--cores", type=int, default=32, help="cores per node (default 32)")
    pln.add_argument("--json", action="store_true", help="print the plan as JSON instead of a table")

    sts = sub.add_parser("stats", help="rows, tokens, lengths, reasons and decontamination per source, role and repo",
                         description="Corpus statistics of a run's output folder (or one stage folder): per source, "
                                     "role and repository, rows, tokens, length percentiles, quarantine and filter "
                                     "reasons, up-sampling and decontamination. Prints tables and writes "
                                     "corpus_stats.html (self-contained, with charts; links each decontam audit) "
                                     "and corpus_stats.json, rewritten only when they change.")
    sts.add_argument("dir", help="a run's output folder (e.g. out/demo) or one of its stage folders")
    sts.add_argument("--out", help="where the report goes (default <dir>/corpus_stats; for a stage folder "
                                   "<its parent>/corpus_stats/<stage>)")
    sts.add_argument("--json", action="store_true", help="print the figures as JSON instead of tables")
    for p in (parser, *sub.choices.values(), *exp_sub.choices.values()):
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback of an error (default: one or two lines naming the fix)")
    return parser


class UserError(ValueError):
    """A mistake on the command line, found before any work."""


def _plan(args, out) -> int:
    import dataclasses

    from datakit.plan import plan_recipe, render_plan
    from datakit.recipe import load_recipe

    if args.sample_repos < 1 or args.nodes < 1 or args.cores < 1:
        raise UserError("--sample-repos, --nodes and --cores must be ≥ 1")
    recipe = load_recipe(args.recipe)
    plans, totals = plan_recipe(recipe, args.sample_repos, args.nodes, args.cores)
    if args.json:
        print(json.dumps({"stages": [dataclasses.asdict(p) for p in plans], "totals": totals}, indent=2))
    else:
        print(render_plan(recipe, plans, totals), end="")
    return 0


def _stats(args, out, err) -> int:
    from datakit.stats import StatsError
    from datakit.stats.report import print_report, to_json, write_report

    try:
        html_path, json_path, fig = write_report(args.dir, args.out)
    except StatsError as exc:
        raise UserError(str(exc)) from exc
    if args.json:
        print(to_json(fig), end="")
    else:
        print_report(fig, out)
    (err if args.json else out).print(f"stats: {html_path}\nstats: {json_path}", soft_wrap=True, markup=False)
    return 0


def _mixture(text: str) -> dict:
    """--mixture: JSON, or YAML's flow style (a superset of JSON), which shell users often type."""
    import yaml

    example = """e.g. --mixture '{"agentless": {"upsample": 2}, "synthetic": {"tokens": 2e10}}'"""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"--mixture: not JSON ({str(exc).splitlines()[0]}); {example}") from None
    if not isinstance(value, dict):
        raise UserError(f"--mixture: expected a mapping of source to settings, got {value!r}; {example}")
    return value


def _recipe_from_args(args) -> "Recipe":  # noqa: F821
    from datakit.recipe import RecipeError, load_recipe, parse_recipe

    override = {"type": args.executor, "tasks": args.tasks, "workers": args.workers}
    if args.command == "run":
        return load_recipe(args.recipe, base_output=args.output, executor_override=override)
    output = args.output or f"out/{args.command}"
    if args.command == "sources":
        stage = {"name": "pulls", "stage": "sources.git",
                 "options": {"repos": list(args.repos), "fetch": not args.no_fetch}}
        if args.repos_file:
            stage["input"] = args.repos_file
        data = {"name": "sources", "output": output, "stages": [stage]}
        if args.mirrors:
            data["mirrors"] = args.mirrors
    elif args.command == "crawl":
        data = _crawl_recipe(args, output)
    elif args.command == "tokens":
        options = {"tokenizer": args.tokenizer, "engine": args.engine, "seq_len": args.seq_len, "seed": args.seed}
        if args.mixture:
            options["mixture"] = _mixture(args.mixture)
        data = {"name": "tokens", "output": output,
                "stages": [{"name": "tokens", "stage": "tokens", "input": args.input, "options": options}]}
    elif args.command == "decontam":
        if not args.input:
            raise RecipeError("datakit decontam: --input is required")
        if args.mirrors and not args.no_mirror_rules:
            from datakit.decontam.steps import mirror_status

            problem = mirror_status(args.mirrors)
            if problem is not None:  # before any work: a typo must not turn the mirror rules off
                raise RecipeError(f"datakit decontam --mirrors: {problem}; give the folder of owner__name.git "
                                  "mirrors, or --no-mirror-rules")
        options = {"index": args.index, "threshold": args.threshold, "min_matched": args.min_matched,
                   "mirrors": not args.no_mirror_rules, "roots": str(Path(args.roots).resolve()) if args.roots else ""}
        data = {"name": "decontam", "output": output, "stages": [
            {"name": "decontam", "stage": "decontam", "input": args.input, "options": options}]}
        if args.mirrors:
            data["mirrors"] = args.mirrors
    elif args.command == "export":
        data = {"name": "export", "output": output,
                "stages": [{"name": "megatron", "stage": "export.megatron", "input": args.input}]}
    else:
        data = {"name": "samples", "output": output, "mirrors": args.mirrors, "stages": [{
            "name": "samples", "stage": "samples.agentless", "input": args.input,
            "options": {"roles": args.roles.split(","), "max_files": args.max_files,
                        "max_file_bytes": args.max_file_bytes, "max_prompt_bytes": args.max_prompt_bytes}}]}
    return parse_recipe(data, f"datakit {args.command}", base_output=output, executor_override=override)


def _crawl_recipe(args, output: str) -> dict:
    from datakit.recipe import RecipeError

    if bool(args.repos) == bool(args.gharchive):
        raise RecipeError("datakit crawl: give --repos FILE (the API) or --gharchive PATH… (GH Archive)")
    if args.gharchive:
        stage = {"name": "pulls", "stage": "sources.gharchive",
                 "options": {"paths": list(args.gharchive), "fetch": not args.no_fetch}}
    else:
        options = {"api_url": args.api_url, "page_size": args.page_size, "code": args.code,
                   "fetch": not args.no_fetch, "skip_bots": not args.keep_bots,
                   "mirror_fallback": not args.no_mirror_fallback}
        if args.tokens_file:
            options["tokens_file"] = str(Path(args.tokens_file).resolve())
        if args.state:
            options["state"] = str(Path(args.state).resolve())
        if args.licenses:
            options["licenses"] = [] if args.licenses == "any" else args.licenses.split(",")
        stage = {"name": "pulls", "stage": "sources.github", "input": args.repos, "options": options}
    data = {"name": "crawl", "output": output, "stages": [stage]}
    if args.mirrors:
        data["mirrors"] = args.mirrors
    return data


def print_stage_types(out) -> None:
    from rich.table import Table

    from datakit.pipeline.stages import STAGES

    table = Table(title="stage types")
    for col in ("stage", "what it does", "options"):
        table.add_column(col)
    for name, st in sorted(STAGES.items()):
        table.add_row(name, st.summary, ", ".join(st.option_names()) or "-")
    out.print(table)


def summary_table(results):
    """One row per stage and unit: read = written + quarantined + filtered; other counters in the last column."""
    from rich.table import Table

    from datakit.pipeline.progress import human

    table = Table(title="datakit summary", caption=UNITS_NOTE, caption_justify="left")
    for col, justify in (("stage", "left"), ("unit", "left"), ("read", "right"), ("written", "right"),
                         ("quarantined / filtered (by reason)", "left"), ("rows out", "right"), ("seconds", "right"),
                         ("counters", "left")):
        table.add_column(col, justify=justify)
    for r in results:
        seconds = f"{r.seconds:.1f}" + (" (resumed: nothing to do)" if r.skipped else "")
        counters = ", ".join(f"{k} {human(v)}" for k, v in r.counters.items()) or "-"
        rows = "-" if r.rows is None else human(r.rows)
        for i, (unit, u) in enumerate(r.units.items()):
            q = {**u["quarantined"], **{f"filtered: {k}": v for k, v in u.get("filtered", {}).items()}}
            qtext = f"{human(sum(q.values()))} (" + ", ".join(f"{k} {human(v)}" for k, v in q.items()) + ")" if q else "0"
            first = i == 0
            table.add_row(r.name if first else "", unit, human(u["read"]), human(u["written"]), qtext,
                          rows if first else "", seconds if first else "", counters if first else "")
    return table


# why the units written and the rows out differ: the question every first summary raises
UNITS_NOTE = ("units are what a stage counts and quarantines: samples.agentless one PR per role (each written one "
              "makes a localize and an edit row), bundles.commits one PR, tokens one document (packed with "
              "others into seq_len rows; up-sampled copies are extra documents). rows out: records in the stage's "
              "Parquet output.")


@functools.lru_cache(maxsize=1)
def _parser() -> argparse.ArgumentParser:
    """The CLI's parser, built once per process (~6 ms): `main` parses with it, a run's next steps list its
    subcommands (parsing leaves it unchanged)."""
    return build_parser()


def _subcommands() -> set[str]:
    parser = _parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


def next_steps(recipe_path: str, root: Path, results, commands: set[str]) -> str:
    """The end of a run: what was made, where, and the next three commands to try on it (those the CLI has)."""
    import shlex

    from datakit.io.storage import is_url

    if not results:
        return ""
    local = not is_url(root)  # Megatron, stats, audit and inspect read local folders: not suggested for s3://…
    by_type: dict[str, list] = {}
    for r in results:
        by_type.setdefault(r.type, []).append(r)
    datasets = [r.name for r in results if r.rows is not None]
    lines = [f"made: {len(results)} stage folders under {root}, each with stats.json and a dataset card (README.md)"]
    if datasets:
        lines.append(f"  datasets (datasets.load_dataset(folder), polars.read_parquet(folder/'*.parquet')): "
                     f"{', '.join(datasets)}")
    for r in by_type.get("export.megatron", []) if local else []:
        lines.append(f"  Megatron: --data-path $(cat {r.output / 'blend.txt'})")
    tried = []
    if "stats" in commands and local:
        tried.append((f"datakit stats {shlex.quote(str(root))}", "rows, tokens, lengths and reasons per source"))
    for r in by_type.get("decontam", [])[:1] if local else []:
        if "audit" in commands:
            tried.append((f"datakit audit {shlex.quote(str(r.output))}", "the decontamination audit report"))
    for r in by_type.get("tokens", [])[:1] if local else []:
        shards = sorted(r.output.glob("*.parquet"))
        if shards and "inspect" in commands:
            tried.append((f"datakit inspect {shlex.quote(str(shards[0]))} --row 0",
                          "a packed row decoded: document boundaries, the loss mask in colour"))
    if "plan" in commands:
        tried.append((f"datakit plan {shlex.quote(recipe_path)}", "documents, tokens, disk and core-hours at scale"))
    tried.append((f"datakit run {shlex.quote(recipe_path)}", "again: resumes, nothing to do"))
    lines.append("next:")
    width = max(len(c) for c, _ in tried[:3])
    lines += [f"  {c.ljust(width)}   # {why}" for c, why in tried[:3]]
    return "\n".join(lines)


def summary_json(results) -> str:
    return json.dumps({"stages": [{
        "stage": r.name, "type": r.type, "output": str(r.output), "fingerprint": r.fingerprint, "tasks": r.tasks,
        "seconds": round(r.seconds, 3), "resumed": r.skipped, "rows": r.rows, "units": r.units,
        "counters": {k: int(v) if v == int(v) else v for k, v in r.counters.items()},
    } for r in results]}, indent=2)


def _build_index(args, out) -> int:
    from datakit.decontam.index import build_index
    from datakit.decontam.reference import load_reference

    from datakit.decontam.background import SOURCES

    if not args.out or bool(args.from_files) == bool(args.from_hub):
        raise UserError("build-index needs --out and one of --from-files DIR / --from-hub")
    background = tuple(s.strip() for s in args.background.split(",") if s.strip())
    if unknown := sorted(set(background) - set(SOURCES)):
        raise UserError(f"--background: unknown source(s) {', '.join(unknown)}; choose among {', '.join(SOURCES)}")
    try:
        instances = (load_reference("hub", full=args.full) if args.from_hub
                     else load_reference("files", args.from_files, full=args.full))
    except (ValueError, OSError) as exc:
        raise UserError(str(exc)) from exc
    index = build_index(instances, background=background)
    index.save(args.out)
    out.print(f"index: {len(instances)} instances, {len(index.hashes)} n-gram hashes → {args.out}")
    return 0


def _build_roots(args, out) -> int:
    from datakit.decontam.repos import build_root_commits

    if not args.mirrors or not args.out:
        raise UserError("build-roots needs --mirrors DIR (owner__name.git mirrors) and --out FILE")
    try:
        data = build_root_commits(args.mirrors)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    Path(args.out).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    found = {r: len(e["roots"]) for r, e in data["repos"].items()}
    out.print(f"roots: {sum(found.values())} root commits of {len(found)} SWE-bench repositories → {args.out}"
              f"{'; none for ' + ', '.join(data['not_computed']) if data['not_computed'] else ''}")
    return 0


def _audit(args, out) -> int:
    from datakit.decontam.audit import write_audit

    reference = None
    if args.reference:
        if not Path(args.reference).is_dir():
            raise UserError(f"audit --reference {args.reference}: no such folder; give the folder holding SWE-bench "
                            "Verified's verified.jsonl (../shared/data/README.md), or leave --reference out")
        from datakit.decontam.reference import load_reference

        reference = {i.instance_id: {"problem_statement": i.problem_statement, "patch": i.patch,
                                     "test_patch": i.test_patch or ""} for i in load_reference("files", args.reference)}
    settings = Path(args.dir) / "decontam.json"
    threshold = json.loads(settings.read_text())["threshold"] if settings.is_file() else None
    try:
        md, html = write_audit(args.dir, args.out, reference=reference, threshold=threshold)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from exc
    out.print(f"audit: {md}\naudit: {html}")
    return 0


def _console(stderr: bool):
    """Rich on stdout or stderr; colour only on a terminal (rich's own check, which also honours NO_COLOR), and
    wide lines when piped so a table is not folded to 80 columns."""
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    return console if console.is_terminal else Console(stderr=stderr, highlight=False, width=200)


def describe(exc: BaseException) -> tuple[str, int]:
    """What to print for an error, and the exit status: 2 for a mistake the message names the fix of, 1 else."""
    from datakit.decontam.reference import ReferenceUnavailable
    from datakit.io.records import RecordFileError
    from datakit.pipeline.runner import StageFailed
    from datakit.recipe import RecipeError
    from datakit.sources.github.client import BadCredentials, GitHubError

    if isinstance(exc, GitHubError) and not isinstance(exc, BadCredentials):
        return (f"{exc}\n  the GitHub API did not answer or kept failing: check --api-url (recipe: options.api_url) "
                "and the network, then rerun; finished repositories are not crawled again"), 2
    known = (RecipeError, UserError, StageFailed, BadCredentials, RecordFileError, ReferenceUnavailable,
             FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)
    if isinstance(exc, known):
        return str(exc), 2
    return (f"{type(exc).__name__}: {exc}\n  an unexpected failure: rerun with --debug for the traceback, and "
            "report it"), 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    err = _console(stderr=True)
    try:
        return _main(args, _console(stderr=False), err)
    except KeyboardInterrupt:
        err.print("interrupted: rerun the same command to resume (finished tasks are kept)")
        return 130
    except Exception as exc:
        if getattr(args, "debug", False):
            raise
        from rich.text import Text

        from datakit.pipeline.logs import redact

        message, code = describe(exc)
        err.print(Text.assemble(("error:", "bold red"), " ", redact(message)), soft_wrap=True)  # no markup
        return code


def _main(args, out, err) -> int:
    """Results (tables, verdicts, paths written) on `out` (stdout); progress and logs on `err` (stderr)."""
    from datakit.pipeline.runner import run_recipe
    from datakit.recipe import RecipeError

    if args.command == "stages":
        print_stage_types(out)
        return 0
    if args.command == "audit":
        return _audit(args, out)
    if args.command == "decontam" and args.action == "build-index":
        return _build_index(args, out)
    if args.command == "decontam" and args.action == "build-roots":
        return _build_roots(args, out)
    if args.command == "plan":
        return _plan(args, out)
    if args.command == "stats":
        return _stats(args, out, err)
    if args.command == "inspect":
        from datakit.tokens.inspect import inspect_row

        try:
            inspect_row(args.shard, args.row, args.tokenizer, args.max_chars, out)
        except (ValueError, IndexError) as exc:
            raise UserError(str(exc)) from exc
        return 0
    recipe = _recipe_from_args(args)
    if getattr(args, "check", False):
        out.print(f"recipe OK: {len(recipe.stages)} stages → {recipe.output}")
        return 0
    only = args.stages.split(",") if getattr(args, "stages", None) else None
    if only:
        unknown = set(only) - {s.name for s in recipe.stages}
        if unknown:
            raise RecipeError(f"--stages: no stage named {', '.join(sorted(unknown))} "
                              f"(stages: {', '.join(s.name for s in recipe.stages)})")
    results = run_recipe(recipe, limit=args.limit, only=only, force=args.force,
                         console=None if args.quiet or not err.is_terminal else err)
    if args.json:
        print(summary_json(results))
        return 0
    out.print(summary_table(results))
    for r in results:
        out.print(f"{r.name}: {r.output}", soft_wrap=True)
    if args.command == "run":  # a guided first run: what was made and what to try next
        out.print(next_steps(args.recipe, recipe.output, results, _subcommands()), soft_wrap=True, markup=False, highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
