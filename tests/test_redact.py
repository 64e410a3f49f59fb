"""Redaction keeps samples whole: the same secret reads the same everywhere in a sample, an Agentless edit sample
still round-trips (SEARCH blocks match the redacted base files shown in the prompt), a bundle's diffs still apply
to the redacted parent files, a chat still renders to its text; what cannot be kept consistent is quarantined;
and the `redact` stage counts add up."""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from unidiff import PatchSet

from datakit.bundles.build import build_bundle
from datakit.bundles.diffs import FileChange, apply_hunks
from datakit.bundles.render import BundleCommit
from datakit.io.schemas import arrow_schema, conform
from datakit.redact.detect import Finding, find_secrets
from datakit.redact.replace import Redaction, placeholder
from datakit.redact.samples import RedactReject, _check_bundle, redact_sample
from datakit.samples.agentless import Limits, build_unit, target_files
from datakit.samples.edits import apply_edits, parse_edits
from datakit.sft.agentless import shown_files
from datakit.tokens.chat import render_chat_text

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "ghp_" + "Zq81bWm3Xc0Lr7Tn2Yv5Kd9Hs4Pf6Ga1Jx8E"  # 36 after the prefix
TOKEN2 = "ghp_" + "Mk3nB7vC1xZ9lK5jH2gF8dS4aQ6wE0rT3yU7"
AWS = "AKIA" + "Q3V7N2K9X4M8B1Z6"
EMAIL = "jane.doe@gmail.com"
KEY_BODY = ["MIIEowIBAAKCAQEAx7Qv3fLr9Tz2mNc8bVw1KpYs5Jd0Hg4Ea6Ro2Ui8Ty7Wq3Xe",
            "Zb9Nm2Lk7Jh4Gf1Ds8Aq5Wz3Xc6Vb0Nm9Lk2Jh7Gf4Ds1Aq8Wz5Xc3Vb6Nm0Lk9Jh",
            "+Rt5Yu8Io2Pa4Sd6Fg1Hj3Kl7Zx9Cv0Bn2Mq5We8Rt1Yu4Io6Pa3Sd7Fg9Hj0Kl2Z"]
PEM = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(KEY_BODY) + "\n-----END RSA PRIVATE KEY-----\n"

OLD_CONFIG = f'''"""Settings."""

GITHUB_TOKEN = "{TOKEN}"
BACKUP_TOKEN = "{TOKEN2}"
OWNER = "{EMAIL}"


def client():
    return Client(token="{TOKEN}", aws="{AWS}")
'''
NEW_CONFIG = OLD_CONFIG.replace(f'GITHUB_TOKEN = "{TOKEN}"', 'GITHUB_TOKEN = os.environ["GITHUB_TOKEN"]') \
    .replace('    return Client(', '    # the key must not live in the code\n    return Client(')


def _pr(body: str, issue: str = f"The token {TOKEN} is in config.py; ping {EMAIL}.") -> dict:
    return {"repo": "octo/app", "number": 7, "title": "Stop shipping the token", "body": body,
            "base_sha": "a" * 40, "head_sha": "b" * 40, "merge_sha": "c" * 40, "fork_of": None,
            "linked_issues": [{"repo": "octo/app", "number": 3, "title": "Token leaked",
                               "body": issue, "fetched": True}],
            "files": [{"path": "app/config.py", "status": "modified", "additions": 2, "deletions": 1}],
            "commits": [], "source": {"kind": "git", "method": "merge_commit", "repo": "octo/app", "pr": 7,
                                      "commit": "c" * 40, "crawled_at": None, "missing": []}}


def edit_pair(old: str = OLD_CONFIG, new: str = NEW_CONFIG, **issue) -> tuple[dict, dict]:
    pr = _pr("", **issue)
    localize, edit = build_unit(pr, "bugfixer", target_files(pr, "bugfixer"),
                                {"app/config.py": (old.encode(), new.encode())}, lambda: "app/\n  config.py\n",
                                None, Limits())
    return localize, edit


