"""The planted decontamination set: every variant and trap of issue 10, built deterministically from ../shared/data.

Contaminated samples quote SWE-bench Verified in the forms a training corpus holds them: whole problem statements
and paragraphs, in every normalisation variant (HTML entities, NFKC, zero-width and no-break spaces, typographic
quotes, Markdown escapes, CRLF/case/whitespace), gold and test hunks with their diff context, as SEARCH/REPLACE
blocks and as line-numbered code views (``190:`` and ``   190\\t``), chat conversations carrying a statement, a
hunk or only an instance id, and repository-level cases (names, former names, forks, forks of forks).
Clean samples are held-out ecosystem code (site-packages files the background never read), generated issue text,
and ≥ 600 boilerplate traps: Django ``startproject`` settings, ``sphinx-quickstart`` conf.py, pylint-style GPL
headers, licence texts, ``show_versions()`` / ``pip freeze`` / ``conda list`` environment dumps, issue forms.

`pytest -s tests/test_decontam_planted.py` prints recall per variant and the false-positive rate per trap family
(the figures in BENCHMARKS.md). No timings are asserted.
"""

from __future__ import annotations

import html
import json
import random
import re
from pathlib import Path

import polars as pl
import pytest

from datakit.decontam.background import HOLDOUT_MOD, excluded_path, held_out
from datakit.decontam.reference import Instance, load_reference
from tests.conftest import requires_shared, shared_missing

SWEBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "swebench"
needs_data = requires_shared("swebench/verified.jsonl")
WORD = re.compile(r"[0-9A-Za-z_\x80-\U0010ffff]+")
MIN_STATEMENT_WORDS = 40
MIN_HUNK_WORDS = 30


def words(t: str) -> int:
    return len(WORD.findall(t))


def own_words(t: str) -> int:
    """Words off boilerplate lines (licence headers, version pins, template lines): the recall targets count these,
    since the index leaves the others out on purpose."""
    from datakit.decontam.index import boilerplate_words

    return int((~boilerplate_words(t)).sum())


def hunks(patch: str) -> list[str]:
    """The hunks of a diff, each with its ``@@`` header, context and +/- lines."""
    out, cur = [], None
    for line in patch.splitlines(keepends=True):
        if line.startswith("@@"):
            if cur:
                out.append("".join(cur))
            cur = [line]
        elif line.startswith("diff --git"):
            if cur:
                out.append("".join(cur))
            cur = None
        elif cur is not None:
            cur.append(line)
    if cur:
        out.append("".join(cur))
    return out


def hunk_side(h: str, side: str) -> list[str]:
    keep = " +" if side == "new" else " -"
    return [line[1:] for line in h.splitlines(keepends=True)[1:] if line[:1] in keep or line in ("\n",)]


def new_start(h: str) -> int:
    m = re.match(r"@@ -\d+(?:,\d+)? \+(\d+)", h)
    return int(m.group(1)) if m else 1


# ------------------------------------------------------------------------------------------ normalisation variants

def v_html(t: str, rng) -> str:
    return html.escape(t, quote=True)


def v_nbsp_zw(t: str, rng) -> str:
    out = []
    for w in re.split(r"( )", t):
        if w == " ":
            out.append("\u00a0" if rng.random() < 0.5 else " ")
        elif len(w) > 4 and rng.random() < 0.3:
            out.append(w[:2] + "\u200b" + w[2:])
        else:
            out.append(w)
    return "".join(out)


def v_typographic(t: str, rng) -> str:
    t = re.sub(r'"([^"\n]*)"', "\u201c\\1\u201d", t)
    t = re.sub(r"'([^'\n]*)'", "\u2018\\1\u2019", t)
    return t.replace(" - ", " \u2014 ").replace("--", "\u2013")


def v_markdown(t: str, rng) -> str:
    return re.sub(r"([_*\[\]#`])", r"\\\1", t)


def v_nfkc(t: str, rng) -> str:  # full-width letters in some words (pasted from CJK input methods)
    def wide(m):
        return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in m.group()) if rng.random() < 0.2 else m.group()
    return re.sub(r"[A-Za-z]{3,}", wide, t)


def v_case_space(t: str, rng) -> str:
    t = re.sub(r"[ \t]+", lambda m: rng.choice([" ", "  ", "\t"]), t.replace("\r\n", "\n"))
    return (t.upper() if rng.random() < 0.5 else t.lower()).replace("\n", "\r\n")


