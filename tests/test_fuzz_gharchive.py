"""Fuzzing the GH Archive reader (datakit.sources.gharchive) with broken files, broken lines and events whose
fields have the wrong types. No crash: a file fails with its ArchiveError reason after the complete lines before
the fault, a line with its line reason (what the stage quarantines), and whatever parses aggregates into records
that satisfy the pull_record schema. Huge lines and decompression bombs are read in bounded memory.
Deterministic (derandomize)."""

from __future__ import annotations

import gzip
import json
import struct
import zlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from datakit.io.schemas import validate
from datakit.pulls.records import link_and_attach
from datakit.sources.gharchive import (MAX_PIECE, ArchiveError, PullAggregator, feed_lines, iter_event_lines,
                                       parse_event, route_line)
from tests.fuzzing import FUZZ, damaged, json_values, mutated, traced_peak
from tests.gharchive_fixtures import early_scenario, event_line, later_scenario

FILE_REASONS = {"truncated_gzip", "bad_gzip", "unreadable"}
LINE_REASONS = {"malformed_json", "not_an_event", "line_too_long"}

EVENTS = [ev for scenario in (early_scenario(), later_scenario()) for events in scenario.values() for ev in events]
LINES = [event_line(ev) for ev in EVENTS]
JSON = json_values()


def broken_events():
    """A real event (both eras) with a few fields replaced by any JSON value or removed."""
    return mutated(EVENTS, JSON)


@FUZZ
@given(st.lists(st.one_of(broken_events(), st.sampled_from(EVENTS)), min_size=1, max_size=8))
def test_fuzz_wrong_types_aggregate_to_valid_records(events):
    agg = PullAggregator()
    bad = []
    counts = feed_lines([orjson.dumps(ev) for ev in events], agg, on_bad_line=lambda exc, line: bad.append(exc))
    assert counts["lines"] == len(events) == counts["skipped"] + counts["parsed"] + counts["bad"]
    assert {exc.reason for exc in bad} <= LINE_REASONS
    for record, issues, state in agg.results():
        validate(record, "pull_record")
        validate(link_and_attach(record, issues), "pull_record")
        assert state in ("merged", "closed_unmerged", "open", "unknown")


@st.composite
def broken_lines(draw):
    line = draw(st.sampled_from(LINES))
    kind = draw(st.sampled_from(["cut", "flip", "splice", "bytes", "json", "bigint"]))
    if kind == "json":
        return orjson.dumps(draw(JSON))
    if kind == "bigint":  # past 64 bits: orjson reads a float
        return line.replace(b'"number":', b'"number":1' + b"0" * 30, 1)
    if kind == "bytes":
        return draw(st.binary(max_size=40))
    return damaged(draw, line, kind)


@FUZZ
@given(st.lists(broken_lines(), min_size=1, max_size=6))
def test_fuzz_broken_lines_are_line_errors(lines):
    lines = [ln for ln in lines if ln and b"\n" not in ln]
    for line in lines:
        assert isinstance(route_line(line, 4), (int, str))
    agg = PullAggregator()
    bad = []
    counts = feed_lines(lines, agg, on_bad_line=lambda exc, line: bad.append(exc.reason))
    assert counts["bad"] == len(bad) and set(bad) <= LINE_REASONS
    for record, _, _ in agg.results():
        validate(record, "pull_record")


def gz(data: bytes, members: int = 1) -> bytes:
    cut = len(data) // members
    return b"".join(gzip.compress(data[i * cut:(i + 1) * cut if i < members - 1 else len(data)], mtime=0)
                    for i in range(members))


@FUZZ
@given(st.lists(st.sampled_from(LINES), min_size=1, max_size=5), st.integers(1, 3),
       st.sampled_from(["cut", "flip", "append", "none"]), st.data())
def test_fuzz_broken_gzip(tmp_path_factory, lines, members, damage, data):
    raw = b"".join(ln + b"\n" for ln in lines)
    blob = damaged(data.draw, gz(raw, members), damage)
    if damage == "append":
        blob += data.draw(st.binary(min_size=1, max_size=12))
    path = tmp_path_factory.mktemp("gz") / "2015-01-01-0.json.gz"
    path.write_bytes(blob)
    got, error = [], None
    try:
        for line in iter_event_lines(path):
            got.append(line)
    except ArchiveError as exc:
        error = exc
        assert exc.reason in FILE_REASONS and str(path) in exc.detail
    if damage == "none":
        assert error is None and got == lines
    elif damage == "cut":  # a truncation yields complete lines only, in order, then says so
        assert error is not None and got == lines[:len(got)]
    else:
        for line in got:
            try:
                parse_event(line)
            except ArchiveError as exc:
                assert exc.reason in LINE_REASONS


