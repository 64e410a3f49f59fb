"""Fuzzing the synthetic-data readers and chat-format converters (datakit.synth.readers / formats) with broken
files and rows of the wrong shape. No crash: a row that cannot be read is a RowError with a reason, one that reads
but fits no format (or breaks a chat rule) a FormatError / ChatError with a reason, and what converts is a valid
Sample. Huge rows and zstd bombs are read in bounded memory. Deterministic (derandomize)."""

from __future__ import annotations

from importlib import resources

import orjson
import pyarrow as pa
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from datakit.io.schemas import arrow_schema, conform
from datakit.synth.formats import FormatError
from datakit.synth.readers import MAX_ROW_BYTES, RowError, iter_rows
from datakit.synth.steps import to_sample
from datakit.tokens.chat import ChatError
from tests.fuzzing import FUZZ, damaged, json_values, mutated, traced_peak

ROW_REASONS = {"empty_line", "malformed_json", "truncated_zstd", "row_too_large"}

FIXTURES = resources.files("datakit") / "demo" / "fixtures" / "synth"
# the shipped fixtures, one of each format (chat.jsonl also holds rows that are broken on purpose: left out here)
ROWS = [row for name in ("chat.jsonl", "mini_swe_agent.traj.json", "openhands_events.json", "swe_agent.traj")
        for _, row in iter_rows(FIXTURES / name) if not isinstance(row, RowError)]

JSON = json_values(keys=st.sampled_from(["role", "content", "type", "text", "tool_calls", "function", "name",
                                         "arguments", "id", "action", "args", "source", "observation", "cause"])
                   | st.text(max_size=4),
                   words=st.sampled_from(["user", "assistant", "tool", "system", "agent", "message", "text", "{}"]),
                   max_leaves=8)


def broken_rows():
    """A real row of each format (OpenAI messages, SWE-agent, mini-SWE-agent, OpenHands, prompt/answer) with a
    few values replaced by any JSON value or removed; or any JSON value at all."""
    return st.one_of(mutated(ROWS, JSON), mutated(ROWS, JSON), mutated(ROWS, JSON), mutated(ROWS, JSON), JSON)


def v(valid):
    """A field: mostly of its right type, sometimes any JSON value."""
    return st.one_of(valid, valid, JSON)


def obj(required: dict, optional: dict):
    return st.fixed_dictionaries({k: v(x) for k, x in required.items()},
                                 optional={k: v(x) for k, x in optional.items()})


TEXT = st.text(max_size=8)
ROLE = st.sampled_from(["system", "developer", "user", "assistant", "tool", "agent"])
ARGS = st.one_of(st.just('{"cmd": "ls"}'), st.just("not json"), st.dictionaries(TEXT, TEXT, max_size=2))
CALL = obj({"function": obj({"name": TEXT, "arguments": ARGS}, {})}, {"id": TEXT, "type": st.just("function")})
PARTS = st.lists(obj({"type": st.just("text"), "text": TEXT}, {}), max_size=2)
MESSAGE = obj({"role": ROLE, "content": st.one_of(TEXT, PARTS)},
              {"tool_calls": st.lists(CALL, max_size=2), "tool_call_id": TEXT, "name": TEXT,
               "reasoning_content": TEXT, "function_call": obj({"name": TEXT, "arguments": ARGS}, {})})
MESSAGES = st.lists(MESSAGE, min_size=1, max_size=4)
INFO = obj({}, {"exit_status": TEXT, "submission": TEXT})
SWE_STEP = obj({}, {"thought": TEXT, "action": TEXT, "observation": TEXT})
SWE_HISTORY = obj({"role": ROLE, "content": st.one_of(TEXT, PARTS)},
                  {"thought": TEXT, "action": TEXT, "tool_calls": st.lists(CALL, max_size=1),
                   "tool_call_ids": st.lists(TEXT, max_size=2)})
RESPONSE = obj({"choices": st.lists(obj({"message": obj({"tool_calls": st.lists(
    obj({"id": TEXT, "function": obj({"arguments": ARGS}, {})}, {}), max_size=1)}, {})}, {}), max_size=1)}, {})
EVENT = st.one_of(
    obj({"id": st.integers(0, 3), "source": st.sampled_from(["user", "agent", "environment"]),
         "action": st.sampled_from(["message", "system", "run", "recall", "finish"])},
        {"args": obj({}, {"content": TEXT, "thought": TEXT, "command": TEXT}), "message": TEXT,
         "tool_call_metadata": obj({}, {"function_name": TEXT, "tool_call_id": TEXT, "model_response": RESPONSE})}),
    obj({"id": st.integers(0, 3), "cause": st.integers(0, 3), "observation": st.sampled_from(["run", "null"])},
        {"content": TEXT, "extras": st.dictionaries(TEXT, TEXT, max_size=1)}))
