"""Repository-level decontamination rules, on real git repositories built with pygit2 (tests/gitrepo.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pygit2
import pytest

from datakit.decontam.repos import (
    FORMER_NAMES,
    REFERENCE_REPOS,
    REFERENCE_ROOT_COMMITS,
    MirrorRules,
    RepoMatch,
    commit_rule,
    fork_rule,
    instance_repo,
    load_reference_repos,
    name_rule,
    normalize_repo,
)
from datakit.sources.git_mirror import RepoSpec, clone_mirror
from tests.conftest import shared_missing
from tests.gitrepo import RepoBuilder

VERIFIED = Path(__file__).resolve().parents[2] / "shared" / "data" / "swebench" / "verified.jsonl"

THE_12 = {
    "astropy/astropy", "django/django", "matplotlib/matplotlib", "mwaskom/seaborn", "pallets/flask", "psf/requests",
    "pydata/xarray", "pylint-dev/pylint", "pytest-dev/pytest", "scikit-learn/scikit-learn", "sphinx-doc/sphinx",
    "sympy/sympy",
}


def verified_base_commits() -> dict[str, str]:
    """sha -> instance_id from ../shared (the first instance id when two instances share a base commit)."""
    if why := shared_missing("swebench/verified.jsonl"):
        pytest.skip(why)
    out: dict[str, str] = {}
    for line in VERIFIED.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.setdefault(row["base_commit"], row["instance_id"])
    return out


# ---------------------------------------------------------------- reference data


def test_reference_data_is_the_12_repositories_with_sources():
    ref = load_reference_repos()
    assert REFERENCE_REPOS == THE_12 == set(ref["repos"])
    assert all(new in REFERENCE_REPOS for new in FORMER_NAMES.values())
    assert not set(FORMER_NAMES) & REFERENCE_REPOS
    assert all(k == k.lower() for k in FORMER_NAMES)
    sources = ref["sources"]
    for old in FORMER_NAMES:  # every former name and root commit says where it comes from
        assert sources["former_names"][old]
    from datakit.decontam.repos import load_root_commits

    shipped = load_root_commits()  # root_commits.json: its provenance covers the file (tests/test_decontam_failclosed)
    for sha, repo in REFERENCE_ROOT_COMMITS.items():
        assert re.fullmatch(r"[0-9a-f]{40}", sha) and repo in REFERENCE_REPOS
        assert sources["root_commits"].get(sha) or shipped[sha]["repo"] == repo


def test_reference_repos_match_verified():
    base = verified_base_commits()
    rows = [json.loads(line) for line in VERIFIED.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert {normalize_repo(r["repo"]) for r in rows} == REFERENCE_REPOS
    assert {instance_repo(i) for i in base.values()} <= REFERENCE_REPOS
    assert all(instance_repo(r["instance_id"]) == r["repo"] for r in rows)


# ---------------------------------------------------------------- normalisation

SPELLINGS = [
    ("django/django", "django/django"),
    ("Django/Django", "django/django"),
    ("  django/django\n", "django/django"),
    ("django/django.git", "django/django"),
    ("django/django/", "django/django"),
    ("https://github.com/django/django", "django/django"),
    ("https://github.com/django/django.git", "django/django"),
    ("https://github.com/django/django.git/", "django/django"),
    ("HTTPS://GitHub.com/Django/Django", "django/django"),
    ("http://www.github.com/django/django/", "django/django"),
    ("https://www.github.com/psf/requests/pull/6000", "psf/requests"),
    ("git@github.com:django/django.git", "django/django"),
    ("git@github.com:django/django", "django/django"),
    ("ssh://git@github.com/django/django.git", "django/django"),
    ("git://github.com/sympy/sympy.git", "sympy/sympy"),
    ("github.com/django/django/tree/main", "django/django"),
    ("www.github.com/django/django", "django/django"),
    ("https://github.com/django/django/blob/main/setup.py#L3", "django/django"),
    ("https://github.com/django/django?tab=readme-ov-file", "django/django"),
    ("https://github.com/django/django#readme", "django/django"),
    ("https://x-access-token:abc@github.com/django/django.git", "django/django"),
    ("https://api.github.com/repos/pytest-dev/pytest", "pytest-dev/pytest"),
    ("scikit-learn/scikit-learn", "scikit-learn/scikit-learn"),
    ("mwaskom/seaborn.git", "mwaskom/seaborn"),
    ("someone/my.repo_name-2", "someone/my.repo_name-2"),
    # garbage
    ("", None),
    ("   ", None),
    ("django", None),
    ("django/", None),
    ("/django", None),
    ("a/b/c", None),
    ("django /django", None),
    ("https://github.com/django", None),
    ("https://github.com/", None),
    ("https://gitlab.com/django/django", None),
    ("git@gitlab.com:django/django.git", None),
    ("https://bitbucket.org/hpk42/pytest", None),
    ("/home/user/django", None),
    ("owner/..", None),
    ("owner/.git", None),
    ("own er/name", None),
    ("-/x", None),
]


@pytest.mark.parametrize("text,expected", SPELLINGS)
def test_normalize_repo(text, expected):
    assert normalize_repo(text) == expected


def test_normalize_repo_non_strings():
    assert normalize_repo(None) is None
    assert normalize_repo(123) is None


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("repo", sorted(THE_12))
def test_name_rule_catches_every_reference_repo(repo):
    for spelling in (repo, repo.upper(), f"https://github.com/{repo}.git", f"git@github.com:{repo}.git"):
        match = name_rule(spelling)
        assert match == RepoMatch("repo_name", repo, match.detail)
        assert match.matched_instance_id is None


@pytest.mark.parametrize("old,new", [
    ("kennethreitz/requests", "psf/requests"),
    ("https://github.com/kennethreitz/requests", "psf/requests"),
    ("requests/requests", "psf/requests"),
    ("PyCQA/pylint", "pylint-dev/pylint"),
    ("https://github.com/PyCQA/pylint.git", "pylint-dev/pylint"),
    ("mitsuhiko/flask", "pallets/flask"),
    ("xray/xray", "pydata/xarray"),
    ("hpk42/pytest", "pytest-dev/pytest"),
    ("django/django-old", "django/django"),
])
def test_name_rule_catches_former_names(old, new):
    match = name_rule(old)
    assert match is not None and match.rule == "repo_renamed" and match.matched_repo == new
    assert normalize_repo(old) in match.detail.lower()


@pytest.mark.parametrize("repo", [
    "django-extensions/django-extensions",
    "django/django-contrib-comments",
    "django/djangoproject.com",
    "djangoproject/django",       # not a known name of Django (a copy there is the mirror rules' job)
    "someone/django",              # a same-named repository of someone else (a fork is the fork rule's job)
    "someone/requests-oauthlib",
    "requests/requests-oauthlib",  # the `requests` organisation's other repositories
    "requests/toolbelt",
    "psf/requests-html",
    "psf/black",
    "pytest-dev/pytest-xdist",
    "pytest-dev/pluggy",
    "pylint-dev/astroid",
    "PyCQA/flake8",
    "pallets/werkzeug",
    "mitsuhiko/flask-website",
    "pydata/xarray-contrib",
    "xarray-contrib/xarray-simlab",
    "sympy/sympy-live",
    "astropy/astropy-helpers",
    "matplotlib/matplotlib.github.com",
    "scikit-learn/scikit-learn.github.io",
    "sphinx-doc/sphinx-autobuild",
    "mwaskom/seaborn-data",
    "sphinx/sphinx",
    "https://gitlab.com/django/django",
    None,
    "",
    "garbage",
])
def test_name_rule_ignores_look_alikes(repo):
    assert name_rule(repo) is None


# ---------------------------------------------------------------- forks


def _meta(full_name, fork=True, parent=None, source=None, **extra):
    meta = {"full_name": full_name, "fork": fork, **extra}
    if parent is not None:
        meta["parent"] = {"full_name": parent} if isinstance(parent, str) else parent
    if source is not None:
        meta["source"] = {"full_name": source} if isinstance(source, str) else source
    return meta


@pytest.mark.parametrize("meta,expected,via", [
    (_meta("alice/django", parent="django/django", source="django/django"), "django/django", "parent"),
    # a fork of a fork: the parent is someone's fork, the source (network root) is the reference repository
    (_meta("bob/django", parent="alice/django", source="django/django"), "django/django", "source"),
    (_meta("bob/flask", source="pallets/flask"), "pallets/flask", "source"),
    # a fork made before the rename names the former name
    (_meta("carol/requests", parent="kennethreitz/requests"), "psf/requests", "parent"),
    (_meta("dan/pylint", parent="PyCQA/pylint", source="PyCQA/pylint"), "pylint-dev/pylint", "parent"),
    # strings and URLs instead of dicts
    ({"full_name": "erin/sympy", "fork": True, "parent": "sympy/sympy"}, "sympy/sympy", "parent"),
    (_meta("erin/xarray", parent={"html_url": "https://github.com/pydata/xarray"}), "pydata/xarray", "parent"),
    # a plain fork_of (the PullRecord field), with or without the fork flag
    ({"fork_of": "sphinx-doc/sphinx"}, "sphinx-doc/sphinx", "fork_of"),
    ({"full_name": "x/y", "fork": False, "fork_of": "https://github.com/astropy/astropy"}, "astropy/astropy", "fork_of"),
    # no fork flag at all, but a parent
    ({"full_name": "frank/seaborn", "parent": {"full_name": "mwaskom/seaborn"}}, "mwaskom/seaborn", "parent"),
])
def test_fork_rule_catches_forks(meta, expected, via):
    match = fork_rule(meta)
    assert match is not None and match.rule == "repo_fork" and match.matched_repo == expected
    assert f"({via})" in match.detail


@pytest.mark.parametrize("meta", [
    None,
    {},
    _meta("alice/django-fork", parent="someone/django-fork", source="someone/django-fork"),
    _meta("alice/requests-html", parent="psf/requests-html", source="psf/requests-html"),
    _meta("alice/xdist", parent="pytest-dev/pytest-xdist", source="pytest-dev/pytest-xdist"),
    _meta("django/django", fork=False),                           # the reference itself is the name rule's job
    _meta("alice/django", fork=False, parent="django/django"),    # GitHub says it is not a fork
    {"full_name": "alice/x", "fork": True},                       # a fork with no parent known
    {"full_name": "alice/x", "fork": True, "parent": {"full_name": None}, "fork_of": None},
    {"fork_of": "garbage"},
])
def test_fork_rule_ignores_non_reference_forks(meta):
    assert fork_rule(meta) is None


# ---------------------------------------------------------------- commits


def test_commit_rule_against_verified_base_commits():
    base = verified_base_commits()
    sha, instance = sorted(base.items())[0]
    repo = instance_repo(instance)
    for shas in ([sha], ["0" * 40, sha], [None, sha.upper()], (s for s in ["1" * 40, f" {sha} "])):
        match = commit_rule(shas, base)
        assert match == RepoMatch("commit_base", repo, match.detail, instance)
        assert sha in match.detail and instance in match.detail
    assert commit_rule([sha[:12], sha[:7], sha + "0"], base) is None  # abbreviated or longer: never a match
    assert commit_rule(["f" * 40, "", None], base) is None
    assert commit_rule([], base) is None


def test_commit_rule_takes_the_first_matching_sha():
    base = {"a" * 40: "django__django-1", "b" * 40: "sympy__sympy-2"}
    assert commit_rule(["c" * 40, "B" * 40, "a" * 40], base).matched_instance_id == "sympy__sympy-2"
    assert commit_rule(["a" * 40], base).matched_repo == "django/django"


# ---------------------------------------------------------------- mirrors


def _history(path: Path, label: str, n: int = 5, start: int = 1_700_000_000) -> tuple[RepoBuilder, list[str]]:
    b = RepoBuilder(path, start=start)
    shas = []
    for i in range(n):
        files = {f"{label}/f{i}.py": f"x = {i}\n", "README": f"{label} {i}\n"}
        shas.append(str(b.commit(files, f"{label} {i}", parent="main" if i else None)))
    return b, shas


def _fetch(into: pygit2.Repository, src: Path, refspec: str) -> None:
    remote = into.remotes.create(f"r{len(into.remotes)}", str(src), refspec)
    remote.fetch()


def _copy_objects(src: pygit2.Repository, dst: pygit2.Repository, sha: str) -> None:
    """Copy one commit object and its whole tree (not its parents) from src to dst, byte for byte: same sha."""
    todo = [pygit2.Oid(hex=sha)]
    while todo:
        oid = todo.pop()
        if oid in dst:
            continue
        kind, data = src.odb.read(oid)
        assert dst.odb.write(kind, data) == oid
        obj = src[oid]
        if isinstance(obj, pygit2.Commit):
            todo.append(obj.tree_id)
        elif isinstance(obj, pygit2.Tree):
            todo += [entry.id for entry in obj]


@pytest.fixture()
def reference(tmp_path):
    """Repository A, standing in for a reference repository ("django/django"): five commits."""
    return _history(tmp_path / "a.git", "ref")


def test_mirror_root_commit_clone(tmp_path, reference):
    a, a_shas = reference
    rules = MirrorRules(base_commits={}, root_commits={a_shas[0]: "django/django"})
    mirror = clone_mirror(RepoSpec("someone/my-web-framework", str(a.path)), tmp_path / "mirrors")
    # grow the mirror further (its own commit on top): it stays a copy
    sig = pygit2.Signature("Someone", "someone@example.com", 1_800_000_000, 0)
    tip = mirror.branches["main"].peel(pygit2.Commit)
    mirror.create_commit("refs/heads/main", sig, sig, "local work", tip.tree_id, [tip.id])
    match = rules.check(mirror)
    assert match == RepoMatch("mirror_root_commit", "django/django", match.detail)
    assert a_shas[0] in match.detail


def test_mirror_root_commit_vendored_history(tmp_path, reference):
    """B has its own root and later merges A's root in (a vendored copy that kept A's first commit): two roots."""
    a, a_shas = reference
    b, b_shas = _history(tmp_path / "b.git", "app", n=3, start=1_750_000_000)
    _copy_objects(a.repo, b.repo, a_shas[0])
    b.commit({}, "vendor the framework", parents=[pygit2.Oid(hex=b_shas[-1]), pygit2.Oid(hex=a_shas[0])])
    assert a_shas[2] not in b.repo  # only A's root came along
    rules = MirrorRules(base_commits={a_shas[2]: "django__django-1"}, root_commits={a_shas[0].upper(): "Django/Django"})
    assert rules.roots(b.repo) == {b_shas[0], a_shas[0]}
    match = rules.check(b.repo)
    assert match.rule == "mirror_root_commit" and match.matched_repo == "django/django"
    assert match.matched_instance_id is None


def test_mirror_root_commit_rehistory_on_top_of_root(tmp_path, reference):
    """C rewrote everything after A's root (a re-history that kept the root), reachable only from refs/pull/*."""
    a, a_shas = reference
    c = RepoBuilder(tmp_path / "c.git", start=1_760_000_000)
    c.commit({"main.py": "print(1)\n"}, "unrelated main", parent=None)
    _copy_objects(a.repo, c.repo, a_shas[0])
    c.commit({"new.py": "z = 2\n"}, "rewritten", parent=pygit2.Oid(hex=a_shas[0]), ref="refs/pull/7/head")
    assert a_shas[1] not in c.repo
    rules = MirrorRules(base_commits={}, root_commits={a_shas[0]: "django/django"})
    assert rules.check(c.repo).rule == "mirror_root_commit"


