"""The compiled scan kernel (`datakit/decontam/_scan.c`) computes exactly what the numpy path computes.

Word hashes, word offsets and window hashes on random and hostile text (hypothesis: empty, one word, 12/13/14
words, very long words, non-ASCII, NUL bytes, line-number prefixes), the index hits of multi-document buffers, and
the verdicts and strongest matches of the planted set; with the kernel turned off (``DATAKIT_NO_NATIVE=1``) or
missing, the package still imports and the stage writes the same output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

import datakit.decontam.content as content
from datakit.decontam.index import SHORT_DTYPE, FingerprintIndex, default_index
from datakit.decontam.ngrams import text_words, window_hashes
from datakit.decontam.normalize import canonical, canonical_bytes, is_plain
from datakit.decontam.reference import load_reference
from tests.test_decontam_planted import SWEBENCH, needs_data

native = content.kernel()
needs_kernel = pytest.mark.skipif(native is None, reason="the scan kernel is not built here (no C compiler?)")

# text that exercises every branch: word bytes, separators, digits before ':'/tab/'|' (line numbers), indentation
# and diff markers, newlines, CR, entities, Markdown escapes, NUL, non-ASCII letters and spaces, upper case
PIECES = ["a", "b", "Zz", "_", "é", "Ä", "ß", "\u00a0", "\u200b", "ｆ", "İ", "\x00", "\\_", "&amp;", "&quot;", "&#39;",
          "190", "7", "12345678", ":", "\t", "|", " |", " ", "  ", "\n", "\r\n", "+", "-", ">", ".", "(", "'", "def",
          "return", "self", "0", "x1", "o__o", "a__b.c", "__", "-", "-1", "-22", "o__o-1", "__init__"]
texts = st.lists(st.sampled_from(PIECES), max_size=120).map("".join) | st.text(max_size=300)


def _numpy_words(text: str, n: int):
    wh, starts, ends, _ = text_words(text)
    return wh, starts, ends, window_hashes(wh, n)


def _kernel_words(text: str, n: int):
    words, windows = native.scan_words(canonical(text)[0].tobytes(), n)
    rec = np.frombuffer(words, dtype=np.int64).reshape(-1, 3)
    return rec[:, 0].view(np.uint64), rec[:, 1], rec[:, 2], np.frombuffer(windows, dtype=np.uint64)


@needs_kernel
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, n=st.sampled_from([1, 2, 13]))
@example(text="", n=13)
@example(text="word", n=13)
@example(text=" ".join(f"w{i}" for i in range(12)), n=13)
@example(text=" ".join(f"w{i}" for i in range(13)), n=13)
@example(text=" ".join(f"w{i}" for i in range(14)), n=13)
@example(text="x" * 100_000 + " y" * 20, n=13)  # a word far longer than any power table the numpy path starts with
@example(text="  190:\tdef f():\n+ 191\treturn 1\n-> 12 | x\n1234567: y\n12345678: z\n" * 3, n=2)
@example(text="\x00a\x00 b\u200bc &amp; d\\_e ｆｕｌｌ", n=1)
def test_word_and_window_hashes_equal_the_numpy_path(text, n):
    for ours, theirs in zip(_kernel_words(text, n), _numpy_words(text, n)):
        assert np.array_equal(ours, theirs)


@needs_kernel
@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=400))
def test_hostile_bytes(raw):
    """Any bytes at all (the kernel reads the canonical buffer as bytes): the numpy path's words of the same bytes."""
    from datakit.decontam.ngrams import _word_hashes_bytes
    from datakit.decontam.normalize import line_number_words

    b = np.frombuffer(raw.lower(), dtype=np.uint8)  # (canonical bytes are lowered: no A-Z)
    wh, starts, ends = _word_hashes_bytes(b)
    keep = np.setdiff1d(np.arange(len(wh)), line_number_words(b, starts, ends))
    words, windows = native.scan_words(raw.lower(), 3)
    rec = np.frombuffer(words, dtype=np.int64).reshape(-1, 3)
    assert np.array_equal(rec[:, 0].view(np.uint64), wh[keep])
    assert np.array_equal(rec[:, 1], starts[keep]) and np.array_equal(rec[:, 2], ends[keep])
    assert np.array_equal(np.frombuffer(windows, dtype=np.uint64), window_hashes(wh[keep], 3))


@needs_kernel
@settings(max_examples=100, deadline=None)
@given(parts=st.lists(st.text(alphabet=st.characters(max_codepoint=127, blacklist_characters="\x00&"), max_size=40)
                      | st.lists(st.sampled_from(["\\", "_", "a", "B"]), max_size=12).map("".join)
                      | st.binary(max_size=40), max_size=10))