STATEMENT_VARIANTS = {"plain": lambda t, rng: t, "html_entities": v_html, "nbsp_zero_width": v_nbsp_zw,
                      "typographic": v_typographic, "markdown_escapes": v_markdown, "nfkc_fullwidth": v_nfkc,
                      "crlf_case_space": v_case_space}


def h_diff(h: str) -> str:
    return "Here is the fix:\n```diff\n" + h + "```\n"


def h_search_replace(h: str) -> str:
    old, new = "".join(hunk_side(h, "old")), "".join(hunk_side(h, "new"))
    return f"```python\n### a/file.py\n<<<<<<< SEARCH\n{old}=======\n{new}>>>>>>> REPLACE\n```\n"


def h_grep_numbers(h: str) -> str:  # an agent tool's view: "190:code"
    start = new_start(h)
    return "".join(f"{start + i}:{line}" for i, line in enumerate(hunk_side(h, "new")))


def h_cat_numbers(h: str) -> str:  # cat -n / str_replace_editor view: "   190\tcode"
    start = new_start(h)
    return "".join(f"{start + i:6d}\t{line}" for i, line in enumerate(hunk_side(h, "new")))


HUNK_VARIANTS = {"diff_context": h_diff, "search_replace": h_search_replace, "line_numbers_colon": h_grep_numbers,
                 "line_numbers_tab": h_cat_numbers}


# ------------------------------------------------------------------------------------------------ the dirty set

def contaminated(instances: list[Instance]) -> list[dict]:
    """Samples quoting Verified content: {id, text | messages, variant, instance_id}."""
    rng = random.Random(10)
    out = []
    statements = [x for x in instances if own_words(x.problem_statement) >= MIN_STATEMENT_WORDS]
    for k, x in enumerate(statements):
        name = list(STATEMENT_VARIANTS)[k % len(STATEMENT_VARIANTS)]
        out.append({"variant": f"statement/{name}", "instance_id": x.instance_id,
                    "text": "Issue:\n" + STATEMENT_VARIANTS[name](x.problem_statement, rng) + "\nPlease fix."})
    for x in rng.sample(statements, 60):  # every variant on the same statements too
        for name, fn in STATEMENT_VARIANTS.items():
            if name != "plain":
                out.append({"variant": f"statement/{name}", "instance_id": x.instance_id,
                            "text": fn(x.problem_statement, rng)})
    gold = [(x, h) for x in instances for h in hunks(x.patch) if own_words(h) >= MIN_HUNK_WORDS]
    for k, (x, h) in enumerate(gold):
        name = list(HUNK_VARIANTS)[k % len(HUNK_VARIANTS)]
        side = "new" if name.startswith("line_numbers") else "both"
        if name != "diff_context" and max(own_words("".join(hunk_side(h, s))) for s in (("new",) if side == "new" else
                                                                                      ("old", "new"))) < MIN_HUNK_WORDS:
            name = "diff_context"  # a view of the sides: one side must hold the 30 words itself
        out.append({"variant": f"gold_hunk/{name}", "instance_id": x.instance_id, "text": HUNK_VARIANTS[name](h)})
    tests = [(x, h) for x in instances if x.test_patch for h in hunks(x.test_patch) if own_words(h) >= MIN_HUNK_WORDS]
    for x, h in rng.sample(tests, 120):
        out.append({"variant": "test_hunk/diff_context", "instance_id": x.instance_id, "text": h_diff(h)})
    for x in rng.sample(statements, 40):  # chat: the statement in a user turn, a hunk in an assistant turn, the id
        out.append({"variant": "chat/statement", "instance_id": x.instance_id, "messages": [
            {"role": "system", "content": "You are a helpful coding agent."},
            {"role": "user", "content": "Solve this issue:\n" + x.problem_statement},
            {"role": "assistant", "content": "Let me look at the repository first."}]})
    for x, h in rng.sample(gold, 40):
        out.append({"variant": "chat/gold_hunk", "instance_id": x.instance_id, "messages": [
            {"role": "user", "content": "Fix the failing test."},
            {"role": "assistant", "content": "I will apply this change:\n" + h_search_replace(h)}]})
    for x in rng.sample(instances, 40):
        out.append({"variant": "chat/instance_id", "instance_id": x.instance_id, "messages": [
            {"role": "user", "content": f"Task {x.instance_id}: make the tests pass."},
            {"role": "assistant", "content": "Running the test suite now."}]})
    for i, s in enumerate(out):
        s["id"] = f"dirty{i:05d}"
    return out


# ------------------------------------------------------------------------------------------------ the clean set

PROJECTS = ["inventory", "blogengine", "shopfront", "acme_portal", "weatherapp", "ledger", "booktracker", "crm",
            "pollster", "timesheets", "recipes", "fleetmgr"]