def test_mirror_base_commit(tmp_path, reference):
    a, a_shas = reference
    base = {a_shas[2]: "django__django-12345"}
    roots = {a_shas[0]: "django/django"}
    rules = MirrorRules(base_commits=base, root_commits=roots)
    # a fork that contains A's third commit: the base commit wins (it names the instance)
    fork = RepoBuilder(tmp_path / "fork.git", start=1_770_000_000)
    _fetch(fork.repo, a.path, "+refs/heads/main:refs/heads/upstream")
    fork.commit({"mine.py": "m = 1\n"}, "my change", parent="upstream")
    match = rules.check(fork.repo)
    assert match == RepoMatch("mirror_base_commit", "django/django", match.detail, "django__django-12345")
    assert a_shas[2] in match.detail
    # a repository holding only A's first two commits: no base commit, but the root
    early = pygit2.init_repository(str(tmp_path / "early.git"), bare=True)
    _copy_objects(a.repo, early, a_shas[0])
    _copy_objects(a.repo, early, a_shas[1])
    early.references.create("refs/heads/main", pygit2.Oid(hex=a_shas[1]))
    assert a_shas[2] not in early
    assert rules.check(early).rule == "mirror_root_commit"


def test_unrelated_repositories_are_not_caught(tmp_path, reference):
    a, a_shas = reference
    rules = MirrorRules(base_commits={a_shas[2]: "django__django-1"}, root_commits={a_shas[0]: "django/django"})
    # same files, same messages, different times: different shas, so not a copy as far as git is concerned
    other, other_shas = _history(tmp_path / "other.git", "ref", start=1_600_000_000)
    assert other_shas[0] != a_shas[0]
    assert rules.check(other.repo) is None
    assert rules.roots(other.repo) == {other_shas[0]}
    empty = pygit2.init_repository(str(tmp_path / "empty.git"), bare=True)
    assert rules.check(empty) is None and rules.roots(empty) == frozenset()


