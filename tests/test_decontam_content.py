"""The decontam text-overlap rule: recall on planted SWE-bench Verified quotes, false positives on clean text.

Real data from ``../shared/data/swebench`` (skipped when absent). `pytest -s` prints the recall and false-positive
figures. No timings are asserted here (see benchmarks/bench_decontam.py).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import pytest

from datakit.decontam import ngrams
from datakit.decontam.background import held_out
from datakit.decontam.content import content_matches
from datakit.decontam.index import FingerprintIndex, boilerplate_words, build_index, default_index, patch_views
from datakit.decontam.reference import Instance, ReferenceUnavailable, full_test_ids, load_reference
from tests.conftest import requires_shared, shared_missing
from tests.test_decontam_planted import hunks

SHARED = Path(__file__).resolve().parents[2] / "shared"
SWEBENCH = SHARED / "data" / "swebench"
needs_data = requires_shared("swebench/verified.jsonl")
ROOT = Path(__file__).resolve().parents[1]

# projects that *are* SWE-bench repositories (or their vendored copies): the repository-level rules remove them;
# quoting them is not a false positive of the text rule, so the clean corpus leaves them out
SWE_PACKAGES = {"django", "sympy", "sphinx", "matplotlib", "mpl_toolkits", "sklearn", "astropy", "xarray",
                "pytest", "_pytest", "pylint", "requests", "seaborn", "flask", "isympy.py"}
WORD = re.compile(r"[0-9A-Za-z_\x80-\U0010ffff]+")


def _words(t: str) -> int:
    return len(WORD.findall(t))


def _own_words(t: str) -> int:
    """Words not on boilerplate lines (environment reports, licence headers, template lines): what is evidence."""
    return int((~boilerplate_words(t)).sum())


def _paragraphs(t: str) -> list[str]:
    return [p for p in re.split(r"\r?\n[ \t]*\r?\n", t) if p.strip()]


_hunks = hunks  # one hunk splitter for the decontam tests (tests/test_decontam_planted.py)


@pytest.fixture(scope="module")
def instances() -> list[Instance]:
    if why := shared_missing("swebench/verified.jsonl"):
        pytest.skip(why)
    return load_reference("files", SWEBENCH)


@pytest.fixture(scope="module")
def index() -> FingerprintIndex:
    return default_index()


# ---------------------------------------------------------------------------------------------------------------
# hashing
# ---------------------------------------------------------------------------------------------------------------

def test_hashes_are_fixed_values():
    h, s, e = ngrams.ngram_hashes("The quick brown fox jumps over the lazy dog", 3)
    assert [int(x) for x in h] == [17735160206131404781, 15642103499425453390, 13466462670651084698,
                                   17501217767030425754, 10529914679888665242, 9524650782758571339,
                                   5511235084674891403]
    assert s.tolist() == [0, 4, 10, 16, 20, 26, 31] and e.tolist() == [15, 19, 25, 30, 34, 39, 43]
    assert [int(x) for x in ngrams.word_hashes("fix QuerySet")[0]] == [15370264789824591143, 11661834108541534034]


def test_hashes_same_in_another_process():
    code = ("from datakit.decontam.ngrams import ngram_hashes;"
            "print(ngram_hashes('The quick brown fox jumps over the lazy dog', 3)[0].tolist())")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout) == [int(x) for x in ngrams.ngram_hashes(
        "The quick brown fox jumps over the lazy dog", 3)[0]]


def test_normalisation_invariance_and_words():
    a = "Fix  QuerySet.filter()\r\n\r\n    when USING `Q` objects --\tthe result, is wrong\r\n"
    assert ngrams.normalize(a) == "fix queryset.filter()\nwhen using `q` objects -- the result, is wrong"
    for variant in (a.lower(), a.replace("\r\n", "\n"), a.replace("\r\n", "\r"), ngrams.normalize(a),
                    "  ".join(a.split()), a.upper()):
        assert ngrams.ngram_hashes(variant, 5)[0].tolist() == ngrams.ngram_hashes(a, 5)[0].tolist()
    text = "déjà vu: self.assertEqual(x_1, 'ß')"
    starts, ends = ngrams.word_spans(text)
    got = [text[a:b] for a, b in zip(starts, ends)]
    assert got == ["déjà", "vu", "self", "assertEqual", "x_1", "ß"]
    assert ngrams.ngram_hashes("too short", 3)[0].size == 0
    assert ngrams.ngram_hashes("", 3)[0].size == 0


def test_patch_views_new_side():
    patch = ("diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1,3 +1,3 @@\n def f():\n-    return 1\n"
             "+    return 2\n \n")
    assert patch_views(patch) == [patch, "def f():\n    return 1\n\n", "def f():\n    return 2\n\n"]


# ---------------------------------------------------------------------------------------------------------------
# the index
# ---------------------------------------------------------------------------------------------------------------

def test_default_index_loads_offline(monkeypatch):
    import socket

    def refuse(*a, **k):
        raise OSError("network disabled in this test")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    default_index.cache_clear()
    idx = default_index()
    assert idx.n == 13 and len(idx.instance_ids) == 500 and len(idx.hashes) > 100_000
    assert idx.hashes.dtype == np.uint64 and np.all(idx.hashes[1:] > idx.hashes[:-1])
    assert idx.item_sizes.shape == (500, 3) and idx.item_sizes.sum() == len(idx.hashes)
    assert (ROOT / "datakit" / "decontam" / "data" / "swebench_verified.npz").stat().st_size < 4_000_000


def test_save_load_round_trip(tmp_path, index):
    p = tmp_path / "idx.bin"
    index.save(p)
    back = FingerprintIndex.load(p)
    assert back.n == index.n and back.instance_ids == index.instance_ids and back.repos == index.repos
    assert back.base_commits == index.base_commits
    for name in ("hashes", "owner", "field", "item_sizes", "short_items"):
        assert np.array_equal(getattr(back, name), getattr(index, name)), name
    small = build_index([Instance("a__b-1", "a/b", "c0ffee", "one two three four five", "", None)], n=13,
                        common_ngrams=np.empty(0, np.uint64))
    assert len(small.hashes) == 0 and len(small.short_items) == 1
    small.save(tmp_path / "small.npz")
    again = FingerprintIndex.load(tmp_path / "small.npz")
    assert np.array_equal(again.short_items, small.short_items)
    [m] = content_matches("As reported: One two, three FOUR five!", again)
    assert (m.instance_id, m.field, m.score) == ("a__b-1", "problem_statement", 1.0)
    assert content_matches("one two three four", again) == []


def test_shipped_index_records_its_background(index):
    """The shipped index says what it subtracted: stdlib, site-packages without the Verified projects, templates."""
    bg = index.meta["background"]
    assert index.meta["normalisation"] == "canonical-v1"
    assert bg["stdlib"]["files"] > 500 and bg["site_packages"]["files"] > 1000
    assert not {d.split("==")[0] for d in bg["site_packages"]["excluded_verified"]} - {
        "astropy", "django", "matplotlib", "seaborn", "flask", "requests", "xarray", "pylint", "pytest",
        "scikit-learn", "sphinx", "sympy"}
    assert not {"django", "sympy", "matplotlib", "pytest", "requests"} & set(bg["site_packages"]["distributions"])
    assert bg["site_packages"]["excluded_vendored_files"] > 0  # pip's vendored requests, at least
    assert set(bg["templates"]) == {"django_startproject", "sphinx_quickstart", "python_packaging", "licences",
                                    "issue_forms_and_env_reports"}
    found = bg["reference_ngrams_found"]
    assert found["templates/sphinx_quickstart"] > 0 and found["site_packages"] > 0
    stats = index.meta["stats"]
    assert stats["ngrams_total"] - stats["after_background"] >= bg["reference_ngrams_found_total"] > 0  # rows ≥ hashes
    assert stats["hashes"] == len(index.hashes)


def _lines_one_by_one(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What `index._line_hashes` gives when it goes line by line (the reference for its one-pass path)."""
    from datakit.decontam import index as index_module

    separable = index_module.lines_are_separable
    index_module.lines_are_separable = lambda text: False
    try:
        return index_module._line_hashes(text)
    finally:
        index_module.lines_are_separable = separable


