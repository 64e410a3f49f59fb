"""Tokens (DESIGN §5): tokenizers (`tokenizer.py`: the built-in offline Qwen2.5 and any Hugging Face tokenizer,
on a tiktoken or a `tokenizers` engine) and ChatML rendering with loss masks (`chat.py`)."""
