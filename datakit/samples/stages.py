"""The Agentless samples stage type (`samples.agentless`), registered with the stage registry on import."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datatrove.pipeline.base import PipelineStep

from datakit.pipeline.stages import StageContext, StageType, check_at_least, check_choices, register


@register
class AgentlessSamplesStage(StageType):
    type_name = "samples.agentless"
    worker_modules = ("datakit.io.row_shards", "datakit.samples.steps")
    summary = "PullRecords + git mirrors → Agentless BugFixer/TestWriter localize and edit samples"
    units = ("bugfixer", "testwriter")
    multi_input = True  # `inputs: [github, gharchive]`: PullRecord folders read as one sequence
    input_format = "parquet"
    produces = ("localize", "edit")
    mirrors = True
    object_storage = True

    @dataclass
    class Options:
        roles: list = field(default_factory=lambda: ["bugfixer", "testwriter"])
        max_files: int = 10
        max_file_bytes: int = 256 * 1024
        max_prompt_bytes: int = 512 * 1024
        # rendered subtrees kept per repository and task (MiB), 0 disables it; 64 hits as often as 256 did on
        # bench_samples' 5,000-file repository and is full within 200 PRs, so memory does not grow with the input
        structure_cache_mb: int = 64

    def check(self, recipe: Any = None, spec: Any = None) -> None:
        from datakit.samples.agentless import ROLES

        if not self.options.roles:
            raise ValueError(f"roles: empty (give one or both of {', '.join(ROLES)})")
        check_choices("roles", self.options.roles, ROLES)
        check_at_least(self.options, ("max_files", "max_file_bytes", "max_prompt_bytes"), 1)
        check_at_least(self.options, ("structure_cache_mb",), 0)

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datakit.io.records import RecordWriter
        from datakit.io.row_shards import RowShardedRecordReader
        from datakit.samples.agentless import Limits
        from datakit.samples.steps import AgentlessSamples

        limits = Limits(self.options.max_files, self.options.max_file_bytes, self.options.max_prompt_bytes)
        return [
            RowShardedRecordReader(str(ctx.input), limit=ctx.limit,  # N tasks share even one repository
                                   extra_folders=[str(p) for p in ctx.inputs[1:]]),
            AgentlessSamples(str(ctx.mirrors), ctx.quarantine, limits, tuple(self.options.roles),
                             self.options.structure_cache_mb),
            RecordWriter(str(ctx.output), "sample"),
        ]
