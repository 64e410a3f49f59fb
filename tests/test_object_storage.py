"""Object storage: a recipe whose input and output are on `s3://`, against a real S3-compatible server (moto's, on
loopback, a free port): decontam → tokens → Megatron export read and write through fsspec, give the same bytes as
the demo run on a local disk, and a rerun resumes without rewriting one object (the bucket is versioned)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import s3fs
import yaml
from moto.server import ThreadedMotoServer

from datakit.io import storage
from datakit.pipeline.runner import _input_fingerprint, run_recipe
from datakit.recipe import RecipeError, load_recipe, parse_recipe

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "datakit-test"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
CHAIN = ("decontam", "tokens", "megatron")  # the demo's stages after redact, with its options


@pytest.fixture(scope="module")
def s3():
    """(endpoint, an s3fs filesystem on it) with a versioned bucket; the server lives as long as the module."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing", skip_instance_cache=True,
                           use_listings_cache=False)
    yield endpoint, fs, client
    server.stop()


def _env(endpoint: str) -> dict:
    return {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "COLUMNS": "200"}


def _recipe(tmp_path: Path, demo_output: Path) -> Path:
    demo = yaml.safe_load((ROOT / "recipes" / "demo.yaml").read_text())
    stages = [dict(s) for s in demo["stages"] if s["name"] in CHAIN]
    stages[0]["inputs"] = [f"s3://{BUCKET}/in/redact"]  # the demo's redact output, uploaded
    recipe = {"name": "demo", "output": f"s3://{BUCKET}/out", "mirrors": str(demo_output / "mirrors"),
              "executor": demo["executor"], "stages": stages}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _run(recipe: Path, endpoint: str, cwd: Path) -> list[dict]:
    proc = subprocess.run([sys.executable, "-m", "datakit.cli", "run", str(recipe), "--quiet", "--json"],
                          capture_output=True, text=True, cwd=cwd, env=_env(endpoint), timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["stages"]


def _versions(client) -> dict[str, int]:
    counts: dict[str, int] = {}
    for page in client.get_paginator("list_object_versions").paginate(Bucket=BUCKET, Prefix="out/"):
        for v in page.get("Versions", []):
            counts[v["Key"]] = counts.get(v["Key"], 0) + 1
    return counts


@pytest.fixture
def s3_env(s3, monkeypatch):
    """This process's own fsspec S3 filesystem on the test server, dropped afterwards."""
    for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": s3[0]}.items():
        monkeypatch.setenv(key, value)
    storage._filesystem_of.cache_clear()
    yield s3
    storage._filesystem_of.cache_clear()
    s3fs.S3FileSystem.clear_instance_cache()  # fsspec's own cache holds it too


def test_recipe_on_s3_gives_the_local_bytes_and_resumes(s3_env, demo_output, tmp_path):
    endpoint, fs, client = s3_env
    fs.put(str(demo_output / "redact"), f"{BUCKET}/in/redact", recursive=True)
    recipe = _recipe(tmp_path, demo_output)

    first = _run(recipe, endpoint, tmp_path)
    assert [r["stage"] for r in first] == list(CHAIN) and not any(r["resumed"] for r in first)
    assert not list(tmp_path.glob("s3:*")), "a URL was used as a local path"
    for stage in CHAIN:
        local = demo_output / stage
        want = {str(p.relative_to(local)) for p in local.rglob("*") if p.is_file() and ".datakit" not in p.parts}
        prefix = f"{BUCKET}/out/{stage}/"
        got = {k.removeprefix(prefix) for k in fs.find(prefix) if "/.datakit/" not in k}
        assert got == want, stage  # no file missing, none extra (no .tmp left behind)
        for rel in sorted(want):
            mine, theirs = fs.cat_file(prefix + rel), (local / rel).read_bytes()
            if rel == "manifest.json":  # the recipe hash is the stage's fingerprint: its input is a path here
                skip = {"recipe_hash", "source_manifest"}
                mine, theirs = ({k: v for k, v in json.loads(b).items() if k not in skip} for b in (mine, theirs))
            elif rel == "blend.txt":  # Megatron's prefixes name where the export is
                theirs = theirs.replace(str(local).encode(), f"s3://{prefix}".rstrip("/").encode())
            elif rel == "README.md":  # the card's licence line names the recipe's source stages (none here)
                mine, theirs = ([ln for ln in b.decode().splitlines() if "licence" not in ln] for b in (mine, theirs))
            assert mine == theirs, f"{stage}/{rel}"

    written = _versions(client)
    again = run_recipe(load_recipe(recipe))  # in this process (no second start-up): all it knows is in the bucket
    assert all(r.skipped for r in again)
    assert [r.units for r in again] == [r["units"] for r in first]
    assert _versions(client) == written and set(written.values()) == {1}  # not one object rewritten


def test_a_folder_copied_to_s3_keeps_its_fingerprint(s3_env, demo_output):
    """An input is known by its content, wherever it lies: the same folder on S3 gives the same stage fingerprints."""
    _, fs, _ = s3_env
    fs.put(str(demo_output / "synth"), f"{BUCKET}/fp/synth", recursive=True)
    remote = storage.as_path(f"s3://{BUCKET}/fp/synth")
    assert _input_fingerprint(remote) == _input_fingerprint(demo_output / "synth")
    (remote / "extra.parquet").write_bytes(b"x")
    assert _input_fingerprint(remote) != _input_fingerprint(demo_output / "synth")


SYNTH = {"name": "synth", "stage": "synth.ingest", "options": {"paths": ["datakit:demo/fixtures/synth"]}}


@pytest.mark.parametrize("extra,stages,message", [
    ({}, [SYNTH, {"name": "dedup", "stage": "dedup", "input": "synth"}],
     r"stages\[1\] \(dedup\): stage dedup reads and writes local folders only \(on object storage: "
     r"bundles.commits, decontam, export.megatron, redact, samples.agentless, sft.agent, sft.agentless, sources.git, "
     r"synth.ingest, tokens\); give it a local `output:`"),
    ({}, [SYNTH, {"name": "decontam", "stage": "decontam", "input": "synth"}],
     r"stages\[1\] \(decontam\): mirrors \(s3://datakit-test/never/mirrors\) must be a local folder: pygit2"),
])
def test_what_object_storage_cannot_hold_fails_before_any_work(extra, stages, message):
    with pytest.raises(RecipeError, match=message):
        parse_recipe({"name": "t", "output": f"s3://{BUCKET}/never", **extra, "stages": stages})


def test_decontam_without_mirror_rules_needs_no_mirrors():
    decontam = {"name": "decontam", "stage": "decontam", "input": "synth", "options": {"mirrors": False}}
    recipe = parse_recipe({"name": "t", "output": f"s3://{BUCKET}/never", "stages": [SYNTH, decontam]})
    assert str(recipe.stage("decontam").output) == f"s3://{BUCKET}/never/decontam"


def test_local_paths_never_load_an_object_store_client(demo_output):
    """The local fast path: a local recipe's bookkeeping stays in pathlib and imports no s3fs or botocore."""
    code = ("import sys; from datakit.recipe import load_recipe; from datakit.pipeline import runner; "
            f"r = load_recipe({str(ROOT / 'recipes' / 'demo.yaml')!r}, base_output={str(demo_output)!r}); "
            "runner._input_fingerprint(r.stage('decontam').output); runner.parquet_input_rows(r.stage('tokens'), "
            "r.stage('decontam').output); runner.output_rows(r.stage('tokens').output); "
            "print(sorted(m for m in ('s3fs', 'botocore', 'aiobotocore') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_missing_bucket_is_named_before_any_work(s3_env, tmp_path):
    recipe = parse_recipe({"name": "t", "output": "s3://no-such-bucket/out", "stages": [SYNTH]})
    with pytest.raises(FileNotFoundError, match="no bucket no-such-bucket; create it first"):
        run_recipe(recipe)
    assert "no-such-bucket" not in {b["Name"] for b in s3_env[2].list_buckets()["Buckets"]}