def test_huge_line_is_reported_not_held(tmp_path):
    """A 12 MiB line between two events, with a 1 MiB limit: the events are read, the line is a short stand-in
    that parses as line_too_long (and goes through the map phase's routing to partition 0, where it is counted)."""
    huge = b'{"id":"1","type":"PullRequestEvent","x":"' + b"y" * (12 << 20) + b'"}'
    path = tmp_path / "2015-01-01-0.json.gz"
    path.write_bytes(gz(LINES[0] + b"\n" + huge + b"\n" + LINES[1] + b"\n", members=1))
    got = list(iter_event_lines(path, max_line_bytes=1 << 20))
    assert got[0] == LINES[0] and got[2] == LINES[1] and len(got) == 3
    assert len(got[1]) < 200 and route_line(got[1], 4) == 0
    with pytest.raises(ArchiveError) as exc:
        parse_event(got[1])
    assert exc.value.reason == "line_too_long" and str(len(huge)) in exc.value.detail
    bad = []
    feed_lines(got, PullAggregator(), on_bad_line=lambda e, line: bad.append(e.reason))
    assert bad == ["line_too_long"]
    # the same with the limit above the line: read whole
    assert list(iter_event_lines(path, max_line_bytes=16 << 20))[1] == huge


def test_long_last_line_without_newline_and_many_pieces(tmp_path):
    """A line over the limit that ends the file without a newline, built from many decompressed pieces."""
    huge = b"z" * (3 * MAX_PIECE + 7)
    path = tmp_path / "2015-01-01-0.json.gz"
    path.write_bytes(gz(LINES[0] + b"\n" + huge, members=3))
    got = list(iter_event_lines(path, max_line_bytes=MAX_PIECE))
    assert got[0] == LINES[0] and len(got) == 2
    with pytest.raises(ArchiveError) as exc:
        parse_event(got[1])
    assert exc.value.reason == "line_too_long" and str(len(huge)) in exc.value.detail


def zero_bomb(mib: int) -> bytes:
    """A gzip member of `mib` MiB of zero bytes, ~1 KiB per MiB: one compressed MiB repeated (each ends with a
    full flush, so every copy decodes alike), then an empty final block and the trailer."""
    block = b"\0" * (1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    again = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(block, crc)
    return first + again * (mib - 1) + b"\x03\x00" + struct.pack("<II", crc, (mib << 20) & 0xFFFFFFFF)


def test_decompression_bomb_reads_in_bounded_memory(tmp_path):
    """64 MiB of one byte in a 70 KiB gzip, read with a peak of a few MiB (zlib's output is capped per call and an
    over-long line is never joined), not 64 MiB."""
    blob = zero_bomb(64)
    assert len(blob) < 80_000
    path = tmp_path / "2015-01-01-0.json.gz"
    path.write_bytes(blob)
    got, peak = traced_peak(lambda: list(iter_event_lines(path, max_line_bytes=1 << 20)))
    assert len(got) == 1 and got[0].startswith(b"\0datakit:line_too_long:67108864:")
    assert peak < 8 << 20, f"peak {peak >> 20} MiB"


def test_stage_quarantines_a_huge_line_once(tmp_path):
    """Through both phases (map: routed to partition 0 as a stand-in; reduce: parsed) a line over the default
    limit is quarantined once as line_too_long, and the other lines are read."""
    from datakit.cli import main
    from datakit.sources.gharchive import MAX_LINE_BYTES

    folder = tmp_path / "hours"
    folder.mkdir()
    huge = b'{"id":"2","type":"IssuesEvent","x":"' + b"y" * MAX_LINE_BYTES + b'"}'
    (folder / "2024-03-01-10.json.gz").write_bytes(gz(LINES[0] + b"\n" + huge + b"\n" + LINES[1] + b"\n"))
    out = tmp_path / "out"
    argv = ["crawl", "--gharchive", folder, "--mirrors", tmp_path / "mirrors", "--no-fetch", "--output", out,
            "--tasks", "2", "--workers", "1", "--quiet"]
    main([str(a) for a in argv])
    stats = json.loads((out / "pulls" / "stats.json").read_text())["units"]
    assert stats["lines"]["read"] == 3 and stats["lines"]["quarantined"] == {"line_too_long": 1}, stats["lines"]
