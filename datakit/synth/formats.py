"""Synthetic reasoning / agent data → the one chat schema (`schemas/chat.schema.json`). Pure functions, no I/O.

Each converter takes one row as read (a JSON value) and returns the messages, or raises `FormatError` with a
quarantine reason. The shapes follow each tool's own documentation or source (the fixtures in
`datakit/demo/fixtures/synth/` cite them):

- `openai`: ``{"messages": [{role, content, tool_calls: [{id, type: "function", function: {name, arguments}}]},
  {role: "tool", tool_call_id, content}, …]}`` (OpenAI chat completions). Content may be a list of
  ``{type: "text", text}`` parts; `reasoning_content` / `reasoning` on an assistant message is its reasoning;
  `developer` is a system message; arguments given as an object (Hugging Face style) are serialised.
- `mini_swe_agent`: a `.traj.json` (``{info: {exit_status, submission, …}, messages: [OpenAI form, plus
  `extra`], trajectory_format: "mini-swe-agent-1…"}``, mini-swe-agent's `save_traj`); exit status and
  submission are kept as meta.
- `swe_agent`: a `.traj` (``{history: [{role, content, thought, action, agent, message_type, tool_calls,
  tool_call_ids}], trajectory: [{thought, action, observation, response, …}], info: {exit_status, submission}}``,
  SWE-agent's `sweagent.types`). `history` is the whole conversation; an assistant entry's thought becomes the
  reasoning and its action the content (or its tool calls, in function-calling mode). Without a history the
  `trajectory` steps become assistant (thought → reasoning, action → content) and user (observation) turns.
- `openhands`: an event list (OpenHands' `event_to_dict`: ``{id, source, action, args, tool_call_metadata}`` and
  ``{id, cause, observation, content, extras, tool_call_metadata}``), alone or as the `history` of an evaluation
  row. Messages map to user/assistant turns; an agent action is a tool call (name and id from
  `tool_call_metadata` when given, else the action type and `call_{event id}`; arguments = its `args` minus the
  thought, which is the turn's reasoning); an observation is the tool result of the action it names in `cause`.
  State changes and recalls are not conversation and are skipped.
- `prompt_answer`: ``{prompt, reasoning, answer}`` (also `question` / `instruction`, `response` / `completion`,
  an optional `system`).
"""

from __future__ import annotations

import json
from typing import Any, Callable

from datakit.tokens.chat import ChatError, normalize_message, validate_tools

FORMATS = ("openai", "mini_swe_agent", "swe_agent", "openhands", "prompt_answer")
SKIPPED_OPENHANDS = {"agent_state_changed", "change_agent_state", "null", "recall", "condensation"}


