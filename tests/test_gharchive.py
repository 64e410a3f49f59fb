"""GH Archive ingestion (datakit.sources.gharchive) on hour files written by tests/gharchive_fixtures.py."""

from __future__ import annotations

import gzip
import http.server
import itertools
import pickle
import threading
import zlib

import orjson
import pytest

from datakit.io.schemas import validate
from datakit.pulls.records import link_and_attach
from datakit.sources.gharchive import (WANTED_TYPES, ArchiveError, PullAggregator, feed_lines, hour_file_name,
                                       is_wanted_line, iter_event_lines, line_repo_name, parse_event)
from tests.gharchive_fixtures import (SHA, early_scenario, event, event_line, flushed_gzip, hour, later_scenario,
                                      stub_pull, write_hour, write_scenario)

ALWAYS = ["commits", "diff", "files"]


def aggregate(paths, **options) -> PullAggregator:
    agg = PullAggregator(**options)
    for path in paths:
        feed_lines(iter_event_lines(path), agg)
    return agg


def by_key(agg: PullAggregator) -> dict:
    return {(r["repo"], r["number"]): (r, issues, state) for r, issues, state in agg.results()}


def dump(agg: PullAggregator) -> bytes:
    """Everything `results` yields, as bytes (tuple keys spelled out)."""
    rows = [[record, sorted([list(k), v] for k, v in issues.items()), state] for record, issues, state in agg.results()]
    return orjson.dumps(rows, option=orjson.OPT_SORT_KEYS)


@pytest.fixture
def early(tmp_path):
    return write_scenario(tmp_path / "early", early_scenario())


@pytest.fixture
def later(tmp_path):
    return write_scenario(tmp_path / "later", later_scenario())


# ---------------------------------------------------------------------------------------------------------------
# aggregation, both eras
# ---------------------------------------------------------------------------------------------------------------


def test_hour_file_name_is_unpadded():
    assert [p for p in (hour_file_name(hour("2015-01-01-15")), hour_file_name(hour("2025-11-03-09")))] == [
        "2015-01-01-15.json.gz", "2025-11-03-9.json.gz"]


def test_full_era_records(early):
    results = by_key(aggregate(early))
    assert list(results) == [("Acme/Widgets", 10), ("Acme/Widgets", 11), ("Acme/Widgets", 12), ("other/tool", 13)]
    for record, _, _ in results.values():
        validate(record, "pull_record")

    pr10, issues, state = results[("Acme/Widgets", 10)]
    assert state == "merged"
    assert {k: pr10[k] for k in ("title", "body", "author", "created_at", "updated_at", "merged_at", "base_sha",
                                 "head_sha", "merge_sha", "labels", "review_comments")} == {
        "title": "Fix overflow in parser (v2)",  # retitled in the merge event: the latest wins
        "body": "Fixes #7\n\nThe parser overflowed on long input.", "author": "alice",
        "created_at": "2015-01-01T15:01:00Z", "updated_at": "2015-01-01T17:05:00Z",
        "merged_at": "2015-01-01T17:05:00Z", "base_sha": SHA["b"], "head_sha": SHA["a"], "merge_sha": SHA["m10"],
        "labels": ["bug"],
        # review comment 5001 was seen twice; review 7002's empty body is left out; PR comment 9003 is not review
        "review_comments": ["Use a guard here", "Looks good"]}
    assert pr10["source"] == {"kind": "gharchive", "method": "events", "repo": "Acme/Widgets", "pr": 10,
                              "commit": SHA["m10"], "crawled_at": "2015-01-01T17:05:00Z", "missing": ALWAYS}
    assert pr10["commits"] == [] and pr10["files"] == [] and pr10["diff"] == "" and pr10["linked_issues"] == []

    pr11, _, state11 = results[("Acme/Widgets", 11)]
    assert state11 == "closed_unmerged"
    # closed unmerged: no merge time, and the test-merge sha GitHub reported is not a merge commit
    assert (pr11["merged_at"], pr11["merge_sha"], pr11["body"], pr11["source"]["missing"]) == (None, None, "", ALWAYS)

    pr12, _, state12 = results[("Acme/Widgets", 12)]
    assert (state12, pr12["title"], pr12["merged_at"], pr12["source"]["missing"]) == ("open", "Docs: usage", None,
                                                                                      ALWAYS)
    pr13, issues13, state13 = results[("other/tool", 13)]
    assert (state13, pr13["merge_sha"], pr13["merged_at"]) == ("merged", SHA["m13"], "2015-01-01T17:30:00Z")
    assert issues13 == {("other/tool", 1): {"title": "No CLI", "body": "", "author": "ivy", "state": "open",
                                           "created_at": "2015-01-01T17:20:00Z", "closed_at": None, "comments": []}}


