"""Multi-turn agent trajectories (SWE-agent `.traj`, mini-SWE-agent, OpenHands events, OpenAI messages with
`tool_calls`) → sft Samples. Pure functions; the step is `datakit.sft.steps.AgentTrajectories`.

A row is converted by the synth stage's converters (`datakit.synth.formats`) into the one chat schema and checked
by its rules (`datakit.tokens.chat.check_messages`: malformed tool calls, results without a call … are quarantined
with their reason). Then the filters a user expects, each counted under its reason (`Verdict.reason`):

- `unresolved`: the source says the task was not resolved (`resolved` / `target` (nebius' SWE-agent
  trajectories) / `report.resolved` / `info.resolved` false);
- `not_submitted`: no verdict, but the agent's exit status says it stopped without submitting (SWE-agent's
  `exit_cost`, `exit_format`, mini-SWE-agent's `LimitsExceeded` …: anything not starting with "submitted");
- `no_verdict`: `require_resolved` is set and the source gives no verdict;
- `too_many_turns`, `too_many_tokens`: over the stage's budgets (assistant turns; tokens of the rendered chat).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from datakit.synth.formats import convert, tools_of
from datakit.tokens.chat import check_messages

__all__ = ["AgentLimits", "Verdict", "verdict", "agent_sample", "repo_of_instance"]

INSTANCE = re.compile(r"^([A-Za-z0-9_.-]+?)__([A-Za-z0-9_.-]+)-\d+$")


@dataclass(frozen=True)
class AgentLimits:
    max_turns: int = 100  # assistant turns
    max_tokens: int = 131_072  # tokens of the rendered conversation
    require_resolved: bool = False


@dataclass(frozen=True)
class Verdict:
    resolved: bool | None
    exit_status: str | None
    reason: str | None  # why the trajectory is filtered, or None


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def verdict(row: Any, meta: Mapping, require_resolved: bool = False) -> Verdict:
    """What the source says of the run's outcome."""
    found = None
    if isinstance(row, dict):
        for holder, key in ((row, "resolved"), (row, "target"), (row.get("report"), "resolved"),
                            (row.get("info"), "resolved")):
            if isinstance(holder, dict) and key in holder and (flag := _flag(holder[key])) is not None:
                found = flag
                break
    status = meta.get("exit_status")
    status = status if isinstance(status, str) else None
    if found is False:
        return Verdict(found, status, "unresolved")
    if found is None and status is not None and not status.lower().startswith("submitted"):
        return Verdict(found, status, "not_submitted")
    if found is None and require_resolved:
        return Verdict(found, status, "no_verdict")
    return Verdict(found, status, None)


def repo_of_instance(instance_id: Any) -> str | None:
    """`django__django-11099` → `django/django` (SWE-bench's instance naming), else None."""
    m = INSTANCE.match(instance_id) if isinstance(instance_id, str) else None
    return f"{m.group(1)}/{m.group(2)}" if m else None


def agent_sample(row: Any, fmt: str = "auto", max_turn_chars: int | None = None,
                 require_resolved: bool = False) -> tuple[dict, Verdict]:
    """(sft Sample without `id` and `text`, the source's verdict) of one row; FormatError / ChatError (with a
    reason) when it is malformed."""
    fmt, messages, meta = convert(row, fmt)
    check_messages(messages, max_turn_chars)
    tools = tools_of(row)
    instance = row.get("instance_id") if isinstance(row, dict) else None
    instance = instance if isinstance(instance, str) else None
    repo = repo_of_instance(instance) or (row.get("repo") if isinstance(row, dict) and isinstance(row.get("repo"), str)
                                          else None)
    outcome = verdict(row, meta, require_resolved)
    calls = sum(len(m["tool_calls"] or ()) for m in messages)
    sft = {"trajectory": "agent", "generation": None, "turns": sum(m["role"] == "assistant" for m in messages),
           "steps": None, "localized_files": None, "localize_recall": None, "edited_files": None, "test_files": None,
           "applies": None, "matches_gold": None, "execution": None, "resolved": outcome.resolved,
           "exit_status": outcome.exit_status,
           "instance_id": instance, "tool_calls": calls, "tokens": None}
    return {
        "id": "",  # content-derived, set by the step
        "kind": "sft",
        "role": "none",
        "text": "",
        "prompt_chars": None,
        "messages": messages,
        "tools": tools,
        "meta": {"repo": repo, "files": [], "template": None, "problem_source": None, "sft": sft},
        "source": {"kind": "synthetic", "method": fmt, "repo": repo, "pr": None, "commit": None,
                   "crawled_at": None, "landing": None, "missing": []},
    }, outcome
