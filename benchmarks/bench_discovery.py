"""Benchmark of PR discovery in a git mirror (`datakit.sources.git_pulls.discover`) against a plain pygit2 floor,
and of the samples stage's scaling over tasks on one repository.

    python benchmarks/bench_discovery.py [--prs 3000 --out benchmarks/work-discovery]

1. Builds (pygit2 only, deterministic) a bare repository shaped like a popular project's: --prs pull refs, half of
   them merged (GitHub merge commits, squash merges "(#N)", branches merged by a maintainer's "Merge branch …"
   whose pull-ref head is itself a merge of main into the branch) and half never merged (closed PRs, some of
   whose heads are merges too), over a tree of a few hundred files. Reused on later runs with the same
   parameters.
2. Times, in this process, best of --repeat: the **floor** — one topological walk of the default branch and, for
   every commit, its diff against its first parent with the patch text materialised (what any tool that reads
   the history's changes must do) — and `discover(repo, name)`: every PR classified, each merged PR's
   record (merge base, commits, diff with renames, patch-id) built. Reports PRs/s and the ratio to the floor.
   (Inner functions, not whole processes: both are in-process loops over the same mirror.)
3. Whole CLI processes: `datakit sources` on the repository, then `datakit samples --tasks 1` and
   `--tasks 2 --workers 2` on its single PullRecord file, alternating --scaling-repeat times: wall, CPU seconds
   and peak RSS of the process tree (polled), the speed-up of the fastest runs and the median of the pairs, and
   the speed-up on the CPU critical path (1-task CPU / the 2-task run's longest chain of CPU seconds: driver
   start-up, forkserver readiness, a worker's task, the driver's end), which a shared machine's load does not
   stretch the way it stretches wall time.
4. Prints a Markdown table and writes `benchmarks/results/discovery.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pygit2

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import machine_facts, write_results  # noqa: E402

REPO_NAME = "bench/history"
GENERATOR_VERSION = 1
_SORT = pygit2.enums.SortMode


class Builder:
    """A bare repository with a flat two-level tree (dirs × files), changed one file per commit."""

    def __init__(self, path: Path, seed: int, dirs: int = 20, files: int = 20):
        self.repo = pygit2.init_repository(str(path), bare=True, initial_head="main")
        self.rng = random.Random(seed)
        self.time = 1_600_000_000
        self.paths = [f"pkg{d}/mod{f}.py" for d in range(dirs) for f in range(files)]
        self.lines = {p: [f"value_{i} = {i}\n" for i in range(60)] for p in self.paths}
        root = self._tree({p: self._blob(p) for p in self.paths})
        self.main = self._commit("initial", root, [])
        self.repo.references.create("refs/heads/main", self.main)

    def _blob(self, path: str) -> pygit2.Oid:
        return self.repo.create_blob("".join(self.lines[path]).encode())

    def _tree(self, files: dict[str, pygit2.Oid], base: pygit2.Tree | None = None) -> pygit2.Oid:
        by_dir: dict[str, dict[str, pygit2.Oid]] = {}
        for path, oid in files.items():
            d, name = path.split("/")
            by_dir.setdefault(d, {})[name] = oid
        root = self.repo.TreeBuilder(base) if base is not None else self.repo.TreeBuilder()
        for d, entries in by_dir.items():
            sub = self.repo.TreeBuilder(self.repo[base[d].id]) if base is not None and d in base else \
                self.repo.TreeBuilder()
            for name, oid in entries.items():
                sub.insert(name, oid, pygit2.GIT_FILEMODE_BLOB)
            root.insert(d, sub.write(), pygit2.GIT_FILEMODE_TREE)
        return root.write()

    def _sig(self) -> pygit2.Signature:
        self.time += 60
        return pygit2.Signature("Dev", "dev@example.com", self.time, 0)

    def _commit(self, message: str, tree: pygit2.Oid, parents: list) -> pygit2.Oid:
        sig = self._sig()
        return self.repo.create_commit(None, sig, sig, message, tree, parents)

    def change(self, parent: pygit2.Oid, message: str, n_files: int = 2) -> pygit2.Oid:
        """A commit on `parent` that edits a few lines of `n_files` random files."""
        base = self.repo[parent].tree
        files = {}
        for path in self.rng.sample(self.paths, n_files):
            lines = list(self.repo[base[path].id].data.decode().splitlines(keepends=True))
            i = self.rng.randrange(len(lines))
            lines[i] = f"value_{i} = {self.rng.randrange(10**6)}  # edited\n"
            files[path] = self.repo.create_blob("".join(lines).encode())
        return self._commit(message, self._tree(files, base), [parent])

    def merge(self, ours: pygit2.Oid, theirs: pygit2.Oid, message: str) -> pygit2.Oid | None:
        index = self.repo.merge_commits(ours, theirs)
        if index.conflicts:
            return None
        return self._commit(message, index.write_tree(self.repo), [ours, theirs])

    def build(self, prs: int) -> dict:
        counts = {"merge_commit": 0, "squash": 0, "merge_branch_merge_head": 0, "unmerged": 0,
                  "unmerged_merge_head": 0, "conflicts_skipped": 0}
        for number in range(1, prs + 1):
            kind = self.rng.random()
            fork = self.main
            head = fork
            for k in range(self.rng.randint(1, 3)):
                head = self.change(head, f"Change {k} of PR {number}\n\nDetails of the change.")
            if kind < 0.5:  # unmerged: closed PRs, 1 in 5 with a merge of main as head
                if self.rng.random() < 0.2:
                    self.main = self.change(self.main, f"main moves before #{number}")
                    merged_head = self.merge(head, self.main, "Merge branch 'main' into feature")
                    if merged_head is not None:
                        head = merged_head
                        counts["unmerged_merge_head"] += 1
                counts["unmerged"] += 1
                self.repo.references.create(f"refs/pull/{number}/head", head)
                continue
            self.main = self.change(self.main, f"main moves during #{number}", 1)  # main moves on meanwhile
            if kind < 0.75:
                landing = self.merge(self.main, head, f"Merge pull request #{number} from dev/pr-{number}\n\n"
                                     f"Fix number {number}")
                kind_name = "merge_commit"
            elif kind < 0.9:
                landing = self.change(self.main, f"Fix number {number} (#{number})")
                kind_name = "squash"
            else:  # contributor merges main into the branch, a maintainer merges the branch by hand
                merged_head = self.merge(head, self.main, "Merge branch 'main' into feature")
                if merged_head is None:
                    counts["conflicts_skipped"] += 1
                    continue
                head = merged_head
                landing = self.merge(self.main, head, f"Merge branch 'pr-{number}'")
                kind_name = "merge_branch_merge_head"
            if landing is None:
                counts["conflicts_skipped"] += 1
                continue
            self.main = landing
            counts[kind_name] += 1
            self.repo.references.create(f"refs/pull/{number}/head", head)
        self.repo.references.create("refs/heads/main", self.main, force=True)
        return counts


def ensure_repo(out: Path, prs: int, seed: int) -> tuple[Path, dict]:
    path = out / "mirrors" / f"{REPO_NAME.replace('/', '__')}.git"
    params = {"prs": prs, "seed": seed, "generator": GENERATOR_VERSION}
    marker = out / "repo.json"
    if path.is_dir() and marker.is_file() and json.loads(marker.read_text())["params"] == params:
        return path, json.loads(marker.read_text())["counts"]
    shutil.rmtree(out, ignore_errors=True)
    path.parent.mkdir(parents=True)
    t0 = time.perf_counter()
    counts = Builder(path, seed).build(prs)
    subprocess.run(["git", "-C", str(path), "gc", "-q", "--aggressive"], check=False)  # packed like a real mirror
    marker.write_text(json.dumps({"params": params, "counts": counts}))
    print(f"built {path} in {time.perf_counter() - t0:.1f} s: {counts}", file=sys.stderr)
    return path, counts


def floor(repo: pygit2.Repository) -> int:
    """One walk of the default branch, every commit's first-parent diff with its patch text."""
    n = 0
    for commit in repo.walk(repo.head.target, _SORT.TOPOLOGICAL):
        if commit.parents:
            diff = repo.diff(commit.parents[0], commit, context_lines=3)
            n += sum(len(p.data) for p in diff) > 0
    return n