def read_back(sample: dict) -> tuple[dict, dict]:
    """(base files shown in the prompt, the files after applying the completion) — as a trainer would."""
    cut = sample["prompt_chars"]
    edits = parse_edits(sample["text"][cut:])
    base = shown_files(sample["text"][:cut], sample["role"], [e.old_path or e.path for e in edits])
    return base, apply_edits(base, edits)


# ------------------------------------------------------------------------------------------------- placeholders

def test_same_secret_same_placeholder_distinct_secrets_numbered():
    doc = f"a {TOKEN} b {TOKEN2} c {TOKEN} d {EMAIL} e jo@corp.io f {EMAIL}\n"
    red = Redaction.build(find_secrets(doc), avoid=doc)
    out = red.apply(doc)
    assert out == ("a <SECRET:github_token> b <SECRET:github_token_2> c <SECRET:github_token> d <EMAIL> "
                   "e <EMAIL_2> f <EMAIL>\n")
    assert red.counts == Counter({"github_token": 2, "email": 2})


def test_a_placeholder_already_in_the_text_is_not_reused():
    doc = f"earlier redacted: <SECRET:github_token>; new: {TOKEN}\n"
    out = Redaction.build(find_secrets(doc), avoid=doc).apply(doc)
    assert out == "earlier redacted: <SECRET:github_token>; new: <SECRET:github_token_2>\n"


def test_longest_value_wins_and_thousands_of_values_each_get_theirs():
    short, long = "abcdefgh1234", "abcdefgh12345678"
    red = Redaction.build([Finding("secret_assignment", short, 0), Finding("secret_assignment", long, 1)])
    assert red.apply(f"{long} {short} {long}x") == ("<SECRET:secret_assignment_2> <SECRET:secret_assignment> "
                                                   "<SECRET:secret_assignment_2>x")
    emails = [f"user{i:04d}.x@gmail.com" for i in range(3000)]  # a mailing-list page
    doc = "".join(f"From: {e}\n" for e in emails)
    out = Redaction.build(find_secrets(doc), avoid=doc).apply(doc)
    assert "@gmail" not in out and out.splitlines()[-1] == "From: <EMAIL_3000>" and len(set(out.splitlines())) == 3000


def test_private_key_lines_share_one_placeholder_and_keep_their_shape():
    doc = "key:\n" + PEM + "\ndiff:\n" + "".join(f"+{ln}\n" for ln in PEM.splitlines())
    out = Redaction.build(find_secrets(doc), avoid=doc).apply(doc)
    assert out.count("\n") == doc.count("\n")
    assert not any(b.lstrip("+") in out for b in KEY_BODY)
    assert out.splitlines()[1:6] == ["-----BEGIN RSA PRIVATE KEY-----", "<SECRET:private_key>",
                                     "<SECRET:private_key>", "+<SECRET:private_key>", "-----END RSA PRIVATE KEY-----"]
    assert "++<SECRET:private_key>" in out  # the diff's own + marker, then the line's


def test_url_password_replaced_only_in_the_url():
    doc = "DB = 'postgres://app:Wk3v9Lz2Qx@db:5432/x'\n# Wk3v9Lz2Qx elsewhere is a word now\n"
    out = Redaction.build(find_secrets(doc), avoid=doc).apply(doc)
    assert out == "DB = 'postgres://app:<SECRET:url_password>@db:5432/x'\n# Wk3v9Lz2Qx elsewhere is a word now\n"


def test_redaction_is_idempotent():
    doc = OLD_CONFIG + PEM
    once = Redaction.build(find_secrets(doc), avoid=doc).apply(doc)
    assert once != doc and [f for f in find_secrets(once) if not f.example] == []
    assert placeholder("email", 3) == "<EMAIL_3>" and placeholder("jwt", 1) == "<SECRET:jwt>"


# ---------------------------------------------------------------------------------------------- edit samples

