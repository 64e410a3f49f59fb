#!/usr/bin/env bash
# Continued pre-training of Qwen2.5-72B-Base on a datakit corpus (Kimi-Dev: ~150 B tokens at 32k).
# Architecture as published for Qwen2.5-72B: 80 layers, hidden 8192, FFN 29568, 64 heads, 8 query groups (GQA),
# QKV bias, SwiGLU, RMSNorm eps 1e-5, RoPE base 1e6, untied embeddings, padded vocabulary 152064
# (151,665 ids rounded up to a multiple of make-vocab-size-divisible-by × TP = 64 × 8 = 512 → 152,064).
# Parallelism for 32k sequences: TP 8, PP 4, CP 4 (128 GPUs per replica). Written against Megatron-LM core_v0.16.x;
# --load takes the HF weights converted with tools/checkpoint/convert.py (the command is in README.md). Not run yet.
source "$(dirname "$0")/common.sh"
MODEL_ARGS=(
  --num-layers 80 --hidden-size 8192 --ffn-hidden-size 29568
  --num-attention-heads 64 --group-query-attention --num-query-groups 8
  --add-qkv-bias --disable-bias-linear --swiglu --normalization RMSNorm --norm-epsilon 1e-5
  --position-embedding-type rope --rotary-base 1000000
  --untie-embeddings-and-output-weights --make-vocab-size-divisible-by 64
  --seq-length 32768 --max-position-embeddings 32768
  --attention-dropout 0.0 --hidden-dropout 0.0
)
PARALLEL_ARGS=(
  --tensor-model-parallel-size 8 --pipeline-model-parallel-size 4 --context-parallel-size 4
  --sequence-parallel --use-distributed-optimizer --overlap-grad-reduce --overlap-param-gather
)
TRAIN_ARGS=(
  --micro-batch-size 1 --global-batch-size 256          # 256 × 32k = 8.4 M tokens per step
  --train-iters 17880                                   # ≈ 150 B tokens
  --lr 1.0e-5 --min-lr 1.0e-6 --lr-decay-style cosine --lr-warmup-iters 200
  --weight-decay 0.1 --adam-beta1 0.9 --adam-beta2 0.95 --clip-grad 1.0
  --bf16 --attention-backend flash
  --load "${CHECKPOINT:?converted Qwen2.5-72B checkpoint}" --save "${SAVE:?output dir}" --no-load-optim --no-load-rng
  --save-interval 500 --log-interval 10        # validation: common.sh (the export's held-out repositories)
)
exec torchrun --nproc-per-node "${GPUS_PER_NODE:-8}" --nnodes "${NNODES:-16}" --node-rank "${NODE_RANK:-0}" \
  --master-addr "${MASTER_ADDR:-localhost}" --master-port "${MASTER_PORT:-6000}" \
  "${MEGATRON_LM}/pretrain_gpt.py" "${MODEL_ARGS[@]}" "${PARALLEL_ARGS[@]}" "${TRAIN_ARGS[@]}" "${DATA_ARGS[@]}"