def test_full_era_issues(early):
    _, issues, _ = by_key(aggregate(early))[("Acme/Widgets", 10)]
    # PR #10 appears as an issue in an IssueCommentEvent: it is not an issue
    assert issues == {("acme/widgets", 7): {
        "title": "Parser overflows on long input", "body": "Steps: feed 10 MB.", "author": "erin",
        "state": "closed", "created_at": "2015-01-01T14:00:00Z", "closed_at": "2015-01-01T17:06:00Z",
        "comments": [  # oldest first; 9001 was seen twice
            {"author": "frank", "body": "Same here with 5 MB.", "created_at": "2015-01-01T15:10:00Z"},
            {"author": "alice", "body": "Fix in #10.", "created_at": "2015-01-01T16:10:00Z"}]}}


def test_records_link_to_their_issues(early):
    record, issues, _ = by_key(aggregate(early))[("Acme/Widgets", 10)]
    linked = link_and_attach(record, issues)
    validate(linked, "pull_record")
    assert [(i["repo"], i["number"], i["title"], i["fetched"], i["link_rules"]) for i in linked["linked_issues"]] == [
        ("Acme/Widgets", 7, "Parser overflows on long input", True, ["keyword_body"])]
    assert [c["author"] for c in linked["linked_issues"][0]["comments"]] == ["frank", "alice"]
    assert linked["linked_issues"][0]["hints"] == []  # no commits: the cut-off is the PR's creation, both came after
    assert linked["flags"] == []


def test_trimmed_era_records_name_what_is_missing(later):
    results = by_key(aggregate(later))
    assert list(results) == [("later/repo", 21), ("later/repo", 22), ("later/repo", 23)]
    for record, _, _ in results.values():
        validate(record, "pull_record")

    pr21, issues, state21 = results[("later/repo", 21)]
    assert state21 == "merged"  # the `merged` action
    assert {k: pr21[k] for k in ("title", "body", "author", "created_at", "updated_at", "merged_at", "merge_sha",
                                 "base_sha", "head_sha", "labels", "review_comments")} == {
        "title": "", "body": "", "author": "ivan", "created_at": "2025-11-03T09:10:00Z",  # the `opened` event's
        "updated_at": None, "merged_at": None, "merge_sha": None, "base_sha": SHA["b"], "head_sha": SHA["a"],
        "labels": [], "review_comments": ["Please add a test", "nit: rename"]}
    assert pr21["source"]["missing"] == ["body", "commits", "diff", "files", "labels", "merge_sha", "merged_at",
                                         "title", "updated_at"]
    assert pr21["source"]["crawled_at"] is None

    pr22, _, state22 = results[("later/repo", 22)]
    assert state22 == "unknown"  # a trimmed `closed`: the mirror decides
    assert pr22["source"]["missing"] == ["author", "body", "commits", "created_at", "diff", "files", "labels",
                                         "merge_sha", "merged_at", "title", "updated_at"]
    assert (pr22["head_sha"], pr22["author"], pr22["created_at"]) == (SHA["d"], None, None)

    pr23, _, state23 = results[("later/repo", 23)]
    # title, body and labels come from the issue object of a comment on the PR
    assert (state23, pr23["title"], pr23["body"], pr23["author"], pr23["updated_at"]) == (
        "open", "Add retry", "Closes #20", "kim", "2025-11-03T10:10:00Z")
    assert pr23["source"]["missing"] == ["commits", "diff", "files", "merge_sha", "merged_at"]
    assert issues == {("later/repo", 20): {
        "title": "Timeouts under load", "body": "Requests time out after 30 s.", "author": "lena", "state": "open",
        "created_at": "2025-11-03T09:00:00Z", "closed_at": None,
        "comments": [{"author": "mo", "body": "Seen in prod too.", "created_at": "2025-11-03T10:05:00Z"}]}}


def test_a_merge_after_the_trim_does_not_reuse_the_test_merge_sha(tmp_path):
    """Opened with a full payload (merge_commit_sha = GitHub's test merge), merged after the trim."""
    repo = "x/y"
    opened = early_scenario()["2015-01-01-15"][1]  # Acme/Widgets #10, opened
    opened = {**opened, "repo": {**opened["repo"], "name": repo}}
    opened["payload"]["pull_request"]["merge_commit_sha"] = SHA["test11"]
    merged = event(52000009999, "PullRequestEvent", "m", repo, {"action": "merged", "number": 10, "pull_request":
                   stub_pull(repo, 10, head_sha=SHA["a"], base_sha=SHA["b"])}, "2025-11-03T10:20:00Z")
    record, _, state = next(aggregate([write_hour(tmp_path, hour("2025-11-03-10"), [opened, merged])]).results())
    assert (state, record["merge_sha"], record["merged_at"], record["title"]) == (
        "merged", None, None, "Fix overflow in parser")
    assert record["source"]["missing"] == ["commits", "diff", "files", "merge_sha", "merged_at"]


