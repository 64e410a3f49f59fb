"""The compact fingerprint index of the SWE-bench reference: hashed word n-grams, never the texts.

What is indexed, per instance, in three *items* (fields): 0 ``problem_statement``, 1 ``patch`` (gold code patch),
2 ``test_patch``. A patch item holds the n-grams of the raw diff **and** of each hunk's old side and new side
(context and removed lines / context and added lines, without their prefix), because a leaked fix usually
reaches a sample re-rendered (SEARCH/REPLACE blocks, a file's content after the fix), where raw-diff n-grams
that span both sides or a hunk header do not occur.

What is left out, so that ordinary code and issue text do not match (boilerplate):
- *background* n-grams: every n-gram that occurs in the background of `datakit.decontam.background`: the
  installed standard library, the code and docs of the installed site-packages **without** the 12 Verified
  projects and vendored copies of them (one file in 8 held out, for honest false-positive tests), and the
  boilerplate templates of `datakit.decontam.boilerplate` (Django ``startproject``, ``sphinx-quickstart``,
  packaging templates, licence texts and headers, issue forms, environment reports). The index metadata records
  the background's provenance (Python version, distributions and versions, templates) and how many reference
  n-grams each source removed. ``build_index(common_ngrams=…)`` takes any other set (an empty array keeps
  everything);
- *boilerplate-line* n-grams: more than 6 of the 13 words on environment-report lines (``numpy: 1.19.1``,
  ``pandas==1.1.3``, ``LC_ALL: None``; versions differ per user, so no list of them could be complete) or on lines
  that are, word for word, lines of a template (a pasted ``conf.py`` with one extension added has n-grams across
  the seams that no template has, but its lines are the template's);
- *uninformative* n-grams: fewer than 4 distinct non-numeric words ("1, 1, 1, …, 0, 0", "False, True, False,
  …", "2.0, 3.0, 4.0, …"): numeric tables occur in any scientific code;
- *cross-instance* n-grams: an n-gram found in ``max_instances`` (default 3) or more different reference
  instances is a template, not a quote of one issue (GitHub issue templates such as "Describe the bug … To
  Reproduce", the same traceback frames through Django's request handler, test-module headers). This is the
  document-frequency idea of OLMo's ``decon`` (IDF-weighted n-grams), applied as a cut-off.

Items with fewer than ``n`` words cannot produce an n-gram; they are kept as *short items*: one hash of their
whole word sequence, matched only when a sample contains exactly that sequence of words (none in Verified at
n=13: its shortest item has 16 words).

Each kept hash has one owner (the first instance, then the first field, holding it), and ``item_sizes`` counts
the hashes each item owns, so a coverage score ``matched / item_size`` is in [0, 1].

Rebuild the shipped file (``datakit/decontam/data/swebench_verified.npz``)::

    python -m datakit.decontam.index --from-files ../shared/data/swebench \\
        --out datakit/decontam/data/swebench_verified.npz
"""

from __future__ import annotations

import argparse
import functools
import importlib.resources
import json
import re
import sys
import sysconfig
import time
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .ngrams import canonical_words, ngram_hashes, run_hashes, text_words, to_chars, window_hashes
from .normalize import lines_are_separable
from .reference import Instance, load_reference

__all__ = ["FingerprintIndex", "build_index", "boilerplate_words", "default_index", "stdlib_background", "DEFAULT_N",
           "DEFAULT_MAX_INSTANCES", "FIELDS", "DEFAULT_INDEX_FILE", "patch_views"]

DEFAULT_N = 13
DEFAULT_MAX_INSTANCES = 3
MIN_SHORT_WORDS = 4  # items shorter than this (after normalisation) are not indexed at all
MIN_DISTINCT_WORDS = 4  # an n-gram needs this many distinct non-numeric words to be indexed
FIELDS = ("problem_statement", "patch", "test_patch")
DEFAULT_INDEX_FILE = "swebench_verified.npz"
FORMAT_VERSION = 1
NORMALISATION = "canonical-v1"  # datakit.decontam.normalize: the samples must be normalised the same way
SHORT_DTYPE = np.dtype([("hash", "<u8"), ("words", "<i4"), ("owner", "<i4"), ("field", "u1")])


