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
import sys
import sysconfig
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


def write_samples_dataset(folder: Path, target_mb: float, seed: int, files: int = 8) -> tuple[int, int]:
    """Few-KB Sample rows (log-uniform 1-16 KB, median ~4 KB) cut from the standard library and site-packages
    sources, 1 in 100 with a Verified statement or patch pasted in, in `files` Parquet files; (rows, text bytes)."""
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
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / f"{k:05d}.parquet", compression="zstd")
            rows, writer_bytes, k = [], 0, k + 1
    return i, total


def e2e(a) -> dict:
    """`datakit decontam` as a whole process on few-KB samples: MB of text per CPU-second and wall time, and the
    start-up (the same command on a one-sample input)."""
    import shutil
    import subprocess

    work = HERE / "work-decontam"
    inp = work / f"in-{a.e2e_mb:g}mb"
    if not (inp / "00007.parquet").is_file():
        shutil.rmtree(inp, ignore_errors=True)
        rows, nbytes = write_samples_dataset(inp, a.e2e_mb, a.seed)
        (inp / "facts.json").write_text(json.dumps({"rows": rows, "bytes": nbytes}))
    facts = json.loads((inp / "facts.json").read_text())
    tiny = work / "in-tiny"
    if not tiny.is_dir():
        write_samples_dataset(tiny, 0.001, a.seed, files=1)

    def timed(args: list[str]) -> tuple[float, float]:
        shutil.rmtree(work / "out", ignore_errors=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "datakit.cli", "decontam", *args, "--output", str(work / "out"),
                        "--quiet", "--no-mirror-rules"], check=True, capture_output=True, cwd=HERE.parent)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    startup = [timed(["--input", str(tiny), "--tasks", "1", "--workers", "1"]) for _ in range(3)]
    runs = {}
    for tasks in a.e2e_tasks:
        wall, cpu = timed(["--input", str(inp), "--tasks", str(tasks), "--workers", str(tasks)])
        mb = facts["bytes"] / 2**20
        run = {"wall_s": round(wall, 2), "mb_per_s_wall": round(mb / wall, 1)}
        if tasks == 1:  # (with more, datatrove's forkserver workers are not our children: their CPU is not seen)
            run.update(cpu_s=round(cpu, 2), mb_per_cpu_s=round(mb / cpu, 1),
                       mb_per_cpu_s_after_startup=round(mb / max(cpu - min(c for _, c in startup), 1e-9), 1))
        runs[f"{tasks} task(s)"] = run
    stats = json.loads((work / "out" / "decontam" / "stats.json").read_text())["units"]["samples"]
    return {"input": {"rows": facts["rows"], "mb": round(facts["bytes"] / 2**20, 1),
                      "median_doc_bytes": "~4 KB (log-uniform 1-16 KB)", "files": 8},
            "startup": {"wall_s": round(min(w for w, _ in startup), 3), "cpu_s": round(min(c for _, c in startup), 3)},
            "runs": runs, "quarantined": sum(stats["quarantined"].values()), "read": stats["read"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--e2e", action="store_true", help="only the end-to-end CLI measurement (see e2e())")
    ap.add_argument("--e2e-mb", type=float, default=512, help="MB of sample text for --e2e (default 512)")
    ap.add_argument("--e2e-tasks", type=int, nargs="+", default=[1], help="task counts to run --e2e with")
    ap.add_argument("--mb", type=float, default=512, help="MB of text to check (default 512)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--anchor-mb", type=float, default=16)
    ap.add_argument("--out", default=str(HERE / "results" / "decontam.json"))
    a = ap.parse_args()
    if a.e2e:
        load_before = os.getloadavg()
        result = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "command": " ".join(sys.argv),
                  "python": sys.version.split()[0], "cpus": os.cpu_count(), "e2e": e2e(a),
                  "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]}
        out = Path(a.out)
        old = json.loads(out.read_text()) if out.is_file() else {}
        old["e2e"] = result
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
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "machine": f"{cpu}, {os.cpu_count()} cores",
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
