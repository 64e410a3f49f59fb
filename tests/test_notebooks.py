"""Every notebook in notebooks/ runs against the demo's output (the `demo_output` fixture, through the environment
variable its parameters cell reads), so a change that breaks one fails here instead of rotting it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
# notebook → (the variable its parameters cell reads, the folder under the run it is given, text its outputs show)
RUNS = {
    "explore_samples.ipynb": ("DATAKIT_RUN_DIR", ".", ["bugfixer", "testwriter", "&lt;&lt;&lt;&lt;&lt;&lt;&lt; SEARCH", "@@ "]),
    "corpus_stats.ipynb": ("DATAKIT_RUN_DIR", ".", ["Tokens by source", "repo_renamed", "kennethreitz/requests"]),
    "decontamination_audit.ipynb": ("DATAKIT_DECONTAM_DIR", "decontam", ["repo_renamed", "kennethreitz/requests"]),
}


def test_every_notebook_is_run_here():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(RUNS)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_notebook_runs_on_the_demo_output(name, demo_output, tmp_path, monkeypatch):
    import nbclient  # in the test extras: a missing install fails here, it does not skip
    import nbformat

    variable, folder, expected = RUNS[name]
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks with outputs cleared"
    assert "parameters" in code[0].metadata.get("tags", []) and f'os.environ.get("{variable}"' in code[0].source
    monkeypatch.setenv(variable, str(demo_output / folder))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # `datasets` caches here, not in the home folder
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # the kernel's working folder is tmp_path: a notebook that writes beside itself writes there
    before = sorted((str(p), p.stat().st_mtime_ns) for p in demo_output.rglob("*"))
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = "".join(json.dumps(o.get("data", {})) + o.get("text", "") for o in outputs)
    missing = [e for e in expected if e not in shown]
    assert not missing, f"{name}: its outputs do not show {missing}"
    assert sorted((str(p), p.stat().st_mtime_ns) for p in demo_output.rglob("*")) == before  # nothing written there
