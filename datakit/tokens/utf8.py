"""Which UTF-8 texts can go to the engine as their bytes: those NFC leaves as they are (Qwen2.5 normalises with
NFC before it splits), found by one pass over the bytes (`_utf8.c`) instead of decoding each text to a str,
normalising it and letting the engine encode it back to UTF-8 (~5.7 ns per byte; most long documents hold some
non-ASCII character, so most go that way).

A code point is *NFC-stable* when NFC leaves it as it is wherever it stands: its NFC quick check is Yes (it is
not a composition exclusion or singleton, "No", and never the second character of a canonical composition,
"Maybe") and its canonical combining class is 0 (no reordering). A string of stable code points is its own NFC
(the quick check of UAX #15 answers Yes for it). The table covers U+0000..U+1FFFF (every script in use, emoji);
anything above, and anything not stable, takes the str path, as does every text where the kernel is not built.

The table follows this interpreter's `unicodedata` (the NFC the stage applies otherwise): shipped in
`datakit/data/nfc_stable_<unidata_version>.bin` for the versions it was built for, computed (~0.35 CPU s) and
cached in datakit's cache folder for any other. tests/test_utf8_stable.py recomputes it and checks the kernel
against Python's decoder; tests/test_tokenizer_engines.py checks the ids of texts given as bytes against the same
texts as str on every engine.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path

TABLE_CODE_POINTS = 0x20000
_DATA = Path(__file__).resolve().parent.parent / "data"


def compute_table() -> bytes:
    """The bitmap of NFC-stable code points below TABLE_CODE_POINTS (bit cp & 7 of byte cp >> 3)."""
    maybe = set()  # second characters of canonical compositions: NFC may join them with what precedes them
    for cp in range(0x110000):
        decomposition = unicodedata.decomposition(chr(cp))
        if decomposition and not decomposition.startswith("<"):
            parts = decomposition.split()
            maybe.update(int(p, 16) for p in parts[1:])
    maybe.update(range(0x1161, 0x1176))  # Hangul vowels and trailing consonants: composed algorithmically
    maybe.update(range(0x11A8, 0x11C3))
    table = bytearray(TABLE_CODE_POINTS // 8)
    for cp in range(TABLE_CODE_POINTS):
        if 0xD800 <= cp <= 0xDFFF or cp in maybe:
            continue
        c = chr(cp)
        if unicodedata.combining(c) == 0 and unicodedata.is_normalized("NFC", c):
            table[cp >> 3] |= 1 << (cp & 7)
    return bytes(table)


def table_path() -> Path:
    return _DATA / f"nfc_stable_{unicodedata.unidata_version}.bin"


@lru_cache(maxsize=1)
def stable_table() -> bytes:
    """This interpreter's table: shipped, cached, or computed and cached."""
    shipped = table_path()
    if shipped.is_file():
        return shipped.read_bytes()
    from datakit.tokens.tokenizer import _cache_dir

    cached = _cache_dir() / shipped.name
    if cached.is_file() and cached.stat().st_size == TABLE_CODE_POINTS // 8:
        return cached.read_bytes()
    table = compute_table()
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(cached.name + ".tmp")
        tmp.write_bytes(table)
        tmp.replace(cached)
    except OSError:  # a read-only home: computed again next time
        pass
    return table


try:
    from datakit.tokens._utf8 import stable as _stable
except ImportError:  # the kernel is not built (no C compiler at install): ASCII texts only, as before
    _stable = None


def stable_texts(texts) -> bytes | list[bool]:
    """Per text, whether it is bytes that are exactly the UTF-8 of a non-empty, NUL-free text NFC leaves as it
    is: it may go to the engine as it is. False for a str, None, or bytes to check and normalise in Python."""
    if _stable is not None:
        return _stable(texts, stable_table())
    return [type(t) is bytes and bool(t) and t.isascii() and b"\0" not in t for t in texts]