TRICKY_LINES = [
    "def f(a, b):\n    return a + b\n\n\nclass C:\n    pass",
    "190: x = 1\n 191\ty = 2\n  192 | z = 3\n+193: w\nfoo 12: bar\n12",  # line-number prefixes at line starts
    "a b c\r\nd e f\r\n\r\n7: g h\r\n",  # CRLF
    "line one here\rline two here\r3: three",  # a lone CR: str.splitlines breaks there, canonical does not
    "form\x0cfeed 12: x\x0bvertical\x1cfs\x85nel\u2028ls\u2029ps words",
    "an &#10; entity &amp; newline&NewLine;here too",  # an entity may decode to a newline
    "İstanbul İzmir\nÉCOLE ÉTÉ\nplain words",  # a longer lower case: canonical lowers only ASCII of the whole text
    "I\u0307 composes\nÀ LA CARTE",  # "I" + combining dot above composes into U+0130
    "café déjà vu\nnaïve ß straße\n\u200bzero width\nｆｕｌｌ ｗｉｄｔｈ",
    "", "\n\n\n", "   ", "one", "x\n" * 50,
]


def test_line_hashes_in_one_pass_equal_line_by_line(instances):
    """The index build hashes a text's lines from one pass over the text where `lines_are_separable` allows:
    the same hashes, first words and counts as hashing every line of `str.splitlines()` on its own, on texts
    made to differ (line breaks canonical keeps, entities, İ), the boilerplate templates and reference texts."""
    from datakit.decontam import boilerplate
    from datakit.decontam import index as index_module

    rng = random.Random(7)
    templates = [t for _, t in boilerplate.documents()]
    views = [v for inst in rng.sample(instances, 40) for vs in index_module._item_views(inst) for v in vs]
    separable = 0
    for text in TRICKY_LINES + rng.sample(templates, 150) + views:
        fast, slow = index_module._line_hashes(text), _lines_one_by_one(text)
        separable += index_module.lines_are_separable(text)
        for got, want in zip(fast, slow):
            assert np.array_equal(got, want), repr(text[:120])
    assert separable > 150  # the one-pass path is the one taken
    assert not any(map(index_module.lines_are_separable, TRICKY_LINES[3:8]))
    assert all(map(index_module.lines_are_separable, TRICKY_LINES[:3] + TRICKY_LINES[8:]))