def test_join_canonical_is_the_canonical_buffer_layout(parts):
    """The kernel's buffer of ASCII str parts without NUL or entity (lowered, "\\_" -> "_") and bytes parts
    (lowered) is the numpy path's b"\\n".join of their canonical bytes; a non-ASCII str needs the code-point rule."""
    buf, doc_start = native.join_canonical(parts)
    raw = [canonical_bytes(p) if isinstance(p, str) else p.lower() for p in parts]
    assert buf == b"\n" + b"\n".join(raw + [b""])
    assert np.frombuffer(doc_start, np.int64).tolist() == np.cumsum([0] + [len(p) + 1 for p in raw]).tolist()
    with pytest.raises(TypeError):
        native.join_canonical(["é"])


# what the code-point rule must get right: FOLD (quotes, dashes, spaces, zero-width), lowerings to several characters
# (İ: canonical_text then lowers nothing), the context-lowered capital sigma, lone surrogates, NFKC forms (no-break
# space, full-width, ligatures, Ω/K signs, "=" + U+0338 that composes to "≠"), entities made by NFKC (＆ｑｕｏｔ；),
# escapes split by a deleted character, astral letters with a lowercase (Deseret)
UNICODE_PIECES = PIECES + ["Σ", "ΑΣ ", "σ", "\u2019", "\u201c", "\u2014", "\u2026", "\ud800", "\U0001F600", "e\u0301",
                           "\u0301", "=\u0338", "ǅ", "ẞ", "\u212a", "\u2126", "\ufb01", "\u3000", "\u0085", "\u00ad",
                           "\\\u200b_", "\\\\_", "\u00b4", "＆", "ｑｕｏｔ；", "ﷺ", "\u0344", "\U00010400", "Ⅻ", "&#x41;",
                           "&#12345678;", "&a;", "&ab;"]


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(docs=st.lists(st.lists(st.sampled_from(UNICODE_PIECES), max_size=40).map("".join) | st.text(max_size=200),
                     min_size=1, max_size=6))
def test_kernel_canonical_bytes_equal_canonical_bytes(docs):
    """The chunk buffer the kernel makes (code point by code point where `per_code_point` allows, `canonical_bytes`
    for the rest) holds exactly `normalize.canonical_bytes` of every text, with and without a known plain mask."""
    want = b"\n" + b"\n".join([canonical_bytes(d) for d in docs] + [b""])
    assert content._canonical_buffer(docs)[0] == want
    assert content._canonical_buffer(docs, [is_plain(d) for d in docs])[0] == want


@needs_kernel
@settings(max_examples=150, deadline=None)
@given(docs=st.lists(st.none() | st.lists(st.sampled_from([p for p in UNICODE_PIECES if p != "\ud800"]),
                                          max_size=40).map("".join), min_size=1, max_size=12),
       data=st.data(), large=st.booleans())
def test_arrow_rows_give_the_same_buffer_and_matches(docs, data, large):
    """The step's batch path on an Arrow array (plain rows copied from its buffer, `ArrowTexts`), a sliced one and a
    subset of its rows: the same chunk buffer and the same verdicts as the list of Python strings."""
    arr = pa.array(docs, type=pa.large_string() if large else pa.string())
    cut = data.draw(st.integers(0, len(docs) - 1))
    arr = arr.slice(cut)
    rows = sorted(data.draw(st.sets(st.integers(0, len(arr) - 1), min_size=1)))
    texts = [arr[r].as_py() or "" for r in rows]
    plain = content.plain_mask(arr)[rows]
    view = content.ArrowTexts(arr, rows, plain)
    assert list(view) == texts and view.lengths().tolist() == [len(t.encode()) for t in texts]
    assert content._canonical_buffer(view, plain)[0] == content._canonical_buffer(texts)[0]
    assert content._canonical_buffer(view[1:], plain[1:])[0] == content._canonical_buffer(texts[1:])[0]
    index = _index_of([" ".join(f"w{i} v{i % 3}" for i in range(40)), texts[0]])
    ours, theirs = content.batch_matches(view, index, plain=plain), content.batch_matches(texts, index, plain=plain)
    assert ours[0].tolist() == theirs[0].tolist() and ours[1:] == theirs[1:]


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(docs=st.lists(st.none() | st.lists(st.sampled_from([p for p in UNICODE_PIECES if p != "\ud800"]  # (UTF-8)
                                                          + ["&", "#", "x", "1", ";", "Ab", "é"]),
                                          max_size=30).map("".join), max_size=30),
       cut=st.integers(0, 5), large=st.booleans())
def test_plain_flags_are_is_plain(docs, cut, large):
    """The kernel's pass over an Arrow array's buffers (string and large_string, sliced, with nulls) is
    `normalize.is_plain` text by text (entities at every boundary of the regex's bounded repeats)."""
    arr = pa.array(docs, type=pa.large_string() if large else pa.string()).slice(min(cut, len(docs)))
    want = [d is not None and is_plain(d) for d in arr.to_pylist()]
    assert content.plain_mask(arr).tolist() == want


