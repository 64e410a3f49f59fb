"""The decontamination stage type (`decontam`), registered with the stage registry on import."""

from __future__ import annotations

from dataclasses import dataclass

from datatrove.pipeline.base import PipelineStep

from datakit.pipeline.stages import StageContext, StageType, register


@register
class DecontamStage(StageType):
    type_name = "decontam"
    worker_modules = ("datakit.decontam.steps",)
    summary = "drop SWE-bench Verified leakage (repos, renames, forks, mirrors, commits, text overlap) into a quarantine"
    units = ("samples",)
    multi_input = True  # `inputs: [samples, bundles, synth]`: every kind of sample is decontaminated
    input_format = "parquet"
    produces = "inputs"  # a filter
    object_storage = True

    @dataclass
    class Options:
        index: str = ""  # a fingerprint index file; "" = the one shipped with datakit (SWE-bench Verified)
        threshold: float = -1.0  # text rule: fraction of a reference item's n-grams; < 0 = the documented default
        min_matched: int = -1  # text rule: matched n-grams that suffice on their own; < 0 = the default
        text_rules: bool = True
        mirrors: bool = True  # mirror rules (git histories); False = off, recorded in stats.json and the audit
        roots: str = ""  # extra root commits (a `datakit decontam build-roots` file), added to the shipped ones

    def uses_mirrors(self) -> bool:
        return self.options.mirrors

    def _check_mirrors(self, ctx: StageContext) -> None:
        """Fail closed: samples from git mirrors need the mirrors, unless the rules are turned off explicitly."""
        import pyarrow.parquet as pq

        from datakit.decontam.steps import MIRROR_KINDS, mirror_status
        from datakit.io.storage import arrow, as_path

        problem = mirror_status(str(ctx.mirrors))
        if problem is None:
            return
        for path in [p for folder in (ctx.inputs or [ctx.input]) for p in sorted(as_path(folder).glob("*.parquet"))]:
            src, fs = arrow(path)
            names = pq.read_schema(src, filesystem=fs).names
            if "source" not in names:
                continue
            table = pq.read_table(src, columns=["source"], filesystem=fs)
            kinds = table.column("source").combine_chunks().field("kind")
            if any(k in MIRROR_KINDS for k in kinds.to_pylist()):
                raise ValueError(f"decontam: samples in {path} came from git mirrors but the mirror rules cannot "
                                 f"run ({problem}); pass --mirrors DIR (recipe: mirrors), or --no-mirror-rules "
                                 "(recipe: options.mirrors: false) to record in stats and audit that they were off")

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datakit.decontam.index import FingerprintIndex, default_index
        from datakit.decontam.repos import reference_root_commits
        from datakit.decontam.steps import DecontamFilter

        o = self.options
        FingerprintIndex.load(o.index) if o.index else default_index()  # fail early
        reference_root_commits(o.roots or None)
        if o.mirrors:
            self._check_mirrors(ctx)
        return [
            DecontamFilter([str(p) for p in ctx.inputs or [ctx.input]], str(ctx.output), ctx.quarantine,
                           str(ctx.output / "matches"),
                           o.index or None, str(ctx.mirrors) if o.mirrors else None,
                           o.threshold if o.threshold >= 0 else None, o.min_matched if o.min_matched >= 0 else None,
                           o.text_rules, mirror_rules=o.mirrors, roots_file=o.roots or None, limit=ctx.limit),
        ]

    def finalize(self, ctx: StageContext, units: dict[str, dict]) -> None:
        """decontam.json: the effective settings (decision rule, mirror rules, root commits), for the audit."""
        import json

        from datakit.decontam.content import DEFAULT_MIN_MATCHED, DEFAULT_THRESHOLD
        from datakit.decontam.index import FingerprintIndex, default_index
        from datakit.decontam.repos import reference_root_commits, repos_without_roots

        o = self.options
        index = FingerprintIndex.load(o.index) if o.index else default_index()
        threshold = o.threshold if o.threshold >= 0 else DEFAULT_THRESHOLD
        min_matched = o.min_matched if o.min_matched >= 0 else DEFAULT_MIN_MATCHED
        settings = {"index": o.index or "shipped:swebench_verified", "n": index.n,
                    "threshold": threshold, "min_matched": min_matched,
                    "decision_rule": f"a text matches a reference item when score = matched distinct {index.n}-grams "
                                     f"/ the item's {index.n}-grams >= {threshold} OR matched distinct "
                                     f"{index.n}-grams >= {min_matched}",
                    "text_rules": o.text_rules, "mirrors": o.mirrors, "mirror_rules": o.mirrors,
                    "mirrors_dir": str(ctx.mirrors) if o.mirrors else None, "roots": o.roots or None,
                    "repos_without_roots": repos_without_roots(reference_root_commits(o.roots or None))}
        (ctx.output / "decontam.json").write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
