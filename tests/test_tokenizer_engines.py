"""Engine choice by proof: every engine datakit can pick for Qwen2.5 gives the reference's ids.

The reference is HF `tokenizers` built from ../shared/data/qwen2.5/vocab.json + merges.txt (not from the ranks the
engines load). The corpus is tests/corpus.py's (SWE-bench issue texts and patches, stdlib code, NFD/CRLF/emoji
snippets; ≥ 1 M tokens) plus the cases below (tabs, digits of other scripts, long whitespace runs, combining
marks, random Unicode). A missing engine or missing reference data FAILS these tests: CI installs every engine
(pyproject.toml) and has ../shared, and a skipped proof would let `engine="auto"` pick an unproven engine.
"""

from __future__ import annotations

import random
import unicodedata

import numpy as np
import pytest

from datakit.tokens import tokenizer as tkmod
from datakit.tokens.tokenizer import FAST_ENGINES, TokenizerError, engine_available, load_tokenizer
from datakit.tokens.utf8 import stable_texts
from tests.conftest import shared_missing
from tests.corpus import build_corpus
from tests.test_tokenizer import first_mismatch, reference_tokenizer

ENGINES = ("gigatoken", "fastokens", "tiktoken", "hf")
_DIGITS = ["٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹", "०१२३४५६७८९", "০১২৩৪৫৬৭৮৯", "๐๑๒๓๔๕๖๗๘๙", "１２３４５", "߀߁߂", "᠐᠑᠒",
           "Ⅰ Ⅱ Ⅲ ⅳ", "½ ¾ ⅞", "²³¹", "𝟎𝟏𝟐𝟑", "〇一二三", "12,345.67", "0xDEADBEEF", "1e10", "٣.١٤"]
_MARKS = ["e\u0301\u0302\u0303", "a\u0308\u0304\u0323", "\u0915\u094d\u0937", "\u0e01\u0e34\u0e4c", "\u05e9\u05c1\u05b8",
          "Z\u0351\u0352\u0353\u0354\u0355", "\u1100\u1161\u11a8", "\u0301leading mark", "ﷺ", "ﬃ", "Å"]


def extra_cases(seed: int = 15) -> list[str]:
    """Tabs, digits of other scripts, long whitespace runs, stacked combining marks and random Unicode strings."""
    rng = random.Random(seed)
    out = ["\t" * 300 + "x", "\tdef f():\n\t\treturn 1\n" * 20, " " * 5000, " " * 4099 + "y", "\n" * 2000,
           "\r\n" * 1000 + "end", " \t \u00a0\u3000" * 400, "x" + "\u00a0" * 1000 + "y", "\u2003" * 300,
           "a \n \n\n  \t\r\n\t b", "    " * 256 + "pass\n"]
    out += [" ".join(rng.choice(_DIGITS) for _ in range(40)) for _ in range(30)]
    out += ["".join(rng.choice(_MARKS) + rng.choice(["", " ", "\n"]) for _ in range(60)) for _ in range(30)]
    blocks = [(0x20, 0x7F), (0xA0, 0x2FF), (0x300, 0x36F), (0x370, 0x52F), (0x590, 0x6FF), (0x900, 0x97F),
              (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F), (0x2190, 0x23FF), (0x3000, 0x30FF),
              (0x4E00, 0x4FFF), (0xAC00, 0xAD00), (0xFE00, 0xFE0F), (0xFF00, 0xFFEF), (0x1F300, 0x1F6FF),
              (0x1F900, 0x1F9FF), (0x1D400, 0x1D7FF), (0x10000, 0x1007F)]
    ws = [" ", "\t", "\n", "\r\n", "\r", "  ", "\u00a0", "\u2028", "\u0085"]
    for _ in range(1500):
        parts = []
        for _ in range(rng.randint(1, 60)):
            if rng.random() < 0.2:
                parts.append(rng.choice(ws) * rng.randint(1, 6))
            else:
                lo, hi = rng.choice(blocks)
                parts.append(chr(rng.randint(lo, hi - 1)))
        text = "".join(parts)
        out.append(unicodedata.normalize("NFD", text) if rng.random() < 0.3 else text)
    return out


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    if why := shared_missing("swebench/verified.jsonl", "qwen2.5/vocab.json", "qwen2.5/merges.txt"):
        pytest.fail(f"the exactness proof {why}")  # a fail, not a skip: see the module docstring
    return build_corpus(1_000_000) + extra_cases()


@pytest.fixture(scope="module")
def reference_ids(corpus) -> list[list[int]]:
    ref = reference_tokenizer(with_specials=False)
    return [e.ids for e in ref.encode_batch(corpus, add_special_tokens=False)]


def _engine(engine: str):
    if not engine_available(engine):
        pytest.fail(f"engine {engine!r} is not installed: CI must install every engine "
                    f"(pip install '{tkmod._PIP[engine]}')")
    tok = load_tokenizer("qwen2.5", engine=engine)
    assert tok.engine == engine
    return tok


