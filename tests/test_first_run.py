"""The guided first run: `datakit run` ends with what was made, where, and three next commands that work."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from datakit.cli import _subcommands, build_parser, main, next_steps

DEMO = Path(__file__).resolve().parent.parent / "recipes" / "demo.yaml"


def test_demo_run_ends_with_what_was_made_and_three_next_commands_that_work(demo_output, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(demo_output, out, symlinks=True)
    assert main(["run", str(DEMO), "--output", str(out), "--quiet"]) == 0
    stdout = capsys.readouterr().out
    tail = stdout[stdout.index("sft_tokens: "):]  # after the summary and the paths
    assert f"made: 13 stage folders under {out}" in tail and "dataset card (README.md)" in tail
    assert f"Megatron: --data-path $(cat {out / 'megatron' / 'blend.txt'})" in tail
    commands = [line.split("   #")[0].strip() for line in tail.split("next:\n", 1)[1].splitlines()]
    assert len(commands) == 3 and all(c.startswith("datakit ") for c in commands)
    assert f"datakit audit {out / 'decontam'}" in commands
    for command in commands:
        argv = shlex.split(command)[1:]
        build_parser().parse_args(argv)  # a real subcommand with real options
        if argv[0] in ("audit", "inspect"):  # the cheap ones, run for real on the output just made
            assert main(argv) == 0, command
            capsys.readouterr()


def test_next_steps_name_only_commands_the_cli_has(tmp_path):
    from datakit.pipeline.runner import StageResult

    tokens = tmp_path / "tokens"
    tokens.mkdir()
    (tokens / "00000.parquet").write_bytes(b"")
    results = [StageResult("tokens", "tokens", tokens, "f", 1, 0.0, False, rows=3)]
    text = next_steps("r.yaml", tmp_path, results, {"inspect", "plan", "stats"})
    assert text.splitlines()[-3].lstrip().startswith(f"datakit stats {tmp_path}")
    assert "datakit audit" not in text  # no decontam stage ran
    assert "datakit stats" not in next_steps("r.yaml", tmp_path, results, {"inspect", "plan"})
    assert {"audit", "inspect", "plan"} <= _subcommands()