APPS = ["rest_framework", "corsheaders", "django_filters", "crispy_forms", "debug_toolbar", "storages", "celery",
        "accounts", "core", "api", "orders", "payments", "users", "catalog"]


def trap_django(rng: random.Random, i: int) -> str:
    project = rng.choice(PROJECTS) + str(i)
    quote = rng.choice(["'", '"'])
    q = lambda s: f"{quote}{s}{quote}"  # noqa: E731
    apps = ["django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
            "django.contrib.messages", "django.contrib.staticfiles"] + rng.sample(APPS, rng.randint(0, 5))
    middleware = ["django.middleware.security.SecurityMiddleware",
                  "django.contrib.sessions.middleware.SessionMiddleware", "django.middleware.common.CommonMiddleware",
                  "django.middleware.csrf.CsrfViewMiddleware",
                  "django.contrib.auth.middleware.AuthenticationMiddleware",
                  "django.contrib.messages.middleware.MessageMiddleware",
                  "django.middleware.clickjacking.XFrameOptionsMiddleware"]
    if rng.random() < 0.4:
        middleware.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")
    version = rng.choice(["3.2.9", "4.0.1", "4.1", "4.2.7", "5.0"])
    short = version[:3]
    lines = [f'"""\nDjango settings for {project} project.\n\nGenerated by \'django-admin startproject\' using '
             f'Django {version}.\n\nFor more information on this file, see\n'
             f'https://docs.djangoproject.com/en/{short}/topics/settings/\n\nFor the full list of settings and '
             f'their values, see\nhttps://docs.djangoproject.com/en/{short}/ref/settings/\n"""\n',
             "import os\nfrom pathlib import Path\n",
             "# Build paths inside the project like this: BASE_DIR / 'subdir'.",
             "BASE_DIR = Path(__file__).resolve().parent.parent\n",
             f"SECRET_KEY = os.environ.get({q('DJANGO_SECRET_KEY')}, {q('dev-%032x' % rng.getrandbits(128))})",
             f"DEBUG = {rng.choice(['True', 'False'])}",
             f"ALLOWED_HOSTS = [{q(project + '.example.com')}, {q('localhost')}]\n",
             "# Application definition\n", "INSTALLED_APPS = [", *[f"    {q(a)}," for a in apps], "]\n",
             "MIDDLEWARE = [", *[f"    {q(m)}," for m in middleware], "]\n", f"ROOT_URLCONF = {q(project + '.urls')}\n",
             "TEMPLATES = [\n    {", f"        {q('BACKEND')}: {q('django.template.backends.django.DjangoTemplates')},",
             f"        {q('DIRS')}: [BASE_DIR / {q('templates')}],", f"        {q('APP_DIRS')}: True,",
             f"        {q('OPTIONS')}: {{", f"            {q('context_processors')}: [",
             *[f"                {q(c)}," for c in ("django.template.context_processors.debug",
                                                    "django.template.context_processors.request",
                                                    "django.contrib.auth.context_processors.auth",
                                                    "django.contrib.messages.context_processors.messages")],
             "            ],\n        },\n    },\n]\n", f"WSGI_APPLICATION = {q(project + '.wsgi.application')}\n"]
    if rng.random() < 0.5:
        lines += ["DATABASES = {", f"    {q('default')}: {{", f"        {q('ENGINE')}: {q('django.db.backends.postgresql')},",
                  f"        {q('NAME')}: {q(project)},", f"        {q('USER')}: os.environ.get({q('DB_USER')}),",
                  "    }\n}\n"]
    else:
        lines += ["DATABASES = {", f"    {q('default')}: {{", f"        {q('ENGINE')}: {q('django.db.backends.sqlite3')},",
                  f"        {q('NAME')}: BASE_DIR / {q('db.sqlite3')},", "    }\n}\n"]
    lines += ["# Password validation", f"# https://docs.djangoproject.com/en/{short}/ref/settings/#auth-password-validators\n",
              "AUTH_PASSWORD_VALIDATORS = ["]
    for v in ("UserAttributeSimilarityValidator", "MinimumLengthValidator", "CommonPasswordValidator",
              "NumericPasswordValidator"):
        lines.append(f"    {{\n        {q('NAME')}: {q('django.contrib.auth.password_validation.' + v)},\n    }},")
    lines += ["]\n", f"LANGUAGE_CODE = {q(rng.choice(['en-us', 'de-de', 'fr-fr']))}",
              f"TIME_ZONE = {q(rng.choice(['UTC', 'Europe/Berlin', 'America/New_York']))}", "USE_I18N = True",
              "USE_TZ = True\n", f"STATIC_URL = {q('static/')}", f"STATIC_ROOT = BASE_DIR / {q('staticfiles')}\n",
              f"DEFAULT_AUTO_FIELD = {q('django.db.models.BigAutoField')}"]
    if rng.random() < 0.3:
        lines += ["", "LOGGING = {", f"    {q('version')}: 1,", f"    {q('handlers')}: {{{q('console')}: "
                  f"{{{q('class')}: {q('logging.StreamHandler')}}}}},", f"    {q('root')}: {{{q('handlers')}: "
                  f"[{q('console')}], {q('level')}: {q('INFO')}}},", "}"]
    return "\n".join(lines) + "\n"


