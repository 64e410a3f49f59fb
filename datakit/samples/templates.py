"""Prompt templates for Agentless samples, in one place and versioned.

Wording follows Agentless (OpenAutoCoder/Agentless: `obtain_relevant_files_prompt` and the SEARCH/REPLACE repair
prompt); the TestWriter variants follow Kimi-Dev's second role. A sample records `name@version` in
`meta.template`, so a corpus says which template made it. Change a template → bump its version (the sample id does
not depend on it, so data joined by id survives).

The edit completion is exactly the format the edit prompt's example shows, read the same by Agentless's
`extract_python_blocks` + `split_edit_multifile_commands` and SWE-RL's `SEARCH_REPLACE_REGEX`: one fenced
```` ```python ```` block per edit, each starting with its own `### path` line; a new file is an empty SEARCH (one
empty line between the markers). Changes those parsers cannot carry (a deleted or renamed file, a block that would
read as markers, a REPLACE that Agentless's `strip()` would cut, a final-newline change) are quarantined by the
stage with the reason from `datakit.samples.edits`. Version 2: fenced completions (version 1 had one unfenced list
of blocks per file and `(new file)` / `(deleted)` / `(renamed)` headers).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Template:
    name: str
    version: int
    text: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def render(self, **fields: str) -> str:
        return self.text.format(**fields)


_LOCALIZE_TAIL = """
Please only provide the full path and return at most {max_files} files.
The returned files should be separated by new lines ordered by most to least important and wrapped with ```
For example:
```
file1.py
file2.py
```
"""

BUGFIXER_LOCALIZE = Template(
    "bugfixer_localize",
    2,
    "Please look through the following GitHub problem description and Repository structure and provide a list of "
    "files that one would need to edit to fix the problem.\n\n"
    "### GitHub Problem Description ###\n{problem_statement}\n\n###\n\n"
    "### Repository Structure ###\n{structure}\n###\n" + _LOCALIZE_TAIL,
)

TESTWRITER_LOCALIZE = Template(
    "testwriter_localize",
    2,
    "Please look through the following GitHub problem description and Repository structure and provide a list of "
    "test files that one would need to edit or create to write a test that reproduces the problem: the test must "
    "fail before the fix and pass after it.\n\n"
    "### GitHub Problem Description ###\n{problem_statement}\n\n###\n\n"
    "### Repository Structure ###\n{structure}\n###\n" + _LOCALIZE_TAIL,
)

_EDIT_FORMAT = """
Every *SEARCH/REPLACE* edit must use this format:
1. The file path
2. The start of search block: <<<<<<< SEARCH
3. A contiguous chunk of lines to search for in the existing source code
4. The dividing line: =======
5. The lines to replace into the source code
6. The end of the replace block: >>>>>>> REPLACE

Here is an example:

```python
### mathweb/flask/app.py
<<<<<<< SEARCH
from flask import Flask
=======
import math
from flask import Flask
>>>>>>> REPLACE
```

To create a new file, use its path and an empty SEARCH (one empty line), and the whole file as the replacement.
A SEARCH block must match the file exactly once.
Please note that the *SEARCH/REPLACE* edit REQUIRES PROPER INDENTATION.
Wrap each *SEARCH/REPLACE* edit in a code block as shown in the example above. If you have multiple
*SEARCH/REPLACE* edits, use a separate code block for each one.
"""

BUGFIXER_EDIT = Template(
    "bugfixer_edit",
    2,
    "We are currently solving the following issue within our repository. Here is the issue text:\n"
    "--- BEGIN ISSUE ---\n{problem_statement}\n--- END ISSUE ---\n\n"
    "Below are some code segments, each from a relevant file. One or more of these files may contain bugs.\n\n"
    "{files}\n"
    "Please first localize the bug based on the issue statement, and then generate *SEARCH/REPLACE* edits to fix "
    "the issue.\n" + _EDIT_FORMAT,
)

TESTWRITER_EDIT = Template(
    "testwriter_edit",
    2,
    "We are currently solving the following issue within our repository. Here is the issue text:\n"
    "--- BEGIN ISSUE ---\n{problem_statement}\n--- END ISSUE ---\n\n"
    "Below are some segments of the repository's test files.\n\n"
    "{files}\n"
    "Please generate *SEARCH/REPLACE* edits to the tests that add a test reproducing the issue: it must fail on "
    "the current code and pass once the issue is fixed.\n" + _EDIT_FORMAT,
)

FILE_BLOCK = "--- BEGIN FILE ---\n```\n### {path}\n{content}\n```\n--- END FILE ---\n"

TEMPLATES = {
    ("bugfixer", "localize"): BUGFIXER_LOCALIZE,
    ("bugfixer", "edit"): BUGFIXER_EDIT,
    ("testwriter", "localize"): TESTWRITER_LOCALIZE,
    ("testwriter", "edit"): TESTWRITER_EDIT,
}


def render_files(files: list[tuple[str, str]]) -> str:
    return "".join(FILE_BLOCK.format(path=path, content=content) for path, content in files)


def render_file_list(paths: list[str]) -> str:
    """The localisation completion: paths, one per line, in a code block."""
    return "```\n" + "".join(f"{p}\n" for p in paths) + "```"
