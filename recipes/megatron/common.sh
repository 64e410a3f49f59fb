#!/usr/bin/env bash
# Shared by the Megatron-LM launch scripts: the data datakit exported and the tokenizer it used.
#   DATAKIT_EXPORT  folder written by `datakit export megatron` (holds blend.txt and manifest.json)
#   MEGATRON_LM     a Megatron-LM checkout (pretrain_gpt.py), core_v0.16.x (see README.md)
#   EVAL_INTERVAL, EVAL_ITERS   validation every N steps, over M batches (when the export has a validation split)
set -euo pipefail
: "${DATAKIT_EXPORT:?set DATAKIT_EXPORT to a datakit megatron export folder}"
: "${MEGATRON_LM:?set MEGATRON_LM to a Megatron-LM checkout}"
# The export's manifest names the tokenizer; datakit's default is Qwen2.5 (EOD <|endoftext|> = 151643).
TOKENIZER=${TOKENIZER:-Qwen/Qwen2.5-72B}
if [[ -f "${DATAKIT_EXPORT}/valid_blend.txt" ]]; then
  # The tokens stage held out whole repositories (its `validation` option): train on blend.txt, validate on
  # repositories the model never saw. Per-split paths replace --data-path, and Megatron refuses --split with them.
  SPLIT_ARGS=(
    --train-data-path $(cat "${DATAKIT_EXPORT}/blend.txt")
    --valid-data-path $(cat "${DATAKIT_EXPORT}/valid_blend.txt")
    --eval-interval "${EVAL_INTERVAL:-500}" --eval-iters "${EVAL_ITERS:-20}"
  )
else
  SPLIT_ARGS=(--data-path $(cat "${DATAKIT_EXPORT}/blend.txt") --split 1000,0,0 --eval-iters 0)
fi
DATA_ARGS=(
  "${SPLIT_ARGS[@]}"
  # datakit ends every document with EOD (<|endoftext|> = 151643): keep documents apart inside a packed sequence
  # (positions restart, attention stops at each EOD) and do not train across the boundary. Qwen's pad id equals
  # its EOD id; megatron-core >= 0.12 sees that and keeps EOD as a trained label (tests/test_training_proof.py).
  --eod-mask-loss --reset-position-ids --reset-attention-mask
  --tokenizer-type HuggingFaceTokenizer --tokenizer-model "${TOKENIZER}"
  --data-cache-path "${DATA_CACHE:-${DATAKIT_EXPORT}/cache}"
)
