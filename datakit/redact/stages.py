"""The `redact` stage type, registered with the stage registry (datakit.pipeline.stages.register) on import."""

from __future__ import annotations

from dataclasses import dataclass

from datatrove.pipeline.base import PipelineStep

from datakit.pipeline.stages import StageContext, StageType, register


@register
class RedactStage(StageType):
    type_name = "redact"
    summary = ("secrets (GitHub, AWS, GCP, Azure, Slack, Stripe, … tokens, private keys, URL passwords, keys "
               "assigned to secret names) and e-mail addresses → typed placeholders, the same within a sample; "
               "edit samples and bundle diffs re-verified, a sample that cannot be kept consistent quarantined")
    units = ("samples",)
    multi_input = True  # `inputs: [samples, bundles, synth]`: every Sample folder, read as one sequence of rows
    input_format = "parquet"
    produces = "inputs"  # the kinds it reads, redacted
    object_storage = True

    @dataclass
    class Options:
        pass

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datakit.io.records import RecordWriter
        from datakit.io.row_shards import RowShardedRecordReader
        from datakit.redact.detect import find_secrets
        from datakit.redact.steps import RedactSamples

        find_secrets("")  # fails here, before any work, when detect-secrets is missing or lacks a plugin
        inputs = [str(p) for p in ctx.inputs or [ctx.input]]
        return [
            RowShardedRecordReader(inputs[0], text_field="text", limit=ctx.limit, extra_folders=inputs[1:]),
            RedactSamples(ctx.quarantine),
            RecordWriter(str(ctx.output), "sample"),
        ]
