"""Lines of a byte stream read in pieces, with a bound: a line longer than the limit is never held whole.

The readers of hour files (`datakit.sources.gharchive`) and of synthetic JSONL (`datakit.synth.readers`) split
decompressed pieces with this, so a huge single line (or a decompression bomb without newlines) costs memory of
the order of one piece, and is reported as what it is (`Oversized`: its size and first bytes) instead of read.
"""

from __future__ import annotations

from typing import Iterable, Iterator, NamedTuple

HEAD = 4096  # bytes of an over-long line kept for the report


class Oversized(NamedTuple):
    """A line longer than the limit: its size in bytes and its first HEAD bytes."""

    size: int
    head: bytes


class _Tail:
    """The line being assembled across pieces: its parts (joined once, not re-copied per piece) and size; past the
    limit only its first bytes are kept."""

    __slots__ = ("parts", "size", "limit")

    def __init__(self, limit: int):
        self.parts: list[bytes] = []
        self.size, self.limit = 0, limit

    def add(self, part: bytes) -> None:
        was = self.size
        self.size += len(part)
        if self.size <= self.limit:
            self.parts.append(part)
        elif was <= self.limit:  # just went over: keep only the start
            self.parts = [(b"".join(self.parts) + part[:HEAD])[:HEAD]]

    def take(self, last: bytes = b"") -> bytes | Oversized:
        self.add(last)
        size, self.size = self.size, 0
        line, self.parts = b"".join(self.parts), []
        return Oversized(size, line) if size > self.limit else line


def split_lines(pieces: Iterable[bytes], max_line_bytes: int) -> Iterator[bytes | Oversized]:
    """Every line of the concatenated pieces, without its "\\n" (empty ones included; a last line without a newline
    too), or `Oversized` for one longer than `max_line_bytes`. An exception from `pieces` propagates after the
    complete lines before it; the partial line at that point is not yielded."""
    tail = _Tail(max_line_bytes)
    for piece in pieces:
        lines: list = piece.split(b"\n")
        if len(lines) == 1:
            tail.add(piece)
            continue
        lines[0] = tail.take(lines[0])
        tail.add(lines.pop())
        if len(piece) > max_line_bytes:  # only then can a line inside one piece be too long
            lines = [ln if isinstance(ln, Oversized) or len(ln) <= max_line_bytes else Oversized(len(ln), ln[:HEAD])
                     for ln in lines]
        yield from lines
    if tail.size:
        yield tail.take()
