"""Edit completions in the exact format the prompt asks for, read back by parsers that behave like the two that
consume it downstream — written here from their published source, independent of datakit's own parser:

* Agentless (`agentless/util/postprocess_data.py`): `extract_python_blocks` takes the bodies of
  ```` ```python\\n…\\n``` ```` blocks (non-greedy: the first line starting with ``` ends one);
  `split_edit_multifile_commands(diff_format=True)` splits each body on `>>>>>>> REPLACE`, strips each piece, reads
  the file name as the text before `<<<<<<< SEARCH` (`lstrip("#").strip()`), drops duplicate commands, and the
  applier (`parse_diff_edit_commands`) keeps the lines between the markers, splits them on `\\n=======\\n` (exactly
  two parts, else the command is skipped) and replaces every `"\\n" + search + "\\n"` of the file's
  `"\\n" + "\\n".join(lines) + "\\n"`, command after command in the order written (Agentless's applier checks them all
  against the localised interval first and then applies them from the last). Two readings differ from the
  original on purpose, because a byte-exact
  consumer needs them: lines are split on "\\n" only (Agentless's `splitlines()` also splits on "\\r", so it turns
  CRLF into LF), and the rebuilt file keeps its final-newline state (Agentless's reassembly adds or drops it
  depending on the localised interval, and prepends "\\n" when the interval starts at line 1).
* SWE-RL's reward (`src/swerl/core/reward.py`): `SEARCH_REPLACE_REGEX` (one fenced block per edit, each with its
  own `### path` line; it needs a line break where SEARCH or REPLACE is empty) and `apply_code_change`
  (`"\\n" + search` → `"\\n" + replace`, every occurrence, in `"\\n" + content`; identical SEARCH and REPLACE is a
  format error).

Every edit sample of the repositories built here must give the PR's files byte for byte under both; what they
cannot carry is quarantined with its reason.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import pytest

from datakit.samples import templates
from datakit.samples.agentless import Limits
from datakit.samples.edits import EditError, FileEdit, compute_blocks, parse_edits, render_edits
from datakit.sources.git_mirror import read_blob
from tests.gitrepo import RepoBuilder

PROBLEM = "Something is broken\nSteps to reproduce: call it."


# ------------------------------------------------------------------------------------------ Agentless-like reader
def agentless_extract_python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)\n```", text, re.DOTALL)


def agentless_split_edit_multifile_commands(commands: list[str]) -> dict[str, list[str]]:
    file_to_commands: dict[str, list[str]] = OrderedDict()
    for command in commands:
        file_name = None
        for subcommand in command.split(">>>>>>> REPLACE")[:-1]:
            subcommand = subcommand.strip()
            if "<<<<<<< SEARCH" in subcommand:
                fn = subcommand.split("<<<<<<< SEARCH")[0].lstrip("#").strip()
                if fn:
                    file_name = "'" + fn + "'"
            if len(subcommand.split("<<<<<<< SEARCH")) != 2:
                continue
            converted = "<<<<<<< SEARCH" + subcommand.split("<<<<<<< SEARCH")[1] + "\n" + ">>>>>>> REPLACE"
            if file_name not in file_to_commands or converted not in file_to_commands[file_name]:
                file_to_commands.setdefault(file_name, []).append(converted)
    return file_to_commands


def agentless_edits(completion: str) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for name, commands in agentless_split_edit_multifile_commands(agentless_extract_python_blocks(completion)).items():
        for command in commands:
            inner = "\n".join(command.split("\n")[1:-1])  # Agentless: splitlines(); "\n" only here (docstring)
            parts = inner.split("\n=======\n")
            if len(parts) != 2:
                continue  # Agentless skips the command
            out.setdefault(name.strip("'"), []).append((parts[0], parts[1]))
    return out


def agentless_apply(content: str, pairs: list[tuple[str, str]]) -> str:
    had_final_newline = content == "" or content.endswith("\n")
    lines = content.split("\n")
    if content.endswith("\n"):
        lines.pop()
    segment = "\n" + "\n".join(lines) + "\n"
    for search, replace in pairs:
        segment = segment.replace("\n" + search + "\n", "\n" + replace + "\n")
    result = segment[1:]
    return result if had_final_newline else result[:-1]


# ------------------------------------------------------------------------------------------ SWE-RL-like reader
SEARCH_REPLACE_REGEX = r"```.*?\n### (.*)\n<<<<<<< SEARCH\n([\s\S]*?)\n=======\n([\s\S]*?)\n>>>>>>> REPLACE\n```"


def swerl_edits(completion: str) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for path, search, replace in re.findall(SEARCH_REPLACE_REGEX, completion):
        out.setdefault(path, []).append((search, replace))
    return out


def swerl_apply(content: str, pairs: list[tuple[str, str]]) -> str:
    text = "\n" + content
    for search, replace in pairs:
        assert search != replace, "SWE-RL: Search and replace blocks are identical"
        assert "\n" + search in text, f"SWE-RL: Search block not found: {search!r}"
        text = text.replace("\n" + search, "\n" + replace)
    return text[1:]


READERS = {"agentless": (agentless_edits, agentless_apply), "swerl": (swerl_edits, swerl_apply)}


def assert_both_parsers_reproduce(repo, sample: dict) -> None:
    """Parse the completion with each reader, apply to the files at base, compare bytes with the files at head."""
    completion = sample["text"][sample["prompt_chars"]:]
    base = repo[sample["meta"]["base_sha"]].tree
    head = repo[sample["meta"]["head_sha"]].tree
    for name, (parse, apply) in READERS.items():
        edits = parse(completion)
        assert sorted(edits) == sorted(sample["meta"]["files"]), (name, completion)
        for path, pairs in edits.items():
            old = read_blob(repo, base, path)
            got = apply("" if old is None else old.decode("utf-8"), pairs)
            assert got.encode("utf-8") == read_blob(repo, head, path), (name, path, completion)


def run(builder: RepoBuilder, tmp_path, limits: Limits = Limits()):
    from tests.test_samples import run_samples

    return run_samples(builder, tmp_path, limits)


# ------------------------------------------------------------------------------------------ the cases
def test_every_completion_reads_the_same_with_both_parsers(tmp_path):
    b = RepoBuilder(tmp_path / "up.git")
    body = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(12))
    b.commit({"pkg/core.py": body, "pkg/noeol.py": "A = 1\nB = 2", "pkg/blank.py": "a = 1\n\n\nb = 2\n",
              "pkg/prefix.py": "x = 1\nx = 10\ny = 0\n", "tests/test_core.py": "def test_a():\n    pass\n"},
             "init", parent=None)
    b.squash_pr(1, {"pkg/core.py": body.replace("return x + 3\n", "return x + 33\n"),  # a modified line
                    "pkg/new_mod.py": "def g():\n    return 1\n",  # a new file
                    "tests/test_new.py": "def test_g():\n    assert g() == 1\n"}, "Modify and add", PROBLEM)
    b.squash_pr(2, {"pkg/core.py": body.replace("def f5(x):\n    return x + 5\n\n\n", "")},  # pure deletion
                "Delete f5", PROBLEM)
    b.squash_pr(3, {"pkg/noeol.py": "A = 1\nB = 3"}, "No final newline", PROBLEM)  # stays without one
    b.squash_pr(4, {"pkg/blank.py": "a = 9\n\n\nb = 2\n"}, "Blank lines", PROBLEM)  # context: blank lines
    b.squash_pr(5, {"pkg/prefix.py": "x = 1\nx = 10\ny = 1\n"}, "Prefix lines", PROBLEM)
    b.squash_pr(6, {"pkg/prefix.py": "x = 2\nx = 10\ny = 1\n"}, "A SEARCH that is a line's prefix", PROBLEM)
    repo, pulls, samples, quarantine = run(b, tmp_path)
    assert [q["reason"] for q in quarantine if q["role"] == "bugfixer"] == []
    edits = [s for s in samples if s["kind"] == "edit"]
    assert len(edits) == 6  # the testwriter of PR 1 only creates a test file: filtered (only_new_files)
    for sample in edits:
        completion = sample["text"][sample["prompt_chars"]:]
        assert completion.startswith("```python\n### ") and completion.endswith("\n>>>>>>> REPLACE\n```")
        assert completion.count("```python\n### ") == completion.count("<<<<<<< SEARCH\n")  # one fence per edit
        assert_both_parsers_reproduce(repo, sample)
    new_file = next(s for s in edits if "pkg/new_mod.py" in s["meta"]["files"])
    assert "### pkg/new_mod.py\n<<<<<<< SEARCH\n\n=======\ndef g():\n    return 1\n\n>>>>>>> REPLACE" in new_file["text"]
    blank = next(s for s in edits if s["meta"]["pr"] == 4)
    # the one context line after the change is blank, and Agentless strips it: the block grows to "b = 2"
    assert blank["text"].endswith("<<<<<<< SEARCH\na = 1\n\n\nb = 2\n=======\na = 9\n\n\nb = 2\n>>>>>>> REPLACE\n```")


def test_what_neither_parser_carries_is_quarantined_with_its_reason(tmp_path):
    b = RepoBuilder(tmp_path / "up.git")
    b.commit({"a.py": "x = 1\r\ny = 2\r\n", "b.py": '"""Doc.\n\n```python\nf()\n```\n"""\nv = 1\n',
              "c.py": "top = 1\n=======\nbottom = 2\n", "d.py": "gone = 1\n", "e.py": "moved = 1\n" * 3,
              "f.py": "p = 1\nq = 2\n", "g.py": "tail = 1\n", "h.py": "only = 1\n", "i.py": "k = 1\nend = 2"},
             "init", parent=None)
    b.squash_pr(1, {"a.py": "x = 1\r\ny = 3\r\n"}, "CRLF", PROBLEM)
    b.squash_pr(2, {"b.py": '"""Doc.\n\n```python\ng()\n```\n"""\nv = 1\n'}, "Fence in a docstring", PROBLEM)
    b.squash_pr(3, {"c.py": "top = 1\n=======\nbottom = 3\n"}, "Divider line", PROBLEM)
    b.squash_pr(4, {"d.py": None}, "Delete", PROBLEM)
    b.squash_pr(5, {"e.py": None, "e2.py": "moved = 1\n" * 3}, "Rename", PROBLEM)
    b.squash_pr(6, {"f.py": "p = 1\nq = 2\n\n"}, "Trailing blank line at the end", PROBLEM)
    b.squash_pr(7, {"g.py": "tail = 1"}, "Drop the final newline", PROBLEM)
    b.squash_pr(8, {"h.py": ""}, "Empty the file", PROBLEM)
    b.squash_pr(9, {"i.py": "k = 1\nend = 3\n"}, "Add a final newline", PROBLEM)
    repo, pulls, samples, quarantine = run(b, tmp_path)
    number = {p["id"]: p["number"] for p in pulls}
    reasons = {number[q["id"].split("/")[0]]: q["reason"] for q in quarantine if q["role"] == "bugfixer"}
    assert reasons == {1: "crlf_line_endings", 2: "ambiguous_markers", 3: "ambiguous_markers", 4: "deleted_file",
                       5: "renamed_file", 6: "trailing_whitespace", 7: "final_newline_change", 8: "empty_replace",
                       9: "final_newline_change"}
    assert not [s for s in samples if s["role"] == "bugfixer"]  # the localize sample goes with its unit


def test_empty_search_bytes_and_parse_inverse():
    edit = FileEdit("n.py", "added", None, tuple(compute_blocks("", "a\n")))
    text = render_edits([edit])
    assert text == "```python\n### n.py\n<<<<<<< SEARCH\n\n=======\na\n\n>>>>>>> REPLACE\n```"
    assert parse_edits(text) == [edit]
    assert swerl_edits(text) == {"n.py": [("", "a\n")]} and swerl_apply("", [("", "a\n")]) == "a\n"
    assert agentless_edits(text) == {"n.py": [("", "a")]} and agentless_apply("", [("", "a")]) == "a\n"
    for bad in ("=======", "```", "````js", "a <<<<<<< SEARCH b"):
        with pytest.raises(EditError) as err:
            render_edits([FileEdit("m.py", "modified", None, tuple(compute_blocks(f"p\n{bad}\nq\n", f"p\n{bad}\nr\n")))])
        assert err.value.reason == "ambiguous_markers"


def test_prompt_example_is_the_completion_format_and_versions_are_bumped():
    for (role, kind), template in templates.TEMPLATES.items():
        assert template.version >= 2, template.ref
        if kind == "edit":
            example = template.text.split("Here is an example:\n\n")[1].split("\n\n")[0]
            assert swerl_edits(example) == {"mathweb/flask/app.py": [("from flask import Flask",
                                                                     "import math\nfrom flask import Flask")]}
            assert agentless_edits(example) == swerl_edits(example)
