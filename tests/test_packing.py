"""Best-Fit-Decreasing packing: no token lost or duplicated, exact rows, BFD = a naive reference, <1 % padding."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datakit.io.schemas import validate
from datakit.tokens.packing import (
    COPY_GAP_TOKENS,
    Document,
    PackedRow,
    Packer,
    best_fit_decreasing,
    chunk,
    pack,
    unpack_row,
)

EOD = 151643


def naive_bfd(lengths: list[int], capacity: int) -> list[list[int]]:
    """Reference: O(n · bins) scan; the smallest remaining capacity that fits, ties to the earliest bin."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    remaining: list[int] = []
    for i in order:
        best = -1
        for b, r in enumerate(remaining):
            if r >= lengths[i] and (best < 0 or r < remaining[best]):
                best = b
        if best < 0:
            bins.append([i])
            remaining.append(capacity - lengths[i])
        else:
            bins[best].append(i)
            remaining[best] -= lengths[i]
    return bins


def make_docs(lengths: list[int], seed: int = 0, sources: int = 3) -> list[Document]:
    """Documents with globally unique token ids (so any loss or duplication shows) and random loss masks."""
    rng = np.random.default_rng(seed)
    docs, next_id = [], 0
    for k, n in enumerate(lengths):
        ids = np.arange(next_id, next_id + n, dtype=np.int32)
        next_id += n
        mask = rng.integers(0, 2, n, dtype=np.uint8)
        docs.append(Document(ids, mask, f"src{k % sources}", f"doc{k:05d}"))
    return docs


def check_rows(rows: list[PackedRow], docs: list[Document], seq_len: int) -> None:
    """Every invariant of a token shard, and the documents reassembled exactly from the rows."""
    pieces: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = defaultdict(list)
    seg_tokens = 0
    by_id = {d.sample_id: d for d in docs}
    for row in rows:
        assert row.input_ids.dtype == np.int32 and row.input_ids.shape == (seq_len,)
        assert row.loss_mask.dtype == np.uint8 and row.loss_mask.shape == (seq_len,)
        assert row.doc_lens.dtype == np.int32 and int(row.doc_lens.sum()) == seq_len
        assert (row.doc_lens > 0).all()
        n = len(row.sample_ids)
        assert n >= 1 and len(row.source) == n and len(row.chunk_index) == n
        assert len(row.doc_lens) == n + (1 if row.padding else 0)
        if row.padding:
            assert row.doc_lens[-1] == row.padding
            assert (row.input_ids[seq_len - row.padding :] == EOD).all()
            assert (row.loss_mask[seq_len - row.padding :] == 0).all()
        for sample_id, source, ci, ids, mask in unpack_row(row):
            assert source == by_id[sample_id].source
            pieces[sample_id].append((ci, ids, mask))
            seg_tokens += len(ids)
    assert seg_tokens == sum(len(d.ids) for d in docs)  # 0 lost, 0 duplicated
    for d in docs:
        got = sorted(pieces.pop(d.sample_id, []), key=lambda p: p[0])
        if len(d.ids) == 0:
            assert got == []
            continue
        # chunk indices 0..k-1, each exactly once, all full but the last: no chunk split across rows
        assert [p[0] for p in got] == list(range(len(got)))
        assert all(len(p[1]) == seq_len for p in got[:-1]) and 1 <= len(got[-1][1]) <= seq_len
        np.testing.assert_array_equal(np.concatenate([p[1] for p in got]), d.ids)
        np.testing.assert_array_equal(np.concatenate([p[2] for p in got]), d.loss_mask)
    assert not pieces


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seq_len=st.integers(1, 64),
    lengths=st.lists(st.integers(0, 200), max_size=60),
    window=st.integers(1, 80),
    seed=st.integers(0, 2**16),
    window_tokens=st.one_of(st.none(), st.integers(64, 2000)),
    carry=st.booleans(),
)
def test_pack_invariants(seq_len, lengths, window, seed, window_tokens, carry):
    docs = make_docs(lengths, seed)
    packer = Packer(seq_len, EOD, window=window, window_tokens=window_tokens, carry=carry)
    rows = list(packer.pack(docs))
    check_rows(rows, docs, seq_len)
    stats = packer.stats
    assert stats.rows == len(rows)
    assert stats.documents == len(docs)
    assert stats.tokens == sum(lengths)
    assert stats.chunks == sum(-(-n // seq_len) for n in lengths) == sum(len(r.sample_ids) for r in rows)
    assert stats.padding_tokens == sum(r.padding for r in rows)
    assert stats.tokens + stats.padding_tokens == len(rows) * seq_len
    assert sum(v["tokens"] for v in stats.per_source.values()) == stats.tokens
    assert sum(v["documents"] for v in stats.per_source.values()) == stats.documents
    assert sum(v["chunks"] for v in stats.per_source.values()) == stats.chunks


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 100), data=st.data())
def test_bfd_matches_naive_reference(capacity, data):
    lengths = data.draw(st.lists(st.integers(1, capacity), max_size=120))
    assert best_fit_decreasing(lengths, capacity) == naive_bfd(lengths, capacity)


