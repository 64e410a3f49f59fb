"""The dedup stage's pure parts (normalisation, what a sample is for dedup, the keep rule, the tokenizer) and the
stage on small corpora: counts add up, the upstream / oldest copy is kept whatever the order or task count,
groups never mix, reruns change nothing. The precision figures are tests/test_dedup_pairs.py's."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from datakit.dedup.content import (CodeWordTokenizer, dedup_texts, exact_hash, keep_key, normalise_exact,
                                   template_fields)
from datakit.samples.templates import TEMPLATES, render_file_list, render_files
from tests.test_dedup_pairs import Base, _row, labelled_set, run_dedup, stdlib_functions


def test_normalise_exact_folds_whitespace_and_line_ends_only():
    assert normalise_exact("def f():\r\n    return  1 \r\n\r\n\tpass\r") == "def f():\nreturn 1\npass"
    assert normalise_exact("a\u0301") == normalise_exact("\u00e1")  # NFC
    assert normalise_exact("a b") != normalise_exact("ab")  # a token boundary is content
    assert normalise_exact("x = 1") != normalise_exact("x = 2")


@pytest.mark.parametrize("key", sorted(TEMPLATES))
def test_template_fields_read_back_what_was_rendered(key):
    template = TEMPLATES[key]
    fields = {"problem_statement": "Crash on --- BEGIN FILE --- in a title\n\nbody ###", "max_files": "5",
              "structure": "src/\n    a.py\n", "files": render_files([("src/a.py", "x = 1\n")])}
    used = {k: v for k, v in fields.items() if "{" + k + "}" in template.text}
    assert template_fields(template.ref, template.render(**used)) == used
    assert template_fields(template.ref, "some other prompt") is None
    assert template_fields("unknown@1", template.render(**used)) is None


def _agentless(kind: str, problem: str, files_or_tree: str, completion: str, repo="acme/x", pr=1, sid=None,
               role="bugfixer", when="2024-01-01T00:00:00Z", fork_of=None) -> dict:
    template = TEMPLATES[(role, kind)]
    prompt = (template.render(problem_statement=problem, files=files_or_tree) if kind == "edit" else
              template.render(problem_statement=problem, structure=files_or_tree, max_files="5"))
    row = _row(sid or f"{repo}#{pr}/{role}/{kind}", kind, prompt + completion, len(prompt), repo, pr, when, fork_of)
    row["role"], row["meta"]["template"] = role, template.ref
    return row


FILES = render_files([("src/geometry.py", "class Rect:\n    def contains(self, px):\n        return px <= self.right\n")])
EDIT = ("```python\n### src/geometry.py\n<<<<<<< SEARCH\n        return px <= self.right\n=======\n"
        "        return px < self.right\n>>>>>>> REPLACE\n```\n")


def test_edit_sample_is_its_files_and_change_for_exact_and_its_problem_and_change_for_near():
    a = _agentless("edit", "Rect.contains is inclusive on the right edge", FILES, EDIT)
    fork = _agentless("edit", "Sync with upstream", FILES, EDIT.replace("\n", "\r\n"), repo="bob/x", pr=40)
    exact_a, near_a = dedup_texts(a)
    assert "SEARCH" in exact_a and "class Rect" in exact_a and "inclusive" not in exact_a
    assert "inclusive" in near_a and "class Rect" not in near_a and "Please first localize" not in near_a
    assert exact_hash("edit/bugfixer", exact_a) == exact_hash("edit/bugfixer", dedup_texts(fork)[0])
    other_change = _agentless("edit", "Rect.contains is inclusive on the right edge", FILES, EDIT.replace("<", "<="))
    assert exact_hash("e", dedup_texts(other_change)[0]) != exact_hash("e", exact_a)


def test_localize_leaves_out_the_tree_and_bundles_their_header_and_the_repository_name():
    a = _agentless("localize", "Crash in acme/x when saving", "src/\n    a.py\n", render_file_list(["src/a.py"]))
    b = _agentless("localize", "Crash in bob/x when saving", "src/\n    a.py\n    extra.py\n",
                   render_file_list(["src/a.py"]), repo="bob/x", pr=9)
    assert dedup_texts(a) == dedup_texts(b) and "<repo>" in dedup_texts(a)[1]
    bundle = _row("b1", "commit_bundle", "# acme/x: pull request #4\n## Fix\nbody\n", None, "acme/x", 4, None)
    fork = _row("b2", "commit_bundle", "# bob/x: pull request #77\n## Fix\nbody\n", None, "bob/x", 77, None)
    assert dedup_texts(bundle) == dedup_texts(fork) == ("## Fix\nbody\n", "## Fix\nbody\n")


def test_chat_samples_leave_out_the_system_prompt_and_near_dedup_their_tool_results():
    def chat(sid, system, user):
        row = _row(sid, "synthetic", "rendered", None, "", 0, None)
        row["messages"] = [{"role": "system", "content": system}, {"role": "user", "content": user},
                           {"role": "assistant", "content": "ok", "reasoning": "think"}]
        return row

    assert dedup_texts(chat("a", "long agent prompt", "fix it")) == dedup_texts(chat("b", "other prompt", "fix it"))
    assert "long agent prompt" not in dedup_texts(chat("a", "long agent prompt", "fix it"))[1]
    assert dedup_texts(chat("a", "p", "fix it")) != dedup_texts(chat("a", "p", "fix that"))
    with_tool = chat("t", "p", "fix it")
    with_tool["messages"].insert(2, {"role": "tool", "content": "def f():\n    return 1\n", "tool_call_id": "c0"})
    exact, near = dedup_texts(with_tool)
    assert "return 1" in exact and "return 1" not in near  # a file view is shared by every run on the repository


def test_keep_key_prefers_upstream_then_oldest_then_repo_pr_id():
    upstream_new = _agentless("edit", "p", FILES, EDIT, repo="acme/x", when="2024-05-01T00:00:00Z")
    fork_old = _agentless("edit", "p", FILES, EDIT, repo="aaa/x", when="2023-01-01T00:00:00Z", fork_of="acme/x")
    mirror_old = _agentless("edit", "p", FILES, EDIT, repo="zzz/x", when="2023-06-01T00:00:00Z")
    no_time = _agentless("edit", "p", FILES, EDIT, repo="aaa/y", when=None)
    order = sorted([upstream_new, fork_old, mirror_old, no_time], key=keep_key)
    assert [r["meta"]["repo"] for r in order] == ["zzz/x", "acme/x", "aaa/y", "aaa/x"]


def test_code_word_tokenizer_is_language_neutral():
    tok = CodeWordTokenizer()
    assert tok.word_tokenize("if self.x<=px: return café_1 # 日本語") == [
        "if", "self", ".", "x", "<=", "px", ":", "return", "café_1", "#", "日本語"]
    assert tok.sent_tokenize("a\n\nb\n") == ["a", "b"]


def _stage_stats(out: Path) -> dict:
    return json.loads((out / "run" / "dedup" / "stats.json").read_text())


def _fork_note(issue, files, completion, _):
    """A fork's copy: another issue text, one comment line added to the change."""
    return ("[fork] " + issue, files,
            completion.replace("\n>>>>>>> REPLACE", "\n    # fork: keep in sync with upstream\n>>>>>>> REPLACE", 1))


