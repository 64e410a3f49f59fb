"""Benchmark of the decontam content rule (`content_matches`): MB/s per core, index memory, anchor ratio.

    python benchmarks/bench_decontam.py [--mb 512 --seed 1234]

1. Loads the shipped fingerprint index (`default_index()`) and reports the bytes of its arrays (the membership
   bit table included) and the process RSS before and after.
2. Builds a deterministic pool of up to 48 MB of documents (27 MB with Python 3.11: all of the standard library's
   .py files, sorted by path) cut into documents of 8-128 KB (log-uniform sizes from --seed), 15% of them led by
   generated issue text; 1 document in 100 has a SWE-bench Verified problem statement or gold patch pasted in
   (when ../shared/data/swebench exists), so the match path runs.
3. Runs `content_matches` over the pool, cycled until --mb MB (UTF-8 bytes) have been checked, single process, and
   reports MB/s; then the same on 64 MB of fixed-size documents (4 KB, 32 KB, 256 KB).
4. Anchor: a naive pure-Python implementation (regex words, a Python set of 13-word tuples of the same reference
   texts, one set lookup per n-gram) on a 16 MB slice of the pool, against `content_matches` on the same slice.
5. Prints a Markdown summary and writes benchmarks/results/decontam.json. Timings are reported, never asserted.

    python benchmarks/bench_decontam.py --e2e [--e2e-mb 512 --numpy --baseline DIR --repeat 3]

is the whole `datakit decontam` process instead (see `e2e()`): CPU, wall and peak RSS per child process, the
start-up, the I/O floor and the scan alone, optionally against the same code on its numpy path (`--numpy`:
DATAKIT_NO_NATIVE=1, i.e. without the compiled scan kernel) and an earlier checkout, run interleaved.

    python benchmarks/bench_decontam.py --rss-mb 51.2,512 [--repeat 2]

is the peak RSS of the whole process on 1x and 10x input (`flat_memory()`, issue 16).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

from datakit.decontam.content import content_matches  # noqa: E402
from datakit.decontam.index import default_index  # noqa: E402

SWEBENCH = HERE.parents[1] / "shared" / "data" / "swebench"
INDEX_FILE = HERE.parent / "datakit" / "decontam" / "data" / "swebench_verified.npz"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reference_texts() -> list[str]:
    if not (SWEBENCH / "verified.jsonl").is_file():
        return []
    out = []
    for line in (SWEBENCH / "verified.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        out += [r["problem_statement"], r["patch"]]
    tp = SWEBENCH / "verified_test_patches.jsonl"
    if tp.is_file():
        out += [json.loads(line)["test_patch"] for line in tp.read_text(encoding="utf-8").splitlines()]
    return out


def issue_text(rng: random.Random, i: int) -> str:
    libs = ["django QuerySet", "sympy Matrix", "matplotlib colorbar", "pandas DataFrame", "numpy ufunc", "flask app"]
    body = []
    for _ in range(rng.randint(5, 40)):
        lib = rng.choice(libs)
        body.append(f"When calling {lib}.method{rng.randint(0, 99)}() with argument {rng.randint(0, 10**6)} the "
                    f"result is {rng.choice(['wrong', 'None', 'slow', 'duplicated'])} (see #{rng.randint(1, 99999)}).")
        if rng.random() < 0.3:
            body.append(f'  File "/home/u{i}/env/lib/site.py", line {rng.randint(1, 900)}, in f{rng.randint(0, 99)}')
    return f"Issue {i}: {rng.choice(libs)} misbehaves\n\n" + "\n".join(body)


def build_pool(target_mb: float, seed: int, refs: list[str]) -> list[str]:
    rng = random.Random(seed)
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py"))
    docs, size, cur, i = [], 0, [], 0
    want = int(math.exp(rng.uniform(math.log(8 << 10), math.log(128 << 10))))
    for p in files:
        if "site-packages" in p.parts:
            continue
        try:
            cur.append(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
        while sum(map(len, cur)) >= want:
            blob = "".join(cur)
            doc, rest = blob[:want], blob[want:]
            cur = [rest]
            if rng.random() < 0.15:
                doc = issue_text(rng, i) + "\n\n" + doc[: want // 4]
            if refs and i % 100 == 0:
                doc += "\n\n" + rng.choice(refs)
            docs.append(doc)
            size += len(doc.encode("utf-8"))
            i += 1
            want = int(math.exp(rng.uniform(math.log(8 << 10), math.log(128 << 10))))
            if size >= target_mb * 2**20:
                return docs
    return docs


def run(docs: list[str], index, target_bytes: int) -> dict:
    sizes = [len(d.encode("utf-8")) for d in docs]
    done = n_docs = flagged = 0
    t0 = time.perf_counter()
    while done < target_bytes:
        for d, s in zip(docs, sizes):
            if content_matches(d, index):
                flagged += 1
            done += s
            n_docs += 1
            if done >= target_bytes:
                break
    dt = time.perf_counter() - t0
    return {"bytes": done, "docs": n_docs, "seconds": round(dt, 3), "mb_per_s": round(done / 2**20 / dt, 1),
            "flagged": flagged}


WORD = re.compile(r"\w+")


def naive_build(refs: list[str], n: int) -> set:
    s = set()
    for t in refs:
        w = WORD.findall(t.lower())
        s.update(tuple(w[i:i + n]) for i in range(len(w) - n + 1))
    return s


def naive_matches(text: str, ref: set, n: int) -> int:
    w = WORD.findall(text.lower())
    return sum(1 for i in range(len(w) - n + 1) if tuple(w[i:i + n]) in ref)


def write_samples_dataset(folder: Path, target_mb: float, seed: int, files: int = 8,
                          row_group_rows: int | None = None) -> tuple[int, int]:
    """Few-KB Sample rows (log-uniform 1-16 KB, median ~4 KB) cut from the standard library and site-packages
    sources, 1 in 100 with a Verified statement or patch pasted in, in `files` Parquet files (one row group each,
    or row groups of `row_group_rows`); (rows, text bytes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datakit.io.schemas import arrow_schema

    rng = random.Random(seed)
    refs = reference_texts()
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    paths = sorted(p for r in roots for p in r.rglob("*.py"))
    rng.shuffle(paths)
    folder.mkdir(parents=True, exist_ok=True)
    schema = arrow_schema("sample")
    per_file = target_mb * 2**20 / files
    rows, total, buf, k, i = [], 0, "", 0, 0
    writer_bytes = 0
    src = iter(paths)
    while k < files:
        want = int(math.exp(rng.uniform(math.log(1 << 10), math.log(16 << 10))))
        while len(buf) < want:
            p = next(src, None)
            if p is None:
                src = iter(paths)
                continue
            try:
                buf += p.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                pass
        text, buf = buf[:want], buf[want:]
        if refs and i % 100 == 0:
            text += "\n\n" + rng.choice(refs)[:4000]
        n = len(text.encode("utf-8"))
        rows.append({"id": f"b{i:09d}", "kind": "edit", "role": "bugfixer", "text": text,
                     "meta": {"repo": f"bench/repo{i % 500}", "pr": i}, "source": None})
        writer_bytes += n
        total += n
        i += 1
        if writer_bytes >= per_file:
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / f"{k:05d}.parquet", compression="zstd",
                           row_group_size=row_group_rows)
            rows, writer_bytes, k = [], 0, k + 1
    return i, total


