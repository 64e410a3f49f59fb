"""PullRecord → Agentless samples for both Kimi-Dev roles. Pure: takes file contents, never touches git.

Per PR and role, one *unit*: a `localize` sample (problem + structure → target files, most-changed first) and an
`edit` sample (problem + target files at base → SEARCH/REPLACE edits). A unit is written whole or quarantined
whole with one reason; every edit sample is verified by rendering, parsing and re-applying its completion to the
base files, which must give the PR's files byte for byte.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass
from typing import Callable

from datakit.samples import templates
from datakit.samples.classify import CODE_EXTENSIONS, FileClass, classify_path, looks_binary, looks_encoded
from datakit.samples.edits import EditError, FileEdit, check_roundtrip, edits_for_files, render_edits

ROLES = ("bugfixer", "testwriter")
ROLE_CLASS = {"bugfixer": FileClass.CODE, "testwriter": FileClass.TEST}
NO_TARGET_REASON = {"bugfixer": "no_code_change", "testwriter": "no_test_change"}


@dataclass(frozen=True)
class Limits:
    max_files: int = 10  # target files per role and PR
    max_file_bytes: int = 256 * 1024  # per target file, before and after
    max_prompt_bytes: int = 512 * 1024  # per prompt (structure or file contents included)


class Reject(Exception):
    """A unit that cannot become samples: `reason` is the quarantine reason, `detail` says where."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Filtered(Reject):
    """A unit left out by design, not by failure (counted as `filtered`, the record copied to `filtered/`)."""


def target_files(pr: dict, role: str, classify: Callable[[str], FileClass] = classify_path) -> list[dict]:
    """The PR's changed files of the role's class (code / test), most-changed first, then by path. `classify` may
    know the repository (`.gitattributes`, Python packages: datakit.samples.steps)."""
    wanted = ROLE_CLASS[role]
    files = [f for f in pr["files"] if classify(f["path"]) is wanted]
    return sorted(files, key=lambda f: (-(f.get("additions", 0) + f.get("deletions", 0)), f["path"]))


def base_path(file: dict) -> str | None:
    """Where the file was at base, or None for an added file."""
    if file["status"] == "added":
        return None
    if file["status"] == "renamed" and file.get("old_path"):
        return file["old_path"]
    return file["path"]


# Subjects git and GitHub write for merges: they say nothing about the problem.
MERGE_BOILERPLATE = re.compile(
    r"^Merge (?:pull request #\d+\b|branch '[^']*'|remote-tracking branch '[^']*'|branches\b|tag '[^']*'"
    r"|commit '[^']*'|[0-9a-f]{7,40}\b|\S+ into \S+)")


def problem_statement(pr: dict) -> tuple[str, str]:
    """The problem text and where it came from (`problem_source`):

    `issue`: the linked issues whose text was fetched; else `pull_request`: the PR's title and body; else, when the
    PR says nothing but merge boilerplate ("Merge pull request #N from user/branch" with an empty body, as an
    offline git source gives for a merge commit without a description), `commits`: the messages of the PR's own
    commits, oldest first, merge commits and duplicates left out. "" when none of them says anything.
    """
    issues = [i for i in pr.get("linked_issues") or [] if i.get("fetched", True) and (i.get("title") or i.get("body"))]
    if issues:
        text = "\n\n".join(_title_body(i.get("title") or "", i.get("body") or "") for i in issues)
        return text, "issue"
    title, body = (pr.get("title") or "").strip(), (pr.get("body") or "").strip()
    if body or (title and not MERGE_BOILERPLATE.match(title)):
        return _title_body(pr.get("title") or "", pr.get("body") or ""), "pull_request"
    messages: list[str] = []
    for commit in pr.get("commits") or []:
        message = (commit.get("message") or "").strip()
        if len(commit.get("parents") or ()) > 1 or not message or MERGE_BOILERPLATE.match(message):
            continue
        if message not in messages:
            messages.append(message)
    if messages:
        return "\n\n".join(messages), "commits"
    return "", "pull_request"


def statement_strength(problem: str) -> list[str]:
    """Stage counters that show how weak a problem statement is (offline statements often are)."""
    flags = []
    if len(problem.strip().splitlines()) <= 1:
        flags.append("problem.one_line")
    if len(problem.strip()) < 40:
        flags.append("problem.under_40_chars")
    return flags


def _title_body(title: str, body: str) -> str:
    return f"{title}\n{body}" if body else title


