"""A tiny training harness for the proofs that trainers learn from datakit's files (CPU, a few dozen steps).

`TinyGPT` is a small pre-norm transformer in plain torch that takes what Megatron's `GPTDataset` yields — tokens,
position ids (reset per document) and a `[b, 1, s, s]` boolean attention mask (True = masked, Megatron's
convention) — so document boundaries are honoured exactly as `--reset-attention-mask --reset-position-ids` ask.
(megatron-core's own `GPTModel` needs CUDA for its attention buffers.) Token ids are mapped onto a dense range of
the ids the data uses (`DenseVocab`), so the output layer is small; the mapping is a bijection on those ids, so
the data path is untouched. `train` returns the loss per step: the loss weighted by the loss mask, as
`pretrain_gpt.py` computes it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class DenseVocab:
    def __init__(self, ids: np.ndarray):
        self.ids = np.unique(np.asarray(ids, dtype=np.int64))
        self.size = len(self.ids)

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        dense = np.searchsorted(self.ids, t.numpy())
        if not np.array_equal(self.ids[np.minimum(dense, self.size - 1)], t.numpy()):
            raise ValueError("a token outside the vocabulary the data was said to use")
        return torch.from_numpy(dense)


class TinyGPT(nn.Module):
    def __init__(self, vocab: int, d: int = 64, layers: int = 2, heads: int = 4, max_positions: int = 4096):
        super().__init__()
        self.heads = heads
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_positions, d)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
            for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, tokens: torch.Tensor, position_ids: torch.Tensor, attention_mask: torch.Tensor):
        x = self.tok(tokens) + self.pos(position_ids)
        mask = attention_mask[:, 0].repeat_interleave(self.heads, dim=0)  # [b·heads, s, s], True = masked
        for block in self.blocks:
            x = block(x, src_mask=mask)
        return self.head(self.norm(x))


def masked_loss(logits: torch.Tensor, labels: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    losses = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
    mask = loss_mask.flatten().float()
    return (losses * mask).sum() / mask.sum().clamp(min=1)


def train(batches, vocab: DenseVocab, steps: int, lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Train a fresh TinyGPT on `batches` (dicts of stacked GPTDataset samples), cycling; the loss per step."""
    torch.manual_seed(seed)
    max_pos = max(int(b["position_ids"].max()) for b in batches) + 1
    model = TinyGPT(vocab.size, max_positions=max_pos)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        b = batches[step % len(batches)]
        loss = masked_loss(model(vocab(b["tokens"]), b["position_ids"], b["attention_mask"]), vocab(b["labels"]),
                           b["loss_mask"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def unigram_entropy(targets: np.ndarray) -> float:
    """Entropy (nats) of the targets' unigram distribution: a model that learned only token frequencies scores this."""
    _, counts = np.unique(np.asarray(targets), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def sft_batch(row: dict) -> dict:
    """A packed token-shard row (schemas/token_shard) as a flattening collator hands it to a Hugging Face causal
    LM: input_ids, position_ids restarting at each segment, labels = the ids where datakit's loss mask is 1 and
    -100 elsewhere (so also at each segment's first token: no label crosses a boundary). `n_loss_tokens`: the
    targets the model's shifted loss counts."""
    ids = torch.as_tensor(np.asarray(row["input_ids"], dtype=np.int64))
    mask = torch.as_tensor(np.asarray(row["loss_mask"], dtype=np.int64))
    lens = [int(n) for n in row["doc_lens"]]
    positions = torch.cat([torch.arange(n) for n in lens])
    labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
    starts = torch.cumsum(torch.as_tensor([0] + lens[:-1]), 0)
    labels[starts] = -100
    return {"input_ids": ids[None], "position_ids": positions[None], "labels": labels[None],
            "n_loss_tokens": int((labels[1:] != -100).sum())}


def causal_lm_loss(model, batch: dict) -> torch.Tensor:
    """The causal-LM loss a Hugging Face model computes from `labels` (shift by one, mean over targets ≠ -100),
    with the output layer applied only at the positions that have a target: with a 152k vocabulary the full
    logits of a row cost gigabytes on CPU for no difference in the loss."""
    hidden = model.model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != -100
    logits = model.lm_head(hidden[:, :-1][keep])
    return nn.functional.cross_entropy(logits.float(), targets[keep])