def test_build_without_site_packages_still_drops_templates():
    """A Django settings.py quoted in an issue: the startproject lines are not indexed, the user's own lines are."""
    from datakit.decontam import boilerplate

    settings = next(t for f, t in boilerplate.documents() if f == "django_startproject")
    own = ("The custom backend raises ImproperlyConfigured whenever the cache alias named frobnicator_backend "
           "is read before the app registry finished loading its configuration modules")
    inst = Instance("django__django-1", "django/django", "0" * 40, settings + "\n\n" + own, "", None)
    idx = build_index([inst], background=("templates",), max_instances=0)
    assert idx.meta["background"]["templates"]["django_startproject"] > 10
    assert content_matches(settings, idx) == []
    [m] = content_matches("x\n" + own + "\n", idx)
    assert m.matched_ngrams >= 6


# ---------------------------------------------------------------------------------------------------------------
# reference loading
# ---------------------------------------------------------------------------------------------------------------

@needs_data
def test_reference_from_files(instances):
    assert len(instances) == 500 and sum(x.test_patch is not None for x in instances) == 449
    assert instances[0].instance_id == "astropy__astropy-12907" and "\r\n" in instances[0].problem_statement
    with pytest.raises(ReferenceUnavailable, match="full SWE-bench"):
        load_reference("files", SWEBENCH, full=True)
    with pytest.raises(ReferenceUnavailable, match="no such file"):
        load_reference("files", SWEBENCH / "nope")
    assert len(full_test_ids(SWEBENCH / "full_test_ids.txt")) == 2294 == len(full_test_ids(SWEBENCH))


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:9"}])
def test_reference_from_hub_fails_fast_offline(tmp_path, env):
    code = ("from datakit.decontam.reference import load_reference, ReferenceUnavailable\n"
            "try:\n    load_reference('hub')\nexcept ReferenceUnavailable as e:\n    print('REFUSED', e)\n")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    full_env.update(env, HF_HOME=str(tmp_path / "hf"))
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120)
    assert "REFUSED" in out.stdout, out.stdout + out.stderr
    assert time.monotonic() - t0 < 60


