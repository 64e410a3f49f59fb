"""The stage registry: what a recipe's `stage:` names, with its options, turned into a list of PipelineSteps.

A stage type declares its options as a dataclass (defaults = documented defaults) and either builds datatrove
steps (`build`) or, for the few local set-up stages, does its work directly (`run_local`). Stage types live in
their package's `stages` module (`datakit/tokens/stages.py`, …) and register themselves (`register`); this module
imports no stage package but by name (`STAGE_MODULES`), so the registry does not depend on the stages' layers.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from datatrove.pipeline.base import PipelineStep



@dataclass
class StageContext:
    """Everything a stage needs from the recipe, resolved: paths are absolute."""

    name: str
    output: Path  # this stage's output folder
    input: Path | None  # a previous stage's output folder, or a path from the recipe
    root: Path  # the recipe's output root
    mirrors: Path  # where git mirrors live (shared by sources and samples)
    limit: int = -1
    fingerprint: str | None = None
    tasks: int = 1  # the stage's task count
    # (pipeline, tasks, logging_dir) → an executor of the recipe's kind, for a stage that runs a phase of its own
    # before the runner's pipeline (sources.gharchive's map); None: a local one
    phase_executor: Callable[[list, int, Path], Any] | None = None
    executor_kind: str = "local"
    inputs: list = field(default_factory=list)  # every input folder/path, `input` first (see StageType.multi_input)
    sample_repos: int = -1  # ≥ 0: source stages read only their first N repositories (`datakit plan`'s sample run)

    @property
    def quarantine(self) -> str:
        return str(self.output / "quarantine")


class StageType:
    """Subclass per stage. `Options` is a dataclass; unknown keys are a recipe error."""

    type_name: ClassVar[str]
    summary: ClassVar[str]
    needs_input: ClassVar[bool] = True
    local_only: ClassVar[bool] = False  # runs in-process, no executor (set-up work, e.g. the demo repository)
    # the modules of its steps: datatrove's forkserver imports them once for all the workers (pipeline/workers.py)
    worker_modules: ClassVar[tuple[str, ...]] = ()
    multi_input: ClassVar[bool] = False  # reads every path of `ctx.inputs` (a recipe's `inputs:` list)
    units: ClassVar[tuple[str, ...]] = ()
    input_format: ClassVar[str] = ""  # "parquet": inputs are folders of record files, checked before build
    object_storage: ClassVar[bool] = False  # inputs and output may be fsspec URLs (s3://…; datakit.io.storage)
    mirrors: ClassVar[bool] = False  # reads the git mirrors (which stay local: pygit2)
    # sample kinds written (datakit.tokens.mixture.SOURCE_BY_KIND's keys); "inputs": its inputs' (a filter);
    # None: not declared (a mixture source is then not checked against what the recipe makes)
    produces: ClassVar[tuple[str, ...] | str | None] = None

    @dataclass
    class Options:
        pass

    def __init__(self, options: Any):
        self.options = options

    def check(self, recipe: Any = None, spec: Any = None) -> None:
        """Option *values* (enumerations, ranges, names the recipe must hold), checked when the recipe loads so
        `--check` catches them and no stage runs first. Raises ValueError("option: what is wrong (what to do)");
        `recipe`/`spec` (datakit.recipe) may be None for a stage checked on its own."""

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        raise NotImplementedError

    def run_local(self, ctx: StageContext) -> dict[str, dict]:
        raise NotImplementedError

    def finalize(self, ctx: StageContext, units: dict[str, dict]) -> None:
        """Runs once after every task has completed (e.g. to write a manifest over all shards)."""

    def uses_mirrors(self) -> bool:
        return self.mirrors

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls.Options)]


def check_choices(option: str, values, known) -> None:
    """ValueError naming the values not in `known`, the known ones and the closest, for a typo."""
    import difflib

    known = list(known)
    for value in [values] if isinstance(values, str) else values:
        if value not in known:
            close = difflib.get_close_matches(str(value), [str(k) for k in known], n=1)
            raise ValueError(f"{option}: unknown {value!r} (known: {', '.join(map(str, known))})"
                             + (f"; did you mean {close[0]!r}?" if close else ""))


def check_at_least(options: Any, names: tuple[str, ...], low: int) -> None:
    for name in names:
        if getattr(options, name) < low:
            raise ValueError(f"{name} must be ≥ {low}, got {getattr(options, name)}")



def run_phase(ctx: StageContext, pipeline: list[PipelineStep], logging_dir: Path, what: str) -> None:
    """Run a stage's own datatrove pipeline of `ctx.tasks` tasks to completion, on the recipe's executor (every
    executor's run() returns when its tasks ended: datakit's Slurm one waits for its job array)."""
    if ctx.phase_executor is not None:
        executor = ctx.phase_executor(pipeline, ctx.tasks, logging_dir)
    else:
        from datatrove.executor import LocalPipelineExecutor

        executor = LocalPipelineExecutor(pipeline, tasks=ctx.tasks, workers=1, logging_dir=str(logging_dir))
    executor.run()
    done = logging_dir / "completions"
    missing = ctx.tasks - (sum(1 for _ in done.iterdir()) if done.is_dir() else 0)
    if missing:
        raise ValueError(f"{what} phase: {missing}/{ctx.tasks} tasks did not complete; see {logging_dir}/logs, "
                         "then rerun to resume")


STAGES: dict[str, type[StageType]] = {}  # type name → stage type, filled by `register`


def register(cls: type[StageType]) -> type[StageType]:
    """A stage package declares its stage types in its own `stages` module and registers each with this decorator,
    so this module needs no import of the package (only its name in STAGE_MODULES)."""
    if cls.type_name in STAGES and STAGES[cls.type_name] is not cls:
        raise ValueError(f"two stage types named {cls.type_name!r}")
    STAGES[cls.type_name] = cls
    return cls


# the `stages` module of each stage package, in data-flow order: each declares its stage types and registers them
STAGE_MODULES = ("datakit.demo.stages", "datakit.sources.stages", "datakit.samples.stages", "datakit.bundles.stages",
                 "datakit.decontam.stages", "datakit.synth.stages", "datakit.tokens.stages", "datakit.export.stages",
                 "datakit.sft.stages", "datakit.dedup.stages", "datakit.redact.stages")


def ordered_stages() -> list[tuple[str, type[StageType]]]:
    """(type name, stage type) in STAGE_MODULES order, then each module's own order: the same whichever stage
    module a process imported first (STAGES is in registration order)."""
    rank = {module: i for i, module in enumerate(STAGE_MODULES)}
    return sorted(STAGES.items(), key=lambda item: rank.get(item[1].__module__, len(rank)))


for _module in STAGE_MODULES:
    importlib.import_module(_module)
