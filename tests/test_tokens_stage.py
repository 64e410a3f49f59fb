"""The tokens and export stages end to end: samples → exact tokens → packed shards → Megatron, all round-tripped."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datakit.cli import main
from datakit.io.schemas import arrow_schema, conform, validate
from datakit.tokens.shards import ManifestError, iter_documents, iter_rows, verify_manifest
from datakit.tokens.tokenizer import load_tokenizer
from tests.test_recipes import DEMO, datakit, tree_digest


def write_samples(folder: Path, samples: list[dict], name: str = "00000.parquet") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [conform({"prompt": None, "completion": None, "messages": None, "meta": None, "source": None, **s},
                    "sample") for s in samples]
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema("sample")), folder / name)
    return folder


def sample(i: int, text: str, kind: str = "edit") -> dict:
    return {"id": f"s{i:04d}", "kind": kind, "role": "bugfixer", "text": text}


@pytest.fixture(scope="module")
def qwen():
    return load_tokenizer("qwen2.5")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_tokens") / "out"
    proc = datakit("run", DEMO, "--output", out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_demo_tokens_roundtrip_to_sample_texts(demo, qwen):
    from datakit.tokens.chat import render_chat

    manifest = verify_manifest(demo / "tokens")
    validate(manifest, "token_manifest")
    assert manifest["tokenizer"]["name"] == "qwen2.5" and manifest["tokenizer"]["engine"] == qwen.engine
    assert manifest["eod_id"] == 151643 and manifest["seq_len"] == 4096 and manifest["truncated_tokens"] == 0
    kept = pl.read_parquet(demo / "decontam" / "*.parquet").to_dicts()  # every kind the demo decontaminated
    factor = {"agentless": 2, "commit_bundles": 1, "synthetic": 4}  # the demo recipe's up-sampling
    source_of = {"localize": "agentless", "edit": "agentless", "commit_bundle": "commit_bundles",
                 "synthetic": "synthetic"}
    samples = {r["id"]: r for r in kept}
    synth = {r["id"]: r for r in kept if r["kind"] == "synthetic"}
    assert synth and any(r["kind"] == "commit_bundle" for r in kept)
    docs = list(iter_documents(sorted((demo / "tokens").glob("*.parquet"))))
    # copy k of a document is named "{id}@{k}"
    assert sorted(d[0] for d in docs) == sorted(f"{i}@{k}" if k else i for i, r in samples.items()
                                                for k in range(factor[source_of[r["kind"]]]))
    total = {"agentless": 0, "commit_bundles": 0, "synthetic": 0}
    for sample_id, source, ids, mask in docs:
        base = sample_id.split("@")[0]
        assert source == source_of[samples[base]["kind"]]
        if source == "synthetic":  # chat: rendered with Qwen2.5's template, the loss on assistant turns only
            want_ids, want_mask = render_chat(synth[base]["messages"], qwen)
            assert ids.tolist() == want_ids and mask.tolist() == want_mask
            assert qwen.decode(ids[:-1].tolist()) == unicodedata.normalize("NFC", synth[base]["text"])
        else:
            text = samples[base]["text"]
            assert ids[-1] == qwen.eod_id and mask.all()
            assert ids.tolist() == qwen.encode(text) + [qwen.eod_id]  # the same ids as encoding the text directly
            assert qwen.decode(ids[:-1].tolist()) == unicodedata.normalize("NFC", text)
        total[source] += len(ids)
    per = manifest["per_source"]
    assert sum(total.values()) == manifest["tokens"]
    for source, f in factor.items():
        assert per[source]["tokens"] == total[source] == f * per[source]["unique_tokens"]
        assert per[source]["upsample"] == f
        assert per[source]["repeated_documents"] == (per[source]["unique_documents"] if f > 1 else 0)
    assert per["synthetic"]["unique_documents"] == len(synth)
    # the stage's counters say the same before and after up-sampling
    counters = json.loads((demo / "tokens" / "stats.json").read_text())["counters"]
    assert counters["mixture.synthetic.unique_tokens"] * 4 == counters["mixture.synthetic.tokens"] == total["synthetic"]
    assert_spread(sorted((demo / "tokens").glob("*.parquet")), manifest["mixture"]["copy_gap"],
                  manifest["mixture"]["copies_released_early"])


def assert_spread(shards, gap: int, early: int) -> dict:
    """No packed row holds two copies of one sample; consecutive copies are ≥ gap rows apart, except at most
    `early` copies the end of the stream had to place sooner. Returns sample → repeat → rows."""
    from datakit.tokens.shards import iter_rows

    where: dict[str, dict[int, list[int]]] = {}
    r = 0
    for shard in shards:
        for row in iter_rows(shard):
            bases = [s.split("@")[0] for s in row["sample_ids"]]
            for s, k, base in zip(row["sample_ids"], row["repeat"], bases):
                assert s == (f"{base}@{k}" if k else base)
                copies_here = {kk for b, kk in zip(bases, row["repeat"]) if b == base}
                assert len(copies_here) == 1, f"row {r}: two copies of {base}: {row['sample_ids']}"
                where.setdefault(base, {}).setdefault(k, []).append(r)
            r += 1
    close = 0
    for base, copies in where.items():
        ks = sorted(copies)
        assert ks == list(range(len(ks)))
        close += sum(1 for a, b in zip(ks, ks[1:]) if min(copies[b]) - max(copies[a]) < gap)
    assert close <= early
    return where


def test_demo_shards_read_by_pyarrow_polars_datasets(demo):
    from datasets import load_dataset

    files = sorted((demo / "tokens").glob("*.parquet"))
    table = pq.read_table(files[0])
    assert table.schema.equals(arrow_schema("token_shard"), check_metadata=False)
    for row in table.slice(0, 3).to_pylist():
        validate(row, "token_shard")
        assert len(row["input_ids"]) == len(row["loss_mask"]) == 4096 == sum(row["doc_lens"])
    df = pl.read_parquet(files)
    assert (df["input_ids"].list.len() == 4096).all()
    ds = load_dataset("parquet", data_files=[str(f) for f in files], split="train",
                      cache_dir=str(demo.parent / "hf_cache"))
    assert ds[0]["input_ids"] == table.column("input_ids")[0].as_py()


def test_megatron_reads_back_the_parquet_tokens(demo):
    import megatron.core  # noqa: F401  (in the test extras: a missing install fails, it does not skip)
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    docs = list(iter_documents(sorted((demo / "tokens").glob("*.parquet"))))
    ds = IndexedDataset(str(demo / "megatron" / "00000"))
    assert len(ds) == len(docs)
    for i, (_sid, _src, ids, _mask) in enumerate(docs):
        assert np.array_equal(ds[i], ids)
    assert ds.index.dtype == np.int32
    blend = (demo / "megatron" / "blend.txt").read_text().split()
    assert float(blend[0]) == 1.0 and blend[1].endswith("megatron/00000")
    export_manifest = json.loads((demo / "megatron" / "manifest.json").read_text())
    assert export_manifest["format"] == "megatron-mmidx" and export_manifest["tokens"] == sum(len(d[2]) for d in docs)


def test_texts_that_are_not_utf8_are_quarantined_with_their_text(tmp_path, qwen):
    """The reader hands texts on as bytes: a Parquet string that is not UTF-8 (another tool's file) is quarantined
    as `invalid_utf8` (decoding it used to stop the stage), and a quarantined record keeps its text as a str."""
    inp = write_samples(tmp_path / "in", [sample(0, "def ok():\n    return 1\n"), sample(1, "PLACEHOLDER"),
                                          sample(2, "nul\x00byte é"), sample(3, "x = 'é'\r\n")])
    path = inp / "00000.parquet"
    table = pq.read_table(path)
    texts = table.column("text").to_pylist()
    texts[1] = b"caf\xe9 latin-1"
    bad = pa.array([t if isinstance(t, bytes) else t.encode("utf-8") for t in texts], pa.binary()).view(pa.string())
    pq.write_table(table.set_column(table.schema.get_field_index("text"), table.schema.field("text"), bad), path)
    proc = datakit("tokens", "--input", inp, "--output", tmp_path / "o", "--seq-len", 64)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "o" / "tokens" / "stats.json").read_text())["units"]["documents"]
    assert stats == {"read": 4, "written": 2, "quarantined": {"invalid_utf8": 1, "nul_byte": 1}, "filtered": {}}
    q = pl.read_parquet(tmp_path / "o" / "tokens" / "quarantine" / "*.parquet").sort("reason")
    assert q["reason"].to_list() == ["invalid_utf8", "nul_byte"]
    records = [json.loads(r) for r in q["record"]]
    assert records[0]["text"] == "caf\ufffd latin-1" and records[1]["text"] == "nul\x00byte é"
    docs = list(iter_documents(sorted((tmp_path / "o" / "tokens").glob("*.parquet"))))
    assert [d[0] for d in docs] == ["s0000", "s0003"]
    assert docs[1][2][:-1].tolist() == qwen.encode("x = 'é'\r\n")


def test_inspect_shows_boundaries(demo, capsys):
    shard = sorted((demo / "tokens").glob("*.parquet"))[0]
    assert main(["inspect", str(shard), "--row", "0", "--max-chars", "200"]) == 0
    out = capsys.readouterr().out
    assert "doc 0:" in out and "source=agentless" in out and "trained=" in out
    assert main(["inspect", str(shard), "--row", "10000"]) == 2


def test_bad_documents_are_quarantined_and_counted(tmp_path, qwen):
    inp = write_samples(tmp_path / "in", [sample(0, "def ok():\n    return 1\n"), sample(1, ""),
                                          sample(2, "nul\x00byte"), sample(3, "x = 'é'\r\n")])
    proc = datakit("tokens", "--input", inp, "--output", tmp_path / "o", "--seq-len", 64)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "o" / "tokens" / "stats.json").read_text())["units"]["documents"]
    assert stats == {"read": 4, "written": 2, "quarantined": {"empty": 1, "nul_byte": 1}, "filtered": {}}
    q = pl.read_parquet(tmp_path / "o" / "tokens" / "quarantine" / "*.parquet")
    assert sorted(q["reason"]) == ["empty", "nul_byte"]
    docs = list(iter_documents(sorted((tmp_path / "o" / "tokens").glob("*.parquet"))))
    assert [d[0] for d in docs] == ["s0000", "s0003"]


def test_quarantined_samples_keep_every_column_though_the_stage_reads_a_few(tmp_path):
    """The stage reads only the columns it uses (`SAMPLE_COLUMNS`); a rejected sample's quarantine record is still
    the whole stored record (meta, source, role, prompt_chars …), whichever row group it sits in."""
    meta = {"repo": "Org/Repo", "pr": 7, "files": ["a.py", "b.py"], "template": "agentless@1",
            "structure_tree": "t" * 40}
    rows = []
    for i in range(12):
        text = "" if i in (1, 7) else "nul\x00" if i == 10 else f"def f{i}():\n    return {i}\n"
        rows.append(conform({"prompt": None, "completion": None, "messages": None, "source": None,
                             **sample(i, text), "prompt_chars": 100 + i, "meta": {**meta, "pr": i}}, "sample"))
    table = pa.Table.from_pylist(rows, schema=arrow_schema("sample"))
    (tmp_path / "in").mkdir()
    pq.write_table(table, tmp_path / "in" / "00000.parquet", row_group_size=4)
    stored = {r["id"]: json.loads(json.dumps(r, default=str)) for r in pq.read_table(tmp_path / "in").to_pylist()}
    proc = datakit("tokens", "--input", tmp_path / "in", "--output", tmp_path / "o", "--seq-len", 64)
    assert proc.returncode == 0, proc.stderr
    q = pl.read_parquet(tmp_path / "o" / "tokens" / "quarantine" / "*.parquet").sort("id")
    assert q["id"].to_list() == ["s0001", "s0007", "s0010"]
    for rid, record in zip(q["id"], q["record"]):
        assert json.loads(record) == stored[rid]
        assert json.loads(record)["meta"]["files"] == ["a.py", "b.py"]


def test_long_documents_are_chunked_not_truncated(tmp_path, qwen):
    long_text = "".join(f"def f{i}(x):\n    return x * {i}\n\n" for i in range(400))
    inp = write_samples(tmp_path / "in", [sample(0, long_text), sample(1, "short = 1\n")])
    proc = datakit("tokens", "--input", inp, "--output", tmp_path / "o", "--seq-len", 256)
    assert proc.returncode == 0, proc.stderr
    manifest = verify_manifest(tmp_path / "o" / "tokens")
    n_long = len(qwen.encode(long_text)) + 1
    assert manifest["tokens"] == n_long + len(qwen.encode("short = 1\n")) + 1
    assert manifest["per_source"]["agentless"]["chunks"] == -(-n_long // 256) + 1
    (long_doc,) = [d for d in iter_documents(sorted((tmp_path / "o" / "tokens").glob("*.parquet"))) if d[0] == "s0000"]
    assert long_doc[2].tolist() == qwen.encode(long_text) + [qwen.eod_id]


def test_mixture_budgets_and_upsampling(tmp_path, qwen):
    texts = [f"value_{i} = {i} * {i}\n" * (1 + i % 5) for i in range(200)]
    samples = [sample(i, t, kind="edit" if i < 100 else "synthetic") for i, t in enumerate(texts)]
    inp = write_samples(tmp_path / "in", samples)
    agentless_all = sum(len(qwen.encode(t)) + 1 for t in texts[:100])
    budget = agentless_all // 2
    mixture = json.dumps({"agentless": {"tokens": budget}, "synthetic": {"upsample": 4}})
    proc = datakit("tokens", "--input", inp, "--output", tmp_path / "o", "--seq-len", 512, "--mixture", mixture)
    assert proc.returncode == 0, proc.stderr
    m = verify_manifest(tmp_path / "o" / "tokens")
    achieved = m["per_source"]["agentless"]["tokens"]
    assert m["per_source"]["agentless"]["requested_tokens"] == budget
    assert budget - 40 <= achieved <= budget  # filled up to the budget, never over
    synthetic_once = sum(len(qwen.encode(t)) + 1 for t in texts[100:])
    assert m["per_source"]["synthetic"]["tokens"] == 4 * synthetic_once
    assert m["upsampling"] == {"agentless": 1.0, "synthetic": 4.0}
    stats = json.loads((tmp_path / "o" / "tokens" / "stats.json").read_text())["units"]["documents"]
    assert stats["read"] == 200 and stats["written"] + stats["filtered"]["over_budget"] == 200
    # deterministic: the same input and recipe give the same bytes
    proc = datakit("tokens", "--input", inp, "--output", tmp_path / "o2", "--seq-len", 512, "--mixture", mixture)
    a, b = tree_digest(tmp_path / "o" / "tokens"), tree_digest(tmp_path / "o2" / "tokens")
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a if k != "manifest.json")


def test_fractional_upsampling_is_deterministic(tmp_path):
    from datakit.tokens.mixture import copies

    kept = [copies(0.5, 7, f"id{i}") for i in range(2000)]
    assert 900 < sum(kept) < 1100 and kept == [copies(0.5, 7, f"id{i}") for i in range(2000)]
    assert all(copies(3.0, 7, f"id{i}") == 3 for i in range(10))


def test_seq_len_zero_and_unknown_tokenizer_fail_before_output(tmp_path):
    inp = write_samples(tmp_path / "in", [sample(0, "x = 1\n")])
    proc = datakit("tokens", "--input", inp, "--output", tmp_path / "o", "--seq-len", 0)
    assert proc.returncode != 0 and "seq_len" in proc.stderr
    assert not list((tmp_path / "o").rglob("*.parquet"))
    proc = datakit("tokens", "--input", inp, "--output", tmp_path / "o2", "--tokenizer", str(tmp_path / "nope"))
    assert proc.returncode != 0
    assert not list((tmp_path / "o2").rglob("*.parquet"))


def test_export_refuses_shards_that_differ_from_their_manifest(tmp_path):
    inp = write_samples(tmp_path / "in", [sample(0, "x = 1\n"), sample(1, "y = 2\n")])
    assert datakit("tokens", "--input", inp, "--output", tmp_path / "t", "--seq-len", 16).returncode == 0
    shards = tmp_path / "t" / "tokens"
    shard = next(shards.glob("*.parquet"))
    shard.write_bytes(shard.read_bytes() + b"tampered")
    with pytest.raises(ManifestError, match="sha256 differs"):
        verify_manifest(shards)
    proc = datakit("export", "megatron", "--input", shards, "--output", tmp_path / "e")
    assert proc.returncode != 0 and "sha256 differs" in proc.stderr
    assert not list((tmp_path / "e").rglob("*.bin"))


def run_tokens(tmp_path: Path, inputs: list[Path], **options) -> Path:
    recipe = {"name": "t", "output": str(tmp_path / "o"), "executor": {"type": "local", "tasks": 1, "workers": 1},
              "stages": [{"name": "tokens", "stage": "tokens", "inputs": [str(p) for p in inputs],
                          "options": {"tokenizer": "qwen2.5", **options}}]}
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "r.yaml").write_text(json.dumps(recipe))
    proc = datakit("run", tmp_path / "r.yaml", "--quiet")
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "o" / "tokens"


def test_upsampled_copies_are_spread_over_the_packed_rows(tmp_path, qwen):
    """Before: with upsample 2, a document and its copy sat side by side in one row. Now, on real packed output:
    never two copies in one row, consecutive copies ≥ copy_gap rows apart (here the stream is long enough that
    no copy had to be released early), and the budget counts unique tokens."""
    agentless = write_samples(tmp_path / "a", [sample(i, f"def f{i}(x):\n    return x + {i}\n" * (1 + i % 7))
                                               for i in range(300)])
    synth = write_samples(tmp_path / "s", [sample(1000 + i, f"# note {i}\n" + "y = 1\n" * (1 + i % 5),
                                                  kind="synthetic") for i in range(60)])
    out = run_tokens(tmp_path / "run", [agentless, synth], seq_len=256, window=16, copy_gap=12,
                     mixture={"synthetic": {"upsample": 4}})
    m = verify_manifest(out)
    validate(m, "token_manifest")
    assert m["mixture"]["copy_gap"] == 12 and m["mixture"]["copies_released_early"] == 0
    assert m["mixture"]["min_copy_distance"] >= 12
    where = assert_spread(sorted(out.glob("*.parquet")), 12, 0)
    assert sum(1 for copies in where.values() if len(copies) == 4) == 60
    per = m["per_source"]["synthetic"]
    assert per["tokens"] == 4 * per["unique_tokens"] and per["documents"] == 240 and per["unique_documents"] == 60
    ledger = pq.read_table(out / "mixture").to_pylist()
    assert sorted(r["sample_id"] for r in ledger) == sorted(f"s{1000 + i:04d}" for i in range(60))
    assert {(r["copies"], r["decision"]) for r in ledger} == {(4, "repeated")}
    assert m["mixture"]["ledger"] == {"mixture/00000.parquet": m["mixture"]["ledger"]["mixture/00000.parquet"]}
    # the default gap is the window; a short stream must release its last copies early, and says so
    short = run_tokens(tmp_path / "short", [synth], seq_len=256, window=16)
    ms = verify_manifest(short)
    assert ms["upsampling"] == {"synthetic": 4.0}  # synthetic's default factor
    assert ms["mixture"]["copy_gap"] == 16 and ms["mixture"]["copies_released_early"] > 0
    assert_spread(sorted(short.glob("*.parquet")), 16, ms["mixture"]["copies_released_early"])


def test_budget_counts_unique_tokens_and_the_ledger_names_what_was_left_out(tmp_path, qwen):
    texts = [f"z_{i} = {i}\n" * (1 + i % 4) for i in range(80)]
    synth = write_samples(tmp_path / "s", [sample(i, t, kind="synthetic") for i, t in enumerate(texts)])
    unique_all = sum(len(qwen.encode(t)) + 1 for t in texts)
    budget = unique_all // 2
    out = run_tokens(tmp_path / "run", [synth], seq_len=256, window=8,
                     mixture={"synthetic": {"tokens": budget, "upsample": 4}})
    m = verify_manifest(out)
    per = m["per_source"]["synthetic"]
    assert per["requested_tokens"] == budget and budget - 40 <= per["unique_tokens"] <= budget
    assert per["tokens"] == 4 * per["unique_tokens"]  # 4x the budget in the stream, the budget unique
    ledger = pq.read_table(out / "mixture").to_pylist()
    left = [r for r in ledger if r["decision"] == "over_budget"]
    assert len(left) == per["left_out_documents"] == per["over_budget_documents"] > 0
    assert sum(r["tokens"] for r in left) == per["left_out_tokens"] == unique_all - per["unique_tokens"]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["units"]["documents"]["filtered"] == {"over_budget": len(left)}
    assert stats["counters"]["mixture.synthetic.over_budget_tokens"] == per["left_out_tokens"]
    # fractions of a target after up-sampling: 0.5 of 4 * unique_all with factor 4 = unique_all / 2 unique
    out2 = run_tokens(tmp_path / "frac", [synth], seq_len=256, window=8, target_tokens=float(4 * unique_all),
                      mixture={"synthetic": {"fraction": 0.5, "upsample": 4}})
    assert verify_manifest(out2)["per_source"]["synthetic"]["requested_tokens"] == unique_all * 4 * 0.5 / 4


def test_sft_conversations_longer_than_seq_len_are_left_out_not_split(tmp_path, qwen):
    """never_split (default ["sft"]): an SFT conversation longer than seq_len would be chunked across rows by the
    packer; it is left out (`too_long`), counted and listed in the ledger. Other kinds are still chunked."""
    from datakit.tokens.chat import render_chat

    def chat(i: int, turns: int) -> dict:
        msgs = [{"role": "user", "content": f"fix bug {i}"}]
        for t in range(turns):
            msgs += [{"role": "assistant", "content": f"step {t}: edit file_{t}.py line {t * 7}"},
                     {"role": "user", "content": f"observation {t}: ok"}]
        return {**sample(i, "", kind="sft"), "role": "none", "messages": msgs + [{"role": "assistant", "content": "done"}]}

    short, long_ = chat(1, 2), chat(2, 40)
    n_long = len(render_chat(long_["messages"], qwen)[0])
    assert n_long > 256 > len(render_chat(short["messages"], qwen)[0])
    long_edit = sample(3, "".join(f"v{i} = {i}\n" for i in range(200)))
    inp = write_samples(tmp_path / "in", [short, long_, long_edit])
    out = run_tokens(tmp_path / "run", [inp], seq_len=256)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["units"]["documents"] == {"read": 3, "written": 2, "quarantined": {}, "filtered": {"too_long": 1}}
    assert stats["counters"]["mixture.sft.too_long_tokens"] == n_long
    ledger = pq.read_table(out / "mixture").to_pylist()
    assert ledger == [{"sample_id": "s0002", "source": "sft", "tokens": n_long, "copies": 0, "decision": "too_long"}]
    m = verify_manifest(out)
    validate(m, "token_manifest")
    per = m["per_source"]["sft"]
    assert (per["too_long_documents"], per["left_out_documents"], per["left_out_tokens"]) == (1, 1, n_long)
    assert per["unique_documents"] == 1 and per["upsample"] == 1.0
    docs = {d[0]: d for d in iter_documents(sorted(out.glob("*.parquet")))}
    assert sorted(docs) == ["s0001", "s0003"]
    assert m["per_source"]["agentless"]["chunks"] > 1  # a long mid-training document is still chunked
    # the option off: the conversation is chunked like any document
    out2 = run_tokens(tmp_path / "off", [inp], seq_len=256, never_split=[])
    assert sorted(d[0] for d in iter_documents(sorted(out2.glob("*.parquet")))) == ["s0001", "s0002", "s0003"]
    bad = {"name": "t", "output": str(tmp_path / "o3"), "stages": [
        {"name": "tokens", "stage": "tokens", "input": str(inp), "options": {"never_split": ["chat"]}}]}
    (tmp_path / "bad.yaml").write_text(json.dumps(bad))
    proc = datakit("run", tmp_path / "bad.yaml", "--quiet")
    assert proc.returncode != 0 and "never_split" in proc.stderr and "chat" in proc.stderr


# ---------------------------------------------------------------------------------- the validation split by repo

N_REPOS = 40
VALIDATION = {"fraction": 0.25, "seed": 3, "repos": ["Org07/Repo07"]}  # listed names compare in lower case


def repo_samples(folder: Path) -> dict[str, str | None]:
    """Samples of 40 repositories (their names spelt in mixed case by some sources) and synthetic ones with none,
    over 4 files (tasks shard by file); returns sample id → repository (lower case) or None."""
    kinds = ["edit", "localize", "commit_bundle"]
    rows, repo_of = [], {}
    for i in range(N_REPOS * 5):
        r = i % N_REPOS
        name = f"org{r:02d}/repo{r:02d}" if i % 2 else f"Org{r:02d}/Repo{r:02d}"
        where = {"meta": {"repo": name}} if i % 3 else {"source": {"kind": "git", "repo": name}}
        rows.append({**sample(i, f"def f{i}(x):\n    return x * {i} + {r}\n" * (1 + i % 3), kinds[i % 3]), **where})
        repo_of[rows[-1]["id"]] = name.lower()
    for i in range(30):
        rows.append(sample(5000 + i, f"# thought {i}\nanswer = {i}\n", kind="synthetic"))
        repo_of[rows[-1]["id"]] = None
    for k in range(4):
        write_samples(folder, rows[k::4], f"{k:05d}.parquet")
    return repo_of


def expected_valid_repos() -> set[str]:
    from datakit.tokens.mixture import unit_hash

    return {f"org{r:02d}/repo{r:02d}" for r in range(N_REPOS)
            if unit_hash(3, f"repo:org{r:02d}/repo{r:02d}") < 0.25} | {"org07/repo07"}


def run_split(tmp_path: Path, inp: Path, tasks: int, validation: dict) -> Path:
    recipe = {"name": "v", "output": str(tmp_path / "o"), "executor": {"type": "local", "tasks": tasks, "workers": 1},
              "stages": [{"name": "tokens", "stage": "tokens", "inputs": [str(inp)],
                          "options": {"seq_len": 128, "window": 8, "validation": validation,
                                      "mixture": {"agentless": {"upsample": 2}}}},
                         {"name": "megatron", "stage": "export.megatron", "input": "tokens", "tasks": 2}]}
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "r.yaml").write_text(json.dumps(recipe))
    proc = datakit("run", tmp_path / "r.yaml", "--quiet")
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "o"


@pytest.fixture(scope="module")
def split_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("split")
    repo_of = repo_samples(tmp / "in")
    return repo_of, {tasks: run_split(tmp / f"t{tasks}", tmp / "in", tasks, VALIDATION) for tasks in (1, 3)}


def split_docs(out: Path) -> tuple[dict, dict]:
    train = {d[0]: d for d in iter_documents(sorted((out / "tokens").glob("*.parquet")))}
    valid = {d[0]: d for d in iter_documents(sorted((out / "tokens" / "valid").glob("*.parquet")))}
    return train, valid


def test_validation_split_holds_out_whole_repositories(split_runs):
    repo_of, runs = split_runs
    out = runs[1]
    train, valid = split_docs(out)
    train_repos = {repo_of[s.split("@")[0]] for s in train} - {None}
    valid_repos = {repo_of[s] for s in valid}
    assert valid_repos == expected_valid_repos() and 0 < len(valid_repos) < N_REPOS
    assert not train_repos & valid_repos and train_repos | valid_repos == set(filter(None, repo_of.values()))
    # every document in exactly one split; a validation document once (no up-sampled copy, in either split)
    assert {s.split("@")[0] for s in train} | set(valid) == set(repo_of)
    assert not {s.split("@")[0] for s in train} & set(valid) and all("@" not in s for s in valid)
    assert all(repo_of[s] for s in valid)  # synthetic samples (no repository) stay in train by default
    rows = [r for p in sorted((out / "tokens" / "valid").glob("*.parquet")) for r in iter_rows(p)]
    assert all(k == 0 for r in rows for k in r["repeat"])
    assert sum(len(r["sample_ids"]) for r in rows) == len(valid)  # short documents: one segment each
    # the counts add up: units, manifests, counters
    m = verify_manifest(out / "tokens")
    vm = verify_manifest(out / "tokens" / "valid")
    for manifest in (m, vm):
        validate(manifest, "token_manifest")
    stats = json.loads((out / "tokens" / "stats.json").read_text())
    assert stats["units"]["documents"] == {"read": len(repo_of), "written": len(repo_of), "quarantined": {},
                                           "filtered": {}}
    v = m["validation"]
    assert (m["split"], vm["split"], vm["repos"]) == ("train", "valid", sorted(valid_repos))
    assert (v["repositories"], v["documents"], v["listed_repos"]) == (len(valid_repos), len(valid), ["org07/repo07"])
    assert v["tokens"] == vm["tokens"] == sum(len(d[2]) for d in valid.values())
    assert vm["per_source"]["agentless"]["upsample"] == 1.0 and m["per_source"]["agentless"]["upsample"] == 2.0
    assert sum(stats["counters"][f"valid.{s}.documents"] for s in vm["per_source"]) == len(valid)
    assert m["documents"] == len(train) and m["per_source"]["synthetic"]["unique_documents"] == 30


def test_validation_split_is_the_same_for_any_task_count(split_runs):
    _, runs = split_runs
    (train1, valid1), (train3, valid3) = split_docs(runs[1]), split_docs(runs[3])
    assert sorted(valid1) == sorted(valid3) and sorted(train1) == sorted(train3)
    assert all(np.array_equal(valid1[s][2], valid3[s][2]) for s in valid1)
    assert len(list((runs[3] / "tokens" / "valid").glob("*.parquet"))) == 3


@pytest.mark.filterwarnings("ignore:.*(Transformer Engine|Apex).*:UserWarning")
@pytest.mark.filterwarnings("ignore:The pad token id in the tokenizer collides:UserWarning")
def test_validation_export_is_its_own_megatron_dataset(split_runs):
    import megatron.core  # noqa: F401  (in the test extras: a missing install fails, it does not skip)
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    _, runs = split_runs
    out = runs[3]
    _, valid = split_docs(out)
    words = (out / "megatron" / "valid_blend.txt").read_text().split()
    prefixes = words[1::2]
    assert all(Path(p).parent == out / "megatron" / "valid" for p in prefixes)
    seen = []
    for prefix in prefixes:  # megatron-core reads the valid export back token for token
        shard = out / "tokens" / "valid" / (Path(prefix).name + ".parquet")
        docs = list(iter_documents([shard]))
        ds = IndexedDataset(prefix)
        assert len(ds) == len(docs) and all(np.array_equal(ds[i], d[2]) for i, d in enumerate(docs))
        seen += [d[0] for d in docs]
    assert sorted(seen) == sorted(valid)
    train_words = (out / "megatron" / "blend.txt").read_text().split()
    assert not set(train_words[1::2]) & set(prefixes)
    per_split = json.loads((out / "megatron" / "per_split.json").read_text())
    assert per_split == {"train": train_words, "valid": words, "test": None}
    # what pretrain_gpt.py builds from --train-data-path blend.txt --valid-data-path valid_blend.txt (no --split)
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.utils import get_blend_from_list

    class Qwen:
        vocab_size, eod, pad = 151_665, 151_643, 151_643
        unique_identifiers = {"class": "Qwen2.5"}

    config = GPTDatasetConfig(random_seed=1, sequence_length=32, split=None, tokenizer=Qwen(),
                              blend_per_split=[get_blend_from_list(train_words), get_blend_from_list(words), None],
                              reset_position_ids=True, reset_attention_mask=True, eod_mask_loss=True,
                              path_to_cache=None, mmap_bin_files=True)
    built = BlendedMegatronDatasetBuilder(GPTDataset, [16, 8, 0], lambda: True, config).build()
    for ds, want in ((built[0], set(train_words[1::2])), (built[1], set(prefixes))):
        parts = ds.datasets if hasattr(ds, "datasets") else [ds]
        assert len(ds) > 0 and {p.dataset_path for p in parts} <= want
    em = json.loads((out / "megatron" / "manifest.json").read_text())
    assert em["validation"]["documents"] == len(valid) and em["validation"]["blend"] == "valid_blend.txt"
    assert em["documents"] == len(split_docs(out)[0]) and em["files"] and all("/" not in f for f in em["files"])
    assert sorted(em["validation"]["files"]) == sorted(f"valid/{Path(p).name}{x}" for p in prefixes
                                                       for x in (".bin", ".idx"))


def test_validation_split_options_and_tampering(tmp_path, split_runs):
    from datakit.tokens.mixture import parse_validation

    repo_of, runs = split_runs
    for bad in ({"fraction": 1.0}, {"fraction": "x"}, {"repos": ["norepo"]}, {"without_repo": "drop"}, {"frac": 0.1}):
        with pytest.raises(ValueError, match="validation"):
            parse_validation(bad)
    # samples with no repository go to validation only when asked
    inp = write_samples(tmp_path / "in", [sample(i, f"x = {i}\n", kind="synthetic") for i in range(6)]
                        + [{**sample(9, "y = 1\n"), "meta": {"repo": "a/b"}}])
    out = run_split(tmp_path / "run", inp, 1, {"without_repo": "valid"})
    train, valid = split_docs(out)
    assert sorted(valid) == [f"s{i:04d}" for i in range(6)] and list(train) == ["s0009", "s0009@1"]
    shard = next((out / "tokens" / "valid").glob("*.parquet"))
    shard.write_bytes(shard.read_bytes() + b"x")
    with pytest.raises(ManifestError, match="valid"):
        verify_manifest(out / "tokens")


@pytest.mark.filterwarnings("ignore:.*(Transformer Engine|Apex).*:UserWarning")
def test_gpu_smoke_script_builds_its_data_and_model_on_cpu(split_runs):
    """recipes/megatron/gpu_smoke.py trains only on a GPU; here its --check builds the per-split datasets from this
    export (train and the held-out repositories) and megatron-core's GPTModel, on CPU."""
    import megatron.core  # noqa: F401  (in the test extras: a missing install fails, it does not skip)
    import subprocess
    import sys

    out = split_runs[1][3] / "megatron"
    proc = subprocess.run([sys.executable, str(Path(__file__).parent.parent / "recipes" / "megatron" / "gpu_smoke.py"),
                           "--export", str(out), "--check", "--seq-len", "64", "--batch-size", "2", "--steps", "10"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["train_samples"] >= 20 and info["valid_samples"] >= 8
    assert info["tokens"] == [2, 64] and info["attention_mask"] == [2, 1, 64, 64]
    # 2 layers, hidden 256, Qwen2.5's padded vocabulary in and out (untied): the embeddings dominate
    assert 2 * 152_064 * 256 < info["parameters"] < 2 * 152_064 * 256 + 3_000_000


def test_tokens_step_switches_arrow_to_jemalloc():
    """The tokens step allocates Arrow's buffers through jemalloc (see `use_lean_arrow_pool`), in a fresh process;
    the token batches it encodes live in that pool."""
    import subprocess
    import sys

    code = ("import pyarrow as pa; before = pa.default_memory_pool().backend_name; "
            "from datakit.tokens.steps import use_lean_arrow_pool; name = use_lean_arrow_pool(); "
            "from datakit.tokens.tokenizer import load_tokenizer; tok = load_tokenizer('qwen2.5'); "
            "n = pa.total_allocated_bytes(); ids = tok.encode_batch_arrays([b'def f(x):', 'caf\\u00e9'], "
            "append_eod=True); "
            "print(before != 'jemalloc', name, pa.default_memory_pool().backend_name, "
            "pa.total_allocated_bytes() > n, [int(a[-1]) for a in ids] == [tok.eod_id] * 2)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "jemalloc", "jemalloc", "True", "True"]