def _corpus() -> list[dict]:
    """Four functions; each with an exact copy in a mirror, a fork with another issue title and
    a comment added to its change, and the same sample in
    another role; and their commit bundles with a fork's copy."""
    rows = []
    for n, f in enumerate(stdlib_functions(4)):
        base = Base(f, n, n % 3, False)
        rows.append(base.edit(f"up{n}", base.repo, n + 1, "2024-02-01T00:00:00Z"))
        rows.append(base.edit(f"mirror{n}", f"mirror/{n}", n + 1, "2024-01-01T00:00:00Z",
                              transform=lambda a, b, c, _: (a, b.replace("\n", "\r\n"), c.replace("\n", "\r\n"))))
        rows.append(base.edit(f"fork{n}", f"fork/{n}", 90 + n, "2023-01-01T00:00:00Z", fork_of=base.repo,
                              transform=_fork_note))
        tw = base.edit(f"tw{n}", base.repo, n + 1, "2024-02-01T00:00:00Z")
        tw["role"] = "testwriter"  # the same text in another group: never a duplicate
        rows.append(tw)
        rows.append(base.bundle(f"bundle{n}", base.repo, n + 1, "2024-02-01T00:00:00Z"))
        rows.append(base.bundle(f"bundlefork{n}", f"fork/{n}", 90 + n, "2024-03-01T00:00:00Z", fork_of=base.repo))
    return rows


