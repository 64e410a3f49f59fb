"""PullRecord → Agentless samples for both Kimi-Dev roles. Pure: takes file contents, never touches git.

Per PR and role, one *unit*: a `localize` sample (problem + structure → target files, most-changed first) and an
`edit` sample (problem + target files at base → SEARCH/REPLACE edits). A unit is written whole or quarantined
whole with one reason; every edit sample is verified by rendering, parsing and re-applying its completion to the
base files, which must give the PR's files byte for byte.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

from datakit.samples import templates
from datakit.samples.classify import FileClass, classify_path, looks_binary
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


def target_files(pr: dict, role: str) -> list[dict]:
    """The PR's changed files of the role's class (code / test), most-changed first, then by path."""
    wanted = ROLE_CLASS[role]
    files = [f for f in pr["files"] if classify_path(f["path"]) is wanted]
    return sorted(files, key=lambda f: (-(f.get("additions", 0) + f.get("deletions", 0)), f["path"]))


def base_path(file: dict) -> str | None:
    """Where the file was at base, or None for an added file."""
    if file["status"] == "added":
        return None
    if file["status"] == "renamed" and file.get("old_path"):
        return file["old_path"]
    return file["path"]


def problem_statement(pr: dict) -> tuple[str, str]:
    """The issue text (linked issues whose text was fetched, else the PR's own title and body) and its source."""
    issues = [i for i in pr.get("linked_issues") or [] if i.get("fetched", True) and (i.get("title") or i.get("body"))]
    if issues:
        text = "\n\n".join(_title_body(i.get("title") or "", i.get("body") or "") for i in issues)
        return text, "issue"
    return _title_body(pr.get("title") or "", pr.get("body") or ""), "pull_request"


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
    """The samples of one (PR, role) unit, or `Reject`.

    `targets` come from `target_files`; `contents[path] = (bytes at base, bytes at head)` for each target's path
    (base bytes are read at `base_path`). `structure()` renders the repository structure for the role; it is
    called only when the unit gets that far.
    """
    if not targets:
        raise Reject(NO_TARGET_REASON[role], "the PR changes no " + ROLE_CLASS[role].value + " file")
    if len(targets) > limits.max_files:
        raise Reject("too_many_files", f"{len(targets)} {ROLE_CLASS[role].value} files > {limits.max_files}")
    problem, problem_source = problem_statement(pr)
    if not problem.strip():
        raise Reject("no_problem_statement", "no linked issue and the PR has no title or body")

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
    samples = []
    located = [p for p in (base_path(f) for f in targets) if p is not None]
    if located:  # an added-only change has nothing to find in the structure
        samples.append(_localize(pr, role, problem, structure(), located, meta, limits))
    samples.append(_edit(pr, role, problem, old_files, edits, meta, limits))
    return samples


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
