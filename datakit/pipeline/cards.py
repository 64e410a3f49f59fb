"""Dataset cards: a `README.md` in the Hugging Face dataset-card format in every stage's output folder.

The YAML header declares one config per group of Parquet files (the folder's own `*.parquet` first, the default;
then subfolders such as `messages/`, `quarantine/`, `matches/`; a tokens stage's `valid/` is the validation split
of the default) with the `datasets` features of the schema in `datakit/schemas/` whose columns the files hold, so
`datasets.load_dataset(folder)` reads the folder as it is and a hub upload shows a proper card. The prose says what
the stage is, its inputs, the counts of stats.json, the decontamination settings, the token counts of a manifest,
licences and the recipe and datakit version that made it. No timestamps and no absolute paths: the same run gives
the same bytes wherever it runs, and the card is rewritten only when its text changes (a no-op rerun rewrites nothing).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import yaml

CARD = "README.md"
_VALID_DIR = "valid"  # datakit.tokens.shards.VALID_DIR (not imported: the tokens package loads a tokenizer stack)


@functools.cache
def _schema_columns() -> dict[tuple[str, ...], str]:
    """Column names → schema name, for every schema of datakit/schemas/ that has an Arrow form."""
    from datakit.io.schemas import SCHEMA_DIR, arrow_schema

    found = {}
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        name = path.name.removesuffix(".schema.json")
        try:
            found.setdefault(tuple(arrow_schema(name).names), name)
        except (TypeError, KeyError):  # no top-level properties, or objects without declared ones
            continue
    return found


def _features_yaml(first_file: Path) -> tuple[str | None, list]:
    """(schema name, the features in the card's YAML list form) of a Parquet file: the schema's when its columns
    are a datakit schema's (the single source of truth), else the file's own Arrow schema."""
    import pyarrow.parquet as pq

    from datakit.io.schemas import hf_features
    from datakit.io.storage import arrow as source

    src, fs = source(first_file)
    arrow = pq.read_schema(src, filesystem=fs)
    name = _schema_columns().get(tuple(arrow.names))
    if name:  # written here: importing `datasets` (and pandas) costs every stage process ~0.7 s
        return name, yaml_features(hf_features(name))
    from datasets import Features

    return name, Features.from_arrow_schema(arrow)._to_yaml_list()  # the form `datasets` reads back from a card


def yaml_features(features: dict) -> list:
    """`datasets.Features.from_dict(features)._to_yaml_list()` for the feature kinds of datakit's schemas (Value,
    List, Json, structs); tests/test_cards.py checks it against `datasets` for every schema."""
    def one(feature: dict) -> dict:
        kind = feature.get("_type")
        if kind == "Value":
            return {"dtype": feature["dtype"]}
        if kind == "Json":
            return {"dtype": "json"}
        if kind == "List":  # a list of one dtype or of a struct drops the inner key, as `datasets` writes it
            inner = one(feature["feature"])
            return {"list": inner[next(iter(inner))] if list(inner) in (["dtype"], ["struct"]) else inner}
        if kind is None:
            return {"struct": yaml_features(feature)}
        raise TypeError(f"no YAML form for a {kind} feature")

    return [{"name": name, **one(feature)} for name, feature in features.items()]


def parquet_groups(folder: Path) -> list[tuple[str, str]]:
    """(config name, the folder-relative glob) of each folder holding Parquet files: the folder's own first."""
    groups = [("default", "*.parquet")] if any(folder.glob("*.parquet")) else []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name != _VALID_DIR and any(sub.glob("*.parquet")):
            groups.append((sub.name, f"{sub.name}/*.parquet"))
    return groups


def config_schemas(folder: Path) -> dict[str, str | None]:
    """config name → the datakit schema its files hold (None: none matches; the card then shows the file's own)."""
    return {config: _features_yaml(sorted(folder.glob(glob))[0])[0] for config, glob in parquet_groups(folder)}


def card_header(folder: Path) -> dict:
    """The YAML header: configs (data_files) and dataset_info (features), tags."""
    configs, infos = [], []
    for config, glob in parquet_groups(folder):
        data_files = [{"split": "train", "path": glob}]
        if config == "default" and any((folder / _VALID_DIR).glob("*.parquet")):
            data_files.append({"split": "validation", "path": f"{_VALID_DIR}/*.parquet"})
        entry: dict[str, Any] = {"config_name": config, "data_files": data_files}
        if config == "default":
            entry["default"] = True
        configs.append(entry)
        first = sorted(folder.glob(glob))[0]
        infos.append({"config_name": config, "features": _features_yaml(first)[1]})
    header: dict[str, Any] = {"tags": ["datakit", "code"]}
    if configs:
        header["configs"] = configs
        header["dataset_info"] = infos
    return header


