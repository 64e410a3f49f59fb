"""Word n-gram fingerprints of text, computed with numpy (no per-token or per-n-gram Python loop).

Normalisation: every text first goes through `datakit.decontam.normalize.canonical` (HTML entities, NFKC,
typographic quotes and dashes, zero-width characters, Markdown escapes; line-number prefixes are dropped as words),
one function for the index build and the samples (`text_words` is the entry point). Then:
- ASCII case folding (and Unicode lowering when it keeps the text's length, so character offsets still map back);
- CRLF / CR → LF and every whitespace run collapsed: the hashes only see *words*, so any change of whitespace,
  line endings or indentation between two words leaves every hash unchanged.

Words are maximal runs of ``[0-9a-z_]`` and non-ASCII bytes (UTF-8 letters stay inside their word); every other
byte (punctuation, operators, brackets, quotes, whitespace) is a separator and is **dropped**, not a token. Why
dropped rather than kept as one-character tokens:
- a gold patch reaches a training sample re-rendered: its ``+``/``-``/`` `` line prefixes disappear in a
  SEARCH/REPLACE block or in a file's content, markdown adds backticks and ``>`` quotes, a reformatter changes
  ``(a, b)`` into ``(a,b)``; dropping punctuation makes all of these hash identically;
- code is ~40% punctuation: keeping it as tokens would make a 13-token window cover a few identifiers only and
  would make boilerplate (``)):``, ``self.``) dominate the n-grams;
- the cost is that ``a.b(c)`` and ``a b c`` collide, which only matters with 13 words in a row, i.e. never by
  chance; boilerplate is handled by the index (see `datakit.decontam.index`).

Hashes (deterministic on every platform and process; no Python ``hash``): all arithmetic is uint64 with
wrapping; byte order does not matter since only byte values enter.
1. Bytes b_j (lowered) get the polynomial prefix sums S[i] = Σ_{j<i} b_j·B^j mod 2^64 with an odd base B, so a word
   [s, e) hashes to (S[e] − S[s])·B^(−s) = Σ b_j·B^(j−s): independent of where the word sits (B is odd, so it is
   invertible mod 2^64). The word value is then mixed with the splitmix64 finaliser.
2. The same construction over the word hashes with a second odd base C gives each window of n words the value
   Σ w_{i+k}·C^k, which is mixed again together with n (so different n never share values).
Powers of B, C and their inverses are cached tables, grown by doubling.
"""

from __future__ import annotations

import re
import threading

import numpy as np

from .normalize import canonical, line_number_words

__all__ = ["normalize", "word_spans", "ngram_hashes", "word_hashes", "window_hashes", "encode", "splitmix64",
           "text_words", "canonical_words", "run_hashes", "to_chars"]

_MASK = (1 << 64) - 1
BYTE_BASE = 0x100000001B3 * 2 + 1  # odd (FNV prime doubled + 1): per-byte polynomial base
WORD_BASE = 0x9E3779B97F4A7C15  # odd (golden ratio): per-word polynomial base
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = 0x9E3779B97F4A7C15

_IS_WORD = np.zeros(256, dtype=bool)
for _c in b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_":
    _IS_WORD[_c] = True
_IS_WORD[0x80:] = True
_WS = re.compile(r"\s+")


def _inverse(b: int) -> int:
    """Inverse of an odd number mod 2^64 (Newton iteration)."""
    x = b
    for _ in range(6):
        x = (x * (2 - b * x)) & _MASK
    assert (x * b) & _MASK == 1
    return x


class _Powers:
    """Cached tables base^j and base^(-j) mod 2^64, j < len, grown by doubling (thread-safe)."""

    def __init__(self, base: int):
        self.base, self.inv = base, _inverse(base)
        self.pow = np.ones(1, dtype=np.uint64)
        self.ipow = np.ones(1, dtype=np.uint64)
        self._lock = threading.Lock()

    @staticmethod
    def _table(base: int, length: int) -> np.ndarray:
        t = np.empty(length, dtype=np.uint64)
        t.fill(np.uint64(base))  # (np.full with a Python int above 2**63 converts element by element)
        t[0] = 1
        return np.cumprod(t, out=t)  # wraps mod 2^64

    def get(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.pow) < length:
            with self._lock:
                if len(self.pow) < length:
                    size = max(length, 2 * len(self.pow), 1 << 16)
                    ipow = self._table(self.inv, size)
                    self.pow, self.ipow = self._table(self.base, size), ipow
        return self.pow, self.ipow


_BYTE_POW = _Powers(BYTE_BASE)
_WORD_POW = _Powers(WORD_BASE)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, vectorised, in place on a uint64 array (returned)."""
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    return x


def normalize(text: str) -> str:
    """Lower-cased, CRLF/CR → LF, every whitespace run collapsed to one space (newline runs to one newline),
    stripped. Hashing `normalize(t)` gives the same hashes as hashing `t` (offsets differ)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").lower()
    return _WS.sub(lambda m: "\n" if "\n" in m.group() else " ", text).strip()


