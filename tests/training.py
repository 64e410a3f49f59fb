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
