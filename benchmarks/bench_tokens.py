"""Benchmark of the `tokens` stage against the engines and the tools it replaces, per CPU second and per wall second.

    python benchmarks/bench_tokens.py [--mb 20,200] [--out benchmarks/work/tokens]

Every path runs as a whole process (its wall, CPU and peak RSS are the process's, measured by the parent; for
datakit up to the stage's end, so the benchmark's own read-back of the shards for the id check is not counted), at each
--mb size in the same run: each engine's raw loop (the floor: gigatoken's `encode` per document, as datakit calls
it, fastokens `encode_batch_flat`, tiktoken's `encode_ordinary` loop; the encode calls are also timed alone),
datakit's tokens stage (1 and 2 encoder threads; on its default engine, on fastokens, on tiktoken), datatrove's
`DocumentTokenizer` and Megatron's `preprocess_data` path; and start-up on its own: the stage on one document per
task (default engine, fastokens). With --baseline DIR (an earlier checkout: `git archive REV datakit schemas |
tar -x -C DIR`), the `datakit_base` and `startup_base` paths run that datakit (PYTHONPATH=DIR), interleaved with
the current one on the same input.

1. Builds (once, cached under --out, streamed: memory does not grow with --mb) a deterministic corpus of at least
   --mb MB: Python source from the installed stdlib and site-packages (.py files in sorted order, cut at line
   ends into documents of log-normal size, median ~4 KB; past the ~200 MB of distinct source, further passes over
   the files rename every identifier-like word to another of the corpus by a hash of (pass, word), so the engines
   see text they have not seen, with the words of real code) and issue-like text (SWE-bench Verified problem
   statements from ../shared/data/swebench, with a second statement appended as a comment to half of them;
   generated text if that file is absent), about 10% of the bytes. Every text is NFC-normalised (Qwen2.5's
   normaliser), so the raw engines see exactly what the tokenizer would. The documents go through a bounded
   shuffle (SHUFFLE_BUFFER) with a fixed seed, each to a seeded random one of the --files datakit Sample Parquet
   files (schema `sample`, row groups of 1,000) and all to one JSONL file for the other tools.
2. Runs each path in a fresh interpreter (this script with --path), so its peak RSS (`ru_maxrss`) is its own:
   raw tiktoken `encode_ordinary_batch(num_threads=1)`; raw HF `tokenizers` `encode_batch` with
   RAYON_NUM_THREADS=1; datakit's tokens stage (`datakit run` of a one-stage recipe: tasks = files, workers 1,
   seq_len 32768; Parquet in → packed Parquet shards + manifest out); Megatron's `tools/preprocess_data.py`
   reproduced (multiprocessing.Pool(workers).imap(encoder.encode, jsonl lines, 32), megatron-core's own
   `build_tokenizer` (HuggingFaceTokenizer) and `IndexedDatasetBuilder(int32)`), with 2 and 1 workers;
   datatrove's `JsonlReader` → `DocumentTokenizer` (one task, one worker). All use Qwen2.5: datakit's built-in,
   the HF paths the equivalent `tokenizers` object converted from it.
3. Checks, in the same run, every document's ids on every path against raw tiktoken (a digest per document) and
   datakit's token count against the raw engines' (+1 EOD per document); prints a Markdown table and writes
   `benchmarks/results/tokens.json`. Timings are reported, never asserted; the exit status is 1 only if datakit's
   or raw HF's ids differ from raw tiktoken's.

Tokens/s counts the document tokens plus one EOD per document on every path (what datakit and the two tools
write); the raw engines are timed around the encode calls only, the tools over their whole run.
"""

from __future__ import annotations

import argparse
import builtins
import hashlib
import json
import keyword
import math
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
import unicodedata
import zlib
from datetime import datetime, timezone
from pathlib import Path

T0 = time.perf_counter()  # process start, for the raw paths' load time
HERE = Path(__file__).resolve().parent
SHARED = Path(__file__).resolve().parents[2] / "shared"
SWEBENCH = SHARED / "data" / "swebench" / "verified.jsonl"
GENERATOR_VERSION = 2  # bump when the corpus generator changes, so cached corpora are rebuilt
SEED = 1234
ISSUE_SHARE = 0.10
MEDIAN_DOC_CHARS = 4000
SEQ_LEN = 32768
ENGINE_BATCH = 1000
SHUFFLE_BUFFER = 20_000  # documents the corpus generator's bounded shuffle holds
# the paths whose ratios matter most: run --repeat times, interleaved
REPEATED = ("fastokens", "gigatoken", "datakit", "datakit_fastokens", "datakit_base", "startup", "startup_fastokens",
            "startup_base")
SPECIAL_STRINGS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|fim_", "<|file_sep|>", "<|repo_name|>",
                   "<tool_call>", "</tool_call>", "<|object_ref", "<|box_", "<|quad_", "<|vision_", "<|image_pad|>",
                   "<|video_pad|>")
# name -> (description, workers/cores used)
PATHS = {
    "tiktoken": ("raw tiktoken loop (`encode_ordinary` per document)", 1),
    "fastokens": ("raw fastokens `encode_batch_flat`, 1 thread", 1),
    "gigatoken": ("raw gigatoken `encode` per document (datakit's engine), 1 thread", 1),
    "hf": ("raw HF `tokenizers` `encode_batch`, RAYON_NUM_THREADS=1", 1),
    "datakit": ("datakit tokens stage (`datakit run`, 1 worker): Parquet → packed shards + manifest", 1),
    "datakit_t2": ("datakit tokens stage, num_threads=2 (encoder threads inside the task)", 2),
    "datakit_tiktoken": ("datakit tokens stage on tiktoken (`engine: tiktoken`)", 1),
    "datakit_fastokens": ("datakit tokens stage on fastokens (`engine: fastokens`)", 1),
    "datakit_base": ("datakit tokens stage of the --baseline checkout (an earlier datakit), same recipe", 1),
    "megatron2": ("Megatron `preprocess_data.py` equivalent, 2 workers", 2),
    "megatron1": ("Megatron `preprocess_data.py` equivalent, 1 worker", 1),
    "datatrove": ("datatrove `JsonlReader` → `DocumentTokenizer`, 1 task, 1 worker", 1),
    "startup": ("start-up: the datakit stage on 1 document per task (whole process)", 1),
    "startup_fastokens": ("start-up on fastokens (`engine: fastokens`)", 1),
    "startup_base": ("start-up of the --baseline checkout", 1),
}
DEFAULT_PATHS = ("tiktoken", "fastokens", "gigatoken", "datakit", "datakit_t2", "datakit_tiktoken", "megatron1",
                 "datatrove", "startup")
