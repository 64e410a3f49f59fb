"""Pipeline steps of the `sources` stage."""

from __future__ import annotations

import hashlib

from datakit.io.records import as_document
from datakit.pipeline.step import CountingStep
from datakit.sources.git_mirror import MirrorError, RepoSpec, ensure_mirror
from datakit.pulls.filters import is_bot
from datakit.pulls.records import MissingCommit, fill_from_mirror, link_and_attach
from datakit.sources.git_pulls import History, discover


class GitPullsSource(CountingStep):
    """Mirror each repository (tasks share the repository list: `repos[rank::world_size]`) and yield its PRs.

    Units: `repos` (mirrored or quarantined as `mirror_failed`), `pulls` (kept; `unmerged` and `missing_object`
    quarantined; `duplicate_change`, `merge_only`, `ambiguous_merge_head` filtered, their records kept in
    `filtered/` with the evidence)."""

    name = "🌿 git pulls"
    type = "📖 - READER"
    QUARANTINED = ("unmerged", "missing_object")

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
                for found in discover(repo, spec.name, full_unmerged=self.include_unmerged):
                    if 0 <= self.limit <= emitted:
                        return
                    self.read("pulls")
                    keep = found.reason is None or (found.reason == "unmerged" and self.include_unmerged)
                    if not keep:
                        if found.reason in self.QUARANTINED:
                            self.reject("pulls", found.record, found.reason, found.detail, rank)
                        else:
                            self.filter_out("pulls", found.reason, record=found.record, detail=found.detail,
                                            rank=rank)
                        continue
                    self.written("pulls")
                    emitted += 1
                    yield as_document(found.record)
        finally:
            self.close_outputs()


class GHArchiveSource(CountingStep):
    """GH Archive hour files → PullRecords: the events give the discussion, the mirror gives the code.

    The events of one PR are spread over many hours, so tasks shard by repository, not by file: every task reads
    every file (a byte-level prefilter skips other types and other tasks' repositories before any parse) and
    keeps `crc32(repo) % world_size == rank`. Task 0 alone counts the files and lines and quarantines broken
    files and bad lines, so nothing is counted twice. Units: `files`, `lines` (task 0) and `pulls`."""

    name = "🗄 gharchive"
    type = "📖 - READER"

    def __init__(self, files: list[str], repos: list[RepoSpec], mirrors_dir: str, quarantine_dir: str,
                 fetch: bool = True, skip_bots: bool = True, limit: int = -1):
        super().__init__("sources.gharchive", quarantine_dir)
        self.files = files
        self.specs = {s.name.lower(): s for s in repos}
        self.mirrors_dir = mirrors_dir
        self.fetch = fetch
        self.skip_bots = skip_bots
        self.limit = limit
        self._mirrors: dict[str, object] = {}  # repository → its mirror, or the MirrorError it gave

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from datakit.sources.gharchive import PullAggregator

        if data:
            yield from data
        aggregator = PullAggregator(set(self.specs) or None, rank, world_size)
        try:
            for path in self.files:
                self._feed(path, aggregator, rank)
            emitted = 0
            for record, issues, state in aggregator.results():
                if 0 <= self.limit <= emitted:
                    return
                if (done := self._complete(record, issues, state, rank)) is not None:
                    emitted += 1
                    yield as_document(done)
        finally:
            self.quarantine.close()

    def _feed(self, path: str, aggregator, rank: int) -> None:
        from datakit.sources.gharchive import ArchiveError, feed_lines, iter_event_lines

        def bad_line(exc: ArchiveError, line: bytes) -> None:
            if rank == 0:
                row = {"id": f"{path}:{hashlib.sha256(line).hexdigest()[:16]}", "file": path,
                       "line": line.decode("utf-8", "replace")}
                self.reject("lines", row, exc.reason, exc.detail, rank)

        counts = {"lines": 0, "parsed": 0, "skipped": 0}
        try:
            counts = feed_lines(_counting(iter_event_lines(path), counts), aggregator, on_bad_line=bad_line)
        except ArchiveError as exc:  # the complete lines before the break were taken
            if rank == 0:
                self.reject("files", {"id": path, "path": path}, exc.reason, exc.detail, rank)
        else:
            if rank == 0:
                self.written("files")
        if rank == 0:
            self.read("files")
            self.stat_update("lines.read", value=counts["lines"])
            self.stat_update("lines.written", value=counts["parsed"])
            self.stat_update("lines.filtered.other_type_or_shard", value=counts["skipped"])

    def _complete(self, record: dict, issues: dict, state: str, rank: int) -> dict | None:
        """Filter, take the code from the mirror (which also decides an unknown state), link."""
        self.read("pulls")
        if state in ("closed_unmerged", "open"):
            self.filter_out("pulls", "unmerged")
            return None
        if self.skip_bots and is_bot(record["author"]):
            self.filter_out("pulls", "bot_author")
            return None
        spec = self.specs.get(record["repo"].lower()) or RepoSpec.parse(record["repo"])
        try:
            repo = self._mirror(spec)
        except MirrorError as exc:
            self.reject("pulls", record, "missing_mirror", str(exc), rank)
            return None
        if not record["merge_sha"] and History.of(repo).find_landed(record["number"], record["head_sha"]) is None:
            self.filter_out("pulls", "unmerged")  # the events never said; nothing on the default branch landed it
            return None
        try:
            fill_from_mirror(record, repo)
        except MissingCommit as exc:
            self.reject("pulls", record, "missing_commit", str(exc), rank)
            return None
        link_and_attach(record, issues)
        for flag in ("no_linked_issue", "landing_not_found"):
            if flag in record["flags"]:
                self.stat_update(f"flags.{flag}")
        self.written("pulls")
        return record

    def _mirror(self, spec: RepoSpec):
        cache = self._mirrors
        key = spec.name.lower()
        if key not in cache:
            try:
                cache[key] = ensure_mirror(spec, self.mirrors_dir, self.fetch)
            except MirrorError as exc:
                cache[key] = exc
        if isinstance(cache[key], Exception):
            raise cache[key]
        return cache[key]


def _counting(lines, counts: dict):
    """Pass lines through, counting them (so a file that breaks half-way still reports the lines it gave)."""
    for line in lines:
        counts["lines"] += 1
        yield line
