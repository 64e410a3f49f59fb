"""Export: token shards → the files a training framework reads (DESIGN §6).

- `datakit.export.megatron`: Megatron indexed datasets (`PREFIX.bin` / `PREFIX.idx`, `MMIDIDX` version 1, int32
  tokens), read back by megatron-core's `IndexedDataset` and `GPTDataset`; a strict index reader; the blend file
  (``w1 prefix1 w2 prefix2 …``) for ``--data-path`` / ``--data-args-path``.
"""