def test_issue_comment_alone_does_not_make_a_record(tmp_path):
    scenario = early_scenario()
    only_comment = [e for e in scenario["2015-01-01-16"] if e["id"] == "2489652004"]  # gina on PR #10
    agg = aggregate([write_hour(tmp_path, hour("2015-01-01-16"), only_comment)])
    assert list(agg.results()) == [] and len(agg) == 0 and agg.stats["events"] == 1


# ---------------------------------------------------------------------------------------------------------------
# order independence
# ---------------------------------------------------------------------------------------------------------------


def test_file_order_does_not_change_the_output(early, later):
    files = early + later
    agg = aggregate(files)
    reference = dump(agg)
    assert b"Fix overflow in parser (v2)" in reference
    assert dump(agg) == reference  # `results` reads the state: it can be taken again
    for order in itertools.permutations(files):
        assert dump(aggregate(order)) == reference


def test_event_order_inside_files_does_not_change_the_output(tmp_path):
    events = [e for hour_events in early_scenario().values() for e in hour_events]
    forward = write_hour(tmp_path / "f", hour("2015-01-01-15"), events)
    backward = write_hour(tmp_path / "b", hour("2015-01-01-15"), events[::-1])
    assert dump(aggregate([forward])) == dump(aggregate([backward]))


# ---------------------------------------------------------------------------------------------------------------
# reading files
# ---------------------------------------------------------------------------------------------------------------


def test_lines_of_a_multi_member_file(tmp_path):
    path = tmp_path / "2015-01-01-0.json.gz"
    path.write_bytes(gzip.compress(b'{"a":1}\n\n{"b":2}\n') + gzip.compress(b'{"c":3}') + b"\0" * 16)
    assert list(iter_event_lines(path)) == [b'{"a":1}', b'{"b":2}', b'{"c":3}']


def test_truncated_gzip_yields_the_complete_lines_first(tmp_path):
    lines = [b'{"n":%d,"pad":"%s"}' % (i, b"x" * (i * 37 % 200)) for i in range(40)]
    data, ends = flushed_gzip(lines)
    path = tmp_path / "cut.json.gz"
    path.write_bytes(data[:(ends[23] + ends[24]) // 2])  # inside line 24's compressed bytes
    seen = []
    with pytest.raises(ArchiveError) as info:
        for line in iter_event_lines(path):
            seen.append(line)
    assert info.value.reason == "truncated_gzip" and str(path) in info.value.detail
    assert seen == lines[:24]


def test_missing_trailer_is_truncated_after_every_line(tmp_path):
    lines = [b'{"n":%d}' % i for i in range(10)]
    path = tmp_path / "no-trailer.json.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n")[:-8])  # CRC32 and size cut off
    seen = []
    with pytest.raises(ArchiveError) as info:
        seen.extend(iter_event_lines(path))
    assert info.value.reason == "truncated_gzip" and seen == lines


@pytest.mark.parametrize("content, reason", [(b"", "truncated_gzip"), (b"not gzip at all\n", "bad_gzip"),
                                             (None, "unreadable")])
def test_unreadable_files(tmp_path, content, reason):
    path = tmp_path / "bad.json.gz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ArchiveError) as info:
        list(iter_event_lines(path))
    assert info.value.reason == reason


def test_corrupt_data_is_bad_gzip(tmp_path):
    data = bytearray(gzip.compress(b'{"a":1}\n' * 1000))
    data[-6] ^= 0xFF  # the stored size no longer matches
    path = tmp_path / "crc.json.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError) as info:
        list(iter_event_lines(path))
    assert info.value.reason == "bad_gzip"


def test_http_url_is_streamed(tmp_path, early):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(early[0].parent), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{early[0].name}"
        assert list(iter_event_lines(url)) == list(iter_event_lines(early[0]))
        with pytest.raises(ArchiveError) as info:
            list(iter_event_lines(url + ".missing"))
        assert info.value.reason == "unreadable"
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------------------------------------------
# lines and events
# ---------------------------------------------------------------------------------------------------------------


def test_archive_error_pickles():
    exc = pickle.loads(pickle.dumps(ArchiveError("bad_gzip", "x.json.gz: invalid block type")))
    assert (exc.reason, exc.detail, str(exc)) == ("bad_gzip", "x.json.gz: invalid block type",
                                                  "bad_gzip: x.json.gz: invalid block type")


def test_parse_event_round_trip():
    ev = early_scenario()["2015-01-01-15"][0]
    assert parse_event(event_line(ev)) == ev


