"""The labelled near-duplicate set: pairwise precision and recall of the dedup stage (issue 16, item 2).

Built deterministically from the installed standard library's Python source (offline, no ../shared needed): each
*base* is an Agentless BugFixer edit sample (the real template; the issue names a function, the files show its
module, the completion is a SEARCH/REPLACE edit of that function) or a commit bundle (a PR header, the commit and
its unified diff). Labelled pairs:

- **near-duplicates**, made the way forks, mirrors and vendoring make them: identifiers renamed; whitespace
  reformatted (2-space indentation, CRLF, trailing blanks); a changed header (issue title, backport note, bundle
  header of the fork's PR); an extra function added by the copy; a vendored path prefix with a renamed
  identifier; each from another repository (a fork: `meta.fork_of` names the base's, or a mirror);
- **distinct-but-similar** pairs: the same module and template with another function edited; the same bot-like
  issue template with a different patch; the same function with a different change.

Agent trajectories (kind synthetic) are made of the same parts, all behind one long agent system prompt.

A pair is predicted a duplicate when both samples end with the same kept id (a written sample keeps itself, a
filtered one names its kept id in `detail`). `pytest -s` prints the figures (BENCHMARKS.md); none is timed.
"""

from __future__ import annotations

import ast
import difflib
import functools
import hashlib
import random
import re
import sysconfig
from pathlib import Path

import pyarrow.parquet as pq

from datakit.samples.templates import BUGFIXER_EDIT, render_files

STDLIB = Path(sysconfig.get_paths()["stdlib"])
MIN_PAIRS = 500
ISSUE_TEMPLATE = ("### Describe the bug\n{title}\n\n{description}\n\n### Steps to reproduce\n"
                  "1. Install the latest release.\n2. Run the snippet below.\n3. See the error.\n\n{snippet}\n\n"
                  "### Expected behavior\nThe documented result.\n\n### Environment\n- OS: Linux\n- Python: 3.11\n"
                  "- Version: main branch\n\n### Additional context\nThis worked in the previous release.")
SYMPTOMS = [("crashes with AttributeError when given None", "AttributeError: 'NoneType' object has no attribute"),
            ("rejects path-like objects", "TypeError: expected str, bytes or os.PathLike object"),
            ("returns an unchecked result", "AssertionError: result failed validation")]
SENTENCES = ["We hit this in production after upgrading.", "It only happens on the second call.",
             "The documentation does not say what should happen here.", "A minimal reproducer is below.",
             "This breaks our nightly job.", "Other functions in the module handle the same input fine.",
             "I can open a PR if the fix looks right.", "It looks like a regression from the last refactor.",
             "Windows and Linux behave the same.", "The traceback points into the standard library.",
             "Passing the value through str() first works around it.", "Tested on 3.11.7 and 3.12.1.",
             "The same call used to return quietly.", "Maybe the check belongs in the caller instead?",
             "Our CI caught it with a property-based test.", "It is easy to trigger from the command line."]


@functools.cache  # several tests read the same functions (the caller must not change them)
def stdlib_functions(count: int) -> list[dict]:
    """Functions of 8–40 lines from the standard library's modules (sorted by path, tests and idle skipped), two
    or more per module, as {path, source, name, start, end, args} (lines 0-based, end exclusive)."""
    found: list[dict] = []
    for path in sorted(STDLIB.rglob("*.py")):
        rel = path.relative_to(STDLIB).as_posix()
        if any(part in rel for part in ("test", "idlelib", "site-packages", "lib2to3", "turtledemo")):
            continue
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (UnicodeDecodeError, SyntaxError, ValueError):
            continue
        funcs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and 8 <= n.end_lineno - n.lineno < 40
                 and n.col_offset == 0 and ast.get_docstring(n)]
        funcs.sort(key=lambda n: n.lineno)
        if len(funcs) < 2:
            continue
        for n in funcs[:3]:
            found.append({"path": rel, "source": source, "name": n.name, "start": n.lineno - 1, "end": n.end_lineno,
                          "args": [a.arg for a in n.args.args], "doc": ast.get_docstring(n).split("\n\n")[0]})
        if len(found) >= count:
            break
    return found[:count]