def test_bfd_matches_naive_reference_large_random():
    rng = np.random.default_rng(7)
    for capacity in (8, 1000, 4096):
        lengths = rng.integers(1, capacity + 1, 3000).tolist()
        small = np.maximum(1, (rng.lognormal(0, 1, 3000) * capacity / 20).astype(int)).clip(max=capacity).tolist()
        for ls in (lengths, small):
            bins = best_fit_decreasing(ls, capacity)
            assert bins == naive_bfd(ls, capacity)
            assert sorted(i for b in bins for i in b) == list(range(len(ls)))
            assert all(sum(ls[i] for i in b) <= capacity for b in bins)


def test_bfd_rejects_bad_lengths():
    assert best_fit_decreasing([], 10) == []
    with pytest.raises(ValueError, match="length 11"):
        best_fit_decreasing([3, 11], 10)
    with pytest.raises(ValueError, match="length 0"):
        best_fit_decreasing([0], 10)
    with pytest.raises(ValueError):
        best_fit_decreasing([1], 0)


def test_chunk_long_document_reassembles():
    doc = make_docs([25])[0]
    pieces = chunk(doc, 10)
    assert [(i, len(ids)) for i, ids, _ in pieces] == [(0, 10), (1, 10), (2, 5)]
    np.testing.assert_array_equal(np.concatenate([p[1] for p in pieces]), doc.ids)
    np.testing.assert_array_equal(np.concatenate([p[2] for p in pieces]), doc.loss_mask)
    assert [(i, len(ids)) for i, ids, _ in chunk(make_docs([10])[0], 10)] == [(0, 10)]
    assert chunk(make_docs([0])[0], 10) == []


def test_long_documents_across_rows():
    docs = make_docs([95, 3, 40, 10, 7])
    rows = list(pack(docs, 32, EOD))
    check_rows(rows, docs, 32)
    # 95 = 32+32+31 → two full rows of one chunk each, no padding
    full = [r for r in rows if r.sample_ids == ["doc00000"] and r.padding == 0]
    assert sorted(c for r in full for c in r.chunk_index) == [0, 1]


def test_seq_len_zero_raises_before_reading():
    def boom():
        raise AssertionError("documents were read")
        yield  # pragma: no cover

    for bad in (0, -5):
        with pytest.raises(ValueError, match="seq_len"):
            pack(boom(), bad, EOD)
        with pytest.raises(ValueError, match="seq_len"):
            Packer(bad, EOD)
    with pytest.raises(ValueError, match="window"):
        pack(boom(), 8, EOD, window=0)
    with pytest.raises(ValueError, match="eod_id"):
        pack(boom(), 8, -1)


def test_document_validation():
    with pytest.raises(ValueError, match="loss-mask"):
        Document(np.arange(3), np.ones(2), "s", "x")
    d = Document(np.arange(3, dtype=np.int64), [1, 0, 1], "s", "x")
    assert d.ids.dtype == np.int32 and d.loss_mask.dtype == np.uint8
    with pytest.raises(ValueError, match="int32"):
        Document(np.array([2**40]), np.ones(1), "s", "x")


