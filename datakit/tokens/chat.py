"""Chat rendering with loss masks — Qwen2.5's chat template, offline, or a local tokenizer's own template — and
plain documents for mid-training.

Messages follow `schemas/chat.schema.json` (role, content, reasoning, tool_calls, tool_call_id, name; a plain
``{role, content}`` mapping is fine). Tools (`tools=`) are a list of JSON objects, e.g. OpenAI function specs
``{"type": "function", "function": {"name", "description", "parameters"}}`` (`validate_tools`).

**Qwen2.5 (built in, pure Python).** A conversation renders exactly as Qwen2.5's published template
(`../shared/data/qwen2.5/chat_template.jinja`) renders it:

- `DEFAULT_SYSTEM` is the system message when the first message is not a system message;
- with `tools`, the system turn is ``<|im_start|>system\\n{system}`` + the template's ``# Tools`` text, one
  ``\\n{tool}`` line per tool inside ``<tools>…</tools>``, and its `<tool_call>` instructions, then
  ``<|im_end|>\\n``; each tool is written as the template's `tojson` writes it (transformers' filter:
  `json.dumps(x, ensure_ascii=False)`);
- system / user / assistant: ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` (content not stripped);
- an assistant turn with tool calls: ``<|im_start|>assistant`` + (``\\n`` + content if content) + per call
  ``\\n<tool_call>\\n{"name": "…", "arguments": …}\\n</tool_call>`` + ``<|im_end|>\\n``, the arguments written by
  `tojson` (the schema's JSON string parsed, then dumped: what transformers renders from OpenAI-style dicts);
- consecutive tool results merge into one user turn: ``<|im_start|>user`` + per result
  ``\\n<tool_response>\\n{content}\\n</tool_response>`` + ``<|im_end|>\\n``;
- reasoning (which the Qwen2.5 template has no field for) goes before the assistant content as
  ``<think>\\n{reasoning}\\n</think>\\n\\n`` (Qwen3's template does the same), so it stays apart from the answer in
  the data and is learned like the rest of the turn.

**Another model's template.** When the tokenizer was loaded from a local folder whose `chat_template.jinja` or
`tokenizer_config.json` holds a chat template other than Qwen2.5's (or `chat_template=` is passed), the chat is
rendered by transformers' own Jinja machinery (`render_jinja_template`, with the folder's named special tokens as
template variables, as `apply_chat_template` passes them; reasoning as `reasoning_content` when the template
reads a reasoning field, else folded into the content as above). Each assistant turn is found by incremental
rendering: it starts where ``messages[:i]`` rendered with `add_generation_prompt` ends and ends where
``messages[:i+1]`` ends (less the whitespace after its closing special token); both must be prefixes of the whole
rendering, or the chat is refused (`template_not_prefix_stable`: e.g. a template that drops earlier turns'
reasoning). Special-token strings in the inputs are wrapped in private-use markers while rendering (as
transformers' `sanitize_control_tokens` does), so only the special tokens the template writes itself become ids.
It costs 1 + 2 × (assistant turns) renders, so it grows with the square of the turns (~0.35 CPU s for 161
messages; the built-in renders them in ~3 ms). Not emulated: added tokens' lstrip/rstrip flags (no ChatML token
has them), and templates that edit the content's special-token strings (`split('</think>')`) see them wrapped.

**Ids.** Exactly the reference encoding of the whole rendered text: split at the special/added tokens the
template writes (`<|im_start|>`, `<|im_end|>`, the `<tool_call>` / `</tool_call>` markers of calls and of the
``# Tools`` text, which Hugging Face matches as added tokens 151657/151658), each as its id, and every text run
between them encoded whole as plain text (header and content together), so special-token strings inside any
message, tool or argument stay text, as the tokens stage decides everywhere. A marker the tokenizer has no token
for stays text.

**Loss mask.** 1 exactly on the assistant's part (reasoning, content, tool calls, its closing `<|im_end|>`: the
model learns to stop), 0 on system / user / tool turns, on headers (`<|im_start|>`, ``assistant``, the header's
``\\n``), on the ``\\n`` after every `<|im_end|>` and on the final `<|endoftext|>`. A token that covers both a
header and content (the split regex joins the header's ``\\n`` with a content's leading whitespace, e.g.
``"\\n\\n"``) is learned, as transformers' `return_assistant_tokens_mask` marks every token overlapping an
assistant span. Runs are encoded in one batch; a run whose first tokens are not the header's own tokens (the
joined case) finds the boundary token by decoding prefixes.

`check_messages` adds the data-quality rules a synthetic conversation must pass (each failure has a quarantine
reason); the renderer itself only refuses what it cannot render.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from datakit.tokens.tokenizer import Tokenizer, TokenizerError

__all__ = ["DEFAULT_SYSTEM", "ROLES", "ChatError", "check_messages", "normalize_message", "render_chat",
           "render_chat_text", "render_plain", "tokenizer_chat_template", "validate_tools"]

DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
ROLES = ("system", "user", "assistant", "tool")
MESSAGE_FIELDS = ("role", "content", "reasoning", "tool_calls", "tool_call_id", "name")
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
TOOL_CALL, TOOL_CALL_END = "<tool_call>", "</tool_call>"
# The # Tools system text of Qwen2.5's template, around the tool lines and its literal <tool_call> markers.
TOOLS_HEAD = ("\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
              "You are provided with function signatures within <tools></tools> XML tags:\n<tools>")
TOOLS_TAIL = "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
TOOLS_FORMAT = '\n{"name": <function-name>, "arguments": <args-json-object>}\n'
# sha256 of Qwen2.5's published chat template (trailing newlines removed; trim_blocks drops them anyway): a local
# tokenizer folder carrying exactly it renders with the built-in, proven equal by tests/test_chat_template.py.
QWEN25_TEMPLATE_SHA256 = "55b2f4a26ac9ee719330a61a0c39d9e538b0e9322212f048326318cff4f8674a"
# transformers' named special tokens (`special_tokens_map`), passed to a template as variables.
NAMED_SPECIALS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")

Piece = tuple[bool, str, bool]  # (a special token the template writes, its string, learned)


class ChatError(TokenizerError):
    """A conversation that breaks a rule; `reason` is its quarantine reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def normalize_message(m: Mapping[str, Any]) -> dict:
    """A message with exactly the schema's six fields (absent ones None)."""
    return {k: m.get(k) for k in MESSAGE_FIELDS}