class FormatError(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


# Rows are untrusted: a nested value of the wrong type is read as absent (these two) or refused with a reason,
# never indexed, iterated or hashed as if it had the right one.
def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list:
    return value if isinstance(value, list) else []


def _ref(value: Any) -> Any:
    """An event id or cause usable as a key (a list or mapping is not hashable)."""
    return value if value is None or isinstance(value, (str, int, float)) else repr(value)


def _text(content: Any, where: str) -> str:
    """A message content as one string: a string, None (''), or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str):
                parts.append(p["text"])
            else:
                kind = p.get("type") if isinstance(p, dict) else type(p).__name__
                raise FormatError("unsupported_content", f"{where}: content part of type {kind!r} (text only)")
        return "".join(parts)
    raise FormatError("invalid_content", f"{where}: content must be a string or text parts, got "
                                         f"{type(content).__name__}")


def _arguments(raw: Any) -> Any:
    """OpenAI gives arguments as a JSON string; some datasets as the object itself (serialised here). Anything
    else is passed through for `check_messages` to reject."""
    return json.dumps(raw, ensure_ascii=False) if isinstance(raw, dict) else raw


def _tool_calls(calls: Any, where: str) -> list[dict] | None:
    if not calls:
        return None
    if not isinstance(calls, list):
        raise FormatError("invalid_tool_call", f"{where}: tool_calls must be a list")
    out = []
    for k, c in enumerate(calls):
        if not isinstance(c, dict):
            raise FormatError("invalid_tool_call", f"{where}.tool_calls[{k}]: expected a mapping")
        fn = c.get("function") if isinstance(c.get("function"), dict) else c
        out.append({"id": str(c.get("id") or f"{where}_{k}"), "name": fn.get("name"),
                    "arguments": _arguments(fn.get("arguments"))})
    return out


def _message_list(messages: Any, where: str = "messages") -> list:
    if isinstance(messages, str):  # a Parquet / datasets column holding the conversation as JSON
        try:
            messages = json.loads(messages)
        except ValueError as exc:
            raise FormatError("malformed_json", f"{where}: a string that is not JSON: {exc}") from None
    if not isinstance(messages, list) or not messages:
        raise FormatError("invalid_messages", f"{where}: expected a non-empty list of messages")
    return messages


def openai_messages(messages: Any, where: str = "messages") -> list[dict]:
    out = []
    for i, m in enumerate(_message_list(messages, where)):
        at = f"{where}[{i}]"
        if not isinstance(m, dict):
            raise FormatError("invalid_messages", f"{at}: expected a mapping, got {type(m).__name__}")
        role = "system" if m.get("role") == "developer" else m.get("role")
        calls = _tool_calls(m.get("tool_calls"), at)
        if calls is None and isinstance(m.get("function_call"), dict):  # the legacy single-call form
            calls = _tool_calls([m["function_call"]], at)
        reasoning = m.get("reasoning_content", m.get("reasoning"))
        out.append(normalize_message({
            "role": role, "content": _text(m.get("content"), at),
            "reasoning": reasoning if isinstance(reasoning, str) and reasoning else None,
            "tool_calls": calls, "tool_call_id": m.get("tool_call_id"), "name": m.get("name"),
        }))
    return out


def from_openai(row: dict) -> tuple[list[dict], dict]:
    return openai_messages(row.get("messages")), {}


def from_mini_swe_agent(row: dict) -> tuple[list[dict], dict]:
    info = row.get("info") if isinstance(row.get("info"), dict) else {}
    return openai_messages(row.get("messages")), {"exit_status": info.get("exit_status"),
                                                  "submission": info.get("submission")}


def from_swe_agent(row: dict) -> tuple[list[dict], dict]:
    info = row.get("info") if isinstance(row.get("info"), dict) else {}
    meta = {"exit_status": info.get("exit_status"), "submission": info.get("submission")}
    history = row.get("history")
    if history:
        out = []
        for i, h in enumerate(_message_list(history, "history")):
            at = f"history[{i}]"
            if not isinstance(h, dict):
                raise FormatError("invalid_messages", f"{at}: expected a mapping")
            role, content = h.get("role"), _text(h.get("content"), at)
            calls = _tool_calls(h.get("tool_calls"), at)
            reasoning, tool_call_id = None, None
            if role == "assistant" and calls is None and isinstance(h.get("action"), str):
                thought = h.get("thought")
                reasoning = thought.strip() if isinstance(thought, str) and thought.strip() else None
                content = h["action"] if reasoning else content
            if role == "tool":
                ids = _items(h.get("tool_call_ids"))
                tool_call_id = ids[0] if ids else h.get("tool_call_id")
            out.append(normalize_message({"role": role, "content": content, "reasoning": reasoning,
                                          "tool_calls": calls, "tool_call_id": tool_call_id}))
        return out, meta
    steps = row.get("trajectory")
    if not isinstance(steps, list) or not steps:
        raise FormatError("invalid_messages", "a SWE-agent trajectory with neither history nor trajectory steps")
    out = []
    for i, s in enumerate(steps):
        if not isinstance(s, dict):
            raise FormatError("invalid_messages", f"trajectory[{i}]: expected a mapping")
        thought = s.get("thought") if isinstance(s.get("thought"), str) else ""
        out.append(normalize_message({"role": "assistant", "content": _text(s.get("action"), f"trajectory[{i}]"),
                                      "reasoning": thought.strip() or None}))
        if s.get("observation") is not None:
            out.append(normalize_message({"role": "user",
                                          "content": _text(s.get("observation"), f"trajectory[{i}]")}))
    return out, meta


def _openhands_call(event: dict) -> tuple[str, str, str | None]:
    """(tool call id, name, arguments) of an agent action event."""
    meta = _mapping(event.get("tool_call_metadata"))
    call_id = str(meta.get("tool_call_id") or f"call_{event.get('id')}")
    name = meta.get("function_name") or event.get("action")
    arguments = None
    # the arguments exactly as the model wrote them
    for choice in _items(_mapping(meta.get("model_response")).get("choices")):
        for c in _items(_mapping(_mapping(choice).get("message")).get("tool_calls")):
            if isinstance(c, dict) and c.get("id") == call_id:
                arguments = _arguments(_mapping(c.get("function")).get("arguments"))
    if arguments is None:
        args = {k: v for k, v in _mapping(event.get("args")).items() if k not in ("thought", "reasoning_content")}
        arguments = json.dumps(args, ensure_ascii=False)
    return call_id, name, arguments


def from_openhands(row: Any) -> tuple[list[dict], dict]:
    events = row.get("history") if isinstance(row, dict) else row
    if not isinstance(events, list) or not events:
        raise FormatError("invalid_messages", "an OpenHands event list must be a non-empty list")
    out, calls = [], {}  # action event id → tool call id
    for i, e in enumerate(events):
        at = f"events[{i}]"
        if not isinstance(e, dict):
            raise FormatError("invalid_messages", f"{at}: expected an event mapping")
        args = e.get("args") if isinstance(e.get("args"), dict) else {}
        if "action" in e:
            action = e["action"]
            if not isinstance(action, str):
                raise FormatError("invalid_messages", f"{at}: action must be a string, got {type(action).__name__}")
            if action in SKIPPED_OPENHANDS:
                continue
            if action == "system":
                out.append(normalize_message({"role": "system", "content": _text(args.get("content"), at)}))
            elif action == "message":
                source = e.get("source")
                role = {"user": "user", "agent": "assistant"}.get(source, source) if isinstance(source, str) else source
                out.append(normalize_message({"role": role, "content": _text(args.get("content", e.get("message")), at)}))
            else:
                call_id, name, arguments = _openhands_call(e)
                calls[_ref(e.get("id"))] = call_id
                thought = args.get("thought") if isinstance(args.get("thought"), str) else ""
                out.append(normalize_message({"role": "assistant", "content": "", "reasoning": thought or None,
                                              "tool_calls": [{"id": call_id, "name": name, "arguments": arguments}]}))
        elif "observation" in e:
            if not isinstance(e["observation"], str):
                raise FormatError("invalid_messages", f"{at}: observation must be a string")
            if e["observation"] in SKIPPED_OPENHANDS:
                continue
            cause = e.get("cause")
            call_id = calls.get(_ref(cause), f"call_{cause}")
            out.append(normalize_message({"role": "tool", "content": _text(e.get("content"), at),
                                          "tool_call_id": call_id, "name": e["observation"]}))
        else:
            raise FormatError("invalid_messages", f"{at}: neither an action nor an observation event")
    return out, {}


def from_prompt_answer(row: dict) -> tuple[list[dict], dict]:
    prompt = next((row[k] for k in ("prompt", "question", "instruction") if k in row), None)
    answer = next((row[k] for k in ("answer", "response", "completion") if k in row), None)
    out = []
    if row.get("system"):
        out.append(normalize_message({"role": "system", "content": _text(row["system"], "system")}))
    reasoning = row.get("reasoning")
    out.append(normalize_message({"role": "user", "content": _text(prompt, "prompt")}))
    out.append(normalize_message({"role": "assistant", "content": _text(answer, "answer"),
                                  "reasoning": reasoning if isinstance(reasoning, str) and reasoning else None}))
    return out, {}


CONVERTERS: dict[str, Callable[[Any], tuple[list[dict], dict]]] = {
    "openai": from_openai, "mini_swe_agent": from_mini_swe_agent, "swe_agent": from_swe_agent,
    "openhands": from_openhands, "prompt_answer": from_prompt_answer,
}


def _is_event(x: Any) -> bool:
    return isinstance(x, dict) and ("action" in x or "observation" in x) and ("source" in x or "cause" in x)


def detect(row: Any) -> str:
    """The format of a row, by its shape."""
    if isinstance(row, list):
        if row and _is_event(row[0]):
            return "openhands"
        raise FormatError("unknown_format", "a list that is not an OpenHands event list")
    if not isinstance(row, dict):
        raise FormatError("unknown_format", f"a row must be a JSON object, got {type(row).__name__}")
    if str(row.get("trajectory_format", "")).startswith("mini-swe-agent"):
        return "mini_swe_agent"
    history = row.get("history")
    if isinstance(history, list) and history and _is_event(history[0]):
        return "openhands"
    if isinstance(history, list) or isinstance(row.get("trajectory"), list):
        return "swe_agent"
    if "messages" in row:
        return "mini_swe_agent" if isinstance(row.get("info"), dict) else "openai"
    if any(k in row for k in ("prompt", "question", "instruction")):
        return "prompt_answer"
    raise FormatError("unknown_format", f"no known format has the keys {sorted(row)[:12]}")


def convert(row: Any, fmt: str = "auto") -> tuple[str, list[dict], dict]:
    """(format, messages, meta) of a row; FormatError (with its reason) when it fits no format."""
    fmt = detect(row) if fmt == "auto" else fmt
    if fmt not in CONVERTERS:
        raise ValueError(f"format: {fmt!r} is not one of auto, {', '.join(FORMATS)}")
    if fmt != "openhands" and not isinstance(row, dict):
        raise FormatError("unknown_format", f"a {fmt} row must be a JSON object, got {type(row).__name__}")
    messages, meta = CONVERTERS[fmt](row)
    for i, m in enumerate(messages):  # what `check_messages` leaves to the schema: the two optional strings
        for key in ("tool_call_id", "name"):
            if not _is_text(m.get(key)):
                raise FormatError("invalid_messages", f"messages[{i}]: {key} must be a string or null, got "
                                                      f"{type(m[key]).__name__}")
    return fmt, messages, meta


def _is_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def tools_of(row: Any) -> list[str] | None:
    """The row's tool definitions (`tools`: a list of JSON objects, e.g. OpenAI function specs), each serialised
    (the Sample's `tools`); None when it has none. FormatError("invalid_tools") when malformed."""
    tools = row.get("tools") if isinstance(row, dict) else None
    try:
        plain = validate_tools(tools)
    except ChatError as exc:
        raise FormatError(exc.reason, str(exc)) from None
    return [json.dumps(t, ensure_ascii=False) for t in plain] if plain else None