def test_stage_keeps_the_upstream_oldest_copy_and_counts_add_up(tmp_path):
    rows = _corpus()
    kept = run_dedup(rows[::-1], tmp_path, tasks=2)  # reversed: the order of the input decides nothing
    for n in range(4):
        # mirror: an exact copy, older, not a fork → kept; the fork is older still, but a fork
        assert kept[f"up{n}"] == kept[f"fork{n}"] == f"mirror{n}", n
        assert kept[f"tw{n}"] == f"tw{n}" and kept[f"bundle{n}"] == kept[f"bundlefork{n}"] == f"bundle{n}"
    stats = _stage_stats(tmp_path)["units"]
    assert stats["agentless"]["read"] == 16 and stats["agentless"]["written"] == 8
    assert stats["agentless"]["filtered"] == {"exact_duplicate": 4, "near_duplicate": 4}
    assert stats["commit_bundles"] == {"read": 8, "written": 4, "quarantined": {},
                                       "filtered": {"exact_duplicate": 4}}
    filtered = [r for f in sorted((tmp_path / "run" / "dedup" / "filtered").glob("*.parquet"))
                for r in pq.read_table(f).to_pylist()]
    assert len(filtered) == 12 and all(r["stage"] == "dedup" and r["detail"] == f"kept {kept[r['id']]}"
                                       for r in filtered)
    assert {json.loads(r["record"])["id"] for r in filtered} == {r["id"] for r in filtered}
    report = json.loads((tmp_path / "run" / "dedup" / "dedup.json").read_text())
    assert report["duplicates"]["agentless"] == {"exact_duplicate": 4, "near_duplicate": 4}
    assert report["components"] == 8 and report["largest_component"] == 3
    assert not (tmp_path / "run" / "dedup" / ".datakit" / "dedup" / "sigs").exists()  # bulky phase files go


def test_same_decisions_for_any_task_count_and_exact_only(tmp_path):
    samples, _ = labelled_set(edit_bases=30, bundle_bases=10)
    one = run_dedup(samples, tmp_path / "one", tasks=1)
    three = run_dedup(samples[::-1], tmp_path / "three", tasks=3)
    assert one == three and sum(k != i for i, k in one.items()) >= 25
    exact = run_dedup(samples, tmp_path / "exact", tasks=2, near=False)
    filtered = _stage_stats(tmp_path / "exact")["units"]
    assert all(set(u["filtered"]) <= {"exact_duplicate"} for u in filtered.values())
    assert 0 < sum(k != i for i, k in exact.items()) < sum(k != i for i, k in one.items())


def test_rerun_changes_nothing(tmp_path):
    rows = _corpus()
    run_dedup(rows, tmp_path)
    out = tmp_path / "run" / "dedup"
    before = {p: p.read_bytes() for p in sorted(out.rglob("*.parquet")) + [out / "stats.json", out / "dedup.json"]}
    from datakit.pipeline.runner import run_recipe
    from datakit.recipe import parse_recipe

    recipe = parse_recipe({"name": "dedup-test", "output": str(tmp_path / "run"), "executor": {"tasks": 2, "workers": 1},
                           "stages": [{"name": "dedup", "stage": "dedup", "input": str(tmp_path / "input")}]})
    (result,) = run_recipe(recipe)
    assert result.skipped
    assert {p: p.read_bytes() for p in before} == before


def test_bad_options_are_refused(tmp_path):
    from datakit.recipe import RecipeError, parse_recipe
    from datakit.pipeline.runner import StageFailed, run_recipe

    (tmp_path / "in").mkdir()
    spec = {"stages": [{"name": "dedup", "stage": "dedup", "input": str(tmp_path / "in"),
                        "options": {"num_buckets": 0}}], "output": str(tmp_path / "out")}
    with pytest.raises((RecipeError, StageFailed), match="num_buckets must be ≥ 1"):
        run_recipe(parse_recipe(spec))


