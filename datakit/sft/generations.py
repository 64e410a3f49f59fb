"""A teacher's generations for Agentless samples, as users keep them: one row per answer. Pure functions.

Accepted rows (JSONL, JSON, Parquet or a saved `datasets` dataset, read by `datakit.synth.readers`):

- ``{sample_id, answer, reasoning?}`` — `answer` may also be `response` / `completion` / `output`, `reasoning`
  also `reasoning_content` / `thinking`. An answer that opens with the think tag and has no separate reasoning is
  split at the closing tag, so reasoning and answer are kept apart and only the answer is validated.
- ``{sample_id, messages}`` — the whole chat the teacher saw and wrote (OpenAI form): its last assistant turn is the
  answer; a user turn in it must be the sample's prompt, exactly, so the conversation datakit builds is the one the
  teacher answered (checked by the step; `prompt_mismatch` otherwise).
- optional `index` (or `n`): pairs the n-th localize answer with the n-th edit answer of one (PR, role) when the
  teacher sampled several; default 0. Optional `generation_id`: recorded as provenance.
"""

from __future__ import annotations

from typing import Any

from datakit.sft.agentless import Generation, SftReject, ThinkTags
from datakit.synth.formats import FormatError, openai_messages

ANSWER_KEYS = ("answer", "response", "completion", "output")
REASONING_KEYS = ("reasoning", "reasoning_content", "thinking")


def _first(row: dict, keys: tuple[str, ...]) -> Any:
    return next((row[k] for k in keys if row.get(k) is not None), None)


def split_think(answer: str, tags: ThinkTags) -> tuple[str | None, str]:
    """(reasoning, answer) of an answer that carries its reasoning inline (``<think>…</think>answer``)."""
    if answer.lstrip().startswith(tags.open) and tags.close in answer:
        head, _, tail = answer.partition(tags.close)
        return head.lstrip()[len(tags.open):].strip("\n"), tail.lstrip("\n")
    return None, answer


def parse_generation(row: Any, label: str, tags: ThinkTags = ThinkTags()) -> tuple[Generation, list[str]]:
    """(Generation, the user prompts a whole chat showed) of a row; SftReject with a reason when malformed."""
    if not isinstance(row, dict):
        raise SftReject("invalid_generation", f"a generation row must be a JSON object, got {type(row).__name__}")
    sample_id = row.get("sample_id")
    if not isinstance(sample_id, str) or not sample_id:
        raise SftReject("invalid_generation", "a generation row needs a `sample_id` (the Agentless sample's id)")
    index = row.get("index", row.get("n", 0))
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise SftReject("invalid_generation", f"`index` must be a non-negative integer, got {index!r}")
    label = str(row["generation_id"]) if isinstance(row.get("generation_id"), (str, int)) else label
    prompts: list[str] = []
    if row.get("messages") is not None:
        try:
            messages = openai_messages(row["messages"])
        except FormatError as exc:
            raise SftReject(exc.reason, str(exc)) from None
        answers = [m for m in messages if m["role"] == "assistant"]
        if not answers:
            raise SftReject("invalid_generation", "the chat has no assistant turn")
        if len(answers) > 1 or messages[-1]["role"] != "assistant":
            raise SftReject("invalid_generation", "a generation chat answers one prompt: exactly one assistant "
                                                  "turn, last")
        prompts = [m["content"] for m in messages if m["role"] == "user"]
        answer, reasoning = answers[0]["content"], answers[0]["reasoning"]
    else:
        answer, reasoning = _first(row, ANSWER_KEYS), _first(row, REASONING_KEYS)
    if not isinstance(answer, str) or not answer.strip():
        raise SftReject("invalid_generation", f"no answer text (one of {', '.join(ANSWER_KEYS)}, or messages)")
    if reasoning is not None and not isinstance(reasoning, str):
        raise SftReject("invalid_generation", "reasoning must be a string")
    if reasoning is None:
        reasoning, answer = split_think(answer, tags)
    return Generation(sample_id, answer, reasoning or None, index, label), prompts