EXTENSIONS = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode", "sphinx.ext.intersphinx",
              "sphinx.ext.todo", "sphinx.ext.mathjax", "sphinx.ext.autosummary", "sphinx.ext.doctest",
              "sphinx.ext.coverage", "sphinx.ext.githubpages", "myst_parser", "sphinx_copybutton", "nbsphinx"]


def trap_sphinx(rng: random.Random, i: int) -> str:
    project = rng.choice(PROJECTS) + str(i)
    author = rng.choice(["Jane Doe", "The Acme Team", "R. Developer", "ACME Corp"])
    year = rng.randint(2017, 2025)
    ext = rng.sample(EXTENSIONS, rng.randint(0, 6))
    head = ["# Configuration file for the Sphinx documentation builder.", "#"]
    if rng.random() < 0.5:
        head += ["# For the full list of built-in configuration values, see the documentation:",
                 "# https://www.sphinx-doc.org/en/master/usage/configuration.html", "",
                 "# -- Project information -----------------------------------------------------",
                 "# https://www.sphinx-doc.org/en/master/usage/configuration.html#project-information", ""]
    else:
        head += ["# This file only contains a selection of the most common options. For a full",
                 "# list see the documentation:", "# https://www.sphinx-doc.org/en/master/usage/configuration.html",
                 "", "# -- Path setup --------------------------------------------------------------", "",
                 "# If extensions (or modules to document with autodoc) are in another directory,",
                 "# add these directories to sys.path here. If the directory is relative to the",
                 "# documentation root, use os.path.abspath to make it absolute, like shown here.", "#",
                 "import os", "import sys", f"sys.path.insert(0, os.path.abspath('{rng.choice(['..', '../src', '.'])}'))",
                 "", "", "# -- Project information -----------------------------------------------------", ""]
    body = [f"project = '{project}'", f"copyright = '{year}, {author}'", f"author = '{author}'",
            f"release = '{rng.randint(0, 3)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}'", "",
            "# -- General configuration ---------------------------------------------------", "",
            "# Add any Sphinx extension module names here, as strings. They can be",
            "# extensions coming with Sphinx (named 'sphinx.ext.*') or your custom",
            "# ones.", "extensions = [", *[f"    '{e}'," for e in ext], "]", "",
            "# Add any paths that contain templates here, relative to this directory.",
            "templates_path = ['_templates']", "",
            "# List of patterns, relative to source directory, that match files and",
            "# directories to ignore when looking for source files.",
            "# This pattern also affects html_static_path and html_extra_path.",
            "exclude_patterns = ['_build', 'Thumbs.db', '.DS_Store']", "",
            "# -- Options for HTML output -------------------------------------------------", "",
            "# The theme to use for HTML and HTML Help pages.  See the documentation for",
            "# a list of builtin themes.", "#",
            f"html_theme = '{rng.choice(['alabaster', 'sphinx_rtd_theme', 'furo', 'pydata_sphinx_theme'])}'", "",
            "# Add any paths that contain custom static files (such as style sheets) here,",
            "# relative to this directory. They are copied after the builtin static files,",
            "# so a file named \"default.css\" will overwrite the builtin \"default.css\".",
            "html_static_path = ['_static']"]
    if "sphinx.ext.intersphinx" in ext:
        body += ["", "intersphinx_mapping = {'python': ('https://docs.python.org/3', None)}"]
    return "\n".join(head + body) + "\n"