def _json_plain(x: Any, where: str) -> Any:
    """x as plain JSON types (dicts, lists), or ChatError("invalid_tools") where it holds anything else (a
    non-string key, a non-finite number, an object)."""
    if x is None or isinstance(x, (str, bool, int)):
        return x
    if isinstance(x, float):
        if not math.isfinite(x):
            raise ChatError("invalid_tools", f"{where}: {x} is not a JSON number")
        return x
    if isinstance(x, Mapping):
        bad = next((k for k in x if not isinstance(k, str)), None)
        if bad is not None:
            raise ChatError("invalid_tools", f"{where}: key {bad!r} is not a string")
        return {k: _json_plain(v, f"{where}.{k}") for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_plain(v, f"{where}[{i}]") for i, v in enumerate(x)]
    raise ChatError("invalid_tools", f"{where}: {type(x).__name__} is not JSON")


def validate_tools(tools: Any) -> list[dict] | None:
    """`tools` checked: None, or a list of JSON objects (string keys, JSON values, finite numbers), e.g. OpenAI
    function specs; returns them as plain dicts and lists (None and [] both render no # Tools section, as the
    template's `if tools`). Raises ChatError("invalid_tools", where)."""
    if tools is None:
        return None
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
        raise ChatError("invalid_tools", f"tools must be a list of JSON objects, got {type(tools).__name__}")
    for i, t in enumerate(tools):
        if not isinstance(t, Mapping):
            raise ChatError("invalid_tools", f"tools[{i}]: expected a JSON object, got {type(t).__name__}")
    return [_json_plain(t, f"tools[{i}]") for i, t in enumerate(tools)]


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


def _validated(messages: Any, default_system: bool = True) -> list[Mapping]:
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
    if default_system and out[0]["role"] != "system":
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


