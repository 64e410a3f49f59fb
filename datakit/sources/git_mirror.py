"""Bare git mirrors read with pygit2: clone (URL or local path, GitHub's `refs/pull/*/head` included), reopen, read.

A mirror lives at `<mirrors_dir>/<owner>__<name>.git`. Fetching an existing mirror updates it, so a later crawl only
transfers what changed. Blobs and trees are read in C by libgit2; nothing is checked out.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pygit2

HEADS_REFSPEC = "+refs/heads/*:refs/heads/*"
PULLS_REFSPEC = "+refs/pull/*/head:refs/pull/*/head"
_REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class MirrorError(RuntimeError):
    pass


@dataclass(frozen=True)
class RepoSpec:
    """A repository to mirror: its GitHub name and where to fetch it from (URL or local path)."""

    name: str
    url: str

    @classmethod
    def parse(cls, spec: str | dict) -> "RepoSpec":
        """`owner/name`, `owner/name URL` (or `owner/name=URL`), or {name:, url:}. A bare name → github.com."""
        if isinstance(spec, dict):
            name, url = spec.get("name"), spec.get("url")
        else:
            parts = spec.replace("=", " ", 1).split()
            if not 1 <= len(parts) <= 2:
                raise ValueError(f"repository {spec!r}: expected 'owner/name [url-or-path]'")
            name, url = parts[0], (parts[1] if len(parts) > 1 else None)
        if not name or not _REPO_NAME.match(name):
            raise ValueError(f"repository {spec!r}: expected 'owner/name [url-or-path]'")
        return cls(name=name, url=url or f"https://github.com/{name}.git")


def mirror_path(mirrors_dir: str | Path, repo_name: str) -> Path:
    owner, name = repo_name.split("/", 1)
    return Path(mirrors_dir) / f"{owner}__{name}.git"


def _local_path(url: str) -> Path | None:
    if url.startswith("file://"):
        return Path(url[len("file://"):])
    if "://" in url or re.match(r"^[\w.-]+@[\w.-]+:", url):
        return None
    return Path(url)


def clone_mirror(spec: RepoSpec, mirrors_dir: str | Path, fetch_pulls: bool = True) -> pygit2.Repository:
    """Clone `spec` bare into the mirrors dir, or fetch into the mirror that is already there."""
    dest = mirror_path(mirrors_dir, spec.name)
    local = _local_path(spec.url)
    if local is not None and not local.exists():
        raise MirrorError(f"{spec.name}: local repository {local} does not exist")
    url = str(local.resolve()) if local is not None else spec.url
    if dest.exists():
        repo = pygit2.Repository(str(dest))
    else:
        tmp = dest.with_name(dest.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)  # an interrupted clone restarts clean
        repo = pygit2.init_repository(str(tmp), bare=True)
        repo.remotes.create("origin", url, HEADS_REFSPEC)
        if fetch_pulls:
            repo.remotes.add_fetch("origin", PULLS_REFSPEC)
    try:
        repo.remotes["origin"].fetch()
    except pygit2.GitError as exc:  # the message names the URL, never a token (tokens go in headers)
        if not dest.exists():  # a failed first clone leaves nothing behind (no <name>.git.partial)
            partial = Path(repo.path)
            repo.free()
            shutil.rmtree(partial, ignore_errors=True)
        raise MirrorError(f"{spec.name}: fetch from {_redact(url)} failed: {exc}") from exc
    if not dest.exists():  # publish the finished clone atomically
        partial = Path(repo.path)
        repo.free()
        partial.rename(dest)
        repo = pygit2.Repository(str(dest))
    _set_head(repo)
    return repo


def _redact(url: str) -> str:
    return re.sub(r"//[^/@]+@", "//***@", url)


def _set_head(repo: pygit2.Repository) -> None:
    """Point HEAD at the remote's default branch (main, master, or the only branch)."""
    branches = repo.listall_branches()
    if not branches:
        return
    try:
        if repo.head.name.removeprefix("refs/heads/") in branches:
            return
    except pygit2.GitError:
        pass
    for name in ("main", "master", "trunk", "develop"):
        if name in branches:
            repo.set_head(f"refs/heads/{name}")
            return
    repo.set_head(f"refs/heads/{sorted(branches)[0]}")


def ensure_mirror(spec: RepoSpec, mirrors_dir: str | Path, fetch: bool = True) -> pygit2.Repository:
    """The repository's mirror: cloned or fetched when `fetch`, else the one already on disk (MirrorError if none)."""
    return clone_mirror(spec, mirrors_dir) if fetch else open_mirror(mirror_path(mirrors_dir, spec.name))


def open_mirror(path: str | Path) -> pygit2.Repository:
    try:
        return pygit2.Repository(str(path))
    except (pygit2.GitError, KeyError) as exc:
        raise MirrorError(f"{path} is not a git repository: {exc}") from exc


def default_tip(repo: pygit2.Repository) -> pygit2.Commit:
    """The commit at the tip of the default branch."""
    try:
        return repo.head.peel(pygit2.Commit)
    except pygit2.GitError:
        branches = repo.listall_branches()
        if not branches:
            raise MirrorError(f"{repo.path}: no branches")
        return repo.branches[sorted(branches)[0]].peel(pygit2.Commit)


def read_blob(repo: pygit2.Repository, tree: pygit2.Tree, path: str) -> bytes | None:
    """The bytes of `path` in `tree`, or None when it is absent (or not a file)."""
    try:
        entry = tree[path]
    except KeyError:
        return None
    obj = repo[entry.id]
    return obj.data if isinstance(obj, pygit2.Blob) else None