def _child(cmd: list[str], pythonpath: str | None = None, env_extra: dict | None = None) -> dict:
    """Run `cmd` as a child process: wall seconds, CPU seconds (user + system) and peak RSS of that child alone.
    With `pythonpath` it also runs there (`python -m` puts the working folder first on sys.path); `env_extra`
    (e.g. DATAKIT_NO_NATIVE=1) is added to its environment."""
    env = {**os.environ, **(env_extra or {})}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:  # (files: a chatty child never blocks)
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=pythonpath or HERE.parent, env=env)
        _, status, ru = os.wait4(proc.pid, 0)  # this child's own rusage
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}")
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": ru.ru_maxrss / 1024, "stdout": stdout}


def io_floor(inp: str, out: str) -> int:
    """The stage's I/O alone: read every Sample Parquet file in Arrow batches and write all rows back with the
    step's writer (`_BatchWriter`: zstd, its dictionary columns, page index), no decontamination, no datatrove.
    Prints the CPU seconds of that loop (the process's imports are start-up, measured separately)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datakit.decontam.steps import BATCH_ROWS, _BatchWriter, _conform_batch
    from datakit.io.schemas import arrow_schema

    schema = arrow_schema("sample")
    t = time.process_time()  # (the imports above are start-up, not I/O)
    writer = _BatchWriter(out, "sample", 0)
    for path in sorted(Path(inp).glob("*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
            writer.write_table(pa.Table.from_batches([_conform_batch(batch, schema)]))
    writer.close()
    print(json.dumps({"io_cpu_s": round(time.process_time() - t, 2)}))
    return 0


KERNEL_ACTIVE = "from datakit.decontam.content import kernel; print(kernel() is not None)"

# The scan alone, in the child process of whichever datakit is on its path: `batch_scan` over the input's texts
# (read first, then timed; CPU seconds of the scan only, best of 2 passes). Printed as JSON.
SCAN_ALONE = """
import glob, json, sys, time
import pyarrow.parquet as pq
from datakit.decontam.content import batch_scan
from datakit.decontam.index import default_index
index = default_index()
batches = [b.column("text").to_pylist() for f in sorted(glob.glob(sys.argv[1] + "/*.parquet"))
           for b in pq.ParquetFile(f).iter_batches(batch_size=2048, columns=["text"])]
