"""The synthetic-data stage type (`synth.ingest`), registered with the stage registry on import."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datatrove.pipeline.base import PipelineStep

from datakit.pipeline.stages import StageContext, StageType, check_at_least, check_choices, register


@register
class SynthIngestStage(StageType):
    type_name = "synth.ingest"
    worker_modules = ("datakit.synth.steps",)
    summary = ("synthetic reasoning / agent data (JSONL, .jsonl.zst, Parquet, saved datasets; OpenAI messages, "
               "SWE-agent, mini-SWE-agent, OpenHands, prompt/answer) → validated chat Samples (kind synthetic)")
    units = ("rows",)
    needs_input = False  # `input` is optional: a file or folder, added to `paths`
    produces = ("synthetic",)
    object_storage = True  # its output (its `paths` are local files)

    @dataclass
    class Options:
        paths: list = field(default_factory=list)  # files / folders; "datakit:demo/fixtures/synth" = shipped data
        format: str = "auto"  # auto (by each row's shape) | openai | mini_swe_agent | swe_agent | openhands | prompt_answer
        max_turn_chars: int = 200_000  # a longer turn (content + reasoning + tool arguments) is quarantined
        loader: str = "datakit"  # datakit (streaming readers) | json | parquet (datasets.load_dataset, local files)
        keep_exit_status: list = field(default_factory=list)  # agent runs: keep only these exit statuses ([] = all)

    def check(self, recipe: Any = None, spec: Any = None) -> None:
        from datakit.synth.formats import FORMATS

        check_choices("format", self.options.format, ("auto", *FORMATS))
        check_choices("loader", self.options.loader, ("datakit", "json", "parquet"))
        check_at_least(self.options, ("max_turn_chars",), 1)

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datakit.io.records import RecordWriter
        from datakit.synth.readers import list_inputs
        from datakit.synth.steps import SynthIngest

        o = self.options
        inputs = list_inputs(list(o.paths) + ([str(ctx.input)] if ctx.input is not None else []))
        return [
            SynthIngest([str(p) for p in inputs], ctx.quarantine, o.format, o.max_turn_chars, o.loader, ctx.limit,
                        keep_exit_status=tuple(o.keep_exit_status)),
            RecordWriter(str(ctx.output), "sample"),
        ]
