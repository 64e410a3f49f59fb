"""Cold-start Agentless trajectories: an Agentless (localize, edit) sample pair + a teacher's generations → one
validated SFT conversation. Pure functions, no I/O (the step is `datakit.sft.steps.AgentlessTrajectories`).

The conversation is Agentless' two steps, as Kimi-Dev's BugFixer / TestWriter run them:

    user: the localize sample's prompt      → assistant: reasoning + the file list
    user: the edit sample's prompt (files)  → assistant: reasoning + SEARCH/REPLACE edits

(either step alone when the teacher answered only one). Reasoning is folded into the assistant content between
the think tags (``{open}\\n{reasoning}\\n{close}\\n\\n{answer}``, the layout Qwen3 / DeepSeek-R1 templates use), so
the stored messages render the same through datakit's renderer and through the model's own Jinja template.

Validated like a reward would (`SftReject` with the quarantine reason otherwise):
- the repair answer's edits are the fenced ```` ```python ```` blocks Agentless extracts (`extract_python_blocks`),
  parsed by the samples' own parser (`datakit.samples.edits.parse_edits`, the inverse of the completions the
  samples write) [`edits_unparseable`, `no_edits`], on paths inside the repository (`check_repo_path`)
  [`unsafe_path`], and applied to
  the base files shown in the prompt [`edits_do_not_apply`]; `matches_gold` says whether the result is the PR's;
- the localisation answer is the lines of its last ``` block (Agentless' `_parse_model_return_lines`), compared with
  the PR's files (`localize_recall`) [`no_files_listed`];
- a TestWriter repair records which test files it writes (`test_files`) [`no_test_file` when it writes none].
The execution check (the test fails before the fix and passes after) needs a sandbox: `meta.sft.execution` is left
null for an external runner.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from datakit.samples import templates
from datakit.samples.classify import is_test_path
from datakit.samples.edits import EditError, FileEdit, apply_edits, parse_edits

__all__ = ["SftReject", "Generation", "ThinkTags", "shown_files", "extract_edits", "localized_files",
           "assistant_content", "trajectory"]

STEPS = ("localize", "edit")
# Agentless' extract_python_blocks (agentless/util/postprocess_data.py): r"```python\n(.*?)\n```", DOTALL
PYTHON_BLOCK = re.compile(r"```python\n(.*?)\n```", re.DOTALL)
CODE_BLOCK = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)


class SftReject(ValueError):
    """A trajectory that cannot be used; `reason` is its quarantine reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Generation:
    """A teacher's answer to one Agentless sample's prompt."""

    sample_id: str
    answer: str
    reasoning: str | None = None
    index: int = 0  # pairs the n-th localize answer with the n-th edit answer of a unit
    label: str = ""  # where it came from (`file#row`), for provenance and errors


@dataclass(frozen=True)
class ThinkTags:
    open: str = "<think>"
    close: str = "</think>"
    keep: bool = True  # False: reasoning is dropped, only answers are trained on


def assistant_content(gen: Generation, tags: ThinkTags) -> str:
    """The assistant turn: reasoning between the tags, then the answer."""
    if gen.reasoning is None or not tags.keep:
        return gen.answer
    return f"{tags.open}\n{gen.reasoning}\n{tags.close}\n\n{gen.answer}"


def _split_edit_prompt(prompt: str, role: str) -> tuple[str, str, str]:
    """(head, files section, tail) of an edit prompt, by the template's fixed text around `{files}`."""
    text = templates.TEMPLATES[(role, "edit")].text
    before, after = text.split("{files}")
    intro = before.split("{problem_statement}")[1]
    if not prompt.endswith(after):
        raise SftReject("prompt_mismatch", "the edit prompt does not end as its template does")
    body = prompt[:len(prompt) - len(after)]
    cut = body.rfind(intro)  # the problem statement precedes; the intro's last occurrence starts the files
    if cut < 0:
        raise SftReject("prompt_mismatch", "the edit prompt does not show its files as its template does")
    return body[:cut + len(intro)], body[cut + len(intro):], after


def shown_files(prompt: str, role: str, paths: Sequence[str]) -> dict[str, str]:
    """The base files an edit prompt shows (path → content), read back from its `--- BEGIN FILE ---` blocks.
    `paths` are the shown files in order (the gold edits' paths, new files excepted); the result re-renders to
    the prompt's files section exactly, or SftReject("prompt_mismatch")."""
    _, section, _ = _split_edit_prompt(prompt, role)
    open_, close = templates.FILE_BLOCK.split("{content}")
    files: dict[str, str] = {}
    pos = 0
    for k, path in enumerate(paths):
        head = open_.format(path=path)
        if not section.startswith(head, pos):
            raise SftReject("prompt_mismatch", f"the edit prompt does not show {path} where expected")
        start = pos + len(head)
        if k + 1 < len(paths):
            end = section.find(close + open_.format(path=paths[k + 1]), start)
        else:
            end = len(section) - len(close) if section.endswith(close) else -1
        if end < start:
            raise SftReject("prompt_mismatch", f"the edit prompt's block of {path} does not close")
        files[path] = section[start:end]
        pos = end + len(close)
    if templates.render_files(list(files.items())) != section:
        raise SftReject("prompt_mismatch", "the edit prompt's files do not re-render to the prompt")
    return files


