"""The stage registry: every stage type lives in its package's `stages` module and registers itself; the registry
module imports no stage package, and lists the types in the same order whichever module a process loads first."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from datakit.pipeline import stages

ROOT = Path(__file__).resolve().parent.parent


def test_registry_imports_no_stage_package():
    tree = ast.parse((ROOT / "datakit" / "pipeline" / "stages.py").read_text())
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module] + [
        a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names]
    assert [m for m in imported if m.startswith("datakit") and not m.startswith("datakit.pipeline")] == []


def test_every_stage_type_is_declared_in_a_listed_stages_module():
    assert stages.STAGES, "no stage type registered"
    for name, st in stages.STAGES.items():
        assert st.__module__ in stages.STAGE_MODULES, (name, st.__module__)
        assert st.__module__.endswith(".stages") and st.__module__ != "datakit.pipeline.stages"
    # a newcomer finds a stage by its name: `tokens` in datakit/tokens, `sources.github` in datakit/sources, …
    for name, st in stages.STAGES.items():
        assert st.__module__.split(".")[1] in (name.split(".")[0], "demo", "export"), (name, st.__module__)


def test_registering_another_type_under_a_taken_name_is_refused():
    class Impostor(stages.StageType):
        type_name = "tokens"
        summary = "not the tokens stage"

    with pytest.raises(ValueError, match="two stage types named 'tokens'"):
        stages.register(Impostor)
    assert stages.STAGES["tokens"].__name__ == "TokensStage"


@pytest.mark.parametrize("first", ["datakit.tokens.stages", "datakit.sft.stages", "datakit.recipe"])
def test_stage_order_does_not_depend_on_the_first_import(first):
    code = (f"import json, {first}\nfrom datakit.pipeline.stages import ordered_stages\n"
            "print(json.dumps([name for name, _ in ordered_stages()]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout) == [name for name, _ in stages.ordered_stages()]
    assert json.loads(out.stdout)[:3] == ["demo.repo", "sources.git", "sources.github"]
