"""Megatron export: what MMapIndexedWriter writes, megatron-core's IndexedDataset and GPTDataset read back."""

from __future__ import annotations

import hashlib
import struct
import warnings

import numpy as np
import pytest

from datakit.export.megatron import (
    INDEX_HEADER,
    MMapIndexedWriter,
    check_vocab_fits,
    read_index,
    write_blend,
)

with warnings.catch_warnings():  # "Transformer Engine and Apex are not installed" on CPU-only installs
    warnings.simplefilter("ignore")
    import megatron.core  # noqa: F401  (in the test extras: a missing install fails, it does not skip)
    from megatron.core.datasets.blended_dataset import BlendedDataset
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.indexed_dataset import IndexedDataset
    from megatron.core.datasets.utils import get_blend_from_list

pytestmark = pytest.mark.filterwarnings("ignore:.*(Transformer Engine|Apex).*:UserWarning")

VOCAB = 151_665  # Qwen2.5: does not fit uint16
EOD = 151_643
PAD = 151_654  # outside the written ids, so GPTDataset's pad handling never touches real tokens


class TinyTokenizer:
    """What GPTDataset uses of a tokenizer: vocab_size, eod, pad, and unique_identifiers for its cache key."""

    vocab_size = VOCAB
    eod = EOD
    pad = PAD

    @property
    def unique_identifiers(self) -> dict:
        return {"class": type(self).__name__, "vocab_size": VOCAB, "eod": EOD, "pad": PAD}


def make_documents(n_docs: int, seed: int, first_id: int = 1000, eod: float = 0.5) -> list[list[np.ndarray]]:
    """Documents of 1–3 sequences; every token id but EOD is unique; a fraction `eod` of documents end with EOD."""
    rng = np.random.default_rng(seed)
    docs, next_id = [], first_id
    for _ in range(n_docs):
        seqs = []
        for _ in range(int(rng.integers(1, 4))):
            n = int(rng.integers(1, 40))
            seqs.append(np.arange(next_id, next_id + n, dtype=np.int64))
            next_id += n
        seqs[-1] = np.append(seqs[-1], EOD) if rng.random() < eod else seqs[-1]
        docs.append(seqs)
    assert next_id < EOD
    return docs


def write(prefix, docs, **kw) -> dict:
    with MMapIndexedWriter(prefix, vocab_size=VOCAB, **kw) as w:
        for seqs in docs:
            w.add_document(seqs)
    return w.finalize()


def expected_document_indices(docs) -> list[int]:
    out = [0]
    for seqs in docs:
        out.append(out[-1] + len(seqs))
    return out


