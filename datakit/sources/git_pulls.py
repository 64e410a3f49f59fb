"""Pull requests found in a git mirror's history, as PullRecords (schemas/pull_record.schema.json).

Discovery is one walk of the default branch (`History`): its first-parent chain, and for every commit reachable
from the tip the chain commit that *landed* it. A PR's change is then `merge-base(head, target) .. head`, where
*target* is the branch just before the PR landed (the landing commit's first parent) — what GitHub shows as the
PR's diff — never a first-parent diff of a head that happens to be a merge, and never today's tip. Evidence, in
this order (a PR number is reported once, by the earliest landing):

- merge commit "Merge pull request #N from user/branch": head = its second parent, target = its first parent;
- squash merge, a single-parent commit whose subject ends in "(#N)": base = its parent, head = the commit (the
  PR's own commits are listed when `refs/pull/N/head` is present);
- `refs/pull/N/head` reachable from the tip (merged by a merge commit that does not name it, or as part of
  another branch): target = the first parent of the chain commit that landed it; a head that is itself on the
  first-parent chain was fast-forwarded: its last commit is the change (a merge there is ambiguous: filtered);
- `refs/pull/N/head` whose tree equals a landed single-parent commit's (a squash or rebase merge of an up-to-date
  branch whose subject does not say "(#N)"): that commit landed it;
- any other pull ref is unmerged (`merged_at: null`); only then is its diff computed, and only when asked.

One change gives one record: each change is identified by its git patch-id (libgit2's `git_diff_patchid`, the
ids of `git patch-id --stable`), and a change already seen under an earlier-landed PR (a re-opened or
cherry-picked PR, or one merged through another) is reported as `duplicate_change` naming the kept PR. A PR whose
only commits are merges of other work, or whose change is empty, is `merge_only`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

import pygit2

from datakit.sources.git_mirror import default_tip

MERGE_SUBJECT = re.compile(r"^Merge pull request #(\d+) from ([^\s/]+)/?(\S*)")
SQUASH_SUBJECT = re.compile(r"^(.*\S)\s+\(#(\d+)\)\s*$")
PULL_REF = re.compile(r"^refs/pull/(\d+)/head$")
_SORT = pygit2.enums.SortMode

_STATUS = {
    pygit2.GIT_DELTA_ADDED: "added",
    pygit2.GIT_DELTA_DELETED: "deleted",
    pygit2.GIT_DELTA_MODIFIED: "modified",
    pygit2.GIT_DELTA_RENAMED: "renamed",
    pygit2.GIT_DELTA_TYPECHANGE: "modified",
    pygit2.GIT_DELTA_COPIED: "added",
}


def iso_time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def pull_id(repo_name: str, number: int, base_sha: str, head_sha: str) -> str:
    return hashlib.sha256(f"{repo_name}#{number}@{base_sha}..{head_sha}".encode()).hexdigest()[:16]


def split_message(message: str) -> tuple[str, str]:
    subject, _, body = message.partition("\n")
    return subject.strip(), body.strip("\n")


def commit_dict(commit: pygit2.Commit) -> dict:
    return {
        "sha": str(commit.id),
        "message": commit.message,
        "author": commit.author.name,
        "parents": [str(p) for p in commit.parent_ids],
        "committed_at": iso_time(commit.commit_time),
    }


def pr_commits(repo: pygit2.Repository, head: pygit2.Oid, hide: list[pygit2.Oid]) -> list[pygit2.Commit]:
    """Commits reachable from head and from none of `hide`, oldest first."""
    walker = repo.walk(head, _SORT.TOPOLOGICAL | _SORT.REVERSE)
    for oid in hide:
        walker.hide(oid)
    return list(walker)


def change_diff(repo: pygit2.Repository, base: pygit2.Commit, head: pygit2.Commit) -> pygit2.Diff:
    """base..head with renames detected: the diff every record, patch-id and sample is made from."""
    diff = repo.diff(base, head, context_lines=3)
    diff.find_similar()
    return diff


def patch_id(diff: pygit2.Diff) -> str | None:
    """The change's git patch-id (whitespace- and line-number-insensitive), or None for an empty change."""
    return str(diff.patchid) if len(diff) else None