SHAPED = st.one_of(
    obj({"messages": MESSAGES}, {}),
    obj({"trajectory_format": st.just("mini-swe-agent-1"), "messages": MESSAGES}, {"info": INFO}),
    obj({}, {"history": st.lists(SWE_HISTORY, max_size=3), "trajectory": st.lists(SWE_STEP, max_size=3),
             "info": INFO}),
    st.lists(EVENT, min_size=1, max_size=4),
    obj({"history": st.lists(EVENT, min_size=1, max_size=4)}, {}),
    obj({"prompt": st.one_of(TEXT, PARTS), "answer": TEXT}, {"reasoning": TEXT, "system": TEXT}))


@FUZZ
@given(st.one_of(broken_rows(), SHAPED, SHAPED))
def test_fuzz_rows_convert_or_fail_with_a_reason(row):
    try:
        sample, meta = to_sample(row, max_turn_chars=200_000)
    except (FormatError, ChatError) as exc:
        assert isinstance(exc.reason, str) and exc.reason and str(exc)
        return
    # what the stage's writer does with it: the schema's Arrow types must take every value
    pa.Table.from_pylist([conform(sample, "sample")], schema=arrow_schema("sample"))
    assert isinstance(meta, dict) and sample["messages"]


@st.composite
def broken_jsonl(draw):
    lines = [orjson.dumps(draw(st.sampled_from(ROWS))) for _ in range(draw(st.integers(1, 4)))]
    data = b"\n".join(lines) + b"\n"
    kind = draw(st.sampled_from(["cut", "flip", "splice", "blank", "none"]))
    if kind == "blank":
        return b"\n\n" + data + b"  \n"
    return damaged(draw, data, kind)


def read_all(path, **kw):
    rows = list(iter_rows(path, **kw))
    for _, row in rows:
        if isinstance(row, RowError):
            assert row.reason in ROW_REASONS and row.detail, row
        else:
            try:
                to_sample(row)
            except (FormatError, ChatError) as exc:
                assert exc.reason
    return rows


@FUZZ
@given(broken_jsonl(), st.sampled_from(["jsonl", "zst", "json"]), st.data())
def test_fuzz_broken_files(tmp_path_factory, data, kind, draw):
    folder = tmp_path_factory.mktemp("synth")
    if kind == "zst":
        blob = zstandard.ZstdCompressor().compress(data)
        if draw.draw(st.booleans()):
            blob = blob[:draw.draw(st.integers(0, len(blob)))]
        path = folder / "x.jsonl.zst"
        path.write_bytes(blob)
    elif kind == "json":
        path = folder / "x.traj.json"
        path.write_bytes(data.split(b"\n")[0])
    else:
        path = folder / "x.jsonl"
        path.write_bytes(data)
    rows = read_all(path)
    if kind == "jsonl":  # every line is one row: nothing lost, nothing invented
        assert len(rows) == len(data.split(b"\n")) - (1 if data.endswith(b"\n") or not data else 0)


def test_huge_jsonl_line_is_one_row_error(tmp_path):
    """A line over the limit is read past (never held whole) and is one row_too_large row; the others read."""
    good = orjson.dumps(ROWS[0])
    path = tmp_path / "x.jsonl"
    path.write_bytes(good + b"\n" + b'{"messages": "' + b"y" * (3 << 20) + b'"}\n' + good)
    rows = read_all(path, max_row_bytes=1 << 20)
    assert [i for i, _ in rows] == [0, 1, 2]
    assert rows[0][1] == ROWS[0] and rows[2][1] == ROWS[0]
    assert isinstance(rows[1][1], RowError) and rows[1][1].reason == "row_too_large"
    assert "line 2" in rows[1][1].detail and len(rows[1][1].raw) <= 4096


def test_huge_json_document_is_one_row_error(tmp_path):
    path = tmp_path / "x.traj"
    path.write_bytes(b'{"history": "' + b"y" * (2 << 20) + b'"}')
    rows = read_all(path, max_row_bytes=1 << 20)
    assert len(rows) == 1 and rows[0][1].reason == "row_too_large"
    assert list(iter_rows(path))[0][1] == {"history": "y" * (2 << 20)}  # under the default limit: read
    assert MAX_ROW_BYTES >= 64 << 20


def test_zstd_bomb_reads_in_bounded_memory(tmp_path):
    """128 MiB of newline-free bytes in a few KiB of zstd: one row_too_large row, read with a flat peak."""
    blob = zstandard.ZstdCompressor(level=19).compress(b"x" * (128 << 20))
    assert len(blob) < 64 << 10
    path = tmp_path / "bomb.jsonl.zst"
    path.write_bytes(blob)
    rows, peak = traced_peak(lambda: list(iter_rows(path, max_row_bytes=1 << 20)))
    assert [r.reason for _, r in rows] == ["row_too_large"]
    assert peak < 24 << 20, f"peak {peak >> 20} MiB"


@pytest.mark.parametrize("lines", [3, 1000])
def test_zstd_lines_across_small_pieces(tmp_path, lines):
    """The bounded zstd reader gives the same rows as a plain read (lines split across its input pieces)."""
    data = b"".join(orjson.dumps(ROWS[i % len(ROWS)]) + b"\n" for i in range(lines))
    (tmp_path / "a.jsonl").write_bytes(data)
    (tmp_path / "a.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    assert list(iter_rows(tmp_path / "a.jsonl.zst")) == list(iter_rows(tmp_path / "a.jsonl"))
