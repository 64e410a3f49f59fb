"""ChatML rendering with loss masks — Qwen2.5's chat template, offline — and plain documents for mid-training.

Messages follow `schemas/chat.schema.json` (role, content, reasoning, tool_calls, tool_call_id, name; a plain
``{role, content}`` mapping is fine). A conversation renders exactly as Qwen2.5's published template
(`../shared/data/qwen2.5/chat_template.jinja`, called without `tools`) renders it:

- `DEFAULT_SYSTEM` is prepended as a system message when the first message is not a system message;
- system / user / assistant: ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` (content not stripped);
- an assistant turn with tool calls: ``<|im_start|>assistant`` + (``\\n`` + content if content) + per call
  ``\\n<tool_call>\\n{"name": "…", "arguments": …}\\n</tool_call>`` + ``<|im_end|>\\n``, the arguments as the
  template's `tojson` writes them (transformers' filter: `json.dumps(ensure_ascii=False)`);
- consecutive tool results merge into one user turn: ``<|im_start|>user`` + per result
  ``\\n<tool_response>\\n{content}\\n</tool_response>`` + ``<|im_end|>\\n``;
- reasoning (which the Qwen2.5 template has no field for) goes before the assistant content as
  ``<think>\\n{reasoning}\\n</think>\\n\\n`` (Qwen3's template does the same), so it stays apart from the answer in
  the data and is learned like the rest of the turn.

Tokenization is per segment, so boundaries never depend on neighbouring text: `<|im_start|>` (by id),
``"{role}\\n"`` (encoded), the body (text encoded on its own as plain text, so special-token strings in content
stay text; the `<tool_call>` / `</tool_call>` markers the renderer itself writes are Qwen2.5 added tokens and go
in by id, as the Hugging Face tokenizer matches them in the rendered string), `<|im_end|>` (by id), ``"\\n"``.
This is also how the model meets assistant content at inference (the prompt ends with the token of
``"assistant\\n"``). It differs from tokenizing the whole rendered string only where a content starts with
whitespace/newlines that the split regex would join with the header's ``"\\n"``.

Loss mask: 1 on the assistant body tokens (reasoning, content, tool calls) and the assistant's `<|im_end|>` (the
model learns to stop), 0 elsewhere (system/user/tool turns, role headers, every ``"\\n"`` after `<|im_end|>`, the
final `<|endoftext|>`).

`check_messages` adds the data-quality rules a synthetic conversation must pass (each failure has a quarantine
reason); the renderer itself only refuses what it cannot render.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from datakit.tokens.tokenizer import Tokenizer, TokenizerError

__all__ = ["DEFAULT_SYSTEM", "ROLES", "ChatError", "check_messages", "normalize_message", "render_chat",
           "render_chat_text", "render_plain"]

DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
ROLES = ("system", "user", "assistant", "tool")
MESSAGE_FIELDS = ("role", "content", "reasoning", "tool_calls", "tool_call_id", "name")
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
TOOL_CALL, TOOL_CALL_END = "<tool_call>", "</tool_call>"


class ChatError(TokenizerError):
    """A conversation that breaks a rule; `reason` is its quarantine reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def normalize_message(m: Mapping[str, Any]) -> dict:
    """A message with exactly the schema's six fields (absent ones None)."""
    return {k: m.get(k) for k in MESSAGE_FIELDS}


def _arguments(call: Any, where: str) -> tuple[str, dict]:
    """(name, parsed arguments) of a tool call; the arguments must be a JSON object serialised as a string."""
    if not isinstance(call, Mapping) or not isinstance(call.get("name"), str) or not call.get("name"):
        raise ChatError("invalid_tool_call", f"{where}: a tool call needs a name, got {call!r:.200}")
    raw = call.get("arguments")
    try:
        args = json.loads(raw) if isinstance(raw, str) else None
    except ValueError as exc:
        raise ChatError("tool_arguments_not_json", f"{where} ({call['name']}): arguments are not JSON: {exc}") from None
    if not isinstance(args, dict):
        raise ChatError("tool_arguments_not_json",
                        f"{where} ({call['name']}): arguments must be a JSON object string, got {raw!r:.200}")
    return call["name"], args


def _validated(messages: Any) -> list[dict]:
    """The messages, shape-checked (what the renderer needs), with the default system message prepended."""
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise ChatError("invalid_messages",
                        f"messages must be a list of {{role, content}} mappings, got {type(messages).__name__}")
    if len(messages) == 0:
        raise ChatError("invalid_messages", "messages: empty conversation")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise ChatError("invalid_messages",
                            f"messages[{i}]: expected a mapping with role and content, got {type(m).__name__}")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise ChatError("unknown_role", f"messages[{i}]: role {role!r} is not one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise ChatError("invalid_content",
                            f"messages[{i}] ({role}): content must be a string, got {type(content).__name__}")
        if m.get("reasoning") is not None and not isinstance(m.get("reasoning"), str):
            raise ChatError("invalid_content", f"messages[{i}] ({role}): reasoning must be a string or null")
        for k, call in enumerate(m.get("tool_calls") or ()):
            _arguments(call, f"messages[{i}].tool_calls[{k}]")
        out.append(m)
    if out[0]["role"] != "system":
        out.insert(0, {"role": "system", "content": DEFAULT_SYSTEM})
    return out


