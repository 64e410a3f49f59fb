"""The background: n-grams common outside SWE-bench Verified, left out of the index (they are no evidence).

Three offline sources, each read through the same normalisation and hashing as the index
(`datakit.decontam.ngrams.text_words`):

- ``stdlib``: the installed Python standard library's ``.py`` files;
- ``site_packages``: the code and docs (``.py``, ``.pyi``, ``.rst``, ``.md``, ``.txt``, licence files) of every
  installed distribution **except the 12 Verified projects** (by distribution name) **and vendored copies of
  them** (any file under a path segment named like one of their top-level packages, e.g. pip's
  ``_vendor/requests``): their n-grams are exactly the ones that must stay. One file in `HOLDOUT_MOD` (by a CRC
  of its path) is *held out*, so that tests can measure false positives on ecosystem code the background never
  saw (`held_out`);
- ``templates``: `datakit.decontam.boilerplate` (Django ``startproject``, ``sphinx-quickstart``, packaging
  templates, licence texts and headers, issue forms, environment reports).

`common_in(candidates, n)` answers which of the reference's n-gram hashes occur in the background and how many
each source accounts for (the index metadata records it, with the distributions and versions read), without
ever holding the background's own tens of millions of n-grams: each file's hashes are only tested against the
candidates.
"""

from __future__ import annotations

import re
import sys
import sysconfig
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .ngrams import text_words, window_hashes

__all__ = ["common_in", "SOURCES", "held_out", "VERIFIED_DISTRIBUTIONS", "VERIFIED_PACKAGES", "HOLDOUT_MOD",
           "site_packages_files", "excluded_path"]

# distribution names (PEP 503 normalised) and top-level import names of the 12 SWE-bench Verified projects
VERIFIED_DISTRIBUTIONS = frozenset({"astropy", "django", "matplotlib", "seaborn", "flask", "requests", "xarray",
                                    "pylint", "pytest", "scikit-learn", "sphinx", "sympy"})
VERIFIED_PACKAGES = frozenset({"astropy", "django", "matplotlib", "mpl_toolkits", "pylab", "seaborn", "flask",
                               "requests", "xarray", "pylint", "pytest", "_pytest", "py", "sklearn", "sphinx",
                               "sympy", "isympy"})
HOLDOUT_MOD = 8  # one file in 8 is held out of the background (for honest false-positive tests)
SUFFIXES = (".py", ".pyi", ".rst", ".md", ".txt")
MAX_FILE_BYTES = 2 << 20


def _norm_dist(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def excluded_path(parts: tuple[str, ...]) -> bool:
    """A path inside a Verified project or a vendored copy of one (a segment named like its package)."""
    return any(p.removesuffix(".py").removesuffix(".pyi") in VERIFIED_PACKAGES for p in parts)


def held_out(relpath: str) -> bool:
    """Whether a file (its path relative to its site-packages folder) is held out of the background."""
    return zlib.crc32(relpath.replace("\\", "/").encode()) % HOLDOUT_MOD == 0


def _wanted(name: str) -> bool:
    upper = name.upper()
    return name.endswith(SUFFIXES) or upper.startswith(("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS"))


def site_packages_files(include_held_out: bool = False) -> tuple[list[tuple[str, Path]], dict]:
    """(relative path, file) of the background's site-packages part, sorted, and what was read/excluded."""
    import importlib.metadata as md

    dists, excluded, vendored, held, seen = {}, set(), 0, 0, set()
    files = []
    for dist in md.distributions():
        name = _norm_dist(dist.metadata["Name"] or "")
        if not name or name == "datakit":
            continue
        if name in VERIFIED_DISTRIBUTIONS:
            excluded.add(f"{name}=={dist.version}")
            continue
        n_files = 0
        for f in dist.files or ():
            rel = str(f)
            if rel in seen or ".." in f.parts or not _wanted(f.name):
                continue
            if excluded_path(tuple(f.parts[:-1]) + ((f.name,) if f.name.endswith((".py", ".pyi")) else ())):
                vendored += 1
                continue
            if held_out(rel) and not include_held_out:
                held += 1
                continue
            path = Path(dist.locate_file(f))
            seen.add(rel)
            files.append((rel, path))
            n_files += 1
        if n_files:
            dists[name] = dist.version
    files.sort()
    info = {"distributions": dict(sorted(dists.items())), "excluded_verified": sorted(excluded),
            "excluded_vendored_files": vendored, "held_out_files": held, "holdout": f"crc32(path) % {HOLDOUT_MOD} == 0"}
    return files, info


def _stdlib_files() -> list[tuple[str, Path]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root).parts
        if "site-packages" in rel or "dist-packages" in rel:
            continue
        out.append(("/".join(rel), p))
    return out


def _read(path: Path) -> str | None:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


SOURCES = ("stdlib", "site_packages", "templates")


def _documents(sources: tuple[str, ...], info: dict) -> Iterator[tuple[str, str]]:
    if "stdlib" in sources:
        files = _stdlib_files()
        info["stdlib"] = {"python": sys.version.split()[0], "files": len(files)}
        for _, path in files:
            text = _read(path)
            if text is not None:
                yield "stdlib", text
    if "site_packages" in sources:
        sp, sp_info = site_packages_files()
        sp_info["files"] = len(sp)
        info["site_packages"] = sp_info
        for _, path in sp:
            text = _read(path)
            if text is not None:
                yield "site_packages", text
    if "templates" not in sources:
        return
    from .boilerplate import documents

    counts: dict[str, int] = {}
    for family, text in documents():
        counts[family] = counts.get(family, 0) + 1
        yield f"templates/{family}", text
    info["templates"] = counts


def common_in(candidates: np.ndarray, n: int, sources: tuple[str, ...] = SOURCES) -> tuple[np.ndarray, dict]:
    """(boolean mask over the sorted unique `candidates`: found in the background; provenance and counts).
    `sources`: a subset of `SOURCES`."""
    candidates = np.asarray(candidates, dtype=np.uint64)
    found = np.zeros(len(candidates), dtype=bool)
    info: dict = {}
    removed: dict[str, np.ndarray] = {}
    n_docs = 0
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown background source(s) {sorted(unknown)}; expected some of {SOURCES}")
    for source, text in _documents(tuple(sources), info):
        n_docs += 1
        wh = text_words(text)[0]
        if len(wh) < n or not len(candidates):
            continue
        h = window_hashes(wh, n)
        pos = np.searchsorted(candidates, h)
        pos[pos >= len(candidates)] = 0
        hit = pos[candidates[pos] == h]
        if len(hit):
            found[hit] = True
            key = source.split("/")[0] if not source.startswith("templates/") else source
            removed.setdefault(key, np.zeros(len(candidates), dtype=bool))[hit] = True
    info["documents"] = n_docs
    info["reference_ngrams_found"] = {k: int(v.sum()) for k, v in sorted(removed.items())}
    info["reference_ngrams_found_total"] = int(found.sum())
    return found, info
