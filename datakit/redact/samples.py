"""Redact one Sample record, and prove that the redaction broke nothing. Pure: a record in, a record out.

The findings of the whole sample (its text, a chat's messages and tools, an edit sample's files after its edits)
make one `Redaction`, applied to every part, so the same secret reads the same everywhere in the sample. Then,
per kind:

- `edit` (Agentless): the prompt and the completion are redacted apart (`prompt_chars` follows); the base files
  are read back from the redacted prompt (`datakit.sft.agentless.shown_files`) and must be the redacted base
  files, and the redacted completion must parse (`parse_edits`) and pass `check_roundtrip` against them: its
  SEARCH blocks match the redacted files once each and applying them gives the redacted result of the PR;
- `commit_bundle`: every fenced diff of the redacted document is the redacted diff of the original, parsed by
  unidiff into the same files and hunks with each context, removed and added line redacted alone; as
  replacement is line-local, the redacted diff applies to the redacted parent files exactly where the original
  applied to the originals, and gives the redacted children;
- chat samples (`synthetic`, `sft`): every string of the messages and tools is redacted, and rendering the
  redacted messages must give the redacted text;
- `localize` and the rest: prompt and completion apart.

Everywhere: the paths a sample names (`meta.files`) must not change, and detecting again on the redacted text
must find nothing. A sample that fails any of this raises `RedactReject` (the stage quarantines it).
"""

from __future__ import annotations

import re

from datakit.redact.detect import find_secrets
from datakit.redact.replace import Redaction
from datakit.samples.edits import EditError, apply_edits, check_roundtrip, parse_edits
from datakit.sft.agentless import SftReject, shown_files

__all__ = ["RedactReject", "redact_sample", "sample_strings"]