def test_roundtrip_indexed_dataset(tmp_path):
    docs = make_documents(40, seed=1)
    prefix = str(tmp_path / "ds")
    info = write(prefix, docs)
    seqs = [s for d in docs for s in d]
    assert info["sequences"] == len(seqs) and info["documents"] == len(docs)
    assert info["tokens"] == sum(len(s) for s in seqs)
    assert info["bin_sha256"] == hashlib.sha256((tmp_path / "ds.bin").read_bytes()).hexdigest()
    assert info["idx_sha256"] == hashlib.sha256((tmp_path / "ds.idx").read_bytes()).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.bin", "ds.idx"]  # no .tmp left

    ds = IndexedDataset(prefix)
    assert len(ds) == len(seqs)
    assert ds.index.dtype == np.int32
    np.testing.assert_array_equal(ds.document_indices, expected_document_indices(docs))
    np.testing.assert_array_equal(ds.sequence_lengths, [len(s) for s in seqs])
    for i, s in enumerate(seqs):
        np.testing.assert_array_equal(ds[i], s)
        np.testing.assert_array_equal(ds.get(i, offset=len(s) // 2), s[len(s) // 2 :])

    idx = read_index(prefix)
    assert (idx["version"], idx["dtype_code"], idx["sequences"], idx["documents"]) == (1, 4, len(seqs), len(docs))
    np.testing.assert_array_equal(idx["document_indices"], ds.document_indices)
    np.testing.assert_array_equal(idx["sequence_pointers"], ds.index.sequence_pointers)


def test_end_document_equals_add_document(tmp_path):
    docs = make_documents(10, seed=2)
    write(tmp_path / "a", docs)
    with MMapIndexedWriter(tmp_path / "b") as w:
        for seqs in docs:
            for s in seqs:
                w.add_sequence(s)
            w.end_document()
    assert (tmp_path / "a.idx").read_bytes() == (tmp_path / "b.idx").read_bytes()
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()


def test_header_layout(tmp_path):
    write(tmp_path / "ds", [[np.array([5, 6, 7])], [np.array([8]), np.array([9, 10])]])
    raw = (tmp_path / "ds.idx").read_bytes()
    assert raw[:9] == INDEX_HEADER
    assert struct.unpack_from("<QBQQ", raw, 9) == (1, 4, 3, 3)
    assert np.frombuffer(raw, "<i4", 3, 34).tolist() == [3, 1, 2]
    assert np.frombuffer(raw, "<i8", 3, 34 + 12).tolist() == [0, 12, 16]
    assert np.frombuffer(raw, "<i8", 3, 34 + 36).tolist() == [0, 1, 3]
    assert len(raw) == 34 + 12 * 3 + 8 * 3
    assert np.frombuffer((tmp_path / "ds.bin").read_bytes(), "<i4").tolist() == [5, 6, 7, 8, 9, 10]


def gpt_config(tmp_path, blend, seq_len: int, cache: bool = True) -> GPTDatasetConfig:
    return GPTDatasetConfig(
        random_seed=1234,
        sequence_length=seq_len,
        blend=blend,
        split="1,0,0",
        tokenizer=TinyTokenizer(),
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        path_to_cache=str(tmp_path / "cache") if cache else None,
        mmap_bin_files=True,
    )


def sample_text(sample: dict) -> np.ndarray:
    """The seq_len + 1 tokens a sample was cut from (tokens, then the last label)."""
    return np.concatenate([sample["tokens"].numpy(), sample["labels"].numpy()[-1:]])


def assert_contiguous(text: np.ndarray, where: dict[int, tuple[int, int]], lengths: list[int]) -> None:
    """Each step in `text` continues the same sequence, or goes from a sequence's end to a sequence's start."""
    for a, b in zip(text[:-1].tolist(), text[1:].tolist()):
        (sa, oa), (sb, ob) = where[a], where[b]
        assert (sa == sb and ob == oa + 1) or (oa == lengths[sa] - 1 and ob == 0), (a, b)


@pytest.mark.parametrize("seq_len", [8, 33])
def test_gpt_dataset_samples_are_exact_windows(tmp_path, seq_len):
    docs = make_documents(30, seed=3, eod=0.0)  # all ids unique: a token names its sequence and offset
    prefix = str(tmp_path / "ds")
    write(prefix, docs)
    seqs = [s for d in docs for s in d]
    n_samples = 60
    datasets = BlendedMegatronDatasetBuilder(
        GPTDataset, [n_samples, None, None], lambda: True, gpt_config(tmp_path, ([prefix], None), seq_len)
    ).build()
    train = datasets[0]
    assert isinstance(train, GPTDataset) and len(train) >= n_samples

    # the stream GPTDataset samples from: the sequences in its (shuffled, multi-epoch) document order
    order = np.asarray(train.document_index)
    assert sorted(set(order.tolist())) == list(range(len(seqs)))  # split 1,0,0: every sequence is trained on
    stream = np.concatenate([seqs[k] for k in order])
    starts = np.concatenate([[0], np.cumsum([len(seqs[k]) for k in order])])
    where = {int(t): (k, o) for k, s in enumerate(seqs) for o, t in enumerate(s.tolist())}
    assert len(where) == sum(len(s) for s in seqs)
    lengths = [len(s) for s in seqs]
    for i in range(len(train)):
        text = sample_text(train[i])
        assert len(text) == seq_len + 1
        j = int(train.shuffle_index[i])
        doc_pos, offset = (int(x) for x in train.sample_index[j])
        start = int(starts[doc_pos]) + offset
        np.testing.assert_array_equal(text, stream[start : start + seq_len + 1])
        # independent of the sample index: the window only ever steps to the next token or a sequence start
        assert_contiguous(text, where, lengths)


def test_blend_file_feeds_blended_dataset(tmp_path):
    a = make_documents(20, seed=4, first_id=1000, eod=0.0)
    b = make_documents(20, seed=5, first_id=60_000, eod=0.0)
    write(tmp_path / "a", a)
    write(tmp_path / "b", b)
    blend_file = tmp_path / "blend.txt"
    write_blend(blend_file, [(3, str(tmp_path / "a")), (1, str(tmp_path / "b"))])
    words = blend_file.read_text().split()
    assert [float(w) for w in words[::2]] == [0.75, 0.25]
    blend = get_blend_from_list(words)
    assert blend == ([str(tmp_path / "a"), str(tmp_path / "b")], [0.75, 0.25])

    # no path_to_cache: BlendedDataset then skips its torch.distributed rank check (no process group here);
    # the GPTDatasets cache their indices next to the .bin/.idx files instead
    train = BlendedMegatronDatasetBuilder(
        GPTDataset, [40, 0, 0], lambda: True, gpt_config(tmp_path, blend, 16, cache=False)
    ).build()[0]
    assert isinstance(train, BlendedDataset)
    streams = {}
    for name, docs in (("a", a), ("b", b)):
        seqs = [s for d in docs for s in d]
        streams[name] = (seqs, {int(t): (k, o) for k, s in enumerate(seqs) for o, t in enumerate(s.tolist())})
    counts = {"a": 0, "b": 0}
    for i in range(len(train)):
        text = sample_text(train[i])
        name = "a" if int(text[0]) < 60_000 else "b"
        counts[name] += 1
        seqs, where = streams[name]
        assert all(int(t) in where for t in text)  # every token drawn from that dataset's written tokens
        assert_contiguous(text, where, [len(s) for s in seqs])
    assert counts["a"] > counts["b"] > 0


def corrupt(tmp_path, mutate) -> str:
    prefix = tmp_path / "ds"
    write(prefix, make_documents(5, seed=6))
    idx = tmp_path / "ds.idx"
    idx.write_bytes(mutate(bytearray(idx.read_bytes())))
    return str(prefix)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b"MMIDIDY\x00\x00" + b[9:], "bad magic"),
        (lambda b: b[:9] + struct.pack("<Q", 2) + b[17:], "unsupported version 2"),
        (lambda b: b[:17] + bytes([9]) + b[18:], "unknown dtype code 9"),
        (lambda b: b[:-5], "truncated"),
        (lambda b: b[:20], "truncated header"),
        (lambda b: b + b"\x00" * 8, "trailing bytes"),
        (lambda b: b[:34] + struct.pack("<i", -1) + b[38:], "pointer|negative"),
        (lambda b: b[:-8] + struct.pack("<q", 1), "end at 1"),
    ],
    ids=["magic", "version", "dtype", "truncated", "truncated-header", "trailing", "lengths", "doc-indices"],
)
def test_read_index_rejects_corrupt_index(tmp_path, mutate, message):
    prefix = corrupt(tmp_path, mutate)
    with pytest.raises(ValueError, match=message):
        read_index(prefix)


