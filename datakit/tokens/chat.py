"""ChatML rendering with loss masks (Qwen2.5's chat template, offline), and plain documents for mid-training.

A conversation renders as Qwen2.5's template does it (without tools): for each message
``<|im_start|>{role}\\n{content}<|im_end|>\\n``, with `DEFAULT_SYSTEM` prepended as a system message when the first
message is not a system message. Content is not stripped.

Tokenization is per segment, so boundaries never depend on neighbouring text: `<|im_start|>` (by id),
``"{role}\\n"`` (encoded), the content (encoded on its own, as plain text: special-token strings in content stay
text), `<|im_end|>` (by id), ``"\\n"`` (encoded). This is also how the model meets assistant content at inference
(the prompt ends with the token of ``"assistant\\n"``). It differs from tokenizing the whole rendered string only
where a content starts with whitespace/newlines that the split regex would join with the header's ``"\\n"``.

Loss mask: 1 on the assistant content tokens and the assistant's `<|im_end|>` (the model learns to stop), 0
elsewhere (system/user/tool messages, role headers, every ``"\\n"`` after `<|im_end|>`, the final `<|endoftext|>`).

Note: Qwen2.5's own template wraps `tool` messages as ``<|im_start|>user\\n<tool_response>\\n…\\n</tool_response>``;
here a tool message renders like any other role (``<|im_start|>tool\\n…``), masked 0.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from datakit.tokens.tokenizer import Tokenizer, TokenizerError

__all__ = ["DEFAULT_SYSTEM", "ROLES", "render_chat", "render_chat_text", "render_plain"]

DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
ROLES = ("system", "user", "assistant", "tool")
IM_START, IM_END = "<|im_start|>", "<|im_end|>"


def _messages(messages: Sequence[Mapping[str, str]]) -> list[tuple[str, str]]:
    """Validated (role, content) pairs, with the default system message prepended when needed."""
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise TokenizerError(f"messages must be a list of {{role, content}} mappings, got {type(messages).__name__}")
    if len(messages) == 0:
        raise TokenizerError("messages: empty conversation")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise TokenizerError(f"messages[{i}]: expected a mapping with role and content, got {type(m).__name__}")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise TokenizerError(f"messages[{i}]: role {role!r} is not one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise TokenizerError(f"messages[{i}] ({role}): content must be a string, got {type(content).__name__}")
        out.append((role, content))
    if out[0][0] != "system":
        out.insert(0, ("system", DEFAULT_SYSTEM))
    return out


def render_chat_text(messages: Sequence[Mapping[str, str]]) -> str:
    """The rendered conversation as a string (no `<|endoftext|>`). For Qwen2.5,
    `tok.decode(render_chat(m, tok, add_eod=False)[0]) == unicodedata.normalize("NFC", render_chat_text(m))`."""
    return "".join(f"{IM_START}{role}\n{content}{IM_END}\n" for role, content in _messages(messages))


def render_chat(messages: Sequence[Mapping[str, str]], tok: Tokenizer,
                add_eod: bool = True) -> tuple[list[int], list[int]]:
    """ids and loss mask (0/1 per id) of a conversation; see the module docstring. Then `<|endoftext|>` (mask 0)
    when add_eod. Raises TokenizerError for an invalid message (with its index) or a tokenizer without ChatML."""
    msgs = _messages(messages)
    im_start, im_end = tok.token_id(IM_START), tok.token_id(IM_END)
    pieces = tok.encode_batch([s for role, content in msgs for s in (f"{role}\n", content)] + ["\n"])
    newline = pieces[-1]
    ids: list[int] = []
    mask: list[int] = []
    for k, (role, _) in enumerate(msgs):
        header, body = pieces[2 * k], pieces[2 * k + 1]
        learn = 1 if role == "assistant" else 0
        ids.append(im_start)
        ids += header
        mask += [0] * (1 + len(header))
        ids += body
        ids.append(im_end)
        mask += [learn] * (len(body) + 1)
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
