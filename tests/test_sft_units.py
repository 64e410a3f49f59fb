"""The SFT builders on strings: edit prompts read back, answers parsed like Agentless, trajectories validated like
a reward, generation rows and agent verdicts."""

from __future__ import annotations

import pytest

from datakit.samples import templates
from datakit.samples.edits import Block, FileEdit, render_edits
from datakit.sft.agent import agent_sample, repo_of_instance, verdict
from datakit.sft.agentless import (Generation, SftReject, ThinkTags, extract_edits, localized_files, shown_files,
                                   trajectory)
from datakit.sft.generations import parse_generation
from datakit.synth.formats import FormatError, tools_of

BASE = {
    "pkg/core.py": "def f(x):\n    return x + 1\n```\n--- END FILE ---\n",  # the block's own closing text, inside
    "pkg/util.py": "VALUE = 1\n",
}
PROBLEM = ("f is off by one.\nBelow are some code segments, each from a relevant file. One or more of these files "
           "may contain bugs.\n\n--- BEGIN FILE ---\n")  # a statement quoting the template's own text
GOLD = [FileEdit("pkg/core.py", "modified", None, (Block("    return x + 1", "    return x"),)),
        FileEdit("pkg/util.py", "modified", None, (Block("VALUE = 1", "VALUE = 2"),)),
        FileEdit("pkg/new.py", "added", None, (Block("", "NEW = True"),))]


def edit_sample(role="bugfixer", base=BASE, gold=GOLD):
    prompt = templates.TEMPLATES[(role, "edit")].render(problem_statement=PROBLEM,
                                                         files=templates.render_files(list(base.items())))
    completion = render_edits(gold)
    return {"id": f"e-{role}", "kind": "edit", "role": role, "text": prompt + completion, "prompt_chars": len(prompt),
            "meta": {"repo": "o/r", "pr": 7, "base_sha": "b" * 40, "head_sha": "h" * 40, "problem_source": "issue",
                     "structure_tree": None, "fork_of": None, "files": [e.path for e in gold],
                     "template": f"{role}_edit@2"},
            "source": {"kind": "git", "method": "merge_commit", "repo": "o/r", "pr": 7}}


def localize_sample(role="bugfixer", files=("pkg/core.py", "pkg/util.py")):
    prompt = templates.TEMPLATES[(role, "localize")].render(problem_statement=PROBLEM, structure="pkg/\n",
                                                             max_files=5)
    return {"id": f"l-{role}", "kind": "localize", "role": role,
            "text": prompt + templates.render_file_list(list(files)), "prompt_chars": len(prompt),
            "meta": {**edit_sample(role)["meta"], "files": list(files), "template": f"{role}_localize@2"},
            "source": edit_sample(role)["source"]}


def test_shown_files_read_back_exactly_even_with_template_text_inside():
    s = edit_sample()
    assert shown_files(s["text"][:s["prompt_chars"]], "bugfixer", ["pkg/core.py", "pkg/util.py"]) == BASE
    with pytest.raises(SftReject) as exc:
        shown_files(s["text"][:s["prompt_chars"]], "bugfixer", ["pkg/util.py", "pkg/core.py"])
    assert exc.value.reason == "prompt_mismatch"
    with pytest.raises(SftReject, match="does not end"):
        shown_files(s["text"][:s["prompt_chars"]] + "x", "bugfixer", ["pkg/core.py", "pkg/util.py"])


def test_extract_edits_like_agentless():
    gold = render_edits(GOLD)
    assert extract_edits(f"Here is the fix:\n\n{gold}\n\nThat is all.") == GOLD
    assert extract_edits(gold.replace("```\n\n```python", "```\nSome words between blocks.\n```python")) == GOLD
    for answer, reason in [("no code at all", "no_edits"),
                           ("```python\nprint('hi')\n```", "edits_unparseable"),
                           ("```python\n### a.py\n<<<<<<< SEARCH\nx\n=======\ny\n```", "edits_unparseable"),
                           (gold.replace("### pkg/util.py", "### ../outside.py"), "unsafe_path"),
                           (gold.replace("### pkg/util.py", "### /etc/passwd"), "unsafe_path"),
                           (gold.replace("### pkg/util.py", "### .git/config"), "unsafe_path"),
                           (gold.replace("### pkg/util.py", "### pkg//util.py"), "unsafe_path")]:
        with pytest.raises(SftReject) as exc:
            extract_edits(answer)
        assert exc.value.reason == reason, answer


