"""Pipeline steps of the `sources` stage."""

from __future__ import annotations

import hashlib
import itertools
import time

import pygit2

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
                found_prs = discover(repo, spec.name, full_unmerged=self.include_unmerged)
                try:  # the first item walks the default branch: a cut history fails here, not the task
                    first = next(found_prs, None)
                except (KeyError, ValueError, pygit2.GitError, MirrorError) as exc:
                    self.reject("repos", {"id": spec.name, "name": spec.name, "url": spec.url}, "history_unreadable",
                                f"{type(exc).__name__}: {exc}", rank)
                    continue
                self.written("repos")
                for found in itertools.chain([first] if first is not None else [], found_prs):
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


class GHArchivePartition(CountingStep):
    """Map phase of `sources.gharchive`: task m reads only its hour files (`files[m::world_size]`) and appends each
    wanted line, untouched, to the file of its repository's partition (`gharchive.route_line`):
    `<folder>/<m>/<p>.jsonl.gz` (gzip level 1), and what it saw to `<folder>/<m>/files.json` (per file: lines,
    routed, other_type, other_repo, the ArchiveError of a broken file), published atomically when the task ends.
    It counts nothing itself: the reduce's task 0 reports these files once (the map's stats are not the stage's)."""

    name = "🗄 gharchive map"
    type = "🔻 - FILTER"
    FLUSH = 1 << 20  # bytes buffered per partition before a write

    def __init__(self, files: list[str], repos: list[str] | None, folder: str, partitions: int):
        super().__init__("sources.gharchive", folder)
        self.files = files
        self.repos = {r.lower() for r in repos} if repos else None
        self.folder = folder
        self.partitions = partitions

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        import gzip
        import json
        import os
        import shutil
        from pathlib import Path

        from datakit.sources.gharchive import ArchiveError, iter_event_lines, route_line

        final, tmp = Path(self.folder) / f"{rank:05d}", Path(self.folder) / f"{rank:05d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)  # a killed task's leftovers
        tmp.mkdir(parents=True)
        buffers: dict[int, list[bytes]] = {}
        sizes: dict[int, int] = {}
        writers: dict = {}

        def flush(p: int) -> None:
            if p not in writers:
                writers[p] = gzip.open(tmp / f"{p:05d}.jsonl.gz", "wb", compresslevel=1)
            writers[p].write(b"".join(buffers[p]))
            buffers[p], sizes[p] = [], 0

        seen, start, clock = [], _read_bytes(), time.perf_counter()
        mine = self.files[rank::world_size]
        for path in mine:
            counts = {"path": path, "lines": 0, "routed": 0, "other_type": 0, "other_repo": 0, "error": None}
            routed: dict[int, int] = {}  # partition → lines of this file (the reduce names a bad line's file)
            try:
                for line in iter_event_lines(path):
                    counts["lines"] += 1
                    where = route_line(line, self.partitions, self.repos)
                    if isinstance(where, str):
                        counts[where] += 1
                        continue
                    counts["routed"] += 1
                    routed[where] = routed.get(where, 0) + 1
                    buffers.setdefault(where, []).append(line + b"\n")
                    sizes[where] = sizes.get(where, 0) + len(line) + 1
                    if sizes[where] >= self.FLUSH:
                        flush(where)
            except ArchiveError as exc:  # the complete lines before the break were routed
                counts["error"] = {"reason": exc.reason, "detail": exc.detail}
            seen.append({**counts, "partitions": {str(k): v for k, v in sorted(routed.items())}})
        for p in sorted(buffers):
            if buffers[p]:
                flush(p)
        for w in writers.values():
            w.close()
        (tmp / "files.json").write_text(json.dumps({"files": seen}, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _task_report(Path(self.folder).parent / "tasks" / f"map-{rank:05d}.json", start, clock, {
            "input_bytes": sum(os.path.getsize(p) for p in mine if "://" not in p and os.path.isfile(p)),
            "written_bytes": sum(f.stat().st_size for f in final.glob("*.jsonl.gz"))})
        if data:
            yield from data


def _task_report(path, start_bytes: int, start_clock: float, extra: dict) -> None:
    """What one task cost (bytes read through read(2), wall seconds, peak RSS), for the operator and the
    benchmark; beside the stage's state, never in stats.json (which must not depend on the machine)."""
    import json

    try:
        with open("/proc/self/status") as f:
            peak = next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        peak = None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"read_bytes": _read_bytes() - start_bytes, "seconds": time.perf_counter() - start_clock,
                                "peak_rss_mib": peak, **extra}, indent=1) + "\n")


def _read_bytes() -> int:
    """Bytes this process has read through read(2) (Linux `rchar`; 0 elsewhere): the benchmark's I/O figure."""
    try:
        with open("/proc/self/io", "rb") as f:
            return int(next(line for line in f if line.startswith(b"rchar:")).split()[1])
    except (OSError, StopIteration, ValueError):
        return 0


