"""The launch recipes: the DeepSpeed configs in recipes/deepspeed/ (their batch arithmetic against the parallel
layout each was sized for, always; DeepSpeed's own parser, `deepspeed.runtime.config.DeepSpeedConfig`, where
DeepSpeed installs) and the data arguments recipes/megatron/common.sh gives Megatron-LM."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DS = ROOT / "recipes" / "deepspeed"
LAYOUTS = json.loads((DS / "layouts.json").read_text())


def configs() -> list[str]:
    return sorted(p.name for p in DS.glob("*.json") if p.name != "layouts.json")


def test_every_config_has_a_layout_and_its_batch_adds_up():
    assert configs() == sorted(LAYOUTS) and len(configs()) >= 2
    for name in configs():
        cfg, lay = json.loads((DS / name).read_text()), LAYOUTS[name]
        assert lay["nodes"] * lay["gpus_per_node"] == (
            lay["tensor_parallel"] * lay["pipeline_parallel"] * lay["data_parallel"]), name
        # DeepSpeed's rule: train_batch = micro batch per GPU × gradient accumulation × data-parallel ranks
        assert cfg["train_batch_size"] == (cfg["train_micro_batch_size_per_gpu"] * cfg["gradient_accumulation_steps"]
                                           * lay["data_parallel"]), name
        stage = cfg["zero_optimization"]["stage"]
        if lay["pipeline_parallel"] > 1:  # DeepSpeed's pipeline engine takes ZeRO stage 0 or 1 only
            assert stage <= 1, name
    assert {json.loads((DS / n).read_text())["zero_optimization"]["stage"] for n in configs()} >= {1, 3}
    assert LAYOUTS["zero3.json"]["pipeline_parallel"] == 1


def launcher_flag(script: str, flag: str) -> int:
    return int(re.search(rf"{re.escape(flag)}[ =]*(\d+)", script).group(1))


def test_the_tp_pp_config_matches_the_72b_launcher():
    """Same GPUs, global and micro batch as recipes/megatron/qwen2.5-72b-cpt.sh (which adds context parallelism
    4, so Megatron-LM's data-parallel size there is 1 where Megatron-DeepSpeed's is 4)."""
    sh = (ROOT / "recipes" / "megatron" / "qwen2.5-72b-cpt.sh").read_text()
    cfg, lay = json.loads((DS / "zero1_tp8_pp4.json").read_text()), LAYOUTS["zero1_tp8_pp4.json"]
    assert launcher_flag(sh, "--global-batch-size") == cfg["train_batch_size"]
    assert launcher_flag(sh, "--micro-batch-size") == cfg["train_micro_batch_size_per_gpu"]
    assert launcher_flag(sh, "--tensor-model-parallel-size") == lay["tensor_parallel"]
    assert launcher_flag(sh, "--pipeline-model-parallel-size") == lay["pipeline_parallel"]
    assert launcher_flag(sh, "NNODES:-") * launcher_flag(sh, "GPUS_PER_NODE:-") == lay["nodes"] * lay["gpus_per_node"]
    assert launcher_flag(sh, "--seq-length") == lay["seq_len"]


class DataParallel:
    """What DeepSpeedConfig asks of Megatron's mpu: the data-parallel world size (here: the layout's)."""

    def __init__(self, size: int):
        self.size = size

    def get_data_parallel_world_size(self) -> int:
        return self.size


@pytest.mark.parametrize("name", configs())
def test_deepspeed_parses_each_config(name, monkeypatch):
    import deepspeed.comm  # in the test extras: a missing install fails, it does not skip
    from deepspeed.runtime.config import DeepSpeedConfig

    # The parser asks the process group for this rank before it asks `mpu` for the data-parallel size; on CPU a
    # DeepSpeed process group JIT-compiles a shared-memory op (minutes), so the rank alone is given: rank 0.
    monkeypatch.setattr(deepspeed.comm, "get_rank", lambda group=None: 0)
    cfg, dp = json.loads((DS / name).read_text()), LAYOUTS[name]["data_parallel"]
    parsed = DeepSpeedConfig(str(DS / name), mpu=DataParallel(dp))
    assert parsed.world_size == dp
    assert (parsed.train_batch_size, parsed.train_micro_batch_size_per_gpu, parsed.gradient_accumulation_steps) == (
        cfg["train_batch_size"], cfg["train_micro_batch_size_per_gpu"], cfg["gradient_accumulation_steps"])
    assert parsed.zero_optimization_stage == cfg["zero_optimization"]["stage"] and parsed.bfloat16_config.enabled
    assert parsed.gradient_clipping == cfg["gradient_clipping"]
    with pytest.raises(AssertionError, match="train_batch_size"):  # the parser checks the arithmetic itself
        DeepSpeedConfig(str(DS / name), mpu=DataParallel(dp * 2))


def data_args(export: Path) -> list[str]:
    """The DATA_ARGS recipes/megatron/common.sh hands pretrain_gpt.py for this export folder."""
    import subprocess

    out = subprocess.run(["bash", "-c", 'source "$0"; printf "%s\\n" "${DATA_ARGS[@]}"',
                          str(ROOT / "recipes" / "megatron" / "common.sh")], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "DATAKIT_EXPORT": str(export), "MEGATRON_LM": "/x"},
                         check=True)
    return out.stdout.splitlines()


def test_launchers_use_the_validation_split_when_the_export_has_one(tmp_path):
    (tmp_path / "blend.txt").write_text("0.25 /e/00000 0.75 /e/00001\n")
    args = data_args(tmp_path)
    assert args[:5] == ["--data-path", "0.25", "/e/00000", "0.75", "/e/00001"]
    assert args[5:9] == ["--split", "1000,0,0", "--eval-iters", "0"] and "--valid-data-path" not in args
    (tmp_path / "valid_blend.txt").write_text("1.0 /e/valid/00000\n")
    args = data_args(tmp_path)
    # Megatron-LM: per-split paths instead of --data-path, and no --split with them (its dataset config asserts)
    assert "--data-path" not in args and "--split" not in args
    t, v = args.index("--train-data-path"), args.index("--valid-data-path")
    assert args[t + 1:v] == ["0.25", "/e/00000", "0.75", "/e/00001"] and args[v + 1:v + 3] == ["1.0", "/e/valid/00000"]
    assert int(args[args.index("--eval-iters") + 1]) > 0
    for flag in ("--eod-mask-loss", "--reset-position-ids", "--reset-attention-mask"):
        assert flag in args