def test_read_index_checks_bin_size(tmp_path):
    write(tmp_path / "ds", make_documents(5, seed=7))
    with open(tmp_path / "ds.bin", "ab") as f:
        f.write(b"\x00\x00\x00\x00")
    with pytest.raises(ValueError, match="ds.bin"):
        read_index(tmp_path / "ds")
    read_index(tmp_path / "ds", check_bin=False)
    with pytest.raises(ValueError, match="no such index"):
        read_index(tmp_path / "missing")


def test_vocab_that_does_not_fit_fails_before_writing(tmp_path):
    check_vocab_fits(VOCAB, np.int32)
    check_vocab_fits(65_536, np.uint16)
    with pytest.raises(ValueError, match="151665.*uint16"):
        check_vocab_fits(VOCAB, np.uint16)
    with pytest.raises(ValueError):
        check_vocab_fits(0, np.int32)
    with pytest.raises(ValueError, match="float32"):
        check_vocab_fits(100, np.float32)
    with pytest.raises(ValueError, match="uint16"):
        MMapIndexedWriter(tmp_path / "ds", np.uint16, vocab_size=VOCAB)
    assert list(tmp_path.iterdir()) == []
    with MMapIndexedWriter(tmp_path / "u16", np.uint16) as w:
        with pytest.raises(ValueError, match="do not fit uint16"):
            w.add_sequence(np.array([1, EOD]))
        w.add_sequence(np.array([1, 2]))
    assert read_index(tmp_path / "u16")["dtype_code"] == 8
    with MMapIndexedWriter(tmp_path / "v", vocab_size=100) as w:
        with pytest.raises(ValueError, match="vocabulary"):
            w.add_sequence(np.array([1, 100]))
        w.add_sequence(np.array([99]))