def content_with_reasoning(m: Mapping) -> str:
    """An assistant message's content with its reasoning (if any) as the <think> prefix."""
    if m.get("reasoning") is None:
        return m["content"]
    return f"<think>\n{m['reasoning']}\n</think>\n\n{m['content']}"


def stored_tools(tools: Sequence[str] | None) -> list | None:
    """A Sample's `tools` (each definition a JSON string, schemas/sample) as the renderer takes them."""
    return [json.loads(t) for t in tools] if tools else None


# ---------------------------------------------------------------------------------------------------------------
# Qwen2.5's template, in Python


def _qwen_pieces(messages: Any, tools: list | None) -> list[Piece]:
    """The rendered conversation as pieces, exactly as Qwen2.5's template writes it (see the module docstring)."""
    msgs = _validated(messages)
    out: list[Piece] = []

    def special(s: str, learn: bool = False) -> None:
        out.append((True, s, learn))

    def text(s: str, learn: bool = False) -> None:
        if s:
            out.append((False, s, learn))

    special(IM_START)
    if tools:
        text("system\n" + msgs[0]["content"] + TOOLS_HEAD
             + "".join("\n" + json.dumps(t, ensure_ascii=False) for t in tools) + TOOLS_TAIL)
        special(TOOL_CALL), special(TOOL_CALL_END), text(" XML tags:\n")
        special(TOOL_CALL), text(TOOLS_FORMAT), special(TOOL_CALL_END)
    else:
        text("system\n" + msgs[0]["content"])
    special(IM_END), text("\n")
    for i, m in enumerate(msgs[1:], start=1):
        role = m["role"]
        if role == "tool":
            if msgs[i - 1]["role"] != "tool":
                special(IM_START), text("user")
            text("\n<tool_response>\n" + m["content"] + "\n</tool_response>")
            if i + 1 == len(msgs) or msgs[i + 1]["role"] != "tool":
                special(IM_END), text("\n")
            continue
        if role != "assistant":
            special(IM_START), text(f"{role}\n{m['content']}"), special(IM_END), text("\n")
            continue
        content = content_with_reasoning(m)
        # the header's "\n"; with calls and no content it is the first call's "\n", still the header (a
        # generation prompt ends with it)
        special(IM_START), text("assistant\n"), text(content, True)
        for k, call in enumerate(m.get("tool_calls") or ()):
            name, args = _arguments(call, f"messages[{i}].tool_calls[{k}]")
            if content or k:
                text("\n", True)
            special(TOOL_CALL, True)
            text('\n{"name": "' + name + '", "arguments": ' + json.dumps(args, ensure_ascii=False) + "}\n", True)
            special(TOOL_CALL_END, True)
        special(IM_END, True), text("\n")
    return out


# ---------------------------------------------------------------------------------------------------------------
# Any template, through transformers' Jinja machinery


def _is_qwen25_template(template: str) -> bool:
    return hashlib.sha256(template.rstrip("\n").encode()).hexdigest() == QWEN25_TEMPLATE_SHA256


