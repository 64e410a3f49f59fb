"""Real git repositories for tests, written with pygit2 (no git CLI needed): commits, branches, merges, squashes."""

from __future__ import annotations

from pathlib import Path

import pygit2


class RepoBuilder:
    """A bare repository grown commit by commit. Times advance one minute per commit, so shas are stable."""

    def __init__(self, path: Path, start: int = 1_700_000_000):
        self.repo = pygit2.init_repository(str(path), bare=True, initial_head="main")
        self.path = Path(path)
        self.time = start

    def _sig(self, name: str = "Dev") -> pygit2.Signature:
        self.time += 60
        return pygit2.Signature(name, f"{name.lower()}@example.com", self.time, 0)

    def _tree(self, base: pygit2.Tree | None, changes: dict[str, bytes | None]) -> pygit2.Oid:
        """Apply {path: bytes or None (delete)} to `base` and write the new tree."""
        files = {}
        if base is not None:
            for path, oid in _walk(self.repo, base, ""):
                files[path] = oid
        for path, data in changes.items():
            if data is None:
                files.pop(path, None)
            else:
                files[path] = self.repo.create_blob(data)
        return _build(self.repo, files)

    def commit(self, changes: dict[str, bytes | str | None], message: str, parent: str | pygit2.Oid | None = "main",
               ref: str | None = "refs/heads/main", parents: list | None = None, author: str = "Dev") -> pygit2.Oid:
        changes = {p: (d.encode() if isinstance(d, str) else d) for p, d in changes.items()}
        if parents is None:
            if parent is None:
                parents = []
            elif isinstance(parent, str) and parent in self.repo.branches:
                parents = [self.repo.branches[parent].target]
            elif isinstance(parent, str) and parent.startswith("refs/"):
                parents = [self.repo.references[parent].target]
            else:
                parents = [parent] if parent is not None else []
        base = self.repo[parents[0]].tree if parents else None
        tree = self._tree(base, changes)
        sig = self._sig(author)
        oid = self.repo.create_commit(None, sig, sig, message, tree, parents)
        if ref:
            self.repo.references.create(ref, oid, force=True)
        return oid

    def branch(self, name: str, at: str = "main") -> None:
        self.repo.references.create(f"refs/heads/{name}", self.repo.branches[at].target, force=True)

    def merge_pr(self, number: int, branch: str, title: str, body: str = "", user: str = "alice") -> pygit2.Oid:
        """A GitHub merge commit of `branch` into main, plus refs/pull/N/head."""
        head = self.repo.branches[branch].target
        main = self.repo.branches["main"].target
        self.repo.references.create(f"refs/pull/{number}/head", head, force=True)
        index = self.repo.merge_commits(main, head)
        assert not index.conflicts, "test repositories merge cleanly"
        tree = index.write_tree(self.repo)
        sig = self._sig("GitHub")
        msg = f"Merge pull request #{number} from {user}/{branch}\n\n{title}\n\n{body}".rstrip() + "\n"
        oid = self.repo.create_commit("refs/heads/main", sig, sig, msg, tree, [main, head])
        return oid

    def squash_pr(self, number: int, changes: dict, title: str, body: str = "") -> pygit2.Oid:
        """A GitHub squash merge: one commit on main titled "title (#N)", and the PR branch as refs/pull/N/head."""
        side = self.commit(changes, f"{title} (wip)", parent="main", ref=f"refs/pull/{number}/head")
        del side
        return self.commit(changes, f"{title} (#{number})\n\n{body}".rstrip() + "\n", parent="main")


def _walk(repo, tree, prefix):
    for entry in tree:
        path = f"{prefix}{entry.name}"
        if entry.type_str == "tree":
            yield from _walk(repo, repo[entry.id], path + "/")
        else:
            yield path, entry.id


def _build(repo, files: dict[str, pygit2.Oid]) -> pygit2.Oid:
    children: dict[str, dict] = {}
    blobs: dict[str, pygit2.Oid] = {}
    for path, oid in files.items():
        head, _, rest = path.partition("/")
        if rest:
            children.setdefault(head, {})[rest] = oid
        else:
            blobs[head] = oid
    tb = repo.TreeBuilder()
    for name, oid in blobs.items():
        tb.insert(name, oid, pygit2.GIT_FILEMODE_BLOB)
    for name, sub in children.items():
        tb.insert(name, _build(repo, sub), pygit2.GIT_FILEMODE_TREE)
    return tb.write()