def run_discovery(repo: pygit2.Repository) -> dict:
    from datakit.sources.git_pulls import discover

    reasons: dict[str, int] = {}
    for found in discover(repo, REPO_NAME):
        reasons[found.reason or "kept"] = reasons.get(found.reason or "kept", 0) + 1
    return reasons


def best_of(fn, repeat: int) -> tuple[float, float, object]:
    best_wall, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        result = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    return best_wall, best_cpu, result


def cli(*args: str, cwd: Path, tree: Path | None = None) -> dict:
    """Run `datakit ARGS` as a whole process; wall, CPU seconds and peak RSS of its whole process tree (datatrove's
    workers are forkserver grandchildren that rusage does not see, so the tree is polled with psutil), and the CPU
    critical path (`critical_path`)."""
    import psutil

    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(tree)} if tree else None  # another checkout's datakit first
    proc = psutil.Popen([sys.executable, "-m", "datakit.cli", *args, "--quiet"], cwd=cwd, env=env,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen: dict[int, dict] = {}  # pid -> parent pid, command, CPU seconds polled (first and last)
    driver = [0.0]
    peak = 0.0
    while proc.poll() is None:
        rss = 0
        try:
            procs = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            procs = [proc]
        try:
            driver[0] = max(driver[0], sum(proc.cpu_times()[:2]))
        except psutil.Error:
            pass
        for p in procs:
            try:
                with p.oneshot():
                    cpu = sum(p.cpu_times()[:2])
                    rss += p.memory_info().rss
                    if p.pid not in seen:
                        seen[p.pid] = {"ppid": p.ppid(), "cmd": " ".join(p.cmdline()), "driver_at_start": driver[0]}
                    seen[p.pid].update(cpu=max(seen[p.pid].get("cpu", 0.0), cpu), driver_at_end=driver[0])
            except psutil.Error:
                pass
        peak = max(peak, rss / 2**20)
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"datakit {' '.join(args)} failed:\n{err.decode()[-3000:]}")
    return {"wall_s": round(wall, 2), "cpu_s": round(sum(p.get("cpu", 0.0) for p in seen.values()), 2),
            "peak_rss_mib": round(peak, 1), "critical_path_cpu_s": critical_path(proc.pid, seen)}


