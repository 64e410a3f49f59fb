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
  --tokenizer-type HuggingFaceTokenizer --tokenizer-model "${TOKENIZER}"
  --data-cache-path "${DATA_CACHE:-${DATAKIT_EXPORT}/cache}"
)
