"""The source stage types (`sources.git`, `sources.github`, `sources.gharchive`), registered with the stage registry on import."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datatrove.pipeline.base import PipelineStep

from datakit.pipeline.stages import StageContext, StageType, check_at_least, check_choices, run_phase, register
from datakit.sources.github.settings import CrawlSettings


def repo_specs(extra: list, ctx: StageContext):
    """The repositories of a source stage: its `repos` option plus its input, a repos.txt ("owner/name
    [url-or-path]" per line, # comments) or a folder holding one."""
    from datakit.sources.git_mirror import RepoSpec

    lines = list(extra)
    if ctx.input is not None:
        path = ctx.input / "repos.txt" if ctx.input.is_dir() else ctx.input
        lines += [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")]
    specs = [RepoSpec.parse(ln) for ln in lines]
    return specs[:ctx.sample_repos] if ctx.sample_repos >= 0 else specs


@register
class GitSourceStage(StageType):
    type_name = "sources.git"
    worker_modules = ("datakit.sources.steps",)
    summary = "mirror repositories with pygit2 and list their merged PRs as PullRecords"
    units = ("repos", "pulls")
    mirrors = True
    object_storage = True  # its output (the mirrors and a repos.txt input stay local)

    @dataclass
    class Options:
        repos: list = field(default_factory=list)  # "owner/name [url-or-path]" entries, added to the input file's
        fetch: bool = True  # False: use the mirrors already on disk
        include_unmerged: bool = False  # pull refs never merged: quarantined ("unmerged") unless True

    needs_input = False  # `input` is optional: a repos.txt file, or a folder holding one

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datakit.io.records import RecordWriter
        from datakit.sources.steps import GitPullsSource

        return [
            GitPullsSource(repo_specs(self.options.repos, ctx), str(ctx.mirrors), ctx.quarantine, fetch=self.options.fetch,
                           include_unmerged=self.options.include_unmerged, limit=ctx.limit),
            RecordWriter(str(ctx.output), "pull_record"),
        ]

    def finalize(self, ctx: StageContext, units: dict[str, dict]) -> None:
        repos = units.get("repos", {})
        if repos.get("read") and not repos.get("written"):  # nothing could be mirrored: not an empty success
            from datakit.pipeline.runner import StageFailed

            raise StageFailed(f"stage {ctx.name}: every repository failed ({repos['read']}: not mirrored, or its "
                              f"history unreadable); the reasons are in {ctx.quarantine}")


@dataclass
class _GitHubOptions(CrawlSettings):
    repos: list = field(default_factory=list)  # "owner/name [git-url-or-path]" entries, added to the input file's
    state: str = ""  # checkpoints, journals and the HTTP cache (default <output root>/github_state); kept by --force


@register
class GitHubSourceStage(StageType):
    type_name = "sources.github"
    worker_modules = ("datakit.sources.github.steps",)
    summary = ("crawl GitHub's REST + GraphQL API (token pool, rate limits, retries, ETags, checkpoints) → "
               "PullRecords with linked issues; the code from git mirrors")
    units = ("repos", "pulls")
    needs_input = False  # `input` is optional: a repos.txt, or a folder holding one
    mirrors = True
    Options = _GitHubOptions

    def check(self, recipe: Any = None, spec: Any = None) -> None:
        check_choices("code", self.options.code, ("mirror", "api"))
        check_at_least(self.options, ("max_retries", "backoff", "timeout", "max_wait", "secondary_wait"), 0)
        if not 1 <= self.options.page_size <= 100:
            raise ValueError(f"page_size: GitHub pages hold 1 to 100 PRs, got {self.options.page_size}")

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        import dataclasses as dc

        from datakit.io.records import RecordWriter
        from datakit.sources.github.steps import GitHubCrawlSource
        from datakit.sources.github.tokens import TokenPool

        o = self.options
        TokenPool.from_env(o.tokens_env, o.tokens_file or None)  # no token: fail before any task starts
        settings = CrawlSettings(**{f.name: getattr(o, f.name) for f in dc.fields(CrawlSettings)})
        state = Path(o.state).resolve() if o.state else ctx.root / "github_state"
        return [
            GitHubCrawlSource(repo_specs(o.repos, ctx), str(state), str(ctx.mirrors), ctx.quarantine, settings,
                              ctx.limit),
            RecordWriter(str(ctx.output), "pull_record"),
        ]


@register
class GHArchiveSourceStage(StageType):
    type_name = "sources.gharchive"
    worker_modules = ("datakit.sources.steps",)
    summary = ("aggregate GH Archive hour files (PR, issue, comment, review events) → PullRecords; code from mirrors "
               "(two phases: partition by repository, then aggregate)")
    units = ("files", "lines", "pulls")
    needs_input = False  # `input` is optional: a folder of hour files (or one file)
    mirrors = True

    @dataclass
    class Options:
        paths: list = field(default_factory=list)  # hour files (YYYY-MM-DD-H.json.gz), folders of them, or URLs
        repos: list = field(default_factory=list)  # "owner/name [git-url-or-path]": only these (all when empty)
        fetch: bool = True  # mirrors: clone/fetch (False: use the mirrors on disk)
        skip_bots: bool = True

    def hour_files(self, ctx: StageContext) -> list[str]:
        paths = list(self.options.paths) + ([str(ctx.input)] if ctx.input is not None else [])
        files: list[str] = []
        for p in paths:
            if "://" in p:
                files.append(p)
            elif Path(p).is_dir():
                files += sorted(str(f) for f in Path(p).glob("*.json.gz"))
            elif Path(p).is_file():
                files.append(str(Path(p).resolve()))
            else:
                raise ValueError(f"paths: {p} does not exist")
        if not files:
            raise ValueError("no GH Archive hour files (*.json.gz) in paths/input")
        return files

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        """Two phases, each a datatrove pipeline of `tasks` tasks: the map (run here, before the runner's
        pipeline; its completion markers make a rerun skip it) partitions the hour files' wanted lines by
        repository; the reduce (returned: the runner's pipeline) aggregates one partition per task. Every input
        byte is read by one task (see datakit/sources/gharchive.py)."""
        from datakit.io.records import RecordWriter
        from datakit.sources.git_mirror import RepoSpec
        from datakit.sources.steps import GHArchivePartition, GHArchiveSource

        files = self.hour_files(ctx)
        specs = [RepoSpec.parse(r) for r in self.options.repos]
        parts = ctx.output / ".datakit" / "map"
        run_phase(ctx, [GHArchivePartition(files, [s.name for s in specs], str(parts / "parts"), ctx.tasks)],
                  parts / "logs", "map")
        return [
            GHArchiveSource(str(parts / "parts"), specs, str(ctx.mirrors), ctx.quarantine, self.options.fetch,
                            self.options.skip_bots, ctx.limit),
            RecordWriter(str(ctx.output), "pull_record"),
        ]

    def finalize(self, ctx: StageContext, units: dict[str, dict]) -> None:
        """The partitions were read by every reduce task: drop them (their files.json and the markers stay)."""
        for part in (ctx.output / ".datakit" / "map" / "parts").glob("*/*.jsonl.gz"):
            part.unlink()