def diff_files(repo: pygit2.Repository, base: pygit2.Commit, head: pygit2.Commit,
               diff: pygit2.Diff | None = None) -> tuple[list[dict], str]:
    """The changed files (renames detected) and the unified diff text of base..head."""
    diff = change_diff(repo, base, head) if diff is None else diff
    files = []
    raw = []
    for patch in diff:
        delta = patch.delta
        status = _STATUS.get(delta.status, "modified")
        _, additions, deletions = patch.line_stats
        files.append(
            {
                "path": delta.new_file.path if status != "deleted" else delta.old_file.path,
                "status": status,
                "old_path": delta.old_file.path if status == "renamed" else None,
                "additions": additions,
                "deletions": deletions,
            }
        )
        raw.append(patch.data)
    # decoded as UTF-8; bytes that are not are replaced: this text is for reading, not re-application.
    return files, b"".join(raw).decode("utf-8", errors="replace")


class History:
    """One walk of the default branch: the first-parent chain (oldest first) and, for every commit reachable from
    the tip, the index of the chain commit that landed it. Also the PRs that merge and squash subjects name."""

    def __init__(self, repo: pygit2.Repository):
        self.repo = repo
        self.tip = default_tip(repo)
        walker = repo.walk(self.tip.id, _SORT.TOPOLOGICAL)
        walker.simplify_first_parent()
        chain = list(walker)
        chain.reverse()
        self.chain: list[pygit2.Commit] = chain
        self.landed: dict[pygit2.Oid, int] = {}
        self.named: dict[int, tuple[str, pygit2.Commit]] = {}  # PR number → (method, commit), earliest landing
        self._trees: dict[pygit2.Oid, int] = {}  # tree of a single-parent chain commit → its chain index
        self._patch_ids: dict[str, int] | None = None
        for i, commit in enumerate(chain):
            self._land(commit, i)
            if len(commit.parent_ids) > 1:
                side = repo.walk(commit.parent_ids[1], _SORT.TOPOLOGICAL | _SORT.REVERSE)
                for extra in commit.parent_ids[2:]:
                    side.push(extra)
                side.hide(commit.parent_ids[0])
                for c in side:
                    if c.id not in self.landed:
                        self._land(c, i)
            elif commit.parent_ids:
                self._trees.setdefault(commit.tree_id, i)

    _cache: dict = {}

    @classmethod
    def of(cls, repo: pygit2.Repository) -> "History":
        """The History of the mirror's current tip, built once per process (a few kept: one task reads few
        repositories at a time), so callers that handle one PR at a time pay for one walk per repository."""
        key = (repo.path, default_tip(repo).id)
        if key not in cls._cache:
            if len(cls._cache) >= 4:
                cls._cache.pop(next(iter(cls._cache)))
            cls._cache[key] = cls(repo)
        return cls._cache[key]

    def _land(self, commit: pygit2.Commit, index: int) -> None:
        self.landed[commit.id] = index
        subject = commit.message.partition("\n")[0].strip()
        if len(commit.parent_ids) >= 2:
            if m := MERGE_SUBJECT.match(subject):
                self.named.setdefault(int(m.group(1)), ("merge_commit", commit))
        elif m := SQUASH_SUBJECT.match(subject):
            self.named.setdefault(int(m.group(2)), ("squash", commit))

    def landing(self, oid: pygit2.Oid) -> pygit2.Commit | None:
        """The chain commit that landed `oid`, or None when the default branch does not reach it."""
        i = self.landed.get(oid)
        return None if i is None else self.chain[i]

    def tree_match(self, head: pygit2.Commit) -> pygit2.Commit | None:
        """A landed single-parent chain commit with the head's tree (a squash or rebase of an up-to-date branch)."""
        i = self._trees.get(head.tree_id)
        return None if i is None else self.chain[i]

    def patch_match(self, pid: str | None) -> pygit2.Commit | None:
        """The earliest single-parent chain commit whose change has this patch-id (computed on first use: one diff
        per chain commit)."""
        if pid is None:
            return None
        if self._patch_ids is None:
            self._patch_ids = {}
            for i, c in enumerate(self.chain):
                if len(c.parent_ids) == 1:
                    p = patch_id(change_diff(self.repo, c.parents[0], c))
                    if p is not None:
                        self._patch_ids.setdefault(p, i)
        i = self._patch_ids.get(pid)
        return None if i is None else self.chain[i]

    def find_landed(self, number: int, head_sha: str | None = None, merge_sha: str | None = None,
                    base_sha: str | None = None) -> tuple[pygit2.Commit, str] | None:
        """The commit that landed PR `number` and how it was found, for sources that know a PR but not whether or
        where it landed (the API's merge sha is often a test merge that never reached the branch):
        `merge_sha` (the given merge commit is on the branch), `merge_commit` / `squash` (a subject names the PR),
        `pull_ref` (the head is reachable), `tree` (a landed commit has the head's tree) or `patch_id` (a landed
        commit has the PR's patch-id, the PR's change being merge-base(head, base or tip)..head)."""
        merge = lookup_commit(self.repo, merge_sha)
        if merge is not None and merge.id in self.landed:
            return merge, "merge_sha"
        if number in self.named:
            method, commit = self.named[number]
            return commit, method
        head = lookup_commit(self.repo, head_sha)
        if head is None:
            return None
        if head.id in self.landed:
            return self.chain[self.landed[head.id]], "pull_ref"
        if (landed := self.tree_match(head)) is not None:
            return landed, "tree"
        target = lookup_commit(self.repo, base_sha) or self.tip
        base_oid = self.repo.merge_base(target.id, head.id)
        if base_oid is None:
            return None
        landed = self.patch_match(patch_id(change_diff(self.repo, self.repo[base_oid], head)))
        return (landed, "patch_id") if landed is not None else None