def test_deterministic():
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 300, 400).tolist()
    a = list(pack(make_docs(lengths, 1), 128, EOD, window=50))
    b = list(pack(make_docs(lengths, 1), 128, EOD, window=50))
    assert [r.as_record() for r in a] == [r.as_record() for r in b]


def test_row_record_matches_schema_and_unpacks():
    docs = make_docs([5, 9, 30, 2])
    rows = list(pack(docs, 16, EOD))
    assert len(rows) >= 3  # 46 tokens in rows of 16
    for row in rows:
        record = row.as_record()
        validate(record, "token_shard")
        assert [(s, src, c, i.tolist(), m.tolist()) for s, src, c, i, m in unpack_row(record)] == [
            (s, src, c, i.tolist(), m.tolist()) for s, src, c, i, m in unpack_row(row)
        ]
    bad = rows[0].as_record() | {"doc_lens": [1]}
    with pytest.raises(ValueError):
        unpack_row(bad)


def realistic_mix(n_docs: int = 20_000, seed: int = 2024) -> np.ndarray:
    """Lognormal document lengths, median ~2k tokens, a tail beyond 32k (≈ 67 M tokens for 20k documents)."""
    rng = np.random.default_rng(seed)
    return np.maximum(1, rng.lognormal(np.log(2048), 1.0, n_docs)).astype(np.int64)


@pytest.mark.parametrize("window", [100_000, 2_000])
def test_padding_ratio_below_one_percent_on_realistic_mix(window):
    seq_len = 32768
    lengths = realistic_mix()
    assert np.median(lengths) == pytest.approx(2048, rel=0.1)
    assert (lengths > seq_len).sum() > 10  # some documents are chunked
    base_ids = np.full(int(lengths.max()), 7, dtype=np.int32)  # views: no 67 M-token copy
    base_mask = np.ones(int(lengths.max()), dtype=np.uint8)
    docs = (Document(base_ids[:n], base_mask[:n], f"s{k % 4}", f"d{k}") for k, n in enumerate(lengths.tolist()))
    packer = Packer(seq_len, EOD, window=window)
    rows = tokens = 0
    for row in packer.pack(docs):
        rows += 1
        tokens += int(row.doc_lens[: len(row.sample_ids)].sum())
        assert int(row.doc_lens.sum()) == seq_len
    stats = packer.stats
    assert tokens == stats.tokens == int(lengths.sum())
    assert rows == stats.rows and rows * seq_len == stats.tokens + stats.padding_tokens
    print(f"window={window}: {rows} rows, padding ratio {stats.padding_ratio:.6f}")
    assert stats.padding_ratio < 0.01


def test_window_bounded_in_tokens():
    """Long documents: a window closes at `window_tokens`, whatever its chunk count, so a task's memory is bounded
    in tokens; every token is still packed, in the same rows as packing those windows one by one would give."""
    docs = make_docs([3000 + 37 * (i % 11) for i in range(200)], seed=5)
    total = sum(len(d.ids) for d in docs)
    bounded = Packer(4096, EOD, window=100_000, window_tokens=40_000)
    rows = list(bounded.pack(docs))
    assert bounded.stats.tokens == total
    assert sorted({sid for r in rows for sid, *_ in unpack_row(r)}) == sorted(d.sample_id for d in docs)
    assert bounded.stats.max_window_tokens <= 40_000 + 4096  # closes at the first document past the bound
    unbounded = Packer(4096, EOD, window=100_000)
    list(unbounded.pack(docs))
    assert unbounded.stats.max_window_tokens == total
    # padding as low as with one big window: BFD still sees ~13 documents per window
    assert bounded.stats.padding_ratio <= unbounded.stats.padding_ratio + 0.01
    with pytest.raises(ValueError):
        Packer(4096, EOD, window_tokens=0)


