"""Start-up: `datakit --help` and building the CLI import nothing heavy, and datatrove's workers fork from a
forkserver that has imported their modules already (each would pay ~1 CPU s of imports otherwise)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

HEAVY = ("datatrove.io", "fsspec", "huggingface_hub", "requests", "pandas", "datasets", "torch", "pyarrow")


def _imported_by(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport json, sys\n"
                          f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return json.loads(out.splitlines()[-1])


def test_cli_and_runner_import_nothing_heavy():
    assert _imported_by("import datakit.cli\ndatakit.cli.build_parser()") == []
    # `datakit run` and every stage command: the heavy modules come with the stage's steps and executor only
    assert _imported_by("import datakit.pipeline.runner") == []


def test_cli_keeps_openblas_to_one_thread_unless_set():
    """The datakit command sets OPENBLAS_NUM_THREADS=1 before numpy is imported (its thread pool only costs CPU
    here), and keeps the user's own value."""
    import os

    code = "import datakit.cli, numpy, os; print(os.environ['OPENBLAS_NUM_THREADS'])"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    for value, want in ((None, "1"), ("3", "3")):
        run_env = env if value is None else dict(env, OPENBLAS_NUM_THREADS=value)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                             env=run_env)
        assert out.stdout.split() == [want], out.stderr


def test_one_worker_runs_without_multiprocess_or_dill(tmp_path):
    """With one worker the local executor starts no pool: multiprocess (loaded lazily, datakit/_lazy_imports.py) and
    dill never run, nor datatrove's Slurm/Ray/jobs executors; with two, the pool's children run tasks."""
    code = f"""
import sys
from datakit.pipeline.local_executor import LocalExecutor
def step(data, rank, world_size):
    yield from ()
LocalExecutor([step], tasks=2, workers=1, logging_dir={str(tmp_path / "one")!r}).run()
print(sorted(m for m in ("dill", "multiprocess.context", "datatrove.executor.slurm", "datatrove.executor.ray",
                         "datatrove.executor.jobs") if m in sys.modules))
from datatrove.executor import LocalPipelineExecutor, SlurmPipelineExecutor
assert LocalPipelineExecutor.__module__ == "datatrove.executor.local", LocalPipelineExecutor
assert SlurmPipelineExecutor.__module__ == "datatrove.executor.slurm", SlurmPipelineExecutor
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["[]"], out.stderr
    assert sorted(p.name for p in (tmp_path / "one" / "completions").iterdir()) == ["00000", "00001"]


def test_forkserver_children_start_with_the_workers_modules_imported():
    code = """
import multiprocess
from datakit.pipeline import workers
assert workers.start_forkserver(("json",))
with multiprocess.get_context("forkserver").Pool(1) as pool:
    print(pool.apply(workers.imported, ("datatrove.io",)), pool.apply(workers.imported, ("datatrove.executor.local",)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["True", "True"], out.stderr


def test_stage_types_name_importable_worker_modules():
    from datakit.pipeline.stages import STAGES
    from datakit.pipeline.workers import PRELOAD

    named = [m for st in STAGES.values() for m in st.worker_modules] + list(PRELOAD)
    assert "datakit.samples.steps" in named
    assert [m for m in named if importlib.util.find_spec(m) is None] == []


def test_datatrove_io_does_not_import_huggingface_hubs_file_system():
    """datakit defers datatrove.io's `from huggingface_hub import HfFileSystem` (datakit/_hub_deferral.py); the
    stand-in's isinstance must still be True for real HfFileSystem instances and their subclasses only."""
    code = """
import sys
import datakit.io.records, datatrove.executor.local, datatrove.io as dio
assert "huggingface_hub.hf_file_system" not in sys.modules, "datatrove.io imported HfFileSystem"
from fsspec.implementations.local import LocalFileSystem
assert not isinstance(LocalFileSystem(), dio.HfFileSystem)
assert "huggingface_hub.hf_file_system" not in sys.modules, "a non-hub isinstance imported it"
from huggingface_hub import HfFileSystem
assert HfFileSystem.__module__ == "huggingface_hub.hf_file_system", HfFileSystem  # the real class elsewhere
class Sub(HfFileSystem):
    pass
assert isinstance(HfFileSystem(), dio.HfFileSystem) and isinstance(Sub(), dio.HfFileSystem)
assert issubclass(Sub, dio.HfFileSystem) and not issubclass(LocalFileSystem, dio.HfFileSystem)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["ok"], out.stderr


def test_datatrove_readers_and_writers_packages_load_their_classes_on_use():
    """Importing datatrove's Parquet reader/writer does not run the Hub reader/writer modules (huggingface_hub's
    commit API); every name of those packages still resolves to the class of its submodule."""
    code = """
import sys
import datakit.io.records
assert "datatrove.pipeline.writers.huggingface" not in sys.modules
assert "datatrove.pipeline.readers.huggingface" not in sys.modules
import datatrove.pipeline.readers as r, datatrove.pipeline.writers as w
from datatrove.pipeline.readers import ParquetReader, JsonlReader, HuggingFaceDatasetReader
from datatrove.pipeline.writers import JsonlWriter, ParquetWriter, HuggingFaceDatasetWriter
assert ParquetReader.__module__ == "datatrove.pipeline.readers.parquet"
assert HuggingFaceDatasetWriter.__module__ == "datatrove.pipeline.writers.huggingface"
assert sorted(w.__all__) == ["HuggingFaceBucketWriter", "HuggingFaceDatasetWriter", "JsonlWriter", "ParquetWriter"]
try:
    r.NoSuchReader
except AttributeError:
    print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["ok"], out.stderr
