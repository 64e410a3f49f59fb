"""Dataset cards: every stage output folder of the demo has a README.md whose YAML header huggingface_hub parses,
whose configs `datasets.load_dataset(folder)` reads as they are with the features of datakit/schemas/, and whose
prose carries the folder's counts, decontamination settings and token counts."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
import yaml

from datakit.io.schemas import hf_features
from datakit.pipeline.cards import CARD, card_header, render_card

STAGE_FOLDERS = ("repo", "pulls", "samples", "bundles", "synth", "redact", "decontam", "tokens", "megatron",
                 "sft_trajectories", "sft_agent", "sft_decontam", "sft_tokens")


def _header(card_path):
    text = card_path.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1]), text


def test_every_stage_folder_has_a_card_the_hub_parses(demo_output):
    from huggingface_hub import DatasetCard

    for name in STAGE_FOLDERS:
        path = demo_output / name / CARD
        assert path.is_file(), f"{name}: no {CARD}"
        card = DatasetCard.load(path)
        header, text = _header(path)
        assert card.data.to_dict().get("configs") == header.get("configs")
        assert "recipe `demo`" in text and "Made by datakit" in text
        assert str(demo_output) not in text  # no absolute path: the same run gives the same bytes anywhere
        for sub in ("quarantine", "filtered", "messages", "matches", "mixture"):
            assert not (demo_output / name / sub / CARD).exists()  # subfolders are configs, not datasets
    assert "configs" not in _header(demo_output / "megatron" / CARD)[0]  # .bin/.idx: nothing `datasets` reads


def test_configs_cover_every_parquet_file_and_features_come_from_the_schemas(demo_output):
    header, _ = _header(demo_output / "sft_agent" / CARD)
    configs = {c["config_name"]: c for c in header["configs"]}
    assert list(configs) == ["default", "messages", "quarantine"] and configs["default"]["default"] is True
    from datasets import Features

    infos = {i["config_name"]: i["features"] for i in header["dataset_info"]}
    for config, schema in (("default", "sample"), ("messages", "sft_messages"), ("quarantine", "quarantine")):
        assert Features._from_yaml_list(infos[config]) == Features.from_dict(hf_features(schema))
    for name in STAGE_FOLDERS:
        folder = demo_output / name
        header, _ = _header(folder / CARD)
        globbed = {p for c in header.get("configs", []) for f in c["data_files"] for p in folder.glob(f["path"])}
        assert globbed == set(folder.rglob("*.parquet")) - set((folder / ".datakit").rglob("*.parquet")), name


@pytest.mark.parametrize("name,schema", [("decontam", "sample"), ("pulls", "pull_record"),
                                         ("tokens", "token_shard"), ("sft_trajectories", "sample")])
def test_load_dataset_reads_the_folder_as_it_is(demo_output, tmp_path, name, schema):
    from datasets import Features, load_dataset

    folder = demo_output / name
    ds = load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "hf"))
    rows = sum(pq.read_metadata(f).num_rows for f in folder.glob("*.parquet"))
    assert len(ds) == rows and ds.features == Features.from_dict(hf_features(schema))
    first = pq.read_table(sorted(folder.glob("*.parquet"))[0]).slice(0, 1).to_pylist()[0]
    key = next(iter(first))
    assert ds[0][key] == first[key]


def test_load_dataset_reads_each_subfolder_config(demo_output, tmp_path):
    from datasets import load_dataset

    folder = demo_output / "sft_agent"
    messages = load_dataset(str(folder), "messages", split="train", cache_dir=str(tmp_path / "hf"))
    assert len(messages) == pq.read_metadata(folder / "messages" / "00000.parquet").num_rows
    assert isinstance(messages[0]["messages"], list) and messages[0]["messages"][0]["role"]
    quarantine = load_dataset(str(folder), "quarantine", split="train", cache_dir=str(tmp_path / "hf"))
    stats = json.loads((folder / "stats.json").read_text())
    assert len(quarantine) == sum(sum(u["quarantined"].values()) for u in stats["units"].values())


def test_card_prose_carries_counts_decontamination_and_tokens(demo_output):
    stats = json.loads((demo_output / "decontam" / "stats.json").read_text())
    text = (demo_output / "decontam" / CARD).read_text()
    u = stats["units"]["samples"]
    reasons = ", ".join(f"{k} {v:,}" for k, v in u["quarantined"].items())
    assert f"| samples | {u['read']:,} | {u['written']:,} | {reasons} |" in text
    assert "## Decontamination" in text and "decision rule: a text matches" in text
    assert "Inputs: `redact`." in text
    manifest = json.loads((demo_output / "tokens" / "manifest.json").read_text())
    tokens = (demo_output / "tokens" / CARD).read_text()
    assert f"{manifest['tokens']:,} tokens in {manifest['documents']:,} documents" in tokens
    for source, s in manifest["per_source"].items():
        assert f"| {source} | {s['documents']:,} | {s['unique_tokens']:,} | {s['tokens']:,} |" in tokens
    megatron = (demo_output / "megatron" / CARD).read_text()
    assert "## Tokens" in megatron and "--data-path $(cat blend.txt)" in megatron
    assert "`messages` (messages/*.parquet, schema `datakit/schemas/sft_messages.schema.json`)" in (
        demo_output / "sft_agent" / CARD).read_text()
    assert "## Decontamination" not in (demo_output / "samples" / CARD).read_text()


def test_card_changes_with_the_folder_and_only_then(demo_output, tmp_path):
    folder = tmp_path / "decontam"
    shutil.copytree(demo_output / "decontam", folder)
    header = card_header(folder)
    assert card_header(folder) == header  # deterministic
    facts = dict(stage="decontam", type_name="decontam", summary="s", inputs=["redact"], recipe="demo",
                 version="0", stats=json.loads((folder / "stats.json").read_text()))
    assert render_card(header, **facts) == render_card(card_header(folder), **facts)
    shutil.rmtree(folder / "matches")
    changed = card_header(folder)
    assert [c["config_name"] for c in changed["configs"]] == ["default", "quarantine"]
    assert render_card(changed, **facts) != render_card(header, **facts)


def test_licences_are_counted_from_the_upstream_pull_records(demo_output, tmp_path):
    import pyarrow as pa

    from datakit.pipeline.cards import _licences

    assert "record no licence" in (demo_output / "samples" / CARD).read_text()  # git mirrors say none
    crawl = tmp_path / "github"
    crawl.mkdir()
    pq.write_table(pa.table({"license": ["MIT", None, "Apache-2.0", "MIT"]}), crawl / "00000.parquet")
    assert _licences([crawl]) == {"Apache-2.0": 1, "MIT": 2}
    text = render_card({}, stage="s", type_name="t", summary="x", inputs=[], recipe="r", version="0", stats={},
                       licences=_licences([crawl]))
    assert "PRs per licence): Apache-2.0 1, MIT 2." in text
    assert "No source stage" in render_card({}, stage="s", type_name="t", summary="x", inputs=[], recipe="r",
                                            version="0", stats={}, licences=None)


def test_yaml_features_are_what_datasets_writes_for_every_schema():
    """cards.yaml_features spares every stage process the `datasets` import; it must write what `datasets` does."""
    from datasets import Features

    from datakit.io.schemas import SCHEMA_DIR, arrow_schema
    from datakit.pipeline.cards import yaml_features

    checked = 0
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        name = path.name.removesuffix(".schema.json")
        try:
            arrow_schema(name)
        except (TypeError, KeyError):  # no Arrow form: never a card's features
            continue
        assert yaml_features(hf_features(name)) == Features.from_dict(hf_features(name))._to_yaml_list(), name
        checked += 1
    assert checked >= 6
    nested = {"a": {"feature": {"feature": {"dtype": "int32", "_type": "Value"}, "_type": "List"}, "_type": "List"},
              "b": {"feature": {"_type": "Json"}, "_type": "List"}}
    assert yaml_features(nested) == Features.from_dict(nested)._to_yaml_list()
