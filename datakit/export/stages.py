"""The Megatron export stage type (`export.megatron`), registered with the stage registry on import."""

from __future__ import annotations

from dataclasses import dataclass

from datatrove.pipeline.base import PipelineStep

from datakit.pipeline.stages import StageContext, StageType, register


@register
class MegatronExportStage(StageType):
    type_name = "export.megatron"
    worker_modules = ("datakit.export.steps",)
    summary = ("token shards → Megatron MMIDIDX .bin/.idx (int32, one document per sample) + blend file; a "
               "validation split → valid/*.bin/.idx + valid_blend.txt (--valid-data-path)")
    units = ("shards",)
    object_storage = True

    @dataclass
    class Options:
        pass

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datakit.export.steps import MegatronExport
        from datakit.tokens.shards import verify_manifest

        manifest = verify_manifest(ctx.input)  # refuse shards that changed since their manifest, before any output
        from datakit.export.megatron import check_vocab_fits

        check_vocab_fits(manifest["tokenizer"]["vocab_size"], "int32")
        shards = [str(ctx.input / name) for name in sorted(manifest["files"])]
        valid = []
        if manifest.get("validation"):
            vdir = (ctx.input / manifest["validation"]["manifest"]).parent
            valid = [str(vdir / name) for name in sorted(verify_manifest(vdir)["files"])]
        return [MegatronExport(shards, str(ctx.output), valid)]

    def finalize(self, ctx: StageContext, units: dict[str, dict]) -> None:
        import json

        from datakit.export.steps import write_folder_blend
        from datakit.tokens.shards import VALID_DIR, file_sha256, verify_manifest

        source = verify_manifest(ctx.input)
        train = write_folder_blend(ctx.output, ctx.output / "blend.txt")
        manifest = {**source, "format": "megatron-mmidx", "files": train["files"], "documents": train["documents"],
                    "tokens": train["tokens"], "source_manifest": file_sha256(ctx.input / "manifest.json")}
        if source.get("validation"):
            # its own dataset for --valid-data-path; per_split.json is the same for --per-split-data-args-path
            valid = write_folder_blend(ctx.output / VALID_DIR, ctx.output / "valid_blend.txt", required=False)
            manifest["validation"] = {**source["validation"], **valid,
                                      "files": {f"{VALID_DIR}/{k}": v for k, v in valid["files"].items()}}
            split_words = {"train": (ctx.output / "blend.txt").read_text().split(), "test": None,
                           "valid": (ctx.output / "valid_blend.txt").read_text().split() if valid["blend"] else None}
            (ctx.output / "per_split.json").write_text(json.dumps(split_words, indent=2) + "\n")
        (ctx.output / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