@dataclass
class FingerprintIndex:
    n: int
    instance_ids: list[str]
    repos: list[str]
    base_commits: dict[str, str]  # base commit sha -> instance_id
    hashes: np.ndarray  # uint64, sorted, unique
    owner: np.ndarray  # int32 per hash: index into instance_ids
    field: np.ndarray  # uint8 per hash: index into FIELDS
    item_sizes: np.ndarray  # int32 (len(instance_ids), 3): hashes owned per (instance, field)
    short_items: np.ndarray  # SHORT_DTYPE records: whole-item hashes of items with fewer than n words
    meta: dict = dc_field(default_factory=dict)
    _bits: np.ndarray | None = dc_field(default=None, repr=False, compare=False)
    _shift: int = dc_field(default=0, repr=False, compare=False)
    _buckets: np.ndarray | None = dc_field(default=None, repr=False, compare=False)

    # -- the membership pre-filter ------------------------------------------------------------------------
    def prefilter(self) -> tuple[np.ndarray, int]:
        """A bit table over the hashes' top bits (≥ 32 bits per hash, so ~3% of absent hashes pass): a cheap,
        cache-friendly test before the binary search. Built on first use."""
        if self._bits is None:
            k = int(np.clip(np.ceil(np.log2(max(len(self.hashes), 1) * 32)), 16, 30))
            shift = 64 - k
            bits = np.zeros(1 << (k - 3), dtype=np.uint8)
            idx = (self.hashes >> np.uint64(shift)).astype(np.int64)
            np.bitwise_or.at(bits, idx >> 3, (np.uint8(1) << (idx & 7).astype(np.uint8)))
            self._bits, self._shift = bits, shift
        return self._bits, self._shift

    BUCKET_SHIFT = 48  # 2^16 buckets of the hashes by their top 16 bits: ~4 hashes each for Verified

    def buckets(self) -> np.ndarray:
        """uint32, 2^16 + 1 entries: where the hashes whose top 16 bits are t start (the last: len(hashes)). The
        compiled scan's look-up after the bit table: a few hashes of one bucket, not a binary search over 2 MB."""
        if self._buckets is None:
            top = self.hashes >> np.uint64(self.BUCKET_SHIFT)
            self._buckets = np.searchsorted(top, np.arange((1 << (64 - self.BUCKET_SHIFT)) + 1, dtype=np.uint64)
                                            ).astype(np.uint32)
        return self._buckets

    def nbytes(self) -> int:
        """Bytes held by the index's arrays (the pre-filter included once built)."""
        total = sum(a.nbytes for a in (self.hashes, self.owner, self.field, self.item_sizes, self.short_items))
        return total + sum(a.nbytes for a in (self._bits, self._buckets) if a is not None)

    # -- persistence ---------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        commits = {iid: sha for sha, iid in self.base_commits.items()}
        meta = dict(self.meta, format=FORMAT_VERSION, n=self.n)
        owner_dtype = np.uint16 if len(self.instance_ids) < 65536 else np.int32
        with path.open("wb") as f:  # a file object: numpy would otherwise append ".npz" to other suffixes
            np.savez_compressed(
                f,
                meta=np.array(json.dumps(meta, sort_keys=True)),
                instance_ids=np.array(self.instance_ids, dtype=str),
                repos=np.array(self.repos, dtype=str),
                base_commit_of=np.array([commits.get(i, "") for i in self.instance_ids], dtype=str),
                hashes=self.hashes.astype("<u8"),
                owner=self.owner.astype(owner_dtype),
                field=self.field.astype(np.uint8),
                item_sizes=self.item_sizes.astype("<i4"),
                short_items=self.short_items.astype(SHORT_DTYPE),
            )

    @classmethod
    def load(cls, path) -> "FingerprintIndex":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != FORMAT_VERSION:
                raise ValueError(f"{path}: fingerprint index format {meta.get('format')}, expected {FORMAT_VERSION}")
            if meta.get("normalisation") != NORMALISATION:
                raise ValueError(f"{path}: index hashed with normalisation {meta.get('normalisation')!r}, this datakit "
                                 f"uses {NORMALISATION!r}: rebuild it (datakit decontam build-index)")
            ids = [str(x) for x in z["instance_ids"]]
            shas = [str(x) for x in z["base_commit_of"]]
            return cls(
                n=int(meta["n"]), instance_ids=ids, repos=[str(x) for x in z["repos"]],
                base_commits={sha: iid for sha, iid in zip(shas, ids) if sha},
                hashes=z["hashes"].astype(np.uint64), owner=z["owner"].astype(np.int32),
                field=z["field"].astype(np.uint8), item_sizes=z["item_sizes"].astype(np.int32),
                short_items=z["short_items"].astype(SHORT_DTYPE), meta=meta)


# -- building ------------------------------------------------------------------------------------------------

