"""Proof on CPU that a real trainer consumes datakit's output and learns from it (issue 14 §2).

The demo recipe runs end to end; megatron-core's `BlendedMegatronDatasetBuilder` builds the `GPTDataset` from its
`blend.txt` exactly as `pretrain_gpt.py --eod-mask-loss --reset-position-ids --reset-attention-mask` would (world
size 1, no process group needed for one dataset), and every batch is checked against datakit's Parquet shards:
tokens, labels, loss mask, position ids and attention mask. Then a tiny model trains on those batches: the loss
falls.

Qwen2.5's pad id is its EOD id (151643). megatron-core (0.16 here) sees the collision and, unless
`allow_ambiguous_pad_tokens` is set, replaces its pad id by a sentinel that is in no dataset: EOD then stays EOD
in tokens and labels, the model is trained to emit EOD at the end of each document, and `--eod-mask-loss` masks
only the position whose *input* is EOD (predicting a next document's first token from the last one). Positions
restart and attention is cut after each EOD. These tests pin that behaviour (recipes/megatron/README.md says it).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import megatron.core  # noqa: F401  (in the test extras: a missing install fails, it does not skip)
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.utils import get_blend_from_list

from datakit.tokens.shards import iter_documents
from tests.training import DenseVocab, train

pytestmark = [pytest.mark.filterwarnings("ignore:.*(Transformer Engine|Apex).*:UserWarning"),
              pytest.mark.filterwarnings("ignore:The pad token id in the tokenizer collides:UserWarning")]
ROOT = Path(__file__).resolve().parent.parent
EOD = 151_643
SEQ_LEN = 64


class QwenIds:
    """What GPTDataset reads of Megatron's HuggingFaceTokenizer for Qwen2.5: eod and pad are both 151643."""

    vocab_size = 151_665
    eod = EOD
    pad = EOD

    @property
    def unique_identifiers(self) -> dict:
        return {"class": "Qwen2.5", "eod": EOD, "pad": EOD}


@pytest.fixture(scope="module")
def demo(demo_output) -> Path:
    return demo_output  # the demo run shared by the session (tests/conftest.py)


@pytest.fixture(scope="module")
def train_dataset(demo, tmp_path_factory):
    """The training dataset exactly as pretrain_gpt.py builds it from `--data-path $(cat blend.txt)` (a
    BlendedDataset over the export's GPTDatasets), as (dataset, [(GPTDataset, index) per sample])."""
    # a copy: with no path_to_cache (a cache path needs a torch.distributed group) megatron-core writes its index
    # cache beside the .bin, which must not be the session's shared demo output
    megatron = tmp_path_factory.mktemp("export") / "megatron"
    shutil.copytree(demo / "megatron", megatron)
    words = (megatron / "blend.txt").read_text().replace(str(demo / "megatron"), str(megatron)).split()
    assert all(w.startswith(str(megatron)) for w in words[1::2])
    config = GPTDatasetConfig(
        random_seed=1234, sequence_length=SEQ_LEN, blend=get_blend_from_list(words), split="1,0,0",
        tokenizer=QwenIds(), reset_position_ids=True, reset_attention_mask=True, eod_mask_loss=True,
        path_to_cache=None, mmap_bin_files=True)
    ds = BlendedMegatronDatasetBuilder(GPTDataset, [64, 0, 0], lambda: True, config).build()[0]
    if isinstance(ds, GPTDataset):
        where = [(ds, i) for i in range(len(ds))]
    else:
        where = [(ds.datasets[int(d)], int(k)) for d, k in zip(ds.dataset_index, ds.dataset_sample_index)]
    return ds, where


def _documents(demo: Path, gpt: GPTDataset) -> tuple[np.ndarray, list[np.ndarray]]:
    """datakit's documents of that shard (from the Parquet shards, not the .bin), and their stream in the order
    GPTDataset walks them."""
    shard = demo / "tokens" / (Path(gpt.dataset_path).name + ".parquet")
    docs = [ids for _sid, _src, ids, _mask in iter_documents([shard])]
    return np.concatenate([docs[k] for k in np.asarray(gpt.document_index)]), docs


def test_batches_come_from_datakit_shards_and_respect_boundaries(demo, train_dataset):
    ds, where = train_dataset
    assert len(ds) >= 64
    streams = {}
    crossing = 0
    for i in range(len(ds)):
        s = ds[i]
        gpt, k = where[i]
        if gpt.dataset_path not in streams:
            streams[gpt.dataset_path] = _documents(demo, gpt)
        stream, docs = streams[gpt.dataset_path]
        assert all(d[-1] == EOD for d in docs), "datakit ends every document with EOD"
        # the window is a slice of datakit's stream, at the place GPTDataset's indices say
        j = int(gpt.shuffle_index[k])
        doc_pos, offset = (int(x) for x in gpt.sample_index[j])
        begin = sum(len(docs[d]) for d in np.asarray(gpt.document_index)[:doc_pos]) + offset
        text = stream[begin:begin + SEQ_LEN + 1]
        tokens, labels = text[:-1], text[1:]
        np.testing.assert_array_equal(s["tokens"].numpy(), tokens)
        np.testing.assert_array_equal(s["labels"].numpy(), labels)
        # loss: 0 only where the input is EOD (--eod-mask-loss); elsewhere 1, datakit's mask for mid-training
        # documents (all ones), and the EOD label itself is trained
        np.testing.assert_array_equal(s["loss_mask"].numpy(), (tokens != EOD).astype(np.float32))
        # positions restart after each EOD; attention never crosses one
        last = np.zeros(SEQ_LEN, dtype=np.int64)
        for e in np.flatnonzero(tokens == EOD):
            last[e + 1:] = e + 1
        np.testing.assert_array_equal(s["position_ids"].numpy(), np.arange(SEQ_LEN) - last)
        allowed = ~s["attention_mask"][0].numpy()
        rows, cols = np.indices((SEQ_LEN, SEQ_LEN))
        np.testing.assert_array_equal(allowed, (cols <= rows) & (cols >= last[rows]))
        crossing += int((tokens == EOD).any())
    assert crossing > 0, "some windows must cross a document boundary"


def test_a_tiny_model_learns_from_the_batches(demo, train_dataset):
    ds, _ = train_dataset
    samples = [ds[i] for i in range(len(ds))]
    vocab = DenseVocab(np.concatenate([s["tokens"].numpy() for s in samples] + [s["labels"].numpy() for s in samples]))
    keys = ("tokens", "labels", "loss_mask", "position_ids", "attention_mask")  # BlendedDataset adds dataset_id
    batches = [{k: torch.stack([s[k] for s in samples[i:i + 4]]) for k in keys}
               for i in range(0, len(samples) - 3, 4)]
    losses = train(batches, vocab, steps=64)
    first, last = np.mean(losses[:4]), np.mean(losses[-4:])
    assert np.isfinite(losses).all()
    assert last < 0.7 * first, f"loss did not fall: {first:.2f} → {last:.2f}"
