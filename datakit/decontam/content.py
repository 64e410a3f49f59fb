"""The content rule: does a text quote a SWE-bench problem statement, gold patch or test patch?

A text's word 13-grams (see `datakit.decontam.ngrams`) are looked up in the fingerprint index
(`datakit.decontam.index`); hits are grouped by reference item (instance, field). An item matches when

    score = matched distinct n-grams / the item's n-grams  ≥ threshold (0.5)     (most of the item is quoted)
    or  matched distinct n-grams ≥ min_matched (6)                               (a verbatim passage)

and an item shorter than 13 words (none in Verified) matches only when its whole word sequence occurs.

Why these defaults:
- *n = 13 words*: the n-gram size GPT-3 used for its benchmark overlap analysis and the default ``ngram_size``
  of OLMo's ``decon`` (SIMPLE mode); Phi-1 and Cosmopedia use 10-grams. Words drop punctuation, so 13 words are
  about one long sentence of an issue or one to two lines of code: long enough that 13 identical words in a row
  are a quote, not chance (the standard library's 3 M distinct 13-grams share 9 with the reference).
- *threshold = 0.5*: Cosmopedia discards a sample when more than half of the benchmark item is matched; decon's
  SIMPLE mode reports overlap ratios from 0.3 up. A whole or mostly quoted item scores 0.6-1.0 here (a patch
  quoted as SEARCH/REPLACE blocks loses only the n-grams that span removed lines).
- *min_matched = 6 distinct n-grams*: at least 18 words in a row (or several shorter quotes) from one item.
  Contamination includes one paragraph of a long statement or one hunk of a multi-file patch, whose coverage of
  the item can be 5%, so coverage alone is not enough; bigcode's StarCoder decontamination removed any file
  containing a benchmark solution or docstring as an exact substring, i.e. it also keyed on the passage.
  Measured on Verified (tests/test_decontam_content.py): every largest hunk of ≥ 30 words of a gold or test
  patch and every instance-specific paragraph of ≥ 30 words is caught; of all 1,220 gold-patch hunks, 18 are
  missed (one-word additions to a list and similar hunks of ~20 words). On 43 k clean code documents (stdlib
  and site-packages without SWE-bench projects) 4 documents reach 6 or more, all genuine copies (pydantic's copy of Django's
  duration regex that an issue quotes, numpy's ATLAS message that an issue quotes, matplotlib code in
  contourpy); 10 would drop two of them and miss 41 hunks.
- boilerplate never counts: the index leaves out n-grams of the background (standard library, site-packages
  without the Verified projects, project templates, licences, issue forms, environment reports), n-grams mostly
  on environment-report or template lines, and n-grams shared by 3 or more reference instances (issue templates,
  common traceback frames), see `datakit.decontam.index`.
- an instance id (``django__django-11099``) in a text is its own rule (`text_instance_id`, in the stage): public
  trajectory sets name their SWE-bench task that way.

Hot path (no per-n-gram Python; `batch_scan` does it for a whole batch of samples in one buffer, so the per-call
numpy overhead is paid once per 256 KB, not per sample): hash every 13-gram, test membership with a bit table over the
hashes' top bits, look the few candidates up in the sorted index, count distinct hits per item with ``np.unique``;
Python only loops over the (rare) matched items to build `TextMatch` records. The hashing and look-up is one pass
of the compiled kernel (`_scan.c`, built at install where a C compiler is) or, without it, ~15 numpy passes
(`_hits_numpy`); both give the same hits, and the per-text `content_matches` (index build, spans of non-ASCII
samples) stays numpy.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from .index import FIELDS, FingerprintIndex
from .ngrams import _word_hashes_spans, text_words, to_chars, window_hashes
from .normalize import _ENTITY, canonical_bytes, code_point_fate, line_number_words, per_code_point

__all__ = ["TextMatch", "ArrowTexts", "content_matches", "batch_flags", "batch_scan", "batch_matches", "plain_mask",
           "instance_ids_in", "kernel", "DEFAULT_THRESHOLD", "DEFAULT_MIN_MATCHED"]

DEFAULT_THRESHOLD = 0.5
DEFAULT_MIN_MATCHED = 6


@dataclass(frozen=True)
class TextMatch:
    instance_id: str
    repo: str
    field: str  # "problem_statement" | "patch" | "test_patch"
    score: float  # matched distinct n-grams / the item's n-grams (1.0 for a short item matched whole)
    matched_ngrams: int
    span_start: int  # character offsets in the original text covering the item's matched n-grams
    span_end: int

    @property
    def rule(self) -> str:
        return f"text_{self.field}"


def _lookup(index: FingerprintIndex, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions in `h` of hashes present in the index, their positions in index.hashes)."""
    bits, shift = index.prefilter()
    idx = (h >> np.uint64(shift)).astype(np.intp)
    maybe = np.flatnonzero(((np.take(bits, idx >> 3) >> (idx & 7).astype(np.uint8)) & 1).view(bool))  # (bool: fast)
    if len(maybe) == 0:
        return maybe, maybe
    cand = h[maybe]
    pos = np.searchsorted(index.hashes, cand)
    pos[pos >= len(index.hashes)] = 0
    ok = index.hashes[pos] == cand
    return maybe[ok], pos[ok]