# ---------------------------------------------------------------------------------------------------------------
# recall on planted contamination
# ---------------------------------------------------------------------------------------------------------------

PROMPT_HEAD = ("We are currently solving the following issue within our repository. Here is the issue text:\n"
               "--- BEGIN ISSUE ---\n")
PROMPT_TAIL = "\n--- END ISSUE ---\n\nBelow are some code segments from relevant files.\n"


def _planted(instances: list[Instance]) -> list[tuple[str, str, str, str]]:
    """(kind, instance_id, field, text) samples quoting Verified content."""
    rng = random.Random(7)
    seen_para: dict[str, int] = {}
    for x in instances:
        for p in _paragraphs(x.problem_statement):
            key = ngrams.normalize(p)
            seen_para[key] = seen_para.get(key, 0) + 1
    out = []
    for x in instances:
        ps = x.problem_statement
        out.append(("statement whole, in a prompt", x.instance_id, "problem_statement", PROMPT_HEAD + ps + PROMPT_TAIL))
        variant = re.sub(r"[ \t]+", lambda m: rng.choice([" ", "  ", "\t"]), ps.replace("\r\n", "\n"))
        variant = variant.upper() if rng.random() < 0.5 else variant.lower()
        out.append(("statement, CRLF/whitespace/case changed", x.instance_id, "problem_statement",
                    "Issue:\r\n" + variant.replace("\n", "\r\n")))
        # one paragraph: the longest instance-specific one (not shared with another statement, i.e. not an issue
        # template) of at least 30 words off boilerplate lines (env dumps), with at least 12 distinct non-numeric words (not a table of numbers)
        paras = [p for p in _paragraphs(ps) if _own_words(p) >= 30 and seen_para[ngrams.normalize(p)] == 1
                 and len({w.lower() for w in WORD.findall(p) if not w.isdigit()}) >= 12]
        if paras and _words(ps) > 2 * _words(max(paras, key=len)):
            out.append(("statement, one paragraph", x.instance_id, "problem_statement",
                        "Someone wrote on a forum:\n\n" + max(paras, key=len) + "\n\nAny idea?"))
        hunks = [h for h in _hunks(x.patch) if _own_words(h) >= 30]
        if hunks:
            h = max(hunks, key=_words)
            out.append(("gold patch, one hunk", x.instance_id, "patch", "Here is a fix:\n```diff\n" + h + "```\n"))
            new = "".join(line[1:] for line in h.splitlines(keepends=True)[1:] if line[:1] in " +")
            old = "".join(line[1:] for line in h.splitlines(keepends=True)[1:] if line[:1] in " -")
            out.append(("gold patch hunk as SEARCH/REPLACE", x.instance_id, "patch",
                        f"```python\n### a/file.py\n<<<<<<< SEARCH\n{old}=======\n{new}>>>>>>> REPLACE\n```\n"))
        if x.test_patch:
            th = [h for h in _hunks(x.test_patch) if _own_words(h) >= 30]
            if th:
                out.append(("test patch, one hunk", x.instance_id, "test_patch",
                            "def helper():\n    pass\n\n" + max(th, key=_words)))
    return out


def _quotes_item(text: str, inst: Instance, field: str) -> bool:
    """Whether `text` quotes `inst`'s item by itself (an index of that one instance, no filters)."""
    alone = build_index([inst], common_ngrams=np.empty(0, np.uint64), max_instances=0)
    return any(m.field == field for m in content_matches(text, alone))


