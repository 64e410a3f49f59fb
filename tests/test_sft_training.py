"""Proof that the SFT shards feed a real trainer: a tiny randomly initialised `transformers` Qwen2 (2 layers, hidden
64, Qwen2.5's real vocabulary size) trains on the demo's packed SFT rows (their first 512 tokens) on CPU, the way the flattening collator
feeds packed data (position ids restarting at each document, no attention mask: transformers then builds the
block-diagonal mask from the position ids), labels -100 where datakit's loss mask is 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datakit.tokens.shards import iter_rows
from tests.training import causal_lm_loss, sft_batch, unigram_entropy

QWEN25_VOCAB = 151_936  # Qwen2.5's embedding rows (the tokenizer's 151,665 ids, padded)
STEPS = 40
WINDOW = 512  # train on each row's first 512 tokens: the 152k-row output layer makes a full row ~1 CPU s per step


def window(batch: dict, n: int = WINDOW) -> dict:
    """The first n positions of a batch (labels and positions cut alike), with its target count recomputed."""
    out = {k: v[:, :n] if torch.is_tensor(v) else v for k, v in batch.items()}
    out["n_loss_tokens"] = int((out["labels"][0, 1:] != -100).sum())
    return out


@pytest.fixture(scope="module")
def rows(demo_output):
    out = [r for p in sorted((demo_output / "sft_tokens").glob("*.parquet")) for r in iter_rows(p)]
    assert out
    return out


@pytest.fixture(scope="module")
def model_factory():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    def make():
        torch.manual_seed(0)
        config = Qwen2Config(vocab_size=QWEN25_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                             tie_word_embeddings=False, use_cache=False, attn_implementation="sdpa")
        return Qwen2ForCausalLM(config)
    return make


def test_batches_respect_masks_and_boundaries(rows):
    for row in rows:
        b = sft_batch(row)
        labels, positions = b["labels"][0].numpy(), b["position_ids"][0].numpy()
        mask = np.asarray(row["loss_mask"], dtype=np.int64)
        # the tokens in the loss (labels shifted by one, as the model's loss does) are exactly datakit's mask
        assert int((labels[1:] != -100).sum()) == int(mask.sum()) == b["n_loss_tokens"]
        starts = np.cumsum(np.concatenate([[0], row["doc_lens"][:-1]]))
        assert (positions[starts] == 0).all() and (np.diff(positions)[np.setdiff1d(np.arange(1, len(positions)),
                                                                                   starts) - 1] == 1).all()
        # no label crosses a boundary: the first token of every document is never a target
        assert (labels[starts] == -100).all()


def test_attention_stays_inside_each_document(rows, model_factory):
    model = model_factory().eval()
    row = next(r for r in rows if len(r["doc_lens"]) >= 2)
    b = sft_batch(row)
    first = int(row["doc_lens"][0])
    changed = b["input_ids"].clone()
    changed[0, :first] = 9707  # rewrite the whole first document
    with torch.no_grad():  # the hidden states (the logits are a function of them alone)
        a = model.model(input_ids=b["input_ids"], position_ids=b["position_ids"]).last_hidden_state[0]
        c = model.model(input_ids=changed, position_ids=b["position_ids"]).last_hidden_state[0]
    assert not torch.allclose(a[:first], c[:first])
    torch.testing.assert_close(a[first:], c[first:])  # what follows never saw the first document


def test_the_loss_is_the_models_own(rows, model_factory):
    model = model_factory().eval()
    b = sft_batch(rows[0])
    short = window(b)
    assert int((short["labels"] != -100).sum()) > 0
    with torch.no_grad():
        torch.testing.assert_close(causal_lm_loss(model, short),
                                   model(input_ids=short["input_ids"], position_ids=short["position_ids"],
                                         labels=short["labels"]).loss)


def test_a_tiny_qwen2_learns_from_the_sft_shards(rows, model_factory):
    model = model_factory().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95), fused=True)  # fused: 10x faster on CPU
    batches = [b for b in (window(sft_batch(r)) for r in rows) if b["n_loss_tokens"]]
    assert len(batches) >= 5
    targets = np.concatenate([b["labels"][0, 1:].numpy() for b in batches])
    entropy = unigram_entropy(targets[targets != -100])
    losses = []
    for step in range(STEPS):
        b = batches[step % len(batches)]
        loss = causal_lm_loss(model, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all()
    assert losses[0] > np.log(QWEN25_VOCAB) - 1  # a random start
    with torch.no_grad():  # the full loss over every target of every row
        model.eval()
        final = float(np.average([causal_lm_loss(model, b) for b in batches],
                                 weights=[b["n_loss_tokens"] for b in batches]))
    assert final < entropy, f"loss {final:.2f} did not fall below the unigram entropy {entropy:.2f} of the targets"