def test_corpus_covers_the_cases(corpus, reference_ids):
    assert sum(map(len, reference_ids)) >= 1_000_000
    joined = "".join(corpus)
    for needle in ("\r\n", "\t\t", " " * 1000, "٣", "०", "１", "e\u0301", "👍🏽", "<|endoftext|>", "def ", "diff --git"):
        assert needle in joined, needle
    assert any(unicodedata.normalize("NFC", d) != d for d in corpus)


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_ids_equal_reference(engine, corpus, reference_ids):
    tok = _engine(engine)
    got = tok.encode_batch(corpus)
    assert first_mismatch(got, reference_ids, corpus) is None
    # the flat/array output the stage uses gives the same ids, with the EOD after each document
    arrays = tok.encode_batch_arrays(corpus, append_eod=True)
    for i, (a, want) in enumerate(zip(arrays, reference_ids)):
        assert a.dtype == np.int32 and a[-1] == tok.eod_id and a[:-1].tolist() == want, i


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_threads_same_ids(engine, corpus, reference_ids):
    tok = _engine(engine)
    docs = corpus[::7]
    want = reference_ids[::7]
    assert tok.encode_batch(docs, num_threads=2) == want
    assert [a.tolist() for a in tok.encode_batch_arrays(docs, num_threads=2)] == want


def test_auto_picks_the_fastest_proven_engine():
    assert FAST_ENGINES == ("gigatoken", "fastokens", "tiktoken")  # every one proven above, fastest first
    tok = load_tokenizer()
    assert tok.engine == "gigatoken"
    assert tok.engine_version.startswith("0.10.")
    assert load_tokenizer("qwen2.5", engine="tiktoken").engine_version == __import__("tiktoken").__version__


def test_the_proven_engines_are_pinned_dependencies():
    """CI installs what pyproject.toml lists: each 0.x engine pinned to the minor version this proof ran on."""
    import tomllib
    from pathlib import Path

    deps = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    for engine in FAST_ENGINES:
        assert tkmod._PIP[engine] in deps, engine
    assert "gigatoken>=0.10,<0.11" in deps and "fastokens>=0.3.5,<0.4" in deps


def test_missing_engine_falls_back_or_names_the_fix(monkeypatch):
    tkmod._builtin_cached.cache_clear()
    try:
        monkeypatch.setattr(tkmod, "engine_available", lambda e: e != "gigatoken")
        assert load_tokenizer().engine == "fastokens"  # auto: the next proven engine
        with pytest.raises(TokenizerError, match=r"pip install 'gigatoken>=0\.10,<0\.11'"):
            load_tokenizer("qwen2.5", engine="gigatoken")
        tkmod._builtin_cached.cache_clear()
        monkeypatch.setattr(tkmod, "engine_available", lambda e: e not in ("gigatoken", "fastokens"))
        assert load_tokenizer().engine == "tiktoken"
        with pytest.raises(TokenizerError, match=r"pip install 'fastokens>=0\.3\.5,<0\.4'"):
            load_tokenizer("qwen2.5", engine="fastokens")
        tkmod._builtin_cached.cache_clear()
        monkeypatch.setattr(tkmod, "engine_available", lambda e: e == "hf")
        assert load_tokenizer().engine == "hf"
    finally:
        tkmod._builtin_cached.cache_clear()


def test_array_output_edge_cases():
    for engine in ENGINES:
        tok = _engine(engine)
        assert tok.encode_batch_arrays([]) == []
        out = tok.encode_batch_arrays(["", "a", ""], append_eod=True)
        assert [a.tolist() for a in out] == [[tok.eod_id], [64, tok.eod_id], [tok.eod_id]]
        assert [a.tolist() for a in tok.encode_batch_arrays(["", "ab"])] == [[], tok.encode("ab")]
        with pytest.raises(TokenizerError):
            tok.encode_batch_arrays(["a", None])  # type: ignore[list-item]


_FORKED_IMPL: list = [None]  # reached by the forked child through the fork (the engine is not picklable)


def _encode_forked(text: str) -> list[int]:
    return _FORKED_IMPL[0].encode(text)


@pytest.mark.parametrize("engine", ["gigatoken", "fastokens"])
def test_fork_while_the_engine_builds(engine):
    """A process forked while the background build runs (datatrove's local pool forks) builds its own engine
    (or inherits it, if the build ended first)."""
    import multiprocessing

    _engine(engine)
    _FORKED_IMPL[0] = tkmod._qwen_impl(engine, tkmod._qwen25_specials())
    _FORKED_IMPL[0].prefetch()
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = pool.apply(_encode_forked, ("Hello, world!",))
    assert got == [9707, 11, 1879, 0]
    assert _FORKED_IMPL[0].encode("Hello, world!") == got


