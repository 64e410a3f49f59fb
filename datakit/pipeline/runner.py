"""Run a recipe: each stage on a datatrove executor, resumable, with a summary whose counts must add up.

Resumability rests on datatrove's completion markers (`logging_dir/completions/{rank:05d}`). They are keyed only on
the logging dir, so the logging dir is derived from a *fingerprint* of the stage: its type, options, task count,
limit and the fingerprint (or content) of its input. An unchanged stage resumes (finished tasks are skipped, a
killed task reruns and overwrites its own files); a changed one gets a fresh folder: its old outputs are removed
first so no stale shard survives.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from datakit.io.storage import arrow, is_url, resolve, rmtree
from datakit.pipeline.progress import PROGRESS_DIR, CountRecords, StageProgress
from datakit.pipeline.progress import completed_tasks as _completed
from datakit.pipeline.slurm_jobs import check_no_earlier_jobs, stop_earlier_jobs
from datakit.pipeline.stages import StageContext
from datakit.recipe import Recipe, RecipeError, StageSpec

STATE_DIR = ".datakit"
_UNIT_LABEL = re.compile(
    r"^(?P<unit>[a-z_]+)\.(?P<what>read|written|(?P<kind>quarantined|filtered)\.(?P<reason>.+))$")
_EMPTY_UNIT = {"read": 0, "written": 0, "quarantined": {}, "filtered": {}}


class StageFailed(RuntimeError):
    pass


class WorkerDied(StageFailed):
    """A local pool child ended without finishing its task: killed (the out-of-memory killer, a signal) or crashed
    (raised by pipeline/local_executor.py; the runner adds the stage's name)."""


@dataclass
class StageResult:
    name: str
    type: str
    output: Path
    fingerprint: str
    tasks: int
    seconds: float
    skipped: bool
    units: dict[str, dict] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    rows: int | None = None  # records in the stage's output files (a unit can write several: see the summary)


_WHOLE_FILE_BYTES = 64 * 2**20  # inputs up to this size are hashed whole; larger ones by size, head and tail


def _file_digest(path: Path, h) -> None:
    size = path.stat().st_size
    h.update(f"{size}\0".encode())
    with path.open("rb") as f:
        if size <= _WHOLE_FILE_BYTES:
            h.update(f.read())
        else:  # a GH Archive folder can hold terabytes: size + the first and last MiB identify a file
            h.update(f.read(2**20))
            f.seek(-(2**20), 2)
            h.update(f.read())


def _input_fingerprint(path: Path) -> str:
    """What a stage's input *is*, by content, never by mtime (so rewriting an unchanged upstream changes nothing
    downstream): the bytes of a file; for a folder written by a datakit stage, that stage's own fingerprint and
    the names and sizes of its outputs (the same fingerprint gives the same bytes; sizes tell a partial run);
    for any other folder, the names and contents of its files."""
    h = hashlib.sha256()
    if path.is_file():
        _file_digest(path, h)
        return h.hexdigest()
    marker = path / STATE_DIR / "fingerprint"
    if marker.is_file():
        h.update(b"stage\0" + marker.read_bytes())
        for p in sorted(path.rglob("*")):
            if p.is_file() and STATE_DIR not in p.relative_to(path).parts and p.name != "stats.json":
                h.update(f"{p.relative_to(path)}\0{p.stat().st_size}\n".encode())
        return h.hexdigest()
    for p in sorted(path.rglob("*")):
        if p.is_file() and STATE_DIR not in p.relative_to(path).parts:
            h.update(f"{p.relative_to(path)}\0".encode())
            _file_digest(p, h)
    return h.hexdigest()


def stage_fingerprint(spec: StageSpec, input_fp: str | None, limit: int, mirrors: Path, output: Path) -> str:
    """What makes a stage's output: its type, options, tasks, limit, input and the code's version. Mirrors under the
    run's output folder count by their place in it, so the same recipe run in another folder (or on another
    machine) gives the same fingerprint, and the same manifest bytes (which record it as recipe_hash)."""
    from datakit import __version__

    try:
        mirrors_key = f"<output>/{Path(mirrors).relative_to(output).as_posix()}"
    except (ValueError, TypeError, AttributeError):  # elsewhere (or on another filesystem): where they are is part of the input
        mirrors_key = str(mirrors)
    key = {
        "type": spec.type.type_name,
        "options": asdict(spec.options),
        "tasks": spec.tasks,
        "limit": limit,
        "input": input_fp,
        "mirrors": mirrors_key,
        "datakit": __version__,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _prepare_output(output: Path, fingerprint: str) -> Path:
    """The stage's logging dir; wipes the stage folder when it holds the output of a different fingerprint."""
    marker = output / STATE_DIR / "fingerprint"
    if is_url(output):
        output.check_bucket()
    if output.exists() and not marker.is_file() and any(output.iterdir()):
        raise StageFailed(f"{output} is not empty and was not written by datakit: refusing to write into it")
    if marker.is_file() and marker.read_text().strip() != fingerprint:
        stop_earlier_jobs(output)
        rmtree(output)
    (output / STATE_DIR).mkdir(parents=True, exist_ok=True)
    _write_if_changed(marker, fingerprint + "\n")
    return output / STATE_DIR / "logs"


def collect_stats(logging_dir: Path) -> tuple[dict[str, dict], dict[str, float]]:
    """Add up the per-task datatrove stats: unit counters and the other counters."""
    units: dict[str, dict] = {}
    counters: dict[str, float] = {}
    for stats_file in sorted((logging_dir / "stats").glob("*.json")):
        for step in json.loads(stats_file.read_text()):
            for label, value in step.get("stats", {}).items():
                total = value["total"] if isinstance(value, dict) else value
                m = _UNIT_LABEL.match(label)
                if m:
                    unit = units.setdefault(m["unit"], {"read": 0, "written": 0, "quarantined": {}, "filtered": {}})
                    if m["reason"]:
                        unit[m["kind"]][m["reason"]] = unit[m["kind"]].get(m["reason"], 0) + total
                    else:
                        unit[m["what"]] += total
                elif "." in label and not label.endswith(".parquet"):
                    counters[label] = counters.get(label, 0) + total
    for unit in units.values():
        unit["quarantined"] = dict(sorted(unit["quarantined"].items()))
        unit["filtered"] = dict(sorted(unit["filtered"].items()))
    return dict(sorted(units.items())), dict(sorted(counters.items()))


def check_counts(stage: str, units: dict[str, dict], expected: tuple[str, ...]) -> None:
    for name in expected:
        u = units.get(name, _EMPTY_UNIT)
        q, f = sum(u["quarantined"].values()), sum(u["filtered"].values())
        if u["read"] != u["written"] + q + f:
            raise StageFailed(f"stage {stage}: unit {name} does not add up: read {u['read']} != written "
                              f"{u['written']} + quarantined {q} + filtered {f}")


def _write_if_changed(path: Path, text: str) -> None:
    """A rerun that changes nothing rewrites nothing (bytes and mtimes), so no one downstream sees a change."""
    from datakit.io.records import write_text_atomic  # here: the runner imports pyarrow only when it writes

    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)


def write_stage_stats(result: StageResult) -> None:
    """stats.json: counts only (no timings), so the same input gives the same bytes."""
    doc = {"stage": result.name, "type": result.type, "tasks": result.tasks, "units": result.units,
           "counters": result.counters}
    _write_if_changed(result.output / "stats.json", json.dumps(doc, indent=2, sort_keys=True) + "\n")


def make_executor(kind: str, options: dict, pipeline: list, tasks: int, workers: int, logging_dir: Path):
    if kind == "local":  # datatrove's, with the driver process running tasks too (pipeline/local_executor.py)
        from datakit.pipeline.local_executor import LocalExecutor

        return LocalExecutor(pipeline, tasks=tasks, workers=min(workers, tasks), logging_dir=str(logging_dir))
    if kind == "slurm":  # datatrove's, whose run() waits for the job array (datakit/pipeline/slurm.py)
        from datakit.pipeline.slurm import WaitingSlurmExecutor

        extra = {k: v for k, v in options.items() if k not in ("type", "tasks", "workers")}
        for required in ("partition", "time"):
            if required not in extra:
                raise RecipeError(f"executor.{required} is required for slurm")
        return WaitingSlurmExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=str(logging_dir), **extra)
    if kind == "ray":
        return _ray_executor(options, pipeline, tasks, workers, logging_dir)
    raise RecipeError(f"unknown executor {kind!r}")


