"""Train megatron-core's own GPTModel on a datakit Megatron export, through GPTDataset, and print the loss curve.

The model is the 72B launcher's architecture at toy size: 2 layers, hidden 256, Qwen2.5's padded vocabulary
(152,064), GQA (4 heads, 2 query groups), RoPE (base 1e6), SwiGLU, RMSNorm, QKV bias, untied embeddings. The data
path is pretrain_gpt.py's with --eod-mask-loss --reset-position-ids --reset-attention-mask: the training blend
(`blend.txt`) and, when the export has one, the held-out validation split (`valid_blend.txt`, whole repositories
never seen in training) for the validation loss. One process, tensor/pipeline parallel 1; the local (non
Transformer-Engine) layer spec with the unfused softmax, so the per-document attention mask is honoured.

    python recipes/megatron/gpu_smoke.py --export out/demo/megatron --steps 300    # on one GPU
    python recipes/megatron/gpu_smoke.py --export out/demo/megatron --check        # CPU: data path + model build

(megatron-core's rotary embedding moves its buffers to CUDA in the forward pass, so training needs a GPU;
`--check` builds the datasets, one batch and the model on CPU and stops.)

Prints one line per `--log-every` steps (step, train loss, validation loss, tokens/s) and a JSON summary last.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

EOD = 151_643  # Qwen2.5 <|endoftext|>: datakit ends every document with it; Qwen's pad id is the same id
VOCAB = 151_665  # ids in use
PADDED_VOCAB = 152_064  # as the 72B launcher pads it (multiple of 512)


class QwenIds:
    """What GPTDataset reads of Megatron's tokenizer for Qwen2.5 (pad = EOD, as HuggingFaceTokenizer gives)."""

    vocab_size = VOCAB
    eod = EOD
    pad = EOD
    unique_identifiers = {"class": "Qwen2.5", "eod": EOD, "pad": EOD}


def build_datasets(export: Path, seq_len: int, train_samples: int, valid_samples: int, seed: int):
    """(train, valid or None) exactly as pretrain_gpt.py builds them from --train-data-path/--valid-data-path
    (or --data-path with --split 100,0,0 when the export has no validation split)."""
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.utils import get_blend_from_list

    train_words = (export / "blend.txt").read_text().split()
    valid_file = export / "valid_blend.txt"
    common = dict(random_seed=seed, sequence_length=seq_len, tokenizer=QwenIds(), reset_position_ids=True,
                  reset_attention_mask=True, eod_mask_loss=True, path_to_cache=None, mmap_bin_files=True)
    if valid_file.is_file():
        config = GPTDatasetConfig(blend_per_split=[get_blend_from_list(train_words),
                                                   get_blend_from_list(valid_file.read_text().split()), None],
                                  split=None, **common)
        sizes = [train_samples, valid_samples, 0]
    else:
        config = GPTDatasetConfig(blend=get_blend_from_list(train_words), split="100,0,0", **common)
        sizes = [train_samples, 0, 0]
    train, valid, _ = BlendedMegatronDatasetBuilder(GPTDataset, sizes, lambda: True, config).build()
    return train, valid


def batches(dataset, batch_size: int, device):
    """Endless batches of stacked GPTDataset samples, in index order (the dataset is already shuffled)."""
    import torch

    keys = ("tokens", "labels", "loss_mask", "position_ids", "attention_mask")
    i = 0
    while True:
        items = [dataset[(i + k) % len(dataset)] for k in range(batch_size)]
        i += batch_size
        yield {k: torch.stack([s[k] for s in items]).to(device) for k in keys}


def build_model(seq_len: int, device):
    import torch
    import torch.nn.functional as F
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.transformer.transformer_config import TransformerConfig

    # fp32 weights and plain AdamW (a tiny model; no Megatron mixed-precision optimizer needed), TF32 matmuls
    torch.backends.cuda.matmul.allow_tf32 = True
    config = TransformerConfig(
        num_layers=2, hidden_size=256, ffn_hidden_size=1024, num_attention_heads=4, num_query_groups=2,
        add_qkv_bias=True, add_bias_linear=False, gated_linear_unit=True, activation_func=F.silu,
        normalization="RMSNorm", layernorm_epsilon=1e-5, attention_dropout=0.0, hidden_dropout=0.0,
        masked_softmax_fusion=False,  # the unfused softmax applies GPTDataset's per-document mask as given
        bias_dropout_fusion=False, apply_rope_fusion=False, gradient_accumulation_fusion=False,
        params_dtype=torch.float32, use_cpu_initialization=device.type != "cuda")
    model = GPTModel(config, get_gpt_layer_local_spec(normalization="RMSNorm"), vocab_size=PADDED_VOCAB,
                     max_sequence_length=seq_len, position_embedding_type="rope", rotary_base=1_000_000,
                     share_embeddings_and_output_weights=False)
    return model.to(device)


def masked_loss(model, b):
    """pretrain_gpt.py's loss: per-token cross entropy from the model, averaged over the loss mask."""
    losses = model(b["tokens"], b["position_ids"], b["attention_mask"], labels=b["labels"]).float()
    mask = b["loss_mask"].float()
    return (losses * mask).sum() / mask.sum().clamp(min=1)


def init_single_process(device) -> None:
    import torch
    from megatron.core import parallel_state, tensor_parallel

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1)
    parallel_state.initialize_model_parallel(1, 1)
    if device.type == "cuda":
        tensor_parallel.model_parallel_cuda_manual_seed(1234)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--export", required=True, type=Path, help="a `datakit export megatron` folder (blend.txt)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--valid-batches", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--check", action="store_true",
                    help="CPU: build the datasets, one batch and the model, print their shapes, stop")
    args = ap.parse_args(argv)

    import torch

    device = torch.device("cpu" if args.check else "cuda")
    train, valid = build_datasets(args.export, args.seq_len, args.steps * args.batch_size,
                                  args.valid_batches * args.batch_size, args.seed)
    init_single_process(device)
    if args.check:
        b = next(batches(train, args.batch_size, device))
        model = build_model(args.seq_len, device)
        print(json.dumps({"train_samples": len(train), "valid_samples": len(valid) if valid else 0,
                          "parameters": sum(p.numel() for p in model.parameters()),
                          **{k: list(v.shape) for k, v in b.items()}}))
        torch.distributed.destroy_process_group()
        return 0
    torch.manual_seed(args.seed)
    model = build_model(args.seq_len, device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = max(1, args.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * min(s, args.steps) / args.steps)))

    def validation_loss() -> float | None:
        if valid is None:
            return None
        model.eval()
        with torch.no_grad():
            it = batches(valid, args.batch_size, device)
            value = sum(float(masked_loss(model, next(it))) for _ in range(args.valid_batches)) / args.valid_batches
        model.train()
        return value

    curve, it = [], batches(train, args.batch_size, device)
    tokens = 0
    start = time.perf_counter()
    for step in range(args.steps + 1):
        b = next(it)
        loss = masked_loss(model, b)
        if step % args.log_every == 0 or step == args.steps:
            torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            point = {"step": step, "loss": round(float(loss), 4), "valid_loss": validation_loss(),
                     "tokens_per_s": round(tokens / elapsed) if step else None}
            curve.append(point)
            print(json.dumps(point), flush=True)
        if step == args.steps:
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        tokens += b["tokens"].numel()
    print(json.dumps({"summary": {"device": torch.cuda.get_device_name(0), "steps": args.steps, "seq_len": args.seq_len,
                                  "batch_size": args.batch_size, "curve": curve,
                                  "first_loss": curve[0]["loss"], "last_loss": curve[-1]["loss"]}}))
    torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
