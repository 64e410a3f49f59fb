"""Benchmark of the `samples` stage: merged PRs of a git mirror → Agentless samples, per core.

    python benchmarks/bench_samples.py [--files 5000 --prs 2000 --out benchmarks/work]

1. Builds (pygit2 only, deterministic from --seed) a synthetic bare mirror `<out>/mirrors/bench__synthetic.git`:
   nested Python packages, tests (under tests/ and as test_*.py next to the code), docs, config and a vendored
   dir, then --prs merged PRs on `main`, GitHub merge commits and squash merges mixed, each editing 1-4 code
   files with multi-hunk line edits and usually one test file, sometimes adding a file. Trees are built
   incrementally (copy-on-write along the changed paths, unchanged subtrees keep their ids) and the result is
   packed like a real mirror. The repository is reused on later runs with the same parameters.
2. Lists the PRs with `datakit.sources.git_pulls.find_pulls` (timed: discovery throughput).
3. Runs `AgentlessSamples` in-process on one core, once without the structure cache (`structure_cache_mb=0`, the
   anchor) and once with it (default size), --repeat times each, the fastest run reported. Every run has its
   own fresh interpreter and step, so its peak RSS (`ru_maxrss`) is its own; all runs must produce the same
   samples (sha256 over the sorted (id, sha256(text)) pairs).
4. The `datakit samples` CLI side by side with the in-process step (`--cli`, default on): the PullRecords are
   written once as Parquet (`<out>/pulls/`), then, alternating, the cached in-process variant and
   `datakit samples --input <out>/pulls --mirrors <out>/mirrors --tasks 1 --workers 1 --force --quiet` each run
   as a whole process, measured from outside (`os.wait4`: wall, user + system CPU, peak RSS), --repeat times; the
   CLI's samples (read back from its Parquet) must equal the in-process ones.
5. Prints Markdown tables and writes `benchmarks/results/samples.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import platform
import random
import resource
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import pygit2

REPO_NAME = "bench/synthetic"
GENERATOR_VERSION = 1  # bump when the generator changes, so cached repositories are rebuilt
STAMP = "datakit-bench.json"  # parameters of a built repository, kept inside its .git dir
HERE = Path(__file__).resolve().parent
VARIANTS = {"uncached": 0, "cached": 64}  # name -> structure_cache_mb (64: the default); "uncached" is the anchor

BLOB = pygit2.enums.FileMode.BLOB
TREE = pygit2.enums.FileMode.TREE

# ---------------------------------------------------------------------------------------------------------------
# deterministic content
# ---------------------------------------------------------------------------------------------------------------

NOUNS = (
    "account auth batch buffer cache channel chunk client codec column config context cursor dataset delta "
    "device digest engine entry event field filter frame graph handle header index job key layer ledger lease "
    "limit loader lock manifest matrix message metric module node offset option packet page parser partition "
    "path payload peer pipeline plugin policy pool profile queue quota range reader record region registry "
    "report request resource response route rule sample schema scope segment session shard signal snapshot "
    "socket source span stage state store stream task tenant token topic trace transport tree user value "
    "vector version view volume window worker writer"
).split()
VERBS = (
    "build check clear close collect compute convert copy create decode encode ensure expand fetch filter "
    "flush format load lookup merge normalize open parse prepare read refresh register release render "
    "reset resolve restore scan select serialize split start stop sync update validate write"
).split()
ADJECTIVES = "active cached default empty final global local max min next pending raw remote stale total".split()
TYPES = ("int", "str", "bool", "float", "bytes", "list[str]", "dict[str, int]", "None")
PKG_WORDS = (
    "api auth backends cache cli codecs compat config core db events exporters formats graph handlers http io "
    "jobs kernels loaders metrics middleware models net ops parsers plugins protocol query render runtime "
    "schema security serializers services sql storage streams sync tasks transforms transport ui utils "
    "validation workers"
).split()
USERS = "alice bob carol dave erin frank grace heidi ivan judy mallory niaj olivia peggy rupert sybil trent".split()
TITLE_VERBS = ("Fix", "Handle", "Support", "Refactor", "Speed up", "Validate", "Add", "Improve", "Clean up")

from machine import machine_facts as _machine_facts, write_results  # noqa: E402 - benchmarks/machine.py, beside this script


def _ident(rng: random.Random) -> str:
    return f"{rng.choice(ADJECTIVES)}_{rng.choice(NOUNS)}" if rng.random() < 0.4 else rng.choice(NOUNS)


def _statement(rng: random.Random, indent: str) -> list[str]:
    """One plausible Python statement (one line, sometimes a two-line if block)."""
    a, b, c = _ident(rng), _ident(rng), _ident(rng)
    kind = rng.randrange(9)
    if kind == 0:
        return [f"{indent}{a} = {b}.{rng.choice(VERBS)}_{rng.choice(NOUNS)}({c})"]
    if kind == 1:
        return [f"{indent}if {a} is None:", f"{indent}    {a} = {rng.choice(NOUNS).upper()}_{rng.randrange(100)}"]
    if kind == 2:
        return [f"{indent}{a} = [{b} for {b} in {c} if {b}.{rng.choice(NOUNS)} > {rng.randrange(1000)}]"]
    if kind == 3:
        return [f"{indent}if len({a}) > {rng.randrange(2, 4096)}:",
                f'{indent}    raise ValueError(f"{a} too long: {{len({a})}}")']
    if kind == 4:
        return [f'{indent}LOG.debug("{rng.choice(VERBS)} %s for %s", {a}, {b})']
    if kind == 5:
        return [f"{indent}{a}[{b!r}] = {c}.get({rng.choice(NOUNS)!r}, {rng.randrange(-5, 500)})"]
    if kind == 6:
        return [f"{indent}{a} = min({b}, {c} + {rng.randrange(1, 64)})"]
    if kind == 7:
        return [f"{indent}self._{a} = {rng.choice(VERBS)}_{rng.choice(NOUNS)}({b}, timeout={rng.randrange(1, 90)})"]
    return [f"{indent}{a} += {b} * {rng.randrange(2, 17)}"]


def _function(rng: random.Random, indent: str, method: bool) -> list[str]:
    name = f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}"
    if rng.random() < 0.3:
        name += f"_{rng.choice(NOUNS)}"
    args = ["self"] if method else []
    args += [f"{_ident(rng)}: {rng.choice(TYPES[:-1])}" for _ in range(rng.randrange(1, 4))]
    lines = [f"{indent}def {name}({', '.join(args)}) -> {rng.choice(TYPES)}:",
             f'{indent}    """{rng.choice(VERBS).capitalize()} the {rng.choice(NOUNS)} of a {rng.choice(NOUNS)}."""']
    for _ in range(rng.randrange(4, 12)):
        lines += _statement(rng, indent + "    ")
    lines.append(f"{indent}    return {_ident(rng)}")
    return lines


def python_module(rng: random.Random, dotted: str) -> str:
    """A module of a few KB: docstring, imports, constants, functions and a class."""
    lines = [f'"""{rng.choice(NOUNS).capitalize()} {rng.choice(NOUNS)} helpers of `{dotted}`."""', "",
             "from __future__ import annotations", ""]
    lines += sorted({f"import {m}" for m in rng.sample(["json", "logging", "os", "re", "time", "typing"], 3)})
    lines += ["", "LOG = logging.getLogger(__name__)"]
    lines += [f"{rng.choice(ADJECTIVES).upper()}_{rng.choice(NOUNS).upper()} = {rng.randrange(1, 10000)}"
              for _ in range(rng.randrange(1, 5))]
    for _ in range(rng.randrange(3, 8)):
        lines += ["", ""]
        if rng.random() < 0.3:
            lines += [f"class {rng.choice(NOUNS).capitalize()}{rng.choice(NOUNS).capitalize()}:",
                      f'    """A {rng.choice(NOUNS)} of {rng.choice(NOUNS)}s."""', ""]
            for i in range(rng.randrange(1, 4)):
                if i:
                    lines.append("")
                lines += _function(rng, "    ", method=True)
        else:
            lines += _function(rng, "", method=False)
    return "\n".join(lines) + "\n"


def _test_function(rng: random.Random, module: str) -> list[str]:
    a, b = _ident(rng), _ident(rng)
    return ["", "", f"def test_{rng.choice(VERBS)}_{rng.choice(NOUNS)}_{rng.randrange(1000)}():",
            f"    {a} = {module}.{rng.choice(VERBS)}_{rng.choice(NOUNS)}({rng.randrange(100)})",
            f"    assert {a} is not None",
            f"    assert {a}.{b} == {rng.randrange(-10, 1000)}"]


def test_module(rng: random.Random, dotted: str) -> str:
    module = dotted.rsplit(".", 1)[-1]
    lines = [f'"""Tests of `{dotted}`."""', "", "import pytest", "", f"from {dotted.rsplit('.', 1)[0]} import {module}"]
    for _ in range(rng.randrange(3, 9)):
        lines += _test_function(rng, module)
    return "\n".join(lines) + "\n"


def markdown_doc(rng: random.Random, topic: str) -> str:
    lines = [f"# {topic.replace('_', ' ').capitalize()}", ""]
    for _ in range(rng.randrange(3, 8)):
        lines += [f"## {rng.choice(VERBS).capitalize()} a {rng.choice(NOUNS)}", ""]
        lines += [" ".join(f"The {rng.choice(NOUNS)} {rng.choice(VERBS)}s the {rng.choice(NOUNS)}."
                           for _ in range(rng.randrange(3, 7))) for _ in range(rng.randrange(1, 4))]
        lines += ["", "```python", f"{_ident(rng)} = {rng.choice(VERBS)}_{rng.choice(NOUNS)}()", "```", ""]
    return "\n".join(lines)


def config_file(rng: random.Random, name: str) -> str:
    keys = [f"{_ident(rng)}" for _ in range(rng.randrange(6, 30))]
    if name.endswith(".json"):
        return json.dumps({k: rng.randrange(1000) for k in keys}, indent=2) + "\n"
    if name.endswith((".yaml", ".yml")):
        return "".join(f"{k}: {rng.randrange(1000)}\n" for k in keys)
    if name.endswith((".toml", ".cfg", ".ini")):
        return f"[{rng.choice(NOUNS)}]\n" + "".join(f"{k} = {rng.randrange(1000)}\n" for k in keys)
    return "".join(f"{k.upper()} ?= {rng.randrange(1000)}\n" for k in keys)


def edit_code(rng: random.Random, text: str) -> str:
    """1-4 hunks of line edits (replace, insert, delete) at distinct places of a code file."""
    lines = text.split("\n")[:-1]
    n = len(lines)
    spots = sorted(rng.sample(range(5, n), min(rng.randrange(1, 5), max(n - 5, 1)))) if n > 6 else [n - 1]
    for i in reversed(spots):  # bottom-up, so earlier indices stay valid
        line = lines[i]
        indent = line[: len(line) - len(line.lstrip())] or "    "
        op = rng.random()
        if op < 0.45:
            lines[i: i + 1] = _statement(rng, indent)
        elif op < 0.85:
            lines[i + 1: i + 1] = [s for _ in range(rng.randrange(1, 4)) for s in _statement(rng, indent)]
        elif not line.lstrip().startswith(("def ", "class ", "@", "return")) and line.strip():
            del lines[i]
        else:
            lines[i + 1: i + 1] = _statement(rng, indent)
    return "\n".join(lines) + "\n"


def edit_test(rng: random.Random, text: str, module: str) -> str:
    """Adds a test function, or tweaks an assertion."""
    lines = text.split("\n")[:-1]
    asserts = [i for i, s in enumerate(lines) if s.lstrip().startswith("assert ") and "==" in s]
    if asserts and rng.random() < 0.3:
        i = rng.choice(asserts)
        lines[i] = lines[i].rsplit("==", 1)[0] + f"== {rng.randrange(-10, 1000)}"
    else:
        lines += _test_function(rng, module)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# layout
# ---------------------------------------------------------------------------------------------------------------


def _unique(rng: random.Random, taken: set[str], words) -> str:
    name = rng.choice(words)
    while name in taken:
        name = f"{rng.choice(words)}_{rng.choice(NOUNS)}" if rng.random() < 0.5 else f"{rng.choice(words)}{len(taken)}"
    taken.add(name)
    return name


def make_layout(rng: random.Random, n_files: int) -> dict[str, tuple[str, str]]:
    """path → (kind, generator argument) for the initial commit: about 58% code, 22% tests, 12% docs,
    6% config, 2% vendored, packages nested up to 6 levels under src/benchkit/."""
    n_code = int(n_files * 0.58)
    n_test = int(n_files * 0.22)
    n_vendor = int(n_files * 0.02)
    n_config = int(n_files * 0.06)
    files: dict[str, tuple[str, str]] = {}
    for name in ("pyproject.toml", "setup.cfg", "tox.ini", "Makefile", ".pre-commit-config.yaml",
                 ".github/workflows/ci.yml", ".github/workflows/release.yml", "requirements.txt"):
        files[name] = ("config", name)
    files["README.md"] = ("docs", "benchkit")
    files["CHANGELOG.md"] = ("docs", "changelog")

    # package directories, breadth first with a random fan-out
    root = "src/benchkit"
    dirs, queue, children = [root], [(root, 0)], defaultdict(set)
    target_dirs = max(8, n_code // 9)
    while len(dirs) < target_dirs and queue:
        parent, depth = queue.pop(rng.randrange(len(queue)) if rng.random() < 0.3 else 0)
        if depth >= 5:
            continue
        for _ in range(rng.randrange(1, 7)):
            d = f"{parent}/{_unique(rng, children[parent], PKG_WORDS)}"
            dirs.append(d)
            queue.append((d, depth + 1))
    modules: list[str] = []
    taken = defaultdict(set)
    for d in dirs:
        files[f"{d}/__init__.py"] = ("code", d.replace("/", ".")[4:])
    for _ in range(n_code - len(dirs)):
        d = rng.choice(dirs)
        name = _unique(rng, taken[d], [f"{v}_{n}" for v in VERBS[:8] for n in NOUNS[:40]] + NOUNS)
        files[f"{d}/{name}.py"] = ("code", f"{d}/{name}".replace("/", ".")[4:])
        modules.append(f"{d}/{name}.py")

    # tests: most under tests/ mirroring the package, some next to the module
    for path in rng.sample(modules, min(n_test - 12, len(modules))):
        d, name = path.rsplit("/", 1)
        dotted = path[4:-3].replace("/", ".")
        if rng.random() < 0.15:
            files[f"{d}/test_{name}"] = ("test", dotted)
        else:
            files[f"tests/{d[len(root) + 1:]}/test_{name}".replace("//", "/")] = ("test", dotted)
    for d in ["tests"] + [f"tests/{d[len(root) + 1:]}" for d in dirs[1:12]]:
        files[f"{d}/conftest.py"] = ("test", "benchkit.conftest")

    # vendored code (never a localisation candidate)
    for i in range(n_vendor):
        files[f"third_party/{rng.choice(['six', 'attrs', 'idna', 'toml'])}/{rng.choice(NOUNS)}_{i}.py"] = (
            "code", "vendored")
    # config next to packages, docs to fill up
    for i in range(n_config - 8):
        d = rng.choice(dirs)
        files[f"{d}/{rng.choice(NOUNS)}_{i}.{rng.choice(['yaml', 'json', 'toml', 'cfg'])}"] = ("config", "pkg")
    sections = [_unique(rng, set(), PKG_WORDS) + f"_{i}" for i in range(max(4, n_files // 250))]
    i = 0
    while len(files) < n_files:
        if rng.random() < 0.15:
            files[f"{rng.choice(dirs)}/README.md"] = ("docs", "package")
        else:
            files[f"docs/{rng.choice(sections)}/{rng.choice(NOUNS)}_{i}.md"] = ("docs", rng.choice(NOUNS))
        i += 1
    return files


def generate(rng: random.Random, kind: str, arg: str, path: str) -> str:
    if kind == "code":
        return python_module(rng, arg)
    if kind == "test":
        return test_module(rng, arg)
    if kind == "docs":
        return markdown_doc(rng, arg)
    return config_file(rng, path)


# ---------------------------------------------------------------------------------------------------------------
# repository building
# ---------------------------------------------------------------------------------------------------------------


class Dir:
    """An immutable directory: entries are blob ids or sub-`Dir`s; its tree id is written once, on demand."""

    __slots__ = ("entries", "oid")

    def __init__(self, entries: dict):
        self.entries = entries
        self.oid: pygit2.Oid | None = None

    def updated(self, changes: dict[tuple[str, ...], pygit2.Oid]) -> "Dir":
        """A new Dir with `changes` (path segments → blob id) applied; untouched subdirectories are shared."""
        entries = dict(self.entries)
        below: dict[str, dict] = defaultdict(dict)
        for parts, oid in changes.items():
            if len(parts) == 1:
                entries[parts[0]] = oid
            else:
                below[parts[0]][parts[1:]] = oid
        for name, sub in below.items():
            child = entries.get(name)
            entries[name] = (child if isinstance(child, Dir) else Dir({})).updated(sub)
        return Dir(entries)

    def write(self, repo: pygit2.Repository) -> pygit2.Oid:
        """Writes the trees not written yet (only those on changed paths) and returns this tree's id."""
        if self.oid is None:
            builder = repo.TreeBuilder()
            for name, entry in self.entries.items():
                if isinstance(entry, Dir):
                    builder.insert(name, entry.write(repo), TREE)
                else:
                    builder.insert(name, entry, BLOB)
            self.oid = builder.write()
        return self.oid