nbytes = sum(len(t.encode("utf-8", "surrogatepass")) for b in batches for t in b)
best = None
for _ in range(2):
    t = time.process_time()
    flagged = sum(int(batch_scan(b, index)[0].sum()) for b in batches)
    best = min(best or 1e9, time.process_time() - t)
print(json.dumps({"cpu_s": round(best, 2), "mb_per_cpu_s": round(nbytes / 2**20 / best, 1), "flagged": flagged}))
"""


def e2e(a) -> dict:
    """`datakit decontam` as a whole process on few-KB samples: MB of text per CPU-second and wall time, peak RSS,
    and the start-up (the same command on a one-sample input); the scan alone (`SCAN_ALONE`) for comparison. With --baseline DIR (a checkout of an earlier
    datakit, e.g. `git archive REV | tar -x -C DIR`), the same commands run with PYTHONPATH=DIR too, interleaved
    with the current code, --repeat times each, so both see the same machine load; the least CPU is reported.
    The I/O floor (`io_floor`: the same Parquet read and rewrite, nothing else) runs as a process the same way."""
    work = HERE / "work-decontam"
    inp, facts = e2e_input(work, a.e2e_mb, a.seed)
    tiny = work / "in-tiny"
    if not tiny.is_dir():
        write_samples_dataset(tiny, 0.001, a.seed, files=1)
    mb = facts["bytes"] / 2**20
    # name -> (PYTHONPATH, extra environment): the current code (its compiled scan kernel where built), the same
    # code on its numpy path (--numpy), an earlier checkout (--baseline)
    versions = {"current": (None, {}), **({"numpy": (None, {"DATAKIT_NO_NATIVE": "1"})} if a.numpy else {}),
                **({"baseline": (str(Path(a.baseline).resolve()), {})} if a.baseline else {})}

    def cli(inp_dir: Path, version: tuple) -> dict:
        return decontam_cli(work, inp_dir, *version)

    startup = {v: [] for v in versions}
    runs = {v: [] for v in versions}
    floor = []
    quarantined = {}
    for _ in range(a.repeat):
        for v, version in versions.items():
            startup[v].append(cli(tiny, version))
        for v, version in versions.items():
            runs[v].append(cli(inp, version))
            stats = json.loads((work / "out" / "decontam" / "stats.json").read_text())["units"]["samples"]
            quarantined[v] = {"read": stats["read"], "quarantined": sum(stats["quarantined"].values())}
        shutil.rmtree(work / "floor", ignore_errors=True)
        floor.append(_child([sys.executable, str(Path(__file__).resolve()), "--io-floor", str(inp),
                             str(work / "floor")]))

    scan, kernel = {}, {}
    for v, (path, extra) in versions.items():
        env = {**os.environ, **extra, **({"PYTHONPATH": path} if path else {})}
        done = subprocess.run([sys.executable, "-c", SCAN_ALONE, str(inp)], capture_output=True, text=True, check=True,
                              cwd=path or HERE.parent, env=env)
        scan[v] = json.loads(done.stdout)
        kernel[v] = subprocess.run([sys.executable, "-c", KERNEL_ACTIVE], capture_output=True, text=True,
                                   cwd=path or HERE.parent, env=env).stdout.strip() or "no kernel() (older code)"

    def summary(rs: list[dict], su: list[dict] | None = None) -> dict:
        best = min(rs, key=lambda r: r["cpu_s"])
        wall = min(r["wall_s"] for r in rs)
        out = {"wall_s": round(wall, 2), "mb_per_s_wall": round(mb / wall, 1),
               "cpu_s": round(best["cpu_s"], 2), "mb_per_cpu_s": round(mb / best["cpu_s"], 1),
               "cpu_s_all": [round(r["cpu_s"], 2) for r in rs], "peak_rss_mb": round(max(r["peak_rss_mb"] for r in rs))}
        if su:
            out["mb_per_cpu_s_after_startup"] = round(mb / max(best["cpu_s"] - min(r["cpu_s"] for r in su), 1e-9), 1)
        return out

    def startup_summary(rs: list[dict]) -> dict:
        return {"wall_s": round(min(r["wall_s"] for r in rs), 3), "cpu_s": round(min(r["cpu_s"] for r in rs), 3),
                "cpu_s_all": [round(r["cpu_s"], 3) for r in rs],
                "peak_rss_mb": round(max(r["peak_rss_mb"] for r in rs))}

    result = {"input": {"rows": facts["rows"], "mb": round(mb, 1),
                        "median_doc_bytes": "~4 KB (log-uniform 1-16 KB)", "files": 8},
              "startup": startup_summary(startup["current"]),
              "runs": {"1 task(s)": summary(runs["current"], startup["current"])},
              "io_floor": {**summary(floor), "io_cpu_s": min(json.loads(r["stdout"])["io_cpu_s"] for r in floor),
                           "io_mb_per_cpu_s": round(mb / min(json.loads(r["stdout"])["io_cpu_s"] for r in floor), 1)},
              "scan_alone": scan["current"], "scan_kernel": kernel["current"], "repeat": a.repeat,
              "quarantined": quarantined["current"]["quarantined"], "read": quarantined["current"]["read"]}
    for v in ("numpy", "baseline"):
        if v in versions:
            result[v] = {"pythonpath": versions[v][0], "env": versions[v][1], "scan_kernel": kernel[v],
                         "startup": startup_summary(startup[v]), "run": summary(runs[v], startup[v]),
                         "scan_alone": scan[v], **quarantined[v]}
    return result


def e2e_input(work: Path, mb: float, seed: int, row_group_rows: int | None = None) -> tuple[Path, dict]:
    """The --e2e input of `mb` MB (8 Sample Parquet files, `write_samples_dataset`), built once and cached."""
    inp = work / (f"in-{mb:g}mb" + (f"-rg{row_group_rows}" if row_group_rows else ""))
    if not (inp / "facts.json").is_file():
        shutil.rmtree(inp, ignore_errors=True)
        rows, nbytes = write_samples_dataset(inp, mb, seed, row_group_rows=row_group_rows)
        (inp / "facts.json").write_text(json.dumps({"rows": rows, "bytes": nbytes}))
    return inp, json.loads((inp / "facts.json").read_text())


def decontam_cli(work: Path, inp_dir: Path, pythonpath: str | None = None, env_extra: dict | None = None) -> dict:
    """One `datakit decontam` process (1 task, 1 worker, mirror rules off) on `inp_dir`, timed by `_child`."""
    shutil.rmtree(work / "out", ignore_errors=True)
    return _child([sys.executable, "-m", "datakit.cli", "decontam", "--input", str(inp_dir), "--tasks", "1",
                   "--workers", "1", "--output", str(work / "out"), "--quiet", "--no-mirror-rules"], pythonpath,
                  env_extra)


def flat_memory(a) -> dict:
    """Peak RSS of the whole `datakit decontam` process (1 task, 1 worker: one worker reads all of it) on 1x and
    10x input (--rss-mb, the same 8-file layout, so each file is 10x larger), --repeat runs each, interleaved.
    --row-group-rows N writes the inputs in row groups of N rows (as datakit's writers do: a Parquet reader holds
    a row group, so with one row group per file the reader's buffers grow with the file)."""
    work = HERE / "work-decontam"
    sizes = [float(x) for x in a.rss_mb.split(",")]
    inputs = [e2e_input(work, mb, a.seed, a.row_group_rows) for mb in sizes]
    runs = {mb: [] for mb in sizes}
    for _ in range(a.repeat):
        for mb, (inp, _) in zip(sizes, inputs):
            runs[mb].append(decontam_cli(work, inp))
    out = {f"{mb:g} MB": {"rows": facts["rows"], "mb": round(facts["bytes"] / 2**20, 1),
                          "peak_rss_mb": [round(r["peak_rss_mb"], 1) for r in runs[mb]],
                          "cpu_s": [round(r["cpu_s"], 2) for r in runs[mb]]}
           for mb, (_, facts) in zip(sizes, inputs)}
    lo, hi = (max(out[f"{mb:g} MB"]["peak_rss_mb"]) for mb in (sizes[0], sizes[-1]))
    return {"inputs": out, "row_group_rows": a.row_group_rows or "one per file", "growth": round(hi / lo - 1, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--e2e", action="store_true", help="only the end-to-end CLI measurement (see e2e())")
    ap.add_argument("--e2e-mb", type=float, default=512, help="MB of sample text for --e2e (default 512)")
    ap.add_argument("--baseline", help="--e2e: also run an earlier datakit checkout (a folder), interleaved")
    ap.add_argument("--numpy", action="store_true",
                    help="--e2e: also run the current code on its numpy path (DATAKIT_NO_NATIVE=1), interleaved")
    ap.add_argument("--repeat", type=int, default=3, help="--e2e: runs of each command (least CPU reported)")
    ap.add_argument("--rss-mb", help="peak RSS of the whole process on these input sizes (MB, e.g. 51.2,512)")
    ap.add_argument("--row-group-rows", type=int, help="--rss-mb: inputs in row groups of this many rows")
    ap.add_argument("--io-floor", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--mb", type=float, default=512, help="MB of text to check (default 512)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--anchor-mb", type=float, default=16)
    ap.add_argument("--out", default=str(HERE / "results" / "decontam.json"))
    a = ap.parse_args()
    if a.io_floor:
        return io_floor(*a.io_floor)
    if a.e2e or a.rss_mb:
        load_before = os.getloadavg()
        key, fn = ((f"flat_memory_rg{a.row_group_rows}" if a.row_group_rows else "flat_memory", flat_memory)
                   if a.rss_mb else ("e2e", e2e))
        result = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "machine": machine(),
                  "command": " ".join(sys.argv),
                  "python": sys.version.split()[0], "cpus": os.cpu_count(), key: fn(a),
                  "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]}
        out = Path(a.out)
        old = json.loads(out.read_text()) if out.is_file() else {}
        old[key] = result
        out.write_text(json.dumps(old, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        return 0

    rss0 = rss_mb()
    t = time.perf_counter()
    index = default_index()
    index.prefilter()
    load_s = time.perf_counter() - t
    rss_index = rss_mb() - rss0
    refs = reference_texts()
    pool = build_pool(48, a.seed, refs)
    pool_mb = sum(len(d.encode("utf-8")) for d in pool) / 2**20
    sizes = np.array([len(d) for d in pool])
    content_matches(pool[0], index)  # warm the power tables

    main_run = run(pool, index, int(a.mb * 2**20))
    fixed = {}
    blob = "".join(pool)
    for size in (4 << 10, 32 << 10, 256 << 10):
        docs = [blob[i:i + size] for i in range(0, len(blob), size)]
        fixed[f"{size >> 10} KB"] = run(docs, index, 64 * 2**20)

    anchor = None
    if refs:
        n = index.n
        t = time.perf_counter()
        ref_set = naive_build(refs, n)
        naive_build_s = time.perf_counter() - t
        sl, tot = [], 0
        for d in pool:
            sl.append(d)
            tot += len(d.encode("utf-8"))
            if tot >= a.anchor_mb * 2**20:
                break
        t = time.perf_counter()
        naive_flagged = sum(naive_matches(d, ref_set, n) >= 6 for d in sl)
        naive_s = time.perf_counter() - t
        t = time.perf_counter()
        fast_flagged = sum(bool(content_matches(d, index)) for d in sl)
        fast_s = time.perf_counter() - t
        anchor = {"slice_mb": round(tot / 2**20, 1), "naive_seconds": round(naive_s, 2),
                  "naive_mb_per_s": round(tot / 2**20 / naive_s, 2), "naive_set_build_s": round(naive_build_s, 2),
                  "naive_set_entries": len(ref_set), "fast_seconds": round(fast_s, 3),
                  "fast_mb_per_s": round(tot / 2**20 / fast_s, 1), "ratio": round(naive_s / fast_s, 1),
                  "naive_flagged": naive_flagged, "fast_flagged": fast_flagged, "docs": len(sl)}

    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "machine": machine(),
        "python": sys.version.split()[0], "numpy": np.__version__, "command": " ".join(sys.argv),
        "index": {"hashes": len(index.hashes), "array_bytes": index.nbytes(),
                  "prefilter_bytes": index.prefilter()[0].nbytes, "load_seconds": round(load_s, 3),
                  "rss_increase_mb": round(rss_index, 1), "file_bytes": INDEX_FILE.stat().st_size},
        "pool": {"docs": len(pool), "mb": round(pool_mb, 1), "doc_chars_median": int(np.median(sizes)),
                 "doc_chars_mean": int(sizes.mean())},
        "main": main_run, "fixed_size": fixed, "anchor": anchor, "peak_rss_mb": round(ru, 1),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print("\n| input | MB | docs | seconds | MB/s/core | flagged |\n|---|---:|---:|---:|---:|---:|")
    print(f"| mixed 8-128 KB docs (pool cycled) | {main_run['bytes'] / 2**20:.0f} | {main_run['docs']:,} | "
          f"{main_run['seconds']} | **{main_run['mb_per_s']}** | {main_run['flagged']} |")
    for k, r in fixed.items():
        print(f"| fixed {k} docs | {r['bytes'] / 2**20:.0f} | {r['docs']:,} | {r['seconds']} | {r['mb_per_s']} | "
              f"{r['flagged']} |")
    if anchor:
        print(f"\nanchor: naive {anchor['naive_mb_per_s']} MB/s vs {anchor['fast_mb_per_s']} MB/s on "
              f"{anchor['slice_mb']} MB = {anchor['ratio']}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