def trap_pylint_header(rng: random.Random, i: int) -> str:
    org, branch = rng.choice(["PyCQA", "pylint-dev"]), rng.choice(["main", "master"])
    name = rng.choice(["NoPrintChecker", "DjangoFieldChecker", "TodoCommentChecker", "ImportOrderChecker"]) + str(i)
    msg = f"W{9000 + i % 999}"
    return (f"# Licensed under the GPL: https://www.gnu.org/licenses/old-licenses/gpl-2.0.html\n"
            f"# For details: https://github.com/{org}/pylint/blob/{branch}/LICENSE\n"
            f"# Copyright (c) https://github.com/{org}/pylint/blob/{branch}/CONTRIBUTORS.txt\n\n"
            f'"""A pylint plugin: {name}."""\n\nfrom __future__ import annotations\n\n'
            "from astroid import nodes\n\nfrom pylint.checkers import BaseChecker\n\n\n"
            f"class {name}(BaseChecker):\n    name = '{name.lower()}'\n    msgs = {{\n"
            f"        '{msg}': ('Found %s', '{name.lower()}-found', 'Used when {name} finds a problem.'),\n    }}\n\n"
            "    def visit_call(self, node: nodes.Call) -> None:\n"
            f"        if getattr(node.func, 'name', None) == '{rng.choice(['print', 'eval', 'exec', 'input'])}':\n"
            f"            self.add_message('{msg}', node=node, args=(node.func.name,))\n\n\n"
            f"def register(linter) -> None:\n    linter.register_checker({name}(linter))\n")


PKGS = ["numpy", "pandas", "scipy", "matplotlib", "xarray", "dask", "distributed", "netCDF4", "h5py", "zarr",
        "cftime", "bottleneck", "setuptools", "pip", "IPython", "sphinx", "pytest", "seaborn", "sklearn", "joblib",
        "threadpoolctl", "Cython", "pyarrow", "numba", "astropy", "sympy", "requests", "flask", "django"]


def _ver(rng) -> str:
    return f"{rng.randint(0, 4)}.{rng.randint(0, 30)}.{rng.randint(0, 12)}"


def trap_env(rng: random.Random, i: int) -> str:
    kind = i % 4
    py = f"3.{rng.randint(7, 12)}.{rng.randint(0, 15)}"
    if kind == 0:  # xarray.show_versions()
        lines = ["INSTALLED VERSIONS", "------------------", "commit: None",
                 f"python: {py} | packaged by conda-forge | (main, {rng.choice(['Jan', 'Mar', 'Oct'])} "
                 f"{rng.randint(1, 28)} 2023, 10:00:00) [GCC {rng.randint(9, 13)}.{rng.randint(1, 4)}.0]",
                 "python-bits: 64", f"OS: {rng.choice(['Linux', 'Darwin', 'Windows'])}",
                 f"OS-release: {rng.randint(4, 6)}.{rng.randint(0, 19)}.0-{rng.randint(1, 90)}-generic",
                 "machine: x86_64", "processor: x86_64", "byteorder: little", "LC_ALL: None",
                 "LANG: en_US.UTF-8", "LOCALE: ('en_US', 'UTF-8')", f"libhdf5: 1.{rng.randint(10, 14)}.{rng.randint(0, 9)}",
                 f"libnetcdf: 4.{rng.randint(6, 9)}.{rng.randint(0, 3)}", ""]
        lines += [f"{p}: {_ver(rng) if rng.random() < 0.6 else 'None'}" for p in PKGS]
    elif kind == 1:  # sklearn.show_versions()
        lines = ["System:", f"    python: {py} (main, Jun  1 2023, 12:00:00)  [GCC 11.3.0]",
                 "executable: /home/user/.venv/bin/python", f"   machine: Linux-5.15.0-{rng.randint(1, 99)}-generic-x86_64-with-glibc2.35",
                 "", "Python dependencies:"]
        lines += [f"{p:>13}: {_ver(rng)}" for p in ("sklearn", "pip", "setuptools", "numpy", "scipy", "Cython", "pandas",
                                                    "matplotlib", "joblib", "threadpoolctl")]
        lines += ["", "Built with OpenMP: True", "", "threadpoolctl info:", "       user_api: blas",
                  "   internal_api: openblas", f"    num_threads: {rng.randint(1, 64)}", "         prefix: libopenblas",
                  f"        version: 0.3.{rng.randint(10, 27)}", "threading_layer: pthreads",
                  f"   architecture: {rng.choice(['Haswell', 'SkylakeX', 'Zen'])}"]
    elif kind == 2:  # pip freeze
        lines = [f"{p}=={_ver(rng)}" for p in sorted(rng.sample(PKGS, 18))]
    else:  # conda list / pip list
        lines = ["# packages in environment at /home/user/miniconda3/envs/dev:", "#",
                 "# Name                    Version                   Build  Channel"]
        lines += [f"{p:<25} {_ver(rng):<25} py{py[0]}{py[2:4].strip('.')}h{rng.getrandbits(28):07x}_0    conda-forge"
                  for p in sorted(rng.sample(PKGS, 15))]
    return "Environment:\n\n```\n" + "\n".join(lines) + "\n```\n"


