"""synth.ingest: every reader and format, normalised to schemas/chat.schema.json, bad rows quarantined with
their reason, `text` = Qwen2.5's own template, counts adding up, through the real stage."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from datakit.io.schemas import load_json_schema
from datakit.synth.readers import iter_rows, list_inputs, resolve
from datakit.synth.steps import to_sample
from datakit.tokens.chat import ChatError, check_messages, render_chat, render_chat_text
from datakit.tokens.tokenizer import load_tokenizer
from tests.conftest import requires_shared
from tests.test_recipes import datakit

FIXTURES = resolve("datakit:demo/fixtures/synth")
TEMPLATE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "qwen2.5" / "chat_template.jinja"
EXPECTED_REASONS = {"malformed_json": 1, "unknown_role": 1, "empty_assistant_turn": 1, "tool_arguments_not_json": 1,
                    "tool_result_without_call": 1, "unknown_format": 1}


def chat_validator():
    schema = load_json_schema("chat")
    return jsonschema.Draft202012Validator(schema)


def rows_of(path: Path):
    return [row for _, row in iter_rows(path)]


def run_synth(tmp_path: Path, paths: list[str], tasks: int = 1, **options) -> Path:
    recipe = {"name": "s", "output": str(tmp_path / "out"), "executor": {"type": "local", "tasks": tasks,
                                                                       "workers": 1},
              "stages": [{"name": "synth", "stage": "synth.ingest", "options": {"paths": paths, **options}}]}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps(recipe))
    proc = datakit("run", path, "--quiet")
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "out" / "synth"


def samples_of(folder: Path) -> list[dict]:
    return [r for f in sorted(folder.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def test_each_fixture_format_normalises_to_the_chat_schema():
    by_file = {p.name: p for p in list_inputs([str(FIXTURES)])}
    assert set(by_file) == {"chat.jsonl", "swe_agent.traj", "mini_swe_agent.traj.json", "openhands_events.json"}
    v = chat_validator()
    # SWE-agent: history wins; thought → reasoning, action → content; info kept as meta
    (traj,) = rows_of(by_file["swe_agent.traj"])
    s, meta = to_sample(traj)
    assert s["source"]["method"] == "swe_agent" and meta["exit_status"] == "submitted"
    roles = [m["role"] for m in s["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert s["messages"][2]["reasoning"] == "DISCUSSION\nFind `contains` first." and \
        s["messages"][2]["content"].startswith("grep -n")
    assert s["messages"][1]["content"].startswith("<pr_description>")  # text parts joined
    # without a history, the trajectory steps
    s2, _ = to_sample({k: v_ for k, v_ in traj.items() if k != "history"})
    assert [m["role"] for m in s2["messages"]] == ["assistant", "user", "assistant", "user"]
    # mini-SWE-agent: OpenAI messages + info
    (mini,) = rows_of(by_file["mini_swe_agent.traj.json"])
    s3, meta3 = to_sample(mini)
    assert s3["source"]["method"] == "mini_swe_agent" and meta3["submission"].startswith("diff --git")
    # OpenHands: state changes skipped, actions → tool calls (ids from tool_call_metadata, arguments as the model
    # wrote them), observations → tool results by cause
    (events,) = rows_of(by_file["openhands_events.json"])
    s4, _ = to_sample(events)
    assert [m["role"] for m in s4["messages"]] == ["system", "user", "assistant", "tool", "assistant", "tool",
                                                   "assistant"]
    call = s4["messages"][2]["tool_calls"][0]
    assert call["id"] == "toolu_01" and call["name"] == "execute_bash"
    assert json.loads(call["arguments"]) == {"command": "python -c \"from widgets.theme import Theme; "
                                                        "Theme.load('empty.toml')\""}
    assert s4["messages"][2]["reasoning"] == "Reproduce it first." and s4["messages"][3]["tool_call_id"] == "toolu_01"
    assert json.loads(s4["messages"][4]["tool_calls"][0]["arguments"])["command"] == "str_replace"
    for sample in (s, s2, s3, s4):
        v.validate(sample["messages"])
        assert sample["kind"] == "synthetic" and sample["role"] == "none" and sample["prompt_chars"] is None
        assert sample["text"] == render_chat_text(sample["messages"])


def test_openai_rows_tool_calls_reasoning_and_malformed_rows():
    rows = rows_of(FIXTURES / "chat.jsonl")
    good, reasons = [], {}
    for row in rows:
        if not isinstance(row, dict):
            reasons[row.reason] = reasons.get(row.reason, 0) + 1
            continue
        try:
            good.append(to_sample(row)[0])
        except ChatError as exc:
            reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
            assert exc.reason == row.get("_expect")
        except ValueError as exc:
            reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
            assert exc.reason == row.get("_expect")
    assert reasons == EXPECTED_REASONS and len(good) == 5
    first = good[0]["messages"]
    assert first[2]["reasoning"].startswith("Half-open") and first[2]["content"].startswith("No:")
    parallel = good[2]["messages"][1]["tool_calls"]
    assert [c["id"] for c in parallel] == ["call_b1", "call_b2"]
    assert json.loads(parallel[1]["arguments"]) == {"path": "vendor/tinycolor/tinycolor.py"}  # an object, serialised
    assert good[3]["messages"][-1] == {"role": "assistant", "content": "32.0", "reasoning":
                                       "em multiplies the base font size: 2 * 16 = 32.", "tool_calls": None,
                                       "tool_call_id": None, "name": None}


@pytest.mark.parametrize("messages, reason", [
    ([{"role": "user", "content": "x" * 101}, {"role": "assistant", "content": "ok"}], "turn_too_long"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "", "tool_calls": [
        {"id": "1", "name": "f", "arguments": "[1, 2]"}]}], "tool_arguments_not_json"),  # JSON, not an object
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "", "tool_calls": [
        {"id": "1", "name": "f", "arguments": "{}"}]}, {"role": "tool", "tool_call_id": "1", "content": "x"},
      {"role": "tool", "tool_call_id": "1", "content": "again"}], "tool_result_without_call"),  # answered twice
    ([{"role": "assistant", "content": "", "reasoning": " "}], "empty_assistant_turn"),
    ([{"role": "user", "content": 3}], "invalid_content"),
])
def test_rules(messages, reason):
    with pytest.raises(ChatError) as info:
        check_messages(messages, max_turn_chars=100)
    assert info.value.reason == reason


def test_tool_results_without_ids_answer_calls_in_order():
    check_messages([{"role": "user", "content": "a"},
                    {"role": "assistant", "content": "", "tool_calls": [{"id": "x", "name": "f", "arguments": "{}"},
                                                                        {"id": "y", "name": "g", "arguments": "{}"}]},
                    {"role": "tool", "content": "1"}, {"role": "tool", "content": "2"}])


@requires_shared("qwen2.5/chat_template.jinja")
def test_text_is_what_qwen25s_own_template_renders():
    """Every fixture conversation rendered by the published Jinja template (with transformers' tojson) equals
    `text`; reasoning, which that template has no field for, goes in as the content's <think> prefix."""
    import jinja2

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False)
    template = env.from_string(TEMPLATE.read_text())
    n = 0
    for path in list_inputs([str(FIXTURES)]):
        for row in rows_of(path):
            try:
                s, _ = to_sample(row)
            except ValueError:
                continue
            msgs = []
            for m in s["messages"]:
                m = dict(m)
                if m["reasoning"] is not None:
                    m["content"] = f"<think>\n{m['reasoning']}\n</think>\n\n{m['content']}"
                m["tool_calls"] = [{"type": "function", "function": {"name": c["name"],
                                                                     "arguments": json.loads(c["arguments"])}}
                                   for c in m["tool_calls"] or []] or None
                msgs.append(m)
            assert template.render(messages=msgs, add_generation_prompt=False) == s["text"]
            n += 1
    assert n == 8


