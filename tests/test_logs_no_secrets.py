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


def test_tokens_in_messages_are_masked(tmp_path, capsys, monkeypatch):
    """A message that quotes a token (a header, a URL, a token of any shape from $GITHUB_TOKENS) is masked on
    stderr, in the task log and in the CLI's one-line error."""
    odd = "not-a-ghp-shaped-secret-42"
    monkeypatch.setenv("GITHUB_TOKENS", f"{odd},ghp_{'y' * 36}")
    logs.install()
    folder = get_datafolder(str(tmp_path))
    logfile = logs._quiet_task_logger(folder, 0)
    logger.warning(f"GET https://x/?access_token=ghp_{'x' * 36} failed; header token {odd}")
    logfile.close()
    logger.remove()
    log, err = (tmp_path / "logs" / "task_00000.log").read_text(), capsys.readouterr().err
    assert "failed; header token <token>" in err and "access_token=<token>" in log
    assert "ghp_" not in log + err and odd not in log + err

    from datakit.cli import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages: [{stage: demo.repo}]\n")
    assert main(["run", str(recipe), "--stages", f"ghp_{'z' * 36}", "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --stages: no stage named <token>") and "ghp_" not in err