def _ray_executor(options: dict, pipeline: list, tasks: int, workers: int, logging_dir: Path):
    try:
        import ray

        from datakit.pipeline.ray_executor import RayExecutor  # datatrove's, tasks in the Ray worker process
    except ImportError as exc:
        raise RecipeError("executor ray needs `pip install 'datakit[ray]'`") from exc
    if not ray.is_initialized():
        ray.init(address=options.get("address"), include_dashboard=False, log_to_driver=False)
    cpus = options.get("cpus_per_task", 1)
    mem = options.get("mem_per_cpu_gb", 2)
    # datatrove's Ray executor hangs forever on a request no node can meet: refuse it up front.
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    fits = any(n["Resources"].get("CPU", 0) >= cpus and n["Resources"].get("memory", 0) >= mem * cpus * 2**30
               for n in nodes)
    if not fits:
        raise RecipeError(f"executor ray: no node has {cpus} CPUs and {mem * cpus} GiB for one task")
    return RayExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=str(logging_dir),
                       cpus_per_task=cpus, mem_per_cpu_gb=mem)


def parquet_input_rows(spec: StageSpec, path: Path) -> int:
    """A stage that reads record files gets a folder of readable Parquet files, or an error naming the fix before
    any work; returns the rows they hold (the progress bar's total). Footers only: a damaged page is caught by the
    readers (RecordFileError)."""
    import pyarrow.parquet as pq

    from datakit.io.records import reading_parquet

    where = f"stage {spec.name} ({spec.type.type_name}): input {path}"
    if path.is_file():
        raise StageFailed(f"{where} is a file; this stage reads a folder of Parquet files: give its folder "
                          f"({path.parent}), or move the file into a folder of its own")
    files = sorted(path.glob("*.parquet"))
    if not files:
        if (path / STATE_DIR / "fingerprint").is_file():
            raise StageFailed(f"{where}: the stage that wrote it kept no records; see {path / 'stats.json'} and "
                              f"{path / 'quarantine'} for why, fix its input or options, and rerun")
        found = sorted({p.suffix or p.name for p in path.iterdir() if p.is_file()})
        if not found:
            raise StageFailed(f"{where} is empty; give a folder of the Parquet records an earlier datakit stage "
                              "wrote (e.g. out/demo/samples)")
        raise StageFailed(f"{where} holds no .parquet files (only {', '.join(found)}); this stage reads the Parquet "
                          "records an earlier datakit stage writes (`datakit stages`); JSONL / text chat or agent "
                          "data goes through a synth.ingest stage first (options: {paths: [that folder]})")
    rows = 0
    for f in files:
        with reading_parquet(str(f)):
            src, fs = arrow(f)
            rows += pq.read_metadata(src, filesystem=fs).num_rows
    return rows


