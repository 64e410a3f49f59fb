"""`datakit samples` over N tasks: the same samples whatever the task count, and the same bytes per task whichever
process ran it (the driver itself or a pool child: datakit/pipeline/local_executor.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq


def _samples(demo_output: Path, out: Path, tasks: int, workers: int) -> Path:
    proc = subprocess.run([sys.executable, "-m", "datakit.cli", "samples", "--input", str(demo_output / "pulls"),
                           "--mirrors", str(demo_output / "mirrors"), "--output", str(out), "--tasks", str(tasks),
                           "--workers", str(workers), "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out / "samples"


def _rows(folder: Path) -> list[tuple[str, str]]:
    return sorted((r["id"], r["text"]) for f in sorted(folder.glob("*.parquet"))
                  for r in pq.read_table(f, columns=["id", "text"]).to_pylist())


def test_task_count_and_worker_count_change_no_sample(demo_output, tmp_path):
    one = _samples(demo_output, tmp_path / "one", 1, 1)
    serial = _samples(demo_output, tmp_path / "serial", 3, 1)  # every task in the driver, one after the other
    pooled = _samples(demo_output, tmp_path / "pooled", 3, 2)  # the driver and one child share the 3 tasks
    files = sorted(p.name for p in serial.glob("*.parquet"))
    assert files == ["00000.parquet", "00001.parquet", "00002.parquet"]
    assert sorted(p.name for p in pooled.glob("*.parquet")) == files
    for name in files:  # the rows of 28 PRs in 2 files, split 9 / 9 / 10 across the file boundary
        assert (serial / name).read_bytes() == (pooled / name).read_bytes(), name
    assert _rows(one) == _rows(pooled) and len(_rows(one)) > 0
    units = [json.loads((f / "stats.json").read_text())["units"] for f in (one, serial, pooled)]
    assert units[0] == units[1] == units[2]
    assert len(list((pooled.parent / "samples" / ".datakit" / "logs" / "completions").iterdir())) == 3


def test_a_failing_task_fails_the_run_and_the_others_complete(demo_output, tmp_path):
    """The last rows' file is corrupt: its task fails the run, named in the error; the other tasks finish."""
    pulls = tmp_path / "pulls"
    pulls.mkdir()
    for f in sorted((demo_output / "pulls").glob("*.parquet")):
        (pulls / f.name).write_bytes(f.read_bytes())
    last = sorted(pulls.glob("*.parquet"))[-1]
    data = bytearray(last.read_bytes())
    data[8:200] = bytes(192)  # inside the first column chunk's pages: the page checksums catch it on reading
    last.write_bytes(bytes(data))
    proc = subprocess.run([sys.executable, "-m", "datakit.cli", "samples", "--input", str(pulls), "--mirrors",
                           str(demo_output / "mirrors"), "--output", str(tmp_path / "o"), "--tasks", "3",
                           "--workers", "2", "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and last.name in proc.stderr, proc.stderr
    done = {p.name for p in (tmp_path / "o" / "samples" / ".datakit" / "logs" / "completions").iterdir()}
    assert "00000" in done and "00002" not in done  # rows 0-8 are in the good file; rows 18-27 in the bad one