def _change(lines: list[str], variant: int, rng: random.Random) -> list[str]:
    """A plausible fix: a guard after the signature (and docstring), or an edited return / comparison."""
    body = next((i for i, ln in enumerate(lines) if i > 0 and ln.strip() and not ln.strip().startswith(('"', "'"))
                 and not lines[i - 1].rstrip().endswith("\\")), 1)
    indent = re.match(r"\s*", lines[body]).group(0) or "    "
    new = list(lines)
    arg = rng.choice(["value", "name", "data", "obj", "key", "path"])
    if variant == 0:
        new[body:body] = [f"{indent}if {arg} is None:\n", f"{indent}    raise TypeError('{arg} must not be None')\n"]
    elif variant == 1:
        new[body:body] = [f"{indent}if not isinstance({arg}, (str, bytes)):\n",
                          f"{indent}    {arg} = str({arg})  # accept path-like objects\n"]
    else:
        for i in range(len(new) - 1, 0, -1):
            if "return " in new[i]:
                new[i] = new[i].replace("return ", "return _checked(", 1).rstrip("\n") + ")\n"
                break
        else:
            new.append(f"{indent}return None\n")
    return new


def _search_replace(path: str, before: list[str], after: list[str]) -> str:
    return f"```python\n### {path}\n<<<<<<< SEARCH\n{''.join(before)}=======\n{''.join(after)}>>>>>>> REPLACE\n```\n"


def _row(sid: str, kind: str, text: str, prompt_chars: int | None, repo: str, pr: int, when: str,
         fork_of: str | None = None) -> dict:
    return {"id": sid, "kind": kind, "role": "bugfixer" if kind == "edit" else "none", "text": text,
            "prompt_chars": prompt_chars, "messages": None, "tools": None,
            "meta": {"repo": repo, "pr": pr, "files": [], "fork_of": fork_of,
                     "template": BUGFIXER_EDIT.ref if kind == "edit" else "commit_bundle@1"},
            "source": {"kind": "git", "method": "merge_commit", "landing": None, "repo": repo, "pr": pr,
                       "commit": None, "crawled_at": when, "missing": []}}


class Base:
    """One function's change, rendered as an edit sample or a commit bundle, with the copy transformations."""

    def __init__(self, f: dict, n: int, change: int, templated_issue: bool):
        self.f, self.n, self.rng = f, n, random.Random(n)
        lines = f["source"].splitlines(keepends=True)
        self.window = lines[max(0, f["start"] - 40):f["end"] + 40]
        self.before = lines[f["start"]:f["end"]][:14]
        self.after = _change(self.before, change, self.rng)
        module = f["path"].removesuffix(".py").replace("/", ".")
        self.qual = f"{module}.{f['name']}"
        self.repo = f"acme/{module.split('.')[0]}"
        symptom, error = SYMPTOMS[change]
        title = f"`{self.qual}` {symptom}"
        description = " ".join(self.rng.sample(SENTENCES, 4))
        snippet = f"```python\n>>> {f['name']}({', '.join(f['args'][:3])})\n{error}\n```"
        self.issue = (ISSUE_TEMPLATE.format(title=title, description=description, snippet=snippet)
                      if templated_issue else f"{title}\n\n{description}\n\n{snippet}")

    def edit(self, sid: str, repo: str, pr: int, when: str, fork_of=None, transform=None) -> dict:
        issue, files, completion, path = self.issue, "".join(self.window), _search_replace(
            self.f["path"], self.before, self.after), self.f["path"]
        if transform:
            issue, files, completion = transform(issue, files, completion, self)
        prompt = BUGFIXER_EDIT.render(problem_statement=issue, files=render_files([(path, files)]))
        return _row(sid, "edit", prompt + completion, len(prompt), repo, pr, when, fork_of)

    def bundle(self, sid: str, repo: str, pr: int, when: str, fork_of=None, transform=None) -> dict:
        diff = "".join(difflib.unified_diff(self.before, self.after, f"a/{self.f['path']}", f"b/{self.f['path']}"))
        title = self.issue.split("\n")[0]
        commit = hashlib.sha1(self.qual.encode()).hexdigest()[:12]
        body, message = self.issue, f"Fix {self.f['name']} for unusual arguments\n\nSee the issue for details."
        if transform:
            body, message, diff = transform(body, message, diff, self)
        text = (f"# {repo}: pull request #{pr}\n## {title}\n{body}\n\n## Commit 1/1 {commit} (A. Developer)\n"
                f"{message}\n```diff\n{diff}```\n")
        return _row(sid, "commit_bundle", text, None, repo, pr, when, fork_of)


    def chat(self, sid: str, repo: str, pr: int, when: str, fork_of=None, transform=None) -> dict:
        """An agent trajectory (kind synthetic): the agent's long system prompt (the same in every trajectory), the
        issue, a look at the file, the edit as a tool call's argument, the result."""
        issue, files, completion = self.issue, "".join(self.window), _search_replace(self.f["path"], self.before,
                                                                                     self.after)
        if transform:
            issue, files, completion = transform(issue, files, completion, self)
        messages = [{"role": "system", "content": AGENT_PROMPT},
                    {"role": "user", "content": f"<issue>\n{issue}\n</issue>\nResolve the issue."},
                    {"role": "assistant", "content": f"Let me look at {self.f['path']}.",
                     "reasoning": "The issue names the function; read its module first."},
                    {"role": "tool", "content": files[:1500], "tool_call_id": "call_0", "name": "open_file"},
                    {"role": "assistant", "content": f"The fix:\n{completion}"},
                    {"role": "user", "content": "The edit applied; the tests pass."},
                    {"role": "assistant", "content": "Done: the change is submitted."}]
        row = _row(sid, "synthetic", "\n".join(m["content"] for m in messages), None, repo, pr, when, fork_of)
        row["messages"] = messages
        return row