def lookup_commit(repo: pygit2.Repository, sha: str | None) -> pygit2.Commit | None:
    if not sha:
        return None
    try:
        obj = repo.get(sha)
    except (ValueError, pygit2.GitError):
        return None
    try:
        return obj.peel(pygit2.Commit) if obj is not None else None
    except (pygit2.GitError, ValueError, KeyError):
        return None


def _record(
    repo: pygit2.Repository,
    repo_name: str,
    number: int,
    *,
    title: str,
    body: str,
    author: str | None,
    base: pygit2.Commit,
    head: pygit2.Commit,
    merge: pygit2.Commit | None,
    commits: list[pygit2.Commit],
    method: str,
    diff: pygit2.Diff | None = None,
) -> dict:
    diff = change_diff(repo, base, head) if diff is None else diff
    files, text = diff_files(repo, base, head, diff)
    first = commits[0] if commits else head
    return {
        "id": pull_id(repo_name, number, str(base.id), str(head.id)),
        "repo": repo_name,
        "number": number,
        "title": title,
        "body": body,
        "author": author,
        "created_at": iso_time(first.author.time),
        "merged_at": iso_time(merge.commit_time) if merge is not None else None,
        "updated_at": None,
        "base_sha": str(base.id),
        "head_sha": str(head.id),
        "merge_sha": str(merge.id) if merge is not None else None,
        "patch_id": patch_id(diff),
        "commits": [commit_dict(c) for c in commits],
        "files": files,
        "diff": text,
        "linked_issues": [],
        "review_comments": [],
        "labels": [],
        "fork_of": None,
        "flags": [],
        "repo_meta": None,
        "source": {
            "kind": "git",
            "method": method,
            "repo": repo_name,
            "pr": number,
            "commit": str((merge or head).id),
            "crawled_at": iso_time((merge or head).commit_time),
            "missing": [],
        },
    }


