"""File classes for Agentless samples: code, test, docs, config, binary, vendored.

SWE-bench's rule (`"test" in path`) also catches `attestation.py`, `pytest/` or `contest/`. Here a path is a test
file only when a *directory segment* is a test directory (`tests/`, `test/`, `testing/`, `__tests__/`, `spec/`, …)
or the *file name* follows a test-naming convention of its language (`test_x.py`, `x_test.go`, `FooTest.java`,
`x.spec.ts`, …). The decision is split into a per-directory context (`dir_context`) and a per-file rule
(`classify_name`) so a tree walker can classify a whole subtree from its ancestors' context without rebuilding
full paths, and the structure cache can key on (tree id, context).

Vendored or generated (never a localisation target, left out of every structure): `vendor/`, `_vendor/`,
`third_party/`, `node_modules/`, … anywhere; `<pkg>/packages/` where `<pkg>` is a Python package (it has an
`__init__.py`: pip's and requests' bundled libraries), never a top-level `packages/`, where monorepos keep their
real code (`PACKAGES`: the rule needs the tree); generated names (`_pb2.py`, `.min.js`, …); and what the
repository's root `.gitattributes` marks `linguist-vendored` or `linguist-generated` (`GitAttributes`).
Fixtures that are not code — keys and certificates (`.pem`, `.crt`, `.key`, `.cnf`, …) and encoded data — are
`data`; CI folders (`.github/`, `.circleci/`, `.ci/`, …) hold `config`, scripts included (`.ps1`, `.bat`, `.sh`).
"""

from __future__ import annotations

import posixpath
import re
from enum import Enum


class FileClass(str, Enum):
    CODE = "code"
    TEST = "test"
    DOCS = "docs"
    CONFIG = "config"
    BINARY = "binary"
    DATA = "data"  # fixtures that are not code: keys, certificates, encoded blobs
    VENDORED = "vendored"  # vendored or generated: never a localisation target


class DirContext(str, Enum):
    """What the ancestors of a path impose on it."""

    NONE = "none"
    TEST = "test"
    DOCS = "docs"
    CI = "ci"
    VENDORED = "vendored"


TEST_DIRS = frozenset({"test", "tests", "testing", "__tests__", "spec", "specs", "testcases", "test_utils", "e2e"})
DOCS_DIRS = frozenset({"docs", "doc", "documentation", "man", "examples_docs"})
VENDORED_DIRS = frozenset(
    {"vendor", "vendored", "_vendor", "third_party", "thirdparty", "third-party", "node_modules", "external",
     "externals", "site-packages", "dist", "build", "generated", "__generated__", ".git"}
)

# Dot-folders only: a plain `ci/` may be a package of a CI tool's own code.
CI_DIRS = frozenset({".github", ".circleci", ".ci", ".gitlab", ".buildkite", ".azure-pipelines", ".travis",
                     ".appveyor", ".woodpecker", ".drone"})
DATA_EXTENSIONS = frozenset(
    ".pem .crt .cer .key .cnf .csr .der .p7b .p7c .p12 .pfx .jks .keystore .pub .asc .gpg .sig .b64 .base64".split()
)

# Test file names per language, matched on the base name.
_TEST_NAME = re.compile(
    r"""^(?:
        test_.+\.py | .+_test\.py | conftest\.py | tests?\.py        # Python (pytest / unittest)
      | .+_test\.go                                                    # Go
      | .+(?:Test|Tests|IT|TestCase)\.(?:java|kt|scala|groovy)        # JVM
      | Test.+\.(?:java|kt)
      | .+\.(?:test|spec)\.(?:[cm]?[jt]sx?)                           # JS / TS
      | .+_(?:test|spec)\.(?:rb|rs|exs|ex|cc|cpp|c|js|ts)             # Ruby, Rust, Elixir, C/C++
      | test_.+\.(?:c|cc|cpp|rs|rb|sh)
      | .+Tests?\.(?:cs|swift|m|php)                                  # C#, Swift, ObjC, PHP
    )$""",
    re.VERBOSE,
)

CODE_EXTENSIONS = frozenset(
    ".py .pyi .pyx .pxd .go .rs .java .kt .kts .scala .groovy .js .jsx .mjs .cjs .ts .tsx .c .h .cc .cpp .cxx .hpp "
    ".hh .cs .swift .m .mm .rb .php .pl .pm .lua .r .jl .ex .exs .erl .hs .ml .mli .clj .dart .sh .bash .zsh .ps1 "
    ".sql .vue .svelte .f90 .f .zig .nim .v .sv .vhdl .cu .cuh".split()
)
DOCS_EXTENSIONS = frozenset(".md .rst .txt .adoc .asciidoc .tex .org .rdoc .pod".split())
CONFIG_EXTENSIONS = frozenset(
    ".toml .ini .cfg .yaml .yml .json .jsonc .xml .properties .conf .env .lock .gradle .mk .cmake .bzl".split()
)
CONFIG_NAMES = frozenset(
    {"makefile", "dockerfile", "setup.cfg", "tox.ini", "pyproject.toml", "setup.py", "manifest.in", ".gitignore",
     ".gitattributes", ".editorconfig", "cmakelists.txt", "build", "workspace", "gemfile", "rakefile", "procfile",
     "requirements.txt", "package.json", "cargo.toml", "go.mod", "go.sum", ".pre-commit-config.yaml", "noxfile.py"}
)
DOCS_NAMES = frozenset({"readme", "changelog", "changes", "history", "news", "authors", "contributors", "license",
                        "licence", "copying", "notice", "contributing", "code_of_conduct"})