def test_writer_is_atomic_and_strict(tmp_path):
    write(tmp_path / "ds", [[np.array([1, 2, 3])]])
    before = (tmp_path / "ds.idx").read_bytes(), (tmp_path / "ds.bin").read_bytes()
    with pytest.raises(RuntimeError):
        with MMapIndexedWriter(tmp_path / "ds") as w:
            w.add_sequence(np.array([4, 5]))
            raise RuntimeError("killed")
    assert ((tmp_path / "ds.idx").read_bytes(), (tmp_path / "ds.bin").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.bin", "ds.idx"]

    with MMapIndexedWriter(tmp_path / "e") as w:
        with pytest.raises(ValueError, match="end_document"):
            w.end_document()
        with pytest.raises(ValueError, match="empty sequence"):
            w.add_sequence(np.array([], dtype=np.int32))
        with pytest.raises(ValueError, match="at least one"):
            w.add_document([])
        w.add_sequence(np.array([1]))  # left open: finalize closes the document
    info = w.finalize()  # a second call returns the same result
    assert (info["sequences"], info["documents"]) == (1, 1)
    with pytest.raises(ValueError, match="finalized"):
        w.add_sequence(np.array([2]))
    ds = IndexedDataset(str(tmp_path / "e"))  # keep a reference: its index is an mmap closed on deletion
    np.testing.assert_array_equal(ds.document_indices, [0, 1])


def test_empty_dataset(tmp_path):
    with MMapIndexedWriter(tmp_path / "empty") as w:
        pass
    assert {k: w.finalize()[k] for k in ("sequences", "documents", "tokens")} == {
        "sequences": 0, "documents": 0, "tokens": 0,
    }
    idx = read_index(tmp_path / "empty")
    assert idx["sequences"] == 0 and idx["document_indices"].tolist() == [0]


def test_write_blend(tmp_path):
    path = tmp_path / "blend.txt"
    write_blend(path, [(50, "data/agentless"), (20, "/abs/commits"), (30.0, "synth")])
    assert path.read_text() == "0.5 data/agentless 0.2 /abs/commits 0.3 synth\n"
    for bad in ([], [(0, "a")], [(-1, "a"), (2, "b")], [(float("nan"), "a")], [(1, "a b")], [(1, "a.bin")]):
        with pytest.raises(ValueError):
            write_blend(path, bad)
