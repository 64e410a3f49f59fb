"""`sources.gharchive` in two phases (issue 11, items 7 and 8): each hour file is read by one map task, which
routes its wanted lines to the partition of their repository; each reduce task aggregates one partition. The
records and every count are the same for any number of tasks; PRs seen only through issue events are counted."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone

import polars as pl
import pytest

from datakit.cli import main
from datakit.sources.gharchive import iter_event_lines, partition_of, route_line
from tests.gharchive_fixtures import comment, event, event_line, full_issue, write_hour
from tests.test_gharchive_stage import R, archive  # noqa: F401


@pytest.fixture(scope="module")
def hours(archive, tmp_path_factory):  # noqa: F811
    """The stage test's hour files, plus one where a PR (#4) appears only through an issue comment."""
    out, _ = archive
    folder = tmp_path_factory.mktemp("phases") / "hours"
    shutil.copytree(out.parent / "hours", folder)
    t = "2024-03-02T10:{:02d}:00Z".format
    write_hour(folder, datetime(2024, 3, 2, 10, tzinfo=timezone.utc), [
        event(20, "IssueCommentEvent", "zed", R, {"action": "created", "issue": full_issue(
            R, 4, title="wip 2", body="", author="zed", created_at=t(0), updated_at=t(1), is_pull=True),
            "comment": comment(901, R, 4, author="zed", body="any news?", created_at=t(1))}, t(1)),
        event(21, "IssueCommentEvent", "zed", "other/repo", {"action": "created", "issue": full_issue(
            "other/repo", 7, title="x", body="", author="zed", created_at=t(2), updated_at=t(2)),
            "comment": comment(902, "other/repo", 7, author="zed", body="hi", created_at=t(2))}, t(2)),
    ])
    return folder, out.parent / "mirrors"


def _run(hours, tmp_path, tasks: int, name: str, extra=()):  # noqa: F811
    folder, mirrors = hours
    out = tmp_path / name
    argv = ["crawl", "--gharchive", folder, "--mirrors", mirrors, "--no-fetch", "--output", out, "--tasks",
            str(tasks), "--workers", "1", "--quiet", *extra]
    assert main([str(a) for a in argv]) == 0
    return out


def _records(out) -> list[dict]:
    return sorted(pl.read_parquet(out / "pulls" / "*.parquet").to_dicts(), key=lambda r: (r["repo"], r["number"]))


def _quarantine(out) -> list[tuple]:
    rows = pl.read_parquet(out / "pulls" / "quarantine" / "*.parquet").to_dicts()
    return sorted((r["reason"], r["record"]) for r in rows)


def test_records_and_counts_do_not_depend_on_the_task_count(hours, tmp_path):  # noqa: F811
    outs = {n: _run(hours, tmp_path, n, f"t{n}") for n in (1, 3)}
    stats = {n: json.loads((o / "pulls" / "stats.json").read_text()) for n, o in outs.items()}
    assert _records(outs[1]) == _records(outs[3]) and [r["number"] for r in _records(outs[1])] == [1, 2]
    assert _quarantine(outs[1]) == _quarantine(outs[3])
    assert stats[1]["units"] == stats[3]["units"] and stats[1]["counters"] == stats[3]["counters"]
    units = stats[1]["units"]
    assert units["files"] == {"read": 4, "written": 3, "quarantined": {"truncated_gzip": 1}, "filtered": {}}
    # every line once (the truncated copy yields none): written (parsed by its reduce) + quarantined + left behind
    assert units["lines"]["read"] == 5 + 4 + 0 + 2 and units["lines"]["quarantined"] == {"malformed_json": 1}
    assert units["lines"]["read"] == (units["lines"]["written"] + sum(units["lines"]["quarantined"].values())
                                      + sum(units["lines"]["filtered"].values()))
    # PR 4 was only ever an issue comment: read and filtered, not silently dropped
    assert units["pulls"] == {"read": 4, "written": 2, "quarantined": {},
                              "filtered": {"issue_events_only": 1, "unmerged": 1}}


def test_each_hour_file_is_read_by_one_map_task(hours, tmp_path):  # noqa: F811
    folder, _ = hours
    out = _run(hours, tmp_path, 3, "map")
    maps = sorted((out / "pulls" / ".datakit" / "map" / "parts").glob("*/files.json"))
    read = [[f["path"] for f in json.loads(p.read_text())["files"]] for p in maps]
    inputs = sorted(str(p) for p in folder.glob("*.json.gz"))
    assert [p for r in read for p in r] != [] and sorted(p for r in read for p in r) == inputs  # once each
    assert read == [inputs[m::3] for m in range(3)]
    assert not list((out / "pulls" / ".datakit" / "map" / "parts").rglob("*.jsonl.gz"))  # removed after the stage
    assert main([str(a) for a in ["crawl", "--gharchive", folder, "--mirrors", hours[1], "--no-fetch", "--output",
                                  out, "--tasks", "3", "--workers", "1", "--quiet"]]) == 0  # resumed: nothing to do
    assert json.loads((out / "pulls" / "stats.json").read_text())["units"]["pulls"]["written"] == 2


def test_a_line_goes_to_its_repositorys_partition(hours):  # noqa: F811
    folder, _ = hours
    checked = 0
    for path in sorted(folder.glob("2024-*.json.gz")):
        for line in iter_event_lines(str(path)):
            ev = json.loads(line)
            assert route_line(line, 7) == partition_of(ev["repo"]["name"], 7)
            assert route_line(line, 7, {"nobody/else"}) == "other_repo"
            checked += 1
    assert checked >= 5
    push = event_line(event(99, "PushEvent", "bob", R, {"push_id": 1, "commits": []}, "2024-03-01T00:00:00Z"))
    assert route_line(push, 7) == "other_type"
    assert route_line(b'{"id": "9", "type": "Pull', 7) == 0  # unreadable: partition 0 quarantines it
    assert partition_of("Acme/App", 7) == partition_of("acme/app", 7)