@needs_kernel
@settings(max_examples=150, deadline=None)
@given(docs=st.lists(st.text(alphabet="a_.-19 \né", max_size=60), min_size=1, max_size=6))
def test_instance_id_candidates_are_the_documents_the_pattern_matches(docs):
    """The kernel's candidate documents for an instance id: exactly those where content._INSTANCE_TAIL matches
    (dense '-<digit>', '__', '.' and breaks, so runs extend across many checks)."""
    buf, doc_start = content._canonical_buffer(docs)
    _, cands = content._hits_native(native, buf, doc_start, _index_of(["a b"]))
    assert cands.tolist() == sorted({int(np.searchsorted(doc_start + 1, m.start(), side="right")) - 1
                                     for m in content._INSTANCE_TAIL.finditer(buf)})


def _index_of(docs: list[str], n: int = 13) -> FingerprintIndex:
    """An index holding every n-gram of `docs` (so hits are many), one item per document."""
    hashes = np.unique(np.concatenate([window_hashes(text_words(d)[0], n) for d in docs] + [np.empty(0, np.uint64)]))
    return FingerprintIndex(n=n, instance_ids=["o__o-1"], repos=["o/o"], base_commits={}, hashes=hashes,
                            owner=np.zeros(len(hashes), np.int32), field=np.zeros(len(hashes), np.uint8),
                            item_sizes=np.array([[len(hashes), 0, 0]], np.int32),
                            short_items=np.empty(0, SHORT_DTYPE))


@needs_kernel
@settings(max_examples=60, deadline=None)
@given(docs=st.lists(texts, min_size=1, max_size=8), quoted=st.lists(st.integers(0, 7), max_size=4),
       plain=st.booleans())
def test_hits_and_verdicts_equal_on_multi_document_buffers(docs, quoted, plain):
    """Documents quote (parts of) indexed documents, next to each other in one buffer: the same hits (document,
    index position, byte span, in window order) and the same verdicts and strongest matches."""
    words = " ".join(f"w{i} v{i % 3}" for i in range(40))
    index = _index_of([words, docs[0]])
    docs = docs + [words[k * 7: k * 7 + 150] + d for k, d in zip(quoted, docs)]
    buf, doc_start = content._canonical_buffer(docs)
    ours, cands = content._hits_native(native, buf, doc_start, index)
    theirs = content._hits_numpy(buf, doc_start, index)
    for a, b in zip(ours, theirs):
        assert np.array_equal(a, b)
    ids = frozenset(["o__o-1", "a__b.c-d-22", "__x-3"])
    named = content._named(buf, doc_start, ids)
    assert set(named) <= set(cands.tolist()) and content._named(buf, doc_start, ids, cands) == named
    # the candidates are exactly the documents where the id pattern matches
    assert cands.tolist() == sorted({int(np.searchsorted(doc_start + 1, m.start(), side="right")) - 1
                                     for m in content._INSTANCE_TAIL.finditer(buf)})
    mask = content.plain_mask(pa.array(docs)) if plain else None
    assert _both_ways(lambda: content.batch_matches(docs, index, plain=mask)) is not None


def _both_ways(fn):
    """fn() with the kernel and with DATAKIT_NO_NATIVE=1: equal (returned), compared field by field."""
    ours = fn()
    old = os.environ.get("DATAKIT_NO_NATIVE")
    os.environ["DATAKIT_NO_NATIVE"] = "1"  # (not monkeypatch: hypothesis runs many examples per fixture)
    try:
        assert content.kernel() is None
        theirs = fn()
    finally:
        if old is None:
            del os.environ["DATAKIT_NO_NATIVE"]
        else:
            os.environ["DATAKIT_NO_NATIVE"] = old
    assert ours[0].tolist() == theirs[0].tolist() and ours[1:] == theirs[1:]
    return ours


def _planted(k: int = 60) -> list[str]:
    """A cheap slice of the planted set: k Verified statements in every normalisation variant, their gold and test
    hunks in every view (diff, SEARCH/REPLACE, line-numbered), chat-style concatenations, and clean text: boilerplate
    traps of every family, generated issues and this package's own code in 4 KB pieces."""
    import random

    from tests import test_decontam_planted as p

    rng = random.Random(5)
    xs = rng.sample(p.load_reference("files", SWEBENCH), k)
    docs = [f(x.problem_statement, rng) for x in xs for f in p.STATEMENT_VARIANTS.values()]
    docs += [f(h) for x in xs for h in p.hunks(x.patch)[:2] + p.hunks(x.test_patch or "")[:1]
             for f in p.HUNK_VARIANTS.values()]
    docs += [f"Task {x.instance_id}:\nYou are a helpful agent.\n" + x.problem_statement[:500] for x in xs[:10]]
    docs += [f(rng, i) for f in (p.trap_django, p.trap_sphinx, p.trap_pylint_header, p.trap_env, p.trap_licence,
                                 p.trap_issue_form) for i in range(15)]
    docs += p.generated_issues(60)
    code = "".join(f.read_text() for f in sorted(Path(content.__file__).parent.glob("*.py")))
    docs += [code[i: i + 4000] for i in range(0, len(code), 4000)]
    rng.shuffle(docs)
    return docs