STARTUP = ("startup", "startup_fastokens", "startup_base")
BASELINE: str | None = None  # --baseline: a folder holding an earlier datakit package (the *_base paths)
WINDOW_TOKENS: int | None = None  # --window-tokens: the stage's packing window (None: the stage's default)
TIKTOKEN_RATE: float | None = None  # --tiktoken-rate: M tokens / CPU s of tiktoken's encode calls, when not run

from machine import machine_facts as _machine_facts, peak_rss_mib, write_results  # noqa: E402 - benchmarks/machine.py, beside this script


# ---------------------------------------------------------------------------------------------------------------
# the corpus
# ---------------------------------------------------------------------------------------------------------------


def _py_files() -> list[Path]:
    import sysconfig

    roots = []
    for key in ("stdlib", "purelib", "platlib"):
        p = Path(sysconfig.get_paths()[key]).resolve()
        if p not in roots:
            roots.append(p)
    files = []
    for root in roots:  # the stdlib without its own site-packages, then the environment's site-packages
        files += sorted(p for p in root.rglob("*.py")
                        if p.is_file() and not (root.name != "site-packages" and "site-packages" in p.parts))
    seen, out = set(), []
    for f in files:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            out.append(r)
    return out


def _cut(text: str, rng: random.Random) -> list[str]:
    """Cut a file at line ends into pieces of log-normal size (median MEDIAN_DOC_CHARS, 200 .. 200k chars)."""
    pieces, start = [], 0
    while start < len(text):
        target = int(min(200_000, max(200, rng.lognormvariate(math.log(MEDIAN_DOC_CHARS), 1.0))))
        end = start + target
        if end >= len(text) - 100:
            end = len(text)
        else:
            nl = text.find("\n", end)
            end = len(text) if nl < 0 else nl + 1
        pieces.append(text[start:end])
        start = end
    return pieces


def _issue_texts() -> list[tuple[str, str]]:
    if SWEBENCH.is_file():
        rows = [json.loads(line) for line in SWEBENCH.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [(r["instance_id"], f"# {r['repo']}: {r['instance_id']}\n\n{r['problem_statement']}") for r in rows]
    rng = random.Random(SEED)  # generated issue-like text when the SWE-bench file is absent
    words = ("error exception traceback when calling the function returns wrong value expected behaviour actual "
             "version python install module import fails after upgrade regression test case reproduce steps").split()
    out = []
    for i in range(500):
        paras = [" ".join(rng.choice(words) for _ in range(rng.randrange(20, 80))) for _ in range(rng.randrange(2, 6))]
        code = "\n".join(f">>> f({j})\nTraceback (most recent call last):\n  ValueError: bad {j}" for j in range(3))
        out.append((f"generated-{i}", f"# generated issue {i}\n\n" + "\n\n".join(paras) + f"\n\n```\n{code}\n```\n"))
    return out


def corpus_params(mb: int, n_files: int) -> dict:
    return {"mb": mb, "files": n_files, "seed": SEED, "generator": GENERATOR_VERSION, "issue_share": ISSUE_SHARE,
            "median_doc_chars": MEDIAN_DOC_CHARS, "issues_from": "swebench" if SWEBENCH.is_file() else "generated"}


_IDENT = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]{2,}\b")


class _Renamer:
    """Pass k > 0 over the source files renames every identifier-like word (3+ characters; not a keyword, builtin
    or dunder) to another identifier of the corpus, chosen by a hash of (k, word): a file's k-th variant is text
    the engines have not seen, with the words and token-per-byte ratio of real code. Pass 0 is the source as is
    and collects the pool of names (first appearance order, so it is deterministic)."""

    KEEP = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | {"self", "cls"}
    POOL_MAX = 200_000

    def __init__(self):
        self.pool: list[str] = []
        self._seen: set[str] = set()

    def collect(self, text: str) -> None:
        if len(self.pool) < self.POOL_MAX:
            for w in _IDENT.findall(text):
                if w not in self._seen and w not in self.KEEP and not w.startswith("__"):
                    self._seen.add(w)
                    self.pool.append(w)

    def variant(self, text: str, k: int) -> str:
        pool, keep, n = self.pool, self.KEEP, len(self.pool)
        salt = f"{k}\0".encode()
        mapping = {w: w if w in keep or w.startswith("__") else pool[zlib.crc32(salt + w.encode()) % n]
                   for w in set(_IDENT.findall(text))}
        return _IDENT.sub(lambda m: mapping[m.group()], text)