def content_matches(text: str, index: FingerprintIndex, threshold: float = DEFAULT_THRESHOLD,
                    min_matched: int = DEFAULT_MIN_MATCHED) -> list[TextMatch]:
    """Reference items that `text` quotes, strongest first (by score, then matched n-grams)."""
    if not text:
        return []
    wh, wstarts, wends, bmap = text_words(text)
    n = index.n
    found: list[tuple[float, int, int, int, int, int]] = []  # (score, matched, owner, field, start, end) bytes
    if len(wh) >= n and len(index.hashes):
        h = window_hashes(wh, n)
        at, pos = _lookup(index, h)
        if len(at):
            uh, first = np.unique(h[at], return_index=True)  # distinct matched n-grams
            at_u, pos_u = at[first], pos[first]
            key = index.owner[pos_u].astype(np.int64) * 3 + index.field[pos_u]
            keys, matched = np.unique(key, return_counts=True)
            sizes = index.item_sizes.reshape(-1)[keys]
            score = matched / np.maximum(sizes, 1)
            hit = (score >= threshold) | (matched >= min_matched)
            for k, m, s in zip(keys[hit], matched[hit], score[hit]):
                sel = at_u[key == k]
                found.append((min(float(s), 1.0), int(m), int(k // 3), int(k % 3),
                              int(wstarts[sel.min()]), int(wends[sel.max() + n - 1])))
    if len(index.short_items) and len(wh):
        for k in np.unique(index.short_items["words"]):
            if k > len(wh):
                continue
            h = window_hashes(wh, int(k))
            rows = index.short_items[index.short_items["words"] == k]
            hit_at = np.flatnonzero(np.isin(h, rows["hash"]))
            for r in rows[np.isin(rows["hash"], h[hit_at])]:
                i = hit_at[h[hit_at] == r["hash"]][0]
                found.append((1.0, 1, int(r["owner"]), int(r["field"]), int(wstarts[i]), int(wends[i + k - 1])))
    if not found:
        return []
    found.sort(key=lambda x: (-x[0], -x[1], x[2], x[3]))
    starts, ends = to_chars(bmap, [f[4] for f in found], [f[5] for f in found])
    return [TextMatch(index.instance_ids[o], index.repos[o], FIELDS[f], s, m, int(a), int(e))
            for (s, m, o, f, _, _), a, e in zip(found, starts, ends)]


# -- the batch path: many samples in one vectorised pass ----------------------------------------------------------

_INSTANCE_TAIL = re.compile(rb"__[a-z0-9_.\-]+?-[0-9]+(?![0-9])")  # literal prefix: sre scans for "__" fast
_INSTANCE_HEAD = re.compile(rb"[a-z0-9][a-z0-9_.\-]*$")
_NOT_PLAIN = (r"\\_", r"\x00", _ENTITY.pattern)  # (RE2) what makes an ASCII text not `is_plain`
CHUNK_BYTES = 1 << 18  # bytes hashed in one pass: its uint64 prefix sums (2 MB) stay in cache
KERNEL_CHUNK_BYTES = 1 << 22  # the kernel streams: larger chunks pay the per-chunk numpy work less (-8 %)


def instance_ids_in(buf: bytes, doc_start: np.ndarray, ids: frozenset[str]) -> dict[int, tuple[str, int, int]]:
    """{document: (instance id, start, end)} for the first Verified instance id (``django__django-11099``) in
    each document of the lowered buffer `buf` (documents at `doc_start` offsets; positions are buffer offsets)."""
    out: dict[int, tuple[str, int, int]] = {}
    for m in _INSTANCE_TAIL.finditer(buf):
        d = int(np.searchsorted(doc_start, m.start(), side="right")) - 1
        if d in out:
            continue
        lo = max(int(doc_start[d]), m.start() - 64)
        head = _INSTANCE_HEAD.search(buf, lo, m.start())
        if head is None:
            continue
        cand = (head.group() + m.group()).decode("ascii")
        for k in range(len(head.group())):  # the owner may be glued to a word before it ("see:django__…")
            if cand[k:] in ids:
                out[d] = (cand[k:], head.start() + k, m.end())
                break
    return out


def plain_mask(texts) -> np.ndarray:
    """`[is_plain(t) for t in texts]` for an Arrow string array: from its buffers in the scan kernel (one pass, no
    pyarrow.compute), else in Arrow's kernels (ASCII check and one RE2 pass for what `normalize.is_plain` looks
    for), not one Python call per text. Nulls are not plain."""
    import pyarrow as pa

    native = kernel()
    if isinstance(texts, pa.ChunkedArray):
        chunks = [plain_mask(c) for c in texts.chunks]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=bool)
    if native is not None and (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        valid, offsets, data = texts.buffers()
        flags = native.plain_flags(offsets, data if data is not None else b"",
                                   valid if texts.null_count else None, texts.offset, len(texts),
                                   pa.types.is_large_string(texts.type))
        return np.frombuffer(flags, dtype=bool)
    import pyarrow.compute as pc

    plain = pc.string_is_ascii(texts)
    for pattern in _NOT_PLAIN:  # one literal-led pattern at a time: RE2 skips to its first byte (an alternation
        plain = pc.and_(plain, pc.invert(pc.match_substring_regex(texts, pattern)))  # of them scans 20x slower)
    return np.asarray(pc.fill_null(plain, False), dtype=bool)


class ArrowTexts:
    """Rows of an Arrow string array as the batch path reads them, without a Python str per row: their lengths
    from the offsets, the plain rows' bytes copied by the kernel straight from the data buffer, a str made only for
    a row that is asked for (`texts[k]`: the non-plain rows, and the few a rule caught). A slice is a view. A null
    row reads as ""."""

    def __init__(self, arr, rows: np.ndarray, plain: np.ndarray):
        import pyarrow as pa

        self.arr, self.rows, self.plain = arr, np.asarray(rows, dtype=np.int64), np.asarray(plain, dtype=bool)
        self.wide = pa.types.is_large_string(arr.type)
        _, offsets, data = arr.buffers()
        self.offsets, self.data = offsets, data if data is not None else b""
        o = np.frombuffer(offsets, dtype=np.int64 if self.wide else np.int32)[arr.offset: arr.offset + len(arr) + 1]
        self._ends = o

    def __len__(self) -> int:
        return len(self.rows)

    def lengths(self) -> np.ndarray:
        """Bytes per row (characters for the plain, ASCII ones): what the chunking needs."""
        return (self._ends[self.rows + 1] - self._ends[self.rows]).astype(np.int64)

    def __getitem__(self, k):
        if isinstance(k, slice):
            view = object.__new__(ArrowTexts)
            view.__dict__.update(self.__dict__, rows=self.rows[k], plain=self.plain[k])
            return view
        return self.arr[int(self.rows[k])].as_py() or ""

    def __iter__(self):
        return (self[k] for k in range(len(self)))

    def kernel_rows(self) -> tuple:
        """join_canonical's `rows`: the buffers, their offset width and the rows' positions in them."""
        return (self.offsets, self.data, self.wide, self.rows + self.arr.offset)


def batch_scan(texts: list[str], index: FingerprintIndex, threshold: float = DEFAULT_THRESHOLD,
               min_matched: int = DEFAULT_MIN_MATCHED, plain=None) -> tuple[np.ndarray, dict[int, str]]:
    """(per text: whether `content_matches` would find anything, {text: Verified instance id it names}), for
    the whole list at once (one buffer per 256 KB, one hashing pass, one look-up): the per-call numpy overhead,
    not the bytes, dominates a few-KB sample. Exact: the same normalisation, hashing and decision rule as
    `content_matches` (tested on the planted set); ask it for the spans of the (rare) flagged texts.
    `plain` (optional, per text): `normalize.is_plain` of each text, known already (`plain_mask`)."""
    return batch_matches(texts, index, threshold, min_matched, plain)[:2]


def batch_matches(texts: list[str], index: FingerprintIndex, threshold: float = DEFAULT_THRESHOLD,
                  min_matched: int = DEFAULT_MIN_MATCHED, plain=None) -> tuple[np.ndarray, dict[int, str], dict]:
    """`batch_scan`, and {flagged text: its strongest match} as `max(content_matches(text), key=(score,
    matched_ngrams))` gives it, for the texts known plain (`plain`; their canonical bytes are their characters, so
    the span needs no offset map). Ask `content_matches` for the others."""
    flags = np.zeros(len(texts), dtype=bool)
    named: dict[int, str] = {}
    best: dict[int, TextMatch] = {}
    ids = frozenset(index.instance_ids)
    ends = np.zeros(len(texts) + 1, dtype=np.int64)  # characters before each text: chunks by searchsorted
    lengths = texts.lengths() if isinstance(texts, ArrowTexts) else np.fromiter(map(len, texts), np.int64, len(texts))
    np.cumsum(lengths, out=ends[1:])
    chunk = KERNEL_CHUNK_BYTES if kernel() is not None else CHUNK_BYTES
    lo = 0
    while lo < len(texts):  # a chunk: texts from lo until `chunk` characters are reached (at least one)
        hi = min(max(int(np.searchsorted(ends, ends[lo] + chunk, side="left")), lo + 1), len(texts))
        f, n, b = _scan_chunk(texts[lo:hi], index, threshold, min_matched, ids,
                              None if plain is None else plain[lo:hi])
        flags[lo:hi] = f
        named.update({lo + d: v for d, v in n.items()})
        if plain is not None:
            best.update({lo + d: m for d, m in b.items() if plain[lo + d]})
        lo = hi
    return flags, named, best


def batch_flags(texts: list[str], index: FingerprintIndex, threshold: float = DEFAULT_THRESHOLD,
                min_matched: int = DEFAULT_MIN_MATCHED) -> np.ndarray:
    """Per text: whether `content_matches(text, index, …)` finds anything (see `batch_scan`)."""
    return batch_scan(texts, index, threshold, min_matched)[0]


def _word_mask(b: np.ndarray) -> np.ndarray:
    """Per byte of lowered canonical bytes: a word byte (``[0-9a-z_]`` or non-ASCII, as `ngrams._IS_WORD`)? A few
    uint8 comparisons (SIMD) cost half of a `bytes.translate` table pass."""
    t = np.subtract(b, 97, dtype=np.uint8)  # wraps: < 26 exactly for a-z
    w = t < 26
    np.subtract(b, 48, out=t)
    w |= t < 10
    w |= b >= 0x80
    w |= b == 0x5F
    return w


def _canonical_buffer(texts: list[str], plain=None) -> tuple[bytes, np.ndarray]:
    """(b"\\n" + the canonical bytes of every text, each followed by b"\\n"; where each text's bytes start after
    the lead). The newlines keep words and lines inside one document; the lead makes the changes of the word mask
    between neighbouring bytes the word edges. The kernel makes the canonical bytes of plain and `per_code_point`
    texts (most non-ASCII ones) while it copies them, asking `code_point_fate` once per distinct code point; the
    others get `canonical_bytes`. `plain` (optional, per text): known plain, so not checked again."""
    native = kernel()
    if native is not None and isinstance(texts, ArrowTexts):  # plain rows straight from the Arrow buffer
        originals = [None if p else texts[k] for k, p in enumerate(texts.plain.tolist())]
        parts = [None if t is None else _kernel_part(t) for t in originals]
        buf, doc_start = native.join_canonical(parts, code_point_fate, canonical_bytes, originals,
                                               texts.kernel_rows())
        return buf, np.frombuffer(doc_start, dtype=np.int64)
    if native is not None:
        if plain is None:
            parts = [_kernel_part(t) for t in texts]
        else:  # (a list: indexing a numpy bool array per text costs more than the test)
            parts = [t if p else _kernel_part(t) for t, p in zip(texts, plain.tolist() if hasattr(plain, "tolist")
                                                                  else plain)]
        buf, doc_start = native.join_canonical(parts, code_point_fate, canonical_bytes,
                                               texts if isinstance(texts, list) else list(texts))
        return buf, np.frombuffer(doc_start, dtype=np.int64)
    texts = list(texts)
    if plain is None:
        parts = [canonical_bytes(t) for t in texts]  # lowered already
    else:
        parts = [t.encode("ascii") if p else canonical_bytes(t) for t, p in zip(texts, plain)]
    doc_start = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(np.fromiter((len(p) + 1 for p in parts), dtype=np.int64, count=len(parts)), out=doc_start[1:])
    parts.append(b"")
    buf = b"\n" + b"\n".join(parts)
    return (buf if plain is None else buf.lower()), doc_start


def _kernel_part(text: str) -> str | bytes:
    """What `join_canonical` takes for `text`: its `per_code_point` form, or its canonical bytes."""
    part = per_code_point(text)
    return canonical_bytes(text) if part is None else part


def kernel():
    """The compiled scan kernel (`datakit/decontam/_scan.c`, built at install when a C compiler is there), or None:
    not built on this machine (logged once), or turned off with ``DATAKIT_NO_NATIVE=1``. Both paths give the same
    hashes and hits (tests/test_decontam_kernel.py); the kernel does in one pass what numpy does in ~15."""
    global _KERNEL
    if os.environ.get("DATAKIT_NO_NATIVE", "") not in ("", "0"):
        return None
    if _KERNEL is None:
        try:
            from . import _scan as _KERNEL
        except ImportError as e:
            from loguru import logger

            _KERNEL = False
            logger.info(f"decontam: no compiled scan kernel ({e}); the numpy path (same results, ~1.5x the CPU)")
    return _KERNEL or None


_KERNEL = None  # the module, False when it cannot be imported, None before the first try


def _hits_numpy(buf: bytes, doc_start: np.ndarray, index: FingerprintIndex):
    """(document, position in index.hashes, byte start of the first word, byte end of the last word) of every
    window of `index.n` words of the canonical buffer that is in the index, in window order (the kernel's
    `scan_hits`, in numpy)."""
    none = (np.empty(0, np.int64),) * 4
    full = np.frombuffer(buf, dtype=np.uint8)
    w = _word_mask(full)
    edges = np.flatnonzero(w[1:] ^ w[:-1])  # bool: numpy's fast nonzero
    if len(edges) == 0:
        return none
    b = full[1:]
    starts, ends = edges[0::2], edges[1::2]
    wh = _word_hashes_spans(b, starts, ends, edges)
    first_word = np.searchsorted(starts, doc_start[:-1])  # per document: its first word
    drop = line_number_words(b, starts, ends)  # (a document start is a line start: the newline before it)
    if len(drop):
        keep = np.ones(len(wh), dtype=bool)
        keep[drop] = False
        wh, starts, ends = wh[keep], starts[keep], ends[keep]
        first_word -= np.searchsorted(drop, first_word)
    n = index.n
    if len(wh) < n:
        return none
    at, pos = _lookup(index, window_hashes(wh, n))
    if not len(at):
        return none
    d = np.searchsorted(first_word, at, side="right") - 1
    ok = d == np.searchsorted(first_word, at + (n - 1), side="right") - 1  # the window lies in one document
    at, pos, d = at[ok], pos[ok], d[ok]
    return d, pos, starts[at], ends[at + (n - 1)]


def _hits_native(native, buf: bytes, doc_start: np.ndarray, index: FingerprintIndex):
    """(`_hits_numpy` by the compiled kernel, the documents that may name an instance), in one pass (no copy of the
    buffer: it reads the bytes after the lead in place)."""
    bits, shift = index.prefilter()
    hits, cands = native.scan_hits(memoryview(buf)[1:], doc_start, index.n, bits, shift, index.hashes,
                                   index.buckets(), index.BUCKET_SHIFT)
    rec = np.frombuffer(hits, dtype=np.int64).reshape(-1, 4)
    return (rec[:, 0], rec[:, 1], rec[:, 2], rec[:, 3]), np.frombuffer(cands, dtype=np.int64)


_ONE_DOC = np.zeros(1, dtype=np.int64)


def _named(buf: bytes, doc_start: np.ndarray, ids: frozenset[str], docs=None) -> dict[int, str]:
    """{document: the Verified instance id it names}, looked for in `docs` only when given (the kernel's
    candidates: every document where the id pattern can match), else in the whole buffer."""
    if docs is None:
        return {d: v[0] for d, v in instance_ids_in(buf, doc_start + 1, ids).items()} if b"__" in buf else {}
    out = {}
    for d in docs.tolist():
        found = instance_ids_in(buf[doc_start[d] + 1: doc_start[d + 1] + 1], _ONE_DOC, ids)
        if found:
            out[d] = found[0][0]
    return out


def _scan_chunk(texts, index, threshold, min_matched, ids, plain=None) -> tuple[np.ndarray, dict[int, str], dict]:
    out = np.zeros(len(texts), dtype=bool)
    buf, doc_start = _canonical_buffer(texts, plain)
    native = kernel()
    if native is not None and len(index.hashes) and not len(index.short_items):
        (d, pos_, w_start, w_end), cands = _hits_native(native, buf, doc_start, index)
        named = _named(buf, doc_start, ids, cands)
    else:
        named = _named(buf, doc_start, ids)
        if not len(index.hashes):
            return out, named, {}
        if len(index.short_items):  # (none in Verified) decided per text
            return np.array([bool(content_matches(t, index, threshold, min_matched)) for t in texts]), named, {}
        d, pos_, w_start, w_end = _hits_numpy(buf, doc_start, index)
    if not len(d):
        return out, named, {}
    nh = len(index.hashes)
    pair = np.unique(d * nh + pos_, return_index=True)[1]  # the first hit of each distinct (doc, n-gram)
    d_u, pos_u = d[pair], pos_[pair]
    n_items = index.item_sizes.size
    key = d_u * n_items + index.owner[pos_u].astype(np.int64) * 3 + index.field[pos_u]
    keys, matched = np.unique(key, return_counts=True)
    sizes = index.item_sizes.reshape(-1)[keys % n_items]
    hit = ((matched / np.maximum(sizes, 1)) >= threshold) | (matched >= min_matched)
    out[keys[hit] // n_items] = True  # (np.unique here would import numpy.ma: 40 ms of start-up)
    if not hit.any():
        return out, named, {}
    # per flagged document its strongest match, ranked as the per-text path ranks them (score capped at 1, then
    # matched n-grams, then the first instance and field), spanning its first to its last matched n-gram (hits
    # are in window order, so the least and greatest hit number are the first and last window)
    group = np.searchsorted(keys, key)
    first = np.full(len(keys), len(d), dtype=np.int64)
    last = np.full(len(keys), -1, dtype=np.int64)
    np.minimum.at(first, group, pair)
    np.maximum.at(last, group, pair)
    score = matched / np.maximum(sizes, 1)
    best: dict[int, TextMatch] = {}
    for j in np.flatnonzero(hit).tolist():  # keys ascending: by document, then instance and field
        doc, item = divmod(int(keys[j]), n_items)
        s, m = min(float(score[j]), 1.0), int(matched[j])
        if doc in best and (s, m) <= (best[doc].score, best[doc].matched_ngrams):
            continue
        owner, f = divmod(item, 3)
        best[doc] = TextMatch(index.instance_ids[owner], index.repos[owner], FIELDS[f], s, m,
                              int(w_start[first[j]] - doc_start[doc]), int(w_end[last[j]] - doc_start[doc]))
    return out, named, best