def encode(text: str) -> np.ndarray:
    """The canonical lowered UTF-8 bytes of `text` as uint8 (`datakit.decontam.normalize.canonical`)."""
    return canonical(text)[0]


def _spans(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = np.zeros(len(b) + 2, dtype=bool)
    np.take(_IS_WORD, b, out=w[1:-1])
    edges = np.flatnonzero(w[1:] != w[:-1])
    return edges[0::2], edges[1::2]


def word_spans(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Word boundaries of `text` as (starts, ends) *character* offsets into `text` (line-number prefixes left
    out)."""
    _, starts, ends, bmap = text_words(text)
    return to_chars(bmap, starts, ends)


def _word_hashes_bytes(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    starts, ends = _spans(b)
    return _word_hashes_spans(b, starts, ends), starts, ends


def _word_hashes_spans(b: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                       edges: np.ndarray | None = None) -> np.ndarray:
    """uint64 hash per word [starts[i], ends[i]) of the bytes `b`. `edges`, when given, is starts and ends
    interleaved (what the batch path has): one gather instead of two."""
    if len(starts) == 0:
        return np.empty(0, np.uint64)
    L = int(ends[-1])
    pw, ipw = _BYTE_POW.get(L + 1)
    s = np.zeros(L + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        np.multiply(b[:L], pw[:L], out=s[1:], casting="unsafe")
        np.cumsum(s, out=s)
        if edges is not None:
            at = np.take(s, edges)
            h = at[1::2] - at[0::2]
        else:
            h = np.take(s, ends)
            h -= np.take(s, starts)
        h *= np.take(ipw, starts)
        h += np.uint64(1)  # so that no word maps to 0 before mixing
    return splitmix64(h)


def text_words(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(hashes uint64, starts, ends, map) per word of `canonical(text)`, line-number prefix words left out.
    starts/ends are byte offsets into the canonical bytes; `to_chars(map, starts, ends)` maps them back to
    characters of `text`. The one entry point for the index build and for samples."""
    return canonical_words(text)[1:]


def canonical_words(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(canonical bytes, *`text_words(text)`): for callers that also look at the bytes (the index build)."""
    b, bmap = canonical(text)
    wh, starts, ends = _word_hashes_bytes(b)
    drop = line_number_words(b, starts, ends)
    if len(drop):
        wh, starts, ends = np.delete(wh, drop), np.delete(starts, drop), np.delete(ends, drop)
    return b, wh, starts, ends, bmap


def to_chars(bmap: np.ndarray | None, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical byte offsets [start, end) → character offsets into the original text."""
    starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    if bmap is None:
        return starts, ends
    # the end is where the next kept byte starts, so a word ending in an entity or before a removed character
    # ends after it in the original text
    return bmap[starts], np.maximum(bmap[ends], np.where(ends > 0, bmap[np.maximum(ends - 1, 0)] + 1, 0))


def word_hashes(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hashes uint64, starts, ends) per word of `text` (character offsets)."""
    wh, starts, ends, bmap = text_words(text)
    return (wh, *to_chars(bmap, starts, ends))


def _word_prefix_sums(wh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, inverse powers of C): T[i] = Σ_{j<i} wh_j·C^j mod 2^64, so words [a, a + k) as one window are
    (T[a + k] − T[a])·C^(−a), before the length is mixed in."""
    pw, ipw = _WORD_POW.get(len(wh) + 1)
    t = np.zeros(len(wh) + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        np.multiply(wh, pw[: len(wh)], out=t[1:])
        np.cumsum(t, out=t)
    return t, ipw


def window_hashes(wh: np.ndarray, n: int) -> np.ndarray:
    """uint64 hash of every window of `n` consecutive word hashes (len(wh) − n + 1 values, or none)."""
    m = len(wh) - n + 1
    if m <= 0 or n <= 0:
        return np.empty(0, np.uint64)
    t, ipw = _word_prefix_sums(wh)
    with np.errstate(over="ignore"):
        g = t[n:] - t[:m]
        g *= ipw[:m]
        g += np.uint64((n * _GOLDEN) & _MASK)
    return splitmix64(g)


def run_hashes(wh: np.ndarray, first: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """`window_hashes(wh[a:a + k], k)[0]` for every run (a, k) of `first` and `counts` (k ≥ 1) at once: the hash
    of each run of words as one window (the index build hashes a text's lines this way, from one pass over it)."""
    if len(first) == 0:
        return np.empty(0, np.uint64)
    t, ipw = _word_prefix_sums(wh)
    with np.errstate(over="ignore"):
        g = t[first + counts] - t[first]
        g *= ipw[first]
        g += counts.astype(np.uint64) * np.uint64(_GOLDEN)  # (k · golden) mod 2^64, as window_hashes adds it
    return splitmix64(g)


def ngram_hashes(text: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hashes uint64, starts, ends) for every window of `n` words of `text`; starts/ends are the character
    offsets of the window's first word start and last word end."""
    wh, starts, ends = word_hashes(text)
    return window_hashes(wh, n), starts[: max(len(wh) - n + 1, 0)], ends[n - 1:]