class SyntheticRepo:
    """Writes the synthetic history into a bare repository; `main` advances by one merged PR at a time."""

    def __init__(self, path: Path, seed: int):
        self.repo = pygit2.init_repository(str(path), bare=True, initial_head="main")
        self.rng = random.Random(seed)
        self.clock = 1_700_000_000
        self.content: dict[str, str] = {}  # current text on main
        self.kinds: dict[str, tuple[str, str]] = {}  # path → (kind, generator argument)
        self.by_kind: dict[str, list[str]] = defaultdict(list)  # "code" (vendored code apart), "test", ...
        self.code_in: dict[str, list[str]] = defaultdict(list)  # dir → its code files
        self.tests_of: dict[str, str] = {}  # dotted module → a test file of it
        self.touched: dict[str, int] = {}  # path → index of the main commit that last changed it
        self.main: list[tuple[pygit2.Oid, Dir]] = []  # (commit, root) of main, oldest first (last few kept)
        self.n_main = 0

    def _sig(self, user: str) -> pygit2.Signature:
        self.clock += 600
        return pygit2.Signature(user.capitalize(), f"{user}@example.com", self.clock, 0)

    def _commit(self, root: Dir, message: str, parents: list, user: str) -> pygit2.Oid:
        sig = self._sig(user)
        return self.repo.create_commit(None, sig, sig, message, root.write(self.repo), parents)

    def _blobs(self, texts: dict[str, str]) -> dict[tuple[str, ...], pygit2.Oid]:
        return {tuple(p.split("/")): self.repo.create_blob(t.encode()) for p, t in texts.items()}

    def _advance(self, commit: pygit2.Oid, root: Dir, changed) -> None:
        self.n_main += 1
        for path in changed:
            self.touched[path] = self.n_main
        self.main.append((commit, root))
        del self.main[:-8]

    def initial(self, n_files: int) -> None:
        layout = make_layout(self.rng, n_files)
        for path, (kind, arg) in layout.items():
            self.content[path] = generate(self.rng, kind, arg, path)
            self._add(path, kind, arg)
        root = Dir({}).updated(self._blobs(self.content))
        self._advance(self._commit(root, "Initial import\n", [], "alice"), root, [])

    def _add(self, path: str, kind: str, arg: str) -> None:
        self.kinds[path] = (kind, arg)
        if kind == "code" and arg == "vendored":
            kind = "vendored"
        self.by_kind[kind].append(path)
        if kind == "code":
            self.code_in[path.rsplit("/", 1)[0]].append(path)
        elif kind == "test":
            self.tests_of.setdefault(arg, path)

    def _pick_changes(self, stale_since: int) -> dict[str, str]:
        """New texts of the files one PR changes; only files unchanged on main since `stale_since`."""
        rng = self.rng
        fresh = lambda p: self.touched.get(p, 0) <= stale_since  # noqa: E731
        roll = rng.random()
        if roll < 0.03:  # docs-only or config-only PR
            pool = [p for p in self.by_kind["docs" if roll < 0.02 else "config"] if fresh(p)]
            return {p: self.content[p] + f"\n{rng.choice(NOUNS)} {rng.choice(VERBS)}s.\n"
                    for p in rng.sample(pool, rng.randrange(1, 3))}
        code = self.by_kind["code"]
        anchor = rng.choice(code)
        while not fresh(anchor):
            anchor = rng.choice(code)
        near = [p for p in self.code_in[anchor.rsplit("/", 1)[0]] if p != anchor and fresh(p)]
        n = rng.randrange(1, 5)
        picked = [anchor] + rng.sample(near, min(n - 1, len(near)))
        while len(picked) < n:
            p = rng.choice(code)
            if p not in picked and fresh(p):
                picked.append(p)
        changes = {p: edit_code(rng, self.content[p]) for p in picked}
        if rng.random() < 0.08:  # a new module (and, mostly, its test)
            d = anchor.rsplit("/", 1)[0]
            name = f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}_{self.n_main}"
            dotted = f"{d}/{name}"[4:].replace("/", ".")
            changes[f"{d}/{name}.py"] = python_module(rng, dotted)
            self._add(f"{d}/{name}.py", "code", dotted)
            if rng.random() < 0.7:
                changes[f"{d}/test_{name}.py"] = test_module(rng, dotted)
                self._add(f"{d}/test_{name}.py", "test", dotted)
        elif rng.random() < 0.8:  # usually one test file, the anchor's own when there is one
            t = self.tests_of.get(self.kinds[anchor][1])
            while t is None or not fresh(t):
                t = rng.choice(self.by_kind["test"])
            changes[t] = edit_test(rng, self.content[t], self.kinds[t][1].rsplit(".", 1)[-1])
        return changes

    def pull_request(self, number: int) -> None:
        """One PR: branch commits (`refs/pull/N/head`), then a merge commit or a squash commit on main."""
        rng = self.rng
        user = rng.choice(USERS)
        squash = rng.random() < 0.4
        # 30% of branches start 1-5 commits behind main (merge-base != parent of the merge)
        lag = 0 if rng.random() < 0.7 or len(self.main) < 2 else rng.randrange(1, min(6, len(self.main)))
        bp_commit, bp_root = self.main[-1 - lag]
        changes = self._pick_changes(self.n_main - lag)
        paths = sorted(changes)
        rng.shuffle(paths)
        n_commits = min(len(paths), rng.randrange(1, 4))
        cuts = sorted(rng.sample(range(1, len(paths)), n_commits - 1)) if n_commits > 1 else []
        noun = rng.choice(NOUNS)
        slug = f"{rng.choice(VERBS)}-{noun}-{number}"
        head, root, done = bp_commit, bp_root, 0
        for cut in cuts + [len(paths)]:
            root = root.updated(self._blobs({p: changes[p] for p in paths[done:cut]}))
            head = self._commit(root, f"{rng.choice(VERBS).capitalize()} {noun} ({done}..{cut})\n", [head], user)
            done = cut
        self.repo.references.create(f"refs/pull/{number}/head", head)
        subject = next(iter(changes)).rsplit("/", 1)[-1]  # the anchor file, a code file in most PRs
        what = rng.choice(["handling", "lookup", "parsing", "limits", "errors"])
        title = f"{rng.choice(TITLE_VERBS)} {rng.choice(ADJECTIVES)} {noun} {what} in {subject}"
        body = " ".join(f"The {rng.choice(NOUNS)} {rng.choice(VERBS)}s the {noun} twice when the "
                        f"{rng.choice(NOUNS)} is {rng.choice(ADJECTIVES)}." for _ in range(rng.randrange(1, 4)))
        if rng.random() < 0.4:
            body += f"\n\nFixes #{max(1, number - rng.randrange(1, 50))}"
        tip_commit, tip_root = self.main[-1]
        merged = tip_root.updated(self._blobs(changes)) if lag else root
        if squash:
            commit = self._commit(merged, f"{title} (#{number})\n\n{body}\n", [tip_commit], user)
        else:
            message = f"Merge pull request #{number} from {user}/{slug}\n\n{title}\n\n{body}\n"
            commit = self._commit(merged, message, [tip_commit, head], "github")
        self.content.update(changes)
        self._advance(commit, merged, changes)

    def finish(self) -> int:
        """Points main at the tip, packs refs and objects like a fetched mirror; returns the object count."""
        self.repo.references.create("refs/heads/main", self.main[-1][0], force=True)
        self.repo.references.compress()
        count = self.repo.pack()
        objects = Path(self.repo.path) / "objects"
        for loose in objects.iterdir():
            if len(loose.name) == 2:
                shutil.rmtree(loose)
        return count