def test_gigatoken_engine_does_not_import_awkward():
    """gigatoken's batch calls return an awkward Array (importing awkward: ~0.8 CPU s, more than the engine's
    build): the engine encodes per document, so a tokens process never imports it."""
    import subprocess
    import sys

    code = ("import sys; from datakit.tokens.tokenizer import load_tokenizer; t = load_tokenizer('qwen2.5', 'gigatoken'); "
            "a = t.encode_batch_arrays(['def f(x):', 'caf\\u00e9 <|endoftext|>'], num_threads=2, append_eod=True); "
            "t.encode_batch(['x']); t.decode(a[1].tolist()); print('awkward' in sys.modules, t.engine)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "gigatoken"]


def test_gigatoken_threads_encoding_at_once_from_the_first_call():
    """gigatoken 0.10 raises "Already borrowed" when threads call one fresh tokenizer at once: each thread gets its
    own engine (the first one the prefetched engine)."""
    import threading

    tok = tkmod._qwen_builtin("gigatoken")  # a fresh engine, not the cached one
    tok._impl.tok  # built, and never called
    barrier, got, errors = threading.Barrier(4), {}, []

    def run(k: int) -> None:
        barrier.wait()
        try:
            got[k] = [tok.encode(f"def f{k}(x):  # café {i}\n" * 50) for i in range(20)]
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ref = load_tokenizer("qwen2.5", engine="tiktoken")
    assert got == {k: [ref.encode(f"def f{k}(x):  # café {i}\n" * 50) for i in range(20)] for k in range(4)}


def test_gigatoken_engine_is_refreshed_after_refresh_tokens(corpus, reference_ids):
    """Its pretoken cache grows with every distinct pretoken: after `refresh_tokens` tokens the next batch gets a
    fresh engine (on every thread), and the ids stay the reference's."""
    tok = tkmod._qwen_builtin("gigatoken")  # a fresh engine, not the cached one
    impl = tok._impl
    impl.refresh_tokens = 20_000  # an instance attribute: the class default (REFRESH_TOKENS) is untouched
    docs, want = corpus[:400], reference_ids[:400]
    engines, got = set(), []
    for i in range(0, len(docs), 16):
        got += [a[:-1].tolist() for a in tok.encode_batch_arrays(docs[i:i + 16], append_eod=True)]
        engines.add(impl._local.tok[0])  # the generation of the engine this thread encoded with
    assert got == want
    total = sum(map(len, want))
    # a refresh between batches once 20,000 are passed (the count restarts at 0: a batch's overshoot is dropped)
    assert 3 < impl._generation <= total // 20_000 and len(engines) > 3
    # two threads after a refresh: each its own engine of the new generation, the same ids
    assert [a.tolist() for a in tok.encode_batch_arrays(docs[:64], num_threads=2)] == want[:64]
    assert [tok.encode(d) for d in docs[:20]] == want[:20]
    assert tkmod._GigatokenImpl.refresh_tokens == tkmod.REFRESH_TOKENS == 256_000_000


@pytest.mark.parametrize("engine", ENGINES)
def test_utf8_bytes_give_the_ids_of_their_str(engine, corpus, reference_ids):
    """The tokens stage hands texts on as UTF-8 bytes: every engine gives them the ids of the str (NFD bytes are
    normalised like the str; bytes NFC leaves as they are reach gigatoken as they are); bytes that are not UTF-8
    are refused."""
    tok = _engine(engine)
    docs, want = corpus[::5], reference_ids[::5]
    assert any(d.isascii() for d in docs) and any(not d.isascii() for d in docs)
    mixed = [d.encode("utf-8") if i % 2 else d for i, d in enumerate(docs)]
    got = tok.encode_batch_arrays(mixed, append_eod=True)
    assert [a[:-1].tolist() for a in got] == want
    # every text as bytes: on gigatoken those `utf8.stable_texts` passes go as they are, NFC text of any script
    # included; next to them what NFC must change (marks, a composing Bengali pair, jamo, singletons)
    risky = ["\u09c7\u09be", "\u1100\u1161\u11a8", "e\u0301 \u0915\u094d\u0937", "\u2126 \u212b \u2000 \uf900",
             "caf\u00e9 \u2014 \u201cquoted\u201d \U0001f600 \u4e2d\u6587", "\U00020000"]
    as_bytes = [d.encode("utf-8") for d in docs + risky]
    got = tok.encode_batch_arrays(as_bytes)
    assert [a.tolist() for a in got] == want + [tok.encode(r) for r in risky]
    passed = stable_texts(as_bytes)
    assert any(f and not d.isascii() for d, f in zip(docs, passed)) and passed[-2] and not any(passed[-6:-2])
    nfd = unicodedata.normalize("NFD", "café Å ﬃ")
    assert tok.encode_batch_arrays([nfd.encode("utf-8")])[0].tolist() == tok.encode(nfd)
    with pytest.raises(TokenizerError, match=r"texts\[1\] is not UTF-8"):
        tok.encode_batch_arrays(["ok", b"\xff\xfe bad"])
    with pytest.raises(TokenizerError, match="not str or bytes"):
        tok.encode_batch_arrays([3])
