"""Repository-level decontamination rules: the SWE-bench repositories, their former names, forks and mirrors.

Every rule answers one question about a sample's repository and returns a `RepoMatch` (or None):

- `name_rule`        repo_name / repo_renamed   the repository *is* a SWE-bench repository, under its current or a former name
- `fork_rule`        repo_fork                  GitHub metadata says it is a fork of one (parent, source, or `fork_of`)
- `commit_rule`      commit_base                one of the sample's commits is a Verified base_commit
- `MirrorRules`      mirror_base_commit         the mirror's object database holds a Verified base_commit
                     mirror_root_commit         one of the mirror's root commits is a reference repository's root commit

The reference facts (the 12 repositories, former names, known root commits, and where each fact comes from) live in
`datakit/decontam/data/reference_repos.json`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (pygit2 is imported where a history is read: the name and commit rules do not need it)
    import pygit2

_DATA = ("decontam", "data", "reference_repos.json")

# GitHub owner: letters, digits, hyphens (no leading hyphen); repository: letters, digits, '.', '-', '_'.
_OWNER = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_NAME = r"[A-Za-z0-9_.-]+"
_PLAIN = re.compile(rf"^({_OWNER})/({_NAME})$")
_HOSTS = {"github.com", "www.github.com"}
_SSH = re.compile(rf"^(?:ssh://)?[\w.-]+@(?:www\.)?github\.com[:/](.+)$", re.IGNORECASE)
_URL = re.compile(r"^(?:(?:https?|git|ssh)://)?(?:[^@/]+@)?([^/:]+)(?::\d+)?(/.*)?$", re.IGNORECASE)
_SHA = re.compile(r"^[0-9a-f]{40}$")


def load_reference_repos() -> dict:
    """The reference data: {"repos": [...], "former_names": {...}, "root_commits": {sha: repo}, "sources": {...}}."""
    path = resources.files("datakit").joinpath(*_DATA)
    data = json.loads(path.read_text(encoding="utf-8"))
    repos = [normalize_repo(r) for r in data["repos"]]
    if None in repos or len(set(repos)) != len(repos):
        raise ValueError(f"{'/'.join(_DATA)}: bad repository names in 'repos'")
    former = {}
    for old, new in data.get("former_names", {}).items():
        old_n, new_n = normalize_repo(old), normalize_repo(new)
        if old_n is None or new_n not in repos or old_n in repos:
            raise ValueError(f"{'/'.join(_DATA)}: former name {old!r} -> {new!r} does not name a reference repository")
        former[old_n] = new_n
    roots = {}
    for sha, repo in data.get("root_commits", {}).items():
        if not _SHA.match(sha.lower()) or normalize_repo(repo) not in repos:
            raise ValueError(f"{'/'.join(_DATA)}: bad root commit {sha!r} -> {repo!r}")
        roots[sha.lower()] = normalize_repo(repo)
    return {"repos": repos, "former_names": former, "root_commits": roots, "sources": data.get("sources", {})}


def normalize_repo(name_or_url: str | None) -> str | None:
    """'owner/name' lowercased, from a name or any GitHub URL form; None for anything else.

    Accepts `Django/Django`, `django/django.git`, `https://github.com/django/django`, `http://www.github.com/x/y/`,
    `git@github.com:x/y.git`, `ssh://git@github.com/x/y`, `git://github.com/x/y`, `github.com/x/y/tree/main`,
    `https://api.github.com/repos/x/y`. URLs of other hosts, single words and paths are None.
    """
    if not isinstance(name_or_url, str):
        return None
    text = name_or_url.strip()
    if not text or any(c.isspace() for c in text):
        return None
    ssh = _SSH.match(text)
    if ssh:
        parts = [p for p in ssh.group(1).split("/") if p]
        return _owner_name(parts[:2]) if len(parts) >= 2 else None
    if _PLAIN.match(text.removesuffix("/")):
        return _owner_name(text.removesuffix("/").split("/"))
    url = _URL.match(text)
    if not url or not url.group(2):
        return None
    host = url.group(1).lower()
    path = url.group(2).split("?", 1)[0].split("#", 1)[0]
    parts = [p for p in path.split("/") if p]
    if host == "api.github.com" and parts[:1] == ["repos"]:
        parts = parts[1:]
    elif host not in _HOSTS:
        return None
    return _owner_name(parts[:2]) if len(parts) >= 2 else None


def _owner_name(parts: list[str]) -> str | None:
    owner, name = parts
    if name.lower().endswith(".git"):
        name = name[: -len(".git")]
    if not re.fullmatch(_OWNER, owner) or not re.fullmatch(_NAME, name) or name in (".", ".."):
        return None
    return f"{owner}/{name}".lower()


_REF = load_reference_repos()
REFERENCE_REPOS: frozenset[str] = frozenset(_REF["repos"])
FORMER_NAMES: dict[str, str] = dict(_REF["former_names"])
ROOTS_FILE = ("decontam", "data", "root_commits.json")


def load_root_commits(path: str | os.PathLike | None = None) -> dict[str, dict]:
    """sha -> {repo, subject, author_date} from a root-commits file (`datakit/decontam/data/root_commits.json` by
    default; `datakit decontam build-roots` writes the same format). Bad entries raise ValueError naming the file."""
    where = str(path) if path is not None else "/".join(ROOTS_FILE)
    try:
        text = (open(path, encoding="utf-8").read() if path is not None
                else resources.files("datakit").joinpath(*ROOTS_FILE).read_text(encoding="utf-8"))
        data = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where}: cannot read root commits ({exc}); rebuild it with datakit decontam build-roots") \
            from None
    out = {}
    for repo, entry in (data.get("repos") or {}).items():
        ref = normalize_repo(repo)
        if ref not in REFERENCE_REPOS:
            raise ValueError(f"{where}: {repo!r} is not a SWE-bench repository")
        for root in entry.get("roots") or ():
            sha = str(root.get("sha", "")).lower()
            if not _SHA.match(sha):
                raise ValueError(f"{where}: bad root commit {root.get('sha')!r} of {repo}")
            out[sha] = {"repo": ref, "subject": root.get("subject", ""), "author_date": root.get("author_date")}
    return out


def reference_root_commits(extra: str | os.PathLike | None = None) -> dict[str, str]:
    """sha -> reference repo: the shipped root commits, reference_repos.json's, and those of an `extra` file."""
    roots = {sha: info["repo"] for sha, info in load_root_commits().items()}
    roots.update(_REF["root_commits"])
    if extra:
        roots.update({sha: info["repo"] for sha, info in load_root_commits(extra).items()})
    return roots