def test_localized_files_take_the_last_block():
    assert localized_files("I think:\n```\nwrong.py\n```\nActually:\n```\n a.py \nb.py\na.py\n\n```") == ["a.py", "b.py"]
    assert localized_files("a.py\nb.py") == ["a.py", "b.py"]
    with pytest.raises(SftReject) as exc:
        localized_files("```\n\n```")
    assert exc.value.reason == "no_files_listed"


def gen(sample, answer, reasoning="Because."):
    return Generation(sample["id"], answer, reasoning, 0, f"gen#{sample['id']}")


def test_trajectory_bugfixer_gold_and_recall():
    loc, ed = localize_sample(), edit_sample()
    t = trajectory(loc, ed, gen(loc, "```\npkg/core.py\nREADME.md\n```"), gen(ed, render_edits(GOLD)))
    sft = t["meta"]["sft"]
    assert (t["kind"], t["role"], sft["steps"], sft["turns"]) == ("sft", "bugfixer", ["localize", "edit"], 2)
    assert sft["localize_recall"] == 0.5 and sft["localized_files"] == ["pkg/core.py", "README.md"]
    assert sft["applies"] is True and sft["matches_gold"] is True and sft["execution"] is None
    assert sft["edited_files"] == ["pkg/core.py", "pkg/util.py", "pkg/new.py"]
    assert [m["role"] for m in t["messages"]] == ["user", "assistant", "user", "assistant"]
    assert t["messages"][0]["content"] == loc["text"][:loc["prompt_chars"]]
    assert t["messages"][3]["content"] == "<think>\nBecause.\n</think>\n\n" + render_edits(GOLD)
    # a different but applicable fix: kept, not gold
    other = [FileEdit("pkg/util.py", "modified", None, (Block("VALUE = 1", "VALUE = 3"),))]
    t2 = trajectory(None, ed, None, gen(ed, render_edits(other)))
    assert t2["meta"]["sft"]["matches_gold"] is False and t2["meta"]["sft"]["steps"] == ["edit"]
    assert t2["id"] != t["id"]
    with pytest.raises(SftReject) as exc:
        trajectory(loc, ed, gen(loc, "```\nREADME.md\n```"), None, min_recall=0.5)
    assert exc.value.reason == "low_recall"
    tags = ThinkTags("<reasoning>", "</reasoning>")
    t3 = trajectory(loc, None, gen(loc, "```\npkg/core.py\n```"), None, tags)
    assert t3["messages"][1]["content"].startswith("<reasoning>\nBecause.\n</reasoning>\n\n```")
    assert trajectory(loc, None, gen(loc, "a.py"), None, ThinkTags(keep=False))["messages"][1]["content"] == "a.py"


@pytest.mark.parametrize("answer, reason", [
    (render_edits([FileEdit("pkg/core.py", "modified", None, (Block("return y", "return x"),))]),
     "edits_do_not_apply"),
    (render_edits([FileEdit("pkg/other.py", "modified", None, (Block("a", "b"),))]), "edits_do_not_apply"),
    (render_edits([FileEdit("pkg/util.py", "added", None, (Block("", "x = 1"),))]), "edits_do_not_apply"),
    ("I would fix f.", "no_edits"),
])
def test_trajectory_rejects_edits_a_reward_would_fail(answer, reason):
    ed = edit_sample()
    with pytest.raises(SftReject) as exc:
        trajectory(None, ed, None, gen(ed, answer))
    assert exc.value.reason == reason


def test_testwriter_records_test_files_and_needs_one():
    base = {"tests/test_core.py": "def test_f():\n    assert f(1) == 2\n"}
    gold = [FileEdit("tests/test_core.py", "modified", None, (Block("    assert f(1) == 2", "    assert f(1) == 1"),))]
    ed = edit_sample("testwriter", base, gold)
    t = trajectory(None, ed, None, gen(ed, render_edits(gold)))
    assert t["meta"]["sft"]["test_files"] == ["tests/test_core.py"] and t["role"] == "testwriter"
    helper = [FileEdit("src/helper.py", "added", None, (Block("", "X = 1"),))]
    with pytest.raises(SftReject) as exc:
        trajectory(None, ed, None, gen(ed, render_edits(helper)))
    assert exc.value.reason == "no_test_file"


