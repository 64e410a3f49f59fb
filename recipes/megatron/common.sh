#!/usr/bin/env bash
# Shared by the Megatron-LM launch scripts: the data datakit exported and the tokenizer it used.
#   DATAKIT_EXPORT  folder written by `datakit export megatron` (holds blend.txt and manifest.json)
#   MEGATRON_LM     a Megatron-LM checkout (pretrain_gpt.py)
set -euo pipefail
: "${DATAKIT_EXPORT:?set DATAKIT_EXPORT to a datakit megatron export folder}"
: "${MEGATRON_LM:?set MEGATRON_LM to a Megatron-LM checkout}"
DATA_PATH=$(cat "${DATAKIT_EXPORT}/blend.txt")
# The export's manifest names the tokenizer; datakit's default is Qwen2.5 (EOD <|endoftext|> = 151643).
TOKENIZER=${TOKENIZER:-Qwen/Qwen2.5-72B}
DATA_ARGS=(
  --data-path ${DATA_PATH}
  --split 1000,0,0
  # datakit ends every document with EOD (<|endoftext|> = 151643): keep documents apart inside a packed sequence
  # (positions restart, attention stops at each EOD) and do not train across the boundary. Qwen's pad id equals
  # its EOD id; megatron-core >= 0.12 sees that and keeps EOD as a trained label (tests/test_training_proof.py).
  --eod-mask-loss --reset-position-ids --reset-attention-mask
  --tokenizer-type HuggingFaceTokenizer --tokenizer-model "${TOKENIZER}"
  --data-cache-path "${DATA_CACHE:-${DATAKIT_EXPORT}/cache}"
)
