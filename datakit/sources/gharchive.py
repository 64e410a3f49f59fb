"""GH Archive: hourly dumps of GitHub's public events → PullRecords without code (the SWE-RL approach: the events
give the discussion, a git mirror gives the code; `datakit.pulls.records.fill_from_mirror` and `link_and_attach`
run afterwards). Pure: files in, dicts out; no pipeline code.

Input. GH Archive publishes one file per hour, `YYYY-MM-DD-H.json.gz` (H without zero padding, e.g.
`2015-01-01-15.json.gz`): gzip (sometimes several members), one JSON event per line, each shaped as the Events API
returns it (docs.github.com/en/rest/using-the-rest-api/github-event-types): `id` (a string of digits), `type`,
`actor{id, login, ...}`, `repo{id, name, url}`, `payload{...}`, `public`, `created_at` (`YYYY-MM-DDTHH:MM:SSZ`).
The five types read here are `WANTED_TYPES`; every other type (pushes, stars, forks: ~80 % of the lines) is
skipped, by `is_wanted_line` before any parse where the caller uses it.

Two payload eras are modelled:

* **Full payloads (2015 to 2025-10-06).** `PullRequestEvent`, `PullRequestReviewEvent` and
  `PullRequestReviewCommentEvent` carry the whole REST pull request: title, body, user, state, created_at,
  updated_at, merged (PullRequestEvent only), merged_at, merge_commit_sha, head{ref, sha}, base{ref, sha, repo},
  labels. `IssuesEvent` and `IssueCommentEvent` carry the whole REST issue (title, body, user, state, created_at,
  closed_at, labels; a `pull_request` key when the "issue" is a PR) and the comment (id, user, body, created_at).
* **Trimmed payloads (since 2025-10-07).** Assumed from these sources, since GitHub's changelog names no fields:
  - GitHub changelog 2025-08-08, "Upcoming changes to GitHub Events API payloads"
    (github.blog/changelog/2025-08-08-upcoming-changes-to-github-events-api-payloads/, as quoted in the reports
    below): pull request events lose "fields that are slow to generate"; `author_association` leaves the pull
    request, review, review comment, issue, issue comment events; brownout 2025-09-08, in force 2025-10-07.
  - octocrab PR #826 (XAMPPRocky/octocrab, 2025-11-17, "Remove fields deleted in October 2025 API changes"), its
    fixture tests/resources/pull_request_event.json: `pull_request` is now `url, id, node_id, number,
    head{ref, sha, repo{id, url, name}}, base{ref, sha, repo{id, url, name}}`.
  - igrigorik/gharchive.org issue #312 (2025-11-21): PullRequestEvent went from 400+ field paths to ~60;
    `payload.pull_request.body` is gone.
  - A study of real hour files (2024-09-17 vs 2026-09-15, in a public notes repository found by the search
    tool): `PullRequestEvent.pull_request` is `url, id, number, head, base` only; review and review comment
    events keep `review`/`comment` (user, body, state, submitted_at / created_at) beside the same PR stub;
    issue comment events keep `issue` and `comment` minus `author_association`; "merged" became an action of
    its own and "closed" now means closed without merging.
  So for the trimmed era datakit assumes: the PR object has only number, head and base (no title, body, user,
  state, created_at, updated_at, merged, merged_at, merge_commit_sha, labels); issue objects are the REST issue
  without `author_association`, but any field may be absent (absent fields stay unknown, never guessed); the
  action is one of opened, closed, reopened, merged, labeled, unlabeled, ... .

What the aggregator takes, and from where (every field any event carries; the latest event wins):
  title, body ........ pull_request.title/body; else the issue object of an issue event on the PR
  author ............. pull_request.user.login; the issue object's user; else the actor of the `opened` action
  created_at ......... pull_request.created_at; the issue object's created_at; else the time of the `opened` event
  updated_at ......... pull_request.updated_at; the issue object's updated_at
  merged_at, merge_sha pull_request.merged_at / merge_commit_sha (the sha only when the PR was merged)
  head_sha, base_sha . pull_request.head.sha / base.sha (both eras)
  labels ............. pull_request.labels; the issue object's labels; payload.labels of labeled/unlabeled
  review_comments .... review bodies (PullRequestReviewEvent) and review comments (PullRequestReviewCommentEvent),
                       oldest first, deduplicated by id, empty ones left out
  state .............. merged (merged, or merged_at set, or the `merged` action), closed_unmerged (closed with
                       `merged: false` or `merged_at: null` in the payload), open (state open, or opened/reopened),
                       unknown (trimmed `closed`: mergedness unknown; the mirror decides)
A field no event gave is named in `source.missing`; `commits`, `diff` and `files` always are (the mirror fills
them). When the PR is merged or its state unknown and no event gave `merged_at`, `merged_at` is None and missing:
the trimmed era never says when (the `merged` event's own time is not taken for it). A PR is yielded only when a
pull request event (one with a `pull_request` object) named it: an issue comment on a PR only adds to it, since a
record without head or merge sha cannot be filled from a mirror. Issue comments on PRs are not issues and go
nowhere (they are conversation, not review).

Left out: the Timeline API era (2011-2014: `repository` instead of `repo`, `payload` without objects, other time
formats). `parse_event` rejects such lines as `not_an_event` with a detail that says so.

Order. Events of one PR can come from any file, in any order: every field keeps the value of the latest event
that gave it, ordered by (event created_at, event id compared as a number), so the result does not depend on the
order the files are fed in. An event id names one event; the same event read twice (overlapping mirrors) is the
same value and changes nothing.

Sharding, in two phases (the `sources.gharchive` stage, datakit/sources/steps.py). The events of one PR are
spread over many hours, so the PRs cannot be split by file; but reading every file in every task (the first
design) paid decompression and the byte prefilter N times over for N tasks. Instead:
  1. map: task m of M reads only its files (`files[m::M]`) and appends each wanted line, untouched, to the
     partition file of its repository, `partition_of(repo, P) = zlib.crc32(repo.lower().encode()) % P`
     (`route_line`: type and repository read from the raw bytes, no parse for GH Archive's layout);
  2. reduce: task p reads partition p of every map task (about a fifth of the input once decompressed: the other
     event types never leave the map) and aggregates its PRs, which all meet there.
Each input byte is read once, by one task. `PullAggregator(rank=r, world_size=n)` still keeps only the
repositories of one shard when fed whole files (the library use, and the benchmark's comparison).
"""

