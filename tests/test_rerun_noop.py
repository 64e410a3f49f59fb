"""A rerun that changes nothing rewrites nothing: stages chained by hand or by a recipe are not redone, and no
file changes its bytes or its mtime (issue 9 §5: input fingerprints by content, never by mtime)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from datakit.demo.build_repo import build_demo_repo

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "datakit.cli", *args, "--quiet"], capture_output=True, text=True,
                          cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr + proc.stdout


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _changed(before: dict, after: dict) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def test_hand_made_chain_rerun_rewrites_nothing(tmp_path):
    repo = build_demo_repo(tmp_path / "repo")
    repos = tmp_path / "repos.txt"
    repos.write_text(f"acme/widgets {repo}\n")
    out, mirrors = tmp_path / "out", tmp_path / "mirrors"
    chain = [
        ("sources", "--repos-file", str(repos), "--mirrors", str(mirrors), "--output", str(out / "s")),
        ("samples", "--input", str(out / "s" / "pulls"), "--mirrors", str(mirrors), "--output", str(out / "m")),
        ("decontam", "--input", str(out / "m" / "samples"), "--mirrors", str(mirrors), "--output", str(out / "d")),
    ]
    for args in chain:
        _cli(*args, cwd=tmp_path)
    before = _snapshot(out)
    assert any(k.endswith(".parquet") for k in before)
    for args in chain:  # sources fetches its (unchanged) mirror again; nothing downstream may notice
        _cli(*args, cwd=tmp_path)
    assert _changed(before, _snapshot(out)) == []


# the recipe case (the demo run twice, every file but the mirrors unchanged, mtimes included) is
# tests/test_recipes.py::test_rerun_does_no_work_and_changes_no_byte
