"""Pipeline steps of the `sources` stage."""

from __future__ import annotations

from datakit.io.records import as_document
from datakit.pipeline.step import CountingStep
from datakit.sources.git_mirror import MirrorError, RepoSpec, ensure_mirror
from datakit.sources.git_pulls import find_pulls


class GitPullsSource(CountingStep):
    """Mirror each repository (tasks share the repository list: `repos[rank::world_size]`) and yield its PRs."""

    name = "🌿 git pulls"
    type = "📖 - READER"

    def __init__(self, repos: list[RepoSpec], mirrors_dir: str, quarantine_dir: str, fetch: bool = True,
                 include_unmerged: bool = False, limit: int = -1):
        super().__init__("sources.git", quarantine_dir)
        self.repos = repos
        self.mirrors_dir = mirrors_dir
        self.fetch = fetch
        self.include_unmerged = include_unmerged
        self.limit = limit

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if data:
            yield from data
        emitted = 0
        try:
            for spec in self.repos[rank::world_size]:
                self.read("repos")
                try:
                    repo = ensure_mirror(spec, self.mirrors_dir, self.fetch)
                except MirrorError as exc:
                    self.reject("repos", {"id": spec.name, "name": spec.name, "url": spec.url}, "mirror_failed",
                                str(exc), rank)
                    continue
                self.written("repos")
                for pr in find_pulls(repo, spec.name):
                    if 0 <= self.limit <= emitted:
                        return
                    self.read("pulls")
                    if pr["merged_at"] is None and not self.include_unmerged:
                        self.reject("pulls", pr, "unmerged", f"refs/pull/{pr['number']}/head is not in the default branch", rank)
                        continue
                    self.written("pulls")
                    emitted += 1
                    yield as_document(pr)
        finally:
            self.quarantine.close()
