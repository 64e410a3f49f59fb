"""The demo stage type (`demo.repo`), registered with the stage registry on import."""

from __future__ import annotations

from dataclasses import dataclass, field


from datakit.pipeline.stages import StageContext, StageType, register


@register
class DemoRepoStage(StageType):
    type_name = "demo.repo"
    summary = "build the embedded demo git repository (offline, deterministic) and a repos.txt naming it"
    needs_input = False
    local_only = True
    units = ("repos",)

    @dataclass
    class Options:
        also_as: list = field(default_factory=list)  # list the same repository under these names too

    def run_local(self, ctx: StageContext) -> dict[str, dict]:
        from datakit.demo.build_repo import DEMO_REPO_NAME, build_demo_repo

        path = build_demo_repo(ctx.output)
        names = [DEMO_REPO_NAME, *self.options.also_as]
        (ctx.output / "repos.txt").write_text("".join(f"{n} {path}\n" for n in names), encoding="utf-8")
        return {"repos": {"read": 1, "written": 1, "quarantined": {}, "filtered": {}}}