from __future__ import annotations

import http.client
import urllib.request
import zlib
from datetime import datetime
from typing import Callable, Iterable, Iterator

import orjson

from datakit.io.lines import Oversized, split_lines
from datakit.pulls.records import new_pull_record

WANTED_TYPES = frozenset({"PullRequestEvent", "IssuesEvent", "IssueCommentEvent", "PullRequestReviewEvent",
                          "PullRequestReviewCommentEvent"})
STATES = ("merged", "closed_unmerged", "open", "unknown")
# PullRecord fields an event may give; the rest of `missing` comes from the mirror
EVENT_FIELDS = ("title", "body", "author", "created_at", "updated_at", "merged_at", "merge_sha", "head_sha",
                "base_sha", "labels")
ALWAYS_MISSING = ("commits", "diff", "files")

READ_SIZE = 64 << 10  # compressed bytes per read: ~0.5 MB decompressed, which stays in cache (faster than 1 MB+)
MAX_PIECE = 1 << 20  # decompressed bytes per zlib call: a decompression bomb (deflate: up to 1032x) stays flat
# The longest line kept (an event is < 1 MiB: GitHub caps bodies at 65,536 characters); a longer one is not held
# in memory but read past and reported as `line_too_long`.
MAX_LINE_BYTES = 16 << 20
# How an over-long line travels on (through the map phase's partition files) to where lines are parsed: a NUL
# first byte, which no JSON text can have; then the line's size and its first bytes.
_OVERSIZED = b"\0datakit:line_too_long:"
_GZIP_WBITS = 31  # zlib: a gzip header and trailer (CRC32 and size are checked at each member's end)
_TYPE_TAG = b'"type":"'
_TYPE_WINDOW = 96  # GH Archive writes `{"id":"<digits>","type":"...` first: the type tag lies in these bytes
_REPO_TAG = b'"repo":{'
_REPO_WINDOW = 2048  # after id, type and the small actor object
_NAME_TAG = b'"name":"'
_WANTED_TYPE_BYTES = frozenset(t.encode() for t in WANTED_TYPES)
_PULL_EVENTS = frozenset({"PullRequestEvent", "PullRequestReviewEvent", "PullRequestReviewCommentEvent"})