def extract_edits(answer: str) -> list[FileEdit]:
    """The SEARCH/REPLACE edits of a repair answer: its ```` ```python ```` blocks as Agentless extracts them,
    parsed by the samples' parser. SftReject(no_edits | edits_unparseable | unsafe_path)."""
    blocks = PYTHON_BLOCK.findall(answer)
    if not blocks:
        raise SftReject("no_edits", "the repair answer has no ```python block")
    try:
        edits = parse_edits("\n\n".join(f"```python\n{b}\n```" for b in blocks))
    except EditError as exc:  # parse_edits refuses paths outside the repository (check_repo_path)
        raise SftReject("unsafe_path" if exc.reason == "unsafe_path" else "edits_unparseable",
                        f"{exc.reason}: {exc}") from None
    if not edits:
        raise SftReject("no_edits", "the repair answer's blocks hold no SEARCH/REPLACE edit")
    return edits


def localized_files(answer: str) -> list[str]:
    """The files a localisation answer lists: the non-empty lines of its last ``` block (the whole answer when
    it has none), stripped, first occurrence kept. SftReject("no_files_listed") when there are none."""
    blocks = CODE_BLOCK.findall(answer)
    body = blocks[-1] if blocks else answer
    files = list(dict.fromkeys(ln.strip() for ln in body.split("\n") if ln.strip()))
    if not files:
        raise SftReject("no_files_listed", "the localisation answer lists no file")
    return files


def _prompt(sample: Mapping) -> str:
    return sample["text"][:sample["prompt_chars"]]


def _check_edit(edit_sample: Mapping, gen: Generation) -> dict:
    """Validate a repair answer against the edit sample; the meta.sft fields it fills."""
    role = edit_sample["role"]
    gold = parse_edits(edit_sample["text"][edit_sample["prompt_chars"]:])
    shown = [e.old_path or e.path for e in gold if e.status != "added"]
    base = shown_files(_prompt(edit_sample), role, shown)
    edits = extract_edits(gen.answer)
    try:
        result = apply_edits(base, edits)
    except EditError as exc:
        raise SftReject("edits_do_not_apply", f"{exc.reason}: {exc}") from None
    edited = list(dict.fromkeys(e.path for e in edits))
    tests = [p for p in edited if is_test_path(p)]
    if role == "testwriter" and not tests:
        raise SftReject("no_test_file", f"the TestWriter's edits touch no test file ({', '.join(edited)})")
    same = edits == gold or result == apply_edits(base, gold)
    return {"edited_files": edited, "test_files": tests, "applies": True, "matches_gold": same}


def trajectory_id(unit: str, gens: Sequence[Generation]) -> str:
    key = unit + "\x00" + "\x00".join(f"{g.sample_id}\x01{g.reasoning}\x01{g.answer}" for g in gens)
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def trajectory(localize: Mapping | None, edit: Mapping | None, gen_localize: Generation | None,
               gen_edit: Generation | None, tags: ThinkTags = ThinkTags(), min_recall: float = 0.0) -> dict:
    """One sft Sample (schemas/sample.schema.json, kind `sft`) from a unit's samples and generations (either step
    may be None, not both); SftReject with the reason when it fails validation."""
    steps = [(s, g) for s, g in ((localize, gen_localize), (edit, gen_edit)) if s is not None and g is not None]
    if not steps:
        raise SftReject("no_generation", "neither step of the unit has a generation")
    first = steps[0][0]
    messages: list[dict] = []
    sft = {"trajectory": "agentless", "generation": ",".join(g.label for _, g in steps), "turns": len(steps),
           "steps": [s["kind"] for s, _ in steps], "localized_files": None, "localize_recall": None,
           "edited_files": None, "test_files": None, "applies": None, "matches_gold": None, "execution": None,
           "resolved": None, "exit_status": None, "instance_id": None, "tool_calls": None, "tokens": None}
    for sample, gen in steps:
        if sample["kind"] == "localize":
            found = localized_files(gen.answer)
            gold = sample["meta"]["files"]
            recall = len(set(found) & set(gold)) / len(gold) if gold else 1.0
            if recall < min_recall:
                raise SftReject("low_recall", f"the localisation finds {recall:.2f} of the PR's files < min_recall "
                                              f"{min_recall}")
            sft.update(localized_files=found, localize_recall=recall)
        else:
            sft.update(_check_edit(sample, gen))
        messages.append({"role": "user", "content": _prompt(sample)})
        messages.append({"role": "assistant", "content": assistant_content(gen, tags)})
    meta = {k: first["meta"].get(k) for k in ("repo", "pr", "base_sha", "head_sha", "problem_source",
                                              "structure_tree", "fork_of")}
    unit = f"{meta['repo']}#{meta['pr']}/{first['role']}"
    return {
        "id": trajectory_id(unit, [g for _, g in steps]),
        "kind": "sft",
        "role": first["role"],
        "text": "",  # filled by the step (rendered with the chat template)
        "prompt_chars": None,
        "messages": messages,
        "tools": None,
        "meta": {**meta, "files": (edit or localize)["meta"]["files"],
                 "template": "+".join(s["meta"]["template"] for s, _ in steps), "sft": sft},
        "source": first["source"],
    }