def repo_params(files: int, prs: int, seed: int) -> dict:
    return {"files": files, "prs": prs, "seed": seed, "generator": GENERATOR_VERSION, "pygit2": pygit2.__version__}


def ensure_repo(mirrors_dir: Path, files: int, prs: int, seed: int) -> dict:
    """Builds the synthetic mirror unless one with the same parameters is there; returns build facts."""
    from datakit.sources.git_mirror import mirror_path

    path = mirror_path(mirrors_dir, REPO_NAME)
    params = repo_params(files, prs, seed)
    stamp = path / STAMP
    if stamp.exists() and json.loads(stamp.read_text())["params"] == params:
        return {**json.loads(stamp.read_text()), "cached": True}
    shutil.rmtree(path, ignore_errors=True)
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    t0 = time.perf_counter()
    builder = SyntheticRepo(partial, seed)
    builder.initial(files)
    number = 0
    for _ in range(prs):
        number += builder.rng.choice((1, 1, 2, 3))  # issues share GitHub's numbering
        builder.pull_request(number)
    t_history = time.perf_counter() - t0
    objects = builder.finish()
    os.sync()  # write the new pack out now, not during the timed runs
    facts = {"params": params, "files_at_tip": len(builder.content), "objects": objects,
             "history_s": round(t_history, 2), "build_s": round(time.perf_counter() - t0, 2)}
    (partial / STAMP).write_text(json.dumps(facts, indent=2))
    del builder
    partial.rename(path)
    return {**facts, "cached": False}


