"""The one normalisation every hashed text goes through, reference (index build) and samples alike.

`canonical(text)` returns the lowered UTF-8 bytes that `datakit.decontam.ngrams` splits into words, and a map from
those bytes back to character offsets of the original text (so a matched span still points into the sample):

1. HTML entities unescaped (``&quot;`` ``&lt;`` ``&amp;`` ``&#39;`` ``&nbsp;`` …): otherwise ``&quot;`` becomes the
   *word* "quot" and breaks every n-gram around it (issue text scraped from HTML, GitHub's API for some fields);
2. NFKC (full-width letters, ligatures, superscripts, the no-break and other compatibility spaces);
3. typographic quotes, primes and dashes folded to ASCII (word processors, Markdown renderers), zero-width
   characters (ZWSP, ZWNJ, ZWJ, word joiner, BOM, soft hyphen) removed, so ``foo\u200bbar`` is ``foobar``;
4. Markdown backslash escapes removed (``my\\_var`` is ``my_var``). Only ``\\_`` changes any word: every other
   escapable character is punctuation, which the word splitter drops anyway;
5. line-number prefixes of code views dropped (`line_number_words`, at the word level: ``190:`` / ``   190\\t``
   / ``190 |`` at the start of a line, as agent tools and ``cat -n`` / ``grep -n`` show files), so a gold hunk
   shown with line numbers hashes like the hunk. Diff ``+``/``-``/`` `` markers need nothing: the word splitter
   drops punctuation and whitespace (see `datakit.decontam.ngrams`).

Every step keeps the text's length where it can (an entity becomes its character padded with NULs, a removed
character becomes a NUL), and NUL bytes are deleted last, so one index array maps canonical bytes to original
characters. Plain ASCII without ``&``, ``\\_`` or NUL (most code) takes a fast path that copies nothing but the
lowered bytes. The batch path of the stage goes further with the scan kernel: a text without entity or NUL, once
NFKC (`per_code_point`), is a map of its code points (`code_point_fate`), which the kernel applies while it copies.
"""

from __future__ import annotations

import html
import html.entities
import re
import unicodedata

import numpy as np

__all__ = ["canonical", "canonical_bytes", "canonical_text", "is_plain", "line_number_words", "lines_are_separable",
           "FOLD", "code_point_fate", "per_code_point"]

# typographic punctuation → ASCII; invisible characters → NUL (deleted after encoding)
FOLD = {
    **{ord(c): "'" for c in "\u2018\u2019\u201a\u201b\u2032\u2035\u00b4"},
    **{ord(c): '"' for c in "\u201c\u201d\u201e\u201f\u2033\u2036\u00ab\u00bb"},
    **{ord(c): "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043\ufe58\ufe63\uff0d"},
    **{ord(c): " " for c in "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f"
                           "\u205f\u3000\u2028\u2029\u0085"},
    **{ord(c): "\x00" for c in "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"},
    ord("\u2026"): ".",
}
_FOLD_CHARS = re.compile("[" + "".join(re.escape(chr(c)) for c in FOLD) + "]")
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
# a run of non-ASCII characters with the ASCII letter before it (so a combining accent composes with it)
_NON_ASCII_RUN = re.compile(r"[A-Za-z]?[^\x00-\x7f]+")

_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[ord("0"): ord("9") + 1] = True
_AFTER_NUMBER = np.zeros(256, dtype=bool)  # what follows a line number: "190:", "190\t", "190 |", "190|"
for _c in b":\t|":
    _AFTER_NUMBER[_c] = True
_INDENT = np.zeros(256, dtype=bool)  # what may precede it on its line: indentation, a diff or quote marker
for _c in b" \t+->":
    _INDENT[_c] = True
MAX_LINE_NUMBER_DIGITS = 7
MAX_INDENT = 12


def _unescape_entities(s: str) -> str:
    """Each entity → its text, padded with NULs to the entity's length (so offsets do not move)."""
    def one(m: re.Match) -> str:
        raw = m.group()
        if raw[1] != "#" and raw[1:] not in html.entities.html5:
            return raw  # "&notanentity;" is not "¬anentity;" (html.unescape also takes prefixes)
        out = html.unescape(raw)
        if out == raw or len(out) > len(raw):
            return raw
        return out + "\x00" * (len(raw) - len(out))

    return _ENTITY.sub(one, s)


