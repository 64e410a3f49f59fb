"""ChatML rendering with loss masks (Qwen2.5's template) and plain documents."""

from __future__ import annotations

import unicodedata

import pytest

from datakit.tokens.chat import DEFAULT_SYSTEM, render_chat, render_chat_text, render_plain
from datakit.tokens.tokenizer import TokenizerError, load_tokenizer
from tests.conftest import requires_shared

IM_START, IM_END, EOD, NL = 151644, 151645, 151643, 198
SYSTEM, USER, ASSISTANT = 8948, 872, 77091  # Qwen2.5 ids of "system", "user", "assistant"

CONVO = [
    {"role": "user", "content": "Fix the bug in `f`:\r\ndef f(x): return x+1"},
    {"role": "assistant", "content": "```python\ndef f(x):\n    return x - 1\n```"},
    {"role": "user", "content": "Thanks! Now café 😀 and e\u0301?"},
    {"role": "assistant", "content": "Sure — résumé.\n"},
    {"role": "tool", "content": "exit code 0"},
    {"role": "assistant", "content": "Done. <|im_end|> <|endoftext|> stays text."},
]


@pytest.fixture(scope="module", params=["tiktoken", "hf"])
def tok(request):
    return load_tokenizer("qwen2.5", engine=request.param)


def runs(ids, mask):
    """Contiguous mask-1 runs of ids."""
    out, cur = [], []
    for i, m in zip(ids, mask):
        if m:
            cur.append(i)
        elif cur:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


def test_exact_ids_single_turn(tok):
    msgs = [{"role": "user", "content": "Hello, world!"}, {"role": "assistant", "content": "Hello, world!"}]
    ids, mask = render_chat(msgs, tok)
    hello = [9707, 11, 1879, 0]
    want = ([IM_START, SYSTEM, NL] + tok.encode(DEFAULT_SYSTEM) + [IM_END, NL]
            + [IM_START, USER, NL] + hello + [IM_END, NL]
            + [IM_START, ASSISTANT, NL] + hello + [IM_END, NL] + [EOD])
    assert ids == want
    n_sys = 3 + len(tok.encode(DEFAULT_SYSTEM)) + 2
    assert mask == [0] * n_sys + [0] * 9 + [0] * 3 + [1] * 5 + [0, 0]