def sample_id(pr: dict, kind: str, role: str) -> str:
    """Stable across template versions and re-crawls (the template is recorded apart, in `meta.template`), so data
    joined by sample id (SFT generations, reviews) survives a template change."""
    key = f"{pr['repo']}#{pr['number']}/{role}/{kind}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _decode(path: str, data: bytes, limits: Limits) -> str:
    if len(data) > limits.max_file_bytes:
        raise Reject("file_too_large", f"{path}: {len(data)} bytes > {limits.max_file_bytes}")
    if looks_binary(data):
        raise Reject("binary_file", path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Reject("non_utf8", f"{path}: {exc.reason} at byte {exc.start}") from None


def build_unit(
    pr: dict,
    role: str,
    targets: list[dict],
    contents: dict[str, tuple[bytes | None, bytes | None]],
    structure: Callable[[], str],
    structure_tree: str | None,
    limits: Limits = Limits(),
) -> list[dict]:
    """The samples of one (PR, role) unit — always both, a localize and an edit sample — or `Reject`.

    `targets` come from `target_files`; `contents[path] = (bytes at base, bytes at head)` for each target's path
    (base bytes are read at `base_path`). `structure()` renders the repository structure for the role; it is
    called only when the unit gets that far. Localize and edit agree on the files: a target whose bytes did not
    change (a mode change) or that holds encoded data is dropped from both; the BugFixer's localize answer is the
    files its edit prompt shows, the TestWriter's ("edit or create") adds the test files the PR creates; a unit
    whose edit prompt would show no file at all (only new files) is `Filtered` as `only_new_files`.
    """
    kept = []
    for f in targets:
        old, new = contents[f["path"]]
        if f["status"] == "modified" and old is not None and old == new:
            continue  # a mode change: nothing to locate, nothing to edit
        data = new if new is not None else old
        if data is not None and posixpath.splitext(f["path"])[1].lower() not in CODE_EXTENSIONS and looks_encoded(data):
            continue  # a fixture that is encoded data, not code or a test
        kept.append(f)
    if not kept:
        what = "the PR changes no " + ROLE_CLASS[role].value + " file"
        raise Reject(NO_TARGET_REASON[role], what + (" (only mode changes or encoded data)" if targets else ""))
    targets = kept
    if len(targets) > limits.max_files:
        raise Reject("too_many_files", f"{len(targets)} {ROLE_CLASS[role].value} files > {limits.max_files}")
    problem, problem_source = problem_statement(pr)
    if not problem.strip():
        raise Reject("no_problem_statement", "no linked issue, and neither the PR's title and body nor its commit "
                                             "messages say more than merge boilerplate")

    old_files: dict[str, str] = {}
    new_files: dict[str, str] = {}
    renames: dict[str, str] = {}
    for f in targets:
        old, new = contents[f["path"]]
        src = base_path(f)
        if src is not None:
            if old is None:
                raise Reject("missing_blob", f"{src} not found at base {pr['base_sha']}")
            old_files[src] = _decode(src, old, limits)
        if f["status"] != "deleted":
            if new is None:
                raise Reject("missing_blob", f"{f['path']} not found at head {pr['head_sha']}")
            new_files[f["path"]] = _decode(f["path"], new, limits)
        if f["status"] == "renamed":
            renames[src] = f["path"]

    try:
        edits = edits_for_files(old_files, new_files, renames)
        rank = {f["path"]: i for i, f in enumerate(targets)}
        edits.sort(key=lambda e: rank.get(e.path, len(rank)))
        check_roundtrip(old_files, new_files, edits)
    except EditError as exc:
        raise Reject(exc.reason, str(exc)) from None
    if not edits:
        raise Reject(NO_TARGET_REASON[role], "the target files are unchanged between base and head")

    meta = {
        "repo": pr["repo"],
        "pr": pr["number"],
        "base_sha": pr["base_sha"],
        "head_sha": pr["head_sha"],
        "problem_source": problem_source,
        "structure_tree": structure_tree,
        "fork_of": pr.get("fork_of"),
    }
    existing = [p for p in (base_path(f) for f in targets) if p is not None]
    if not existing:
        raise Filtered("only_new_files", f"the PR only creates {ROLE_CLASS[role].value} files "
                                         f"({', '.join(f['path'] for f in targets)}): the edit prompt would show none")
    located = [f["path"] for f in targets] if role == "testwriter" else existing
    return [_localize(pr, role, problem, structure(), located, meta, limits),
            _edit(pr, role, problem, old_files, edits, meta, limits)]


def _localize(pr, role, problem, structure, located, meta, limits) -> dict:
    template = templates.TEMPLATES[(role, "localize")]
    prompt = template.render(problem_statement=problem, structure=structure, max_files=max(5, len(located)))
    completion = templates.render_file_list(located)
    return _sample(pr, "localize", role, template, prompt, completion, {**meta, "files": located}, limits)


def _edit(pr, role, problem, old_files, edits: list[FileEdit], meta, limits) -> dict:
    template = templates.TEMPLATES[(role, "edit")]
    shown = [(e.old_path or e.path, old_files[e.old_path or e.path]) for e in edits if e.status != "added"]
    prompt = template.render(problem_statement=problem, files=templates.render_files(shown))
    completion = render_edits(edits)
    return _sample(pr, "edit", role, template, prompt, completion, {**meta, "files": [e.path for e in edits]}, limits)


def _sample(pr, kind, role, template, prompt, completion, meta, limits) -> dict:
    size = len(prompt.encode("utf-8"))
    if size > limits.max_prompt_bytes:
        raise Reject("prompt_too_large", f"{kind} prompt is {size} bytes > {limits.max_prompt_bytes}")
    return {
        "id": sample_id(pr, kind, role),
        "kind": kind,
        "role": role,
        "text": prompt + completion,  # stored once: the prompt is text[:prompt_chars] (datakit.io.records.prompt_completion)
        "prompt_chars": len(prompt),
        "messages": None,
        "meta": {**meta, "template": template.ref},
        "source": pr["source"],
    }