def output_rows(folder: Path) -> int | None:
    """Rows in a stage's output Parquet files (footers only); None when it writes none (an export)."""
    import pyarrow.parquet as pq

    files = [arrow(f) for f in sorted(folder.glob("*.parquet"))]
    return sum(pq.read_metadata(src, filesystem=fs).num_rows for src, fs in files) if files else None


def run_recipe(recipe: Recipe, limit: int = -1, only: list[str] | None = None, force: bool = False,
               console=None) -> list[StageResult]:
    """Run the recipe's stages in order (or only those named); returns one result per stage run."""
    results: list[StageResult] = []
    fingerprints: dict[str, str] = {}
    for spec in recipe.stages:
        paths, fps = [], []
        for name in spec.inputs or ([spec.input] if spec.input is not None else []):
            from_stage = name in fingerprints
            path = recipe.stage(name).output if from_stage else resolve(name)
            paths.append(path)
            fps.append(fingerprints[name] if from_stage or not path.exists() else _input_fingerprint(path))
        input_path = paths[0] if paths else None
        # one input: its fingerprint as before (unchanged recipes keep their folders); several: the list
        input_fp = None if not fps else fps[0] if len(fps) == 1 else fps
        fingerprint = stage_fingerprint(spec, input_fp, limit, recipe.mirrors, recipe.output)
        fingerprints[spec.name] = fingerprint
        if only and spec.name not in only:
            continue
        for path in paths:  # checked only for the stages that run (`--stages b` after a run that made a)
            if not path.exists():
                raise StageFailed(f"stage {spec.name}: input {path} does not exist")
        if force and spec.output.exists():
            stop_earlier_jobs(spec.output)
            rmtree(spec.output)
        results.append(run_stage(spec, recipe, input_path, fingerprint, limit, console, inputs=paths))
    return results


