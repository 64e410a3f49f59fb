"""The decontam stage fails closed, catches fork networks and early-history copies, and reads chat samples.

Real bare git repositories built with pygit2 (tests/gitrepo.py) stand in for mirrors; the stage runs through the CLI
in-process (`datakit.cli.main`), one task.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import polars as pl
import pygit2

from datakit.cli import main
from datakit.decontam.index import build_index
from datakit.decontam.reference import Instance
from tests.gitrepo import RepoBuilder
from tests.test_decontam_repos import _copy_objects
from tests.test_tokens_stage import write_samples

GIT = {"kind": "git", "method": "merge_commit", "repo": None, "pr": 1, "commit": None, "crawled_at": None,
       "missing": []}


def _sample(i, repo, text="x = 1\n", source=GIT, **meta):
    return {"id": f"s{i}", "kind": "edit", "role": "testwriter" if i % 2 else "bugfixer", "text": text,
            "meta": {"repo": repo, **meta}, "source": dict(source, repo=repo) if source else None}


def _run(tmp_path, samples, *flags, schema: bool = True) -> tuple[int, Path]:
    if schema:
        inp = write_samples(tmp_path / "in", samples)
    else:  # richer records than the sample schema (a PullRecord-style repo_meta in meta): read defensively
        inp = tmp_path / "in"
        inp.mkdir(parents=True, exist_ok=True)
        for i, s in enumerate(samples):  # one file each: their shapes differ (fork_of a string, a dict, …)
            pq.write_table(pa.Table.from_pylist([s]), inp / f"{i:05d}.parquet")
    out = tmp_path / "o"
    rc = main(["decontam", "--input", str(inp), "--output", str(out), "--tasks", "1", "--workers", "1", "--quiet",
               *map(str, flags)])
    return rc, out / "decontam"


def _matches(d: Path) -> dict[str, dict]:
    files = list((d / "matches").glob("*.parquet"))
    return {r["sample_id"]: r for r in pl.read_parquet(files).to_dicts()} if files else {}


def _history(path: Path, n: int = 4, label: str = "a") -> tuple[RepoBuilder, list[str]]:
    b = RepoBuilder(path)
    shas = [str(b.commit({f"{label}.py": f"{label} = {i}\n"}, f"commit {i}", parent="main" if i else None))
            for i in range(n)]
    return b, shas


def _index(tmp_path, base_sha: str, repo="django/django") -> Path:
    p = tmp_path / "index.npz"
    build_index([Instance(f"{repo.replace('/', '__')}-1", repo, base_sha, "unrelated words " * 10, "", None)],
                common_ngrams=np.empty(0, np.uint64)).save(p)
    return p


# --------------------------------------------------------------------------------------------- fail closed

def test_mirrors_flag_pointing_nowhere_is_an_error_before_any_work(tmp_path, capsys):
    rc, d = _run(tmp_path, [_sample(0, "acme/x")], "--mirrors", tmp_path / "nope")
    assert rc == 2 and not d.exists()
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "notgit").mkdir()
    (tmp_path / "notgit" / "README").write_text("hi")
    rc, d = _run(tmp_path, [_sample(0, "acme/x")], "--mirrors", tmp_path / "notgit")
    assert rc == 2 and not d.exists()
    assert "no git mirrors" in capsys.readouterr().err


def test_samples_from_mirrors_need_the_mirrors(tmp_path, capsys):
    samples = [_sample(i, "innocent/name") for i in range(3)]
    rc, d = _run(tmp_path, samples)  # no --mirrors, and <output>/mirrors does not exist
    assert rc == 2
    err = capsys.readouterr().err
    assert "came from git mirrors" in err and "--no-mirror-rules" in err
    rc, d = _run(tmp_path, samples, "--no-mirror-rules")
    assert rc == 0
    stats = json.loads((d / "stats.json").read_text())
    assert stats["counters"]["decontam.mirror_rules_off"] == 3
    assert json.loads((d / "decontam.json").read_text())["mirror_rules"] is False
    assert main(["audit", str(d)]) == 0
    md = (d / "audit" / "audit.md").read_text()
    assert "mirror rules were OFF" in md


def test_samples_without_mirror_provenance_run_without_mirrors(tmp_path):
    rc, d = _run(tmp_path, [_sample(0, None, source=None), _sample(1, "acme/x", source=None)])
    assert rc == 0
    assert json.loads((d / "stats.json").read_text())["units"]["samples"]["written"] == 2


def test_missing_mirror_is_quarantined_not_kept(tmp_path):
    mirrors = tmp_path / "mirrors"
    _history(mirrors / "acme__present.git", label="present")
    samples = [_sample(0, "acme/present"), _sample(1, "acme/absent")]
    rc, d = _run(tmp_path, samples, "--mirrors", mirrors)
    assert rc == 0
    m = _matches(d)
    assert set(m) == {"s1"} and m["s1"]["rule"] == "mirror_unavailable" and m["s1"]["role"] == "testwriter"
    stats = json.loads((d / "stats.json").read_text())["units"]["samples"]
    assert stats == {**stats, "read": 2, "written": 1} and stats["quarantined"] == {"mirror_unavailable": 1}


# --------------------------------------------------------------------------------------------- fork networks

def test_fork_of_a_fork_by_name_and_by_history(tmp_path):
    ref, shas = _history(tmp_path / "ref.git")
    index = _index(tmp_path, shas[2])
    mirrors = tmp_path / "mirrors"
    # bob/linter is a fork of alice/linter, a fork of django/django: its mirror holds the base commit
    copy = RepoBuilder(mirrors / "bob__linter.git")
    remote = copy.repo.remotes.create("origin", str(ref.repo.path), "+refs/heads/*:refs/heads/*")
    remote.fetch()
    _history(mirrors / "carol__other.git", label="other")  # an unrelated history
    samples = [
        _sample(0, "dave/thing", source=None, repo_meta={"fork": True, "parent": "alice/thing",
                                                          "source": "django/django"}),
        _sample(1, "erin/thing", source=None, fork_of={"full_name": "d/x", "parent": {"full_name": "Django/Django"}}),
        _sample(2, "bob/linter", fork_of="alice/linter"),  # innocent names all the way: the history decides
        _sample(3, "carol/other", fork_of="alice/other"),
    ]
    rc, d = _run(tmp_path, samples, "--mirrors", mirrors, "--index", index, schema=False)
    assert rc == 0
    m = _matches(d)
    assert m["s0"]["rule"] == "repo_fork" and m["s0"]["matched_repo"] == "django/django"
    assert m["s1"]["rule"] == "repo_fork"
    assert m["s2"]["rule"] == "mirror_base_commit"
    assert "s3" not in m


# --------------------------------------------------------------------------------------------- root commits

def test_early_history_copy_is_caught_by_a_built_root(tmp_path, capsys):
    """A copy cut before the first Verified base commit shares only the root: build-roots computes it from a
    mirror of the reference, and --roots adds it to the shipped ones."""
    ref_dir = tmp_path / "refmirrors"
    ref, shas = _history(ref_dir / "matplotlib__matplotlib.git", n=6)  # the reference, under its own name
    index = _index(tmp_path, shas[4], repo="matplotlib/matplotlib")
    roots = tmp_path / "roots.json"
    assert main(["decontam", "build-roots", "--mirrors", str(ref_dir), "--out", str(roots)]) == 0
    data = json.loads(roots.read_text())
    assert [r["sha"] for r in data["repos"]["matplotlib/matplotlib"]["roots"]] == [shas[0]]
    assert data["repos"]["matplotlib/matplotlib"]["roots"][0]["on_head"] is True
    assert "scikit-learn/scikit-learn" in data["not_computed"]
    mirrors = tmp_path / "mirrors"
    early = RepoBuilder(mirrors / "innocent__plotting.git")
    for sha in shas[:3]:  # history up to commit 2, byte for byte: cut before the base commit (4)
        _copy_objects(ref.repo, early.repo, sha)
    early.repo.references.create("refs/heads/main", pygit2.Oid(hex=shas[2]), force=True)
    assert shas[4] not in early.repo and shas[0] in early.repo
    samples = [_sample(0, "innocent/plotting")]
    rc, d = _run(tmp_path, samples, "--mirrors", mirrors, "--index", index)
    assert rc == 0 and _matches(d) == {}  # the shipped roots do not know matplotlib
    assert "matplotlib/matplotlib" in json.loads((d / "decontam.json").read_text())["repos_without_roots"]
    rc, d = _run(tmp_path, samples, "--mirrors", mirrors, "--index", index, "--roots", roots, "--force")
    assert rc == 0
    m = _matches(d)
    assert m["s0"]["rule"] == "mirror_root_commit" and m["s0"]["matched_repo"] == "matplotlib/matplotlib"
    settings = json.loads((d / "decontam.json").read_text())
    assert "matplotlib/matplotlib" not in settings["repos_without_roots"]
    assert "scikit-learn/scikit-learn" in settings["repos_without_roots"]
    assert main(["audit", str(d)]) == 0
    assert "scikit-learn/scikit-learn" in (d / "audit" / "audit.md").read_text()


def test_shipped_roots_have_provenance():
    from datakit.decontam.repos import REFERENCE_ROOT_COMMITS, load_root_commits, repos_without_roots

    roots = load_root_commits()
    assert len(roots) >= 15 and roots["d6ded0e91bcdd2a8f7a221f6a5552a33fe545359"]["repo"] == "django/django"
    assert repos_without_roots(REFERENCE_ROOT_COMMITS) == ["matplotlib/matplotlib", "scikit-learn/scikit-learn"]
    from importlib import resources

    data = json.loads(resources.files("datakit").joinpath("decontam", "data", "root_commits.json").read_text())
    assert data["provenance"]["source"] and data["provenance"]["method"]