@pytest.mark.parametrize("line, reason, says", [
    (b'{"id":"1","type":"PushEvent",', "malformed_json", "unexpected"),
    (b'{"id":"1","type":"IssuesEvent","body":"caf\xe9"}', "malformed_json", "not valid UTF-8 at byte 42"),
    (b"[1,2]", "not_an_event", "a JSON list"),
    (b'{"id":"1","type":"IssuesEvent","payload":{}}', "not_an_event", "needs type, repo"),
    (b'{"type":"IssuesEvent","repo":{"name":"a/b"},"payload":[]}', "not_an_event", "needs type, repo"),
    (b'{"type":"IssuesEvent","repository":{"name":"b"},"payload":{}}', "not_an_event", "Timeline API"),
])
def test_parse_event_errors(line, reason, says):
    with pytest.raises(ArchiveError) as info:
        parse_event(line)
    assert info.value.reason == reason
    assert says.lower() in info.value.detail.lower()


def test_bad_lines_are_counted_and_reported(tmp_path):
    good = event_line(early_scenario()["2015-01-01-15"][0])
    path = write_hour(tmp_path, hour("2015-01-01-15"), [good, b'{"id":"2","type":"IssuesEvent",', b"\xff\xfe", good])
    bad = []
    agg = PullAggregator()
    counts = feed_lines(iter_event_lines(path), agg, on_bad_line=lambda exc, line: bad.append((exc.reason, line)))
    assert counts == {"lines": 4, "skipped": 0, "parsed": 2, "bad": 2}
    assert bad == [("malformed_json", b'{"id":"2","type":"IssuesEvent",'), ("malformed_json", b"\xff\xfe")]


def test_prefilter_on_types():
    for kind in WANTED_TYPES:
        assert is_wanted_line(b'{"id":"1","type":"%s","actor":{}}' % kind.encode())
    for kind in (b"PushEvent", b"WatchEvent", b"PullRequestEventX", b"Pull"):
        assert not is_wanted_line(b'{"id":"1","type":"' + kind + b'","actor":{}}')
    # another layout: the prefilter lets it through and the parser decides
    assert is_wanted_line(b'{"id": "1", "type": "PushEvent"}')
    assert is_wanted_line(b'{"id":"1","actor":{"login":"' + b"x" * 200 + b'"},"type":"PushEvent"}')


def test_prefilter_agrees_with_the_parser_on_the_fixtures(early, later):
    checked = 0
    for path in early + later:
        for line in iter_event_lines(path):
            assert is_wanted_line(line) == (parse_event(line)["type"] in WANTED_TYPES)
            assert line_repo_name(line) == parse_event(line)["repo"]["name"]
            checked += 1
    assert checked >= 20


# ---------------------------------------------------------------------------------------------------------------
# which repositories
# ---------------------------------------------------------------------------------------------------------------


def _many_repos_file(tmp_path):
    events = []
    for i in range(60):
        repo = f"Owner{i % 7}/Repo-{i}"
        events.append(event(100 + i, "PullRequestEvent", "u", repo, {"action": "opened", "number": i, "pull_request":
                            stub_pull(repo, i, head_sha=SHA["a"], base_sha=SHA["b"])}, "2025-11-03T10:00:00Z"))
    return write_hour(tmp_path, hour("2025-11-03-10"), events), {(e["repo"]["name"], i) for i, e in enumerate(events)}


@pytest.mark.parametrize("world_size", [2, 3, 5])
def test_shards_partition_repositories(tmp_path, world_size):
    path, everything = _many_repos_file(tmp_path)
    shards = []
    for rank in range(world_size):
        agg = aggregate([path], rank=rank, world_size=world_size)
        keys = set(by_key(agg))
        for repo, _ in keys:
            assert zlib.crc32(repo.lower().encode()) % world_size == rank
        assert agg.stats["other_repo"] == 0  # the byte-level prefilter already left the others out
        shards.append(keys)
    assert set().union(*shards) == everything
    assert sum(map(len, shards)) == len(everything)
    assert all(shards)  # 60 repositories: every shard has some


def test_repo_filter_is_case_insensitive(early):
    agg = aggregate(early, repos={"acme/WIDGETS"})
    assert [k for k in by_key(agg)] == [("Acme/Widgets", 10), ("Acme/Widgets", 11), ("Acme/Widgets", 12)]
    unfiltered = PullAggregator(repos={"acme/widgets"})
    for line in iter_event_lines(early[2]):
        unfiltered.add(parse_event(line))  # without the prefilter, `add` filters
    assert (unfiltered.stats["other_repo"], unfiltered.stats["other_type"]) == (2, 1)  # other/tool; CreateEvent


def test_rank_out_of_range():
    with pytest.raises(ValueError):
        PullAggregator(rank=2, world_size=2)
