"""The SFT stages on the demo: counts add up, the planted cases land where they should, every kept trajectory
re-validates, the messages Parquet renders through Qwen2.5's own template to the Sample's text, and the tokens
stage keeps conversations whole with loss on the assistant's tokens only."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from datakit.demo.sft_fixtures import build_generations
from datakit.samples.edits import apply_edits, parse_edits
from datakit.sft.agentless import shown_files, extract_edits
from datakit.tokens.chat import render_chat_text
from datakit.tokens.shards import iter_documents
from datakit.tokens.tokenizer import load_tokenizer
from tests.corpus import QWEN_REF

FIXTURES = Path(__file__).resolve().parent.parent / "datakit" / "demo" / "fixtures" / "sft"


def stats(out: Path, stage: str) -> Counter:
    """The stage's counters summed over its tasks (datatrove's per-task stats files)."""
    total: Counter = Counter()
    for f in (out / stage / ".datakit").rglob("stats/*.json"):
        for step in json.loads(f.read_text()):
            for k, v in step["stats"].items():
                total[k] += v["total"] if isinstance(v, dict) else v
    return total


def rows(folder: Path) -> list[dict]:
    return [r for f in sorted(folder.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def quarantine(out: Path, stage: str) -> Counter:
    return Counter(r["reason"] for r in rows(out / stage / "quarantine"))


def test_the_shipped_generations_are_what_the_builder_makes(demo_output):
    lines = build_generations(demo_output / "decontam")
    assert (FIXTURES / "generations.jsonl").read_text(encoding="utf-8") == "".join(f"{ln}\n" for ln in lines), \
        "the demo's samples changed: remake fixtures/sft/generations.jsonl with python -m datakit.demo.sft_fixtures"


def test_agentless_counts_and_planted_cases(demo_output):
    s = stats(demo_output, "sft_trajectories")
    for unit in ("generations", "trajectories"):
        lost = sum(v for k, v in s.items() if k.startswith((f"{unit}.quarantined.", f"{unit}.filtered.")))
        assert s[f"{unit}.read"] == s[f"{unit}.written"] + lost > 0
    n_lines = len((FIXTURES / "generations.jsonl").read_text().splitlines())
    assert s["generations.read"] == n_lines
    assert s["generations.filtered.duplicate_generation"] == 1
    assert quarantine(demo_output, "sft_trajectories") == Counter(
        {"malformed_json": 1, "unknown_sample": 1, "edits_do_not_apply": 1, "no_edits": 1, "no_test_file": 1})
    kept = rows(demo_output / "sft_trajectories")
    assert len(kept) == s["trajectories.written"] == len({r["id"] for r in kept})
    steps = Counter("+".join(r["meta"]["sft"]["steps"]) for r in kept)
    assert steps["localize"] == 1 and steps["edit"] == 1 and steps["localize+edit"] >= 8
    assert sorted(r["meta"]["sft"]["localize_recall"] for r in kept if r["meta"]["sft"]["localize_recall"] is not None)[0] == 0.0
    assert any(r["messages"][-1]["content"].startswith("<think>\nSecond attempt.") for r in kept)


def test_kept_trajectories_revalidate(demo_output):
    samples = {r["id"]: r for r in rows(demo_output / "decontam") if r["kind"] in ("localize", "edit")}
    by_prompt = {s["text"][:s["prompt_chars"]]: s for s in samples.values()}
    for t in rows(demo_output / "sft_trajectories"):
        sft = t["meta"]["sft"]
        assert t["kind"] == "sft" and t["role"] in ("bugfixer", "testwriter") and sft["execution"] is None
        users = [m for m in t["messages"] if m["role"] == "user"]
        assistants = [m for m in t["messages"] if m["role"] == "assistant"]
        assert len(users) == len(assistants) == sft["turns"] == len(sft["steps"])
        assert all(m["reasoning"] is None for m in t["messages"])  # folded into the content, between the tags
        assert all(m["content"].startswith("<think>\n") for m in assistants)
        for user, answer, step in zip(users, assistants, sft["steps"]):
            sample = by_prompt[user["content"]]  # every user turn is exactly an Agentless prompt
            assert sample["kind"] == step and sample["role"] == t["role"]
            if step == "edit":
                gold = parse_edits(sample["text"][sample["prompt_chars"]:])
                base = shown_files(user["content"], t["role"], [e.path for e in gold if e.status != "added"])
                result = apply_edits(base, extract_edits(answer["content"].split("</think>\n\n", 1)[1]))
                assert (result == apply_edits(base, gold)) == sft["matches_gold"]
                assert sft["edited_files"] and (t["role"] == "bugfixer" or sft["test_files"])
        assert t["text"] == render_chat_text(t["messages"])


def test_agent_counts_and_filters(demo_output):
    s = stats(demo_output, "sft_agent")
    lost = sum(v for k, v in s.items() if k.startswith(("rows.quarantined.", "rows.filtered.")))
    assert s["rows.read"] == s["rows.written"] + lost
    assert {k.split(".", 2)[2]: v for k, v in s.items() if k.startswith("rows.filtered.")} == {
        "unresolved": 1, "not_submitted": 1, "too_many_turns": 1}
    assert quarantine(demo_output, "sft_agent") == Counter({"tool_arguments_not_json": 1})
    kept = rows(demo_output / "sft_agent")
    assert {r["source"]["method"] for r in kept} == {"openai", "mini_swe_agent", "swe_agent", "openhands"}
    assert all(r["meta"]["sft"]["tokens"] <= 131_072 and r["meta"]["sft"]["turns"] <= 12 for r in kept)
    # the SWE-bench Verified task is removed by the SFT decontamination, the rest kept
    removed = [json.loads(r["record"]) for r in rows(demo_output / "sft_decontam" / "quarantine")]
    assert [r["meta"]["repo"] for r in removed] == ["psf/requests"]
    assert len(rows(demo_output / "sft_decontam")) == len(kept) - 1
    with_tools = [r for r in kept if r["tools"]]
    assert with_tools and all("# Tools" in r["text"] and "<tools>" in r["text"] for r in with_tools)


@pytest.mark.parametrize("stage", ["sft_trajectories", "sft_agent"])
def test_messages_parquet_loads_and_renders_as_the_template(demo_output, stage):
    import datasets

    files = sorted(str(p) for p in (demo_output / stage / "messages").glob("*.parquet"))
    ds = datasets.load_dataset("parquet", data_files=files, split="train")
    samples = {r["id"]: r for r in rows(demo_output / stage)}
    assert sorted(ds["id"]) == sorted(samples)
    assert pl.read_parquet(files).height == len(samples)  # polars reads it too
    template = QWEN_REF / "chat_template.jinja"
    for row in ds:
        for m in row["messages"]:
            for c in m["tool_calls"] or ():
                assert isinstance(c["function"]["arguments"], dict) and c["type"] == "function"
        if template.is_file():
            from transformers.utils.chat_template_utils import render_jinja_template

            text = render_jinja_template([row["messages"]], tools=row["tools"],
                                         chat_template=template.read_text())[0][0]
            assert text == samples[row["id"]]["text"]


def test_sft_tokens_keep_conversations_whole_with_assistant_only_loss(demo_output):
    tok = load_tokenizer("qwen2.5")
    texts = {r["id"]: r["text"] for r in rows(demo_output / "sft_trajectories") + rows(demo_output / "sft_decontam")}
    docs = list(iter_documents(sorted((demo_output / "sft_tokens").glob("*.parquet"))))
    ledger = pl.read_parquet(demo_output / "sft_tokens" / "mixture" / "*.parquet")
    long = ledger.filter(pl.col("decision") == "too_long")
    assert long.height == 1 and long["tokens"][0] > 2048  # the long agent trajectory: left out, not split
    # each other conversation exactly once: none chunked, none up-sampled
    assert sorted(d[0] for d in docs) == sorted(set(texts) - set(long["sample_id"]))
    im_start, im_end = tok.token_id("<|im_start|>"), tok.token_id("<|im_end|>")
    for sample_id, source, ids, mask in docs:
        assert source == "sft" and ids[-1] == tok.eod_id and mask[-1] == 0
        assert tok.decode(ids[:-1].tolist()) == texts[sample_id]
        # every learned run is one assistant turn: it ends with <|im_end|> and follows "<|im_start|>assistant\n"
        starts = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8)])) == 1)
        ends = np.flatnonzero(np.diff(np.concatenate([mask.astype(np.int8), [0]])) == -1)
        assert len(starts) == texts[sample_id].count("<|im_start|>assistant")
        for a, b in zip(starts, ends):
            assert ids[b] == im_end and im_end not in ids[a:b].tolist() and im_start not in ids[a:b + 1].tolist()
            assert tok.decode(ids[max(a - 3, 0):a].tolist()).endswith("<|im_start|>assistant\n") or \
                tok.decode(ids[a - 3:a + 1].tolist()).startswith("<|im_start|>assistant")
