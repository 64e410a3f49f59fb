"""Typed placeholders for the findings of one document, applied alike to every part of it. Pure.

One `Redaction` per sample: each distinct secret gets one placeholder, `<SECRET:{kind}>` for the first of its
kind, `<SECRET:{kind}_2>` for the second, … (`<EMAIL>`, `<EMAIL_2>`, … for addresses), in order of first
appearance; the lines of one private key share their key's placeholder. Distinct secrets keep distinct
placeholders, and a placeholder the text already holds is skipped, so two lines that differed before redaction
still differ after it (a SEARCH block stays unique in its file) — except a key's body lines, which all read the
same; with `distinct_parts` they are numbered too (`<SECRET:private_key#2>` for the second line), which
`datakit.redact.samples` asks for when the shared form would make a SEARCH block ambiguous.

Replacement is by value, not by position: every occurrence of a found value is replaced wherever it stands, so
the prompt's files, the completion's SEARCH blocks, a diff's removed and added lines and a chat's messages get the
same text for the same secret. Values never hold a newline, so replacement is line-local: a line keeps its
place and a diff its line counts. A URL password is replaced only as `:VALUE@` (a short one is also a word).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from datakit.redact.detect import Finding

__all__ = ["Redaction", "placeholder"]


_PLACEHOLDER = re.compile(r"<(?:SECRET:[a-z0-9_]+|EMAIL(?:_\d+)?)(?:#\d+)?>")


def _trie(values) -> str:
    """One regex matching any of `values`, the longest at a position first, as a prefix tree: Python's `re` tries
    the branches of a flat alternation one by one at every position (5,000 addresses in a 250 KB mailing-list
    page: 12 s), a tree follows one branch per character."""
    root: dict = {}
    for v in values:
        node = root
        for ch in v:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:
        out = []
        while True:  # a chain of single children is one literal (and no recursion)
            keys = [k for k in node if k]
            if len(keys) == 1 and "" not in node:
                out.append(re.escape(keys[0]))
                node = node[keys[0]]
                continue
            break
        branches = [re.escape(k) + emit(node[k]) for k in sorted(k for k in node if k)]
        if branches:
            group = "(?:" + "|".join(branches) + ")"
            out.append(group + "?" if "" in node else group)  # greedy: the longer value first
        return "".join(out)

    return emit(root)


def placeholder(kind: str, n: int) -> str:
    suffix = "" if n == 1 else f"_{n}"
    return f"<EMAIL{suffix}>" if kind == "email" else f"<SECRET:{kind}{suffix}>"


@dataclass
class Redaction:
    plain: dict[str, str] = field(default_factory=dict)  # value → placeholder, replaced everywhere
    contextual: dict[str, str] = field(default_factory=dict)  # url passwords: replaced as `:VALUE@` only
    counts: Counter = field(default_factory=Counter)  # distinct secrets per kind
    examples: Counter = field(default_factory=Counter)  # documented examples kept, per kind
    _pattern: re.Pattern | None = None

    @classmethod
    def build(cls, findings: list[Finding], avoid: str = "", distinct_parts: bool = False) -> "Redaction":
        """The mapping for `findings` (in order of first appearance); placeholders that occur in `avoid` (the
        document's own text) are skipped."""
        red = cls()
        by_identity: dict[tuple[str, str], str] = {}
        used: Counter = Counter()
        taken = set(_PLACEHOLDER.findall(avoid))
        for f in findings:
            if f.example:
                red.examples[f.kind] += 1
                continue
            key = (f.kind, f.identity)
            if key not in by_identity:
                red.counts[f.kind] += 1
                while True:
                    used[f.kind] += 1
                    ph = placeholder(f.kind, used[f.kind])
                    if ph not in taken:
                        break
                by_identity[key] = ph
            ph = by_identity[key]
            if distinct_parts and f.part:
                ph = f"{ph[:-1]}#{f.part + 1}>"
            (red.contextual if f.context else red.plain)[f.value] = ph
        for v in red.plain:
            red.contextual.pop(v, None)  # found as a plain secret too: replaced everywhere
        alternatives = [_trie(red.plain)] if red.plain else []
        alternatives += [f"(?<=:){re.escape(v)}(?=@)" for v in sorted(red.contextual, key=lambda v: (-len(v), v))]
        red._pattern = re.compile("|".join(alternatives)) if alternatives else None
        return red

    def __bool__(self) -> bool:
        return self._pattern is not None

    def apply(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: self.plain.get(m.group()) or self.contextual[m.group()], text)

    def apply_all(self, value):
        """`apply` on every string inside lists and dicts (a chat's messages, tool definitions)."""
        if isinstance(value, str):
            return self.apply(value)
        if isinstance(value, list):
            return [self.apply_all(v) for v in value]
        if isinstance(value, dict):
            return {k: self.apply_all(v) for k, v in value.items()}
        return value

    def touches(self, text: str) -> bool:
        return self._pattern is not None and self._pattern.search(text) is not None
