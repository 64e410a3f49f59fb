"""Build the embedded demo repository ``acme/widgets`` from the fixtures.

The repository is written with pygit2 only (no git CLI, no network) and is fully
deterministic: fixed signatures and fixed timestamps (2024-01-01T00:00:00Z, one
hour per commit), so every build yields the same object ids.

Layout of ``fixtures/`` (read by this module):

* ``repo.json`` - repository metadata: name, start time, maintainer, the
  committer used for web merges, and per-path ``attributes`` applied whenever a
  path is written (``eol: crlf``, ``final_newline: false``, ``encoding``).
* ``initial/<path>.in`` - the tree of the initial commit.
* ``prs/NN-slug/pr.json`` - one pull request; directories are processed in
  ``NN`` order, which is the order the PRs land on ``main``.
* ``prs/NN-slug/c<i>/<path>.in`` - full new content of each file written by the
  i-th commit of the PR branch (deletions are listed in ``pr.json``).

Every content file carries an extra ``.in`` suffix (stripped here) so fixture
Python/test files are never imported, collected by pytest or packaged as code.

``pr.json`` fields: ``number``, ``title``, ``body``, ``author`` (login, name,
email), ``branch``, ``merge_style`` (``merge`` | ``squash`` | ``unmerged``),
optional ``base`` (``"initial"`` or the number of an earlier PR: the branch
starts from the main commit that landed that PR; default: the current main
tip), ``summary`` and ``commits`` (``message``, ``write``, ``delete``).

GitHub conventions reproduced:

* merge: branch commits + a two-parent commit on main with message
  ``Merge pull request #N from <login>/<branch>\\n\\n<title>\\n\\n<body>``;
* squash: branch commits on a side branch (``refs/pull/N/head``) + a single
  parent commit on main with message ``<title> (#N)\\n\\n<body>``;
* unmerged: only ``refs/pull/N/head``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pygit2

__all__ = [
    "DEMO_REPO_NAME",
    "DEMO_REPO_DIRNAME",
    "FIXTURES_DIR",
    "build_demo_repo",
    "demo_pr_specs",
]

DEMO_REPO_NAME = "acme/widgets"
DEMO_REPO_DIRNAME = "acme-widgets.git"
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"

_SUFFIX = ".in"
_FILE_MODE = pygit2.enums.FileMode.BLOB
_TREE_MODE = pygit2.enums.FileMode.TREE

# path -> blob oid
_Tree = dict[str, pygit2.Oid]


def _load_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def demo_pr_specs(fixtures_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Return the parsed ``pr.json`` of every fixture PR, in merge order."""
    root = Path(fixtures_dir) if fixtures_dir is not None else FIXTURES_DIR
    specs = []
    for d in sorted(p for p in (root / "prs").iterdir() if p.is_dir()):
        spec = _load_json(d / "pr.json")
        spec["_dir"] = d.name
        specs.append(spec)
    return specs


def _read_content_dir(base: Path) -> dict[str, bytes]:
    """Map repo path -> raw fixture bytes for every ``*.in`` file under *base*."""
    out: dict[str, bytes] = {}
    if not base.is_dir():
        return out
    for f in sorted(base.rglob("*")):
        if not f.is_file():
            continue
        rel = f.relative_to(base).as_posix()
        if not rel.endswith(_SUFFIX):
            raise ValueError(f"fixture content file without {_SUFFIX!r} suffix: {f}")
        out[rel[: -len(_SUFFIX)]] = f.read_bytes()
    return out


def _apply_attributes(path: str, data: bytes, attributes: dict[str, dict[str, Any]]) -> bytes:
    attrs = attributes.get(path)
    if not attrs:
        return data
    text = data.decode("utf-8")
    if attrs.get("final_newline", True) is False:
        if not text.endswith("\n"):
            raise ValueError(f"{path}: fixture must end with a newline to strip it")
        text = text[:-1]
    if attrs.get("eol") == "crlf":
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    return text.encode(attrs.get("encoding", "utf-8"))