def test_edit_sample_round_trips_after_redaction():
    _, edit = edit_pair()
    out, red = redact_sample(edit)
    assert TOKEN not in out["text"] and EMAIL not in out["text"] and AWS not in out["text"]
    assert red.counts == Counter({"github_token": 2, "email": 1, "aws_access_key": 1})
    assert out["text"][:out["prompt_chars"]] == red.apply(edit["text"][:edit["prompt_chars"]])
    base, result = read_back(out)
    base0, result0 = read_back(edit)
    assert base == {p: red.apply(c) for p, c in base0.items()}  # the prompt shows the equally redacted base
    assert result == {p: red.apply(c) for p, c in result0.items()}  # the edits give the redacted PR result
    assert 'GITHUB_TOKEN = "<SECRET:github_token>"' in out["text"][out["prompt_chars"]:]  # in a SEARCH block


def test_a_key_rotation_edit_gets_numbered_key_lines_and_round_trips():
    # six lines, none starting with "+": with one placeholder for all, the SEARCH block (three of them) would match
    # four places in the redacted file
    body = [KEY_BODY[0], KEY_BODY[1], KEY_BODY[0][::-1], KEY_BODY[1][::-1], KEY_BODY[2][::-1], KEY_BODY[0][1:] + "A"]
    old = 'KEY = """\n-----BEGIN RSA PRIVATE KEY-----\n' + "\n".join(body) + '\n-----END RSA PRIVATE KEY-----\n"""\n'
    new = old.replace(body[3], "Xq" + body[3][2:])
    _, edit = edit_pair(old, new, issue="Rotate the key.")
    out, red = redact_sample(edit)
    assert not any(b.lstrip("+") in out["text"] for b in body)
    assert "<SECRET:private_key#4>" in out["text"] and red.counts == Counter({"private_key": 2})  # old key, new key
    base, result = read_back(out)
    base0, result0 = read_back(edit)
    assert base == {p: red.apply(c) for p, c in base0.items()} and result != base
    assert result == {p: red.apply(c) for p, c in result0.items()}


def test_localize_sample_redacted_files_unchanged():
    localize, _ = edit_pair()
    out, red = redact_sample(localize)
    assert red.counts == Counter({"github_token": 1, "email": 1})  # the issue text holds them
    assert out["text"][out["prompt_chars"]:] == localize["text"][localize["prompt_chars"]:]


def test_sample_without_findings_is_returned_as_is():
    clean = OLD_CONFIG.replace(TOKEN, "x").replace(TOKEN2, "y").replace(EMAIL, "z").replace(AWS, "w")
    _, edit = edit_pair(clean, clean.replace('"x"', '"v"'), issue="The token is in config.py.")
    out, red = redact_sample(edit)
    assert out is edit and not red


def test_secret_in_a_path_is_quarantined():
    _, edit = edit_pair()
    edit = {**edit, "meta": {**edit["meta"], "files": [f"keys/{TOKEN}.txt"]}}
    with pytest.raises(RedactReject) as exc:
        redact_sample(edit)
    assert exc.value.reason == "secret_in_path"


def test_an_edit_sample_that_does_not_read_back_is_quarantined():
    _, edit = edit_pair()
    cut = edit["prompt_chars"]
    broken = {**edit, "text": edit["text"][:cut - 40] + edit["text"][cut:], "prompt_chars": cut - 40}
    with pytest.raises(RedactReject) as exc:
        redact_sample(broken)
    assert exc.value.reason == "unreadable_sample"


# --------------------------------------------------------------------------------------------------- bundles

def _change(path: str, old: str, new: str) -> FileChange:
    lines = difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{path}", f"b/{path}")
    patch = f"diff --git a/{path} b/{path}\n" + "".join(lines)
    return FileChange(path, path, "modified", patch, old, new, 2, 1, None)


def bundle_sample(old: str = OLD_CONFIG, new: str = NEW_CONFIG) -> dict:
    pr = {**_pr(f"Removes the token. Reported by {EMAIL}."), "review_comments": [f"LGTM, but rotate {TOKEN}"]}
    commit = BundleCommit("d" * 40, f"Drop the hard-coded token\n\nCo-authored-by: Jane <{EMAIL}>", "Jane", False,
                          [_change("app/config.py", old, new)])
    sample, _ = build_bundle(pr, [commit])
    return sample