@dataclass
class Discovered:
    """A PR found in the mirror: its record (a stub without code for an unmerged PR not asked for in full) and,
    when it is not to be kept, why: `reason` (unmerged, duplicate_change, merge_only, ambiguous_merge_head,
    missing_object) and a `detail` that names the evidence (e.g. the kept PR of a duplicate)."""

    record: dict
    reason: str | None = None
    detail: str = ""


def pull_refs(repo: pygit2.Repository) -> tuple[dict[int, pygit2.Oid], list[tuple[int, str]]]:
    """{PR number: head commit id} of the `refs/pull/N/head` refs, and the refs whose object is missing (real
    snapshots have them; one broken ref must not lose the repository)."""
    refs, broken = {}, []
    for name in repo.listall_references():
        if m := PULL_REF.match(name):
            try:
                refs[int(m.group(1))] = repo.references[name].peel(pygit2.Commit).id
            except (pygit2.GitError, KeyError, ValueError) as exc:
                broken.append((int(m.group(1)), f"{name}: {exc}"))
    return refs, broken


def _stub(repo_name: str, number: int, head_sha: str, method: str = "pull_ref") -> dict:
    return {"id": pull_id(repo_name, number, "", head_sha), "repo": repo_name, "number": number, "head_sha": head_sha,
            "merged_at": None, "source": {"kind": "git", "method": method, "repo": repo_name, "pr": number}}


def discover(repo: pygit2.Repository, repo_name: str, full_unmerged: bool = False) -> Iterator[Discovered]:
    """Every PR of the mirror: merged ones in landing order (oldest first, then by number), then unmerged pull
    refs by number, then refs whose object is missing. Only merged PRs (and unmerged ones with `full_unmerged`)
    cost a diff."""
    history = History(repo)
    refs, broken = pull_refs(repo)
    landings: list[tuple[int, int, str, pygit2.Commit]] = []  # (chain index, number, method, evidence commit)
    for number, (method, commit) in history.named.items():
        landings.append((history.landed[commit.id], number, method, commit))
    unmerged = []
    for number, oid in refs.items():
        if number in history.named:
            continue
        head = repo[oid]
        if oid in history.landed:
            landings.append((history.landed[oid], number, "pull_ref", head))
        elif (squash := history.tree_match(head)) is not None:
            landings.append((history.landed[squash.id], number, "tree_match", head))
        else:
            unmerged.append(number)
    seen: dict[str, int] = {}  # patch-id → the PR that kept it
    # earliest landing first; at one landing a PR its merge or squash names comes before refs it carried along
    landings.sort(key=lambda t: (t[0], t[2] not in ("merge_commit", "squash"), t[1]))
    for _, number, method, commit in landings:
        try:
            found = _merged(repo, history, repo_name, number, method, commit, refs)
        except (KeyError, ValueError, pygit2.GitError) as exc:  # an object of this PR is missing (a snapshot)
            yield Discovered(_stub(repo_name, number, str(commit.id), method), "missing_object",
                             f"PR #{number} ({method} {commit.id}): {type(exc).__name__}: {exc}")
            continue
        pid = found.record.get("patch_id")
        if found.reason is None and pid is not None:
            if pid in seen:
                found = Discovered(found.record, "duplicate_change", f"the same change (patch-id {pid}) landed "
                                   f"earlier as PR #{seen[pid]}")
            else:
                seen[pid] = number
        yield found
    for number in sorted(unmerged):
        head = repo[refs[number]]
        detail = f"refs/pull/{number}/head ({head.id}) is not in the default branch's history"
        if not full_unmerged:
            yield Discovered(_stub(repo_name, number, str(head.id)), "unmerged", detail)
            continue
        base = repo[repo.merge_base(history.tip.id, head.id)]
        title, body = split_message(head.message)
        record = _record(repo, repo_name, number, title=title, body=body, author=head.author.name, base=base,
                         head=head, merge=None, commits=pr_commits(repo, head.id, [base.id]), method="pull_ref")
        yield Discovered(record, "unmerged", detail)
    for number, detail in sorted(broken):
        yield Discovered(_stub(repo_name, number, ""), "missing_object", detail)