def _documents(budget: int, rng: random.Random, stats: dict):
    """(id, kind, text) of the corpus, streamed: code pieces of the .py files (pass 0, then renamed variants until
    the budget is reached), with an issue text whenever the issue bytes fall below ISSUE_SHARE of the total."""
    files = _py_files()
    issues = _issue_texts()
    renamer = _Renamer()
    n = code_bytes = issue_bytes = 0
    for k in range(1000):
        for path in files:
            if code_bytes + issue_bytes >= budget:
                stats.update(code_bytes=code_bytes, issue_bytes=issue_bytes, passes=k + 1)
                return
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            text = unicodedata.normalize("NFC", text)
            if not text.strip() or "\x00" in text:
                continue
            if k == 0:
                renamer.collect(text)
                stats["source_files"] = stats.get("source_files", 0) + 1
            else:
                text = renamer.variant(text, k)
            for piece in _cut(text, rng):
                if not piece.strip():
                    continue
                yield f"code/{n:08d}", "commit_bundle", piece
                n += 1
                code_bytes += len(piece.encode("utf-8"))
                while issue_bytes < ISSUE_SHARE * (code_bytes + issue_bytes):
                    iid, itext = issues[rng.randrange(len(issues))]
                    if rng.random() < 0.5:
                        _, other = issues[rng.randrange(len(issues))]
                        itext += "\n\n## Comment\n\n" + other.split("\n\n", 2)[-1][:3000]
                    itext = unicodedata.normalize("NFC", itext)
                    yield f"issue/{n:08d}", "synthetic", itext
                    n += 1
                    issue_bytes += len(itext.encode("utf-8"))
        if not renamer.pool:
            break
    raise SystemExit(f"only {code_bytes / 1e6:.0f} MB of .py text could be made; ask for a smaller --mb")


def _shuffled(items, rng: random.Random, size: int = SHUFFLE_BUFFER):
    """A bounded shuffle: each item waits in a buffer of `size` and leaves at a random turn (deterministic)."""
    buf: list = []
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        i = rng.randrange(size)
        yield buf[i]
        buf[i] = item
    rng.shuffle(buf)
    yield from buf