@needs_kernel
@needs_data
def test_planted_verdicts_and_strongest_matches_equal():
    """The planted texts, in small chunks so that documents straddle them: the same flags, instance ids and
    strongest matches (spans included) with and without the kernel, with and without the Arrow plain mask."""
    index = default_index()
    docs = _planted()
    old = content.CHUNK_BYTES, content.KERNEL_CHUNK_BYTES
    content.CHUNK_BYTES = content.KERNEL_CHUNK_BYTES = 60_000
    try:
        flags, named, best = _both_ways(lambda: content.batch_matches(docs, index, plain=content.plain_mask(
            pa.array(docs))))
        assert flags.sum() > 400 and len(best) > 100 and len(named) >= 10 and not flags.all()
        _both_ways(lambda: content.batch_matches(docs, index))
    finally:
        content.CHUNK_BYTES, content.KERNEL_CHUNK_BYTES = old


def test_kernel_is_built_where_there_is_a_compiler():
    """`pip install -e .` builds the optional extension when a C compiler is there (as on CI); if this fails, the
    build failed silently and decontam runs at numpy speed."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}) on this machine: the numpy path is used")
    assert native is not None, "datakit.decontam._scan is not built: rerun `pip install -e .` and read its log"


NO_KERNEL = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):  # as on a machine where the extension could not be compiled
    def find_spec(self, name, path=None, target=None):
        if name == "datakit.decontam._scan":
            raise ImportError("not built")
sys.meta_path.insert(0, Refuse())
import datakit.decontam.content as c
from datakit.decontam.index import default_index
assert c.kernel() is None
flags, named, best = c.batch_matches(sys.argv[1:], default_index())
print((flags.tolist(), sorted(named.items()), sorted((k, m.instance_id, m.span_start, m.span_end) for k, m in best.items())))
"""


@needs_data
def test_without_the_kernel_the_package_imports_and_scans_the_same(tmp_path):
    """A machine without the compiled kernel: the package imports, says once that it uses the numpy path, and the
    scan gives what it gives here."""
    x = load_reference("files", SWEBENCH)[7]
    docs = ["plain code = 1\n", "Fix:\n" + x.problem_statement, f"see {x.instance_id}", ""]
    done = subprocess.run([sys.executable, "-c", NO_KERNEL, *docs], capture_output=True, text=True, check=True,
                          cwd=tmp_path, env={**os.environ, "DATAKIT_NO_NATIVE": ""})
    assert "no compiled scan kernel" in done.stderr and done.stderr.count("no compiled scan kernel") == 1
    flags, named, best = content.batch_matches(docs, default_index())
    assert done.stdout.strip() == str((flags.tolist(), sorted(named.items()), sorted(
        (k, m.instance_id, m.span_start, m.span_end) for k, m in best.items())))
    assert flags.tolist() == [False, True, False, False] and named == {2: x.instance_id}


@needs_data
def test_stage_output_is_the_same_with_DATAKIT_NO_NATIVE(tmp_path, monkeypatch):
    """`datakit decontam` (in-process CLI, one task) on planted samples: kept, quarantined and match rows equal."""
    import polars as pl

    from datakit.cli import main
    from tests.test_tokens_stage import write_samples

    rows = [{"id": f"s{i}", "kind": "edit", "role": "bugfixer", "text": t, "meta": {"repo": "acme/app"},
             "source": None} for i, t in enumerate(_planted(20))]
    inp = write_samples(tmp_path / "in", rows)
    out = {}
    for mode in ("", "1"):
        monkeypatch.setenv("DATAKIT_NO_NATIVE", mode)
        assert main(["decontam", "--input", str(inp), "--output", str(tmp_path / f"o{mode}"), "--tasks", "1",
                     "--workers", "1", "--quiet", "--no-mirror-rules"]) == 0
        d = tmp_path / f"o{mode}" / "decontam"
        out[mode] = {part: pl.read_parquet(sorted((d / part).glob("*.parquet"))).sort("id" if part != "matches"
                                                                                       else "sample_id")
                     for part in ("matches", "quarantine")}
        out[mode]["kept"] = pl.read_parquet(sorted(d.glob("*.parquet")) or sorted((d / "output").glob("*.parquet")))
    assert len(out[""]["matches"]) > 40
    for part in out[""]:
        assert out[""][part].equals(out["1"][part]), part