def test_parse_generation_rows():
    g, prompts = parse_generation({"sample_id": "s", "response": "<think>\nhmm\n</think>\n\nanswer"}, "f#0")
    assert (g.reasoning, g.answer, g.index, g.label, prompts) == ("hmm", "answer", 0, "f#0", [])
    g, prompts = parse_generation({"sample_id": "s", "generation_id": "g7", "n": 2, "messages": [
        {"role": "user", "content": "P"}, {"role": "assistant", "reasoning_content": "r", "content": "A"}]}, "f#1")
    assert (g.reasoning, g.answer, g.index, g.label, prompts) == ("r", "A", 2, "g7", ["P"])
    for row in [[], {"answer": "x"}, {"sample_id": "s"}, {"sample_id": "s", "answer": "  "},
                {"sample_id": "s", "answer": "x", "index": True}, {"sample_id": "s", "answer": "x", "index": -1},
                {"sample_id": "s", "answer": "x", "reasoning": 3},
                {"sample_id": "s", "messages": [{"role": "user", "content": "P"}]},
                {"sample_id": "s", "messages": [{"role": "assistant", "content": "A"}, {"role": "user", "content": "P"}]}]:
        with pytest.raises(SftReject) as exc:
            parse_generation(row, "f#2")
        assert exc.value.reason == "invalid_generation", row


def test_agent_verdicts():
    assert verdict({"resolved": False}, {}).reason == "unresolved"
    assert verdict({"target": True}, {"exit_status": "exit_cost"}).reason is None  # the verdict wins
    assert verdict({"report": {"resolved": 0}}, {}).reason == "unresolved"
    assert verdict({}, {"exit_status": "submitted (exit_cost)"}).reason is None
    assert verdict({}, {"exit_status": "LimitsExceeded"}).reason == "not_submitted"
    assert verdict({}, {}).reason is None and verdict({}, {}, require_resolved=True).reason == "no_verdict"
    assert verdict({"resolved": "yes"}, {}, require_resolved=True).reason == "no_verdict"
    assert repo_of_instance("django__django-11099") == "django/django"
    assert repo_of_instance("scikit-learn__scikit-learn-10297") == "scikit-learn/scikit-learn"
    assert repo_of_instance("not an id") is None
    with pytest.raises(FormatError):
        tools_of({"tools": [{"a": {1, 2}}]})
    with pytest.raises(FormatError):
        tools_of({"tools": {"name": "bash"}})


def test_agent_sample_keeps_tools_and_repo():
    row = {"instance_id": "psf__requests-2317", "resolved": True,
           "tools": [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}],
           "messages": [{"role": "user", "content": "fix"},
                        {"role": "assistant", "content": "", "tool_calls": [
                            {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": "{\"c\": 1}"}}]},
                        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
                        {"role": "assistant", "content": "done"}]}
    sample, outcome = agent_sample(row)
    assert outcome.resolved is True and outcome.reason is None
    assert sample["meta"]["repo"] == "psf/requests" and sample["source"]["repo"] == "psf/requests"
    assert sample["tools"] == ['{"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}']
    assert sample["meta"]["sft"]["tool_calls"] == 1 and sample["meta"]["sft"]["turns"] == 2


@pytest.mark.parametrize("stage, options, message", [
    ("sft.agent", {"format": "swe_agnt"}, "did you mean 'swe_agent'"),
    ("sft.agent", {"max_turns": 0}, "max_turns must be ≥ 1"),
    ("sft.agent", {"think": ["<think>"]}, "think: expected two tags"),
    ("sft.agentless", {}, "generations: name the teacher's answers"),
    ("sft.agentless", {"generations": ["g.jsonl"], "min_recall": 1.5}, "min_recall must be within [0, 1]"),
])
def test_stage_options_are_checked_before_any_work(tmp_path, stage, options, message):
    import yaml

    from datakit.recipe import RecipeError, load_recipe

    spec = {"name": "s", "stage": stage, "options": options}
    if stage == "sft.agentless":
        spec["input"] = str(tmp_path)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "stages": [spec]}))
    with pytest.raises(RecipeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_recipe(path, base_output=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