# ---------------------------------------------------------------------------------------------------------------
# measurement
# ---------------------------------------------------------------------------------------------------------------


def discover(mirrors_dir: Path) -> tuple[list[dict], float]:
    """All PRs of the synthetic mirror, and the seconds `find_pulls` took."""
    from datakit.sources.git_mirror import mirror_path, open_mirror
    from datakit.sources.git_pulls import find_pulls

    repo = open_mirror(mirror_path(mirrors_dir, REPO_NAME))
    t0 = time.perf_counter()
    prs = list(find_pulls(repo, REPO_NAME))
    return prs, time.perf_counter() - t0


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_variant(variant: str, mirrors_dir: Path, prs_file: Path, quarantine_dir: Path) -> dict:
    """Runs the samples step once over all PRs, in this process; returns its figures (call in a fresh process)."""
    from datakit.io.records import as_document
    from datakit.samples.agentless import Limits
    from datakit.samples.steps import AgentlessSamples

    with open(prs_file, "rb") as f:
        prs = pickle.load(f)
    docs = [as_document(pr) for pr in prs]
    shutil.rmtree(quarantine_dir, ignore_errors=True)
    rss_before = _rss_mib()
    step = AgentlessSamples(str(mirrors_dir), str(quarantine_dir), Limits(), structure_cache_mb=VARIANTS[variant])
    digests: list[tuple[str, bytes]] = []
    text_bytes = 0
    hash_s = 0.0
    t0 = time.perf_counter()
    for doc in step.run(docs):
        th = time.perf_counter()
        data = doc.text.encode()
        text_bytes += len(data)
        digests.append((doc.id, hashlib.sha256(data).digest()))
        hash_s += time.perf_counter() - th
    wall = time.perf_counter() - t0 - hash_s  # the checksum is ours, not the step's
    digest = hashlib.sha256()
    for sample_id, text_digest in sorted(digests):
        digest.update(sample_id.encode() + b"\0" + text_digest)
    stats = {key: int(value.total) for key, value in sorted(step.stats.stats.items())}
    return {
        "variant": variant,
        "structure_cache_mb": VARIANTS[variant],
        "prs": len(docs),
        "samples": len(digests),
        "sample_text_mib": round(text_bytes / 2**20, 1),
        "wall_s": round(wall, 3),
        "checksum_s": round(hash_s, 3),
        "prs_per_s": round(len(docs) / wall, 2),
        "samples_per_s": round(len(digests) / wall, 2),
        "rss_before_mib": round(rss_before, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cache_hits": stats.get("structure_cache.hits", 0),
        "cache_misses": stats.get("structure_cache.misses", 0),
        "samples_sha256": digest.hexdigest(),
        "stats": stats,
    }


# Measures a command from outside, children included. It runs in a fresh, small interpreter: a child's ru_maxrss
# starts at its parent's RSS at fork, so forking from this (large) script would inflate the peak.
_LAUNCHER = """
import json, os, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = proc.stderr.read()
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - t0
code = os.waitstatus_to_exitcode(status)
print(json.dumps({"code": code, "stderr": err[-2000:].decode(errors="replace"), "wall": wall,
                  "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss}))
"""


def whole_process(cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> dict:
    """Runs `cmd` and measures it from outside, children included: wall, user + system CPU, peak RSS."""
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], check=True, capture_output=True, text=True,
                          env={**os.environ, **env} if env else None, cwd=cwd)
    r = json.loads(done.stdout)
    if r["code"] != 0:
        raise SystemExit(f"{' '.join(cmd)} exited with {r['code']}: {r['stderr']}")
    return {"process_wall_s": round(r["wall"], 3), "process_cpu_s": round(r["cpu"], 3),
            "process_peak_rss_mib": round(r["rss"] / 1024, 1)}


