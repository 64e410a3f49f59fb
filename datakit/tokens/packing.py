"""Best-Fit-Decreasing packing of tokenized documents into fixed-length rows (DESIGN §5, `schemas/token_shard`).

Pure numpy, no I/O. The flow:

1. every `Document` (ids with the EOD already appended by the caller, a loss mask, its source and sample id) is
   cut by `chunk` into pieces of at most `seq_len` tokens: a document longer than `seq_len` becomes
   ``ceil(len / seq_len)`` chunks (all full but the last, the remainder); no token is dropped;
2. `pack` collects up to `window` chunks, places them with `best_fit_decreasing` (Ding et al. 2024, "Fewer
   Truncations Improve Language Modeling") into bins of capacity `seq_len`, emits one `PackedRow` per bin, and
   goes on with the next window. A chunk is never broken across rows; what a bin does not fill is padding
   (`eod_id`, loss 0) and the last segment of the row. With `carry` (the default) a window's bins that more
   than `CARRY_PADDING` of `seq_len` would leave as padding are not emitted: their chunks go back, emptiest bin
   first, into the next window (at most a quarter of a window's tokens and chunks), where new chunks can fill
   them; only the stream's last window emits every bin. So a small window pads about as little as a large one
   (the 2 GB benchmark: 0.33 % at 8 M tokens without carrying, 0.03 % at 2 M with it) and a chunk may be
   emitted some windows after its neighbours in the input. Bins holding a copy of an up-sampled document are
   never carried (their copies' distances are counted from the rows they are emitted in).

3. up-sampled documents (`Document.copies` > 1) are spread over the stream: copy 0 is packed where the document
   arrives; copy k+1 waits until `copy_gap` rows (default: the rows of one window, `window` or
   `max(window_tokens, COPY_GAP_TOKENS) // seq_len` if fewer) have been emitted after the last row of copy k, then joins the next
   window. So no row ever holds two copies of one document, and copies are at least `copy_gap` rows apart —
   except at the end of the stream, where nothing else is left to put between the last copies: there every
   waiting copy joins one last window (still one copy per document and row), and `PackStats` counts them
   (`copies_released_early`) and the smallest distance achieved (`min_copy_distance`). A waiting copy is held
   in memory: about (copies − 1) × copy_gap × seq_len × (the source's share of the stream) tokens, so with the
   default gap about 8 M tokens (`COPY_GAP_TOKENS`).

The result depends only on the input order (and `seq_len`, `window`, `copy_gap`): the same documents in the same
order give the same rows, byte for byte. A window is flushed between documents, never inside one. `Packer` does the same and keeps `PackStats` (rows, tokens, padding, per source).
`unpack_row` turns a row back into its segments.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Document",
    "PackedRow",
    "PackStats",
    "Packer",
    "best_fit_decreasing",
    "chunk",
    "pack",
    "unpack_row",
]


_INT32, _UINT8 = np.dtype(np.int32), np.dtype(np.uint8)
# a bin that would leave more than this share of its row as padding is carried into the next window
CARRY_PADDING = 0.01
# up-sampled copies are at least this many tokens' rows apart by default, whatever the window
COPY_GAP_TOKENS = 8_000_000


@dataclass
class Document:
    """One tokenized sample: `ids` (int32, EOD already appended by the caller), `loss_mask` (uint8, same length)."""

    ids: np.ndarray
    loss_mask: np.ndarray
    source: str
    sample_id: str
    copies: int = 1  # up-sampling: how many times the document goes into the stream (copy k named "{id}@{k}")

    def __post_init__(self) -> None:
        ids, mask = self.ids, self.loss_mask
        if (type(ids) is np.ndarray and type(mask) is np.ndarray and ids.dtype == _INT32 and mask.dtype == _UINT8
                and ids.ndim == 1 and mask.ndim == 1 and ids.shape == mask.shape):
            return  # the tokens step's documents: nothing to convert or check (a few µs per document)
        self.ids = np.asarray(self.ids)
        self.loss_mask = np.asarray(self.loss_mask)
        if self.ids.ndim != 1 or self.loss_mask.ndim != 1:
            raise ValueError(f"document {self.sample_id!r}: ids and loss_mask must be 1-D")
        if self.ids.shape != self.loss_mask.shape:
            raise ValueError(
                f"document {self.sample_id!r}: {len(self.ids)} ids but {len(self.loss_mask)} loss-mask entries"
            )
        if self.ids.dtype != np.int32:
            if self.ids.size and (self.ids.min() < 0 or self.ids.max() > np.iinfo(np.int32).max):
                raise ValueError(f"document {self.sample_id!r}: token ids do not fit int32")
            self.ids = self.ids.astype(np.int32)
        if self.loss_mask.dtype != np.uint8:
            self.loss_mask = self.loss_mask.astype(np.uint8)


@dataclass
class PackedRow:
    """One row of `schemas/token_shard.schema.json`."""

    input_ids: np.ndarray  # int32, len == seq_len
    doc_lens: np.ndarray  # int32, sums to seq_len; when padding > 0 the last entry is the padding
    loss_mask: np.ndarray  # uint8, len == seq_len, 0 on padding
    source: list[str]  # per segment, padding excluded
    sample_ids: list[str]
    chunk_index: list[int]
    padding: int
    repeat: list[int] = field(default_factory=list)  # per segment: which copy of its document (0 = the original)

    def as_record(self) -> dict[str, Any]:
        """The row as plain Python lists, the shape `token_shard.schema.json` describes (for Parquet writers)."""
        return {
            "input_ids": self.input_ids.tolist(),
            "doc_lens": self.doc_lens.tolist(),
            "loss_mask": self.loss_mask.tolist(),
            "source": list(self.source),
            "sample_ids": list(self.sample_ids),
            "chunk_index": list(self.chunk_index),
            "padding": int(self.padding),
            "repeat": list(self.repeat),
        }


@dataclass
class PackStats:
    """Counters over everything a `Packer` has packed. `tokens` counts document tokens (padding excluded)."""

    rows: int = 0
    documents: int = 0
    chunks: int = 0
    tokens: int = 0
    padding_tokens: int = 0
    per_source: dict[str, dict[str, int]] = field(default_factory=dict)
    copies_released_early: int = 0  # copies the stream's end released before copy_gap rows had passed
    min_copy_distance: int | None = None  # rows between consecutive copies of a document, the smallest seen
    max_window_tokens: int = 0  # the most tokens one window held: what bounds a task's memory

    @property
    def padding_ratio(self) -> float:
        """Padding tokens / all row tokens (0.0 when nothing was packed)."""
        total = self.tokens + self.padding_tokens
        return self.padding_tokens / total if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "documents": self.documents,
            "chunks": self.chunks,
            "tokens": self.tokens,
            "padding_tokens": self.padding_tokens,
            "padding_ratio": self.padding_ratio,
            "per_source": {k: dict(v) for k, v in sorted(self.per_source.items())},
            "copies_released_early": self.copies_released_early,
            "min_copy_distance": self.min_copy_distance,
            "max_window_tokens": self.max_window_tokens,
        }


def _check_seq_len(seq_len: int) -> int:
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)):
        raise TypeError(f"seq_len must be an integer, got {type(seq_len).__name__}")
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    return int(seq_len)


def chunk(doc: Document, seq_len: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Cut a document into (chunk_index, ids, mask) pieces of `seq_len` tokens, the last one the remainder.

    A document of at most `seq_len` tokens is one chunk (index 0); an empty document gives no chunk. The pieces
    are views of the document's arrays and concatenate back to it exactly.
    """
    seq_len = _check_seq_len(seq_len)
    if 0 < len(doc.ids) <= seq_len:  # most documents: one chunk, the document itself
        return [(0, doc.ids, doc.loss_mask)]
    starts = range(0, len(doc.ids), seq_len)
    return [(i, doc.ids[s : s + seq_len], doc.loss_mask[s : s + seq_len]) for i, s in enumerate(starts)]