@needs_data
def test_recall_on_planted_contamination(instances, index):
    planted = _planted(instances)
    by_id = {x.instance_id: x for x in instances}
    by_kind: dict[str, list[bool]] = {}
    misses = []
    for kind, iid, field, text in planted:
        ms = content_matches(text, index)
        ok = any(m.instance_id == iid and m.field == field for m in ms)
        if not ok and field == "patch":  # a hunk quoted with its context may score on the test patch instead
            ok = any(m.instance_id == iid for m in ms)
        if not ok and ms:  # hashes have one owner: text shared with an earlier instance is reported as that one
            ok = _quotes_item(text, by_id[ms[0].instance_id], ms[0].field)
        if ok:
            m = next((m for m in ms if m.instance_id == iid), ms[0])
            assert 0 <= m.span_start < m.span_end <= len(text) and 0 < m.score <= 1 and m.matched_ngrams > 0
            assert m.rule == f"text_{m.field}"
        by_kind.setdefault(kind, []).append(ok)
        if not ok:
            misses.append((kind, iid))
    print("\n[decontam recall on planted Verified contamination]")
    for kind, oks in by_kind.items():
        print(f"  {kind:42s} {sum(oks):4d}/{len(oks):4d} = {100 * sum(oks) / len(oks):.1f}%")
    total = sum(len(v) for v in by_kind.values())
    print(f"  {'all':42s} {total - len(misses):4d}/{total:4d}")
    # informational: every hunk of every gold patch, alone
    all_hunks = [(x.instance_id, h) for x in instances for h in _hunks(x.patch)]
    caught = sum(any(m.instance_id == iid for m in content_matches(h, index)) for iid, h in all_hunks)
    print(f"  (every gold-patch hunk alone, any size: {caught}/{len(all_hunks)} caught)")
    assert not misses, misses[:20]
    assert by_kind and all(len(v) >= (150 if "paragraph" in k else 400) for k, v in by_kind.items())


@needs_data
def test_span_points_at_the_quote(instances, index):
    x = instances[3]
    para = max(_paragraphs(x.problem_statement), key=len)
    text = "x = 1\n" * 50 + para + "\n" + "y = 2\n" * 50
    [m] = [m for m in content_matches(text, index) if m.instance_id == x.instance_id]
    start = text.index(para)
    assert start <= m.span_start < m.span_end <= start + len(para)
    assert m.span_end - m.span_start > 0.8 * len(para.strip())
    # non-ASCII before the quote: offsets are characters of the original text
    text2 = "é" * 10 + "İ" + "\r\n" + para
    [m2] = [m for m in content_matches(text2, index) if m.instance_id == x.instance_id]
    assert text2[m2.span_start:m2.span_end] == text[m.span_start:m.span_end]


# ---------------------------------------------------------------------------------------------------------------
# false positives on clean text
# ---------------------------------------------------------------------------------------------------------------

def _clean_code_documents(max_docs: int, size: int = 8000) -> list[tuple[str, str]]:
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    files = []
    for root in roots:
        for p in sorted(root.rglob("*.py")):
            rel = p.relative_to(root).parts
            if SWE_PACKAGES & set(rel):
                continue
            if root == roots[1] and not held_out("/".join(rel)):
                continue  # the background read it: only held-out files are a fair test
            if root == roots[0] and ("site-packages" in rel or "dist-packages" in rel):
                continue
            files.append(p)
    random.Random(3).shuffle(files)
    docs = []
    for p in files:
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for i in range(0, len(text), size):
            docs.append((f"{p}:{i}", text[i:i + size]))
        if len(docs) >= max_docs:
            break
    return docs[:max_docs]


LIBS = {"django": ["QuerySet", "Model.save()", "ForeignKey", "migrations", "the admin", "ModelForm",
                   "select_related", "JSONField", "the ORM", "middleware"],
        "sympy": ["simplify", "Matrix.det", "solveset", "lambdify", "Rational", "the printer"],
        "matplotlib": ["plt.subplots", "colorbar", "imshow", "tight_layout", "the legend", "Axes3D"],
        "pytest": ["fixtures", "parametrize", "the assertion rewriting", "capsys", "tmp_path"],
        "sphinx": ["autodoc", "napoleon", "the HTML builder", "intersphinx", "toctree"],
        "scikit-learn": ["Pipeline", "GridSearchCV", "StandardScaler", "LogisticRegression", "ColumnTransformer"],
        "xarray": ["Dataset.merge", "DataArray.sel", "open_dataset", "groupby", "resample"],
        "requests": ["Session", "the proxies argument", "redirects", "chunked uploads"]}