def patch_views(patch: str) -> list[str]:
    """The raw diff, then each hunk's old side (context and removed lines) and new side (context and added
    lines), without the ``-``/``+``/`` `` prefixes."""
    views = [patch]
    old: list[str] | None = None
    new: list[str] = []

    def flush():
        if old is not None:
            views.extend(["\n".join(old) + "\n", "\n".join(new) + "\n"])

    for line in patch.splitlines():
        if line.startswith("@@"):
            flush()
            old, new = [], []
        elif line.startswith("diff --git") or old is None:
            flush()
            old, new = None, []
        elif line.startswith(" ") or line == "":
            old.append(line[1:])
            new.append(line[1:])
        elif line.startswith("-"):
            old.append(line[1:])
        elif line.startswith("+"):
            new.append(line[1:])
    flush()
    return views


def _item_views(inst: Instance) -> list[list[str]]:
    return [[inst.problem_statement or ""], patch_views(inst.patch or ""),
            patch_views(inst.test_patch) if inst.test_patch else []]


_IS_DIGIT = np.zeros(256, dtype=bool)
_IS_DIGIT[ord("0"): ord("9") + 1] = True


# a line of an environment report: "numpy: 1.19.1", "python-bits: 64", "pandas==1.1.3", "LC_ALL: None",
# "scipy      1.5.2   py38h…" (pip/conda list). Versions differ per user, so their n-grams are chance, not a quote.
ENV_LINE = re.compile(
    r"(?m)^[ \t>*+-]*[A-Za-z_][\w.\-]{0,40}(?:\[[\w,]+\])?[ \t]*(?::[ \t]*|==|>=|<=|~=|=|[ \t]{2,})"
    r"(?:None|none|unknown|True|False|installed|not installed|\S*\d\S*|/\S*|[0-9a-f]{7,40})"
    r"(?:[ \t]+[\w.+\-/()\[\],:@=#<>]+){0,6}[ \t]*\r?$")
MAX_ENV_WORDS = 6  # an n-gram with more words than this on environment-report or template lines is not indexed


MIN_TEMPLATE_LINE_WORDS = 3  # "import os", "return None", "DEBUG = True" are ordinary code, not a template's


@functools.lru_cache(maxsize=1)
def template_lines() -> frozenset[int]:
    """Hashes of the word sequence of every line of the boilerplate templates (`datakit.decontam.boilerplate`)."""
    from .boilerplate import documents

    out = set()
    for _, text in documents():
        hashes, _, counts = _line_hashes(text)
        out.update(hashes[counts >= MIN_TEMPLATE_LINE_WORDS].tolist())
    return frozenset(out)


@functools.lru_cache(maxsize=1)
def _template_line_array() -> np.ndarray:
    return np.array(sorted(template_lines()), dtype=np.uint64)