def best_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Ding et al. 2024 ("Fewer Truncations Improve Language Modeling"): Best-Fit-Decreasing bin packing.

    Items are sorted by length descending (ties by index, so it is deterministic); each is placed in the bin whose
    remaining capacity is the smallest that still fits it (ties: the earliest-created such bin), a new bin
    otherwise. Bins are bucketed by remaining capacity (a min-heap of bin numbers per capacity) and the capacities
    that have a bin are kept sorted, so the smallest remaining capacity >= the item's length is one bisect (C), and
    a placement is O(log bins) plus a memmove over at most `capacity` distinct values, never a scan over bins.
    Returns bins of item indices, bins ordered by creation, items in placement order. Every length must be in
    1..capacity.
    """
    capacity = _check_seq_len(capacity)
    lens = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if lens.size == 0:
        return []
    bad = np.flatnonzero((lens < 1) | (lens > capacity))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"item {i} has length {int(lens[i])}, outside 1..{capacity}")
    order = np.argsort(-lens, kind="stable")  # descending length, ties by index

    caps: list[int] = []  # sorted remaining capacities that have at least one open bin
    buckets: dict[int, list[int]] = {}  # remaining capacity → heap of bin numbers
    bins: list[list[int]] = []
    heappush, heappop = heapq.heappush, heapq.heappop
    for item, length in zip(order.tolist(), lens[order].tolist()):
        at = bisect_left(caps, length)
        if at == len(caps):
            b = len(bins)
            bins.append([item])
            left = capacity - length
        else:
            r = caps[at]
            heap = buckets[r]
            b = heappop(heap)
            if not heap:
                del caps[at], buckets[r]
            bins[b].append(item)
            left = r - length
        if left > 0:  # a full bin never takes another item
            heap = buckets.get(left)
            if heap is None:
                buckets[left] = [b]
                insort(caps, left)
            else:
                heappush(heap, b)
    return bins


def _compact(item: tuple) -> tuple:
    """A carried chunk in arrays of its own: a view would keep its whole encoded batch (and the document that
    holds it) alive for as long as the chunk is carried, window after window. A plain mask (a zero-stride view
    of ones) takes no memory and stays as it is."""
    ci, ids, mask, source, sample_id, repeat, doc, prev_row = item
    if ids.base is None and (mask.base is None or mask.strides == (0,)):
        return item  # compacted when it was first carried
    ids = ids.copy()
    if mask.strides != (0,):
        mask = mask.copy()
    return (ci, ids, mask, source, sample_id, repeat, Document(ids, mask, source, sample_id), prev_row)


class Packer:
    """Streaming BFD packer that keeps `PackStats`; `pack(docs)` yields rows, `stats` counts what was packed.
    Up-sampled documents are spread as the module docstring says (`copy_gap` rows apart; default the rows of one
    window or of `COPY_GAP_TOKENS`); `carry` holds under-filled bins back for the next window."""

    def __init__(self, seq_len: int, eod_id: int, window: int = 100_000, copy_gap: int | None = None,
                 window_tokens: int | None = None,
                 row_buffer: Callable[[int], tuple[np.ndarray, np.ndarray]] | None = None, carry: bool = True) -> None:
        self.seq_len = _check_seq_len(seq_len)
        self.carry = bool(carry)
        # (ids, mask) arrays of seq_len to build the next row in, lent by its consumer (a shard writer's row
        # group block): a row is then made in place, not allocated and copied again. Such a row is the lender's:
        # valid until it reuses those arrays, so it must be consumed before the next one is asked for.
        self._row_buffer = row_buffer
        if window_tokens is not None and (isinstance(window_tokens, bool) or window_tokens < 1):
            raise ValueError(f"window_tokens must be an integer >= 1, got {window_tokens!r}")
        # a window also closes at this many tokens: with 32k-token documents 100,000 chunks would be ~16 GB
        self.window_tokens = int(window_tokens) if window_tokens is not None else None
        int_like = isinstance(eod_id, (int, np.integer)) and not isinstance(eod_id, bool)
        if not int_like or not 0 <= eod_id <= np.iinfo(np.int32).max:
            raise ValueError(f"eod_id must be an int32 token id >= 0, got {eod_id!r}")
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f"window must be an integer >= 1, got {window!r}")
        # default: the rows of one window or of COPY_GAP_TOKENS if more (a small window, which carrying lets pad
        # as little as a large one, must not bring copies closer), so a waiting copy is held about that many
        # tokens (the window in chunks alone, 100,000 rows of 32k tokens, would hold every copy of a task until
        # its end)
        gap_tokens = None if window_tokens is None else max(int(window_tokens), COPY_GAP_TOKENS)
        default_gap = window if gap_tokens is None else min(window, max(1, gap_tokens // self.seq_len))
        gap = default_gap if copy_gap is None else copy_gap
        if isinstance(gap, bool) or not isinstance(gap, (int, np.integer)) or gap < 1:
            raise ValueError(f"copy_gap must be an integer >= 1, got {copy_gap!r}")
        self.eod_id = int(eod_id)
        self.window = int(window)
        self.copy_gap = int(gap)
        self.stats = PackStats()
        # buffer: (chunk_index, ids, mask, source, sample_id, repeat, doc, previous copy's last row) per chunk
        self._buffer: list[tuple] = []
        # heap of (release row, order, repeat, previous copy's last row, document)
        self._waiting: list[tuple[int, int, int, int, Document]] = []
        self._order = 0
        self._held = 0  # tokens in the buffer
        self._carried: list[tuple] = []  # the chunks of the bins the last window held back

    def pack(self, docs: Iterable[Document]) -> Iterator[PackedRow]:
        """Yield packed rows; about `window` chunks are held at once (plus the copies waiting for their turn)."""
        for doc in docs:
            yield from self.feed(doc)
        yield from self.finish()

    def feed(self, doc: Document) -> Iterable[PackedRow]:
        """Push one document (taken at the call); returns the rows of the window it closes, if any, as an
        iterator that packs them as it is consumed: consume it before the next call. `feed` + `finish` let one
        stream fill several packers (a task's train and validation splits) without holding either split's
        documents."""
        n = len(doc.ids)
        seq_len = self.seq_len
        n_chunks = -(-n // seq_len)
        self._count_document(doc, n, n_chunks)
        if 0 < n <= seq_len:  # most documents: one chunk, the document itself (what `chunk` gives, without a call)
            self._buffer.append((0, doc.ids, doc.loss_mask, doc.source, doc.sample_id, 0, doc, -1))
        else:
            self._add(self._buffer, doc, 0, -1)
        self._held += n
        if len(self._buffer) >= self.window or (self.window_tokens is not None and self._held >= self.window_tokens):
            return self._close_window()
        return ()

    def _close_window(self) -> Iterator[PackedRow]:
        yield from self._flush(self._buffer, self._waiting, carry=self.carry)
        self._buffer = self._carried + self._released(self._waiting)
        self._carried = []
        self._held = sum(len(c[1]) for c in self._buffer)

    def finish(self) -> Iterator[PackedRow]:
        """The rows of what is still held: the last window and every copy still waiting."""
        buffer, waiting = self._buffer, self._waiting
        while buffer or waiting:
            if not buffer:  # the stream has run dry: every waiting copy goes now (one per document: one window)
                self.stats.copies_released_early += len(waiting)
                buffer = self._released(waiting, max(w[0] for w in waiting))
            yield from self._flush(buffer, waiting)
            buffer = self._released(waiting)
        self._buffer, self._held = [], 0

    def _add(self, buffer: list, doc: Document, k: int, prev_row: int) -> None:
        sample_id = doc.sample_id if k == 0 else f"{doc.sample_id}@{k}"
        pieces = chunk(doc, self.seq_len)
        if k:
            self._count_copy(doc, len(pieces))
        for ci, ids, mask in pieces:
            buffer.append((ci, ids, mask, doc.source, sample_id, k, doc, prev_row))

    def _released(self, waiting: list, upto: int | None = None) -> list:
        """A new buffer with the waiting copies whose release row has come (or every copy due at `upto`)."""
        buffer: list = []
        limit = self.stats.rows if upto is None else upto
        while waiting and waiting[0][0] <= limit:
            _, _, k, prev_row, doc = heapq.heappop(waiting)
            self._add(buffer, doc, k, prev_row)
        return buffer

    def _count_document(self, doc: Document, n: int, n_chunks: int) -> None:
        """The original (copy 0) of `n` tokens in `n_chunks` chunks: counted as unique and as packed."""
        per = self.stats.per_source.get(doc.source)
        if per is None:
            per = self.stats.per_source[doc.source] = {"tokens": 0, "documents": 0, "chunks": 0,
                                                       "unique_tokens": 0, "unique_documents": 0}
        per["unique_tokens"] += n
        per["unique_documents"] += 1
        self._count_copy(doc, n_chunks, per)

    def _count_copy(self, doc: Document, n_chunks: int, per: dict | None = None) -> None:
        st = self.stats
        n = len(doc.ids)
        st.documents += 1
        st.chunks += n_chunks
        st.tokens += n
        per = per or st.per_source[doc.source]
        per["tokens"] += n
        per["documents"] += 1
        per["chunks"] += n_chunks

    def _held_back(self, bins: list[list[int]], lens: list[int], buffer: list[tuple]) -> list[int]:
        """The bins to carry into the next window: those that would pad more than `CARRY_PADDING` of a row,
        emptiest first (ties: the earlier bin), while they fit a quarter of the window's tokens and chunks;
        never a bin with a copy of an up-sampled document."""
        seq_len = self.seq_len
        most_padding = int(seq_len * CARRY_PADDING)
        tokens_left = self.window_tokens // 4 if self.window_tokens is not None else None
        chunks_left = self.window // 4
        held = []
        for fill, b in sorted((sum(lens[i] for i in items), b) for b, items in enumerate(bins)):
            if seq_len - fill <= most_padding:
                break
            items = bins[b]
            if len(items) > chunks_left or (tokens_left is not None and fill > tokens_left):
                continue
            if any(buffer[i][6].copies > 1 for i in items):
                continue
            held.append(b)
            chunks_left -= len(items)
            if tokens_left is not None:
                tokens_left -= fill
        return held

    def _flush(self, buffer: list[tuple], waiting: list, carry: bool = False) -> Iterator[PackedRow]:
        seq_len = self.seq_len
        self.stats.max_window_tokens = max(self.stats.max_window_tokens, sum(len(c[1]) for c in buffer))
        lens_all = [len(c[1]) for c in buffer]
        bins = best_fit_decreasing(lens_all, seq_len)
        held = self._held_back(bins, lens_all, buffer) if carry else ()
        if held:  # their chunks wait for the next window, in their input order
            self._carried = [_compact(buffer[i]) for i in sorted(i for b in held for i in bins[b])]
            held_set = set(held)
            bins = [items for b, items in enumerate(bins) if b not in held_set]
        first_row = self.stats.rows
        last_row: dict[int, tuple[int, int, Document]] = {}  # id(doc) → (row of its copy's last chunk, repeat, doc)
        st = self.stats
        pad_ids, pad_mask = np.full(seq_len, self.eod_id, np.int32), np.zeros(seq_len, np.uint8)
        for b, items in enumerate(bins):
            segs = [buffer[i] for i in items]
            lens = [len(s[1]) for s in segs]
            padding = seq_len - sum(lens)
            # one concatenation per row (the padding its last piece), not two slice copies per segment
            ids, mask = (None, None) if self._row_buffer is None else self._row_buffer(seq_len)
            ids = np.concatenate([s[1] for s in segs] + [pad_ids[:padding]], out=ids)  # out=None: a new array
            mask = np.concatenate([s[2] for s in segs] + [pad_mask[:padding]], out=mask)
            row = first_row + b
            for seg in segs:
                doc = seg[6]
                if doc.copies > 1:
                    last_row[id(doc)] = (max(row, last_row.get(id(doc), (-1,))[0]), seg[5], doc)
                if seg[5]:  # a copy: how far from the previous one
                    gap = row - seg[7]
                    st.min_copy_distance = gap if st.min_copy_distance is None else min(st.min_copy_distance, gap)
            if padding:
                lens.append(padding)
            self.stats.rows += 1
            self.stats.padding_tokens += padding
            yield PackedRow(
                input_ids=ids,
                doc_lens=np.asarray(lens, dtype=np.int32),
                loss_mask=mask,
                source=[s[3] for s in segs],
                sample_ids=[s[4] for s in segs],
                chunk_index=[s[0] for s in segs],
                padding=padding,
                repeat=[s[5] for s in segs],
            )
        # the next copy of each up-sampled document waits copy_gap rows after this one's last row
        for row, k, doc in sorted(last_row.values(), key=lambda t: (t[0], t[2].sample_id)):
            if k + 1 < doc.copies:
                self._order += 1  # ties on the release row keep the order copies were scheduled in
                heapq.heappush(waiting, (row + self.copy_gap, self._order, k + 1, row, doc))


def pack(docs: Iterable[Document], seq_len: int, eod_id: int, window: int = 100_000,
         copy_gap: int | None = None, window_tokens: int | None = None) -> Iterator[PackedRow]:
    """Pack documents into rows of exactly `seq_len` tokens (BFD over windows of `window` chunks).

    Arguments are checked here, before any document is read (`seq_len < 1` → ValueError). Padding is `eod_id` with
    loss 0. Deterministic for the same input order. Use `Packer` to get `PackStats` as well.
    """
    return Packer(seq_len, eod_id, window, copy_gap, window_tokens).pack(docs)


def unpack_row(row: PackedRow | Mapping[str, Any]) -> list[tuple[str, str, int, np.ndarray, np.ndarray]]:
    """(sample_id, source, chunk_index, ids, mask) per segment of a row, padding dropped.

    Takes a `PackedRow` or a record with the schema's fields (e.g. a dict read back from Parquet).
    """
    if isinstance(row, PackedRow):
        get = row.__getattribute__
    else:
        get = row.__getitem__
    ids = np.asarray(get("input_ids"), dtype=np.int32)
    mask = np.asarray(get("loss_mask"), dtype=np.uint8)
    doc_lens = [int(x) for x in get("doc_lens")]
    sources, sample_ids, chunk_index = list(get("source")), list(get("sample_ids")), list(get("chunk_index"))
    padding = int(get("padding"))
    n = len(sample_ids)
    if len(sources) != n or len(chunk_index) != n:
        raise ValueError(f"row has {n} sample_ids, {len(sources)} sources, {len(chunk_index)} chunk indices")
    if sum(doc_lens) != len(ids) or len(mask) != len(ids):
        raise ValueError(f"doc_lens sum to {sum(doc_lens)}, input_ids has {len(ids)}, loss_mask {len(mask)}")
    if len(doc_lens) != n + (1 if padding else 0) or (padding and doc_lens[-1] != padding):
        raise ValueError(f"row has {len(doc_lens)} doc_lens for {n} segments and padding {padding}")
    out = []
    pos = 0
    for k in range(n):
        length = doc_lens[k]
        out.append((sample_ids[k], sources[k], int(chunk_index[k]), ids[pos : pos + length], mask[pos : pos + length]))
        pos += length
    return out