def test_bundle_diff_applies_to_the_redacted_parent_after_redaction():
    sample = bundle_sample(OLD_CONFIG + PEM, NEW_CONFIG + PEM.replace(KEY_BODY[1], KEY_BODY[1][::-1]))
    out, red = redact_sample(sample)
    assert TOKEN not in out["text"] and EMAIL not in out["text"] and KEY_BODY[0] not in out["text"]
    assert red.counts["private_key"] == 1 and red.counts["github_token"] == 2
    diff = out["text"].split("````diff\n" if "````diff\n" in out["text"] else "```diff\n", 1)[1].rsplit("\n```", 1)[0]
    (patched,) = PatchSet.from_string(diff + "\n")
    old_red = red.apply(OLD_CONFIG + PEM)
    assert apply_hunks(old_red, patched) == red.apply(NEW_CONFIG + PEM.replace(KEY_BODY[1], KEY_BODY[1][::-1]))


def test_bundle_hunk_inside_a_key_without_its_begin_line_is_redacted():
    lines = [(KEY_BODY[k % 3][1:] + KEY_BODY[(k + 1) % 3])[:63] + "ABCDEFGHIJKLMNOP"[k] for k in range(12)]
    old = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END RSA PRIVATE KEY-----\n"
    new = old.replace(lines[6], lines[6][::-1])
    sample = bundle_sample(old, new)
    assert "-----BEGIN" not in sample["text"]  # three lines of context: the hunk shows body lines only
    out, red = redact_sample(sample)
    assert not [ln for ln in lines[3:10] + [lines[6][::-1]] if ln in out["text"]]
    diff = out["text"].split("```diff\n", 1)[1].rsplit("\n```", 1)[0]
    (patched,) = PatchSet.from_string(diff + "\n")
    assert apply_hunks(red.apply(old), patched) == red.apply(new)


def test_a_diff_block_written_in_the_pr_body_is_redacted_as_text():
    sample = bundle_sample()
    head, sep, rest = sample["text"].partition("\n\n")
    snippet = f"```diff\n@@ -1 +1 @@\n-TOKEN = {TOKEN}\n+TOKEN = env\n```"  # a hunk without file headers
    sample = {**sample, "text": head + "\n" + snippet + sep + rest}
    out, red = redact_sample(sample)
    assert f"-TOKEN = <SECRET:github_token>\n+TOKEN = env" in out["text"] and TOKEN not in out["text"]


def test_bundle_check_catches_a_redaction_that_eats_a_diff_marker():
    sample = bundle_sample()
    text = sample["text"]
    bad = Redaction.build([Finding("secret_assignment", '+    # the key', text.index('+    # the key'))])
    with pytest.raises(RedactReject) as exc:
        _check_bundle(text, bad.apply(text), bad)
    assert exc.value.reason == "redaction_breaks_diff"


# ------------------------------------------------------------------------------------------------------ chats

def chat_sample(arguments: str) -> dict:
    messages = [{"role": "user", "content": f"Deploy with my key {TOKEN}, mail {EMAIL} when done."},
                {"role": "assistant", "content": "", "reasoning": f"The user gave {TOKEN}.",
                 "tool_calls": [{"id": "call_0", "name": "deploy", "arguments": arguments}]},
                {"role": "tool", "content": "ok", "tool_call_id": "call_0", "name": "deploy"},
                {"role": "assistant", "content": "Deployed."}]
    messages = [{"role": m["role"], "content": m["content"], "reasoning": m.get("reasoning"),
                 "tool_calls": m.get("tool_calls"), "tool_call_id": m.get("tool_call_id"), "name": m.get("name")}
                for m in messages]
    tools = [json.dumps({"type": "function", "function": {"name": "deploy", "parameters": {"type": "object"}}})]
    return {"id": "chat1", "kind": "synthetic", "role": "none", "messages": messages, "tools": tools,
            "text": render_chat_text(messages, tools=[json.loads(t) for t in tools]), "prompt_chars": None,
            "meta": {}, "source": None}


