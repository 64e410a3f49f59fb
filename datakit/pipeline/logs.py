"""Quieter task logs: datatrove logs every task at INFO to stderr, which buries the progress bar and summary.

Full DEBUG logs still go to `logging_dir/logs/task_*.log`; stderr gets warnings and errors only, unless
DATAKIT_VERBOSE=1 (INFO). Tracebacks never show local variables' values (loguru's `diagnose`, on by default,
would print them, and a local can hold a GitHub token). Patched in `datatrove.utils.logging`, before any executor
module binds the function by name (and in those already imported), in the parent and in every worker (the steps
import this module, so a forkserver child applies it when it unpickles the pipeline). Cheap to import: not
`datatrove.executor`, whose `datatrove.io` pulls in fsspec and huggingface_hub (~0.5 s) that `datakit --help` and
the in-process commands never need.
"""

from __future__ import annotations

import functools
import os
import re
import sys

from datatrove.utils import logging as dt_logging
from loguru import logger

_STDERR_LEVEL = "INFO" if os.environ.get("DATAKIT_VERBOSE") == "1" else "WARNING"
_SAFE = {"diagnose": False, "backtrace": False}  # no variable values in tracebacks: secrets stay out of logs
# GitHub's token formats (classic, OAuth, app, refresh, fine-grained)
_TOKEN = re.compile(r"\b(?:gh[opsur]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})")


def redact(text: str) -> str:
    """`text` with GitHub tokens masked: token-shaped strings and the values of $GITHUB_TOKENS, whatever their
    shape (a message can quote a header or a URL that holds one)."""
    text = _TOKEN.sub("<token>", text)
    for token in os.environ.get("GITHUB_TOKENS", "").split(","):
        if len(token.strip()) >= 8:
            text = text.replace(token.strip(), "<token>")
    return text


def _redact_record(record) -> None:
    record["message"] = redact(record["message"])


def _stderr_format(record) -> str:
    """One line per message on stderr; the traceback goes to the task's log file (and to stderr when verbose)."""
    tail = "\n{exception}" if _STDERR_LEVEL == "INFO" else "\n"
    return "{level}: {message}" + tail


def _quiet_task_logger(logging_dir, rank, local_rank=0, node_rank=-1):
    """datatrove's add_task_logger with stderr at WARNING (the task log file keeps everything)."""
    logger.remove()
    logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
    prefix = f"[NODE {node_rank}] " if node_rank != -1 else ""
    logger.add(logfile, level="DEBUG", format=prefix + "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{function}:{line} - {message}",
               **_SAFE)
    logger.add(sys.stderr, level=_STDERR_LEVEL, format=_stderr_format, **_SAFE)
    logger.info(f"Launching pipeline for {rank=}")
    return logfile


def _quiet_default_logger() -> None:
    logger.remove()
    logger.add(sys.stderr, level=_STDERR_LEVEL, format=_stderr_format, **_SAFE)


# the executor modules that bind add_task_logger by name when imported
_EXECUTOR_MODULES = ("datatrove.executor.base", "datatrove.executor.ray", "datatrove.executor.jobs")


def _cache_lib_dirs() -> None:
    """loguru's every `logger.add` lists the library folders of every sysconfig scheme (~6 ms; a run adds 3 handlers
    per task); they change only with sys.path, so cache them by it. A loguru without this method is left as is."""
    from loguru._better_exceptions import ExceptionFormatter

    original = ExceptionFormatter.__dict__.get("_get_lib_dirs")
    if not isinstance(original, staticmethod) or getattr(original.__func__, "_datakit_cached", False):
        return
    by_path = functools.lru_cache(maxsize=8)(lambda path: tuple(original.__func__()))

    def lib_dirs():
        return list(by_path(tuple(sys.path)))

    lib_dirs._datakit_cached = True
    ExceptionFormatter._get_lib_dirs = staticmethod(lib_dirs)


def install() -> None:
    logger.configure(patcher=_redact_record)
    _cache_lib_dirs()
    dt_logging.add_task_logger = _quiet_task_logger  # executor modules imported from now on bind this one
    for name in _EXECUTOR_MODULES:  # and those imported before
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "add_task_logger"):
            module.add_task_logger = _quiet_task_logger
    dt_logging.setup_default_logger = _quiet_default_logger  # called when a task's logger is closed
    _quiet_default_logger()