def _line_hashes(text: str, words: tuple | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hash, first word, word count) of every line of `text.splitlines()` that holds words: the hash of the
    line's words as one window (`window_hashes(text_words(line)[0], k)[0]`), the words indexed in
    `text_words(text)` (`words`: `canonical_words(text)`, when the caller has it). One pass over the whole text
    where `lines_are_separable` says it gives each line's own words (a call per line cost ~60 µs: 24 s for the
    templates' lines, as much for the reference's); else line by line."""
    if lines_are_separable(text):
        b, wh, starts, _, _ = words or canonical_words(text)
        line = np.searchsorted(np.flatnonzero(b == 0x0A), starts)
        first = np.flatnonzero(np.concatenate(([True], line[1:] != line[:-1]))) if len(line) else line
        counts = np.diff(np.append(first, len(line)))
        return run_hashes(wh, first, counts), first, counts
    hashes, counts = [], []
    for line in text.splitlines():
        wh = text_words(line)[0]
        if len(wh):
            hashes.append(window_hashes(wh, len(wh))[0])
            counts.append(len(wh))
    counts = np.array(counts, dtype=np.int64)
    first = np.cumsum(counts) - counts
    return np.array(hashes, dtype=np.uint64), first, counts


def _template_words(text: str, n_words: int, words: tuple | None = None) -> np.ndarray:
    """Per word of `text`: whether its line is, word for word, a line of a boilerplate template. A reference text
    that pastes a template with its own lines in between (a conf.py with one extension added, a settings.py with
    one more app) would otherwise give n-grams across the seams that no template has."""
    hashes, _, counts = _line_hashes(text, words)
    out = np.repeat(np.isin(hashes, _template_line_array()), counts)
    return out if len(out) == n_words else np.zeros(n_words, dtype=bool)  # split differently: no flags


def _env_words(text: str, starts: np.ndarray) -> np.ndarray:
    """Per word (character offsets `starts`): whether it is on an environment-report line."""
    spans = [m.span() for m in ENV_LINE.finditer(text)]
    if not spans:
        return np.zeros(len(starts), dtype=bool)
    a = np.array([s for s, _ in spans], dtype=np.int64)
    e = np.array([t for _, t in spans], dtype=np.int64)
    k = np.searchsorted(a, starts, side="right") - 1
    return (k >= 0) & (starts < e[np.maximum(k, 0)])


def boilerplate_words(text: str, words: tuple | None = None) -> np.ndarray:
    """Per word of `text` (`text_words`): on an environment-report line or on a line of a boilerplate template.
    `words`: `canonical_words(text)`, when the caller has it."""
    words = words or canonical_words(text)
    _, wh, starts, ends, bmap = words
    return _env_words(text, to_chars(bmap, starts, ends)[0]) | _template_words(text, len(wh), words)


def _informative_windows(text: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(word hashes, hashes of the n-grams worth indexing).

    Left out: low-diversity windows, with fewer than MIN_DISTINCT_WORDS distinct non-numeric words ("1, 1, 1, …,
    0, 0", "[False, True, False, …]", "2.0, 3.0, 4.0, …": any numeric code has them), and windows with more than
    MAX_ENV_WORDS words on environment-report lines or template lines. Build time only (sorts every window)."""
    words = canonical_words(text)
    b, wh, starts, ends, _ = words
    if len(wh) < n:
        return wh, np.empty(0, np.uint64)
    digits = np.zeros(len(b) + 1, dtype=np.int64)
    np.cumsum(_IS_DIGIT[b], out=digits[1:])
    numeric = (digits[ends] - digits[starts]) == (ends - starts)
    w = np.where(numeric, np.uint64(0), wh)
    win = np.sort(np.lib.stride_tricks.sliding_window_view(w, n), axis=1)
    distinct = (win[:, 0] != 0).astype(np.int64) + (win[:, 1:] != win[:, :-1]).sum(axis=1)
    env = np.zeros(len(wh) + 1, dtype=np.int64)
    np.cumsum(boilerplate_words(text, words), out=env[1:])
    env_in_window = env[n:] - env[: len(wh) - n + 1]
    return wh, window_hashes(wh, n)[(distinct >= MIN_DISTINCT_WORDS) & (env_in_window <= MAX_ENV_WORDS)]


@functools.lru_cache(maxsize=4)
def _stdlib_background_cached(n: int, root: str) -> np.ndarray:
    parts = []
    base = Path(root)
    for p in sorted(base.rglob("*.py")):
        rel = p.relative_to(base).parts
        if "site-packages" in rel or "dist-packages" in rel:
            continue
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        h, _, _ = ngram_hashes(text, n)
        if len(h):
            parts.append(np.unique(h))
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, np.uint64)


def stdlib_background(n: int = DEFAULT_N, root: str | Path | None = None) -> np.ndarray:
    """Sorted unique n-gram hashes of the standard library's ``.py`` files (site-packages excluded)."""
    return _stdlib_background_cached(n, str(root or sysconfig.get_paths()["stdlib"]))