def repos_without_roots(roots: Mapping[str, str]) -> list[str]:
    """The reference repositories no root commit is known for (their copies are still caught by base commits)."""
    return sorted(REFERENCE_REPOS - set(roots.values()))


REFERENCE_ROOT_COMMITS: dict[str, str] = reference_root_commits()


@dataclass(frozen=True)
class RepoMatch:
    """Why a repository is contaminated. `rule` is one of the decontam_match schema's repository/commit rules."""

    rule: str
    matched_repo: str
    detail: str
    matched_instance_id: str | None = None


def _reference_of(name_or_url) -> tuple[str, str] | None:
    """(reference repo, normalised name) when the name is a reference repository or a former name of one."""
    name = normalize_repo(name_or_url) if isinstance(name_or_url, str) else None
    if name is None:
        return None
    if name in REFERENCE_REPOS:
        return name, name
    if name in FORMER_NAMES:
        return FORMER_NAMES[name], name
    return None


def name_rule(repo: str | None) -> RepoMatch | None:
    """repo_name: the repository is a SWE-bench repository; repo_renamed: it is one under a former name."""
    hit = _reference_of(repo)
    if hit is None:
        return None
    ref, name = hit
    if name == ref:
        return RepoMatch("repo_name", ref, f"{repo} is the SWE-bench repository {ref}")
    return RepoMatch("repo_renamed", ref, f"{repo} is a former name of the SWE-bench repository {ref}")


def _full_name(value) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        for key in ("full_name", "html_url", "clone_url", "url", "name_with_owner", "nameWithOwner"):
            if isinstance(value.get(key), str):
                return value[key]
    return None


_CHAIN_KEYS = ("parent", "source", "fork_of", "parents", "fork_chain", "repo_meta")
MAX_CHAIN = 32