def trap_licence(rng: random.Random, i: int) -> str:
    from datakit.decontam import boilerplate

    holder = rng.choice(["Jane Doe", "Acme Inc.", "The Widget Authors", "Example Org"])
    year = str(rng.randint(2005, 2025))
    kind = i % 3
    text = (boilerplate._MIT if kind == 0 else boilerplate._BSD3 if kind == 1 else boilerplate._APACHE_HEADER)
    return text.format(year=year, holder=holder) + f"\n\ndef main():\n    return {i}\n"


def trap_issue_form(rng: random.Random, i: int) -> str:
    lib = rng.choice(["xarray", "matplotlib", "sphinx", "scikit-learn"])
    return (f"### Describe the bug\n\nCalling `{lib}.thing{i}()` with `n={rng.randint(1, 999)}` raises a "
            f"`{rng.choice(['TypeError', 'ValueError', 'KeyError'])}` since the last release.\n\n"
            "### How to Reproduce\n\n```python\nimport " + lib.replace("scikit-learn", "sklearn") + "\n"
            f"x = make_case({i})\n```\n\n### Expected behavior\n\nNo error.\n\n### OS\n\nLinux\n\n"
            f"### Python version\n\n3.{rng.randint(8, 12)}\n\n### Additional context\n\n_No response_\n\n"
            + trap_env(rng, i))


TRAPS = {"django_settings": trap_django, "sphinx_conf": trap_sphinx, "pylint_header": trap_pylint_header,
         "env_report": trap_env, "licence": trap_licence, "issue_form": trap_issue_form}


def held_out_code(max_docs: int, size: int = 4000) -> list[str]:
    """Few-KB pieces of site-packages files that the background never read (held out), Verified projects left out."""
    import importlib.metadata as md

    from datakit.decontam.background import VERIFIED_DISTRIBUTIONS, _norm_dist

    files = []
    for dist in md.distributions():
        name = _norm_dist(dist.metadata["Name"] or "")
        if name in VERIFIED_DISTRIBUTIONS or name == "datakit":
            continue
        for f in dist.files or ():
            rel = str(f)
            if rel.endswith(".py") and held_out(rel) and not excluded_path(tuple(f.parts)):
                files.append((rel, Path(dist.locate_file(f))))
    files.sort()
    random.Random(4).shuffle(files)
    docs = []
    for _, p in files:
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        docs += [text[i:i + size] for i in range(0, min(len(text), 4 * size), size) if words(text[i:i + size]) > 50]
        if len(docs) >= max_docs:
            break
    return docs[:max_docs]