BINARY_EXTENSIONS = frozenset(
    ".png .jpg .jpeg .gif .bmp .ico .icns .webp .tif .tiff .pdf .zip .gz .tgz .bz2 .xz .zst .7z .rar .tar .jar .war "
    ".class .so .dylib .dll .exe .o .a .lib .pyc .pyo .whl .egg .bin .dat .db .sqlite .npy .npz .pkl .pickle .h5 "
    ".hdf5 .parquet .arrow .feather .mo .woff .woff2 .ttf .otf .eot .mp3 .mp4 .wav .ogg .flac .avi .mov .psd .xcf "
    ".fits".split()
)
_GENERATED_NAME = re.compile(r"(?:_pb2(?:_grpc)?\.py|\.pb\.go|\.min\.(?:js|css)|\.generated\.\w+|-lock\.json)$")


def dir_context(segment: str, parent: DirContext = DirContext.NONE) -> DirContext:
    """The context a directory named `segment` gives to everything below it."""
    if parent is DirContext.VENDORED:
        return parent
    low = segment.lower()
    if low in VENDORED_DIRS:
        return DirContext.VENDORED
    if parent is not DirContext.NONE:
        return parent
    if low in CI_DIRS:
        return DirContext.CI
    if low in TEST_DIRS:
        return DirContext.TEST
    if low in DOCS_DIRS:
        return DirContext.DOCS
    return DirContext.NONE


def classify_name(name: str, context: DirContext = DirContext.NONE) -> FileClass:
    """Class of a file by its base name, given the context of its directory (content is not read)."""
    low = name.lower()
    stem, ext = posixpath.splitext(low)
    if ext in BINARY_EXTENSIONS:
        return FileClass.BINARY
    if context is DirContext.VENDORED or _GENERATED_NAME.search(low):
        return FileClass.VENDORED
    if ext in DATA_EXTENSIONS:
        return FileClass.DATA
    if context is DirContext.CI:
        return FileClass.CONFIG
    if ext in DOCS_EXTENSIONS and low not in CONFIG_NAMES or stem in DOCS_NAMES and ext in ("", ".md", ".rst", ".txt"):
        return FileClass.DOCS
    is_code = ext in CODE_EXTENSIONS
    if is_code and (context is DirContext.TEST or _TEST_NAME.match(name)):
        return FileClass.TEST
    if low in CONFIG_NAMES or ext in CONFIG_EXTENSIONS:
        return FileClass.CONFIG
    if is_code:
        return FileClass.DOCS if context is DirContext.DOCS else FileClass.CODE
    if context is DirContext.TEST:
        return FileClass.TEST  # fixtures and data files of a test suite
    return FileClass.DOCS if context is DirContext.DOCS else FileClass.CONFIG


def path_context(path: str) -> DirContext:
    context = DirContext.NONE
    for segment in path.split("/")[:-1]:
        context = dir_context(segment, context)
    return context


def classify_path(path: str) -> FileClass:
    """Class of a repository path (`a/b/c.py`), by its directory segments and file name."""
    return classify_name(posixpath.basename(path), path_context(path))


def is_test_path(path: str) -> bool:
    return classify_path(path) is FileClass.TEST


def looks_binary(data: bytes) -> bool:
    """Git's heuristic: a NUL byte in the first 8000 bytes."""
    return b"\0" in data[:8000]


# `<pkg>/packages/` inside a Python package (its parent has `__init__.py`) is a bundled copy of other libraries
# (pip, requests); a top-level `packages/` is where monorepos keep their real code. The rule needs the tree:
# datakit.samples.structure and datakit.samples.steps apply it.
PACKAGES = "packages"


def looks_encoded(data: bytes) -> bool:
    """Base64 / hex dumps and other data that is text only by encoding: long lines with no spaces, nearly all of
    them from the base64 alphabet. (Binary content is `looks_binary`.)"""
    sample = data[:8000]
    lines = [line for line in sample.split(b"\n") if line.strip()]
    if len(lines) < 2 and len(sample) < 200:
        return False
    long_dense = [line for line in lines if len(line) >= 60 and b" " not in line.strip()]
    if len(long_dense) * 2 < len(lines):
        return False
    alphabet = sum(1 for c in sample if c in _BASE64)
    return alphabet >= 0.97 * len(sample)


_BASE64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_\r\n")


class GitAttributes:
    """The `linguist-vendored` / `linguist-generated` rules of a root `.gitattributes` (the last matching line wins,
    as in git). Patterns follow gitattributes: one without a slash matches the base name at any depth, one with a
    slash matches the path from the root; `*`, `?`, `[...]` and `**` as in git."""

    ATTRS = ("linguist-vendored", "linguist-generated")

    def __init__(self, text: str = ""):
        self.rules: list[tuple[re.Pattern, bool, bool]] = []  # (pattern, matches base name only, vendored?)
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            pattern, *attrs = line.split()
            for attr in attrs:
                value = None
                if attr in self.ATTRS or any(attr == f"{a}=true" for a in self.ATTRS):
                    value = True
                elif any(attr in (f"-{a}", f"!{a}", f"{a}=false") for a in self.ATTRS):
                    value = False
                if value is not None:
                    self.rules.append((_glob(pattern.lstrip("/")), "/" not in pattern.rstrip("/"), value))
        self.key = text if self.rules else ""  # what a cache of rendered structures must key on

    def __bool__(self) -> bool:
        return bool(self.rules)

    def vendored(self, path: str) -> bool:
        result = False
        name = path.rsplit("/", 1)[-1]
        for pattern, base_only, value in self.rules:
            if pattern.fullmatch(name if base_only else path):
                result = value
        return result


def _glob(pattern: str) -> re.Pattern:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("/.*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1:]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1:end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))