def _merged(repo: pygit2.Repository, history: History, repo_name: str, number: int, method: str,
            commit: pygit2.Commit, refs: dict[int, pygit2.Oid]) -> Discovered:
    """The record of a landed PR. `commit` is the merge or squash commit (merge_commit, squash) or the PR's head
    (pull_ref: reachable; tree_match: its tree landed)."""
    if method == "merge_commit":
        subject, body = split_message(commit.message)
        m = MERGE_SUBJECT.match(subject)
        target, head = commit.parents[0], commit.parents[1]
        base = repo[repo.merge_base(target.id, head.id)]
        title, pr_body = split_message(body) if body else (subject, "")
        return _checked(repo, repo_name, number, title=title, body=pr_body, author=m.group(2), base=base, head=head,
                        merge=commit, commits=pr_commits(repo, head.id, [target.id]), method=method)
    if method in ("squash", "tree_match"):
        squash = commit if method == "squash" else history.tree_match(commit)
        subject, body = split_message(squash.message)
        title = SQUASH_SUBJECT.match(subject).group(1) if method == "squash" else subject
        parent = squash.parents[0]
        commits = [squash]
        if number in refs and refs[number] != squash.id:
            commits = pr_commits(repo, refs[number], [parent.id]) or [squash]
        return _checked(repo, repo_name, number, title=title, body=body, author=squash.author.name, base=parent,
                        head=squash, merge=squash, commits=commits, method=method)
    head = commit  # pull_ref: the head is reachable from the tip
    landing = history.landing(head.id)
    title, body = split_message(head.message)
    if landing.id == head.id:  # on the first-parent chain: fast-forwarded
        if len(head.parent_ids) > 1:
            stub = _stub(repo_name, number, str(head.id))
            return Discovered(stub, "ambiguous_merge_head", f"refs/pull/{number}/head ({head.id}) is a merge "
                              "commit fast-forwarded onto the default branch: the PR's own change cannot be told "
                              "from the work it merged")
        base = head.parents[0] if head.parents else head
        return _checked(repo, repo_name, number, title=title, body=body, author=head.author.name, base=base,
                        head=head, merge=head, commits=[head], method="fast_forward")
    target = landing.parents[0]
    base = repo[repo.merge_base(target.id, head.id)]
    commits = pr_commits(repo, head.id, [target.id])
    own = [c for c in commits if len(c.parent_ids) < 2]
    if len(head.parent_ids) > 1 and own:  # a head that merges other work: the PR's words are its last own commit's
        title, body = split_message(own[-1].message)
    return _checked(repo, repo_name, number, title=title, body=body, author=head.author.name, base=base, head=head,
                    merge=landing, commits=commits, method=method)


def _checked(repo: pygit2.Repository, repo_name: str, number: int, **kw) -> Discovered:
    """The record, or `merge_only` when the PR brings no change of its own (only merge commits, or no diff)."""
    diff = change_diff(repo, kw["base"], kw["head"])
    record = _record(repo, repo_name, number, diff=diff, **kw)
    if record["patch_id"] is None:
        return Discovered(record, "merge_only", f"PR #{number}: {kw['base'].id}..{kw['head'].id} changes nothing")
    if kw["commits"] and all(len(c.parent_ids) > 1 for c in kw["commits"]):
        return Discovered(record, "merge_only", f"PR #{number}: its only commits merge other work "
                          f"({', '.join(str(c.id)[:12] for c in kw['commits'])})")
    return Discovered(record)


def find_pulls(repo: pygit2.Repository, repo_name: str) -> Iterator[dict]:
    """Every PR's full record (kept or not; unmerged ones with `merged_at: null`), in `discover`'s order: for tools
    and tests that want all of them. Pipelines use `discover`, which says what to keep."""
    for found in discover(repo, repo_name, full_unmerged=True):
        if found.reason != "missing_object" and "commits" in found.record:
            yield found.record