class GHArchiveSource(CountingStep):
    """Reduce phase of `sources.gharchive`: partition `rank` of every map task → PullRecords (the events give the
    discussion, the mirror gives the code). Every event of a repository's PRs is in one partition, so each task
    aggregates its PRs alone, having read only its share of the (already filtered) events.

    Task 0 also reports the map phase once: `files` (read, written, quarantined as truncated_gzip / bad_gzip /
    unreadable) and the `lines` the map left behind (filtered: other_type, other_repo). Every task counts its
    partition's lines: written (parsed), quarantined (malformed_json, not_an_event). None of these counts depends
    on the number of tasks. Units: `files`, `lines`, `pulls` (PRs seen only through issue events are read and
    filtered as `issue_events_only`)."""

    name = "🗄 gharchive"
    type = "📖 - READER"

    def __init__(self, parts_dir: str, repos: list[RepoSpec], mirrors_dir: str, quarantine_dir: str,
                 fetch: bool = True, skip_bots: bool = True, limit: int = -1):
        super().__init__("sources.gharchive", quarantine_dir)
        self.parts_dir = parts_dir
        self.specs = {s.name.lower(): s for s in repos}
        self.mirrors_dir = mirrors_dir
        self.fetch = fetch
        self.skip_bots = skip_bots
        self.limit = limit
        self._mirrors: dict[str, object] = {}  # repository → its mirror, or the MirrorError it gave

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        import json
        from pathlib import Path

        from datakit.sources.gharchive import PullAggregator

        if data:
            yield from data
        aggregator = PullAggregator()  # the map kept only wanted types and repositories, routed here
        start, clock, fed = _read_bytes(), time.perf_counter(), 0
        try:
            if rank == 0:
                self._report_map(rank)
            for summary in sorted(Path(self.parts_dir).glob("*/files.json")):
                part = summary.parent / f"{rank:05d}.jsonl.gz"
                if part.is_file():
                    sources = [(f["path"], f["partitions"].get(str(rank), 0))
                               for f in json.loads(summary.read_text())["files"]]
                    fed += part.stat().st_size
                    self._feed(str(part), sources, aggregator, rank)
            if aggregator.issue_only_pulls:
                self.stat_update("pulls.read", value=aggregator.issue_only_pulls)
                self.filter_out("pulls", "issue_events_only", value=aggregator.issue_only_pulls)
            emitted = 0
            for record, issues, state in aggregator.results():
                if 0 <= self.limit <= emitted:
                    return
                if (done := self._complete(record, issues, state, rank)) is not None:
                    emitted += 1
                    yield as_document(done)
            _task_report(Path(self.parts_dir).parent / "tasks" / f"reduce-{rank:05d}.json", start, clock,
                         {"partition_bytes": fed})
        finally:
            self.quarantine.close()

    def _report_map(self, rank: int) -> None:
        import json
        from pathlib import Path

        for summary in sorted(Path(self.parts_dir).glob("*/files.json")):
            for f in json.loads(summary.read_text())["files"]:
                self.read("files")
                if f["error"]:
                    self.reject("files", {"id": f["path"], "path": f["path"]}, f["error"]["reason"],
                                f["error"]["detail"], rank)
                else:
                    self.written("files")
                self.stat_update("lines.read", value=f["lines"])
                for reason in ("other_type", "other_repo"):
                    if f[reason]:
                        self.filter_out("lines", reason, value=f[reason])

    def _feed(self, path: str, sources: list[tuple[str, int]], aggregator, rank: int) -> None:
        """Aggregate one partition file; `sources`: (hour file, lines it routed here), in the file's order."""
        import bisect
        import itertools

        from datakit.sources.gharchive import ArchiveError, feed_lines, iter_event_lines

        ends = list(itertools.accumulate(n for _, n in sources))
        position = [0]

        def numbered(lines):
            for position[0], line in enumerate(lines, 1):
                yield line

        def bad_line(exc: ArchiveError, line: bytes) -> None:
            at = bisect.bisect_left(ends, position[0])
            hour = sources[at][0] if at < len(sources) else path
            row = {"id": f"{hour}:{hashlib.sha256(line).hexdigest()[:16]}", "file": hour,
                   "line": line.decode("utf-8", "replace")}
            self.reject("lines", row, exc.reason, f"{exc.detail} (in {hour})", rank)

        # a partition file is datakit's own: a fault in it is a bug or a lost disk, not bad input
        counts = feed_lines(numbered(iter_event_lines(path)), aggregator, on_bad_line=bad_line)
        self.stat_update("lines.written", value=counts["parsed"])
        if counts["skipped"]:
            self.filter_out("lines", "other_type", value=counts["skipped"])

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
