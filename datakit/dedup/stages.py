"""The dedup stage type, registered with the stage registry (datakit.pipeline.stages.register) on import."""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from datatrove.pipeline.base import PipelineStep

from datakit.pipeline.stages import StageContext, StageType, register, run_phase

WORK = "dedup"  # under the stage's .datakit/ folder: keys, signatures, bucket pairs, clusters, decisions
# inputs up to this size run their phases in this process: a worker pool costs seconds to start, more than the work
IN_PROCESS_BYTES = 64 * 2**20


@register
class DedupStage(StageType):
    type_name = "dedup"
    summary = ("exact (normalised content hash) and near-duplicate (datatrove MinHash LSH, code word tokens) removal "
               "across repositories, forks, mirrors and vendored copies; the upstream / oldest copy is kept")
    units = ("agentless", "commit_bundles", "synthetic", "sft")
    multi_input = True  # `inputs: [samples, bundles, synth]`: Sample folders, deduplicated together
    input_format = "parquet"
    produces = "inputs"  # a filter: the kinds of its inputs

    @dataclass
    class Options:
        near: bool = True  # False: exact duplicates only (no MinHash phases)
        # tokens per shingle, LSH bands and hashes per band: pairs above Jaccard ≈ (1/b)^(1/r) = 0.76 are found.
        # Chosen on tests/test_dedup_pairs.py's 760 labelled pairs (seeds 1-3): precision 0.994-0.997, recall
        # 0.905-0.918; 20 × 10 finds more (0.94-0.95) but precision falls to 0.96-0.99; 5-grams (datatrove's
        # default, 14 × 8) lose renamed copies (recall ≈ 0.83 on the first 640 pairs)
        n_grams: int = 3
        num_buckets: int = 25
        hashes_per_bucket: int = 12
        seed: int = 1

    def minhash_config(self):
        from datatrove.pipeline.dedup.minhash import MinhashConfig
        from datatrove.utils.text import TextNormConfig

        o = self.options
        # punctuation is code: keep it (datatrove's default removes it); numbers → 0, case and whitespace folded
        norm = TextNormConfig(lowercase=True, norm_whitespace=True, remove_punctuation=False,
                              norm_unicode_diacritics=True, norm_numbers=True)
        return MinhashConfig(n_grams=o.n_grams, num_buckets=o.num_buckets, hashes_per_bucket=o.hashes_per_bucket,
                             seed=o.seed, norm_config=norm)

    def check(self, recipe=None, spec=None) -> None:
        for name in ("n_grams", "num_buckets", "hashes_per_bucket"):
            if getattr(self.options, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self.options, name)}")

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datatrove.pipeline.dedup.minhash import MinhashDedupBuckets, MinhashDedupCluster

        from datakit.dedup.content import CodeWordTokenizer
        from datakit.dedup.steps import ChooseKept, DedupFilter, DedupKeys, EveryBand, SampleMinhashSignature
        from datakit.io.records import RecordWriter
        from datakit.io.row_shards import RowShardedRecordReader

        o = self.options
        self.check()
        inputs = ctx.inputs or [ctx.input]
        work = ctx.output / ".datakit" / WORK
        keys, sigs, dups, clusters, decisions = (str(work / d) for d in ("keys", "sigs", "dups", "clusters",
                                                                          "decisions"))

        def reader():  # phases 1 and 4 must read the same samples in the same order: one reader, twice
            return RowShardedRecordReader(str(inputs[0]), limit=ctx.limit, extra_folders=[str(p) for p in inputs[1:]])

        config = self.minhash_config()
        size = sum(p.stat().st_size for folder in inputs for p in Path(folder).glob("*.parquet"))
        small = size <= IN_PROCESS_BYTES and ctx.executor_kind == "local"
        if small:
            ctx = dataclasses.replace(ctx, phase_executor=None)  # run_phase's default: one worker, this process
        first = [reader(), DedupKeys(keys)]
        if o.near:
            first.append(SampleMinhashSignature(sigs, config, language=CodeWordTokenizer()))
        run_phase(ctx, first, work / "logs" / "signatures", "signatures")
        choose = [ChooseKept(keys, clusters, decisions, ctx.tasks)]
        if o.near:
            bands = MinhashDedupBuckets(sigs, dups, config=config)
            # one task per band; a small input's bands one after the other in one task (a task's logger set-up
            # alone costs more than a small band)
            run_phase(dataclasses.replace(ctx, tasks=1 if small else o.num_buckets),
                      [EveryBand(bands, o.num_buckets) if small else bands], work / "logs" / "buckets", "buckets")
            choose.insert(0, MinhashDedupCluster(dups, clusters, config=config, save_cluster_id=True))
        run_phase(dataclasses.replace(ctx, tasks=1), choose, work / "logs" / "clusters", "clusters")
        return [reader(), DedupFilter(clusters, decisions, ctx.quarantine), RecordWriter(str(ctx.output), "sample")]

    def finalize(self, ctx: StageContext, units: dict[str, dict]) -> None:
        """dedup.json: the settings and what was found (components, duplicates per source and reason); the
        per-sample decisions stay in .datakit/dedup/decisions, the bulky phase files go."""
        import pyarrow.parquet as pq

        work = ctx.output / ".datakit" / WORK
        table = pq.read_table(work / "decisions")
        sizes: dict[int, int] = {}
        for c in table.column("component").to_pylist():
            sizes[c] = sizes.get(c, 0) + 1
        found = {u: dict(sorted(units[u]["filtered"].items())) for u in self.units if units[u]["filtered"]}
        doc = {"settings": dataclasses.asdict(self.options),
               "tokenizer": "datakit.dedup.content.CodeWordTokenizer (\\w+ | runs of punctuation)",
               "keep_rule": "upstream (meta.fork_of unset) first, then oldest (source.crawled_at), repo, pr, id",
               "components": len(sizes), "largest_component": 1 + max(sizes.values(), default=0),
               "duplicates": found}
        (ctx.output / "dedup.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        for d in ("keys", "sigs", "dups", "clusters"):
            shutil.rmtree(work / d, ignore_errors=True)