class ArchiveError(Exception):
    """A file or a line that cannot be read: `reason` is one of truncated_gzip, bad_gzip, unreadable (a file),
    malformed_json, not_an_event, line_too_long (a line); `detail` says what and where."""

    def __init__(self, reason: str, detail: str):
        super().__init__(reason, detail)  # both in `args`, so that it pickles across processes
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


def hour_file_name(hour: datetime) -> str:
    """GH Archive's name for the hour starting at `hour` (UTC): `2015-01-01-15.json.gz`, the hour unpadded."""
    return f"{hour:%Y-%m-%d}-{hour.hour}.json.gz"


# ---------------------------------------------------------------------------------------------------------------
# reading hour files
# ---------------------------------------------------------------------------------------------------------------


def _open(path: str):
    if path.startswith(("http://", "https://")):
        return urllib.request.urlopen(path, timeout=60)  # streamed: read in READ_SIZE pieces like a file
    return open(path, "rb")


def _gunzip(stream, where: str) -> Iterator[bytes]:
    """Decompressed pieces (at most MAX_PIECE bytes each) of a gzip stream of one or more members (zero padding
    after the last is allowed)."""
    decomp = zlib.decompressobj(_GZIP_WBITS)
    in_member = saw_input = False
    while chunk := stream.read(READ_SIZE):
        saw_input = True
        full = False  # the last call filled MAX_PIECE: zlib may hold output back, ask again
        while chunk or full:
            if not in_member and not chunk.strip(b"\0"):
                break  # padding after the last member, as gzip itself tolerates
            try:
                out = decomp.decompress(chunk, MAX_PIECE)
            except zlib.error as exc:
                raise ArchiveError("bad_gzip", f"{where}: {exc}") from exc
            in_member = not decomp.eof
            full = len(out) == MAX_PIECE and not decomp.eof
            if out:
                yield out
            chunk = decomp.unconsumed_tail
            if decomp.eof:  # a member ended: what follows is another member or padding
                chunk = decomp.unused_data
                decomp = zlib.decompressobj(_GZIP_WBITS)
    if not saw_input:
        raise ArchiveError("truncated_gzip", f"{where}: empty file")
    if in_member:
        raise ArchiveError("truncated_gzip", f"{where}: the file ends inside a gzip member (incomplete download?)")


def oversized_line(size: int, start: bytes) -> bytes:
    """What stands for a line longer than the limit: `parse_event` reads it as line_too_long."""
    return _OVERSIZED + str(size).encode() + b":" + start[:80].replace(b"\n", b" ")