@functools.lru_cache(maxsize=16)
def _folder_template(folder: str) -> tuple[Any, tuple[tuple[str, str], ...]]:
    """(chat template — a string, a {name: template} dict or None —, named special tokens) of a local tokenizer
    folder, where transformers reads them: `chat_template.jinja`, else `tokenizer_config.json`'s `chat_template`
    (a string or a list of {name, template}); the special tokens from `tokenizer_config.json`, else
    `special_tokens_map.json`."""
    path = Path(folder)
    if not path.is_dir():  # a hub name from the local cache: not a folder of the user's
        return None, ()

    def read_json(name: str) -> dict:
        try:
            data = json.loads((path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    config = read_json("tokenizer_config.json")
    if (path / "chat_template.jinja").is_file():
        template: Any = (path / "chat_template.jinja").read_text(encoding="utf-8")
    else:
        template = config.get("chat_template")
        if isinstance(template, list):
            template = {t["name"]: t["template"] for t in template if isinstance(t, dict) and "name" in t}
    specials = {}
    for source in (read_json("special_tokens_map.json"), config):
        for key in NAMED_SPECIALS:
            value = source.get(key)
            value = value.get("content") if isinstance(value, dict) else value
            if isinstance(value, str):
                specials[key] = value
    return template, tuple(sorted(specials.items()))


def tokenizer_chat_template(tok: Tokenizer, tools: list | None = None) -> tuple[str | None, dict]:
    """(the chat template `render_chat` uses for `tok`, its template variables): None for the built-in Qwen2.5
    rendering (the built-in tokenizer, a hub name, a folder without a template or with exactly Qwen2.5's), else
    the local folder's template (of several named ones, "tool_use" when tools are given, else "default", as
    transformers picks)."""
    if tok.name == "qwen2.5":
        return None, {}
    template, specials = _folder_template(tok.__reduce__()[1][0])  # the path a HF tokenizer was loaded from
    if isinstance(template, dict):
        name = "tool_use" if tools and "tool_use" in template else "default"
        if name not in template:
            raise ChatError("template_error", f"{source}: several chat templates ({', '.join(sorted(template))}) "
                                              "and none named 'default'")
        template = template[name]
    if not isinstance(template, str) or not template.strip() or _is_qwen25_template(template):
        return None, {}
    return template, dict(specials)


def _markers(strings: list[str]) -> tuple[str, str]:
    """Two private-use characters that occur in none of the inputs (to wrap their special-token strings)."""
    used = set().union(*map(set, strings)) if strings else set()
    free = (chr(c) for c in range(0xF0000, 0xFFFFE) if chr(c) not in used)
    return next(free), next(free)


def _strings(x: Any) -> list[str]:
    if isinstance(x, str):
        return [x]
    if isinstance(x, Mapping):
        return [s for k, v in x.items() for s in _strings(k) + _strings(v)]
    if isinstance(x, (list, tuple)):
        return [s for v in x for s in _strings(v)]
    return []


def _marked(x: Any, specials_re: re.Pattern, start: str, end: str) -> Any:
    """x with every special-token string in its strings (dict keys too) wrapped as start + token + end."""
    if isinstance(x, str):
        return specials_re.sub(lambda mo: start + mo.group(0) + end, x)
    if isinstance(x, Mapping):
        return {_marked(k, specials_re, start, end): _marked(v, specials_re, start, end) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_marked(v, specials_re, start, end) for v in x]
    return x


def _hf_messages(msgs: list[Mapping], fold_reasoning: bool) -> list[dict]:
    """The messages as transformers passes them to a template: None fields dropped, tool calls OpenAI-shaped with
    arguments as dicts, reasoning as `reasoning_content` (or folded into the content)."""
    out = []
    for i, m in enumerate(msgs):
        hf: dict = {"role": m["role"], "content": content_with_reasoning(m) if fold_reasoning else m["content"]}
        if m.get("reasoning") is not None and not fold_reasoning:
            hf["reasoning_content"] = m["reasoning"]
        if m.get("tool_calls"):
            calls = []
            for k, c in enumerate(m["tool_calls"]):
                name, args = _arguments(c, f"messages[{i}].tool_calls[{k}]")
                call = {"type": "function", "function": {"name": name, "arguments": args}}
                calls.append({"id": c["id"], **call} if c.get("id") is not None else call)
            hf["tool_calls"] = calls
        for key in ("tool_call_id", "name"):
            if m.get(key) is not None:
                hf[key] = m[key]
        out.append(hf)
    return out


def _render_jinja(template: str, messages: list[dict], tools: list | None, generation: bool, variables: dict) -> str:
    try:
        from transformers.utils.chat_template_utils import render_jinja_template
    except ImportError as exc:  # pragma: no cover - transformers is a dependency
        raise ChatError("template_error", f"rendering a model's own chat template needs transformers >= 4.50 "
                                          f"(pip install -U transformers): {exc}") from None
    try:
        rendered, _ = render_jinja_template(conversations=[messages], tools=tools, chat_template=template,
                                            add_generation_prompt=generation, **variables)
    except Exception as exc:  # noqa: BLE001 - a template raises whatever it likes (raise_exception, jinja errors)
        raise ChatError("template_error", f"the chat template cannot render this chat: {type(exc).__name__}: "
                                          f"{str(exc)[:300]}") from None
    return rendered[0]


def _jinja_pieces(messages: Any, tools: list | None, template: str, specials: Mapping[str, int],
                  variables: Mapping[str, str]) -> list[Piece]:
    """The chat rendered by `template`, as pieces: the special tokens the template writes, text, and the assistant
    spans found by incremental rendering (see the module docstring)."""
    msgs = _validated(messages, default_system=False)
    fold = not any(f in template for f in REASONING_FIELDS)
    hf = _hf_messages(msgs, fold)
    names = sorted((s for s in specials if s), key=len, reverse=True)  # longest first: leftmost-longest matches
    specials_re = re.compile("|".join(map(re.escape, names)) or "(?!)")
    start, end = _markers(_strings([hf, tools or [], dict(variables)]))
    hf = _marked(hf, specials_re, start, end)
    marked_tools = _marked(tools, specials_re, start, end) if tools else tools
    full = _render_jinja(template, hf, marked_tools, False, dict(variables))
    spans = []
    for i, m in enumerate(hf):
        if m["role"] != "assistant":
            continue
        try:
            before = _render_jinja(template, hf[:i], marked_tools, True, dict(variables))
        except ChatError:
            if i:
                raise
            raise ChatError("template_error", "messages[0]: an assistant turn first, and the chat template cannot "
                                              "render the empty conversation before it to locate its tokens; start "
                                              "with a system or user message") from None
        after = _render_jinja(template, hf[:i + 1], marked_tools, False, dict(variables))
        if not (full.startswith(before) and full.startswith(after) and len(after) >= len(before)):
            raise ChatError("template_not_prefix_stable",
                            f"messages[{i}]: the chat template renders the conversation up to this assistant turn "
                            "differently from the whole conversation, so its tokens cannot be located; use a "
                            "template that renders earlier turns the same whatever follows")
        closed = after.rstrip()
        # the whitespace after the turn's closing special token separates turns; without one it is content
        stop = len(closed) if any(closed.endswith(s) for s in names) else len(after)
        spans.append((len(before), max(stop, len(before))))
    pieces: list[Piece] = []
    cuts = sorted({p for span in spans for p in span})
    learned = lambda pos: any(a <= pos < b for a, b in spans)  # noqa: E731 - a few spans per chat
    token_re = re.compile(f"{re.escape(start)}({specials_re.pattern}){re.escape(end)}|[{re.escape(start + end)}]|"
                          f"({specials_re.pattern})")
    pos = 0
    for mo in [*token_re.finditer(full), None]:
        stop = mo.start() if mo else len(full)
        while pos < stop:  # verbatim text, cut at the span boundaries
            cut = next((c for c in cuts if pos < c < stop), stop)
            pieces.append((False, full[pos:cut], learned(pos)))
            pos = cut
        if mo is None:
            break
        if mo.group(1):  # a special-token string from the inputs: text
            pieces.append((False, mo.group(1), learned(mo.start())))
        elif mo.group(2):
            pieces.append((True, mo.group(2), learned(mo.start())))
        pos = mo.end()
    return pieces


# ---------------------------------------------------------------------------------------------------------------
# Rendering and tokenizing


def _pieces(messages: Any, tools: Any, template: str | None, specials: Mapping[str, int],
            variables: Mapping[str, str]) -> list[Piece]:
    tools = validate_tools(tools)
    if template is None or _is_qwen25_template(template):
        return _qwen_pieces(messages, tools)
    return _jinja_pieces(messages, tools, template, specials, variables)


def render_chat_text(messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping] | None = None, *,
                     tok: Tokenizer | None = None, chat_template: str | None = None) -> str:
    """The rendered conversation as a string (no `<|endoftext|>`): Qwen2.5's template output, or that of
    `chat_template` / `tok`'s own template, exactly as `render_chat` renders it. For Qwen2.5,
    `tok.decode(render_chat(m, tok, add_eod=False)[0]) == unicodedata.normalize("NFC", render_chat_text(m))`."""
    template, variables = (chat_template, {}) if chat_template is not None or tok is None else \
        tokenizer_chat_template(tok, tools)
    specials = tok.special_tokens if tok is not None else {}
    return "".join(s for _, s, _ in _pieces(messages, tools, template, specials, variables))


def _token_boundary(tok: Tokenizer, ids: list[int], head: list[int]) -> tuple[int, bool]:
    """(k, straddles): the first k tokens of a run cover its first part, whose own tokens are `head`; straddles
    when token k-1 also holds text of the next part (the split regex joined them)."""
    n = len(head)
    if ids[:n] == head:
        return n, False
    want = tok.decode(head)
    if not tok.decode(ids).startswith(want):  # a decoder that is no inverse of encode: the nearest guess
        return min(n, len(ids)), False
    lo, hi = 0, len(ids)
    while lo < hi:  # the first prefix whose text covers the head
        mid = (lo + hi) // 2
        if tok.decode(ids[:mid]).startswith(want):
            hi = mid
        else:
            lo = mid + 1
    return lo, tok.decode(ids[:lo]) != want


def _encode(pieces: list[Piece], tok: Tokenizer) -> tuple[list[int], list[int]]:
    """ids and mask of pieces: template specials by id, each text run between them encoded whole, in one batch."""
    specials = tok.special_tokens
    items: list = []  # an id with its mask, or a run: [(text, learned), …] with adjacent same-mask texts joined
    for special, s, learn in pieces:
        if special and s in specials:
            items.append((specials[s], learn))
        elif items and isinstance(items[-1], list):
            run = items[-1]
            if run[-1][1] == learn:
                run[-1] = (run[-1][0] + s, learn)
            else:
                run.append((s, learn))
        else:
            items.append([(s, learn)])
    runs = [item for item in items if isinstance(item, list)]
    heads = {}  # the text before each mask change in a run → its own tokens (headers repeat: encoded once)
    for run in runs:
        for k in range(1, len(run)):
            heads.setdefault("".join(t for t, _ in run[:k]), None)
    encoded = tok.encode_batch(["".join(t for t, _ in run) for run in runs] + list(heads))
    heads = dict(zip(heads, encoded[len(runs):]))
    run_ids = iter(encoded)
    ids: list[int] = []
    mask: list[int] = []
    for item in items:
        if not isinstance(item, list):
            ids.append(item[0])
            mask.append(int(item[1]))
            continue
        got = next(run_ids)
        ids += got
        if len(item) == 1:
            mask += [int(item[0][1])] * len(got)
            continue
        m = [0] * len(got)
        lo, head = 0, ""
        for k, (text, learn) in enumerate(item):
            hi, nxt = len(got), lo
            head += text
            if k + 1 < len(item):
                hi, straddles = _token_boundary(tok, got, heads[head])
                nxt = hi - 1 if straddles else hi
            if learn:  # a token holding text of both parts is learned (the any-overlap rule)
                m[lo:hi] = [1] * (hi - lo)
            lo = nxt
        mask += m
    return ids, mask


def render_chat(messages: Sequence[Mapping[str, Any]], tok: Tokenizer, add_eod: bool = True,
                tools: Sequence[Mapping] | None = None, *,
                chat_template: str | None = None) -> tuple[list[int], list[int]]:
    """ids and loss mask (0/1 per id) of a conversation; see the module docstring. Rendered with
    `chat_template` when given, else `tok`'s own (`tokenizer_chat_template`), else Qwen2.5's built in; then
    `<|endoftext|>` (mask 0) when add_eod. Raises TokenizerError (a ChatError with its reason) for an invalid
    message, with its index, invalid tools, a template that cannot render the chat, or a tokenizer without the
    template's special tokens."""
    template, variables = (chat_template, {}) if chat_template is not None else tokenizer_chat_template(tok, tools)
    if template is None or _is_qwen25_template(template):
        tok.token_id(IM_START), tok.token_id(IM_END)  # a tokenizer without ChatML: TokenizerError
    ids, mask = _encode(_pieces(messages, tools, template, tok.special_tokens, variables), tok)
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
