"""How the demo's teacher generations (`fixtures/sft/generations.jsonl`) were made, so they can be remade when the
demo repository changes (`python -m datakit.demo.sft_fixtures OUT/decontam > .../generations.jsonl`; a test checks
the shipped file is what this writes for the demo's samples).

A stand-in teacher answers every Agentless sample of the demo with a short reasoning and the right answer, except
where a planted case shows what the stage does with a bad or unusual generation: an edit that does not apply, an
answer with no edit block, a TestWriter that edits no test, a localisation that misses the file, the reasoning inline
in `<think>` tags, a whole chat instead of a row, an answer wrapped in prose, a second sampled attempt (index 1),
a duplicate row, a row for an unknown sample and a truncated line. Deterministic: the same samples give the same
bytes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# unit position (sorted by PR, role) → planted case
CASES = {1: "inline_think", 2: "edit_does_not_apply", 3: "localize_only", 4: "no_edit_block", 5: "missed_file",
         6: "whole_chat", 7: "prose_around", 8: "second_attempt", 9: "edit_only", 10: "testwriter_no_test"}


def _reasoning(kind: str, sample: dict) -> str:
    files = ", ".join(sample["meta"]["files"])
    problem = sample["text"].split("### GitHub Problem Description ###\n", 1)[-1].split("\n", 1)[0] \
        if kind == "localize" else sample["text"].split("--- BEGIN ISSUE ---\n", 1)[-1].split("\n", 1)[0]
    if kind == "localize":
        return f"The report says: {problem.strip()} The code involved should live in {files}."
    return f"The report says: {problem.strip()} I will change {files} so the behaviour matches the report."


def _rows_for_unit(k: int, unit: dict[str, dict]) -> list[dict]:
    case = CASES.get(k)
    rows = []
    for kind in ("localize", "edit"):
        s = unit.get(kind)
        if s is None or (case == "localize_only" and kind == "edit") or (case == "edit_only" and kind == "localize"):
            continue
        prompt, answer = s["text"][:s["prompt_chars"]], s["text"][s["prompt_chars"]:]
        reasoning = _reasoning(kind, s)
        row = {"sample_id": s["id"], "reasoning": reasoning, "answer": answer}
        if kind == "edit" and case == "edit_does_not_apply":
            row["answer"] = answer.replace("<<<<<<< SEARCH\n", "<<<<<<< SEARCH\n# a line the file does not have\n", 1)
        elif kind == "edit" and case == "no_edit_block":
            row["answer"] = "The fix is to change the function so it handles the reported input."
        elif kind == "localize" and case == "missed_file":
            row["answer"] = "```\nsrc/widgets/__init__.py\n```"
        elif case == "inline_think":
            row = {"sample_id": s["id"], "answer": f"<think>\n{reasoning}\n</think>\n\n{answer}"}
        elif kind == "edit" and case == "whole_chat":
            row = {"sample_id": s["id"], "messages": [
                {"role": "user", "content": prompt},
                {"role": "assistant", "reasoning_content": reasoning, "content": answer}]}
        elif kind == "edit" and case == "prose_around":
            row["answer"] = f"Here is the fix.\n\n{answer}\n\nThis keeps the existing behaviour for other inputs."
        elif kind == "edit" and case == "testwriter_no_test":
            row["answer"] = ("```python\n### src/widgets/debug_notes.py\n<<<<<<< SEARCH\n\n=======\n"
                             "NOTES = 'a helper, not a test'\n>>>>>>> REPLACE\n```")
        rows.append(row)
        if case == "second_attempt":
            rows.append({**row, "index": 1, "reasoning": "Second attempt. " + reasoning})
    return rows


def build_generations(samples_folder: str | Path) -> list[str]:
    """The generation lines (JSONL, planted bad lines included) for the Agentless samples in `samples_folder`."""
    import pyarrow.parquet as pq

    samples = [r for f in sorted(Path(samples_folder).glob("*.parquet")) for r in pq.read_table(f).to_pylist()
               if r["kind"] in ("localize", "edit")]
    units: dict[tuple, dict[str, dict]] = {}
    for s in samples:
        units.setdefault((s["meta"]["repo"], s["meta"]["pr"], s["role"]), {})[s["kind"]] = s
    lines = []
    for k, key in enumerate(sorted(units)):
        lines += [json.dumps(r, ensure_ascii=False, sort_keys=True) for r in _rows_for_unit(k, units[key])]
    lines.insert(3, lines[2])  # a duplicate row: filtered (duplicate_generation)
    lines.append(json.dumps({"sample_id": "0000000000000000", "answer": "```\nsetup.py\n```"}))  # unknown_sample
    lines.append('{"sample_id": "' + samples[0]["id"] + '", "answer": "trunc')  # a truncated line
    return lines


if __name__ == "__main__":
    sys.stdout.write("".join(line + "\n" for line in build_generations(sys.argv[1])))
