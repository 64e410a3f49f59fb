"""Recipes: YAML files that declare stages, their inputs, outputs and options, and the executor.

```yaml
name: demo
output: out/demo                # root of every stage's output (default out/<name>); relative to the CWD
mirrors: out/demo/mirrors       # git mirrors (default <output>/mirrors)
executor: {type: local, tasks: 2, workers: 2}   # local | slurm | ray (+ their options)
stages:
  - name: pulls                 # unique; the output folder is <output>/<name> unless `output:` says otherwise
    stage: sources.git          # a registered stage type (`datakit run --list-stages`)
    input: repos.txt            # a path, or the name of an earlier stage (its output folder)
    # inputs: [decontam, synth] # instead of `input`: several, for a stage that reads many (tokens)
    tasks: 4                    # overrides executor.tasks for this stage
    options: {fetch: true}      # the stage type's options; unknown keys are an error
```
Everything is validated before any work starts; errors name the file and the place (`stages[1].options.foo`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from datakit.io.storage import as_path, is_url, resolve
from datakit.pipeline.stages import STAGES, StageType

EXECUTORS = ("local", "slurm", "ray")
RECIPE_KEYS = {"name", "output", "mirrors", "executor", "stages", "description"}
STAGE_KEYS = {"name", "stage", "input", "inputs", "output", "tasks", "workers", "options"}
EXECUTOR_KEYS = {
    "local": {"type", "tasks", "workers"},
    "slurm": {"type", "tasks", "workers", "partition", "time", "cpus_per_task", "mem_per_cpu_gb", "qos",
              "sbatch_args", "env_command", "venv_path", "condaenv"},
    "ray": {"type", "tasks", "workers", "cpus_per_task", "mem_per_cpu_gb", "address"},
}


class RecipeError(ValueError):
    """A recipe that cannot run; raised before any work, naming the file and the place."""


@dataclass
class StageSpec:
    name: str
    type: type[StageType]
    options: Any
    input: str | None
    output: Path
    tasks: int
    workers: int
    raw_options: dict = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)  # every input, `input` first (one entry unless `inputs:`)

    def make(self) -> StageType:
        return self.type(self.options)


@dataclass
class Recipe:
    name: str
    path: Path | None
    output: Path
    mirrors: Path
    executor: dict
    stages: list[StageSpec]
    text_hash: str

    def stage(self, name: str) -> StageSpec:
        return next(s for s in self.stages if s.name == name)

    def input_kinds(self, spec: StageSpec) -> set[str] | None:
        """The sample kinds a stage's inputs can hold, following filters (decontam) upstream; None when unknown
        (an input is a path, or a stage that does not declare `produces`)."""
        kinds: set[str] = set()
        for name in spec.inputs:
            if not any(s.name == name for s in self.stages):
                return None
            upstream = self.stage(name)
            made = upstream.type.produces
            made = self.input_kinds(upstream) if made == "inputs" else made
            if made is None:
                return None
            kinds |= set(made)
        return kinds


def _fail(where: str, msg: str) -> RecipeError:
    return RecipeError(f"{where}: {msg}")


def _check_keys(where: str, got: dict, allowed: set[str]) -> None:
    unknown = sorted(set(got) - allowed)
    if unknown:
        raise _fail(where, f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                           f"(allowed: {', '.join(sorted(allowed))})")


def _positive_int(where: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _fail(where, f"must be a positive integer, got {value!r}")
    return value


def _options(where: str, stage_type: type[StageType], raw: dict) -> Any:
    if not isinstance(raw, dict):
        raise _fail(where, f"must be a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(stage_type.Options)}
    for key, value in raw.items():
        if key not in fields:
            raise _fail(f"{where}.{key}", f"unknown option for stage {stage_type.type_name} "
                                          f"(options: {', '.join(fields) or 'none'})")
        default = fields[key].default if fields[key].default is not dataclasses.MISSING else fields[key].default_factory()
        if default is not None and not isinstance(value, type(default)) and not (
            isinstance(default, float) and isinstance(value, int)
        ):
            raise _fail(f"{where}.{key}", f"expected {type(default).__name__}, got {type(value).__name__} {value!r}")
    return stage_type.Options(**raw)


def parse_recipe(data: Any, source: str = "<recipe>", base_output: str | None = None,
                 executor_override: dict | None = None) -> Recipe:
    if not isinstance(data, dict):
        raise _fail(source, "a recipe is a mapping with `stages:`")
    _check_keys(source, data, RECIPE_KEYS)
    name = data.get("name") or Path(source).stem
    output = resolve(base_output or data.get("output") or f"out/{name}")  # a folder, or a URL (s3://…)
    mirrors = resolve(data["mirrors"]) if data.get("mirrors") else output / "mirrors"

    forced = {k: v for k, v in (executor_override or {}).items() if v is not None}
    executor = dict(data.get("executor") or {})
    executor.update({k: v for k, v in (executor_override or {}).items() if v is not None})
    executor.setdefault("type", "local")
    if executor["type"] not in EXECUTORS:
        raise _fail(f"{source}: executor.type", f"{executor['type']!r} is not one of {', '.join(EXECUTORS)}")
    _check_keys(f"{source}: executor", executor, EXECUTOR_KEYS[executor["type"]])
    missing = [k for k in ("partition", "time") if executor["type"] == "slurm" and k not in executor]
    if missing:  # here, not at the first job array after the local stages ran
        raise _fail(f"{source}: executor", f"slurm needs {' and '.join(missing)} (e.g. {{type: slurm, partition: cpu, "
                    'time: "12:00:00"}; `sinfo` lists the partitions)')
    tasks = _positive_int(f"{source}: executor.tasks", executor.get("tasks", 1))
    workers = _positive_int(f"{source}: executor.workers", executor.get("workers", min(tasks, 2)))

    raw_stages = data.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise _fail(source, "`stages:` must be a non-empty list")
    stages: list[StageSpec] = []
    for i, raw in enumerate(raw_stages):
        where = f"{source}: stages[{i}]"
        if not isinstance(raw, dict):
            raise _fail(where, "each stage is a mapping with `stage:`")
        _check_keys(where, raw, STAGE_KEYS)
        type_name = raw.get("stage")
        if type_name not in STAGES:
            raise _fail(f"{where}.stage", f"unknown stage {type_name!r} (known: {', '.join(sorted(STAGES))})")
        stage_type = STAGES[type_name]
        stage_name = str(raw.get("name") or type_name)
        where = f"{source}: stages[{i}] ({stage_name})"
        if any(s.name == stage_name for s in stages):
            raise _fail(where, f"duplicate stage name {stage_name!r}")
        stage_input = raw.get("input")
        extra_inputs: list[str] = []
        if "inputs" in raw:
            listed = raw["inputs"]
            if stage_input is not None:
                raise _fail(where, "give `input:` or `inputs:`, not both")
            if not isinstance(listed, list) or not listed or not all(isinstance(x, str) for x in listed):
                raise _fail(f"{where}.inputs", f"must be a non-empty list of stage names or paths, got {listed!r}")
            if len(listed) > 1 and not stage_type.multi_input:
                raise _fail(f"{where}.inputs", f"stage {type_name} reads one input (use `input:`)")
            stage_input, extra_inputs = listed[0], listed[1:]
        if stage_input is None and stage_type.needs_input:
            if not stages:
                raise _fail(where, f"stage {type_name} needs an `input:` (a path or an earlier stage)")
            stage_input = stages[-1].name  # default: the previous stage's output
        for k, input_name in enumerate([stage_input, *extra_inputs] if stage_input is not None else []):
            if not any(s.name == input_name for s in stages) and not as_path(input_name).exists():
                at = f"{where}.inputs[{k}]" if "inputs" in raw else f"{where}.input"
                raise _fail(at, f"{input_name!r} is neither an earlier stage nor an existing path")
        stages.append(StageSpec(
            name=stage_name,
            type=stage_type,
            options=_options(f"{where}.options", stage_type, raw.get("options") or {}),
            input=str(stage_input) if stage_input is not None else None,
            output=resolve(raw["output"]) if raw.get("output") else output / stage_name,
            # the command line wins over the stage, the stage over the executor
            tasks=_positive_int(f"{where}.tasks", forced.get("tasks") or raw.get("tasks", tasks)),
            workers=_positive_int(f"{where}.workers", forced.get("workers") or raw.get("workers", workers)),
            raw_options=raw.get("options") or {},
            inputs=[str(stage_input), *extra_inputs] if stage_input is not None else [],
        ))
    text_hash = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    recipe = Recipe(name, Path(source) if source != "<recipe>" else None, output, mirrors, executor, stages, text_hash)
    for i, spec in enumerate(stages):  # option values, before any stage runs (and by --check)
        try:
            check_storage(recipe, spec)
        except ValueError as exc:
            raise _fail(f"{source}: stages[{i}] ({spec.name})", str(exc)) from None
        try:
            spec.make().check(recipe, spec)
        except ValueError as exc:
            where = source if source.startswith("datakit ") else f"{source}: stages[{i}] ({spec.name}).options"
            raise _fail(where, str(exc)) from None
    return recipe


def check_storage(recipe: Recipe, spec: StageSpec) -> None:
    """A stage on object storage (an `s3://…` output or input) must be one that reads and writes through fsspec;
    git mirrors stay local (pygit2)."""
    paths = [spec.output, *(recipe.stage(n).output if any(s.name == n for s in recipe.stages) else n
                            for n in spec.inputs)]
    if not spec.type.object_storage and any(is_url(p) for p in paths):
        supported = sorted(n for n, t in STAGES.items() if t.object_storage)
        raise ValueError(f"stage {spec.type.type_name} reads and writes local folders only (on object storage: "
                         f"{', '.join(supported)}); give it a local `output:` and local inputs")
    if is_url(recipe.mirrors) and spec.make().uses_mirrors():
        raise ValueError(f"mirrors ({recipe.mirrors}) must be a local folder: pygit2 reads git mirrors from a local "
                         "or shared POSIX path; set the recipe's `mirrors:` to one (outputs can stay on object "
                         "storage)")


def load_recipe(path: str | Path, **kwargs) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: no such recipe file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:  # one line: where, and PyYAML's problem (its str() spans five)
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError(f"{where}: not valid YAML: {problem}") from None
    return parse_recipe(data, str(path), **kwargs)