def test_verified_base_commits_do_not_hit_test_repositories(tmp_path, reference):
    a, _ = reference
    rules = MirrorRules(verified_base_commits(), REFERENCE_ROOT_COMMITS)
    assert rules.check(a.repo) is None


def test_odd_refs_are_skipped(tmp_path, reference):
    a, a_shas = reference
    blob = a.repo.create_blob(b"not a commit")
    a.repo.references.create("refs/tags/a-blob", blob)
    tree = a.repo[pygit2.Oid(hex=a_shas[1])].tree_id
    a.repo.references.create("refs/tags/a-tree", tree)
    sig = pygit2.Signature("T", "t@example.com", 1_700_000_000, 0)
    a.repo.create_tag("annotated", pygit2.Oid(hex=a_shas[3]), pygit2.enums.ObjectType.COMMIT, sig, "release")
    rules = MirrorRules(base_commits={}, root_commits={a_shas[0]: "django/django"})
    assert rules.roots(a.repo) == {a_shas[0]}
    assert rules.check(a.repo).rule == "mirror_root_commit"


def test_mirror_rules_walk_once_per_repository(tmp_path, reference):
    a, a_shas = reference
    rules = MirrorRules(base_commits={"e" * 40: "x__y-1"}, root_commits={"f" * 40: "django/django"})
    assert rules.walks == 0
    first = rules.check(a.repo)
    assert first is None and rules.walks == 1
    assert rules.check(a.repo) is None and rules.walks == 1
    # the same mirror opened again (another Repository object, the path spelled differently): still cached
    again = pygit2.Repository(str(a.path) + "/")
    assert rules.check(again) is None and rules.walks == 1
    assert rules.roots(again) == {a_shas[0]} and rules.walks == 1
    # a different repository is walked once too
    other, _ = _history(tmp_path / "other.git", "o")
    rules.check(other.repo)
    rules.check(other.repo)
    assert rules.walks == 2