@dataclass
class _Builder:
    repo: pygit2.Repository
    meta: dict[str, Any]
    clock: int = 0
    trees: dict[pygit2.Oid, _Tree] = field(default_factory=dict)

    def __post_init__(self) -> None:
        start = datetime.fromisoformat(self.meta["start_time"].replace("Z", "+00:00"))
        self._t0 = int(start.timestamp())
        self._step = int(self.meta.get("step_seconds", 3600))

    # -- signatures ---------------------------------------------------------
    def _sig(self, person: dict[str, Any], when: int) -> pygit2.Signature:
        return pygit2.Signature(person["name"], person["email"], when, 0)

    def _tick(self) -> int:
        when = self._t0 + self.clock * self._step
        self.clock += 1
        return when

    # -- trees --------------------------------------------------------------
    def _write_tree(self, files: _Tree) -> pygit2.Oid:
        nested: dict[str, Any] = {}
        for path, oid in files.items():
            parts = path.split("/")
            node = nested
            for part in parts[:-1]:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ValueError(f"path conflicts with a file: {path}")
            node[parts[-1]] = oid

        def build(node: dict[str, Any]) -> pygit2.Oid:
            tb = self.repo.TreeBuilder()
            for name in sorted(node):
                child = node[name]
                if isinstance(child, dict):
                    tb.insert(name, build(child), _TREE_MODE)
                else:
                    tb.insert(name, child, _FILE_MODE)
            return tb.write()

        return build(nested)

    def _apply(self, files: _Tree, writes: dict[str, bytes], deletes: list[str]) -> _Tree:
        out = dict(files)
        for path in deletes:
            if path not in out:
                raise ValueError(f"cannot delete missing path {path!r}")
            del out[path]
        attributes = self.meta.get("attributes", {})
        for path, raw in writes.items():
            out[path] = self.repo.create_blob(_apply_attributes(path, raw, attributes))
        return out

    def _commit(
        self,
        files: _Tree,
        parents: list[pygit2.Oid],
        message: str,
        author: dict[str, Any],
        committer: dict[str, Any] | None = None,
    ) -> pygit2.Oid:
        when = self._tick()
        tree = self._write_tree(files)
        oid = self.repo.create_commit(
            None,
            self._sig(author, when),
            self._sig(committer or author, when),
            message,
            tree,
            parents,
        )
        self.trees[oid] = files
        return oid

    @staticmethod
    def _merge3(base: _Tree, ours: _Tree, theirs: _Tree, what: str) -> _Tree:
        """File-level three-way merge; the fixtures must not conflict."""
        out: _Tree = {}
        for path in sorted(set(base) | set(ours) | set(theirs)):
            b, o, t = base.get(path), ours.get(path), theirs.get(path)
            if o == t:
                result = o
            elif b == o:
                result = t
            elif b == t:
                result = o
            else:
                raise ValueError(f"{what}: conflicting changes to {path!r}")
            if result is not None:
                out[path] = result
        return out


def _message(text: str) -> str:
    return text.rstrip("\n") + "\n"


def _build_into(repo_path: Path, fixtures: Path) -> dict[str, str]:
    meta = _load_json(fixtures / "repo.json")
    branch = meta.get("default_branch", "main")
    repo = pygit2.init_repository(str(repo_path), bare=True, initial_head=branch)
    b = _Builder(repo, meta)
    web = meta["web_committer"]

    initial = meta["initial_commit"]
    files = b._apply({}, _read_content_dir(fixtures / "initial"), [])
    root = b._commit(files, [], _message(initial["message"]), initial["author"])
    main = root
    landed: dict[int, pygit2.Oid] = {}
    refs: dict[str, pygit2.Oid] = {}

    for spec in demo_pr_specs(fixtures):
        number = int(spec["number"])
        where = f"PR #{number} ({spec['_dir']})"
        base_ref = spec.get("base")
        if base_ref is None:
            base = main
        elif base_ref == "initial":
            base = root
        else:
            base = landed[int(base_ref)]

        # branch commits
        tip = base
        pr_dir = fixtures / "prs" / spec["_dir"]
        for i, c in enumerate(spec["commits"], 1):
            writes = _read_content_dir(pr_dir / f"c{i}")
            if sorted(writes) != sorted(c.get("write", [])):
                raise ValueError(f"{where} commit {i}: 'write' does not match c{i}/ contents")
            tree = b._apply(b.trees[tip], writes, list(c.get("delete", [])))
            tip = b._commit(tree, [tip], _message(c["message"]), spec["author"])
        refs[f"refs/pull/{number}/head"] = tip

        style = spec["merge_style"]
        if style == "unmerged":
            continue
        merged = b._merge3(b.trees[base], b.trees[main], b.trees[tip], where)
        title, body = spec["title"].strip(), spec.get("body", "").strip()
        if style == "merge":
            head = f"Merge pull request #{number} from {spec['author']['login']}/{spec['branch']}"
            msg = "\n\n".join(x for x in (head, title, body) if x)
            merger = spec.get("merged_by", meta["maintainer"])
            main = b._commit(merged, [main, tip], _message(msg), merger, web)
        elif style == "squash":
            msg = "\n\n".join(x for x in (f"{title} (#{number})", body) if x)
            main = b._commit(merged, [main], _message(msg), spec["author"], web)
        else:
            raise ValueError(f"{where}: unknown merge_style {style!r}")
        landed[number] = main

    refs[f"refs/heads/{branch}"] = main
    for name, oid in refs.items():
        repo.references.create(name, oid, force=True)
    return {name: str(oid) for name, oid in refs.items()}


def _existing_refs(path: Path) -> dict[str, str] | None:
    try:
        repo = pygit2.Repository(str(path))
    except (pygit2.GitError, KeyError, OSError):
        return None
    if not repo.is_bare:
        return None
    out = {}
    for name in repo.references:
        ref = repo.references[name]
        if ref.type == pygit2.enums.ReferenceType.DIRECT:
            out[name] = str(ref.target)
    return out


def build_demo_repo(dest: str | Path) -> Path:
    """Build (or reuse) the bare demo repository ``<dest>/acme-widgets.git``.

    Returns the repository path.  If a repository with exactly the expected refs
    (``refs/heads/main`` and every ``refs/pull/N/head``) already exists there it
    is returned untouched; anything else at that path is replaced.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / DEMO_REPO_DIRNAME
    tmp = Path(tempfile.mkdtemp(prefix=".acme-widgets-build-", dir=dest))
    try:
        expected = _build_into(tmp / DEMO_REPO_DIRNAME, FIXTURES_DIR)
        if target.exists():
            if _existing_refs(target) == expected:
                return target
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
        (tmp / DEMO_REPO_DIRNAME).rename(target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
