"""The SFT stage types, registered with the stage registry (datakit.pipeline.stages.register) on import."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datatrove.pipeline.base import PipelineStep

from datakit.pipeline.stages import StageContext, StageType, check_at_least, check_choices, register


def _check_think(think: list) -> None:
    if think and (len(think) != 2 or not all(isinstance(t, str) and t for t in think)):
        raise ValueError(f"think: expected two tags like [\"<think>\", \"</think>\"] (or [] to drop reasoning), "
                         f"got {think!r}")


def _tags(think: list):
    from datakit.sft.agentless import ThinkTags

    return ThinkTags(*think) if think else ThinkTags(keep=False)


def _writers(ctx: StageContext) -> list[PipelineStep]:
    from datakit.io.records import RecordWriter
    from datakit.sft.messages import MessagesWriter

    return [RecordWriter(str(ctx.output), "sample"), MessagesWriter(str(ctx.output / "messages"))]


@register
class AgentlessSftStage(StageType):
    type_name = "sft.agentless"
    summary = ("Agentless samples + a teacher's generations → BugFixer / TestWriter SFT trajectories (localize, then "
               "repair), validated like a reward (edits parse and apply; localisation recall); + messages Parquet")
    units = ("generations", "trajectories")
    multi_input = True  # Agentless sample folders (samples.agentless or decontam output; other kinds are ignored)
    input_format = "parquet"
    produces = ("sft",)
    object_storage = True  # its generation files are local

    @dataclass
    class Options:
        generations: list = field(default_factory=list)  # JSONL / JSON / Parquet files or folders of teacher answers
        think: list = field(default_factory=lambda: ["<think>", "</think>"])  # reasoning tags; [] drops reasoning
        min_recall: float = 0.0  # a localisation answer finding less of the PR's files is quarantined (low_recall)

    def check(self, recipe: Any = None, spec: Any = None) -> None:
        o = self.options
        if not o.generations:
            raise ValueError("generations: name the teacher's answers (files or folders of {sample_id, reasoning, "
                             "answer} rows)")
        if not 0.0 <= o.min_recall <= 1.0:
            raise ValueError(f"min_recall must be within [0, 1], got {o.min_recall}")
        _check_think(o.think)
        from datakit.synth.readers import list_inputs

        list_inputs(list(o.generations), "generations:")  # a missing file fails --check, not the stage's start

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datakit.sft.steps import AgentlessTrajectories
        from datakit.synth.readers import list_inputs, resolve

        o = self.options
        files = [str(p) for p in list_inputs(list(o.generations), "generations:")]
        roots = [resolve(p) for p in o.generations]
        root = str(roots[0] if roots[0].is_dir() else roots[0].parent) if len(roots) == 1 else None
        return [AgentlessTrajectories([str(p) for p in ctx.inputs], files, ctx.quarantine, _tags(o.think),
                                      o.min_recall, ctx.limit, root), *_writers(ctx)]


@register
class AgentSftStage(StageType):
    type_name = "sft.agent"
    summary = ("agent trajectories (OpenAI tool calls, SWE-agent, mini-SWE-agent, OpenHands) → multi-turn SFT chats, "
               "filtered by the source's verdict and turn / token budgets; + messages Parquet")
    units = ("rows",)
    needs_input = False  # `input` is optional: a file or folder, added to `paths`
    produces = ("sft",)
    object_storage = True  # its output (its `paths` are local files)

    @dataclass
    class Options:
        paths: list = field(default_factory=list)  # files / folders; "datakit:demo/fixtures/sft/agent" = shipped data
        format: str = "auto"  # auto | openai | mini_swe_agent | swe_agent | openhands
        max_turns: int = 100  # assistant turns; more: filtered (too_many_turns)
        max_tokens: int = 131_072  # tokens of the rendered chat; more: filtered (too_many_tokens)
        require_resolved: bool = False  # True: a trajectory whose source gives no verdict is filtered (no_verdict)
        tokenizer: str = "qwen2.5"  # counts max_tokens
        think: list = field(default_factory=lambda: ["<think>", "</think>"])  # reasoning tags; [] drops reasoning
        max_turn_chars: int = 200_000

    def check(self, recipe: Any = None, spec: Any = None) -> None:
        from datakit.synth.formats import FORMATS

        check_choices("format", self.options.format, ("auto", *(f for f in FORMATS if f != "prompt_answer")))
        check_at_least(self.options, ("max_turns", "max_tokens", "max_turn_chars"), 1)
        _check_think(self.options.think)

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datakit.sft.agent import AgentLimits
        from datakit.sft.steps import AgentTrajectories
        from datakit.synth.readers import list_inputs

        o = self.options
        inputs = list_inputs(list(o.paths) + ([str(ctx.input)] if ctx.input is not None else []))
        limits = AgentLimits(o.max_turns, o.max_tokens, o.require_resolved)
        return [AgentTrajectories([str(p) for p in inputs], ctx.quarantine, o.format, limits, _tags(o.think),
                                  o.tokenizer, o.max_turn_chars, limit=ctx.limit), *_writers(ctx)]