def critical_speedup(runs: dict[int, list[dict]]) -> dict:
    """1-task CPU over the 2-task critical path: least against least, and the median of the paired rounds."""
    one = [r["critical_path_cpu_s"] for r in runs[1]]
    two = [r["critical_path_cpu_s"] for r in runs[2]]
    paired = sorted(a / b for a, b in zip(one, two))
    return {"critical_path_cpu_s_least": {1: min(one), 2: min(two)},
            "speedup_2_tasks_critical_path": round(min(one) / min(two), 2),
            "speedup_2_tasks_critical_path_paired_median": round(paired[len(paired) // 2], 2)}


def critical_path(driver_pid: int, seen: dict[int, dict]) -> float:
    """The run's longest chain of CPU seconds, a wall time the load does not stretch: the driver alone (start-up,
    the tasks it runs itself, the end), or, for each pool worker, the later of the driver's CPU when the worker
    appeared and the forkserver's readiness (the driver's CPU when it started the forkserver + the forkserver's
    CPU), then the worker's CPU, then the driver's CPU after the worker was last seen."""
    me = seen.get(driver_pid, {})
    total = me.get("cpu", 0.0)
    chains = [total]
    servers = {pid: p for pid, p in seen.items() if "forkserver" in p["cmd"]}
    for pid, p in seen.items():
        server = servers.get(p["ppid"])
        if server is None:  # a forkserver child is a pool worker; the driver's other children (a Manager) are not
            continue
        ready = max(p["driver_at_start"], server["driver_at_start"] + server.get("cpu", 0.0))
        chains.append(ready + p.get("cpu", 0.0) + max(total - p["driver_at_end"], 0.0))
    return round(max(chains), 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prs", type=int, default=3000, help="pull refs (half merged; default 3000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "work-discovery"))
    parser.add_argument("--results", default=str(HERE / "results" / "discovery.json"))
    parser.add_argument("--no-cli", action="store_true", help="skip the whole-process samples scaling runs")
    parser.add_argument("--scaling-mirrors", help="run the samples scaling on this mirrors folder instead (e.g. "
                        "benchmarks/work/mirrors from bench_samples.py, whose PRs carry more work each)")
    parser.add_argument("--scaling-repo", default="bench/synthetic", help="the repository in --scaling-mirrors")
    parser.add_argument("--baseline", help="also run an earlier checkout's `datakit samples` (git archive REV | tar "
                        "-x -C DIR) in every scaling round")
    parser.add_argument("--scaling-repeat", type=int, default=1,
                        help="alternating 1-task / 2-task rounds; the fastest of each is reported (default 1)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    path, counts = ensure_repo(out, args.prs, args.seed)
    repo = pygit2.Repository(str(path))
    refs = sum(1 for r in repo.listall_references() if r.startswith("refs/pull/"))

    floor_wall, floor_cpu, commits = best_of(lambda: floor(repo), args.repeat)
    disc_wall, disc_cpu, reasons = best_of(lambda: run_discovery(repo), args.repeat)
    report = {
        "command": f"python benchmarks/bench_discovery.py --prs {args.prs}",
        "machine": machine_facts(pygit2=pygit2.__version__, libgit2=pygit2.LIBGIT2_VERSION),
        "repository": {"pull_refs": refs, "built": counts, "commits_on_main_walk": commits},
        "floor": {"wall_s": round(floor_wall, 3), "cpu_s": round(floor_cpu, 3)},
        "discover": {"wall_s": round(disc_wall, 3), "cpu_s": round(disc_cpu, 3), "reasons": reasons,
                     "prs_per_s": round(refs / disc_wall, 1)},
        "ratio_to_floor_wall": round(disc_wall / floor_wall, 2),
        "ratio_to_floor_cpu": round(disc_cpu / floor_cpu, 2),
    }
    if not args.no_cli:
        work = out / "cli"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        mirrors = Path(args.scaling_mirrors).resolve() if args.scaling_mirrors else out / "mirrors"
        name = args.scaling_repo if args.scaling_mirrors else REPO_NAME
        src = cli("sources", name, "--no-fetch", "--mirrors", str(mirrors), "--output", str(work / "s"), cwd=work)
        every: dict[int, list[dict]] = {1: [], 2: []}
        loads = [round(os.getloadavg()[0], 1)]
        base: dict[int, list[dict]] = {1: [], 2: []}
        for _ in range(args.scaling_repeat):  # 1 and 2 tasks (and --baseline) alternate: the same load for all
            for tasks in (1, 2):
                every[tasks].append(cli("samples", "--input", str(work / "s" / "pulls"), "--mirrors", str(mirrors),
                                        "--tasks", str(tasks), "--workers", str(tasks), "--output",
                                        str(work / f"t{tasks}"), "--force", cwd=work))
                if args.baseline:
                    base[tasks].append(cli("samples", "--input", str(work / "s" / "pulls"), "--mirrors",
                                           str(mirrors), "--tasks", str(tasks), "--workers", str(tasks), "--output",
                                           str(work / f"b{tasks}"), "--force", cwd=work,
                                           tree=Path(args.baseline).resolve()))
            loads.append(round(os.getloadavg()[0], 1))
        stats = [json.loads((work / f"t{t}" / "samples" / "stats.json").read_text())["units"] for t in (1, 2)]
        assert stats[0] == stats[1], "1 and 2 tasks must write the same units"
        runs = {t: min(r, key=lambda x: x["wall_s"]) for t, r in every.items()}  # the fastest of each
        paired = sorted(a["wall_s"] / b["wall_s"] for a, b in zip(every[1], every[2]))
        report["cli"] = {"repository": name, "mirrors": str(mirrors), "sources": src, "samples_tasks_1": runs[1], "samples_tasks_2": runs[2],
                         "speedup_2_tasks_wall": round(runs[1]["wall_s"] / runs[2]["wall_s"], 2),
                         "speedup_2_tasks_paired_median": round(paired[len(paired) // 2], 2),
                         "cpu_s_least": {t: min(x["cpu_s"] for x in r) for t, r in every.items()},
                         **critical_speedup(every),
                         "runs": every, "load_1min": loads,
                         **({"baseline": {"tree": args.baseline, "runs": base, **critical_speedup(base),
                                          "cpu_s_least": {t: min(x["cpu_s"] for x in r) for t, r in base.items()},
                                          "wall_s_least": {t: min(x["wall_s"] for x in r) for t, r in base.items()}}}
                            if args.baseline else {}),
                         "pull_record_files": len(list((work / "s" / "pulls").glob("*.parquet")))}
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))
    print(f"\n| step | wall s | CPU s | ratio to floor (wall / CPU) |\n|---|---:|---:|---:|\n"
          f"| floor: walk + first-parent diff of every commit ({commits} commits) | {floor_wall:.2f} | "
          f"{floor_cpu:.2f} | 1.00× |\n| discover: {refs} pull refs classified, merged records built | "
          f"{disc_wall:.2f} | {disc_cpu:.2f} | {disc_wall / floor_wall:.2f}× / {disc_cpu / floor_cpu:.2f}× |")
    write_results(args.results, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