def spawn_variant(variant: str, args: argparse.Namespace, prs_file: Path) -> dict:
    """Runs `variant` in a fresh interpreter (this script with --variant), so peak memory is its own."""
    result_file = Path(args.out) / f"result-{variant}.json"
    result_file.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--out", str(args.out), "--variant", variant,
           "--prs-file", str(prs_file), "--result-file", str(result_file)]
    process = whole_process(cmd)
    return {**json.loads(result_file.read_text()), **process}


def write_pulls(prs: list[dict], folder: Path) -> Path:
    """The PullRecords as the sources stage writes them (one Parquet file), the CLI's input."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datakit.io.schemas import arrow_schema, conform

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rows = [conform(pr, "pull_record") for pr in prs]
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema("pull_record")), folder / "00000.parquet",
                   compression="zstd")
    return folder


def run_cli(out: Path) -> dict:
    """`datakit samples` on the PullRecords, one task, as a whole process; its samples' checksum."""
    import pyarrow.parquet as pq

    output = out / "cli"
    cmd = [sys.executable, "-m", "datakit.cli", "samples", "--input", str(out / "pulls"), "--mirrors",
           str(out / "mirrors"), "--output", str(output), "--tasks", "1", "--workers", "1", "--force", "--quiet"]
    figures = whole_process(cmd)
    digests = []
    for f in sorted((output / "samples").glob("*.parquet")):
        for batch in pq.ParquetFile(f).iter_batches(batch_size=64, columns=["id", "text"]):
            for sample_id, text in zip(batch.column("id").to_pylist(), batch.column("text").to_pylist()):
                digests.append((sample_id, hashlib.sha256(text.encode()).digest()))
    digest = hashlib.sha256()
    for sample_id, text_digest in sorted(digests):
        digest.update(sample_id.encode() + b"\0" + text_digest)
    size = sum(f.stat().st_size for f in (output / "samples").glob("*.parquet"))
    return {**figures, "samples": len(digests), "samples_sha256": digest.hexdigest(),
            "parquet_mib": round(size / 2**20, 1), "command": " ".join(["datakit", *cmd[3:]])}


