"""Record schemas: `schemas/*.schema.json` are the single source of truth; the Arrow schemas are derived here.

Mapping (JSON Schema → Arrow): string → string, integer → int64, number → float64, boolean → bool,
(or the width named by `"x-arrow": "int32" | "uint8"`), array → list<items>, object with properties → struct (fields in declaration order), a type list with "null" →
nullable; `"x-arrow": "json"` → Arrow's JSON extension type (any JSON value, stored as its text; `datasets` reads it
as `Json()` and hands back the parsed value). `hf_features` derives the `datasets` Features of a schema, written as
the Parquet file's `huggingface` metadata so `datasets.load_dataset("parquet", …)` decodes such columns. Every field is
nullable in Arrow (Parquet readers expect it; `required` is checked by `validate`), except a top-level property marked
`"x-arrow-nullable": false`: that field, and the items of its array, are non-nullable (Parquet `required`: no
definition level per value to encode; the token shards' per-token columns).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
RECORDS = ("pull_record", "sample", "quarantine", "stage_stats", "token_shard", "token_manifest", "decontam_match",
           "sft_messages")


@functools.cache
def load_json_schema(name: str) -> dict:
    path = SCHEMA_DIR / f"{name}.schema.json"
    if not path.is_file():
        raise FileNotFoundError(f"no schema named {name!r} in {SCHEMA_DIR} (have: {', '.join(RECORDS)})")
    return json.loads(path.read_text(encoding="utf-8"))


def _resolve(ref: str, current: dict) -> tuple[dict, dict]:
    """Resolve a `$ref` ("#/$defs/x" or "other.schema.json#/$defs/x") → (node, the document it lives in)."""
    file_part, _, pointer = ref.partition("#")
    doc = load_json_schema(file_part.removesuffix(".schema.json")) if file_part else current
    node = doc
    for key in filter(None, pointer.split("/")):
        node = node[key]
    return node, doc


def _arrow_type(node: dict, doc: dict, nullable: bool = True) -> pa.DataType:
    if "$ref" in node:
        node, doc = _resolve(node["$ref"], doc)
    if node.get("x-arrow") == "json":
        return pa.json_()
    types = node.get("type")
    kinds = [t for t in (types if isinstance(types, list) else [types]) if t != "null"]
    if len(kinds) != 1:
        raise TypeError(f"schema node needs exactly one non-null type, got {types!r}")
    kind = kinds[0]
    if kind == "string":
        return pa.string()
    if kind == "integer":
        return {"int32": pa.int32(), "uint8": pa.uint8(), "int64": pa.int64()}[node.get("x-arrow", "int64")]
    if kind == "number":
        return pa.float64()
    if kind == "boolean":
        return pa.bool_()
    if kind == "array":
        items = _arrow_type(node["items"], doc)
        return pa.list_(items) if nullable else pa.list_(pa.field("item", items, nullable=False))
    if kind == "object":
        props = node.get("properties")
        if not props:
            raise TypeError("objects without declared properties have no Arrow form (store them as JSON strings)")
        return pa.struct([pa.field(k, _arrow_type(v, doc)) for k, v in props.items()])
    raise TypeError(f"unsupported JSON schema type {kind!r}")


_HF_VALUE = {"string": "string", "int64": "int64", "int32": "int32", "uint8": "uint8", "double": "float64",
             "bool": "bool"}


def _hf_feature(kind: pa.DataType) -> dict:
    """The `datasets` feature (its serialised form, as in a Parquet file's `huggingface` metadata) of an Arrow type."""
    if isinstance(kind, pa.JsonType):
        return {"_type": "Json"}
    if pa.types.is_list(kind):
        return {"feature": _hf_feature(kind.value_type), "_type": "List"}
    if pa.types.is_struct(kind):
        return {kind.field(i).name: _hf_feature(kind.field(i).type) for i in range(kind.num_fields)}
    return {"dtype": _HF_VALUE[str(kind)], "_type": "Value"}


def hf_features(name: str) -> dict:
    """`datasets.Features(...).to_dict()` of schemas/{name}: what `datasets` reads from the `huggingface` metadata."""
    return {f.name: _hf_feature(f.type) for f in arrow_schema(name)}


@functools.cache
def arrow_schema(name: str) -> pa.Schema:
    doc = load_json_schema(name)
    return pa.schema([_arrow_field(k, v, doc) for k, v in doc["properties"].items()])


def _arrow_field(name: str, node: dict, doc: dict) -> pa.Field:
    nullable = node.get("x-arrow-nullable", True)
    if not isinstance(nullable, bool):
        raise TypeError(f"{name}: x-arrow-nullable must be true or false, got {nullable!r}")
    if not nullable and "null" in (node.get("type") if isinstance(node.get("type"), list) else []):
        raise TypeError(f"{name}: a type that allows null cannot be x-arrow-nullable: false; drop one of them")
    return pa.field(name, _arrow_type(node, doc, nullable), nullable=nullable)


def conform(record: dict[str, Any], name: str) -> dict[str, Any]:
    """Project a record onto the schema's top-level fields (missing → None, extra keys dropped)."""
    return {field: record.get(field) for field in arrow_schema(name).names}


@functools.cache
def _validator(name: str):
    import jsonschema
    from referencing import Registry, Resource

    registry = Registry().with_resources(
        (f"{n}.schema.json", Resource.from_contents(load_json_schema(n))) for n in RECORDS
    )
    schema = load_json_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=registry)


def validate(record: dict[str, Any], name: str) -> None:
    """Raise jsonschema.ValidationError when `record` does not satisfy schemas/{name}.schema.json."""
    _validator(name).validate(record)