AGENT_PROMPT = ("You are an autonomous programmer working in a repository. You can run shell commands, open "
                "files, search the code and edit files by SEARCH/REPLACE blocks. Work step by step: read the "
                "issue, find the code it is about, reproduce the problem, make the smallest change that fixes it, "
                "and check it with the tests. Never change tests to make them pass. When you are done, say so and "
                "submit. " * 4).strip()


def _rename(text: str, old: str, new: str) -> str:
    return re.sub(rf"\b{re.escape(old)}\b", new, text)


def t_rename(a, b, c, base):  # a fork renames the function (and an argument) everywhere
    out = []
    for t in (a, b, c):
        t = _rename(t, base.f["name"], base.f["name"] + "_impl")
        if base.f["args"] and base.f["args"][0] not in ("self", "cls"):
            t = _rename(t, base.f["args"][0], base.f["args"][0] + "_")
        out.append(t)
    return tuple(out)


def t_whitespace(a, b, c, base):  # a mirror reformats: 2-space indents, CRLF, trailing blanks
    def fmt(t):
        t = re.sub(r"(?m)^((?:    )+)", lambda m: "  " * (len(m.group(1)) // 4), t)
        return t.replace("\n", "  \r\n")
    return a, fmt(b), fmt(c)


def t_header(a, b, c, base):  # a backport: another title, a note on top
    lines = a.split("\n")
    return (f"[backport] {lines[0].lower()}\n\nBackported from upstream PR #{base.n + 1000}.\n" + "\n".join(lines[1:]),
            b, c)


def t_extra_function(a, b, c, base):  # the copy adds a helper of its own in the same change
    helper = (f"def _{base.f['name']}_compat(*args, **kwargs):\n    \"\"\"Kept for callers of the old name.\"\"\"\n"
              f"    return {base.f['name']}(*args, **kwargs)\n")
    if c.startswith("```python"):
        return a, b, c + _search_replace(base.f["path"], [], [helper])
    return a, b, c + "".join(f"+{ln}\n" for ln in helper.splitlines())


def t_vendored(a, b, c, base):  # vendored under another package: path prefix, one renamed identifier
    a, b, c = t_rename(a, b, c, base)
    c = c.replace(f"### {base.f['path']}", f"### vendor/{base.f['path']}")
    c = c.replace(f"a/{base.f['path']}", f"a/vendor/{base.f['path']}").replace(
        f"b/{base.f['path']}", f"b/vendor/{base.f['path']}")
    return a, b, c


TRANSFORMS = [t_rename, t_whitespace, t_header, t_extra_function, t_vendored]


def labelled_set(edit_bases: int = 240, bundle_bases: int = 80, chat_bases: int = 60
                 ) -> tuple[list[dict], list[tuple[str, str, bool, str]]]:
    """(samples, pairs): pairs are (id a, id b, is_duplicate, how). Chats reuse the first functions (another
    group: they never meet the edit samples)."""
    funcs = stdlib_functions(edit_bases + bundle_bases + 1)
    samples, pairs = [], []
    for n in range(edit_bases + bundle_bases + chat_bases):
        kind = "edit" if n < edit_bases else "bundle" if n < edit_bases + bundle_bases else "chat"
        f, sibling_f = funcs[n % len(funcs)], funcs[(n + 1) % len(funcs)]
        templated = n % 3 == 0
        base = Base(f, n, n % 3, templated)
        make = {"edit": base.edit, "bundle": base.bundle, "chat": base.chat}[kind]
        t = TRANSFORMS[n % len(TRANSFORMS)]
        a = make(f"b{n}", base.repo, n + 1, f"2024-01-01T{n % 24:02d}:00:00Z")
        fork = f"fork{n}/{base.repo.split('/')[1]}"
        copy = make(f"c{n}", fork, 7000 + n, f"2024-06-01T00:00:00Z", fork_of=base.repo if n % 2 else None,
                    transform=t)
        # distinct: the neighbour function (same module when it has another) or the same one with another change;
        # templated bases share the issue template, so only the patch differs
        if n % 4 == 3:
            other = Base(f, n + 10_000, (n + 1) % 3, templated)
            how = "same function, another change"
        else:
            other = Base(sibling_f, n + 20_000, n % 3, templated)
            how = "same module, another function" if sibling_f["path"] == f["path"] else "another module"
        if templated:
            how += ", same issue template"
        d = {"edit": other.edit, "bundle": other.bundle, "chat": other.chat}[kind](f"d{n}", base.repo, 5000 + n,
                                                                                 "2024-03-01T00:00:00Z")
        samples += [a, copy, d]
        pairs += [(a["id"], copy["id"], True, f"{kind}: {t.__name__[2:]}"), (a["id"], d["id"], False, f"{kind}: {how}")]
    return samples, pairs


def write_samples(samples: list[dict], folder: Path) -> Path:
    """The samples as a stage output would hold them: three Parquet files."""
    from datatrove.data import Document

    from datakit.io.records import RecordWriter

    with RecordWriter(str(folder), "sample") as w:
        for i, s in enumerate(samples):
            w.write(Document(text=s["text"], id=s["id"], metadata=s), rank=i % 3)
    return folder


def run_dedup(samples: list[dict] | None, out: Path, tasks: int = 2, **options) -> dict[str, str]:
    """Run the dedup stage (in-process, one worker) on the samples (None: those already in out/input); return
    id → kept id."""
    from datakit.pipeline.runner import run_recipe
    from datakit.recipe import parse_recipe

    src = write_samples(samples, out / "input") if samples is not None else out / "input"
    recipe = parse_recipe({"name": "dedup-test", "output": str(out / "run"), "executor": {"tasks": tasks, "workers": 1},
                           "stages": [{"name": "dedup", "stage": "dedup", "input": str(src), "options": options}]})
    run_recipe(recipe)
    return kept_ids(out / "run" / "dedup")


def kept_ids(folder: Path) -> dict[str, str]:
    kept = {i: i for f in sorted(folder.glob("*.parquet")) for i in pq.read_table(f, columns=["id"])["id"].to_pylist()}
    for f in sorted((folder / "filtered").glob("*.parquet")):
        for row in pq.read_table(f, columns=["id", "detail"]).to_pylist():
            kept[row["id"]] = row["detail"].split()[1]
    return kept


def pair_figures(pairs, kept: dict[str, str]) -> dict:
    tp = sum(1 for a, b, dup, _ in pairs if dup and kept[a] == kept[b])
    fp = sum(1 for a, b, dup, _ in pairs if not dup and kept[a] == kept[b])
    pos = sum(1 for p in pairs if p[2])
    return {"pairs": len(pairs), "positives": pos, "negatives": len(pairs) - pos, "tp": tp, "fp": fp,
            "precision": tp / (tp + fp) if tp + fp else 1.0, "recall": tp / pos}


def per_how(pairs, kept) -> dict[str, tuple[int, int]]:
    """how → (pairs predicted duplicate, pairs)."""
    out: dict[str, list[int]] = {}
    for a, b, _, how in pairs:
        c = out.setdefault(how, [0, 0])
        c[0] += kept[a] == kept[b]
        c[1] += 1
    return {k: tuple(v) for k, v in sorted(out.items())}


def test_labelled_pairs_precision(tmp_path):
    samples, pairs = labelled_set()
    assert len(pairs) >= MIN_PAIRS and len({s["id"] for s in samples}) == len(samples)
    kept = run_dedup(samples, tmp_path)
    assert set(kept) == {s["id"] for s in samples}  # nothing lost: every sample written or filtered
    fig = pair_figures(pairs, kept)
    print(f"\ndedup labelled pairs: {fig}")
    per = per_how(pairs, kept)
    for how, (hit, n) in per.items():
        print(f"  {how:60s} {hit:4d}/{n}")
    for kind in ("edit", "bundle"):  # reformatted copies are exact duplicates after normalisation: all found
        hit, n = per[f"{kind}: whitespace"]
        assert hit == n > 0, (kind, hit, n)
    assert fig["negatives"] >= 250 and fig["positives"] >= 250
    assert fig["precision"] >= 0.95, fig
    assert fig["recall"] >= 0.8, fig