def generated_issues(n: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    libs = {"django": ["QuerySet", "ForeignKey", "migrations", "the admin", "select_related"],
            "sympy": ["simplify", "Matrix.det", "solveset", "lambdify"],
            "matplotlib": ["colorbar", "imshow", "tight_layout", "the legend"],
            "pytest": ["fixtures", "parametrize", "capsys", "tmp_path"],
            "xarray": ["Dataset.merge", "DataArray.sel", "open_dataset", "groupby"]}
    out = []
    for i in range(n):
        lib = rng.choice(sorted(libs))
        a, b = rng.sample(libs[lib], 2)
        out.append(f"{lib}: {a} misbehaves with {b} after upgrading to {_ver(rng)}\n\nWhen I combine {a} with {b} "
                   f"in my project the call raises an error #{rng.randint(1, 99999)}. It worked before; I think "
                   f"the change to {b} broke it.\n\n```python\nobj = make_thing(size={rng.randint(1, 999)}, "
                   f"name='item{i}')\nprint(obj.run(mode={rng.randint(0, 9)}))\n```\n")
    return out


def clean(n_code: int = 3600, n_issues: int = 800, n_per_trap: int = 110) -> list[dict]:
    rng = random.Random(20)
    out = [{"variant": "code/held_out_site_packages", "text": t} for t in held_out_code(n_code)]
    out += [{"variant": "issue/generated", "text": t} for t in generated_issues(n_issues)]
    for family, fn in TRAPS.items():
        out += [{"variant": f"boilerplate/{family}", "text": fn(rng, i)} for i in range(n_per_trap)]
    for i, s in enumerate(out):
        s["id"] = f"clean{i:05d}"
    return out


# ------------------------------------------------------------------------------------------------------- tests

@pytest.fixture(scope="module")
def instances() -> list[Instance]:
    if why := shared_missing("swebench/verified.jsonl"):
        pytest.skip(why)
    return load_reference("files", SWEBENCH)


def _rates(samples: list[dict], caught: set[str]) -> dict[str, tuple[int, int]]:
    by: dict[str, list[int]] = {}
    for s in samples:
        c = by.setdefault(s["variant"], [0, 0])
        c[0] += s["id"] in caught
        c[1] += 1
    return {k: (a, b) for k, (a, b) in sorted(by.items())}


def repository_cases(instances: list[Instance]) -> tuple[list[dict], list[dict]]:
    """(contaminated, clean) repository-level samples, PullRecord-style metadata included (written with an
    inferred schema, one file per shape): names, former names, forks, forks of forks, commits; look-alikes."""
    base = instances[0].base_commit
    dirty = [
        {"variant": "repo/name", "meta": {"repo": "Django/Django"}},
        {"variant": "repo/former_name", "meta": {"repo": "kennethreitz/requests"}},
        {"variant": "repo/fork", "meta": {"repo": "alice/linter", "fork_of": "PyCQA/pylint"}},
        {"variant": "repo/fork_of_fork", "meta": {"repo": "bob/linter", "fork_of": "alice/linter",
                                                  "repo_meta": {"fork": True, "parent": "alice/linter",
                                                                "source": "pylint-dev/pylint"}}},
        {"variant": "repo/fork_of_fork", "meta": {"repo": "carol/sym", "fork_of": "bob/sym",
                                                  "repo_meta": {"fork": True, "parent": "bob/sym",
                                                                "source": "sympy/sympy"}}},
        {"variant": "repo/commit_base", "meta": {"repo": "acme/x", "base_sha": base}},
    ]
    clean_ = [
        {"variant": "repo/look_alike", "meta": {"repo": "someone/django-fork", "fork_of": "someone/django-base",
                                                "repo_meta": {"fork": True, "parent": "someone/django-base",
                                                              "source": "someone/django-base"}}},
        {"variant": "repo/look_alike", "meta": {"repo": "psf/requests-html"}},
        {"variant": "repo/look_alike", "meta": {"repo": "pytest-dev/pytest-xdist", "fork_of": None}},
    ]
    for i, s in enumerate(dirty):
        s["id"] = f"repo_dirty{i}"
    for i, s in enumerate(clean_):
        s["id"] = f"repo_clean{i}"
    return dirty, clean_


def write_planted(folder: Path, samples: list[dict], extra: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datakit.io.schemas import arrow_schema, conform

    folder.mkdir(parents=True, exist_ok=True)
    rows = [conform({"kind": "edit", "role": ("testwriter", "bugfixer")[i % 2], "text": s.get("text") or "",
                     "messages": s.get("messages"), "meta": {"repo": f"planted/repo{i % 97}"}, "source": None,
                     "id": s["id"]}, "sample") for i, s in enumerate(samples)]
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema("sample")), folder / "00000.parquet")
    for i, s in enumerate(extra):  # PullRecord-style metadata: beyond the sample schema, read defensively
        row = {"id": s["id"], "kind": "edit", "role": "bugfixer", "text": "x = 1\n", "meta": s["meta"]}
        pq.write_table(pa.Table.from_pylist([row]), folder / f"{i + 1:05d}.parquet")
    return folder


