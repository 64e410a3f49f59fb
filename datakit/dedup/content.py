"""What a sample *is* for deduplication, as pure functions on a Sample row.

Two texts per sample, both without the prompt template's fixed wording and without the repository's identity
(repository name, PR number, sample id), which differ between a project, its forks, mirrors and vendored copies:

- the **exact text**, hashed after `normalise_exact` (NFC; CRLF and lone CR → LF; every run of whitespace inside a
  line → one space; leading/trailing whitespace of each line and blank lines dropped). An Agentless *edit* sample
  is its files and its completion (the problem statement is left out: the same change to the same files is the same
  sample, whatever the fork's PR says); a *localize* sample is its problem statement and completion (the tree
  listing is left out: a fork's tree differs by the files it added, and the answer alone is too short to tell PRs
  apart); a commit bundle is its whole document, header line masked; a chat (synthetic, sft) its non-system turns
  (tool calls included).
- the **near text**, shingled for MinHash: the same parts, except that an edit sample is its problem statement
  and its completion (its files are left out: two different PRs on one file share the whole file, which would
  make every such pair look alike), and a chat is its user and assistant turns (tool results — file views, command
  output — are left out for the same reason: every trajectory on one repository reads the same files).

Samples are compared only within their *group* (kind/role): a localize sample never duplicates an edit sample.
"""

from __future__ import annotations

import hashlib
import re
import string
import unicodedata
from functools import cache

from datatrove.utils.word_tokenizers import WordTokenizer

_LINE_BREAKS = re.compile(r"\r\n?")
_SPACES = re.compile(r"[^\S\n]+")
_BUNDLE_HEADER = re.compile(r"\A# [^\n]*: pull request #\d+\n")
_TOKENS = re.compile(r"\w+|[^\w\s]+")


def normalise_exact(text: str) -> str:
    """NFC, LF line ends, each line's whitespace runs collapsed to one space and stripped, blank lines dropped."""
    text = _SPACES.sub(" ", _LINE_BREAKS.sub("\n", unicodedata.normalize("NFC", text)))
    lines = (line.strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def exact_hash(group: str, text: str) -> str:
    """128-bit hex digest of the group and the normalised exact text."""
    return hashlib.blake2b(f"{group}\0{normalise_exact(text)}".encode(), digest_size=16).hexdigest()


class CodeWordTokenizer(WordTokenizer):
    """Language-neutral: words (`\\w+`, any script) and runs of punctuation are tokens, whitespace separates.
    datatrove's default word tokenizer (language "en") needs spacy and drops the punctuation that code is made of."""

    def __init__(self):
        super().__init__("code")

    def word_tokenize(self, text: str) -> list[str]:
        return _TOKENS.findall(text)

    def sent_tokenize(self, text: str) -> list[str]:
        return [line for line in text.split("\n") if line.strip()]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in re.finditer(r"[^\n]+", text)]


@cache
def _template_parts(ref: str) -> tuple[list[str], list[str]] | None:
    """The literal pieces and field names of an Agentless template `name@version` (None: unknown)."""
    from datakit.samples.templates import TEMPLATES

    for template in TEMPLATES.values():
        if template.ref == ref:
            pieces = list(string.Formatter().parse(template.text))
            literals = [p[0] for p in pieces]
            fields = [p[1] for p in pieces if p[1] is not None]
            if len(literals) == len(fields):  # the text ends with a field: an empty closing literal
                literals.append("")
            return literals, fields
    return None


def template_fields(ref: str, prompt: str) -> dict[str, str] | None:
    """The field values a template rendered into `prompt` (literal pieces matched in order; each is specific
    enough that a problem statement or a file does not contain it), or None when the prompt is not its rendering."""
    parts = _template_parts(ref)
    if parts is None:
        return None
    literals, fields = parts
    if not prompt.startswith(literals[0]) or not prompt.endswith(literals[-1]):
        return None
    pos, end, values = len(literals[0]), len(prompt) - len(literals[-1]), {}
    for name, literal in zip(fields, literals[1:]):
        cut = end if literal is literals[-1] else prompt.find(literal, pos)
        if cut < 0 or cut > end:
            return None
        values[name] = prompt[pos:cut]
        pos = cut + len(literal)
    return values


def group(row: dict) -> str:
    return f"{row.get('kind')}/{row.get('role')}"


def dedup_texts(row: dict) -> tuple[str, str]:
    """(exact text, near text) of a Sample row (see the module docstring), its repository's name masked."""
    repo = (row.get("meta") or {}).get("repo")
    exact, near = _parts(row)
    return mask_repo(exact, repo), mask_repo(near, repo)


def _parts(row: dict) -> tuple[str, str]:
    kind, text = row.get("kind"), row.get("text") or ""
    meta = row.get("meta") or {}
    if kind in ("localize", "edit") and row.get("prompt_chars") is not None:
        prompt, completion = text[:row["prompt_chars"]], text[row["prompt_chars"]:]
        fields = template_fields(meta.get("template") or "", prompt)
        if fields is not None:
            problem = fields.get("problem_statement", "")
            if kind == "edit":
                return fields.get("files", "") + "\n" + completion, problem + "\n" + completion
            return problem + "\n" + completion, problem + "\n" + completion
        return text, text  # an unknown template: the whole document, which still dedups its exact copies
    if kind == "commit_bundle":
        body = _BUNDLE_HEADER.sub("", text, count=1)
        return body, body
    messages = row.get("messages")
    if messages:
        def turns(roles):
            return "\n".join(f"{m.get('role')}: {m.get('content') or ''}\n{m.get('reasoning') or ''}\n"
                             f"{' '.join(str(c) for c in m.get('tool_calls') or [])}"
                             for m in messages if m.get("role") in roles)
        return turns(("user", "assistant", "tool")), turns(("user", "assistant"))
    return text, text


def mask_repo(text: str, repo: str | None) -> str:
    """The sample's own repository name → `<repo>`: a fork or mirror names itself where the original named the
    original (in links, headers, issue text)."""
    if not repo:
        return text
    return re.sub(re.escape(repo), "<repo>", text, flags=re.IGNORECASE)


def keep_key(row: dict) -> tuple:
    """The order that decides which copy of a duplicate is kept (the smallest): the upstream repository first
    (`meta.fork_of` unset), then the oldest PR (`source.crawled_at`: for git sources the landing commit's time,
    for API sources the PR's updated_at; unknown last), then repository, PR number and id."""
    meta, source = row.get("meta") or {}, row.get("source") or {}
    when = source.get("crawled_at")
    pr = meta.get("pr")
    return (1 if meta.get("fork_of") else 0, when is None, when or "", meta.get("repo") or "",
            pr if isinstance(pr, int) else -1, str(row.get("id")))
