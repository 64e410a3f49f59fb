"""The commit-bundles stage type (`bundles.commits`), registered with the stage registry on import."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datatrove.pipeline.base import PipelineStep

from datakit.pipeline.stages import StageContext, StageType, check_at_least, register


@register
class CommitBundlesStage(StageType):
    type_name = "bundles.commits"
    worker_modules = ("datakit.io.row_shards", "datakit.bundles.steps")
    summary = "PullRecords + git mirrors → one curated commit-bundle document per PR (diffs verified with unidiff)"
    units = ("pulls",)
    multi_input = True
    input_format = "parquet"
    produces = ("commit_bundle",)
    mirrors = True
    object_storage = True

    @dataclass
    class Options:
        max_commits: int = 100
        max_files: int = 100  # distinct files across the bundle's kept diffs
        max_lines: int = 10_000  # added + deleted lines
        max_bytes: int = 1024 * 1024  # the rendered document

    def check(self, recipe: Any = None, spec: Any = None) -> None:
        check_at_least(self.options, ("max_commits", "max_files", "max_lines", "max_bytes"), 1)

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datakit.bundles.build import BundleLimits
        from datakit.bundles.steps import CommitBundles
        from datakit.io.records import RecordWriter
        from datakit.io.row_shards import RowShardedRecordReader

        o = self.options
        return [
            RowShardedRecordReader(str(ctx.input), limit=ctx.limit, extra_folders=[str(p) for p in ctx.inputs[1:]]),
            CommitBundles(str(ctx.mirrors), ctx.quarantine, BundleLimits(o.max_commits, o.max_files, o.max_lines,
                                                                         o.max_bytes)),
            RecordWriter(str(ctx.output), "sample"),
        ]