def test_decodes_to_rendered_text(tok):
    ids, mask = render_chat(CONVO, tok)
    text = render_chat_text(CONVO)
    assert len(ids) == len(mask)
    assert ids[-1] == EOD and mask[-1] == 0
    assert tok.decode(ids[:-1]) == unicodedata.normalize("NFC", text)
    ids2, mask2 = render_chat(CONVO, tok, add_eod=False)
    assert (ids2, mask2) == (ids[:-1], mask[:-1])
    assert text.startswith(f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\nFix the bug")
    assert text.endswith("stays text.<|im_end|>\n")


def test_mask_covers_exactly_assistant_content_and_im_end(tok):
    ids, mask = render_chat(CONVO, tok)
    assistant = [m["content"] for m in CONVO if m["role"] == "assistant"]
    got = runs(ids, mask)
    assert [tok.decode(r) for r in got] == [unicodedata.normalize("NFC", c) + "<|im_end|>" for c in assistant]
    assert got == [tok.encode(c) + [IM_END] for c in assistant]
    assert sum(mask) == sum(len(tok.encode(c)) + 1 for c in assistant)
    # every <|im_end|> of a non-assistant message, every header and every newline after <|im_end|> is masked 0
    for k, (i, m) in enumerate(zip(ids, mask)):
        if i == IM_START:
            assert m == 0 and mask[k + 1] == 0
        if i == IM_END:
            assert ids[k + 1] == NL and mask[k + 1] == 0
    assert sum(1 for i, m in zip(ids, mask) if i == IM_END and m) == len(assistant)
    # special strings inside content stay text: only the real markers are special ids
    assert ids.count(IM_END) == len(CONVO) + 1 and ids.count(EOD) == 1


def test_default_system_only_when_missing(tok):
    ids, _ = render_chat([{"role": "user", "content": "hi"}], tok)
    assert tok.decode(ids).startswith(f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\nhi")
    own = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"},
           {"role": "assistant", "content": "ok"}]
    ids, mask = render_chat(own, tok, add_eod=False)
    assert tok.decode(ids) == render_chat_text(own) == (
        "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\nok<|im_end|>\n")
    assert DEFAULT_SYSTEM not in tok.decode(ids)
    assert runs(ids, mask) == [tok.encode("ok") + [IM_END]]


def test_empty_contents_and_tool_role(tok):
    msgs = [{"role": "system", "content": ""}, {"role": "user", "content": ""},
            {"role": "assistant", "content": ""}, {"role": "tool", "content": "out"}]
    ids, mask = render_chat(msgs, tok)
    assert tok.decode(ids) == render_chat_text(msgs) + "<|endoftext|>"
    assert runs(ids, mask) == [[IM_END]]  # an empty assistant turn still learns to stop
    # a tool result renders as Qwen2.5's template does it: inside a user turn, in <tool_response> tags
    assert render_chat_text(msgs).endswith("<|im_start|>user\n<tool_response>\nout\n</tool_response><|im_end|>\n")


def test_tool_calls_and_reasoning(tok):
    msgs = [{"role": "user", "content": "ls"},
            {"role": "assistant", "content": "", "reasoning": "List first.", "tool_calls": [
                {"id": "a", "name": "bash", "arguments": '{"command": "ls", "é": 1}'},
                {"id": "b", "name": "bash", "arguments": '{"command":"pwd"}'}]},
            {"role": "tool", "tool_call_id": "a", "content": "README.md"},
            {"role": "tool", "tool_call_id": "b", "content": "/repo"},
            {"role": "assistant", "content": "Done."}]
    text = render_chat_text(msgs)
    assert ("<|im_start|>assistant\n<think>\nList first.\n</think>\n\n"
            '\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls", "é": 1}}\n</tool_call>'
            '\n<tool_call>\n{"name": "bash", "arguments": {"command": "pwd"}}\n</tool_call><|im_end|>\n') in text
    assert ("<|im_start|>user\n<tool_response>\nREADME.md\n</tool_response>\n<tool_response>\n/repo\n"
            "</tool_response><|im_end|>\n") in text
    ids, mask = render_chat(msgs, tok, add_eod=False)
    assert tok.decode(ids) == unicodedata.normalize("NFC", text)
    call = tok.token_id("<tool_call>")
    assert ids.count(call) == 2 and all(mask[i] for i, t in enumerate(ids) if t == call)
    learned = tok.decode([t for t, m in zip(ids, mask) if m])
    assert "List first." in learned and "README.md" not in learned and learned.endswith("Done.<|im_end|>")
    # a call without content: no content line, the first <tool_call> right after the header
    only = render_chat_text([{"role": "user", "content": "x"}, {"role": "assistant", "content": "", "tool_calls": [
        {"id": "a", "name": "f", "arguments": "{}"}]}])
    assert '<|im_start|>assistant\n<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call><|im_end|>' in only
    with pytest.raises(TokenizerError, match="not JSON"):
        render_chat([{"role": "assistant", "content": "", "tool_calls": [{"id": "a", "name": "f",
                                                                          "arguments": "{oops"}]}], tok)


@requires_shared("qwen2.5/vocab.json", "qwen2.5/merges.txt")
def test_same_ids_as_whole_string_tokenization():
    """The ids equal the reference HF tokenizer on the whole rendered string with its special tokens matched (how
    `apply_chat_template` + tokenize does it), contents starting with whitespace included (the header's "\n"
    then joins them in one token); tests/test_chat_template.py covers the rest."""
    from tests.test_tokenizer import reference_tokenizer
    ref = reference_tokenizer(with_specials=True)
    tok = load_tokenizer()
    msgs = [m for m in CONVO if "<|" not in m["content"]] + [{"role": "user", "content": " \nx"},
                                                             {"role": "assistant", "content": "\n\ny"}]
    ids, _ = render_chat(msgs, tok, add_eod=False)
    assert ids == ref.encode(render_chat_text(msgs), add_special_tokens=False).ids


@pytest.mark.parametrize("bad, where", [
    ([{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}], "messages[1]"),
    ([{"role": "user", "content": None}], "messages[0]"),
    ([{"role": "user", "content": 3}], "messages[0]"),
    ([{"content": "a"}], "messages[0]"),
    ([{"role": "user", "content": "a"}, "assistant: b"], "messages[1]"),
    ([], "empty"),
    ("user: hi", "list"),
    ({"role": "user", "content": "a"}, "list"),
])
def test_invalid_messages_rejected(tok, bad, where):
    with pytest.raises(TokenizerError, match=where.replace("[", r"\[")):
        render_chat(bad, tok)
    with pytest.raises(TokenizerError):
        render_chat_text(bad)


def test_render_plain(tok):
    text = "def f():\r\n    return '<|endoftext|>'\n"
    ids, mask = render_plain(text, tok)
    assert ids[-1] == EOD and ids.count(EOD) == 1
    assert ids[:-1] == tok.encode(text)
    assert mask == [1] * len(ids)
    assert render_plain("", tok) == ([EOD], [1])
    with pytest.raises(TokenizerError):
        render_plain(None, tok)  # type: ignore[arg-type]