# ------------------------------------------------------------------------------------------- the prose (pure)


def _n(value) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.4g}"


def _units_section(stats: dict) -> list[str]:
    lines = ["## Counts", "", "From `stats.json` (a unit is what the stage counts; read = written + quarantined "
             "+ filtered):", "", "| unit | read | written | quarantined | filtered |", "|---|---:|---:|---|---|"]
    for unit, u in stats.get("units", {}).items():
        def reasons(d: dict) -> str:
            return ", ".join(f"{k} {_n(v)}" for k, v in d.items()) or "-"

        lines.append(f"| {unit} | {_n(u['read'])} | {_n(u['written'])} | {reasons(u['quarantined'])} | "
                     f"{reasons(u['filtered'])} |")
    return lines + [""]


def _decontam_section(settings: dict, matches: int | None) -> list[str]:
    lines = ["## Decontamination", "",
             f"- reference index: `{settings.get('index')}` ({settings.get('n')}-grams)",
             f"- decision rule: {settings.get('decision_rule')}",
             f"- text rules: {'on' if settings.get('text_rules') else 'off'}; mirror rules (git histories): "
             f"{'on' if settings.get('mirror_rules') else 'off'}"]
    if settings.get("repos_without_roots"):
        lines.append(f"- reference repositories without known root commits: "
                     f"{', '.join(settings['repos_without_roots'])}")
    if matches is not None:
        lines.append(f"- {matches:,} matches (the config `matches`); the samples removed are in `quarantine/`; "
                     "`datakit audit` on this folder writes the audit report")
    return lines + [""]


def _tokens_section(manifest: dict) -> list[str]:
    tok = manifest.get("tokenizer", {})
    lines = ["## Tokens", "",
             f"From `manifest.json` ({manifest.get('format')}): {_n(manifest.get('tokens', 0))} tokens in "
             f"{_n(manifest.get('documents', 0))} documents, {_n(manifest.get('rows', 0))} rows of "
             f"{manifest.get('seq_len')} tokens (padding {manifest.get('padding_ratio', 0):.1%}); tokenizer "
             f"`{tok.get('name')}` (vocabulary {tok.get('vocab_size')}, hash `{tok.get('vocab_hash')}`).", ""]
    per_source = manifest.get("per_source") or {}
    if per_source:
        lines += ["| source | documents | unique tokens | tokens (with copies) | up-sampling |",
                  "|---|---:|---:|---:|---:|"]
        for name, s in per_source.items():
            lines.append(f"| {name} | {_n(s.get('documents', 0))} | {_n(s.get('unique_tokens', 0))} | "
                         f"{_n(s.get('tokens', 0))} | {s.get('upsample', 1)}× |")
        lines.append("")
    valid = manifest.get("validation")
    if valid:
        lines += [f"Validation split (`{_VALID_DIR}/`, held out by repository): {_n(valid.get('tokens', 0))} tokens "
                  f"in {_n(valid.get('documents', 0))} documents.", ""]
    return lines


def _licence_section(licences: dict[str, int] | None) -> list[str]:
    lines = ["## Licences", ""]
    if licences:
        lines.append("The repositories' licences (SPDX, from the PullRecords' `license`; PRs per licence): "
                     + ", ".join(f"{k} {v:,}" for k, v in licences.items()) + ".")
    elif licences is not None:
        lines.append("The PullRecords this folder comes from record no licence (a git mirror does not say one; the "
                     "`sources.github` crawl does, and its `licenses` option keeps only the licences named).")
    else:
        lines.append("No source stage of this recipe made these records: their licences are those of the "
                     "repositories and data they came from.")
    lines += ["Every Sample names its repository (`source.repo`; a PullRecord: `repo`, `license`): check the terms "
              "of each before you publish or train on it.", ""]
    return lines