def test_mirror_rules_cache_hits_and_misses_alike(tmp_path, reference):
    a, a_shas = reference
    rules = MirrorRules(base_commits={}, root_commits={a_shas[0]: "django/django"})
    m1 = rules.check(a.repo)
    m2 = rules.check(pygit2.Repository(str(a.path)))
    assert m1 is m2 and m1.rule == "mirror_root_commit" and rules.walks == 1


@pytest.mark.parametrize("meta,expected,via", [
    # the crawler's repo_meta: parent and source as plain strings; the parent is itself a fork
    ({"repo_meta": {"fork": True, "parent": "alice/linter", "source": "pylint-dev/pylint"}}, "pylint-dev/pylint",
     "repo_meta.source"),
    # a parent chain three deep (GraphQL parent { parent { parent } }), no source given
    (_meta("c/x", parent={"full_name": "b/x", "parent": {"full_name": "a/x", "parent": {"full_name": "sympy/sympy"}}}),
     "sympy/sympy", "parent.parent.parent"),
    # fork_of as a list (the chain, nearest first) and as a dict
    ({"fork_of": ["b/x", "a/x", "django/django"]}, "django/django", "fork_of[2]"),
    ({"fork_of": {"full_name": "b/x", "source": "pallets/flask"}}, "pallets/flask", "fork_of.source"),
    # nulls everywhere but one field
    ({"fork_of": None, "repo_meta": {"parent": None, "source": "astropy/astropy", "fork": None}}, "astropy/astropy",
     "repo_meta.source"),
])
def test_fork_rule_walks_the_fork_network(meta, expected, via):
    match = fork_rule(meta)
    assert match is not None and match.matched_repo == expected and f"({via})" in match.detail


def test_fork_rule_cycle_is_cut():
    a = {"full_name": "a/x"}
    a["parent"] = a  # a malformed, cyclic record
    assert fork_rule({"fork": True, "parent": a}) is None