def iter_event_lines(path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The non-empty lines (without their newline) of one hour file: a local path or an http(s) URL, streamed.

    A line longer than `max_line_bytes` is never held whole: it is yielded as a short stand-in that
    `parse_event` rejects as line_too_long. Raises ArchiveError (truncated_gzip, bad_gzip, unreadable) after
    yielding every complete line before the fault; the partial line at a truncation is not yielded."""
    where = str(path)
    try:
        with _open(where) as stream:
            for line in split_lines(_gunzip(stream, where), max_line_bytes):
                if line.__class__ is Oversized:
                    yield oversized_line(line.size, line.head)
                elif line:
                    yield line
    except EOFError as exc:  # defensive: gzip-level readers say truncation this way
        raise ArchiveError("truncated_gzip", f"{where}: {exc}") from exc
    except (OSError, http.client.HTTPException) as exc:
        reason = "truncated_gzip" if isinstance(exc, http.client.IncompleteRead) else "unreadable"
        raise ArchiveError(reason, f"{where}: {exc}") from exc


def is_wanted_line(line: bytes) -> bool:
    """False when the raw line is plainly an event of another type (no parse); True otherwise.

    Reads the first `"type":"` in the first 96 bytes, where GH Archive writes the event's type. A line laid out
    otherwise (spaces after colons, type later) passes, so the check never drops an event of a wanted type in
    GH Archive's layout; `PullAggregator.add` checks the parsed type in any case."""
    start = line.find(_TYPE_TAG, 0, _TYPE_WINDOW)
    if start < 0:
        return True
    start += len(_TYPE_TAG)
    end = line.find(b'"', start, start + 48)
    return end < 0 or line[start:end] in _WANTED_TYPE_BYTES


def line_repo_name(line: bytes) -> str | None:
    """The repository name (`owner/name`) read from the raw line, or None when the layout is not GH Archive's
    (`"repo":{"id":..,"name":"..."` after the small actor object, which has no `name` key)."""
    start = line.find(_REPO_TAG, 0, _REPO_WINDOW)
    if start < 0:
        return None
    name = line.find(_NAME_TAG, start, start + 64)
    if name < 0:
        return None
    name += len(_NAME_TAG)
    end = line.find(b'"', name, name + 256)
    if end < 0 or b"\\" in line[name:end]:
        return None  # an escape (never in real repository names): leave it to the parser
    return line[name:end].decode("utf-8", "replace")


def _line_excerpt(line: bytes) -> str:
    return repr(line[:80]) + ("…" if len(line) > 80 else "")


def parse_event(line: bytes) -> dict:
    """One line → the event dict. Raises ArchiveError: malformed_json (not JSON, or not UTF-8), not_an_event
    (JSON that is not an object with `type`, `repo{name}` and `payload`), line_too_long (`iter_event_lines`'
    stand-in for a line over its limit)."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if line.startswith(_OVERSIZED):
            size, _, start = line[len(_OVERSIZED):].partition(b":")
            raise ArchiveError("line_too_long", f"a line of {size.decode()} bytes (over the limit; raise "
                                                f"max_line_bytes to read it): {_line_excerpt(start)}") from None
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise ArchiveError("malformed_json", f"not valid UTF-8 at byte {bad.start} "
                                                 f"({line[bad.start:bad.start + 4]!r}): {_line_excerpt(line)}") from exc
        raise ArchiveError("malformed_json", f"{exc}: {_line_excerpt(line)}") from exc
    if not isinstance(event, dict):
        raise ArchiveError("not_an_event", f"a JSON {type(event).__name__}, not an object: {_line_excerpt(line)}")
    if "repository" in event and "repo" not in event:
        raise ArchiveError("not_an_event", "Timeline API layout (before 2015: `repository`, not `repo`) is not "
                                           f"supported: {_line_excerpt(line)}")
    repo, payload = event.get("repo"), event.get("payload")
    if not (isinstance(event.get("type"), str) and isinstance(repo, dict) and isinstance(repo.get("name"), str)
            and isinstance(payload, dict)):
        raise ArchiveError("not_an_event", f"needs type, repo{{name}} and payload objects: {_line_excerpt(line)}")
    return event


# ---------------------------------------------------------------------------------------------------------------
# what each payload says (plain functions of one object: no state)
# ---------------------------------------------------------------------------------------------------------------


# Every value taken from a payload is type-checked where it is taken: a field of the wrong type (a broken or
# hostile line) is not taken, as if absent, and never reaches a record or an ordering key.

def _is_text(value) -> bool:
    return value is None or isinstance(value, str)


def _text(value, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _item_id(value) -> int:
    """A comment or review id as an orderable key (0 when missing or not an integer)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _time(value) -> str | None:
    """An ISO 8601 time with its zone, as the records carry it (`pulls.linking.parse_time` compares them), or None
    for anything else."""
    if not isinstance(value, str):
        return None
    try:
        return value if datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None else None
    except ValueError:
        return None


def _login(user) -> str | None:
    login = user.get("login") if isinstance(user, dict) else None
    return login if isinstance(login, str) else None


def _label_names(labels) -> list[str]:
    if not isinstance(labels, list):
        return []
    return [label["name"] for label in labels if isinstance(label, dict) and isinstance(label.get("name"), str)
            and label["name"]]


def _pull_state(pr: dict) -> str | None:
    """merged / closed_unmerged / open from a PR object that says so; None when it does not (trimmed stubs)."""
    if pr.get("merged") is True or _time(pr.get("merged_at")):
        return "merged"
    state = pr.get("state")
    if state == "open":
        return "open"
    if state == "closed":
        # full payloads say `merged: false` or `merged_at: null`; a closed PR without either is undecided
        return "closed_unmerged" if ("merged" in pr or "merged_at" in pr) else "unknown"
    return None


# how a trimmed PullRequestEvent's action sets the state when the PR object does not
_ACTION_STATES = {"merged": "merged", "closed": "unknown", "opened": "open", "reopened": "open"}

# REST pull request / issue keys → PullRecord field names (taken when the key is present, even when null)
_PULL_KEYS = (("title", "title"), ("body", "body"), ("created_at", "created_at"), ("updated_at", "updated_at"))
_ISSUE_KEYS = (("title", "title"), ("body", "body"), ("state", "state"), ("created_at", "created_at"),
               ("updated_at", "updated_at"), ("closed_at", "closed_at"))


def _object_facts(obj: dict, keys) -> dict:
    facts = {field: obj[key] for key, field in keys if key in obj and _is_text(obj[key])}
    if "user" in obj:
        facts["author"] = _login(obj["user"])
    if "labels" in obj:
        facts["labels"] = _label_names(obj["labels"])
    return facts


def _pull_facts(pr: dict) -> dict:
    """PullRecord fields a `pull_request` object gives (full or trimmed)."""
    facts = _object_facts(pr, _PULL_KEYS)
    for side in ("head", "base"):
        ref = pr.get(side)
        if isinstance(ref, dict) and isinstance(ref.get("sha"), str):
            facts[f"{side}_sha"] = ref["sha"]
    if "merged_at" in pr and _is_text(pr["merged_at"]):
        facts["merged_at"] = pr["merged_at"]
    state = _pull_state(pr)
    if state:
        facts["state"] = state
    if "merge_commit_sha" in pr and _is_text(pr["merge_commit_sha"]):  # before the merge: GitHub's test merge
        facts["merge_sha"] = pr["merge_commit_sha"] if state == "merged" else None
    return facts


def _pull_event_facts(event: dict, payload: dict, pr: dict) -> dict:
    facts = _pull_facts(pr)
    action = payload.get("action") if isinstance(payload.get("action"), str) else None
    if "state" not in facts and action in _ACTION_STATES:
        facts["state"] = _ACTION_STATES[action]
    if action == "opened":  # who opened it, and when: what a trimmed payload no longer says outright
        facts.setdefault("author", _login(event.get("actor")))
        facts.setdefault("created_at", _text(event.get("created_at"), None))
    if "labels" in payload and action in ("labeled", "unlabeled"):
        facts["labels"] = _label_names(payload["labels"])
    return facts


def _issue_as_pull_facts(issue: dict) -> dict:
    """What the issue object of an issue event on a PR says about the PR (the conversation comment itself goes
    nowhere). `pull_request.merged_at` (in issue objects since 2022) also tells the state."""
    facts = _object_facts(issue, _PULL_KEYS)
    marker = issue.get("pull_request")
    if isinstance(marker, dict) and "merged_at" in marker and _is_text(marker["merged_at"]):
        facts["merged_at"] = marker["merged_at"]
        state = _pull_state({"state": issue.get("state"), "merged_at": marker["merged_at"]})
        if state:
            facts["state"] = state
    return facts


def _event_key(event: dict) -> tuple:
    """Orders events: by time, then by id as a number (ids are digit strings of growing length)."""
    eid = event.get("id") or ""
    if not isinstance(eid, str):
        eid = str(eid)
    return _text(event.get("created_at")), len(eid), eid


# ---------------------------------------------------------------------------------------------------------------
# aggregation
# ---------------------------------------------------------------------------------------------------------------


class _Thread:
    """What the events say about one PR or issue: each field's value and the key of the event that gave it (the
    latest wins), and its texts (review bodies and comments, or issue comments) by id."""

    __slots__ = ("fields", "keys", "newest", "texts", "named_by_pull_event")

    def __init__(self):
        self.fields: dict[str, object] = {}
        self.keys: dict[str, tuple] = {}
        self.newest: tuple = ()  # the latest key of any event taken: every held key is <= it
        self.texts: dict[tuple, tuple] = {}
        self.named_by_pull_event = False

    def take(self, key: tuple, facts: dict) -> None:
        if key > self.newest:  # later than all held (files fed in time order): two C-level updates
            self.fields.update(facts)
            self.keys.update(dict.fromkeys(facts, key))
            self.newest = key
            return
        fields, keys = self.fields, self.keys
        for name, value in facts.items():
            if name not in keys or key > keys[name]:
                fields[name] = value
                keys[name] = key

    def add_text(self, key: tuple, text_id: tuple, order: tuple, value) -> None:
        """A text identified by `text_id`: its latest version wins; `order` sorts it among the others."""
        held = self.texts.get(text_id)
        if held is None or key > held[0]:
            self.texts[text_id] = (key, order, value)

    def value(self, name: str, default=None):
        return self.fields.get(name, default)

    def ordered_texts(self) -> list:
        return [value for _, _, value in sorted(self.texts.values(), key=lambda t: t[1])]


def _shard_of(repo: str, world_size: int) -> int:
    return zlib.crc32(repo.lower().encode()) % world_size


def partition_of(repo: str, partitions: int) -> int:
    """The partition (reduce task) that aggregates this repository's PRs: stable across runs and machines."""
    return _shard_of(repo, partitions)


def route_line(line: bytes, partitions: int, repos: set[str] | None = None) -> int | str:
    """Where the map phase sends a raw line: a partition number, or why it stays behind (`other_type`,
    `other_repo`). The repository is read from the bytes; a line laid out otherwise is parsed for it, and one
    that does not parse goes to partition 0, whose reduce quarantines it (so a bad line is counted once)."""
    if not is_wanted_line(line):
        return "other_type"
    repo = line_repo_name(line)
    if repo is None:
        try:
            event = parse_event(line)
        except ArchiveError:
            return 0
        if event["type"] not in WANTED_TYPES:
            return "other_type"
        repo = event["repo"]["name"]
    if repos is not None and repo.lower() not in repos:
        return "other_repo"
    return partition_of(repo, partitions)


class PullAggregator:
    """Collects the wanted events of any number of hour files, in any order, into one result per PR.

    `repos`: keep only these repositories (owner/name, case-insensitive); `rank`/`world_size`: keep only the
    repositories of this shard (see the module docstring). `stats` counts what `add` did with its events."""

    def __init__(self, repos: set[str] | None = None, rank: int = 0, world_size: int = 1):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in range(world_size={world_size})")
        self.repos = {r.lower() for r in repos} if repos is not None else None
        self.rank, self.world_size = rank, world_size
        self.filters_repos = self.repos is not None or world_size > 1
        self._pulls: dict[tuple[str, int], _Thread] = {}
        self._issues: dict[tuple[str, int], _Thread] = {}
        self.stats = {"events": 0, "other_type": 0, "other_repo": 0, "incomplete": 0}

    # -- which events -------------------------------------------------------------------------------------------

    def keeps_repo(self, repo: str) -> bool:
        if self.repos is not None and repo.lower() not in self.repos:
            return False
        return self.world_size == 1 or _shard_of(repo, self.world_size) == self.rank

    def wants(self, line: bytes) -> bool:
        """The cheap byte-level prefilter: False for a line of another type, or (with a repository filter or
        sharding) of a repository this aggregator does not keep. True lines still go through `add`'s checks."""
        if not is_wanted_line(line):
            return False
        if not self.filters_repos:
            return True
        repo = line_repo_name(line)
        return repo is None or self.keeps_repo(repo)

    # -- adding -------------------------------------------------------------------------------------------------

    def add(self, event: dict) -> None:
        """Take one parsed event (as `parse_event` returns it). Other types and repositories are counted and
        ignored; an event without the object its type needs is counted as incomplete."""
        kind = event["type"]
        if kind not in WANTED_TYPES:
            self.stats["other_type"] += 1
            return
        repo = event["repo"]["name"]
        if self.filters_repos and not self.keeps_repo(repo):
            self.stats["other_repo"] += 1
            return
        payload = event["payload"]
        handled = (self._add_pull_event(event, repo, payload) if kind in _PULL_EVENTS
                   else self._add_issue_event(event, repo, payload))
        self.stats["events" if handled else "incomplete"] += 1

    @staticmethod
    def _thread(table: dict, repo: str, number: int) -> _Thread:
        key = (repo.lower(), number)
        return table.get(key) or table.setdefault(key, _Thread())

    def _add_pull_event(self, event: dict, repo: str, payload: dict) -> bool:
        pr = payload.get("pull_request")
        if not isinstance(pr, dict):
            return False
        number = pr.get("number", payload.get("number"))
        if not isinstance(number, int) or isinstance(number, bool):
            return False
        key = _event_key(event)
        thread = self._thread(self._pulls, repo, number)
        thread.named_by_pull_event = True
        facts = _pull_event_facts(event, payload, pr) if event["type"] == "PullRequestEvent" else _pull_facts(pr)
        facts["repo"] = repo  # the spelling of the latest event
        thread.take(key, facts)
        self._add_review_text(thread, key, event, payload)
        return True

    @staticmethod
    def _add_review_text(thread: _Thread, key: tuple, event: dict, payload: dict) -> None:
        kind = event["type"]
        item = payload.get("review") if kind == "PullRequestReviewEvent" else payload.get("comment")
        if kind == "PullRequestEvent" or not isinstance(item, dict):
            return
        when = _text(item.get("submitted_at")) or _text(item.get("created_at")) or _text(event.get("created_at"))
        item_id = _item_id(item.get("id"))
        # reviews and review comments number their ids apart: the kind is part of the identity
        thread.add_text(key, (kind, item_id), (when, item_id, kind), _text(item.get("body")))

    def _add_issue_event(self, event: dict, repo: str, payload: dict) -> bool:
        issue = payload.get("issue")
        if not isinstance(issue, dict) or _item_id(issue.get("number")) != issue.get("number"):
            return False
        key = _event_key(event)
        if "pull_request" in issue:  # a PR seen as an issue: its fields help the PR; it is not an issue
            facts = _issue_as_pull_facts(issue)
            facts["repo"] = repo
            self._thread(self._pulls, repo, issue["number"]).take(key, facts)
            return True
        thread = self._thread(self._issues, repo, issue["number"])
        thread.take(key, _object_facts(issue, _ISSUE_KEYS))
        comment = payload.get("comment") if event["type"] == "IssueCommentEvent" else None
        if isinstance(comment, dict):
            when = _time(comment.get("created_at")) or _time(event.get("created_at")) or ""
            comment_id = _item_id(comment.get("id"))
            thread.add_text(key, (comment_id,), (when, comment_id), {
                "author": _login(comment.get("user")), "body": _text(comment.get("body")), "created_at": when})
        return True

    # -- results ------------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        """The PRs `results` will yield."""
        return sum(1 for t in self._pulls.values() if t.named_by_pull_event)

    @property
    def issue_count(self) -> int:
        return len(self._issues)

    @property
    def issue_only_pulls(self) -> int:
        """PRs seen only through issue events (no pull request event named them): `results` leaves them out,
        since a record without head or merge sha cannot be filled from a mirror. Counted, not dropped silently."""
        return sum(1 for t in self._pulls.values() if not t.named_by_pull_event)

    def results(self) -> Iterator[tuple[dict, dict, str]]:
        """(record, issues, state) per PR, sorted by (repo.lower(), number). `issues` is
        {(repo.lower(), number): issue dict} of the issues seen in the PR's repository (one dict shared by the
        repository's PRs: do not mutate it); `state` is one of STATES."""
        issue_numbers: dict[str, list[int]] = {}
        for repo_key, number in self._issues:
            issue_numbers.setdefault(repo_key, []).append(number)
        issues_repo, issues = None, {}
        for repo_key, number in sorted(self._pulls):
            thread = self._pulls[(repo_key, number)]
            if not thread.named_by_pull_event:
                continue
            if repo_key != issues_repo:  # the PRs come grouped by repository: build its issues once
                issues_repo, issues = repo_key, {(repo_key, n): _issue_dict(self._issues[(repo_key, n)])
                                                 for n in sorted(issue_numbers.get(repo_key, ()))}
            record, state = _pull_record(thread, number)
            yield record, issues, state


def _pull_record(thread: _Thread, number: int) -> tuple[dict, str]:
    state = thread.value("state", "unknown")
    missing = {name for name in EVENT_FIELDS if name not in thread.keys}
    if state in ("merged", "unknown"):
        # a null from an event before the merge (or a trimmed payload) is not the merge's time or commit
        missing.update(name for name in ("merged_at", "merge_sha") if thread.value(name) is None)
    # times are checked once per record, not per event: one that does not parse is unknown, like an absent one
    times = {name: _time(thread.value(name)) for name in ("created_at", "updated_at", "merged_at")}
    missing.update(name for name, value in times.items() if value is None and thread.value(name) is not None)
    merged = state == "merged"
    record = new_pull_record(
        repo=thread.value("repo"), number=number, title=thread.value("title"), body=thread.value("body"),
        author=thread.value("author"), created_at=times["created_at"], updated_at=times["updated_at"],
        merged_at=times["merged_at"] if merged else None, base_sha=thread.value("base_sha"),
        head_sha=thread.value("head_sha"), merge_sha=thread.value("merge_sha") if merged else None,
        kind="gharchive", method="events", review_comments=[t for t in thread.ordered_texts() if t.strip()],
        labels=thread.value("labels"), missing=[*missing, *ALWAYS_MISSING])
    return record, state


def _issue_dict(thread: _Thread) -> dict:
    return {"title": thread.value("title") or "", "body": thread.value("body") or "",
            "author": thread.value("author"), "state": thread.value("state"),
            "created_at": _time(thread.value("created_at")), "closed_at": _time(thread.value("closed_at")),
            "comments": thread.ordered_texts()}


# ---------------------------------------------------------------------------------------------------------------
# the loop a caller runs per hour file
# ---------------------------------------------------------------------------------------------------------------


def _every_line(line: bytes) -> bool:
    return True


def feed_lines(lines: Iterable[bytes], aggregator: PullAggregator,
               on_bad_line: Callable[[ArchiveError, bytes], None] | None = None,
               prefilter: bool = True) -> dict[str, int]:
    """Prefilter (`aggregator.wants`), parse and add every line; returns counts {lines, skipped, parsed, bad}.
    A line that does not parse (malformed_json, not_an_event, line_too_long) goes to `on_bad_line` (default: only counted);
    file-level ArchiveErrors from `iter_event_lines` propagate, after the complete lines before them were added.
    `prefilter=False` parses every line (for measuring what the prefilter saves: the output is the same)."""
    wants = (aggregator.wants if aggregator.filters_repos else is_wanted_line) if prefilter else _every_line
    add = aggregator.add
    skipped = parsed = bad = 0
    for line in lines:
        if not wants(line):
            skipped += 1
            continue
        try:
            event = parse_event(line)
        except ArchiveError as exc:
            bad += 1
            if on_bad_line is not None:
                on_bad_line(exc, line)
            continue
        parsed += 1
        add(event)
    return {"lines": skipped + parsed + bad, "skipped": skipped, "parsed": parsed, "bad": bad}