def ensure_corpus(out: Path, mb: int, n_files: int) -> dict:
    """The corpus folder's description (built if missing or built with other parameters). Streamed: documents go
    to a random file each (seeded) and are written in row groups of 1,000, so memory does not grow with --mb."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datakit.io.schemas import arrow_schema, conform

    folder = out / "corpus"
    stamp = folder / "corpus.json"
    params = corpus_params(mb, n_files)
    if stamp.is_file():
        info = json.loads(stamp.read_text())
        if info.get("params") == params:
            info["cached"] = True
            return info
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "samples").mkdir(parents=True)
    t0 = time.perf_counter()
    rng = random.Random(SEED)
    schema = arrow_schema("sample")
    writers = [pq.ParquetWriter(folder / "samples" / f"{f:05d}.parquet", schema, compression="zstd")
               for f in range(n_files)]
    pending: list[list[dict]] = [[] for _ in range(n_files)]

    def flush(f: int) -> None:
        writers[f].write_table(pa.Table.from_pylist(pending[f], schema=schema), row_group_size=1000)
        pending[f] = []

    digest = hashlib.sha256()
    stats: dict = {}
    sizes: list[int] = []
    counts = {"commit_bundle": 0, "synthetic": 0}
    special = 0
    with open(folder / "docs.jsonl", "w", encoding="utf-8") as jf:
        for i, kind, text in _shuffled(_documents(mb * 1_000_000, rng, stats), rng):
            f = rng.randrange(n_files)
            pending[f].append(conform({"id": i, "kind": kind, "role": "bugfixer", "text": text, "prompt": None,
                                       "completion": None, "messages": None, "meta": None, "source": None},
                                      "sample"))
            if len(pending[f]) >= 1000:
                flush(f)
            jf.write(json.dumps({"id": i, "text": text}, ensure_ascii=False) + "\n")
            digest.update(i.encode() + b"\0" + text.encode("utf-8") + b"\0")
            sizes.append(len(text.encode("utf-8")))
            counts[kind] += 1
            special += any(s in text for s in SPECIAL_STRINGS)
    for f in range(n_files):
        if pending[f]:
            flush(f)
        writers[f].close()
    sizes.sort()
    info = {
        "params": params,
        "documents": len(sizes),
        "code_documents": counts["commit_bundle"],
        "issue_documents": counts["synthetic"],
        "source_files": stats["source_files"],
        "source_passes": stats["passes"],
        "bytes": stats["code_bytes"] + stats["issue_bytes"],
        "code_bytes": stats["code_bytes"],
        "issue_bytes": stats["issue_bytes"],
        "doc_bytes_median": sizes[len(sizes) // 2],
        "doc_bytes_p90": sizes[int(len(sizes) * 0.9)],
        "doc_bytes_max": sizes[-1],
        "docs_with_special_token_strings": special,
        "parquet_mib": round(sum(p.stat().st_size for p in (folder / "samples").glob("*.parquet")) / 2**20, 1),
        "sha256": digest.hexdigest(),
        "build_s": round(time.perf_counter() - t0, 1),
    }
    stamp.write_text(json.dumps(info, indent=2) + "\n")
    info["cached"] = False
    return info


def iter_jsonl(path: Path, batch: int = ENGINE_BATCH):
    """(ids, texts) of the corpus JSONL in batches: a path holds one batch of text at a time, not the corpus."""
    ids, texts = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            ids.append(d["id"])
            texts.append(d["text"])
            if len(ids) == batch:
                yield ids, texts
                ids, texts = [], []
    if ids:
        yield ids, texts


def read_ids(path: Path) -> list[str]:
    return [i for ids, _ in iter_jsonl(path) for i in ids]


def hf_tokenizer_files(out: Path) -> Path:
    """A Hugging Face tokenizer directory equivalent to datakit's Qwen2.5 (tokenizer.json + tokenizer_config.json),
    as Megatron (AutoTokenizer) and datatrove (tokenizer.json) load it. It holds the 22 added tokens, as a real
    Qwen2.5 tokenizer does."""
    from datakit.tokens.tokenizer import load_tokenizer

    folder = out / "hf_qwen2.5"
    if not (folder / "tokenizer.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tok = load_tokenizer("qwen2.5", engine="hf")
        tok._impl.decoder.save(str(folder / "tokenizer.json"))  # the full backend: BPE + added tokens
        (folder / "tokenizer_config.json").write_text(json.dumps({
            "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
            "model_max_length": 10**9, "clean_up_tokenization_spaces": False}, indent=2))
    return folder


# ---------------------------------------------------------------------------------------------------------------
# the paths (each runs in its own process)
# ---------------------------------------------------------------------------------------------------------------


def _digest(ids) -> str:
    import numpy as np

    return hashlib.blake2b(np.asarray(ids, dtype=np.int32).tobytes(), digest_size=8).hexdigest()


def _usage() -> dict:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # Megatron's pool workers (their peak includes the fork)
    return {"peak_rss_mib": round(peak_rss_mib(), 1), "children_peak_rss_mib": round(kids.ru_maxrss / 1024, 1),
            "cpu_s": round(me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime, 2)}


def run_raw(path: str, corpus: Path) -> dict:
    """Raw engine speed: only the encode calls are timed (reading the JSONL and the digests are not)."""
    from datakit.tokens.tokenizer import load_tokenizer

    if path == "tiktoken":
        enc = load_tokenizer("qwen2.5", engine="tiktoken")._impl.enc  # the tiktoken.Encoding datakit builds

        def encode(batch):
            return [enc.encode_ordinary(t) for t in batch]
    elif path == "fastokens":
        import numpy as np

        fast = load_tokenizer("qwen2.5", engine="fastokens")._impl.tok  # the fastokens.Tokenizer datakit builds

        def encode(batch):
            flat, offsets = fast.encode_batch_flat(batch, split_special_tokens=True)
            return np.split(np.frombuffer(flat, np.uint32).view(np.int32), np.frombuffer(offsets, np.uint64)[1:-1])
    elif path == "gigatoken":
        giga = load_tokenizer("qwen2.5", engine="gigatoken")._impl.tok  # the BPETokenizer datakit builds

        def encode(batch):  # one uint32 array per document, as datakit calls it (its batch calls need awkward)
            return [giga.encode(t) for t in batch]
    else:
        encoder = load_tokenizer("qwen2.5", engine="hf")._impl.encoder  # Qwen2.5 BPE without added-token matching

        def encode(batch):
            return [e.ids for e in encoder.encode_batch(batch, add_special_tokens=False)]
    encode(["warm-up: def f(x):\n    return x  # café"])  # first-call allocations (not corpus text: no cache)
    load_s = time.perf_counter() - T0
    wall, cpu, n_tokens, digests = 0.0, 0.0, 0, {}
    for ids, batch in iter_jsonl(corpus / "docs.jsonl"):
        t0, c0 = time.perf_counter(), time.process_time()
        out = encode(batch)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        n_tokens += sum(len(x) for x in out)
        digests.update(zip(ids, map(_digest, out)))
    return {"encode_wall_s": round(wall, 3), "encode_cpu_s": round(cpu, 3), "load_s": round(load_s, 3),
            "documents": len(digests), "content_tokens": n_tokens, "digests": digests, **_usage()}


def run_datakit(corpus: Path, work: Path, num_threads: int = 1, limit: int | None = None, engine: str = "auto",
                tag: str = "") -> dict:
    """`datakit run` of a one-stage recipe, timed whole (tokenizer load, read, render, encode, pack, write,
    manifest); the shards are read back afterwards (not timed) for the id check. `limit`: records per task (the
    start-up paths); `tag` names the output (the baseline's runs are apart)."""
    # datakit.cli first, as in the `datakit` command: it sets OPENBLAS_NUM_THREADS before numpy is imported
    from datakit.cli import main as datakit_main

    import numpy as np  # noqa: I001 - after datakit.cli (above)
    from datakit.tokens.mixture import SOURCE_BY_KIND
    from datakit.tokens.shards import iter_documents, verify_manifest

    n_files = len(list((corpus / "samples").glob("*.parquet")))
    name = (f"datakit_t{num_threads}" + (f"_limit{limit}" if limit else "") + tag
            + ("" if engine == "auto" else f"_{engine}"))
    once = {source: {"upsample": 1} for source in sorted(set(SOURCE_BY_KIND.values()))}  # every document once
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    recipe = work / f"{name}.yaml"
    recipe.write_text(json.dumps({
        "name": "tokens-bench", "output": str(out),
        "executor": {"type": "local", "tasks": n_files, "workers": 1},
        "stages": [{"name": "tokens", "stage": "tokens", "input": str(corpus / "samples"), "tasks": n_files,
                    "options": {"tokenizer": "qwen2.5", "engine": engine, "seq_len": SEQ_LEN,
                                "num_threads": num_threads, "mixture": once,
                                **({"window_tokens": WINDOW_TOKENS} if WINDOW_TOKENS else {})}}]},
        indent=2))
    t0 = time.perf_counter()
    rc = datakit_main(["run", str(recipe), "--quiet", "--force"] + (["--limit", str(limit)] if limit else []))
    t_end = time.perf_counter()
    wall = t_end - t0
    usage = _usage()  # CPU and peak RSS of the process up to the stage's end: not the read-back check below
    usage["pandas_imported"] = "pandas" in sys.modules
    if rc != 0:
        raise SystemExit(f"datakit run failed with status {rc}")
    if limit:
        manifest = verify_manifest(out / "tokens")
        return {"wall_s": round(wall, 3), "documents": manifest["documents"], "content_tokens": 0,
                "engine": manifest["tokenizer"]["engine"], **usage, "check_s": round(time.perf_counter() - t_end, 3)}
    manifest = verify_manifest(out / "tokens")
    lens, digests, eod_ok = {}, {}, True
    for sample_id, _source, ids, _mask in iter_documents(sorted((out / "tokens").glob("*.parquet"))):
        eod_ok &= bool(ids[-1] == manifest["eod_id"])
        lens[sample_id] = len(ids) - 1
        digests[sample_id] = _digest(ids[:-1])
    return {"wall_s": round(wall, 3), "documents": manifest["documents"], "content_tokens": sum(lens.values()),
            "manifest_tokens": manifest["tokens"], "rows": manifest["rows"],
            "padding_tokens": manifest["padding_tokens"], "padding_ratio": manifest["padding_ratio"],
            "max_window_tokens": max(json.loads(p.read_text())["max_window_tokens"]
                                     for p in (out / "tokens").glob("*.pack.json")),
            "shard_mib": round(sum((out / "tokens" / f).stat().st_size for f in manifest["files"]) / 2**20, 1),
            "eod_after_every_document": eod_ok, "digests": digests, "engine": manifest["tokenizer"]["engine"],
            **usage, "_np": np.__version__, "check_s": round(time.perf_counter() - t_end, 3)}


class _MegatronEncoder:
    """`tools/preprocess_data.py`'s Encoder (json_keys=["text"], no sentence split, --append-eod)."""

    def __init__(self, args):
        self.args = args

    def initializer(self):
        from megatron.core.tokenizers.text.utils.build_tokenizer import build_tokenizer

        _MegatronEncoder.tokenizer = build_tokenizer(self.args)

    def encode(self, json_line):
        data = json.loads(json_line)
        ids, lens = {}, {}
        for key in ["text"]:
            doc_ids, sentence_lens = [], []
            for sentence in [data[key]]:
                sentence_ids = _MegatronEncoder.tokenizer.tokenize(sentence)
                if len(sentence_ids) > 0:
                    doc_ids.extend(sentence_ids)
                    sentence_lens.append(len(sentence_ids))
            if len(doc_ids) > 0:
                doc_ids.append(_MegatronEncoder.tokenizer.eod)
                sentence_lens[-1] += 1
            ids[key] = doc_ids
            lens[key] = sentence_lens
        return ids, lens, len(json_line)


def run_megatron(corpus: Path, work: Path, workers: int, tok_dir: Path) -> dict:
    """Megatron's preprocess_data.py (process_json_file), with megatron-core's build_tokenizer and
    IndexedDatasetBuilder; timed from opening the input to finalize, like the script's own figures plus startup."""
    import multiprocessing
    import warnings
    from types import SimpleNamespace

    warnings.filterwarnings("ignore")
    from megatron.core.datasets import indexed_dataset
    from megatron.core.tokenizers.text.utils.build_tokenizer import build_tokenizer

    args = SimpleNamespace(tokenizer_type="HuggingFaceTokenizer", tokenizer_model=str(tok_dir), vocab_file=None,
                           merge_file=None, tokenizer_special_tokens=None, tokenizer_hf_use_fast=True,
                           trust_remote_code=False, tokenizer_hf_include_special_tokens=False,
                           tokenizer_metadata=None)
    prefix = work / f"megatron{workers}" / "docs_text_document"
    shutil.rmtree(prefix.parent, ignore_errors=True)
    prefix.parent.mkdir(parents=True)
    t0 = time.perf_counter()
    fin = open(corpus / "docs.jsonl", encoding="utf-8")
    encoder = _MegatronEncoder(args)
    tokenizer = build_tokenizer(args)
    pool = multiprocessing.Pool(workers, initializer=encoder.initializer)
    encoded_docs = pool.imap(encoder.encode, fin, 32)
    builder = indexed_dataset.IndexedDatasetBuilder(f"{prefix}.bin", dtype=indexed_dataset.DType.optimal_dtype(
        tokenizer.vocab_size))
    for doc, sentence_lens, _nbytes in encoded_docs:
        builder.add_document(doc["text"], sentence_lens["text"])
    fin.close()
    builder.finalize(f"{prefix}.idx")
    pool.close()
    pool.join()
    wall = time.perf_counter() - t0
    usage = _usage()
    ds = indexed_dataset.IndexedDataset(str(prefix))
    ids = read_ids(corpus / "docs.jsonl")
    eod = tokenizer.eod
    digests, total, eod_ok = {}, 0, True
    for i, sample_id in enumerate(ids):
        arr = ds[i]
        eod_ok &= bool(arr[-1] == eod)
        total += len(arr) - 1
        digests[sample_id] = _digest(arr[:-1])
    return {"wall_s": round(wall, 3), "documents": len(ds), "content_tokens": total, "workers": workers,
            "dtype": str(ds.index.dtype.__name__), "eod_after_every_document": eod_ok, "digests": digests, **usage}


def run_datatrove(corpus: Path, work: Path, tok_dir: Path) -> dict:
    import numpy as np
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens.tokenizer import DocumentTokenizer

    out = work / "datatrove"
    shutil.rmtree(out, ignore_errors=True)
    pipeline = [
        JsonlReader(str(corpus), glob_pattern="docs.jsonl", compression=None),
        DocumentTokenizer(str(out / "tokens"), tokenizer_name_or_path=str(tok_dir / "tokenizer.json"),
                          eos_token="<|endoftext|>", shuffle_documents=False),
    ]
    executor = LocalPipelineExecutor(pipeline, tasks=1, workers=1, logging_dir=str(out / "logs"))
    t0 = time.perf_counter()
    executor.run()
    wall = time.perf_counter() - t0
    usage = _usage()
    (ds_file,) = sorted((out / "tokens").glob("*.ds"))
    tokens = np.fromfile(ds_file, dtype=np.uint32)
    ends = np.fromfile(f"{ds_file}.index", dtype=np.uint64).astype(np.int64)
    ids = read_ids(corpus / "docs.jsonl")
    eod = 151643
    digests, total, eod_ok, start = {}, 0, True, 0
    for sample_id, end in zip(ids, ends.tolist()):
        doc = tokens[start:end]
        eod_ok &= bool(doc[-1] == eod)
        total += len(doc) - 1
        digests[sample_id] = _digest(doc[:-1])
        start = end
    return {"wall_s": round(wall, 3), "documents": len(ends), "content_tokens": total, "token_size": 4,
            "eod_after_every_document": eod_ok, "digests": digests, **usage}


def run_path(path: str, corpus: Path, work: Path) -> dict:
    if path in ("tiktoken", "fastokens", "gigatoken", "hf"):
        return run_raw(path, corpus)
    engine = next((e for e in ("tiktoken", "fastokens") if path.endswith(f"_{e}")), "auto")
    if path.startswith("datakit"):
        return run_datakit(corpus, work, num_threads=2 if path == "datakit_t2" else 1, engine=engine,
                           tag="_base" if path.endswith("_base") else "")
    if path in STARTUP:
        return run_datakit(corpus, work, limit=1, engine=engine, tag="_base" if path.endswith("_base") else "")
    if path.startswith("megatron"):
        return run_megatron(corpus, work, int(path[-1]), hf_tokenizer_files(work))
    return run_datatrove(corpus, work, hf_tokenizer_files(work))


def spawn(path: str, size_dir: Path) -> dict:
    """Runs one path in a fresh interpreter (this script with --path); its figures come back as JSON, with the
    whole process's wall and CPU (user + system of it and its children) measured here."""
    result_file = size_dir / f"result-{path}.json"
    result_file.unlink(missing_ok=True)
    env = dict(os.environ, RAYON_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PYTHONWARNINGS="ignore")
    if path.endswith("_base"):
        env["PYTHONPATH"] = BASELINE  # found before the editable install: the earlier datakit runs
    cmd = [sys.executable, str(Path(__file__).resolve()), "--out", str(size_dir), "--path", path,
           "--result-file", str(result_file)] + (["--window-tokens", str(WINDOW_TOKENS)] if WINDOW_TOKENS else [])
    log = size_dir / "logs" / f"{path}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
    process_wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"path {path} failed (status {proc.returncode}); see {log}:\n" + log.read_text()[-3000:])
    r = json.loads(result_file.read_text())
    r["process_wall_s"] = round(process_wall, 3)
    r["process_cpu_s"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 3)
    if "check_s" in r:  # a datakit path: the process as `datakit run` would be, without the read-back id check
        r["process_with_check"] = {"wall_s": r["process_wall_s"], "cpu_s": r["process_cpu_s"]}
        r["process_wall_s"] = round(process_wall - r["check_s"], 3)
        r["process_cpu_s"] = r["cpu_s"]
    return r