def _pool_ahead(spec: StageSpec, recipe: Recipe, fingerprint: str) -> bool:
    """Will this stage start datatrove's local pool (2 workers or more, and a task left to run)?"""
    if recipe.executor["type"] != "local" or spec.type.local_only or min(spec.workers, spec.tasks) < 2:
        return False
    marker = spec.output / STATE_DIR / "fingerprint"
    if not marker.is_file() or marker.read_text().strip() != fingerprint:
        return True  # a fresh stage folder
    return _completed(spec.output / STATE_DIR / "logs") < spec.tasks


def run_stage(spec: StageSpec, recipe: Recipe, input_path: Path | None, fingerprint: str, limit: int,
              console=None, inputs: list[Path] | None = None) -> StageResult:
    inputs = list(inputs) if inputs is not None else [input_path] if input_path is not None else []
    if _pool_ahead(spec, recipe, fingerprint):  # first: its imports overlap this process's own start-up
        from datakit.pipeline.workers import start_forkserver

        start_forkserver(spec.type.worker_modules)
    total = None
    if spec.type.input_format == "parquet":  # before the output folder exists
        total = sum(parquet_input_rows(spec, p) for p in inputs)
        if limit >= 0:  # records per task
            total = min(total, limit * spec.tasks)
    stage = spec.make()
    logging_dir = _prepare_output(spec.output, fingerprint)
    if recipe.executor["type"] != "slurm":  # a Slurm run of this stage waits for them (WaitingSlurmExecutor)
        check_no_earlier_jobs(spec.output)
    ctx = StageContext(spec.name, spec.output, input_path, recipe.output, recipe.mirrors, limit, fingerprint,
                       spec.tasks, lambda pipeline, tasks, logs: make_executor(
                           recipe.executor["type"], recipe.executor, pipeline, tasks, spec.workers, logs),
                       recipe.executor["type"])
    ctx.inputs = inputs
    ctx.sample_repos = getattr(recipe, "sample_repos", -1)  # set by `datakit plan` on the recipe it samples
    start = time.perf_counter()
    if stage.local_only:
        done_marker = logging_dir / "done.json"
        skipped = done_marker.is_file()
        if skipped:
            units = json.loads(done_marker.read_text())
        else:  # no task markers to resume from: a killed run's leftovers (a half-built repository) go first
            for p in spec.output.iterdir():
                if p.name != STATE_DIR:
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            units = stage.run_local(ctx)
            logging_dir.mkdir(parents=True, exist_ok=True)
            _write_if_changed(done_marker, json.dumps(units, sort_keys=True))
        counters: dict[str, float] = {}
        tasks = 1
    else:
        try:
            pipeline = stage.build(ctx)  # checks options, tokenizers, manifests: before any task writes
        except (ValueError, OSError, ImportError) as exc:
            raise StageFailed(f"stage {spec.name} ({spec.type.type_name}): {exc}") from exc
        tasks = spec.tasks
        skipped = _completed(logging_dir) >= tasks
        counting = console is not None and len(pipeline) > 1
        counting = counting and not is_url(logging_dir)  # its count files are local files
        if counting:  # records yielded by the first step (read, or made by a source), live per task
            pipeline.insert(1, CountRecords(str(logging_dir / PROGRESS_DIR)))
        executor = make_executor(recipe.executor["type"], recipe.executor, pipeline, spec.tasks, spec.workers,
                                 logging_dir)
        with StageProgress(console, f"{spec.name} ({spec.type.type_name})", tasks, logging_dir,
                           None if skipped else total, counting and not skipped):
            try:
                executor.run()
            except WorkerDied as exc:
                raise StageFailed(f"stage {spec.name}: {exc}") from None
        missing = tasks - _completed(logging_dir)
        if missing:  # datatrove's Ray executor returns normally when tasks fail: fail loudly here
            raise StageFailed(f"stage {spec.name}: {missing}/{tasks} tasks did not complete; see "
                              f"{logging_dir}/logs, then rerun to resume")
        units, counters = collect_stats(logging_dir)
        units = {u: units.get(u, _EMPTY_UNIT) for u in spec.type.units}
        if not (skipped and (spec.output / "stats.json").is_file()):  # stats.json is written after finalize
            stage.finalize(ctx, units)
    result = StageResult(spec.name, spec.type.type_name, spec.output, fingerprint, tasks,
                         time.perf_counter() - start, skipped, units, counters, output_rows(spec.output))
    check_counts(spec.name, units, spec.type.units)
    write_stage_stats(result)
    from datakit.pipeline.cards import write_card  # the folder's dataset card, from stats.json and the manifest

    write_card(result, spec, recipe)
    return result