def test_carrying_under_filled_rows_keeps_a_small_window_padding_low():
    """A window's rows that would pad more than 1 % go back into the next window (the stream's last window emits
    them all): a 1 M-token window then pads about as little as one window over the whole stream, every document
    is still reassembled exactly, and a window holds at most `window_tokens` plus the document that closes it."""
    seq_len = 4096
    lengths = realistic_mix(n_docs=3000, seed=3) // 16 + 1  # median ~128 tokens, some chunked
    docs = make_docs(lengths.tolist(), seed=3)
    runs = {}
    for name, kwargs in {"carry": {}, "no_carry": {"carry": False}, "one_window": {"window_tokens": None}}.items():
        kw = {"window_tokens": 60_000, **kwargs}
        packer = Packer(seq_len, EOD, window=100_000, **kw)
        rows = list(packer.pack(docs))
        check_rows(rows, docs, seq_len)
        runs[name] = packer.stats
    assert runs["carry"].max_window_tokens <= 60_000 + int(lengths.max())
    assert runs["no_carry"].padding_ratio > 3 * runs["carry"].padding_ratio
    assert runs["carry"].padding_ratio <= runs["one_window"].padding_ratio + 0.002
    assert runs["carry"].tokens == runs["no_carry"].tokens == int(lengths.sum())
    # the same input gives the same rows
    again = [r.sample_ids for r in Packer(seq_len, EOD, window_tokens=60_000).pack(make_docs(lengths.tolist(), 3))]
    assert again == [r.sample_ids for r in Packer(seq_len, EOD, window_tokens=60_000).pack(docs)]


def test_rows_with_copies_are_never_carried():
    """A copy of an up-sampled document is counted from the row it is emitted in: its bin is never held back, so
    no row holds two copies of one document and consecutive copies stay copy_gap rows apart."""
    docs = make_docs([900 + 7 * (i % 13) for i in range(300)], seed=4)  # every bin is one document: all pad > 1 %
    for d in docs[::3]:
        d.copies = 3
    packer = Packer(1024, EOD, window=100_000, window_tokens=20_000, copy_gap=25)
    rows = list(packer.pack(docs))
    where: dict[str, list[int]] = defaultdict(list)
    for r, row in enumerate(rows):
        ids = [sid.split("@")[0] for sid in row.sample_ids]
        assert len(ids) == len(set(ids))
        for sid in ids:
            where[sid].append(r)
    early = packer.stats.copies_released_early
    gaps = [b - a for rs in where.values() for a, b in zip(rs, rs[1:])]
    assert len(gaps) == 200 and sum(g < 25 for g in gaps) <= early
    assert sum(len(r.sample_ids) for r in rows) == 300 + 200