def test_a_task_killed_in_the_filter_phase_resumes_to_the_same_bytes(tmp_path, monkeypatch):
    """Phases 1–3 done, one filter task fails half-way: the rerun skips the phases (their markers) and redoes only
    that task; the output is byte for byte an uninterrupted run's."""
    from datakit.dedup import steps

    rows = _corpus()
    run_dedup(rows, tmp_path / "clean")
    original = steps.DedupFilter.run

    def dies(self, data, rank=0, world_size=1):
        for k, doc in enumerate(original(self, data, rank, world_size)):
            if rank == 1 and k == 3:
                raise RuntimeError("killed")
            yield doc

    monkeypatch.setattr(steps.DedupFilter, "run", dies)
    with pytest.raises(RuntimeError, match="killed"):  # one worker: the task's error reaches the caller
        run_dedup(rows, tmp_path / "killed")
    assert len(list((tmp_path / "killed" / "run" / "dedup" / ".datakit" / "logs" / "completions").iterdir())) == 1
    monkeypatch.setattr(steps.DedupFilter, "run", original)
    run_dedup(None, tmp_path / "killed")
    clean, killed = tmp_path / "clean" / "run" / "dedup", tmp_path / "killed" / "run" / "dedup"
    names = sorted(p.relative_to(clean) for p in clean.rglob("*") if p.is_file() and ".datakit" not in p.parts)
    assert names == sorted(p.relative_to(killed) for p in killed.rglob("*") if p.is_file()
                           and ".datakit" not in p.parts)
    assert all((clean / n).read_bytes() == (killed / n).read_bytes() for n in names), names


def test_demo_mirror_is_found_as_exact_copies(demo_output, tmp_path):
    """The demo lists one repository under two names (acme/widgets and its kennethreitz/requests mirror): every
    Agentless sample and bundle of the mirror is an exact copy, and the copy kept is acme/widgets' (same times, not
    forks: the repository name decides). Synthetic chats are all distinct."""
    from datakit.pipeline.runner import run_recipe
    from datakit.recipe import parse_recipe

    inputs = [str(demo_output / s) for s in ("samples", "bundles", "synth")]
    recipe = parse_recipe({"name": "demo-dedup", "output": str(tmp_path), "executor": {"tasks": 2, "workers": 1},
                           "stages": [{"name": "dedup", "stage": "dedup", "inputs": inputs}]})
    (result,) = run_recipe(recipe)
    units = result.units
    assert units["agentless"]["filtered"] == {"exact_duplicate": units["agentless"]["read"] // 2}
    assert units["commit_bundles"]["filtered"] == {"exact_duplicate": units["commit_bundles"]["read"] // 2}
    assert units["synthetic"]["filtered"] == {} and units["synthetic"]["read"] > 0
    filtered = [json.loads(r["record"]) for f in sorted((tmp_path / "dedup" / "filtered").glob("*.parquet"))
                for r in pq.read_table(f).to_pylist()]
    assert filtered and {r["meta"]["repo"] for r in filtered} == {"kennethreitz/requests"}
    kept = {r["meta"]["repo"] for f in sorted((tmp_path / "dedup").glob("*.parquet"))
            for r in pq.read_table(f, columns=["meta"]).to_pylist()}
    assert "kennethreitz/requests" not in kept and "acme/widgets" in kept


def test_band_tasks_and_one_band_task_decide_alike(tmp_path, monkeypatch):
    """Over 64 MiB of input the bands run as one task each on the recipe's executor; under it, in one task."""
    import datakit.dedup.stages as stages

    samples, _ = labelled_set(edit_bases=20, bundle_bases=5, chat_bases=5)
    small = run_dedup(samples, tmp_path / "small", tasks=2)
    monkeypatch.setattr(stages, "IN_PROCESS_BYTES", 0)
    big = run_dedup(samples, tmp_path / "big", tasks=2)
    assert big == small and sum(k != i for i, k in big.items()) >= 20
    logs = tmp_path / "big" / "run" / "dedup" / ".datakit" / "dedup" / "logs" / "buckets" / "completions"
    assert len(list(logs.iterdir())) == stages.DedupStage.Options().num_buckets