class RedactReject(ValueError):
    """A sample that cannot be redacted consistently; `reason` is its quarantine reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


def sample_strings(sample: dict) -> list[str]:
    """The texts detection reads: the document, then a chat's messages and tools (a tool call's raw JSON
    arguments can escape a value differently from the rendered text), then an edit sample's files after its
    edits (a REPLACE block shows a new key's lines without the BEGIN line that makes them a key)."""
    strings = [sample.get("text") or "", *_strings(sample.get("messages")), *_strings(sample.get("tools"))]
    if sample.get("kind") == "edit" and sample.get("prompt_chars") is not None:
        try:
            strings += list(_edit_files(sample)[2].values())
        except (EditError, SftReject):
            pass  # an edit sample that does not read back: the edit check quarantines it (when it has findings)
    return strings


def _edit_files(sample: dict):
    """(edits, base files shown in the prompt, files after the edits) of an edit sample."""
    cut = sample["prompt_chars"]
    edits = parse_edits(sample["text"][cut:])
    shown = shown_files(sample["text"][:cut], sample["role"], [e.old_path or e.path for e in edits
                                                                if e.status != "added"])
    return edits, shown, apply_edits(shown, edits)


def redact_sample(sample: dict) -> tuple[dict, Redaction]:
    """(the redacted record, its Redaction); the record itself when nothing is found. RedactReject otherwise.
    An edit sample whose SEARCH blocks a private key's shared placeholder makes ambiguous is tried once more
    with the key's lines numbered."""
    whole = "\n".join(sample_strings(sample))
    findings = find_secrets(whole)
    try:
        return _redact(sample, Redaction.build(findings, avoid=whole))
    except RedactReject as exc:
        if exc.reason != "redaction_breaks_edit" or not any(f.part for f in findings):
            raise
    return _redact(sample, Redaction.build(findings, avoid=whole, distinct_parts=True))


def _redact(sample: dict, red: Redaction) -> tuple[dict, Redaction]:
    if not red:
        return sample, red
    for path in (sample.get("meta") or {}).get("files") or []:
        if red.touches(path):
            raise RedactReject("secret_in_path", f"a secret or address is part of the path {path!r}")
    out = dict(sample)
    if sample.get("messages") is not None:
        out.update(_chat(sample, red))
    elif sample.get("prompt_chars") is not None:
        cut = sample["prompt_chars"]
        prompt, completion = red.apply(sample["text"][:cut]), red.apply(sample["text"][cut:])
        out.update(text=prompt + completion, prompt_chars=len(prompt))
        if sample.get("kind") == "edit":
            _check_edit(sample, out, red)
    else:
        out["text"] = red.apply(sample["text"])
    if sample.get("kind") == "commit_bundle":
        _check_bundle(sample["text"], out["text"], red)
    left = [f for f in find_secrets("\n".join(sample_strings(out))) if not f.example]
    if left:
        raise RedactReject("redaction_incomplete", f"after redaction, still found: {left[0].kind} at "
                                                   f"{left[0].start} ({len(left)} in all)")
    return out, red


def _chat(sample: dict, red: Redaction) -> dict:
    from datakit.tokens.chat import ChatError, render_chat_text, stored_tools

    messages = red.apply_all(sample["messages"])
    tools = red.apply_all(sample["tools"]) if sample.get("tools") else sample.get("tools")
    try:
        text = render_chat_text(messages, tools=stored_tools(tools))
    except (ChatError, ValueError) as exc:
        raise RedactReject("redaction_breaks_chat", f"the redacted messages do not render: {exc}") from None
    if text != red.apply(sample["text"]):
        raise RedactReject("redaction_breaks_chat", "the redacted messages render to another text than the "
                                                    "redacted text")
    return {"messages": messages, "tools": tools, "text": text}


def _check_edit(before: dict, after: dict, red: Redaction) -> None:
    try:
        _, base, result = _edit_files(before)
    except (EditError, SftReject) as exc:
        raise RedactReject("unreadable_sample", f"the edit sample does not read back before redaction: {exc}") \
            from None
    try:
        edits, shown, _ = _edit_files(after)
        if shown != {p: red.apply(c) for p, c in base.items()}:
            raise RedactReject("redaction_breaks_edit", "the redacted prompt does not show the redacted base files")
        check_roundtrip(shown, {p: red.apply(c) for p, c in result.items()}, edits)
    except (EditError, SftReject) as exc:
        raise RedactReject("redaction_breaks_edit", f"{getattr(exc, 'reason', '')}: {exc}") from None


_DIFF_FENCE = re.compile(r"^(`{3,})diff\n(.*?)^\1$", re.MULTILINE | re.DOTALL)


def _hunk_lines(patch: str):
    from unidiff import PatchSet

    return [(f.source_file, f.target_file, [(str(h).split("\n", 1)[0], [(ln.line_type, ln.value) for ln in h])
                                            for h in f]) for f in PatchSet.from_string(patch)]


def _check_bundle(before: str, after: str, red: Redaction) -> None:
    from unidiff.errors import UnidiffParseError

    old, new = _DIFF_FENCE.findall(before), _DIFF_FENCE.findall(after)
    if len(old) != len(new):
        raise RedactReject("redaction_breaks_diff", f"the bundle held {len(old)} diffs, {len(new)} after redaction")
    for k, ((_, a), (_, b)) in enumerate(zip(old, new), 1):
        if b != red.apply(a):
            raise RedactReject("redaction_breaks_diff", f"diff {k} is not the redacted diff")
        try:
            parsed_a = _hunk_lines(a)
        except UnidiffParseError:
            continue  # a ```diff block someone wrote in the PR or an issue, not a bundled diff: text like the rest
        try:
            parsed_b = _hunk_lines(b)
        except UnidiffParseError as exc:
            raise RedactReject("redaction_breaks_diff", f"diff {k} does not parse after redaction: {exc}") from None
        expect = [(red.apply(s), red.apply(t), [(red.apply(h), [(kind, red.apply(v)) for kind, v in lines])
                                                for h, lines in hunks]) for s, t, hunks in parsed_a]
        if parsed_b != expect:
            raise RedactReject("redaction_breaks_diff", f"diff {k}: its hunks changed shape, or a line was redacted "
                                                        "differently from the same line in its file")