def test_copy_gap_defaults_to_the_rows_of_a_window_or_of_8m_tokens():
    """Up-sampled copies wait the rows of one window by default, or of COPY_GAP_TOKENS when the window is smaller
    (a small window must not bring copies closer), so the copies a task holds stay about that many tokens, not
    its whole input: with the gap in chunks (100,000 rows) every copy would wait until the end of the stream."""
    assert Packer(1024, EOD, window=100_000, window_tokens=20_000).copy_gap == COPY_GAP_TOKENS // 1024
    assert Packer(1024, EOD, window=100_000, window_tokens=4 * COPY_GAP_TOKENS).copy_gap == 4 * COPY_GAP_TOKENS // 1024
    assert Packer(32768, EOD, window=100, window_tokens=COPY_GAP_TOKENS).copy_gap == 100  # fewer rows in a window
    assert Packer(1024, EOD, window=8).copy_gap == 8 and Packer(1024, EOD, window=8, copy_gap=3).copy_gap == 3
    docs = make_docs([700 + 13 * (i % 7) for i in range(400)], seed=9)
    for d in docs[::2]:
        d.copies = 2
    packer = Packer(1024, EOD, window=100_000, window_tokens=20_000, copy_gap=20_000 // 1024)
    rows = list(packer.pack(docs))
    assert packer.stats.copies_released_early < 20  # only the last windows' copies meet the stream's end
    assert packer.stats.min_copy_distance >= 1 and packer.stats.max_window_tokens <= 2 * (20_000 + 1024)
    copies = [sid for r in rows for sid, *_ in unpack_row(r) if "@" in sid]
    assert len(copies) == 200


def test_feed_and_finish_let_one_stream_fill_two_packers():
    """What the tokens stage does with a validation split: documents routed one by one to two packers give each
    the rows it would pack from its own documents alone."""
    docs = make_docs([int(n) for n in np.random.default_rng(5).integers(1, 300, 120)], seed=5)
    side = [d.sample_id.endswith(("3", "7")) for d in docs]
    a, b = Packer(128, EOD, window=9), Packer(128, EOD, window=9)
    rows: dict[bool, list[PackedRow]] = {True: [], False: []}
    for doc, s in zip(docs, side):
        rows[s] += list((a if s else b).feed(doc))
    rows[True] += list(a.finish())
    rows[False] += list(b.finish())
    for s in (True, False):
        alone = list(pack([d for d, t in zip(docs, side) if t == s], 128, EOD, window=9))
        assert [r.as_record() for r in rows[s]] == [r.as_record() for r in alone]
        check_rows(rows[s], [d for d, t in zip(docs, side) if t == s], 128)
    assert a.stats.documents + b.stats.documents == len(docs)


def test_a_zero_stride_mask_packs_as_an_array_of_ones():
    """The tokens step gives plain documents a read-only zero-stride view of ones as their mask (no bytes per
    token in the window): the rows must be those of real arrays, masks included, and the view never written."""
    from datakit.tokens.steps import _ONES

    lengths = [int(n) for n in np.random.default_rng(9).integers(1, 400, 80)]
    docs = make_docs(lengths, seed=9)
    ones = [Document(d.ids, np.ones(len(d.ids), np.uint8), d.source, d.sample_id) for d in docs]
    views = [Document(d.ids, _ONES[: len(d.ids)], d.source, d.sample_id) for d in docs]
    assert views[0].loss_mask.strides == (0,) and not views[0].loss_mask.flags.writeable
    want = [r.as_record() for r in pack(ones, 256, EOD, window=16)]
    assert [r.as_record() for r in pack(views, 256, EOD, window=16)] == want
    assert sum(sum(r["loss_mask"]) for r in want) == sum(lengths)


def test_feed_takes_the_document_at_the_call():
    """`feed` returns () until a window closes; the document is held from the call on, and the rows of the
    window come as the returned iterator is consumed."""
    packer = Packer(64, EOD, window=3)
    docs = make_docs([10, 20, 30], seed=1)
    assert packer.feed(docs[0]) == () and packer.feed(docs[1]) == ()
    assert packer.stats.documents == 2 and packer._held == 30
    rows = packer.feed(docs[2])
    assert packer.stats.rows == 0  # nothing packed until consumed
    assert [r.padding for r in rows] == [4]
    assert packer._held == 0 and list(packer.finish()) == []


def test_rows_built_in_a_lent_buffer_are_the_rows_packed_alone():
    """With `row_buffer` (the tokens stage lends its shard writer's row group block) each row is built in the
    arrays lent for it: the same rows, padding, masks and copies as rows allocated by the packer, and each row
    really is the lent arrays (nothing copied after)."""
    lengths = [int(n) for n in np.random.default_rng(11).integers(1, 700, 300)] + [1500, 2100]  # long ones chunked
    want_docs, lent_docs = make_docs(lengths, seed=11), make_docs(lengths, seed=11)
    for d in want_docs[::5] + lent_docs[::5]:
        d.copies = 3
    want = [r.as_record() for r in Packer(256, EOD, window=40, window_tokens=6_000).pack(want_docs)]
    block_ids, block_mask = np.full((4, 256), -7, np.int32), np.full((4, 256), 9, np.uint8)
    lent: list[tuple[np.ndarray, np.ndarray]] = []

    def row_buffer(n: int) -> tuple[np.ndarray, np.ndarray]:
        assert n == 256
        lent.append((block_ids[len(lent) % 4], block_mask[len(lent) % 4]))  # reused, as a row group block is
        return lent[-1]

    got = []
    for row in Packer(256, EOD, window=40, window_tokens=6_000, row_buffer=row_buffer).pack(lent_docs):
        assert row.input_ids is lent[-1][0] and row.loss_mask is lent[-1][1]
        got.append(row.as_record())  # consumed before the next row overwrites the block
    assert got == want and len(lent) == len(want)
    assert len({sid for r in got for sid in r["sample_ids"] if "@" in sid}) == 2 * len(want_docs[::5])  # copies