@needs_data
def test_planted_set_through_the_cli(instances, tmp_path, capsys):
    """The whole planted set through `datakit decontam` as a new user runs it: 100 % recall on every variant,
    FPR < 0.1 % on ≥ 5,000 clean samples (≥ 600 boilerplate traps), every removal in the audit."""
    from datakit.cli import main

    dirty, clean_ = contaminated(instances), clean()
    rdirty, rclean = repository_cases(instances)
    inp = write_planted(tmp_path / "in", dirty + clean_, rdirty + rclean)
    assert main(["decontam", "--input", str(inp), "--output", str(tmp_path / "o"), "--tasks", "1", "--workers",
                 "1", "--quiet"]) == 0
    out = tmp_path / "o" / "decontam"
    matches = {r["sample_id"]: r for r in pl.read_parquet(out / "matches" / "*.parquet").to_dicts()}
    caught = set(matches)
    rec = _rates(dirty + rdirty, caught)
    fp = _rates(clean_ + rclean, caught)
    n_clean = sum(b for _, b in fp.values())
    n_fp = sum(a for a, _ in fp.values())
    n_traps = sum(b for k, (_, b) in fp.items() if k.startswith("boilerplate/"))
    lines = ["", "[planted decontamination set through the CLI]", "  recall per variant:"]
    lines += [f"    {k:40s} {a:5d}/{b:5d} = {100 * a / b:6.2f}%" for k, (a, b) in rec.items()]
    lines += ["  false positives per family:"]
    lines += [f"    {k:40s} {a:5d}/{b:5d} = {100 * a / b:6.3f}%" for k, (a, b) in fp.items()]
    total_dirty = sum(b for _, b in rec.values())
    lines += [f"  recall {sum(a for a, _ in rec.values())}/{total_dirty}; FPR {n_fp}/{n_clean} = "
              f"{100 * n_fp / n_clean:.3f}% ({n_traps} boilerplate traps)"]
    with capsys.disabled():
        print("\n".join(lines))
    missed = [s["id"] for s in dirty + rdirty if s["id"] not in caught]
    assert not missed, [(s["variant"], s.get("instance_id")) for s in dirty + rdirty if s["id"] in missed[:10]]
    assert n_clean >= 5000 and n_traps >= 600
    assert n_fp / n_clean < 0.001, [(s["variant"], matches[s["id"]]) for s in clean_ if s["id"] in caught][:5]
    rules = {s["variant"]: matches[s["id"]]["rule"] for s in rdirty}
    assert rules["repo/fork_of_fork"] == "repo_fork" and rules["repo/former_name"] == "repo_renamed"
    assert {matches[s["id"]]["rule"] for s in dirty if s["variant"] == "chat/instance_id"} == {"text_instance_id"}
    # the audit lists every removal and states the decision rule
    assert main(["audit", str(out)]) == 0
    md = (out / "audit" / "audit.md").read_text(encoding="utf-8")
    assert all(f"| {sid.replace('_', chr(92) + '_')} |" in md for sid in list(caught)[:200])
    assert "13-grams &gt;= 0.5 OR matched distinct 13-grams &gt;= 6" in md  # (markdown cells are HTML-escaped)
    assert (out / "audit" / "audit_decision.png").is_file()


@needs_data
def test_batch_scan_decides_exactly_like_content_matches(instances):
    """The stage's batch path (one buffer for many samples) gives the per-text verdict for every sample,
    instance ids included, across chunk boundaries (small chunks forced), with and without the Arrow plain mask,
    and the per-text strongest match (span included) of every flagged plain text."""
    import pyarrow as pa

    import datakit.decontam.content as content
    from datakit.decontam.index import default_index
    from datakit.decontam.normalize import is_plain

    index = default_index()
    rng = random.Random(3)
    samples = rng.sample(contaminated(instances), 300) + rng.sample(clean(n_code=400, n_issues=100, n_per_trap=20),
                                                                    400)
    texts = [s.get("text") or "\n".join(m["content"] for m in s["messages"]) for s in samples]
    texts += ["a\\_b", "x\x00y", "&amp;", "&notanentity;", "&#x27;", "&#xZZ;", "Ä", "&" + "a" * 40 + ";"]
    texts += ["", "x", "django__django-11099", "see:astropy__astropy-12907.", "__init__-1 a__b-2"]
    per_text = [bool(content.content_matches(t, index)) for t in texts]
    plain = content.plain_mask(pa.array(texts))  # the step's Arrow pass = normalize.is_plain, text by text
    assert plain.tolist() == [is_plain(t) for t in texts] and 0 < plain.sum() < len(texts)
    old = content.CHUNK_BYTES, content.KERNEL_CHUNK_BYTES
    try:
        for chunk in (old, (50_000, 50_000)):
            content.CHUNK_BYTES, content.KERNEL_CHUNK_BYTES = chunk
            flags, named = content.batch_scan(texts, index)
            assert flags.tolist() == per_text
            flags, _, strongest = content.batch_matches(texts, index, plain=plain)
            assert flags.tolist() == per_text
            # the step's span of a flagged plain text, without a second pass: the per-text path's strongest match
            assert len(strongest) > 100 and set(strongest) == {k for k, f in enumerate(per_text) if f and plain[k]}
            for k, m in strongest.items():
                assert m == max(content.content_matches(texts[k], index), key=lambda x: (x.score, x.matched_ngrams))
            assert named[len(texts) - 3] == "django__django-11099" and named[len(texts) - 2] == "astropy__astropy-12907"
            assert len(texts) - 1 not in named and len(texts) - 5 not in named
    finally:
        content.CHUNK_BYTES, content.KERNEL_CHUNK_BYTES = old
