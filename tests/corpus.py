"""The tokenizer test corpus (also used by the benchmarks): deterministic, offline.

`build_corpus(min_tokens)` returns documents in a fixed order:
1. SWE-bench Verified problem statements (raw `\\r\\n` kept), gold patches and test patches, from
   `../shared/data/swebench/` when that folder exists (`SHARED`, located from the repository root);
2. generated snippets: NFD/combining characters, CRLF and lone-CR code, emoji (ZWJ, skin tones, flags), many
   scripts, odd whitespace, digits, contractions, special-token strings inside text;
3. Python source of the installed standard library (`sysconfig.get_paths()["stdlib"]`, .py files sorted by path,
   site-packages excluded, non-UTF-8 files skipped) until the estimated size reaches `min_tokens`.
The estimate assumes 4.2 UTF-8 bytes per token (Qwen2.5 gives ~3.7 on this mix, ~3.9 on stdlib code), so the real
count comes out above `min_tokens`; the tests assert the real count.
"""

from __future__ import annotations

import json
import random
import sysconfig
import unicodedata
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
SWEBENCH = SHARED / "data" / "swebench"
QWEN_REF = SHARED / "data" / "qwen2.5"
BYTES_PER_TOKEN = 4.2


def shared_available() -> bool:
    return (SWEBENCH / "verified.jsonl").is_file() and (QWEN_REF / "vocab.json").is_file()


def swebench_texts() -> list[str]:
    """Problem statements, gold patches, test patches (empty list when ../shared is absent)."""
    out: list[str] = []
    if not (SWEBENCH / "verified.jsonl").is_file():
        return out
    for line in (SWEBENCH / "verified.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out += [row["problem_statement"], row["patch"]]
    tests = SWEBENCH / "verified_test_patches.jsonl"
    if tests.is_file():
        for line in tests.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(json.loads(line)["test_patch"])
    return [t for t in out if t]


_WORDS = ["café", "naïve", "Ångström", "résumé", "Zürich", "São Paulo", "Tiếng Việt", "ễ", "한국어", "日本語のテキスト",
          "中文字符", "Ελληνικά", "русский", "עברית", "العربية", "हिन्दी", "ภาษาไทย", "Ǆemal", "ﬁnance", "Ⅻ", "①②③",
          "x²+y³", "∑∫√∞≠≤", "e\u0301", "a\u0308\u0304", "\u1100\u1161\u11a8", "o\u0302\u0323", "Å", "Ω"]
_EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "🇯🇵", "❤️", "🧑🏻‍💻", "1️⃣", "🐍", "\U0001F9EA", "☕"]
_SPACES = [" ", "  ", "\t", "\u00a0", "\u3000", "\u2028", "\u200b", "\ufeff", "   \t ", "\r\n", "\n\n\n", "\r", " \n "]
_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "<|fim_prefix|>", "<|file_sep|>",
            "<|endoftext|><|endoftext|>", "<|im_start|>assistant\n"]
_ENGLISH = ["I'm", "you'LL", "WE'RE", "it's", "they've", "don't", "he'd", "O'Neil", "HELLO", "world", "12345678",
            "3.14159", "0x1F", "1e-9", "foo_bar", "camelCase", "__init__", "self.x", "->", "!=", "...", "'''", '"""']


def generated_snippets(n: int = 400, seed: int = 1234) -> list[str]:
    """Unicode / whitespace / special-string torture snippets, partly NFD-normalised, partly CRLF."""
    rng = random.Random(seed)
    pool = _WORDS + _EMOJI + _SPACES + _SPECIAL + _ENGLISH
    out = []
    for i in range(n):
        parts = [rng.choice(pool) for _ in range(rng.randint(5, 80))]
        text = "".join(p + rng.choice(["", " ", " ", "\n", ", "]) for p in parts)
        if i % 3 == 0:
            text = unicodedata.normalize("NFD", text)
        elif i % 3 == 1:
            text = unicodedata.normalize("NFKD", text) if i % 2 else text.replace("\n", "\r\n")
        out.append(text)
    code = ('def f(x):\r\n    """Doc with café and 😀."""\r\n    return x  # naïve\r\n\r\n'
            "class A:\r    pass\r\n\tif True:\n\t\treturn '<|endoftext|>'\n")
    out += [code, unicodedata.normalize("NFD", code), code * 7, "", " ", "\n", "\r\n" * 50, " " * 100 + "x",
            "9" * 200, "😀" * 50, "e\u0301" * 30, "<|endoftext|>", "Hello, world!"]
    return out


def stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted((p for p in root.rglob("*.py") if not {"site-packages", "dist-packages"} & set(p.parts)),
                  key=lambda p: p.relative_to(root).as_posix())


def stdlib_texts(max_bytes: int) -> list[str]:
    """Standard-library Python files in path order until `max_bytes` UTF-8 bytes."""
    out: list[str] = []
    total = 0
    for path in stdlib_files():
        if total >= max_bytes:
            break
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        out.append(text)
        total += len(text.encode("utf-8"))
    return out


def build_corpus(min_tokens: int = 1_000_000) -> list[str]:
    """SWE-bench texts (when ../shared exists) + generated snippets + stdlib Python, ≥ ~min_tokens tokens."""
    docs = swebench_texts() + generated_snippets()
    have = sum(len(d.encode("utf-8")) for d in docs)
    need = int(min_tokens * BYTES_PER_TOKEN) - have
    if need > 0:
        docs += stdlib_texts(need)
    return docs
