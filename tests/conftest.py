"""Shared fixtures. `demo_output`: the demo recipe run once per test session (read-only: a test that changes or
reruns an output runs its own copy)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def demo_output(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo-session") / "out"
    proc = subprocess.run([sys.executable, "-m", "datakit.cli", "run", str(ROOT / "recipes" / "demo.yaml"),
                           "--output", str(out), "--quiet"], capture_output=True, text=True, cwd=out.parent,
                          env={**os.environ, "COLUMNS": "200"}, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return out
