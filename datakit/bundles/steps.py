"""Pipeline step of the `bundles.commits` stage: PullRecords + their git mirrors → commit bundle samples."""

from __future__ import annotations

from collections import Counter

import pygit2

from datakit.bundles.build import BundleLimits, BundleOut, build_bundle
from datakit.bundles.diffs import commit_changes
from datakit.bundles.render import BundleCommit
from datakit.io.records import as_document
from datakit.pipeline.step import CountingStep
from datakit.sources.git_mirror import MirrorError, mirror_path, open_mirror
from datakit.sources.git_pulls import lookup_commit


class CommitBundles(CountingStep):
    """One bundle per PullRecord, or the PR filtered (bounds, nothing left) or quarantined (missing mirror or
    commits, a diff that does not round-trip). Unit: `pulls` (read = written + quarantined + filtered)."""

    name = "📦 commit bundles"
    type = "🔨 - BUILDER"

    def __init__(self, mirrors_dir: str, quarantine_dir: str, limits: BundleLimits = BundleLimits()):
        super().__init__("bundles", quarantine_dir)
        self.mirrors_dir = mirrors_dir
        self.limits = limits
        self._repos: dict[str, pygit2.Repository | MirrorError] = {}

    def _mirror(self, name: str) -> pygit2.Repository:
        if name not in self._repos:
            try:
                self._repos[name] = open_mirror(mirror_path(self.mirrors_dir, name))
            except MirrorError as exc:
                self._repos[name] = exc
        if isinstance(self._repos[name], MirrorError):
            raise self._repos[name]
        return self._repos[name]

    def run(self, data, rank: int = 0, world_size: int = 1):
        try:
            for doc in data:
                pr = doc.metadata
                self.read("pulls")
                with self.track_time():
                    try:
                        sample, counts = self._bundle(pr)
                    except BundleOut as out:
                        if out.filtered:
                            self.filter_out("pulls", out.reason)
                        else:
                            self.reject("pulls", pr, out.reason, out.detail, rank)
                        continue
                    except MirrorError as exc:
                        self.reject("pulls", pr, "missing_mirror", str(exc), rank)
                        continue
                    except Exception as exc:  # a bug or a corrupt object must not lose the record
                        self.reject("pulls", pr, "internal_error", f"{type(exc).__name__}: {exc}", rank)
                        continue
                for key, n in sorted(counts.items()):
                    self.stat_update(key, value=n)
                self.written("pulls")
                yield as_document(sample, "text")
        finally:
            self.close_outputs()
            self._repos.clear()

    def _bundle(self, pr: dict) -> tuple[dict, Counter]:
        repo = self._mirror(pr["repo"])
        found = [lookup_commit(repo, c["sha"]) for c in pr.get("commits") or []]
        landed_only = not found or any(c is None for c in found)
        if landed_only:  # a squash merge whose PR commits are gone: the landed commit stands for them
            landed = lookup_commit(repo, pr.get("merge_sha"))
            if landed is None or not landed.parents:
                missing = [c["sha"] for c, f in zip(pr.get("commits") or [], found) if f is None]
                raise BundleOut("missing_commit", f"commits {missing or '(none listed)'} and the landed commit "
                                f"{pr.get('merge_sha') or '(none)'} are not in the mirror", False)
            found = [landed]
        commits = []
        for c in found:
            is_merge = len(c.parent_ids) > 1 and not landed_only
            changes = [] if is_merge else commit_changes(repo, c)
            commits.append(BundleCommit(str(c.id), c.message, c.author.name, is_merge, changes))
        return build_bundle(pr, commits, self.limits, landed_only)