def test_chat_messages_and_tool_arguments_redacted_alike():
    sample = chat_sample(json.dumps({"token": TOKEN, "notify": EMAIL}))
    out, red = redact_sample(sample)
    assert TOKEN not in json.dumps(out["messages"]) and TOKEN not in out["text"]
    assert json.loads(out["messages"][1]["tool_calls"][0]["arguments"]) == {"token": "<SECRET:github_token>",
                                                                            "notify": "<EMAIL>"}
    assert out["text"] == render_chat_text(out["messages"], tools=[json.loads(t) for t in out["tools"]])


def test_chat_whose_raw_arguments_escape_the_secret_is_quarantined():
    escaped = json.dumps({"token": TOKEN2}).replace(TOKEN2[4], "\\u%04x" % ord(TOKEN2[4]), 1)
    sample = chat_sample(escaped)  # the rendered text shows TOKEN2, the raw arguments an escape of it
    assert TOKEN2 in sample["text"]
    with pytest.raises(RedactReject) as exc:
        redact_sample(sample)
    assert exc.value.reason in ("redaction_breaks_chat", "redaction_incomplete")


# ------------------------------------------------------------------------------------------------------ stage

def _write(folder: Path, samples: list[dict]) -> None:
    folder.mkdir(parents=True)
    schema = arrow_schema("sample")
    pq.write_table(pa.Table.from_pylist([conform(s, "sample") for s in samples], schema=schema),
                   folder / "00000.parquet")


def _rows(folder: Path) -> list[dict]:
    return [r for f in sorted(folder.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def _stats(folder: Path) -> Counter:
    total: Counter = Counter()
    for f in (folder / ".datakit").rglob("stats/*.json"):
        for step in json.loads(f.read_text()):
            for k, v in step["stats"].items():
                total[k] += v["total"] if isinstance(v, dict) else v
    return total


def test_redact_stage_counts_add_up_and_writes_what_redact_sample_gives(tmp_path):
    localize, edit = edit_pair()
    bad = {**edit, "id": "bad", "meta": {**edit["meta"], "files": [f"{TOKEN}.py"]}}
    clean = {**localize, "id": "clean", "text": "nothing to see\n", "prompt_chars": 8}
    inputs = {"in_a": [localize, edit, bad, clean], "in_b": [bundle_sample(), chat_sample(json.dumps({"token": TOKEN}))]}
    for name, samples in inputs.items():
        _write(tmp_path / name, samples)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\noutput: {tmp_path / 'out'}\nexecutor: {{type: local, tasks: 2, workers: 1}}\n"
                      f"stages:\n  - {{name: redact, stage: redact, inputs: [{tmp_path / 'in_a'}, {tmp_path / 'in_b'}]}}\n"
                      # where it stands in a corpus recipe: decontam reads what redact wrote
                      "  - {name: decontam, stage: decontam, inputs: [redact], options: {mirrors: false}}\n")
    proc = subprocess.run([sys.executable, "-m", "datakit.cli", "run", str(recipe), "--quiet"], capture_output=True,
                          text=True, cwd=tmp_path, env={**os.environ, "COLUMNS": "200"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out" / "redact"
    s = _stats(out)
    assert s["samples.read"] == 6 == s["samples.written"] + s["samples.quarantined.secret_in_path"]
    assert s["samples.quarantined.secret_in_path"] == 1 and s["redact.samples_redacted"] == 4
    assert s["redact.secrets.github_token"] == 1 + 2 + 2 + 1 and s["redact.secrets.email"] == 4
    rows = {r["id"]: r for r in _rows(out)}
    expected = {r["id"]: redact_sample(r)[0] for rs in inputs.values() for r in rs if r["id"] != "bad"}
    assert {i: (r["text"], r["prompt_chars"]) for i, r in rows.items()} == \
        {i: (r["text"], r["prompt_chars"]) for i, r in expected.items()}  # whatever task a row landed in
    assert not any(TOKEN in r["text"] or EMAIL in r["text"] for r in rows.values())
    assert [r["id"] for r in _rows(out / "quarantine")] == ["bad"]
    d = _stats(out.parent / "decontam")
    assert d["samples.read"] == 5 == sum(len(_rows(out.parent / "decontam" / f)) for f in ("", "quarantine"))
