#!/usr/bin/env bash
# A tiny model on one GPU over the same export (the demo's is enough): checks that Megatron-LM reads datakit's
# .bin/.idx and blend file and that the loss goes down. Same tokenizer and vocabulary as the 72B run.
EVAL_INTERVAL=${EVAL_INTERVAL:-10} EVAL_ITERS=${EVAL_ITERS:-2}  # 50 steps: validate every 10
source "$(dirname "$0")/common.sh"
exec torchrun --nproc-per-node 1 "${MEGATRON_LM}/pretrain_gpt.py" \
  --num-layers 2 --hidden-size 256 --ffn-hidden-size 1024 --num-attention-heads 4 \
  --group-query-attention --num-query-groups 2 --add-qkv-bias --disable-bias-linear --swiglu \
  --normalization RMSNorm --norm-epsilon 1e-5 --position-embedding-type rope --rotary-base 1000000 \
  --untie-embeddings-and-output-weights --make-vocab-size-divisible-by 512 \
  --seq-length 1024 --max-position-embeddings 1024 \
  --micro-batch-size 4 --global-batch-size 8 --train-iters 50 \
  --lr 3e-4 --min-lr 3e-5 --lr-decay-style cosine --lr-warmup-iters 5 \
  --bf16 --log-interval 5 --save-interval 1000000 \
  "${DATA_ARGS[@]}"