def test_token_ids_decode_to_text_and_tool_markers_are_special_ids():
    tok = load_tokenizer("qwen2.5")
    (events,) = rows_of(FIXTURES / "openhands_events.json")
    s, _ = to_sample(events)
    ids, mask = render_chat(s["messages"], tok, add_eod=False)
    assert tok.decode(ids) == s["text"]
    call, end = tok.token_id("<tool_call>"), tok.token_id("</tool_call>")
    assert ids.count(call) == ids.count(end) == 2
    assert all(mask[i] == 1 for i, t in enumerate(ids) if t in (call, end))  # tool calls are learned
    assert "<tool_response>" in s["text"] and s["text"].count("<|im_start|>user\n<tool_response>") == 2


def test_zstd_parquet_and_saved_dataset_read_the_same_rows(tmp_path):
    lines = (FIXTURES / "chat.jsonl").read_bytes()
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "chat.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines))
    plain = rows_of(FIXTURES / "chat.jsonl")
    assert [type(r).__name__ for r in rows_of(tmp_path / "z" / "chat.jsonl.zst")] == [type(r).__name__ for r in plain]
    assert [r for r in rows_of(tmp_path / "z" / "chat.jsonl.zst") if isinstance(r, dict)] == \
        [r for r in plain if isinstance(r, dict)]
    # a cut zstd file: the lines decoded before the cut are rows, the rest one truncated_zstd error
    big = b"".join(json.dumps({"prompt": f"p{i}", "answer": "a" * 200}).encode() + b"\n" for i in range(2000))
    blob = zstandard.ZstdCompressor().compress(big)
    (tmp_path / "cut.jsonl.zst").write_bytes(blob[: len(blob) // 2])
    cut = rows_of(tmp_path / "cut.jsonl.zst")
    assert 0 < len(cut) - 1 < 2000 and cut[-1].reason == "truncated_zstd"
    assert all(isinstance(r, dict) for r in cut[:-1])
    # Parquet with the conversation as a JSON string column, and as nested lists
    good = [r for r in plain if isinstance(r, dict) and "messages" in r and "_expect" not in r]
    pq.write_table(pa.Table.from_pylist([{"messages": json.dumps(r["messages"])} for r in good]),
                   tmp_path / "s.parquet")
    from_parquet = [to_sample(r)[0]["id"] for r in rows_of(tmp_path / "s.parquet")]
    assert from_parquet == [to_sample(r)[0]["id"] for r in good]
    # a datasets dataset saved on disk
    import datasets

    datasets.Dataset.from_list([{"prompt": f"q{i}", "reasoning": "r", "answer": f"a{i}"} for i in range(5)]) \
        .save_to_disk(str(tmp_path / "ds"))
    assert list_inputs([str(tmp_path)])[0] == tmp_path / "ds"
    assert [r["prompt"] for r in rows_of(tmp_path / "ds")] == [f"q{i}" for i in range(5)]


def test_stage_counts_add_up_and_tasks_do_not_change_the_output(tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    conv = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    long = {"messages": [{"role": "user", "content": "x" * 5000}, {"role": "assistant", "content": "ok"}]}
    (extra / "dup.jsonl").write_text("\n".join(json.dumps(r) for r in (conv, conv, long)) + "\n")
    out = run_synth(tmp_path / "one", [str(FIXTURES), str(extra)], max_turn_chars=4000)
    stats = json.loads((out / "stats.json").read_text())["units"]["rows"]
    assert stats["read"] == 17
    assert stats["quarantined"] == {**EXPECTED_REASONS, "turn_too_long": 1}
    assert stats["filtered"] == {"duplicate": 1}
    assert stats["read"] == stats["written"] + sum(stats["quarantined"].values()) + sum(stats["filtered"].values())
    rows = samples_of(out)
    assert len(rows) == stats["written"] == 9
    v = chat_validator()
    for r in rows:
        v.validate(r["messages"])
        assert r["text"] == render_chat_text(r["messages"])
    q = pq.read_table(out / "quarantine").to_pylist()
    assert sorted(r["reason"] for r in q) == sorted([*EXPECTED_REASONS, "turn_too_long"])
    assert all(json.loads(r["record"])["file"] for r in q)  # each names where it came from
    # one file and three tasks (rows shared i mod 3): the same samples
    out3 = run_synth(tmp_path / "three", [str(FIXTURES / "chat.jsonl")], tasks=3)
    out1 = run_synth(tmp_path / "single", [str(FIXTURES / "chat.jsonl")], tasks=1)
    assert sorted(r["id"] for r in samples_of(out3)) == sorted(r["id"] for r in samples_of(out1))
    s3 = json.loads((out3 / "stats.json").read_text())["units"]["rows"]
    assert s3["read"] == 11 and s3["quarantined"] == {**EXPECTED_REASONS}


def test_datasets_loader_reads_the_same(tmp_path):
    good = tmp_path / "g"
    good.mkdir()
    (good / "a.jsonl").write_text("".join(json.dumps({"prompt": f"q{i}", "answer": f"a{i}"}) + "\n" for i in range(6)))
    own = run_synth(tmp_path / "own", [str(good)])
    hf = run_synth(tmp_path / "hf", [str(good)], loader="json")
    assert [r["id"] for r in samples_of(own)] == [r["id"] for r in samples_of(hf)]


def test_unknown_option_values_fail_before_work(tmp_path):
    recipe = {"name": "s", "output": str(tmp_path / "out"),
              "stages": [{"name": "synth", "stage": "synth.ingest", "options": {"paths": [str(tmp_path / "none")]}}]}
    (tmp_path / "r.yaml").write_text(json.dumps(recipe))
    proc = datakit("run", tmp_path / "r.yaml", "--quiet")
    assert proc.returncode != 0 and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