def render_card(header: dict, *, stage: str, type_name: str, summary: str, inputs: list[str], recipe: str,
                version: str, stats: dict, decontam: dict | None = None,
                matches: int | None = None, manifest: dict | None = None,
                licences: dict[str, int] | None = None, schemas: dict[str, str | None] | None = None,
                blend: bool = False) -> str:
    """The card's text, from facts only (no clock, no absolute path)."""
    lines = ["---", yaml.safe_dump(header, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
             f"# {recipe} / {stage}", "", f"Stage `{stage}` of type `{type_name}`: {summary}.", ""]
    if inputs:
        lines += [f"Inputs: {', '.join(f'`{i}`' for i in inputs)}.", ""]
    configs = header.get("configs", [])
    if configs:
        lines += ["## Loading", "", "```python", "from datasets import load_dataset", "",
                  'ds = load_dataset("path/to/this/folder")  # the default config: this folder\'s *.parquet']
        lines += [f'{c["config_name"]} = load_dataset("path/to/this/folder", "{c["config_name"]}")'
                  for c in configs[1:]]
        def schema(config: str) -> str:
            name = (schemas or {}).get(config)
            return f", schema `datakit/schemas/{name}.schema.json`" if name else ""

        lines += ["```", "", "Configs: " + "; ".join(f"`{c['config_name']}` ({c['data_files'][0]['path']}"
                                                   f"{schema(c['config_name'])})" for c in configs) + ".", ""]
    lines += _units_section(stats)
    if decontam is not None:
        lines += _decontam_section(decontam, matches)
    if manifest is not None:
        lines += _tokens_section(manifest)
    if blend:
        lines += ["## Training", "", "`blend.txt` is Megatron-LM's `--data-path` (`--data-path $(cat blend.txt)`, "
                  "weight and path prefix per shard, as this run wrote them); `valid_blend.txt`, when present, its "
                  "`--valid-data-path`.", ""]
    lines += _licence_section(licences)
    # not the stage fingerprint: it holds the mirrors' path, and the same data should give the same card anywhere
    lines += ["## Provenance", "", f"Made by datakit {version}, recipe `{recipe}` (its options for this stage: the "
              f"recipe's `{stage}` entry; every option and default: docs/recipe_reference.md).", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- the writer


def _licences(folders: list[Path]) -> dict[str, int]:
    """SPDX id → PRs, over the PullRecord files of these folders."""
    import pyarrow.parquet as pq

    from datakit.io.storage import arrow

    counts: dict[str, int] = {}
    for folder in folders:
        for src, fs in map(arrow, sorted(folder.glob("*.parquet"))):
            if "license" in pq.read_schema(src, filesystem=fs).names:
                for value in pq.read_table(src, columns=["license"], filesystem=fs).column("license").to_pylist():
                    if value:
                        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


def _upstream_sources(recipe, spec) -> list[Path]:
    """The output folders of the source stages (PullRecords) this stage reads from, through any chain."""
    seen, todo, found = set(), [spec], []
    while todo:
        s = todo.pop()
        if s.type.type_name.startswith("sources.") and s.output not in found:
            found.append(s.output)
        for name in s.inputs or ([s.input] if s.input is not None else []):
            if name not in seen and any(x.name == name for x in recipe.stages):
                seen.add(name)
                todo.append(recipe.stage(name))
    return sorted(found)


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_card(result, spec, recipe) -> Path:
    """Write `<stage output>/README.md` (after stats.json) when its text differs from the one there."""
    import pyarrow.parquet as pq

    from datakit import __version__
    from datakit.io.storage import arrow, as_path
    from datakit.pipeline.runner import _write_if_changed

    folder = result.output
    matches_files = [arrow(f) for f in sorted((folder / "matches").glob("*.parquet"))]
    matches = sum(pq.read_metadata(src, filesystem=fs).num_rows for src, fs in matches_files) if matches_files else None
    text = render_card(
        card_header(folder), stage=spec.name, type_name=spec.type.type_name, summary=spec.type.summary,
        # an absolute input path by its name: the same data gives the same card wherever it lies
        inputs=[as_path(i).name if as_path(i).is_absolute() else str(i)
                for i in (spec.inputs or ([spec.input] if spec.input is not None else []))],
        recipe=recipe.name, version=__version__,
        stats=_read_json(folder / "stats.json") or {},
        decontam=_read_json(folder / "decontam.json"),
        matches=matches,
        manifest=_read_json(folder / "manifest.json"),
        licences=_licences(sources) if (sources := _upstream_sources(recipe, spec)) else None,
        schemas=config_schemas(folder), blend=(folder / "blend.txt").is_file())
    _write_if_changed(folder / CARD, text)
    return folder / CARD