def _tree_cli(tree: Path, *args: str) -> tuple[list[str], dict]:
    """`datakit ARGS` as the checkout `tree` has it (its package first on sys.path)."""
    return [sys.executable, "-m", "datakit.cli", *args], {"PYTHONPATH": str(tree)}


def _trees(baseline: str | None) -> dict[str, Path]:
    trees = {"current": HERE.parent}
    if baseline:
        trees["baseline"] = Path(baseline).resolve()
    return trees


def _spread(runs: list[dict]) -> dict:
    cpu = sorted(r["process_cpu_s"] for r in runs)
    wall = sorted(r["process_wall_s"] for r in runs)
    return {"cpu_s_least": cpu[0], "cpu_s_median": cpu[len(cpu) // 2], "wall_s_least": wall[0],
            "wall_s_median": wall[len(wall) // 2], "peak_rss_mib": max(r["process_peak_rss_mib"] for r in runs),
            "runs_cpu_s": [r["process_cpu_s"] for r in runs]}


def run_startup(out: Path, repeat: int, baseline: str | None) -> dict:
    """Fixed start-up, whole processes: `datakit --help`, `datakit samples` on one PullRecord and `datakit
    decontam` on one Sample (mirror rules off), each tree in turn, `repeat` rounds interleaved."""
    import pyarrow.parquet as pq

    work = out / "startup"
    shutil.rmtree(work, ignore_errors=True)
    (work / "pulls").mkdir(parents=True)
    pq.write_table(pq.read_table(out / "pulls" / "00000.parquet").slice(0, 1), work / "pulls" / "00000.parquet")
    cmd, env = _tree_cli(HERE.parent, "samples", "--input", str(work / "pulls"), "--mirrors", str(out / "mirrors"),
                         "--output", str(work / "seed"), "--quiet")
    whole_process(cmd, env, work)
    (work / "sample").mkdir()
    pq.write_table(pq.read_table(work / "seed" / "samples" / "00000.parquet").slice(0, 1),
                   work / "sample" / "00000.parquet")
    commands = {
        "datakit --help": lambda o: ["--help"],
        "samples, 1 PullRecord": lambda o: ["samples", "--input", str(work / "pulls"), "--mirrors",
                                            str(out / "mirrors"), "--output", o, "--force", "--quiet"],
        "decontam, 1 Sample": lambda o: ["decontam", "--input", str(work / "sample"), "--no-mirror-rules",
                                         "--output", o, "--force", "--quiet"],
    }
    trees = _trees(baseline)
    runs: dict[str, dict[str, list]] = {c: {t: [] for t in trees} for c in commands}
    for i in range(repeat):  # interleaved: every command and tree sees the same load
        for c, make in commands.items():
            for t, tree in trees.items():
                cmd, env = _tree_cli(tree, *make(str(work / f"out-{t}")))
                runs[c][t].append(whole_process(cmd, env, work))
        print(f"start-up round {i + 1}/{repeat}: load {os.getloadavg()[0]:.1f}", flush=True)
    return {"commands": {c: {t: _spread(r) for t, r in by_tree.items()} for c, by_tree in runs.items()},
            "trees": {t: str(p) for t, p in trees.items()}, "load_after": os.getloadavg()[0]}


def run_memory(out: Path, repeat: int, baseline: str | None, sizes=(200, 2000)) -> dict:
    """Peak RSS of whole `datakit samples --tasks 1 --workers 1` processes on the first N PullRecords, written as
    the sources stage writes them (row groups of 64), at each size; each tree in turn, `repeat` rounds."""
    import pyarrow.parquet as pq

    table = pq.read_table(out / "pulls" / "00000.parquet")
    work = out / "memory"
    shutil.rmtree(work, ignore_errors=True)
    for n in sizes:
        (work / f"pulls{n}").mkdir(parents=True)
        pq.write_table(table.slice(0, n), work / f"pulls{n}" / "00000.parquet", row_group_size=64,
                       compression="zstd")
    del table
    trees = _trees(baseline)
    runs: dict[int, dict[str, list]] = {n: {t: [] for t in trees} for n in sizes}
    for i in range(repeat):
        for n in sizes:
            for t, tree in trees.items():
                cmd, env = _tree_cli(tree, "samples", "--input", str(work / f"pulls{n}"), "--mirrors",
                                     str(out / "mirrors"), "--output", str(work / f"out-{t}-{n}"), "--tasks", "1",
                                     "--workers", "1", "--force", "--quiet")
                runs[n][t].append(whole_process(cmd, env, work))
        print(f"memory round {i + 1}/{repeat}: load {os.getloadavg()[0]:.1f}", flush=True)
    result = {"sizes": {n: {t: _spread(r) for t, r in by_tree.items()} for n, by_tree in runs.items()},
              "trees": {t: str(p) for t, p in trees.items()}, "load_after": os.getloadavg()[0]}
    small, large = sizes[0], sizes[-1]
    result["growth"] = {t: round(result["sizes"][large][t]["peak_rss_mib"] / result["sizes"][small][t]["peak_rss_mib"]
                                 - 1, 3) for t in trees}
    return result


def machine_facts() -> dict:
    return _machine_facts(pygit2=pygit2.__version__, libgit2=pygit2.LIBGIT2_VERSION)


def markdown_table(results: list[dict], anchor: dict) -> str:
    rows = ["| variant | PRs/s/core | samples/s | ratio vs uncached | peak RSS MiB | wall s | cache hits / misses |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rows.append(f"| {r['variant']} (structure_cache_mb={r['structure_cache_mb']}) | {r['prs_per_s']:.1f} | "
                    f"{r['samples_per_s']:.1f} | {anchor['wall_s'] / r['wall_s']:.2f}× | {r['peak_rss_mib']:.0f} | "
                    f"{r['wall_s']:.1f} | {r['cache_hits']:,} / {r['cache_misses']:,} |")
    return "\n".join(rows)


def cli_table(cli: dict) -> str:
    a, c = cli["in_process"], cli["cli"]
    prs = cli["prs"]
    rows = ["| whole process | wall s | CPU s | PRs/s (wall) | PRs per CPU s | peak RSS MiB |",
            "|---|---:|---:|---:|---:|---:|"]
    for name, r in (("in-process step (cached, no output)", a), ("`datakit samples` CLI (Parquet out)", c)):
        rows.append(f"| {name} | {r['process_wall_s']:.1f} | {r['process_cpu_s']:.1f} | "
                    f"{prs / r['process_wall_s']:.0f} | {prs / r['process_cpu_s']:.0f} | {r['process_peak_rss_mib']:.0f} |")
    rows.append(f"\nCLI / in-process throughput: {cli['throughput_ratio_wall']:.2f}× (wall), "
                f"{cli['throughput_ratio_cpu']:.2f}× (per CPU second); extra peak RSS {cli['extra_rss_mib']:+.0f} MiB")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=5000, help="files in the initial commit (default 5000)")
    parser.add_argument("--prs", type=int, default=2000, help="merged PRs on main (default 2000)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per variant, each in a fresh process; the fastest is reported (default 3)")
    parser.add_argument("--out", default=str(HERE / "work"), help="work dir: mirrors/, quarantine/, PR list")
    parser.add_argument("--results", default=str(HERE / "results" / "samples.json"))
    parser.add_argument("--variants", default=",".join(VARIANTS), help="in-process variants to run (default: all)")
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI-vs-in-process comparison")
    parser.add_argument("--cli-repeat", type=int, default=5,
                        help="alternating in-process / CLI pairs; the fastest of each is reported (default 5)")
    parser.add_argument("--startup", type=int, default=0, metavar="N",
                        help="only the start-up runs (--help, 1-PR samples, 1-sample decontam), N rounds")
    parser.add_argument("--memory", type=int, default=0, metavar="N",
                        help="only the flat-memory runs (samples on 200 and 2,000 PRs, peak RSS), N rounds")
    parser.add_argument("--baseline", help="with --startup/--memory: an earlier checkout (git archive REV | tar -x "
                        "-C DIR) run interleaved with this one")
    parser.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)  # internal: one variant
    parser.add_argument("--prs-file", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    mirrors_dir = out / "mirrors"

    if args.variant:  # child process: one variant, figures to --result-file
        result = run_variant(args.variant, mirrors_dir, Path(args.prs_file), out / "quarantine" / args.variant)
        Path(args.result_file).write_text(json.dumps(result, indent=2))
        return 0

    if args.startup or args.memory:  # on the work folder a full run left (mirrors/, pulls/)
        if not (out / "pulls" / "00000.parquet").is_file():
            raise SystemExit(f"{out}/pulls is missing: run `python benchmarks/bench_samples.py` once first")
        key = "startup" if args.startup else "memory"
        report = {"benchmark": f"samples-{key}", "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "command": " ".join(["python", "benchmarks/bench_samples.py", *(argv if argv is not None
                                                                                    else sys.argv[1:])]),
                  "machine": machine_facts(), "load_before": os.getloadavg()[0],
                  key: run_startup(out, args.startup, args.baseline) if args.startup
                  else run_memory(out, args.memory, args.baseline)}
        print(json.dumps(report[key], indent=2))
        write_results(Path(args.results).with_name(f"samples_{key}.json"), report)
        return 0

    mirrors_dir.mkdir(parents=True, exist_ok=True)
    print(f"synthetic mirror: {args.files} files, {args.prs} PRs (seed {args.seed}) ...", flush=True)
    build = ensure_repo(mirrors_dir, args.files, args.prs, args.seed)
    print(f"  {'reused' if build['cached'] else 'built in %.1f s' % build['build_s']}: "
          f"{build['files_at_tip']} files at tip, {build['objects']} objects", flush=True)

    prs, discovery_s = discover(mirrors_dir)
    methods = defaultdict(int)
    for pr in prs:
        methods[pr["source"]["method"]] += 1
    print(f"discovery: {len(prs)} PRs in {discovery_s:.2f} s = {len(prs) / discovery_s:.1f} PRs/s "
          f"({dict(methods)})", flush=True)
    if len(prs) != args.prs:
        print(f"WARNING: expected {args.prs} PRs, find_pulls found {len(prs)}", file=sys.stderr)
    n_found = len(prs)
    prs_file = out / "prs.pickle"
    with open(prs_file, "wb") as f:
        pickle.dump(prs, f, protocol=pickle.HIGHEST_PROTOCOL)
    if not args.no_cli:
        write_pulls(prs, out / "pulls")
    del prs

    results, checksums = [], set()
    for variant in [v for v in VARIANTS if v in args.variants.split(",")]:  # the uncached anchor first
        runs = []
        for i in range(args.repeat):
            runs.append(spawn_variant(variant, args, prs_file))
            r = runs[-1]
            print(f"samples step, {variant}, run {i + 1}/{args.repeat}: {r['wall_s']:.1f} s, "
                  f"{r['prs_per_s']:.1f} PRs/s, {r['samples']} samples, peak RSS {r['peak_rss_mib']:.0f} MiB",
                  flush=True)
        checksums |= {r["samples_sha256"] for r in runs}
        best = min(runs, key=lambda r: r["wall_s"])
        results.append({**best, "runs_wall_s": [r["wall_s"] for r in runs],
                        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs)})
    cli = None
    if not args.no_cli:
        inproc_runs, cli_runs = [], []
        for i in range(args.cli_repeat):  # alternating, so both see the same machine load
            inproc_runs.append(spawn_variant("cached", args, prs_file))
            cli_runs.append(run_cli(out))
            a, c = inproc_runs[-1], cli_runs[-1]
            print(f"side by side {i + 1}/{args.cli_repeat}: in-process {a['process_wall_s']:.1f} s wall "
                  f"{a['process_cpu_s']:.1f} s CPU {a['process_peak_rss_mib']:.0f} MiB | CLI {c['process_wall_s']:.1f} s "
                  f"wall {c['process_cpu_s']:.1f} s CPU {c['process_peak_rss_mib']:.0f} MiB", flush=True)
        checksums |= {r["samples_sha256"] for r in inproc_runs + cli_runs}
        a = min(inproc_runs, key=lambda r: r["process_wall_s"])
        c = min(cli_runs, key=lambda r: r["process_wall_s"])
        cli = {
            "prs": n_found,
            "in_process": {k: a[k] for k in ("process_wall_s", "process_cpu_s", "process_peak_rss_mib", "wall_s",
                                             "samples")},
            "cli": {k: c[k] for k in ("process_wall_s", "process_cpu_s", "process_peak_rss_mib", "samples",
                                      "parquet_mib", "command")},
            "runs": {"in_process_wall_s": [r["process_wall_s"] for r in inproc_runs],
                     "cli_wall_s": [r["process_wall_s"] for r in cli_runs],
                     "in_process_cpu_s": [r["process_cpu_s"] for r in inproc_runs],
                     "cli_cpu_s": [r["process_cpu_s"] for r in cli_runs]},
            "throughput_ratio_wall": round(a["process_wall_s"] / c["process_wall_s"], 3),
            "paired_ratios_wall": [round(x["process_wall_s"] / y["process_wall_s"], 3)
                                   for x, y in zip(inproc_runs, cli_runs)],
            "paired_ratios_cpu": [round(x["process_cpu_s"] / y["process_cpu_s"], 3)
                                  for x, y in zip(inproc_runs, cli_runs)],
            "throughput_ratio_cpu": round(min(r["process_cpu_s"] for r in inproc_runs)
                                          / min(r["process_cpu_s"] for r in cli_runs), 3),
            "vs_step_only_wall": round(a["wall_s"] / c["process_wall_s"], 3),
            "extra_rss_mib": round(c["process_peak_rss_mib"] - a["process_peak_rss_mib"], 1),
        }
    anchor = results[0]
    identical = len(checksums) == 1
    for r in results:
        r["ratio_vs_uncached"] = round(anchor["wall_s"] / r["wall_s"], 3)

    table = markdown_table(results, anchor)
    print()
    print(table)
    print(f"\ndiscovery (find_pulls): {n_found} PRs, {n_found / discovery_s:.1f} PRs/s")
    print(f"identical samples across variants: {identical} ({anchor['samples_sha256'][:16]}…)")
    if cli:
        print(cli_table(cli))

    report = {
        "benchmark": "samples",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["python", "benchmarks/bench_samples.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_facts(),
        "parameters": {"files": args.files, "prs": args.prs, "seed": args.seed, "repo": REPO_NAME,
                       "variants": VARIANTS, "anchor": "uncached", "repeat": args.repeat,
                       "reported_run": "fastest of `repeat` (wall_s excludes the benchmark's own checksum)",
                       "cli_repeat": args.cli_repeat},
        "repository": build,
        "discovery": {"prs": n_found, "methods": dict(methods), "seconds": round(discovery_s, 3),
                      "prs_per_s": round(n_found / discovery_s, 2)},
        "variants": results,
        "cli_vs_in_process": cli,
        "identical_samples": identical,
    }
    write_results(args.results, report)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