def check_messages(messages: Any, max_turn_chars: int | None = None) -> None:
    """Raise ChatError (with its quarantine reason) unless the conversation passes every rule of
    `schemas/chat.schema.json`: known roles, string contents, no empty assistant turn, tool-call arguments that
    are JSON objects, every tool result answering an earlier unanswered call (by `tool_call_id`, or the next one
    in order when the source gives no ids), no turn longer than `max_turn_chars`."""
    _validated(messages)
    pending: list[str | None] = []  # ids of the calls of the last assistant turn not answered yet
    for i, m in enumerate(messages):
        role, calls = m["role"], m.get("tool_calls") or []
        size = len(m["content"]) + len(m.get("reasoning") or "") + sum(len(c["arguments"]) for c in calls)
        if max_turn_chars is not None and size > max_turn_chars:
            raise ChatError("turn_too_long", f"messages[{i}] ({role}): {size} characters > max_turn_chars "
                                             f"{max_turn_chars}")
        if role == "assistant":
            if not m["content"].strip() and not (m.get("reasoning") or "").strip() and not calls:
                raise ChatError("empty_assistant_turn", f"messages[{i}]: an assistant turn with no content, "
                                                        "reasoning or tool call")
            pending = [c.get("id") for c in calls]
        elif role == "tool":
            want = m.get("tool_call_id")
            if want is not None and want in pending:
                pending.remove(want)
            elif want is None and pending:
                pending.pop(0)
            else:
                raise ChatError("tool_result_without_call",
                                f"messages[{i}]: a tool result (tool_call_id {want!r}) without an earlier "
                                f"unanswered call (open: {pending})")
        elif role in ("user", "system"):
            pending = []


def _tool_call_pieces(call: Mapping) -> list[tuple[bool, str]]:
    name, args = _arguments(call, "tool call")
    body = '{"name": "' + name + '", "arguments": ' + json.dumps(args, ensure_ascii=False) + "}"
    return [(True, TOOL_CALL), (False, "\n" + body + "\n"), (True, TOOL_CALL_END)]


def _turns(messages: Any) -> list[tuple[str, list[tuple[bool, str]], bool]]:
    """(header role, body pieces (is_special, string), learn) per rendered turn, as the template groups them."""
    turns: list[tuple[str, list[tuple[bool, str]], bool]] = []
    prev_tool = False
    for m in _validated(messages):
        role, content = m["role"], m["content"]
        if role == "tool":
            piece = (False, "<tool_response>\n" + content + "\n</tool_response>")
            if prev_tool:
                turns[-1][1].append((False, "\n"))
                turns[-1][1].append(piece)
            else:
                turns.append(("user", [piece], False))
            prev_tool = True
            continue
        prev_tool = False
        if role != "assistant":
            turns.append((role, [(False, content)], False))
            continue
        if m.get("reasoning") is not None:
            content = f"<think>\n{m['reasoning']}\n</think>\n\n{content}"
        pieces = [(False, content)] if content else []
        for k, call in enumerate(m.get("tool_calls") or ()):
            if content or k:  # the template's "\n" before <tool_call>; the first one, with no content, is the header's
                pieces.append((False, "\n"))
            pieces += _tool_call_pieces(call)
        turns.append(("assistant", pieces, True))
    return turns


def render_chat_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The rendered conversation as a string (no `<|endoftext|>`): Qwen2.5's template output. For Qwen2.5,
    `tok.decode(render_chat(m, tok, add_eod=False)[0]) == unicodedata.normalize("NFC", render_chat_text(m))`."""
    return "".join(f"{IM_START}{role}\n{''.join(s for _, s in pieces)}{IM_END}\n"
                   for role, pieces, _ in _turns(messages))


def render_chat(messages: Sequence[Mapping[str, Any]], tok: Tokenizer,
                add_eod: bool = True) -> tuple[list[int], list[int]]:
    """ids and loss mask (0/1 per id) of a conversation; see the module docstring. Then `<|endoftext|>` (mask 0)
    when add_eod. Raises TokenizerError (a ChatError with its reason) for an invalid message, with its index, or
    a tokenizer without ChatML."""
    turns = _turns(messages)
    im_start, im_end = tok.token_id(IM_START), tok.token_id(IM_END)
    texts = ["\n"]
    for role, pieces, _ in turns:
        texts.append(f"{role}\n")
        texts += [s for special, s in pieces if not special and s]
    encoded = iter(tok.encode_batch(texts))
    newline = next(encoded)
    ids: list[int] = []
    mask: list[int] = []
    for _, pieces, learn in turns:
        header = next(encoded)
        ids.append(im_start)
        ids += header
        mask += [0] * (1 + len(header))
        start = len(ids)
        for special, s in pieces:
            if special:
                ids.append(tok.token_id(s))
            elif s:
                ids += next(encoded)
        ids.append(im_end)
        mask += [int(learn)] * (len(ids) - start)
        ids += newline
        mask += [0] * len(newline)
    if add_eod:
        ids.append(tok.eod_id)
        mask.append(0)
    return ids, mask


def render_plain(text: str, tok: Tokenizer) -> tuple[list[int], list[int]]:
    """A mid-training document: encode(text) + [eod], loss mask all 1."""
    if not isinstance(text, str):
        raise TokenizerError(f"text must be a string, got {type(text).__name__}")
    ids = tok.encode(text)
    ids.append(tok.eod_id)
    return ids, [1] * len(ids)