def _chain(value, path: str, depth: int = 0):
    """(field path, name) for every repository named in a fork chain: a string, a dict with a name (`full_name`,
    a URL, …) and its own `parent`/`source`, or a list of those. Cycles are cut at MAX_CHAIN levels."""
    if depth > MAX_CHAIN or value is None:
        return
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        name = _full_name(value)
        if name is not None:
            yield path, name
        for key in _CHAIN_KEYS:
            if value.get(key) is not None:
                yield from _chain(value[key], f"{path}.{key}", depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _chain(v, f"{path}[{i}]", depth + 1)


def fork_rule(metadata: Mapping | None) -> RepoMatch | None:
    """repo_fork: GitHub repository metadata says the repository is in the fork network of a SWE-bench repository.

    Looks at `source` (the root of the fork network) and the whole `parent` chain (a fork of a fork of a fork …:
    a parent given as a dict may carry its own `parent`/`source`), at `fork_of` (the PullRecord and Sample field;
    a string, a dict or a list), `parents` / `fork_chain` lists, and the same fields inside a nested `repo_meta`.
    Strings and dicts with `full_name` (or a URL) are accepted, any of them may be null. `fork: false` at the top
    level turns off `parent`/`source` there (GitHub sends `parent` only for forks). A former name counts as the
    repository it became.
    """
    if not isinstance(metadata, Mapping):
        return None
    own = _full_name(metadata) or "the repository"
    candidates = []
    for key in _CHAIN_KEYS:
        if key in ("parent", "source") and metadata.get("fork") is False:
            continue
        candidates += list(_chain(metadata.get(key), key))
    for field, name in candidates:
        hit = _reference_of(name)
        if hit is not None:
            ref, via = hit
            renamed = f" (former name of {ref})" if via != ref else ""
            return RepoMatch("repo_fork", ref, f"{own} is in the fork network of {via}{renamed} ({field})")
    return None


def instance_repo(instance_id: str) -> str | None:
    """`django__django-11099` -> `django/django`."""
    owner, sep, rest = instance_id.partition("__")
    name = rest.rsplit("-", 1)[0] if rest else ""
    return normalize_repo(f"{owner}/{name}") if sep and name else None


def _lower_map(mapping: Mapping[str, str]) -> dict[str, str]:
    return {str(k).lower(): v for k, v in mapping.items()}


def commit_rule(shas: Iterable[str | None], base_commits: Mapping[str, str]) -> RepoMatch | None:
    """commit_base: one of the shas (base, head, PR commits, merge) is a Verified base_commit (sha -> instance_id).

    Only full 40-hex shas are compared (case-insensitively); an abbreviated sha never matches.
    """
    for sha in shas or ():
        if not isinstance(sha, str):
            continue
        key = sha.strip().lower()
        if not _SHA.match(key):
            continue
        instance = base_commits.get(key)
        if instance is None and key != sha:
            instance = base_commits.get(sha)
        if instance is None:
            continue
        repo = instance_repo(instance) or instance
        return RepoMatch("commit_base", repo, f"commit {key} is the base_commit of {instance}", instance)
    return None


class MirrorRules:
    """rule "mirror_base_commit": the repository's object database contains any Verified base_commit (a mirror or fork
    of a reference repo has its history); rule "mirror_root_commit": one of the repository's root commits (commits
    with no parents reachable from any ref) is a known root commit of a reference repository (vendored copies and
    re-histories that kept the root). Computed once per mirror and cached by repository path."""

    def __init__(self, base_commits: Mapping[str, str], root_commits: Mapping[str, str]):
        self.base_commits = _lower_map(base_commits)  # sha -> instance_id
        self.root_commits = _lower_map(root_commits)  # sha -> reference repo
        self._base_order = sorted(self.base_commits)
        self._results: dict[str, RepoMatch | None] = {}
        self._roots: dict[str, frozenset[str]] = {}
        self.walks = 0  # history walks done (one per mirror at most): the cache's witness

    @staticmethod
    def _key(repo: pygit2.Repository) -> str:
        return os.path.realpath(repo.path)

    def check(self, repo: pygit2.Repository) -> RepoMatch | None:
        key = self._key(repo)
        if key not in self._results:
            self._results[key] = self._check(repo)
        return self._results[key]

    def _check(self, repo: pygit2.Repository) -> RepoMatch | None:
        for sha in self._base_order:  # 500 object look-ups: cheaper than any walk, and names the instance
            if sha in repo:
                instance = self.base_commits[sha]
                matched = instance_repo(instance) or instance
                return RepoMatch("mirror_base_commit", matched,
                                 f"the repository contains {sha}, the base_commit of {instance}", instance)
        if not self.root_commits:
            return None
        for sha in sorted(self.roots(repo)):
            if sha in self.root_commits:
                ref = self.root_commits[sha]
                return RepoMatch("mirror_root_commit", normalize_repo(ref) or ref,
                                 f"root commit {sha} is a root commit of {ref}")
        return None

    def roots(self, repo: pygit2.Repository) -> frozenset[str]:
        """The shas of the commits without parents reachable from any ref (cached by repository path)."""
        key = self._key(repo)
        if key not in self._roots:
            self._roots[key] = self._walk_roots(repo)
        return self._roots[key]

    def _walk_roots(self, repo: pygit2.Repository) -> frozenset[str]:
        import pygit2

        self.walks += 1
        tips = set()
        for name in repo.references:
            try:
                target = repo.references[name].peel(pygit2.Commit)
            except (pygit2.GitError, KeyError, ValueError, pygit2.InvalidSpecError):
                continue  # a tag of a tree or blob, a dangling ref
            tips.add(target.id)
        if not tips:
            return frozenset()
        tips = sorted(tips, key=str)
        walker = repo.walk(tips[0], pygit2.enums.SortMode.NONE)
        for tip in tips[1:]:
            walker.push(tip)
        roots = set()
        try:
            for commit in walker:
                if not commit.parent_ids:
                    roots.add(str(commit.id))
        except pygit2.GitError:
            pass  # a missing parent (shallow or damaged mirror): keep the roots found so far
        return frozenset(roots)


def _branch_tag_tips(repo: pygit2.Repository) -> list:
    import pygit2

    tips = set()
    for name in repo.references:
        if not name.startswith(("refs/heads/", "refs/tags/")):
            continue  # refs/pull/*: other people's histories; refs/notes/*: not code
        try:
            tips.add(repo.references[name].peel(pygit2.Commit).id)
        except (pygit2.GitError, KeyError, ValueError, pygit2.InvalidSpecError):
            continue
    return sorted(tips, key=str)


def _roots_from(repo: pygit2.Repository, tips: list) -> dict[str, pygit2.Commit]:
    import pygit2

    if not tips:
        return {}
    walker = repo.walk(tips[0], pygit2.enums.SortMode.NONE)
    for tip in tips[1:]:
        walker.push(tip)
    roots = {}
    try:
        for commit in walker:
            if not commit.parent_ids:
                roots[str(commit.id)] = commit
    except pygit2.GitError:
        pass  # a shallow or damaged mirror: the roots found so far
    return roots


def build_root_commits(mirrors_dir: str | os.PathLike) -> dict:
    """Root commits of the reference repositories found in a folder of git mirrors (``owner__name.git``, the
    current or a former name), in the format of ``datakit/decontam/data/root_commits.json``. Roots are those
    reachable from branches and tags (``git rev-list --max-parents=0 --branches --tags``); `on_head` marks those
    reachable from HEAD."""
    from datetime import datetime, timedelta, timezone
    from pathlib import Path

    import pygit2

    folder = Path(mirrors_dir)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder (give --mirrors the folder holding owner__name.git mirrors)")
    repos: dict = {}
    for path in sorted(folder.glob("*.git")):
        owner, _, name = path.name[: -len(".git")].partition("__")
        hit = _reference_of(f"{owner}/{name}") if name else None
        if hit is None:
            continue
        try:
            repo = pygit2.Repository(str(path))
        except (pygit2.GitError, KeyError):
            continue
        roots = _roots_from(repo, _branch_tag_tips(repo))
        try:
            head = repo.head.peel(pygit2.Commit)
            on_head = set(_roots_from(repo, [head.id]))
        except pygit2.GitError:
            head, on_head = None, set()

        def when(c: pygit2.Commit) -> str:
            tz = timezone(timedelta(minutes=c.author.offset))
            return datetime.fromtimestamp(c.author.time, tz).isoformat()

        entry = repos.setdefault(hit[0], {"roots": [], "mirrors": []})
        entry["mirrors"].append(path.name)
        known = {r["sha"] for r in entry["roots"]}
        entry["roots"] += [{"sha": sha, "author_date": when(c), "subject": c.message.split("\n", 1)[0][:80],
                            "on_head": sha in on_head} for sha, c in sorted(roots.items()) if sha not in known]
        entry["head"] = str(head.id) if head is not None else None
    return {"description": "Root commits of SWE-bench Verified repositories, computed by datakit decontam build-roots",
            "provenance": {"source": f"git mirrors in {folder.resolve()}",
                           "method": "roots reachable from refs/heads/* and refs/tags/* (pygit2 walk)"},
            "repos": repos, "not_computed": {r: "no mirror in the folder" for r in sorted(REFERENCE_REPOS - set(repos))}}
