"""API requests per linked PR: datakit's GraphQL crawl against the SWE-bench collection scripts' approach.

Both run against the same GitHub-compatible server on loopback (tests/github_server.py) hosting the same real git
repository (the samples benchmark's synthetic mirror generator: 2,000 merged PRs by default), with the same HTTP
client, each in a fresh process:
- anchor (SWE-bench's `print_pulls.py` + `build_dataset.py`): REST list pages of closed PRs (100 per page), then
  per merged PR one `/pulls/{n}/commits` call, and one `/issues/{n}` call per issue it resolves;
- datakit: `datakit crawl` (GraphQL pages of PRs with commits, reviews and closing references, a batch query for
  issues closed only by keyword, REST metadata once per repository; the code from the git mirror).
Issues: 70 % of PRs say "Fixes #N" in the body and GitHub lists the issue as a closing reference, 15 % are linked
only by GitHub's closing reference (no keyword), 5 % only by a keyword in a commit message, 10 % link nothing.

    python benchmarks/bench_crawl.py [--prs 2000 --files 400 --page-sizes 25,50,100 --seed 1234]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from machine import machine_facts, write_results  # noqa: E402

REPO = "bench/synthetic"
TOKENS = "bench_token_1,bench_token_2"


def hosted_repo(mirrors: Path, prs: int, files: int, seed: int):
    """The synthetic mirror hosted on the fake GitHub, with issues and links drawn from the seed."""
    from bench_samples import REPO_NAME, ensure_repo
    from datakit.sources.git_mirror import mirror_path
    from tests.github_server import host_git_repo, issue_node

    ensure_repo(mirrors, files, prs, seed)
    path = mirror_path(mirrors, REPO_NAME)
    rng = random.Random(seed)
    numbers = sorted(_pull_numbers(path))
    next_issue = numbers[-1] + 1
    extras, issues = {}, []
    for n in numbers:
        kind = rng.choices(["keyword", "closing", "commit", "none"], [70, 15, 5, 10])[0]
        if kind == "none":
            extras[n] = {"body": "Refactor, no issue."}
            continue
        i, next_issue = next_issue, next_issue + 1
        comments = [(f"user{rng.randrange(50)}", f"comment {k} on #{i}", 1_600_000_000 + k) for k in range(rng.randrange(4))]
        issues.append(issue_node(REPO, i, f"Bug {i}", f"Steps to reproduce bug {i}.", "reporter", 1_500_000_000, comments))
        extras[n] = {"keyword": {"body": f"Fixes #{i}", "closing": [i]}, "closing": {"body": "See the issue.", "closing": [i]},
                     "commit": {"body": "Small fix.", "_commit_note": i}}[kind]
    hosted = host_git_repo(path, REPO, extras={n: {k: v for k, v in e.items() if k != "_commit_note"}
                                               for n, e in extras.items()}, issues=issues, with_files=False)
    for n, e in extras.items():  # "closes #N" in the last commit message only
        if "_commit_note" in e:
            last = hosted.pulls[n]["commits"]["nodes"][-1]["commit"]
            last["message"] = last["message"].rstrip("\n") + f"\n\ncloses #{e['_commit_note']}\n"
    return hosted, path, sum(1 for e in extras.values() if e.get("closing") or "_commit_note" in e)


def _pull_numbers(path: Path) -> list[int]:
    from datakit.sources.git_mirror import open_mirror
    from datakit.sources.git_pulls import find_pulls

    return [p["number"] for p in find_pulls(open_mirror(path), REPO)]


def swebench_approach(api_url: str) -> dict:
    """REST list pages + one commits call per merged PR + one call per resolved issue (keyword-parsed, as
    SWE-bench's `extract_resolved_issues` does from the title, body and commit messages)."""
    from datakit.pulls.linking import closing_references
    from datakit.sources.github.client import GitHubClient
    from datakit.sources.github.tokens import TokenPool

    client = GitHubClient(TokenPool(TOKENS.split(",")), api_url)
    linked = 0
    for pr in client.paginate(f"/repos/{REPO}/pulls", {"state": "closed"}):
        if not pr.get("merged_at"):
            continue
        commits = list(client.paginate(f"/repos/{REPO}/pulls/{pr['number']}/commits"))
        texts = [pr["title"], pr["body"], *(c["commit"]["message"] for c in commits)]
        numbers = {r.number for t in texts for r in closing_references(t, REPO)}
        for n in sorted(numbers):
            client.get(f"/repos/{REPO}/issues/{n}")
        linked += bool(numbers)
    return {"requests": client.stats["requests"], "linked_prs": linked}


def datakit_crawl(api_url: str, work: Path, mirror: Path, page_size: int) -> dict:
    import polars as pl

    from datakit.cli import main

    out = work / f"out-{page_size}"
    repos = work / "repos.txt"
    repos.write_text(f"{REPO} {mirror}\n")
    os.environ["GITHUB_TOKENS"] = TOKENS
    argv = ["crawl", "--repos", str(repos), "--api-url", api_url, "--output", str(out), "--state",
            str(work / f"state-{page_size}"), "--mirrors", str(work / "mirrors"), "--page-size", str(page_size),
            "--tasks", "1", "--workers", "1", "--quiet", "--force"]
    if main(argv) != 0:
        raise SystemExit("crawl failed")
    stats = json.loads((out / "pulls" / "stats.json").read_text())
    rows = pl.read_parquet(out / "pulls" / "*.parquet")
    linked = int((rows["linked_issues"].list.len() > 0).sum())
    return {"requests": int(stats["counters"]["api.requests"]), "linked_prs": linked, "prs": rows.height,
            "graphql": int(stats["counters"].get("api.graphql", 0)), "rest": int(stats["counters"].get("api.rest", 0))}


def child(args) -> None:
    """One variant in this (fresh) process: prints its result as JSON."""
    work = Path(args.work)
    t0 = time.perf_counter()
    if args.variant == "swebench":
        result = swebench_approach(args.api_url)
    else:
        import shutil

        shutil.rmtree(work / f"state-{args.page_size}", ignore_errors=True)
        result = datakit_crawl(args.api_url, work, Path(args.mirror), args.page_size)
    result["seconds"] = round(time.perf_counter() - t0, 2)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prs", type=int, default=2000)
    parser.add_argument("--files", type=int, default=400, help="files in the synthetic repository's first commit")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--page-sizes", default="25,50,100")
    parser.add_argument("--work", default=str(HERE / "work" / "crawl"))
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--api-url", help=argparse.SUPPRESS)
    parser.add_argument("--mirror", help=argparse.SUPPRESS)
    parser.add_argument("--page-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        child(args)
        return 0

    from tests.github_server import FakeGitHub

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    hosted, mirror, expected_linked = hosted_repo(work / "upstream", args.prs, args.files, args.seed)
    results = []
    with FakeGitHub([hosted], {t: 10**9 for t in TOKENS.split(",")}) as gh:
        variants = [("swebench", None)] + [("datakit", int(p)) for p in args.page_sizes.split(",")]
        for variant, page in variants:
            cmd = [sys.executable, __file__, "--variant", variant, "--api-url", gh.url, "--work", str(work),
                   "--mirror", str(mirror), "--page-size", str(page or 0)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
            r = json.loads(out.strip().splitlines()[-1])
            r.update(variant=variant, page_size=page, requests_per_linked_pr=round(r["requests"] / r["linked_prs"], 4))
            results.append(r)
            print(json.dumps(r))
    anchor = results[0]
    for r in results:
        r["fewer_requests_than_anchor"] = round(anchor["requests"] / r["requests"], 1)
    report = {"benchmark": "crawl", "command": "python benchmarks/bench_crawl.py " + " ".join(sys.argv[1:]),
              "machine": machine_facts(), "input": {"prs": len(hosted.pulls), "issues": len(hosted.issues),
                                                     "linked_prs_expected": expected_linked, "seed": args.seed},
              "results": results}
    write_results(HERE / "results" / "crawl.json", report)
    print("\n| variant | page size | requests | linked PRs | requests / linked PR | vs anchor | seconds | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['variant']} | {r['page_size'] or '-'} | {r['requests']:,} | {r['linked_prs']:,} | "
              f"{r['requests_per_linked_pr']} | {r['fewer_requests_than_anchor']}× fewer | {r['seconds']} | {r['peak_rss_mib']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
