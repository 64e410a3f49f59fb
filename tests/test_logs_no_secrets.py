"""Task logs never print local variables' values in a traceback (loguru's diagnose), so a token held in a local
cannot reach a log file or stderr."""

from __future__ import annotations

from datatrove.io import get_datafolder
from loguru import logger

from datakit.pipeline import logs


def test_exception_logs_show_no_local_values(tmp_path, capsys):
    logs.install()
    folder = get_datafolder(str(tmp_path))
    logfile = logs._quiet_task_logger(folder, 0)
    headers = {"Authorization": "token ghp_" + "x" * 36}  # a local the failing line uses
    try:
        headers["boom"]
    except KeyError:
        logger.exception("task failed")
    logfile.close()
    logger.remove()
    log, err = (tmp_path / "logs" / "task_00000.log").read_text(), capsys.readouterr().err
    assert "task failed" in log and "KeyError: 'boom'" in log  # the file keeps the traceback
    assert err.strip() == "ERROR: task failed"  # stderr: one line, no traceback
    assert "ghp_" not in log + err