# ---------------------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------------------


def machine_facts() -> dict:
    import numpy
    import pyarrow
    import tiktoken
    import tokenizers

    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version(), "tiktoken": tiktoken.__version__,
                "tokenizers": tokenizers.__version__, "numpy": numpy.__version__, "pyarrow": pyarrow.__version__}
    for dist in ("fastokens", "gigatoken", "datatrove"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    for mod in ("transformers", "megatron.core"):
        try:
            m = __import__(mod, fromlist=["__version__"])
            versions[mod] = getattr(m, "__version__", "?")
        except Exception:  # noqa: BLE001 - only for the report
            versions[mod] = None
    return _machine_facts(**versions)


def compare(results: dict[str, dict], corpus_jsonl: Path, reference: str = "tiktoken") -> dict:
    """Per path: documents whose ids differ from the reference's (raw tiktoken's; raw fastokens' when tiktoken's
    loop did not run), and whether all of those hold special-token strings (which a tokenizer that matches added
    tokens in text turns into control tokens). Only the texts of differing documents are kept while the JSONL is
    read."""
    ref = results[reference]["digests"]
    diffs = {}
    for name, r in results.items():
        if name == reference or "digests" not in r:
            continue
        d = r["digests"]
        diffs[name] = (sorted(k for k in ref if d.get(k) != ref[k]), sorted(set(ref) - set(d)))
    wanted = {k for differ, _ in diffs.values() for k in differ}
    texts_by_id = {i: t for ids, texts in iter_jsonl(corpus_jsonl) for i, t in zip(ids, texts) if i in wanted}
    out = {}
    for name, (differ, missing) in diffs.items():
        special = [k for k in differ if any(s in texts_by_id[k] for s in SPECIAL_STRINGS)]
        out[name] = {"documents_compared": len(ref), "identical": len(ref) - len(differ), "differ": len(differ),
                     "missing": len(missing), "differ_with_special_token_strings": len(special),
                     "differ_examples": differ[:5]}
    return out


def add_rates(name: str, r: dict) -> dict:
    """Tokens per CPU second and per wall second of the whole process; for raw engines also of the encode calls
    alone (the floor)."""
    r["tokens"] = r["content_tokens"] + r["documents"]  # + one EOD per document
    r["cores"] = PATHS[name][1]
    r["tokens_per_cpu_s"] = r["tokens"] / max(r["process_cpu_s"], 1e-9)
    r["tokens_per_wall_s"] = r["tokens"] / max(r["process_wall_s"], 1e-9)
    if "encode_wall_s" in r:
        r["encode_tokens_per_cpu_s"] = r["tokens"] / max(r["encode_cpu_s"], 1e-9)
        r["encode_tokens_per_wall_s"] = r["tokens"] / max(r["encode_wall_s"], 1e-9)
    return r


def markdown_table(results: dict[str, dict]) -> str:
    # per CPU s against tiktoken's encode calls alone (the strict ratio) and against its whole process (the issue's
    # "as whole processes": it also starts, reads the JSONL and hashes); without tiktoken's loop in the run: its
    # encode calls from --tiktoken-rate (an earlier run's), and no whole-process column
    tt = results["tiktoken"]["encode_tokens_per_cpu_s"] if "tiktoken" in results else TIKTOKEN_RATE * 1e6
    tt_whole = results["tiktoken"]["tokens_per_cpu_s"] if "tiktoken" in results else None
    rows = ["| path | M tokens / CPU s | M tokens / wall s | ÷ tiktoken's encode calls (per CPU s) | "
            "÷ tiktoken's whole process (per CPU s) | wall s | CPU s | peak RSS MiB | "
            "encode calls alone: M tokens / CPU s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        if name in STARTUP:
            continue
        rss = f"{r['peak_rss_mib']:.0f}"
        if name.startswith("megatron"):
            rss += f" + {r['workers']} × {r['children_peak_rss_mib']:.0f}"
        floor = f"{r['encode_tokens_per_cpu_s'] / 1e6:.2f}" if "encode_tokens_per_cpu_s" in r else ""
        whole = f"{r['tokens_per_cpu_s'] / tt_whole:.2f}×" if tt_whole else ""
        rows.append(f"| {PATHS[name][0]} | {r['tokens_per_cpu_s'] / 1e6:.2f} | {r['tokens_per_wall_s'] / 1e6:.2f} | "
                    f"{r['tokens_per_cpu_s'] / tt:.2f}× | {whole} | {r['process_wall_s']:.1f} | "
                    f"{r['process_cpu_s']:.1f} | "
                    f"{rss} | {floor} |")
    return "\n".join(rows)


def run_size(mb: int, args: argparse.Namespace, paths: list[str]) -> dict:
    size_dir = Path(args.out).resolve() / f"mb{mb}"
    size_dir.mkdir(parents=True, exist_ok=True)
    print(f"corpus: {mb} MB in {args.files} Parquet files + JSONL ...", flush=True)
    corpus = ensure_corpus(size_dir, mb, args.files)
    print(f"  {'reused' if corpus['cached'] else 'built in %.0f s' % corpus['build_s']}: {corpus['documents']:,} "
          f"documents ({corpus['code_documents']:,} code, {corpus['issue_documents']:,} issue), "
          f"{corpus['bytes'] / 1e6:.1f} MB, median {corpus['doc_bytes_median']:,} B", flush=True)
    hf_tokenizer_files(size_dir / "runs")
    runs: dict[str, list[dict]] = {}
    order = [n for n in paths if n in REPEATED] * max(1, args.repeat) + [n for n in paths if n not in REPEATED]
    for name in order:
        load = os.getloadavg()[0]
        r = spawn(name, size_dir)
        r["load_avg_1m_before"] = round(load, 2)
        print(f"  {name}: {r['process_wall_s']:.1f} s wall, {r['process_cpu_s']:.1f} s CPU (load {load:.1f})",
              flush=True)
        runs.setdefault(name, []).append(r)
    results = {}
    for name in paths:
        r = min(runs[name], key=lambda x: x["process_cpu_s"])
        r["runs"] = [{"wall_s": x["process_wall_s"], "cpu_s": x["process_cpu_s"]} for x in runs[name]]
        r["peak_rss_mib"] = max(x["peak_rss_mib"] for x in runs[name])
        results[name] = add_rates(name, r)
    reference = "tiktoken" if "tiktoken" in results else "fastokens"  # fastokens = tiktoken: tests/test_tokenizer_engines.py
    checks = compare({k: v for k, v in results.items() if k not in STARTUP}, size_dir / "corpus" / "docs.jsonl",
                     reference)
    tt = results[reference]
    stage_paths = ("datakit", "datakit_t2", "datakit_base", "datakit_tiktoken", "datakit_fastokens")
    ok = all(c["differ"] == 0 for n, c in checks.items() if n in ("fastokens", "gigatoken", "hf") + stage_paths)
    for name in stage_paths:
        if name in results:
            dk = results[name]
            count_ok = dk["manifest_tokens"] == tt["content_tokens"] + tt["documents"]
            checks[name]["token_count_equals_raw_plus_eod"] = count_ok
            ok &= count_ok and dk["eod_after_every_document"]
    for r in results.values():
        r.pop("digests", None)
        r.pop("_np", None)
    targets = {}
    goal = 2.5 if mb < 2000 else 5.0
    # against tiktoken's loop = its encode calls alone (the whole tiktoken process also reads JSONL and hashes)
    tt_cpu, tt_wall = ((tt["encode_tokens_per_cpu_s"], tt["encode_tokens_per_wall_s"]) if reference == "tiktoken"
                       else (TIKTOKEN_RATE * 1e6, TIKTOKEN_RATE * 1e6))
    for name in ("datakit", "datakit_fastokens", "datakit_base"):
        if name not in results:
            continue
        dk = results[name]
        targets[f"{name}_vs_tiktoken_loop_per_core_wall"] = {
            "ratio": round(dk["tokens"] / dk["process_wall_s"] / dk["cores"] / tt_wall, 2), "target": goal,
            "against": "tiktoken's encode calls alone, per wall s of each core"}
        targets[f"{name}_vs_tiktoken_loop_per_cpu_s"] = {"ratio": round(dk["tokens_per_cpu_s"] / tt_cpu, 2),
                                                         "target": goal, "against": "tiktoken's encode calls alone"}
        if reference == "tiktoken":  # the issue's comparison "as whole processes": tiktoken's also starts and reads
            targets[f"{name}_vs_tiktoken_whole_process_per_cpu_s"] = {
                "ratio": round(dk["tokens_per_cpu_s"] / tt["tokens_per_cpu_s"], 2), "target": goal,
                "against": "tiktoken's whole process"}
        startup = name.replace("datakit", "startup")
        engine = dk["engine"] if dk["engine"] in results else "fastokens"  # the floor: the stage's own engine
        if engine in results and startup in results:
            floor = results[engine]["encode_cpu_s"]
            own = dk["process_cpu_s"] - results[startup]["process_cpu_s"] - floor
            targets[f"{name}_own_work_besides_encoding_vs_engine_cpu"] = {
                "ratio": round(own / floor, 2), "target": 1.0, "own_cpu_s": round(own, 2), "engine": engine,
                "engine_cpu_s": round(floor, 2), "met_if": "ratio <= target"}
    for name in STARTUP:
        if name in results:
            targets[f"{name}_wall_s"] = {"value": results[name]["process_wall_s"], "target": 1.0,
                                         "cpu_s": results[name]["process_cpu_s"], "met_if": "value < target"}
            targets[f"{name}_cpu_s"] = {"value": results[name]["process_cpu_s"], "target": 1.0,
                                        "median": statistics.median(x["cpu_s"] for x in results[name]["runs"]),
                                        "met_if": "value < target"}
    for t in targets.values():  # (start-up "under 1 s" is strict; own work "no more than" the engine is not)
        value = t.get("ratio", t.get("value"))
        t["met"] = {"value < target": value < t["target"], "ratio <= target": value <= t["target"]}.get(
            t.get("met_if"), value >= t["target"])
    print()
    print(markdown_table(results))
    print(f"targets: {json.dumps(targets)}")
    for key, t in targets.items():
        print(f"  {key}: {t.get('ratio', t.get('value'))}" + (f" (median {t['median']:.2f})" if "median" in t else "")
              + f", target {t['target']}{', against ' + t['against'] if 'against' in t else ''}: "
              + ("met" if t["met"] else "NOT met"))
    for name, c in checks.items():
        print(f"ids vs raw {reference}, {name}: {c['identical']:,}/{c['documents_compared']:,} identical, "
              f"{c['differ']} differ ({c['differ_with_special_token_strings']} of them hold special-token strings)")
    return {"corpus": corpus, "paths": results, "id_checks": checks, "targets": targets, "ids_ok": ok,
            "table": markdown_table(results)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", default="20,200", help="corpus sizes in MB (10^6 bytes of UTF-8), comma-separated "
                                                        "(default 20,200)")
    parser.add_argument("--files", type=int, default=8, help="Sample Parquet files = datakit tasks (default 8)")
    parser.add_argument("--out", default=str(HERE / "work" / "tokens"), help="work dir (corpus cache, outputs)")
    parser.add_argument("--paths", default=",".join(DEFAULT_PATHS), help=f"comma-separated subset of {','.join(PATHS)}")
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs of raw fastokens and datakit (interleaved, least CPU reported; default 2); "
                             "the other paths run once")
    parser.add_argument("--results", default=str(HERE / "results" / "tokens.json"))
    parser.add_argument("--baseline", help="a folder with an earlier datakit package (`git archive REV datakit schemas "
                                           "| tar -x -C DIR`): the *_base paths run it, interleaved")
    parser.add_argument("--window-tokens", type=int, help="the tokens stage's window_tokens (default: the stage's)")
    parser.add_argument("--tiktoken-rate", type=float,
                        help="M tokens per CPU s of tiktoken's encode calls from an earlier run (2 GB: ~6 CPU min): "
                             "lets --paths leave tiktoken out (ids then checked against raw fastokens)")
    parser.add_argument("--path", choices=sorted(PATHS), help=argparse.SUPPRESS)  # internal: one path
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    global BASELINE, WINDOW_TOKENS, TIKTOKEN_RATE
    BASELINE, WINDOW_TOKENS, TIKTOKEN_RATE = args.baseline, args.window_tokens, args.tiktoken_rate

    if args.path:  # child process; --out is the size's folder
        out = Path(args.out).resolve()
        result = run_path(args.path, out / "corpus", out / "runs")
        Path(args.result_file).write_text(json.dumps(result))
        return 0

    paths = [p for p in args.paths.split(",") if p]
    if any(p.endswith("_base") for p in paths) and not args.baseline:
        parser.error("the *_base paths need --baseline DIR (a folder holding an earlier datakit package)")
    unknown = set(paths) - set(PATHS)
    if unknown or ("tiktoken" not in paths and not (args.tiktoken_rate and "fastokens" in paths)):
        parser.error(f"--paths: unknown {sorted(unknown)}" if unknown else
                     "--paths must include tiktoken (the reference), or fastokens with --tiktoken-rate")
    if "gigatoken" in paths:
        import importlib.util
        if importlib.util.find_spec("gigatoken") is None:
            print("gigatoken is not installed: its path is left out (pip install gigatoken)", flush=True)
            paths.remove("gigatoken")
    # warm datakit's user cache (merges, vocab hash): the steady state of any machine after its first run
    from datakit.tokens.tokenizer import load_tokenizer

    load_tokenizer("qwen2.5").vocab_hash
    sizes = {}
    ok = True
    for mb in [int(x) for x in args.mb.split(",") if x]:
        sizes[str(mb)] = run_size(mb, args, paths)
        ok &= sizes[str(mb)]["ids_ok"]
    report = {
        "benchmark": "tokens",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["python", "benchmarks/bench_tokens.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_facts(),
        "parameters": {"seq_len": SEQ_LEN, "engine_batch": ENGINE_BATCH, "tokenizer": "qwen2.5",
                       "window_tokens": args.window_tokens or "the stage's default",
                       "repeat": {n: args.repeat if n in REPEATED else 1 for n in paths},
                       "reported_run": "least CPU of the runs of a path; peak RSS the highest",
                       "tokens_counted": "document tokens + 1 EOD per document, on every path",
                       "timing": "whole process (wall and CPU of the child and its children, measured by the "
                                 "parent); raw engines also report their encode calls alone; datakit paths: the "
                                 "process up to the stage's end (its rusage then), the read-back id check after "
                                 "it left out (process_with_check has both)",
                       "paths": {n: PATHS[n][0] for n in paths}},
        "baseline": args.baseline,
        "sizes": sizes,
        "ids_ok": ok,
    }
    write_results(args.results, report)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
