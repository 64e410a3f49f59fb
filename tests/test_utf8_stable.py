"""utf8.stable_texts: which UTF-8 texts go to the engine as bytes (no str, no NFC pass). Wrong either way costs
ids (an unstable text sent as bytes skips NFC) or speed only, so the table and the kernel are checked against
Python's own decoder and NFC; tests/test_tokenizer_engines.py checks the ids."""

from __future__ import annotations

import random
import unicodedata

import pytest

from datakit.tokens import utf8


def _in_table(table: bytes, cp: int) -> bool:
    return cp < utf8.TABLE_CODE_POINTS and bool(table[cp >> 3] >> (cp & 7) & 1)


def test_the_kernel_is_built():
    assert utf8._stable is not None, "datakit/tokens/_utf8.c did not compile at install (a C compiler is needed)"


def test_the_shipped_table_is_this_pythons_unicodedata():
    assert utf8.table_path().is_file(), f"no {utf8.table_path().name}: ship one for this Python's unicodedata"
    assert utf8.stable_table() == utf8.compute_table()


def test_strings_of_stable_code_points_are_their_own_nfc():
    table = utf8.stable_table()
    stable = [cp for cp in range(utf8.TABLE_CODE_POINTS) if _in_table(table, cp)]
    assert len(stable) > 120_000
    rng = random.Random(7)
    for _ in range(100_000):
        s = "".join(chr(rng.choice(stable)) for _ in range(rng.randint(1, 10)))
        assert unicodedata.normalize("NFC", s) == s, ascii(s)


@pytest.mark.parametrize("text", [
    "e\u0301",            # a combining mark (class 230)
    "\u09c7\u09be",       # Bengali: two class-0 code points NFC composes into U+09CB (quick check Maybe)
    "\u1100\u1161",       # Hangul jamo L + V: composed algorithmically into a syllable
    "\uac00\u11a8",       # a syllable + a trailing consonant
    "\u2126", "\u212b",   # Ohm and Angstrom signs: singletons NFC replaces (quick check No)
    "\u2000", "\uf900",   # an en quad, a CJK compatibility ideograph: singletons too
    "\U00020000",         # above the table: always the str path
    "a\x00b", "",         # what the stage quarantines
])
def test_what_nfc_may_change_or_the_stage_refuses_is_not_stable(text):
    assert utf8.stable_texts([text.encode("utf-8")]) in (b"\x00", [False])


def test_the_kernel_agrees_with_pythons_decoder_on_random_bytes():
    table = utf8.stable_table()
    rng = random.Random(11)
    picks = [lambda: rng.randint(0, 255), lambda: rng.randint(0x20, 0x7E), lambda: rng.randint(0x80, 0xBF),
             lambda: rng.randint(0xC0, 0xF7), lambda: rng.choice([0xE0, 0xED, 0xF0, 0xF4, 0xC2, 0xDF])]
    cases = [bytes(rng.choice(picks)() for _ in range(rng.randint(0, 12))) for _ in range(200_000)]
    cases += [("x" * rng.randint(0, 20) + chr(rng.randint(0x80, 0x10FFFF)) * 2).encode("utf-8", "surrogatepass")
              for _ in range(50_000)]
    got = utf8.stable_texts(cases)
    for raw, flag in zip(cases, got):
        try:
            text = raw.decode("utf-8")
            want = bool(text) and "\x00" not in text and all(_in_table(table, ord(c)) for c in text)
        except UnicodeDecodeError:
            want = False
        assert bool(flag) == want, raw


def test_only_bytes_are_stable():
    assert list(utf8.stable_texts([b"abc", "abc", None, bytearray(b"abc"), 3])) == [1, 0, 0, 0, 0]


def test_without_the_kernel_only_ascii_is_passed_as_bytes_and_the_ids_are_the_same(monkeypatch):
    from datakit.tokens.tokenizer import load_tokenizer

    texts = [b"def f():\n    return 1\n", "caf\u00e9 \u201cquoted\u201d \U0001f600".encode(), "e\u0301".encode(), b"", b"a\0b"]
    tok = load_tokenizer("qwen2.5", "gigatoken")
    with_kernel = [a.tolist() for a in tok.encode_batch_arrays(texts)]
    monkeypatch.setattr(utf8, "_stable", None)
    assert utf8.stable_texts(texts) == [True, False, False, False, False]
    assert [a.tolist() for a in tok.encode_batch_arrays(texts)] == with_kernel


def test_flags_the_caller_already_has_give_the_same_ids_and_must_match_the_texts():
    from datakit.tokens.tokenizer import TokenizerError, load_tokenizer

    texts = [b"x = 1\n", "na\u00efve \u201cq\u201d".encode(), "e\u0301".encode()]
    tok = load_tokenizer("qwen2.5", "gigatoken")
    flags = utf8.stable_texts(texts)
    assert [a.tolist() for a in tok.encode_batch_arrays(texts, stable=flags)] == \
        [a.tolist() for a in tok.encode_batch_arrays(texts)]
    with pytest.raises(TokenizerError, match="2 stable flags for 3 texts"):
        tok.encode_batch_arrays(texts, stable=flags[:2])
