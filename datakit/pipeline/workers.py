"""What every process pays before its first record, paid once.

datatrove's local executor runs a stage's tasks in a `multiprocess` pool of forkserver children: the forkserver is a
fresh interpreter, and each child, forked from it, imports what unpickling its task needs (datatrove's executor with
`datatrove.io` → fsspec + huggingface_hub, pyarrow, the step modules: ~1 CPU s) before its first record. Started
early with those modules preloaded, the forkserver imports them once, on another core while this process does its
own start-up, and every child forks with them already imported. Forkserver, not fork: the children inherit no
threads' locks (a progress bar is drawing when the pool starts), as datatrove intends.

datatrove's `PipelineStep.__new__` checks a step's declared dependencies by scanning the metadata of every
installed distribution (0.1–0.4 s per process, children included); `fast_dependency_checks` looks each one up by
name instead (the same answer).
"""

from __future__ import annotations

import functools
import sys

# what unpickling any stage's task imports: the executor (datatrove's, with datatrove.io and fsspec), Parquet records
# (pyarrow), the step base and the log set-up. A stage's own step modules are added when the stage declares them.
PRELOAD = ("datakit", "datakit.pipeline.local_executor", "datakit.io.records", "datakit.pipeline.step")


def fast_dependency_checks() -> None:
    """datatrove's distribution check, by one lookup per name instead of a scan of all (`found` when a
    distribution of that name is installed, else None, as datatrove returns)."""
    import importlib.metadata

    from datatrove.utils import _import_utils

    if getattr(_import_utils._is_distribution_available, "_datakit", False):
        return

    @functools.lru_cache
    def available(distribution_name: str):
        try:
            importlib.metadata.distribution(distribution_name)
        except (importlib.metadata.PackageNotFoundError, ValueError):
            return None
        return True

    available._datakit = True
    _import_utils._is_distribution_available = available


def start_forkserver(modules: tuple[str, ...] = ()) -> bool:
    """Start datatrove's forkserver now, preloading PRELOAD and `modules`, so it imports them while this process
    does its own start-up. Does nothing when one is already running (an earlier stage started it); False then."""
    from multiprocess import forkserver

    server = forkserver._forkserver
    if server._forkserver_pid is not None:
        return False
    # '__main__' first, as multiprocess does by default: a script's own steps stay importable in the children
    server.set_forkserver_preload(["__main__", *dict.fromkeys((*PRELOAD, *modules))])
    server.ensure_running()
    return True


def imported(name: str) -> bool:
    """Whether this process has imported `name` (in a forkserver child: before its task arrived)."""
    return name in sys.modules
