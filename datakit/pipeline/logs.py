"""Quieter task logs: datatrove logs every task at INFO to stderr, which buries the progress bar and summary.

Full DEBUG logs still go to `logging_dir/logs/task_*.log`; stderr gets warnings and errors only, unless
DATAKIT_VERBOSE=1. Patched where the executors look the function up, in the parent and in every worker (the
steps import this module, so a forkserver child applies it when it unpickles the pipeline).
"""

from __future__ import annotations

import os
import sys

import datatrove.executor.base as executor_base
from datatrove.utils import logging as dt_logging
from loguru import logger

def _quiet_task_logger(logging_dir, rank, local_rank=0, node_rank=-1):
    """datatrove's add_task_logger with stderr at WARNING (the task log file keeps everything)."""
    logger.remove()
    logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
    prefix = f"[NODE {node_rank}] " if node_rank != -1 else ""
    logger.add(logfile, level="DEBUG", format=prefix + "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{function}:{line} - {message}")
    logger.add(sys.stderr, level="WARNING")
    logger.info(f"Launching pipeline for {rank=}")
    return logfile


def _quiet_default_logger() -> None:
    logger.remove()
    logger.add(sys.stderr, level="WARNING")


def install() -> None:
    if os.environ.get("DATAKIT_VERBOSE") == "1":
        return
    executor_base.add_task_logger = _quiet_task_logger
    dt_logging.setup_default_logger = _quiet_default_logger  # called when a task's logger is closed
    _quiet_default_logger()