TEMPLATE = ("**Describe the bug**\nA clear and concise description of what the bug is.\n\n**To Reproduce**\n"
            "Steps to reproduce the behavior:\n1. Go to '...'\n2. Click on '....'\n3. Scroll down to '....'\n"
            "4. See error\n\n**Expected behavior**\nA clear and concise description of what you expected to "
            "happen.\n\n**Environment**\n - OS: [e.g. iOS]\n - Version [e.g. 22]\n")


def _generated_issues(n: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    verbs = ["raises", "returns", "ignores", "crashes on", "silently drops", "mis-handles", "leaks memory with"]
    errs = ["TypeError", "ValueError", "AttributeError", "KeyError", "IndexError", "RecursionError"]
    out = []
    for i in range(n):
        lib = rng.choice(sorted(LIBS))
        a, b = rng.sample(LIBS[lib], 2)
        err = rng.choice(errs)
        lines = [f"{lib}: {a} {rng.choice(verbs)} {b} after upgrading to {rng.randint(1, 5)}.{rng.randint(0, 20)}",
                 "", TEMPLATE if rng.random() < 0.4 else "",
                 f"When I combine {a} with {b} in my project the call {rng.choice(verbs)} the input "
                 f"and I get a {err}. It worked in the previous release; I think the change to {b} broke it.",
                 "", "```python", f"import {lib.replace('-', '_').replace('scikit_learn', 'sklearn')}",
                 f"obj = make_thing(size={rng.randint(1, 999)}, name='item{i}')",
                 f"result = obj.{rng.choice(['run', 'apply', 'fit', 'render'])}(mode={rng.randint(0, 9)})",
                 "print(result)", "```", "", "Traceback (most recent call last):",
                 f'  File "/home/user{i % 50}/project/app.py", line {rng.randint(1, 400)}, in <module>',
                 f"    result = obj.run()", f"{err}: unexpected value {rng.random():.4f}", "",
                 f"Versions: python 3.{rng.randint(6, 12)}, {lib} {rng.randint(1, 5)}.{rng.randint(0, 20)}"]
        out.append("\n".join(lines))
    return out


@needs_data
def test_false_positive_rate_on_clean_text(index):
    code = _clean_code_documents(20_000)
    issues = _generated_issues(5_000)
    lookalikes = [
        "django QuerySet.filter() with Q objects returns duplicates when joining a ManyToMany field; calling "
        "distinct() fixes it but is slow on PostgreSQL. Is this expected behaviour of the ORM?",
        "In sympy, simplify(sin(x)**2 + cos(x)**2) gives 1 but trigsimp on a Matrix does not; see the docs.",
        "matplotlib colorbar ticks overlap when using LogNorm with a small figure size and tight_layout.",
        "from django.db import models\n\n\nclass Book(models.Model):\n    title = models.CharField(max_length=200)\n"
        "    author = models.ForeignKey('Author', on_delete=models.CASCADE)\n\n    def __str__(self):\n"
        "        return self.title\n",
    ]
    flagged = {"code": [], "issues": [], "lookalikes": []}
    for kind, docs in (("code", [d for _, d in code]), ("issues", issues), ("lookalikes", lookalikes)):
        for i, d in enumerate(docs):
            ms = content_matches(d, index)
            if ms:
                flagged[kind].append((code[i][0] if kind == "code" else i, ms[0]))
    n_code, n_issue = len(code), len(issues)
    n_bytes = sum(len(d) for _, d in code)
    print(f"\n[decontam false positives on clean text]\n  code documents (stdlib + site-packages, SWE-bench "
          f"projects left out, {n_bytes / 1e6:.1f} MB): {len(flagged['code'])}/{n_code} = "
          f"{100 * len(flagged['code']) / n_code:.3f}%\n  generated issue texts: {len(flagged['issues'])}/{n_issue} "
          f"= {100 * len(flagged['issues']) / n_issue:.3f}%\n  look-alikes: {len(flagged['lookalikes'])}/"
          f"{len(lookalikes)}")
    for where, m in flagged["code"][:10]:
        print(f"    {where}: {m.instance_id} {m.field} matched={m.matched_ngrams} score={m.score:.3f}")
    assert n_code >= 5_000
    assert not flagged["lookalikes"] and not flagged["issues"]
    assert (len(flagged["code"]) + len(flagged["issues"])) / (n_code + n_issue) < 0.001