def build_index(instances: Sequence[Instance], n: int = DEFAULT_N, common_ngrams: np.ndarray | None = None,
                max_instances: int = DEFAULT_MAX_INSTANCES, background: Sequence[str] | None = None) -> FingerprintIndex:
    """Fingerprint `instances`. `common_ngrams`: hashes to leave out (default: the background of
    `datakit.decontam.background` from its `background` sources, default all of stdlib, site-packages without the
    Verified projects, boilerplate templates; an empty array keeps everything). `max_instances`: leave out n-grams found in this
    many instances or more (0 disables)."""
    hs, items = [], []
    shorts = []
    for i, inst in enumerate(instances):
        for f, views in enumerate(_item_views(inst)):
            item_h = []
            longest = None
            for text in views:
                wh, good = _informative_windows(text, n)
                if len(wh) >= n:
                    item_h.append(good)
                elif longest is None or len(wh) > len(longest):
                    longest = wh
            if item_h:
                u = np.unique(np.concatenate(item_h))
                hs.append(u)
                items.append(np.full(len(u), i * 3 + f, dtype=np.int64))
            elif longest is not None and len(longest) >= MIN_SHORT_WORDS:
                shorts.append((int(window_hashes(longest, len(longest))[0]), len(longest), i, f))
    h = np.concatenate(hs) if hs else np.empty(0, np.uint64)
    it = np.concatenate(items) if items else np.empty(0, np.int64)
    stats = {"ngrams_total": int(len(h))}
    if common_ngrams is None:
        from .background import common_in

        cand = np.unique(h)
        from .background import SOURCES

        found, provenance = common_in(cand, n, tuple(background) if background is not None else SOURCES)
        keep = ~found[np.searchsorted(cand, h)]
        background_ngrams = int(found.sum())
    else:
        keep = ~np.isin(h, np.asarray(common_ngrams, dtype=np.uint64)) if len(common_ngrams) else np.ones(len(h), bool)
        provenance, background_ngrams = "given", int(len(common_ngrams))
    h, it = h[keep], it[keep]
    stats["after_background"] = int(len(h))
    order = np.lexsort((it, h))  # by hash, then item (first instance, first field)
    h, it = h[order], it[order]
    first = np.ones(len(h), dtype=bool)
    first[1:] = h[1:] != h[:-1]
    if max_instances and len(h):
        inst_of = it // 3
        new_pair = first.copy()
        new_pair[1:] |= inst_of[1:] != inst_of[:-1]  # first row of each (hash, instance)
        group = np.cumsum(first) - 1
        n_inst = np.bincount(group, weights=new_pair).astype(np.int64)
        common = n_inst >= max_instances
        stats["cross_instance_dropped"] = int(common.sum())
        keep_rows = first & ~common[group]
    else:
        keep_rows = first
    h, it = h[keep_rows], it[keep_rows]
    n_inst_total = len(instances)
    sizes = np.bincount(it, minlength=n_inst_total * 3).reshape(n_inst_total, 3).astype(np.int32)
    stats["hashes"] = int(len(h))
    short = np.array(shorts, dtype=SHORT_DTYPE) if shorts else np.empty(0, SHORT_DTYPE)
    meta = {"n": n, "instances": n_inst_total, "max_instances": max_instances, "background": provenance,
            "background_ngrams": background_ngrams, "normalisation": NORMALISATION, "stats": stats}
    return FingerprintIndex(
        n=n, instance_ids=[x.instance_id for x in instances], repos=[x.repo for x in instances],
        base_commits={x.base_commit: x.instance_id for x in instances if x.base_commit},
        hashes=h, owner=(it // 3).astype(np.int32), field=(it % 3).astype(np.uint8), item_sizes=sizes,
        short_items=short, meta=meta)


@functools.lru_cache(maxsize=1)
def default_index() -> FingerprintIndex:
    """The shipped index of SWE-bench Verified (``datakit/decontam/data/swebench_verified.npz``); offline, cached."""
    res = importlib.resources.files("datakit.decontam").joinpath("data", DEFAULT_INDEX_FILE)
    with importlib.resources.as_file(res) as p:
        if not Path(p).is_file():
            raise FileNotFoundError(f"the shipped fingerprint index is missing: {p} (rebuild it with "
                                    "python -m datakit.decontam.index --from-files DIR --out FILE)")
        return FingerprintIndex.load(p)


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m datakit.decontam.index", description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-files", metavar="DIR", help="folder with verified.jsonl (+ verified_test_patches.jsonl)")
    src.add_argument("--from-hub", action="store_true", help="princeton-nlp/SWE-bench_Verified from the hub")
    ap.add_argument("--full", action="store_true", help="the full SWE-bench test set (hub only)")
    ap.add_argument("--out", required=True, help="output .npz file")
    ap.add_argument("--n", type=int, default=DEFAULT_N, help=f"words per n-gram (default {DEFAULT_N})")
    ap.add_argument("--max-instances", type=int, default=DEFAULT_MAX_INSTANCES,
                    help="drop n-grams found in this many instances or more (0: keep)")
    ap.add_argument("--no-background", action="store_true", help="do not subtract background n-grams")
    ap.add_argument("--no-site-packages", action="store_true", help="background without site-packages")
    a = ap.parse_args(list(argv) if argv is not None else None)
    t0 = time.perf_counter()
    inst = (load_reference("hub", full=a.full) if a.from_hub else load_reference("files", a.from_files, full=a.full))
    idx = build_index(inst, n=a.n, common_ngrams=np.empty(0, np.uint64) if a.no_background else None,
                      max_instances=a.max_instances,
                      background=("stdlib", "templates") if a.no_site_packages else None)
    if a.no_background:
        idx.meta["background"] = "none"
    idx.save(a.out)
    print(f"{a.out}: {len(inst)} instances, {len(idx.hashes):,} hashes, {Path(a.out).stat().st_size:,} bytes, "
          f"{time.perf_counter() - t0:.1f} s; {json.dumps(idx.meta['stats'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
