"""Shared fixtures. `demo_output`: the demo recipe run once per test session, shared by the pytest-xdist workers
(read-only: a test that changes or reruns an output runs its own copy)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"  # reference data beside the repository (README.md, "Reference data")
# how to get each part of it, for the skip reason of a test that needs a file of it
SHARED_SOURCES = {
    "swebench/": "SWE-bench Verified from the Hugging Face dataset princeton-nlp/SWE-bench_Verified",
    "qwen2.5/": "the tokenizer files of the Hugging Face model Qwen/Qwen2.5-72B (vocab.json, merges.txt, "
                "tokenizer_config.json's chat_template)",
}


def shared_missing(*files: str) -> str | None:
    """The skip reason of a test that needs these files of ../shared/data (which are missing, and how to get them);
    None when they are all there."""
    missing = [f for f in files if not (SHARED_DATA / f).is_file()]
    if not missing:
        return None
    how = "; ".join(dict.fromkeys(h for f in missing for p, h in SHARED_SOURCES.items() if f.startswith(p)))
    names = ", ".join(f"../shared/data/{f}" for f in missing)
    return f"needs {names} (not in {SHARED_DATA}); get {how}: see README.md, 'Reference data (../shared)'"


def requires_shared(*files: str) -> pytest.MarkDecorator:
    """Skip unless these files of ../shared/data exist, e.g. `@requires_shared("swebench/verified.jsonl")`."""
    reason = shared_missing(*files)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


@pytest.fixture(scope="session")
def demo_output(tmp_path_factory) -> Iterator[Path]:
    # Under xdist every worker has its own basetemp below one shared root: the first worker to get here runs the
    # demo there, the others wait on the lock and reuse it (one demo per session, not one per worker).
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    root = tmp_path_factory.getbasetemp().parent if worker else tmp_path_factory.getbasetemp()
    out = root / "demo-session" / "out"
    with FileLock(str(root / "demo-session.lock")):
        if not (out.parent / "done").is_file():
            _run_demo(out)
            (out.parent / "done").write_text("ok\n")
    before = _listing(out)
    yield out
    # read-only means read-only: tests on the other worker compare these files while this one runs
    changed = sorted(set(before) ^ set(_listing(out)))
    assert not changed, f"a test wrote into demo_output (copy it to tmp_path first): {changed[:5]}"


def _listing(folder: Path) -> list[tuple[str, int, int]]:
    return [(str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()]


def _run_demo(out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "datakit.cli", "run", str(ROOT / "recipes" / "demo.yaml"),
                           "--output", str(out), "--quiet"], capture_output=True, text=True, cwd=out.parent,
                          env={**os.environ, "COLUMNS": "200"}, timeout=900)
    assert proc.returncode == 0, proc.stderr
