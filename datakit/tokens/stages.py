"""The tokens stage type (`tokens`), registered with the stage registry on import."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datatrove.pipeline.base import PipelineStep

from datakit.pipeline.stages import StageContext, StageType, check_at_least, check_choices, register


@register
class TokensStage(StageType):
    type_name = "tokens"
    worker_modules = ("datakit.tokens.steps",)
    summary = "Samples → exact tokenization (Qwen2.5 by default) with loss masks → mixture → packed Parquet shards"
    units = ("documents",)
    multi_input = True  # `inputs: [decontam, synth, …]`: every Sample folder, interleaved
    input_format = "parquet"
    object_storage = True

    @dataclass
    class Options:
        tokenizer: str = "qwen2.5"  # built-in offline Qwen2.5, or a Hugging Face tokenizer name / local path
        engine: str = "auto"  # auto: the fastest engine proven id-identical (gigatoken, fastokens, tiktoken), else hf
        seq_len: int = 32768
        window: int = 100_000  # chunks packed together (best-fit-decreasing) per window
        # …and at most this many tokens: what a task holds, flat with input size; under-filled rows are carried
        # into the next window, so the padding stays low (0.03 % on the 2 GB benchmark; BENCHMARKS.md, tokens)
        window_tokens: int = 2_000_000
        mixture: dict = field(default_factory=dict)  # {source: {tokens | fraction: budget, upsample: factor}}
        target_tokens: float = 0.0  # the stream's size that mixture fractions refer to (after up-sampling)
        copy_gap: int = 0  # rows between copies of an up-sampled document (0 = the rows of 8 M tokens)
        seed: int = 0
        num_threads: int = 1  # encoder threads per task
        # sample kinds whose documents are never chunked across rows: longer than seq_len → left out (too_long)
        never_split: list = field(default_factory=lambda: ["sft"])
        # held-out split by repository: {fraction: 0.01, seed: 0, repos: [owner/name], without_repo: train|valid}
        validation: dict = field(default_factory=dict)

    def _tokenizer(self):
        from datakit.tokens.tokenizer import load_tokenizer

        return load_tokenizer(self.options.tokenizer, self.options.engine)

    def check(self, recipe: Any = None, spec: Any = None) -> None:
        from datakit.tokens.mixture import SOURCE_BY_KIND, parse_mixture, parse_validation

        o = self.options
        check_at_least(o, ("seq_len", "window", "num_threads"), 1)
        check_at_least(o, ("target_tokens",), 0)
        if o.copy_gap < 0:
            raise ValueError(f"copy_gap must be ≥ 0 (0 = the rows of 8 M tokens), got {o.copy_gap}")
        if o.window_tokens < o.seq_len:
            raise ValueError(f"window_tokens must be ≥ seq_len ({o.seq_len}), got {o.window_tokens}")
        mixture = parse_mixture(o.mixture, o.target_tokens)
        # a misspelled source would otherwise match no document: its up-sampling silently skipped
        check_choices("mixture", list(mixture), sorted(set(SOURCE_BY_KIND.values())))
        check_choices("never_split", o.never_split, SOURCE_BY_KIND)
        parse_validation(o.validation)
        kinds = recipe.input_kinds(spec) if recipe is not None else None
        made = {SOURCE_BY_KIND[k] for k in kinds or () if k in SOURCE_BY_KIND}
        for name in mixture if kinds is not None else ():
            if name not in made:
                raise ValueError(f"mixture.{name}: no input of this stage makes {name} samples (they make: "
                                 f"{', '.join(sorted(made)) or 'none'}); add the stage that does to `inputs:` "
                                 f"or drop mixture.{name}")

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datakit.io.records import RecordReader
        from datakit.tokens.mixture import parse_mixture, parse_validation
        from datakit.tokens.steps import SAMPLE_COLUMNS, InterleavedRecordReader, PackShards, TokenizeSamples

        o = self.options
        mixture = parse_mixture(o.mixture, o.target_tokens)
        validation = parse_validation(o.validation)
        tok = self._tokenizer()  # fails here, before any work, on an unknown tokenizer
        if ctx.executor_kind == "local":  # tasks may run in this process: the engine builds while the executor starts
            tok.prefetch()
        inputs = ctx.inputs or [ctx.input]
        # batches of 256 records (datatrove's 1,000): a batch's texts are what the reader holds at once (2 GB stage's
        # peak RSS −20 MiB; BENCHMARKS.md, tokens, eighth pass)
        # and only the columns the stage uses (a rejected sample's record is read whole again for its quarantine)
        reading = {"text_field": "text", "limit": ctx.limit, "text_as_bytes": True, "batch_size": 256,
                   "columns": list(SAMPLE_COLUMNS)}
        reader = (RecordReader(str(inputs[0]), **reading) if len(inputs) == 1 else
                  InterleavedRecordReader([str(p) for p in inputs], **reading))
        return [
            reader,
            TokenizeSamples(o.tokenizer, o.engine, ctx.quarantine, mixture, o.seed, o.num_threads, o.seq_len,
                            tuple(o.never_split), validation),
            PackShards(str(ctx.output), o.seq_len, tok.eod_id, o.window, o.copy_gap or None, o.window_tokens,
                       validation.enabled),
        ]

    def finalize(self, ctx: StageContext, units: dict[str, dict]) -> None:
        import json

        from datakit.tokens.mixture import parse_mixture, parse_validation
        from datakit.tokens.shards import write_manifest, write_valid_manifest

        o, tok = self.options, self._tokenizer()
        parts = [json.loads(p.read_text()) for p in sorted(ctx.output.glob("*.pack.json"))]
        shards = sorted(p.name for p in ctx.output.glob("*.parquet"))
        validation = parse_validation(o.validation)
        extra = ({"split": "train", "validation": write_valid_manifest(ctx.output, tok, o.seq_len, validation,
                                                                      ctx.fingerprint)}
                 if validation.enabled else None)
        write_manifest(ctx.output, shards, tok, o.seq_len, parts, parse_mixture(o.mixture, o.target_tokens),
                       ctx.fingerprint, extra=extra)
