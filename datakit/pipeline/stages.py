"""The stage registry: what a recipe's `stage:` names, with its options, turned into a list of PipelineSteps.

A stage type declares its options as a dataclass (defaults = documented defaults) and either builds datatrove
steps (`build`) or, for the few local set-up stages, does its work directly (`run_local`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

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

    @property
    def quarantine(self) -> str:
        return str(self.output / "quarantine")


class StageType:
    """Subclass per stage. `Options` is a dataclass; unknown keys are a recipe error."""

    type_name: ClassVar[str]
    summary: ClassVar[str]
    needs_input: ClassVar[bool] = True
    local_only: ClassVar[bool] = False  # runs in-process, no executor (set-up work, e.g. the demo repository)
    units: ClassVar[tuple[str, ...]] = ()

    @dataclass
    class Options:
        pass

    def __init__(self, options: Any):
        self.options = options

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        raise NotImplementedError

    def run_local(self, ctx: StageContext) -> dict[str, dict]:
        raise NotImplementedError

    def finalize(self, ctx: StageContext, units: dict[str, dict]) -> None:
        """Runs once after every task has completed (e.g. to write a manifest over all shards)."""

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls.Options)]


# ---------------------------------------------------------------------------------------------------- the stages


class DemoRepoStage(StageType):
    type_name = "demo.repo"
    summary = "build the embedded demo git repository (offline, deterministic) and a repos.txt naming it"
    needs_input = False
    local_only = True
    units = ("repos",)

    @dataclass
    class Options:
        pass

    def run_local(self, ctx: StageContext) -> dict[str, dict]:
        from datakit.demo.build_repo import DEMO_REPO_NAME, build_demo_repo

        path = build_demo_repo(ctx.output)
        (ctx.output / "repos.txt").write_text(f"{DEMO_REPO_NAME} {path}\n", encoding="utf-8")
        return {"repos": {"read": 1, "written": 1, "quarantined": {}, "filtered": {}}}


class GitSourceStage(StageType):
    type_name = "sources.git"
    summary = "mirror repositories with pygit2 and list their merged PRs as PullRecords"
    units = ("repos", "pulls")

    @dataclass
    class Options:
        repos: list = field(default_factory=list)  # "owner/name [url-or-path]" entries, added to the input file's
        fetch: bool = True  # False: use the mirrors already on disk
        include_unmerged: bool = False  # pull refs never merged: quarantined ("unmerged") unless True

    needs_input = False  # `input` is optional: a repos.txt file, or a folder holding one

    def repo_specs(self, ctx: StageContext):
        from datakit.sources.git_mirror import RepoSpec

        lines = list(self.options.repos)
        if ctx.input is not None:
            path = ctx.input / "repos.txt" if ctx.input.is_dir() else ctx.input
            lines += [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")]
        return [RepoSpec.parse(ln) for ln in lines]

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datakit.io.records import RecordWriter
        from datakit.sources.steps import GitPullsSource

        return [
            GitPullsSource(self.repo_specs(ctx), str(ctx.mirrors), ctx.quarantine, fetch=self.options.fetch,
                           include_unmerged=self.options.include_unmerged, limit=ctx.limit),
            RecordWriter(str(ctx.output), "pull_record"),
        ]


class AgentlessSamplesStage(StageType):
    type_name = "samples.agentless"
    summary = "PullRecords + git mirrors → Agentless BugFixer/TestWriter localize and edit samples"
    units = ("bugfixer", "testwriter")

    @dataclass
    class Options:
        roles: list = field(default_factory=lambda: ["bugfixer", "testwriter"])
        max_files: int = 10
        max_file_bytes: int = 256 * 1024
        max_prompt_bytes: int = 512 * 1024
        structure_cache: int = 200_000  # rendered subtrees kept per repository; 0 disables the cache

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datakit.io.records import RecordReader, RecordWriter
        from datakit.samples.agentless import ROLES, Limits
        from datakit.samples.steps import AgentlessSamples

        unknown = set(self.options.roles) - set(ROLES)
        if unknown:
            raise ValueError(f"roles: unknown {sorted(unknown)} (have {list(ROLES)})")
        limits = Limits(self.options.max_files, self.options.max_file_bytes, self.options.max_prompt_bytes)
        return [
            RecordReader(str(ctx.input), limit=ctx.limit),
            AgentlessSamples(str(ctx.mirrors), ctx.quarantine, limits, tuple(self.options.roles),
                             self.options.structure_cache),
            RecordWriter(str(ctx.output), "sample"),
        ]


STAGES: dict[str, type[StageType]] = {s.type_name: s for s in (DemoRepoStage, GitSourceStage, AgentlessSamplesStage)}
