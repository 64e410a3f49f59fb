"""Benchmark of GH Archive ingestion (`datakit.sources.gharchive`): events/s per core against a naive reader and
datatrove's JsonlReader on the same hour files.

    python benchmarks/bench_gharchive.py [--hours 8 --events 15000 --seed 1234 --repeat 3]

1. Generates (once, cached under benchmarks/work/gharchive/) --hours deterministic hour files of --events events
   each, gzip level 6, shaped as GH Archive's full-payload era with tests/gharchive_fixtures.py's writers: ~80 %
   other types (PushEvent with 1-4 commits, CreateEvent, WatchEvent, DeleteEvent, ForkEvent, ReleaseEvent,
   GollumEvent, ...) and ~20 % the five wanted types (PullRequestEvent with the full REST pull request,
   IssueCommentEvent, IssuesEvent, PullRequestReviewEvent, PullRequestReviewCommentEvent), over 3,000
   repositories of Zipf-like popularity, each PR's events spread over the hours in order.
2. Runs each variant in a fresh interpreter (this script with --variant), single process, so its peak RSS
   (VmHWM) is its own; --repeat runs per variant, interleaved, fastest kept:
   - `naive`: `gzip.open` + `json.loads` of every line (anchor);
   - `datatrove`: `JsonlReader(compression="gzip", text_key="type")` iterated to the end, one task (anchor: every
     line becomes a Document; the text key is the event type because events have no `text`);
   - `read`: datakit's `iter_event_lines` alone (decompression and line splitting: the floor);
   - `datakit`: `iter_event_lines` → `PullAggregator.wants` (byte prefilter) → `parse_event` → `add`, then
     `results()` consumed: every PullRecord built;
   - `datakit_noprefilter`: the same, every line parsed (what the prefilter saves);
   - `datakit_shard`: the same as rank 0 of 4 (`world_size=4`): one task of a repository-sharded run.
3. Checks that `datakit` and `datakit_noprefilter` build identical results (a digest) and that the shard's PRs
   are a subset; prints a Markdown table and writes benchmarks/results/gharchive.json. Timings are reported,
   never asserted.

Events/s counts every line of the files (all types), per second of one process's wall time.

    python benchmarks/bench_gharchive.py --stage-tasks 1,4 [--hours 24 --events 100000]

Stage mode (issue 11, item 8): the `sources.gharchive` stage itself (`datakit crawl --gharchive`, two phases: map
tasks partition the wanted lines by repository, reduce tasks aggregate a partition) on the same hour files, once
per task count, in a fresh output folder (no mirrors: every merged PR is quarantined as missing_mirror, so the
figures are the events' side). Per task, from the tasks' own reports (`.datakit/map/tasks/*.json`): bytes read
through read(2) (`rchar`), input bytes, partition bytes, wall, peak RSS. Checks that every task count gives the
same records, quarantine and stats.json units, and that no map task reads more than 1.1 x input / N. Merged into
benchmarks/results/gharchive.json under `stage_tasks`.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
import time
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from machine import machine_facts, peak_rss_mib, write_results  # noqa: E402 - benchmarks/machine.py, beside this script

GENERATOR_VERSION = 2  # bump when the generator changes, so cached files are rebuilt
WORK = HERE / "work" / "gharchive"
START = datetime(2024, 3, 5, 0, tzinfo=timezone.utc)
REPOS = 3000
SHARDS = 4
VARIANTS = {
    "naive": "`gzip.open` + `json.loads` per line (anchor)",
    "datatrove": "datatrove `JsonlReader(compression=\"gzip\")`, 1 task (anchor)",
    "read": "datakit `iter_event_lines` only (decompress + split)",
    "datakit": "**datakit**: `iter_event_lines` → `wants` → `parse_event` → `PullAggregator` → records",
    "datakit_noprefilter": "datakit without the byte prefilter (every line parsed)",
    "datakit_shard": f"datakit, one task of {SHARDS} (`rank=0, world_size={SHARDS}`)",
}
# share of all events, GH Archive-like (2015-2024); the wanted types sum to 0.20
OTHER_MIX = {"PushEvent": 0.48, "CreateEvent": 0.12, "WatchEvent": 0.09, "DeleteEvent": 0.04, "ForkEvent": 0.03,
             "ReleaseEvent": 0.01, "GollumEvent": 0.01, "PublicEvent": 0.01, "MemberEvent": 0.005,
             "CommitCommentEvent": 0.005}
WANTED_MIX = {"PullRequestEvent": 0.07, "IssueCommentEvent": 0.06, "IssuesEvent": 0.03,
              "PullRequestReviewEvent": 0.02, "PullRequestReviewCommentEvent": 0.02}
WORDS = ("the parser fails when input is long and the buffer overflows so we add a guard check test fix "
         "update docs refactor module handle error case return value config option build release version "
         "support python numpy array index cache memory thread lock timeout retry request response").split()


# ---------------------------------------------------------------------------------------------------------------
# the input
# ---------------------------------------------------------------------------------------------------------------


class Generator:
    """Deterministic GH Archive-like events: every PR's and issue's events in time order across the hours."""

    def __init__(self, seed: int, hours: int, per_hour: int):
        from tests import gharchive_fixtures as fx

        self.fx, self.rng, self.hours, self.per_hour = fx, random.Random(seed), hours, per_hour
        self.repos = [f"org{i % 400}/project-{i}" for i in range(REPOS)]
        self.weights = [1 / (i + 1) ** 0.9 for i in range(REPOS)]  # Zipf-like: a few busy repositories
        self.next_number = {}
        self.open_pulls: dict[str, list[dict]] = {}
        self.open_issues: dict[str, list[dict]] = {}
        self.event_id = 30_000_000_000

    def text(self, lo: int, hi: int) -> str:
        words = self.rng.choices(WORDS, k=self.rng.randint(lo, hi))
        if self.rng.random() < 0.3:
            words.append(f"#{self.rng.randint(1, 5000)}")
        return " ".join(words)

    def sha(self) -> str:
        return "%040x" % self.rng.getrandbits(160)

    def when(self, hour: int, second: int) -> str:
        return (START + timedelta(hours=hour, seconds=second)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def login(self) -> str:
        return f"user{int(self.rng.paretovariate(1.2)) % 20000}"

    def hour_events(self, hour: int) -> list[bytes]:
        kinds = list(OTHER_MIX) + list(WANTED_MIX)
        mix = self.rng.choices(kinds, weights=list(OTHER_MIX.values()) + list(WANTED_MIX.values()), k=self.per_hour)
        lines = []
        for i, kind in enumerate(mix):
            repo = self.rng.choices(self.repos, weights=self.weights)[0]
            created = self.when(hour, i * 3600 // self.per_hour)
            self.event_id += 1
            payload = self.wanted_payload(kind, repo, created) if kind in WANTED_MIX else self.other_payload(kind)
            lines.append(self.fx.event_line(self.fx.event(self.event_id, kind, self.login(), repo, payload, created)))
        return lines

    def other_payload(self, kind: str) -> dict:
        if kind == "PushEvent":
            commits = [{"sha": self.sha(), "author": {"email": f"{self.login()}@example.com", "name": self.login()},
                        "message": self.text(3, 40), "distinct": True,
                        "url": "https://api.github.com/repos/x/y/commits"}
                       for _ in range(self.rng.randint(1, 4))]
            return {"push_id": self.rng.getrandbits(34), "size": len(commits), "distinct_size": len(commits),
                    "ref": "refs/heads/main", "head": commits[-1]["sha"], "before": self.sha(), "commits": commits}
        if kind == "CreateEvent":
            return {"ref": f"topic-{self.rng.randint(1, 999)}", "ref_type": "branch", "master_branch": "main",
                    "description": self.text(0, 12), "pusher_type": "user"}
        if kind in ("WatchEvent", "PublicEvent"):
            return {"action": "started"} if kind == "WatchEvent" else {}
        if kind == "DeleteEvent":
            return {"ref": f"topic-{self.rng.randint(1, 999)}", "ref_type": "branch", "pusher_type": "user"}
        return {"action": "published", "description": self.text(5, 60), "forkee": {"full_name": "a/b", "id": 1}}

    def wanted_payload(self, kind: str, repo: str, created: str) -> dict:
        if kind == "PullRequestEvent" or not self.open_pulls.get(repo) and kind.startswith("PullRequestRev"):
            return self.pull_event(repo, created)
        if kind.startswith("PullRequestRev"):
            pr = self.rng.choice(self.open_pulls[repo])
            full = self.fx.full_pull(repo, **pr, updated_at=created, merged=None)
            body = self.text(0, 60)
            if kind == "PullRequestReviewEvent":
                return {"action": "created", "pull_request": full, "review": self.fx.review(
                    self.rng.getrandbits(40), author=self.login(), body=body, state="commented", submitted_at=created,
                    commit=pr["head_sha"])}
            return {"action": "created", "pull_request": full, "comment": self.fx.review_comment(
                self.rng.getrandbits(40), repo, pr["number"], author=self.login(), body=body, created_at=created,
                commit=pr["head_sha"])}
        if kind == "IssuesEvent" or not self.open_issues.get(repo):
            issue = {"number": self.number(repo), "title": self.text(3, 10), "body": self.text(10, 250),
                     "author": self.login(), "created_at": created}
            self.open_issues.setdefault(repo, []).append(issue)
            return {"action": "opened", "issue": self.fx.full_issue(repo, **issue, updated_at=created)}
        issue = self.rng.choice(self.open_issues[repo])
        return {"action": "created", "issue": self.fx.full_issue(repo, **issue, updated_at=created), "comment":
                self.fx.comment(self.rng.getrandbits(40), repo, issue["number"], author=self.login(),
                                body=self.text(3, 120), created_at=created)}

    def number(self, repo: str) -> int:
        self.next_number[repo] = self.next_number.get(repo, 0) + 1
        return self.next_number[repo]

    def pull_event(self, repo: str, created: str) -> dict:
        pulls = self.open_pulls.setdefault(repo, [])
        if pulls and self.rng.random() < 0.45:  # close one: merged 3 times in 4
            pr = pulls.pop(self.rng.randrange(len(pulls)))
            merged = self.rng.random() < 0.75
            full = self.fx.full_pull(repo, **pr, updated_at=created, state="closed", merged=merged,
                                     merged_at=created if merged else None, merge_sha=self.sha(), closed_at=created)
            return {"action": "closed", "number": pr["number"], "pull_request": full}
        pr = {"number": self.number(repo), "title": self.text(3, 12), "body": self.text(0, 300),
              "author": self.login(), "created_at": created, "head_sha": self.sha(), "base_sha": self.sha(),
              "labels": tuple(self.rng.sample(["bug", "docs", "enhancement", "ci"], self.rng.randint(0, 2)))}
        pulls.append(pr)
        return {"action": "opened", "number": pr["number"],
                "pull_request": self.fx.full_pull(repo, **pr, updated_at=created)}


def build_input(folder: Path, hours: int, per_hour: int, seed: int) -> list[Path]:
    """The hour files, generated once per (version, hours, events, seed) and reused."""
    stamp = folder / "input.json"
    want = {"version": GENERATOR_VERSION, "hours": hours, "events": per_hour, "seed": seed}
    paths = [folder / f"{START + timedelta(hours=h):%Y-%m-%d}-{(START + timedelta(hours=h)).hour}.json.gz"
             for h in range(hours)]
    if stamp.is_file() and json.loads(stamp.read_text()) == want and all(p.is_file() for p in paths):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.json.gz"):
        old.unlink()
    t = time.perf_counter()
    gen = Generator(seed, hours, per_hour)
    for h, path in enumerate(paths):
        path.write_bytes(gzip.compress(b"".join(line + b"\n" for line in gen.hour_events(h)), 6, mtime=0))
    stamp.write_text(json.dumps(want))
    print(f"generated {hours} hour files in {time.perf_counter() - t:.1f} s under {folder}", file=sys.stderr)
    return paths


# ---------------------------------------------------------------------------------------------------------------
# one variant, in its own process
# ---------------------------------------------------------------------------------------------------------------


def run_naive(paths: list[Path]) -> dict:
    events = 0
    for path in paths:
        with gzip.open(path) as f:
            for line in f:
                json.loads(line)
                events += 1
    return {"events": events}


def run_datatrove(paths: list[Path]) -> dict:
    from datatrove.pipeline.readers import JsonlReader

    reader = JsonlReader(str(paths[0].parent), compression="gzip", text_key="type", glob_pattern="*.json.gz")
    return {"events": sum(1 for _ in reader.run())}


def run_read(paths: list[Path]) -> dict:
    from datakit.sources.gharchive import iter_event_lines

    return {"events": sum(1 for path in paths for _ in iter_event_lines(path))}


def run_datakit(paths: list[Path], prefilter: bool = True, rank: int = 0, world_size: int = 1) -> dict:
    """The whole ingestion, timed up to the last record built; the checks on its output are not timed."""
    from datakit.sources.gharchive import PullAggregator, feed_lines, iter_event_lines

    t = time.perf_counter()
    agg = PullAggregator(rank=rank, world_size=world_size)
    counts = {"lines": 0, "skipped": 0, "parsed": 0, "bad": 0}
    for path in paths:
        for name, n in feed_lines(iter_event_lines(path), agg, prefilter=prefilter).items():
            counts[name] += n
    fed = time.perf_counter()
    built = sum(1 for _ in agg.results())  # streamed, as a writer takes them
    done = time.perf_counter()
    digest, states, keys = hashlib.sha256(), {}, []
    for record, issues, state in agg.results():  # again, untimed: `results` reads the state, it does not consume it
        digest.update(json.dumps([record, sorted(map(str, issues)), state], sort_keys=True).encode())
        states[state] = states.get(state, 0) + 1
        keys.append(f"{record['repo']}#{record['number']}")
    return {"seconds": done - t, "feed_seconds": fed - t, "results_seconds": done - fed, "events": counts["lines"],
            "counts": counts, "stats": agg.stats, "records": built, "states": states,
            "issues": agg.issue_count, "digest": digest.hexdigest(), "keys": keys}


def shard_of_key(key: str) -> int:
    """The shard (of SHARDS) that keeps the PR `owner/name#number`."""
    return zlib.crc32(key.rsplit("#", 1)[0].lower().encode()) % SHARDS


RUNNERS = {"naive": run_naive, "datatrove": run_datatrove, "read": run_read, "datakit": run_datakit,
           "datakit_noprefilter": lambda p: run_datakit(p, prefilter=False),
           "datakit_shard": lambda p: run_datakit(p, rank=0, world_size=SHARDS)}


def child(variant: str, folder: Path) -> None:
    paths = sorted(folder.glob("*.json.gz"))
    t = time.perf_counter()
    out = RUNNERS[variant](paths)
    out.setdefault("seconds", time.perf_counter() - t)  # datakit times itself, leaving its output checks out
    out["peak_rss_mib"] = round(peak_rss_mib(), 1)
    print(json.dumps(out))


def run_variant(variant: str, folder: Path) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": "0", "RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, __file__, "--variant", variant, "--folder", str(folder)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------------------


def versions() -> dict:
    from importlib.metadata import version

    return {name: version(name) for name in ("orjson", "datatrove")}


def table(rows: dict, base_events: int, mb: float) -> str:
    dk = rows["datakit"]["seconds"]
    out = ["| variant | seconds | events/s/core | MB/s (compressed) | ÷ naive | ÷ datatrove | peak RSS MiB |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        s = r["seconds"]
        out.append(f"| {VARIANTS[name]} | {s:.2f} | {base_events / s:,.0f} | {mb / s:.1f} | "
                   f"{rows['naive']['seconds'] / s:.2f}× | {rows['datatrove']['seconds'] / s:.2f}× | "
                   f"{r['peak_rss_mib']:,.0f} |")
    out.append(f"\n(÷ columns: the anchor's time over this variant's: >1 is faster; datakit = {dk:.2f} s)")
    return "\n".join(out)


def _stage_digest(out: Path) -> dict:
    import polars as pl

    def read(folder: Path) -> list[str]:
        files = sorted(folder.glob("*.parquet"))
        return sorted(json.dumps(r, sort_keys=True, default=str) for r in pl.read_parquet(files).to_dicts()) if files else []

    pulls = out / "pulls"
    rows, quarantine = read(pulls), read(pulls / "quarantine")
    return {"records": len(rows), "quarantined": len(quarantine),
            "digest": hashlib.sha256("\n".join(rows + quarantine).encode()).hexdigest()[:16],
            "units": json.loads((pulls / "stats.json").read_text())["units"]}


def run_stage_tasks(paths: list[Path], folder: Path, counts: list[int], workers: int) -> dict:
    """The stage at each task count: wall, and per task bytes read, seconds and peak RSS (see the docstring)."""
    import shutil

    compressed = sum(p.stat().st_size for p in paths)
    runs = {}
    for n in counts:
        out = WORK / f"stage-out-{n}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "datakit.cli", "crawl", "--gharchive", str(folder), "--mirrors",
               str(WORK / "no-mirrors"), "--no-fetch", "--output", str(out), "--tasks", str(n), "--workers",
               str(min(n, workers)), "--quiet"]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        tasks = {p.stem: json.loads(p.read_text())
                 for p in sorted((out / "pulls" / ".datakit" / "map" / "tasks").glob("*.json"))}
        maps = [t for k, t in tasks.items() if k.startswith("map-")]
        reduces = [t for k, t in tasks.items() if k.startswith("reduce-")]
        runs[n] = {
            "tasks": n, "workers": min(n, workers), "wall_s": round(wall, 2), **_stage_digest(out),
            "map": {"input_bytes_max": max(t["input_bytes"] for t in maps),
                    "read_bytes_max": max(t["read_bytes"] for t in maps),
                    "read_bytes_total": sum(t["read_bytes"] for t in maps),
                    "written_bytes_total": sum(t["written_bytes"] for t in maps),
                    "seconds_max": round(max(t["seconds"] for t in maps), 2),
                    "peak_rss_mib_max": round(max(t["peak_rss_mib"] for t in maps), 1)},
            "reduce": {"partition_bytes_max": max(t["partition_bytes"] for t in reduces),
                       "read_bytes_max": max(t["read_bytes"] for t in reduces),
                       "seconds_max": round(max(t["seconds"] for t in reduces), 2),
                       "peak_rss_mib_max": round(max(t["peak_rss_mib"] for t in reduces), 1)},
            # the read amplification the one-phase design had: every task read every file
            "input_read_per_task_vs_share": round(max(t["input_bytes"] for t in maps) / (compressed / n), 3),
            "rchar_per_task_vs_share": round(max(t["read_bytes"] for t in maps) / (compressed / n), 3),
            "one_phase_input_read_per_task_bytes": compressed,
        }
        print(f"tasks {n}: {wall:.1f} s, map task reads ≤ {runs[n]['input_read_per_task_vs_share']} x input/N",
              file=sys.stderr)
    first = runs[counts[0]]
    checks = {"same_output_for_every_task_count": all(
                  (r["digest"], r["units"]) == (first["digest"], first["units"]) for r in runs.values()),
              "map_reads_at_most_1.1x_input_over_n": all(r["rchar_per_task_vs_share"] <= 1.1 for r in runs.values())}
    for r in runs.values():
        r.pop("units")
    return {"input_compressed_bytes": compressed, "runs": runs, "checks": checks}


def stage_table(result: dict) -> str:
    mib = 2**20
    rows = ["| tasks (workers) | wall s | map: input read / task (MiB) | × input/N (rchar) | map s / task | "
            "map peak RSS (MiB) | reduce: partition read / task (MiB) | reduce s / task | reduce peak RSS (MiB) | "
            "one-phase design: input read / task (MiB) |", "|" + "---|" * 10]
    for r in result["runs"].values():
        rows.append(f"| {r['tasks']} ({r['workers']}) | {r['wall_s']} | {r['map']['input_bytes_max'] / mib:.1f} | "
                    f"{r['input_read_per_task_vs_share']} ({r['rchar_per_task_vs_share']}) | {r['map']['seconds_max']} | "
                    f"{r['map']['peak_rss_mib_max']} | {r['reduce']['partition_bytes_max'] / mib:.1f} | "
                    f"{r['reduce']['seconds_max']} | {r['reduce']['peak_rss_mib_max']} | "
                    f"{r['one_phase_input_read_per_task_bytes'] / mib:.1f} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stage-tasks", help="stage mode: comma-separated task counts, e.g. 1,4 (see the docstring)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="stage mode: tasks at once")
    ap.add_argument("--hours", type=int, default=8, help="hour files (default 8)")
    ap.add_argument("--events", type=int, default=15000, help="events per hour file (default 15000)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--repeat", type=int, default=3, help="runs per variant, fastest kept (default 3)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--results", default=str(HERE / "results" / "gharchive.json"))
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.variant:
        child(a.variant, Path(a.folder))
        return 0

    if a.stage_tasks:
        folder = WORK / f"stage-input-{a.hours}x{a.events}"
        paths = build_input(folder, a.hours, a.events, a.seed)
        result = run_stage_tasks(paths, folder, [int(n) for n in a.stage_tasks.split(",")], a.workers)
        result.update(command=" ".join(["python benchmarks/bench_gharchive.py", *sys.argv[1:]]),
                      date=datetime.now(timezone.utc).strftime("%Y-%m-%d"), machine=machine_facts(**versions()),
                      input={"hours": a.hours, "events_per_hour": a.events, "seed": a.seed})
        path = Path(a.results)
        report = json.loads(path.read_text()) if path.is_file() else {"benchmark": "gharchive"}
        report["stage_tasks"] = result
        write_results(path, report)
        print(stage_table(result))
        print(json.dumps(result["checks"]))
        return 0 if all(result["checks"].values()) else 1

    folder = WORK / "input"
    paths = build_input(folder, a.hours, a.events, a.seed)
    compressed = sum(p.stat().st_size for p in paths)
    mb = compressed / 2**20
    names = [v for v in a.variants.split(",") if v]
    runs: dict[str, list[dict]] = {v: [] for v in names}
    for _ in range(a.repeat):  # interleaved, so a burst of load on a shared machine hits every variant alike
        for v in names:
            runs[v].append(run_variant(v, folder))
            print(f"{v}: {runs[v][-1]['seconds']:.2f} s", file=sys.stderr)
    best = {v: min(rs, key=lambda r: r["seconds"]) for v, rs in runs.items()}
    events = best[names[0]]["events"]
    assert all(r["events"] == events for r in best.values()), {v: r["events"] for v, r in best.items()}

    checks = {}
    if {"datakit", "datakit_noprefilter"} <= set(best):
        checks["prefilter_output_identical"] = best["datakit"]["digest"] == best["datakit_noprefilter"]["digest"]
    if {"datakit", "datakit_shard"} <= set(best):
        mine = {k for k in best["datakit"]["keys"] if shard_of_key(k) == 0}
        checks["shard_is_its_repositories"] = set(best["datakit_shard"]["keys"]) == mine
    for r in best.values():
        r.pop("keys", None)
    raw_mb = sum(len(gzip.decompress(p.read_bytes())) for p in paths) / 2**20
    report = {
        "benchmark": "gharchive", "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "command": " ".join(["python benchmarks/bench_gharchive.py", *sys.argv[1:]]),
        "machine": machine_facts(**versions()),
        "input": {"hours": a.hours, "events_per_hour": a.events, "seed": a.seed, "events": events,
                  "compressed_mb": round(mb, 1), "uncompressed_mb": round(raw_mb, 1),
                  "wanted_share": round(sum(WANTED_MIX.values()), 3), "repos": REPOS,
                  "generator_version": GENERATOR_VERSION},
        "repeat": a.repeat,
        "variants": {v: {**best[v], "description": VARIANTS[v], "events_per_s": round(events / best[v]["seconds"]),
                         "mb_per_s_compressed": round(mb / best[v]["seconds"], 2),
                         "all_seconds": [round(r["seconds"], 3) for r in runs[v]]} for v in names},
        "ratios": {f"{v}_vs_{anchor}": round(best[anchor]["seconds"] / best[v]["seconds"], 2)
                   for v in names for anchor in ("naive", "datatrove") if anchor in best and v != anchor},
        "checks": checks,
    }
    write_results(a.results, report)
    print(table(best, events, mb) if {"naive", "datatrove", "datakit"} <= set(best) else json.dumps(best, indent=2))
    print(json.dumps(checks))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