def _nfkc(s: str) -> tuple[str, np.ndarray | None]:
    """NFKC by non-ASCII runs, with the map output char → input char (None when the length did not change)."""
    if unicodedata.is_normalized("NFKC", s):
        return s, None
    whole = unicodedata.normalize("NFKC", s)
    if len(whole) == len(s):  # character for character (no-break spaces, full-width letters, µ): no map needed
        return whole, None
    parts, cmap, last = [], [], 0
    for m in _NON_ASCII_RUN.finditer(s):
        a, e = m.span()
        run = unicodedata.normalize("NFKC", m.group())
        parts.append(s[last:a])
        cmap.append(np.arange(last, a, dtype=np.int64))
        parts.append(run)
        if len(run) == e - a:
            cmap.append(np.arange(a, e, dtype=np.int64))
        else:  # spread the run's output over its input characters
            cmap.append(a + (np.arange(len(run), dtype=np.int64) * (e - a)) // max(len(run), 1))
        last = e
    parts.append(s[last:])
    cmap.append(np.arange(last, len(s), dtype=np.int64))
    out = "".join(parts)
    return out, (np.concatenate(cmap) if len(out) != len(s) else None)


def _nfkc_text(s: str) -> str:
    """`_nfkc(s)[0]` without the map (the batch path): the same runs, normalised by one `re.sub`."""
    if unicodedata.is_normalized("NFKC", s):
        return s
    whole = unicodedata.normalize("NFKC", s)
    if len(whole) == len(s):
        return whole
    return _NON_ASCII_RUN.sub(lambda m: unicodedata.normalize("NFKC", m.group()), s)


def is_plain(text: str) -> bool:
    """ASCII with nothing to normalise (no entity, no ``\\_``, no NUL): canonical() is just the lowered bytes."""
    return (text.isascii() and "\\_" not in text and "\x00" not in text
            and ("&" not in text or _ENTITY.search(text) is None))


def per_code_point(text: str) -> str | None:
    """`text` after the steps of `canonical_text` that are not a map of single code points (entities, NFKC), when
    the rest is one (what the scan kernel's `join_canonical` computes, asking `code_point_fate` per code point);
    None when it is not: a NUL (deleted last, after the escape rule) or an HTML entity. An NFKC text is returned as
    it is; another one as `_nfkc_text` makes it (no-break spaces, full-width letters, ligatures)."""
    if "\x00" in text or ("&" in text and _ENTITY.search(text) is not None):
        return None
    if text.isascii() or unicodedata.is_normalized("NFKC", text):
        return text
    return _nfkc_text(text)


def code_point_fate(cp: int) -> int:
    """What a non-ASCII code point of a `per_code_point` result becomes in its canonical bytes: 0 deleted (a
    zero-width character), else the one code point it becomes (FOLD, then `str.lower`), or -1 when the text must
    take `canonical_bytes` instead: a lowering to several characters (canonical_text then keeps the whole text
    unlowered), the capital sigma (lowered by its context), a lone surrogate."""
    if cp in FOLD:
        return ord(FOLD[cp])
    if cp == 0x03A3 or 0xD800 <= cp <= 0xDFFF:
        return -1
    low = chr(cp).lower()
    return ord(low) if len(low) == 1 else -1


def canonical_text(text: str, offsets: bool = True) -> tuple[str, np.ndarray | None]:
    """Steps 1-3 on the string (NULs still in): the text, and its char → original char map (None: identity;
    always None with `offsets=False`, which skips building it)."""
    s = text
    if "&" in s:
        s = _unescape_entities(s)
    cmap = None
    if not s.isascii():
        if offsets:
            s, cmap = _nfkc(s)
        else:
            s = _nfkc_text(s)
        if _FOLD_CHARS.search(s):  # a few such characters in a long text: sub is faster than translate
            s = _FOLD_CHARS.sub(lambda m: FOLD[ord(m.group())], s)
        low = s.lower()
        if len(low) == len(s):  # lower() may lengthen a character ("İ"); keep offsets, fold ASCII below
            s = low
    return s, cmap


def canonical(text: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(lowered canonical UTF-8 bytes as uint8, map) where map[j] is the original character offset of byte j
    (len(bytes) + 1 entries, the last = len(text)); map is None when bytes and characters coincide."""
    if is_plain(text):
        return np.frombuffer(text.encode("ascii").lower(), dtype=np.uint8), None
    s, cmap = canonical_text(text)
    raw = s.encode("utf-8", "surrogatepass").lower()
    b = np.frombuffer(raw, dtype=np.uint8)
    if len(raw) == len(s):
        bmap = None
    else:
        bmap = np.empty(len(b) + 1, dtype=np.int64)
        np.cumsum((b & 0xC0) != 0x80, out=bmap[:-1])
        bmap[:-1] -= 1  # byte j belongs to character (lead bytes up to and including j) - 1
        bmap[-1] = len(s)
    drop = b == 0
    if b"\\_" in raw:
        drop[:-1] |= (b[:-1] == 0x5C) & (b[1:] == 0x5F)
    if cmap is not None:
        cmap = np.append(cmap, len(text))
        bmap = cmap[bmap] if bmap is not None else cmap
    if drop.any():
        keep = np.flatnonzero(~drop)
        if bmap is None:
            bmap = np.arange(len(b) + 1, dtype=np.int64)
        bmap = np.append(bmap[keep], bmap[-1])
        b = b[keep]
    return b, bmap


def canonical_bytes(text: str) -> bytes:
    """`canonical(text)[0]` as bytes, without the offset map (what the batch path hashes)."""
    if is_plain(text):
        return text.encode("ascii").lower()
    s, _ = canonical_text(text, offsets=False)
    raw = s.encode("utf-8", "surrogatepass").lower()
    if b"\\_" in raw:
        raw = raw.replace(b"\\_", b"_")
    return raw.replace(b"\x00", b"") if b"\x00" in raw else raw


# str.splitlines breaks lines at these too (and at a lone CR); canonical keeps them as they are, not as "\n"
_OTHER_LINE_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def lines_are_separable(text: str) -> bool:
    """Whether the words of each line of `text.splitlines()`, canonical on its own, are hash for hash the words
    between the newlines of `canonical(text)` (so the index build can take a line's words from one pass over the
    text). Not when `text` breaks lines otherwise than by LF or CRLF, holds an entity (one may decode to a
    newline), or a character whose lower case is longer, or that composes into one (U+0130; "I" + U+0307): with
    one, canonical lowers only the ASCII of the whole text, but all of its other lines on their own."""
    if _OTHER_LINE_BREAKS.search(text.replace("\r\n", "\n") if "\r" in text else text):
        return False
    if "&" in text and _ENTITY.search(text):
        return False
    return text.isascii() or ("\u0307" not in text and len(text.lower()) == len(text))


def line_number_words(b: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                      floor: np.ndarray | None = None) -> np.ndarray:
    """Indices of the words that are line-number prefixes: all digits (≤ 7), followed by ``:``, a tab or ``|``
    (optionally after one space), preceded on their line only by indentation or a ``+``/``-``/``>`` marker.
    `floor` (per word, optional): where the word's document starts in `b` (a document start is a line start)."""
    if len(starts) == 0:
        return np.empty(0, np.int64)
    cand = np.flatnonzero(np.subtract(b[starts], 48, dtype=np.uint8) < 10)  # digit first (uint8 wraps)
    cand = cand[(ends[cand] - starts[cand]) <= MAX_LINE_NUMBER_DIGITS]
    if len(cand) == 0:
        return cand
    e = ends[cand]

    def at(i: np.ndarray) -> np.ndarray:  # b[i], a newline past its end (no padded copy of b)
        return np.where(i < len(b), np.take(b, i, mode="clip"), 0x0A)

    after = at(e)
    ok = _AFTER_NUMBER[after] | ((after == 0x20) & (at(e + 1) == ord("|")))
    cand, e = cand[ok], e[ok]
    if len(cand) == 0:
        return cand
    s = starts[cand]
    ok = np.ones(len(cand), dtype=bool)
    for k in range(1, MAX_LINE_NUMBER_DIGITS):  # every byte of the word is a digit
        inside = k < (e - s)
        ok &= ~inside | _DIGIT[at(s + k)]
    cand, s = cand[ok], s[ok]
    lo = floor[cand] if floor is not None else np.zeros(len(cand), dtype=np.int64)
    at_line_start = np.zeros(len(cand), dtype=bool)
    pos = s - 1
    alive = np.ones(len(cand), dtype=bool)
    for _ in range(MAX_INDENT + 1):
        before = np.where(pos >= lo, b[np.maximum(pos, 0)], 0x0A)
        newline = alive & (before == 0x0A)
        at_line_start |= newline
        alive &= ~newline & _INDENT[before]
        pos -= 1
        if not alive.any():
            break
    return cand[at_line_start]
