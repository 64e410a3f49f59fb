"""docs/recipe_reference.md is generated from the stage types' Options dataclasses: it fails here when it drifts."""

from __future__ import annotations

from datakit.pipeline.reference import DOC, main, option_rows, render_reference
from datakit.pipeline.stages import STAGES


def test_recipe_reference_matches_the_code():
    assert DOC.read_text(encoding="utf-8") == render_reference(), (
        f"{DOC} is out of date: run `python -m datakit.pipeline.reference` and commit it")


def test_every_stage_type_and_option_is_documented():
    text = render_reference()
    for name, st in STAGES.items():
        assert f"\n### {name}\n" in text and st.summary[1:] in text
        for option in st.option_names():
            assert f"| `{option}` |" in text.split(f"\n### {name}\n", 1)[1].split("\n### ", 1)[0], (name, option)


def test_defaults_and_comments_come_from_the_dataclass_source():
    rows = {r[0]: r for r in option_rows(STAGES["tokens"])}
    assert rows["seq_len"][1:3] == ("int", "32768")
    assert rows["never_split"][2] == "[sft]"
    assert rows["never_split"][3].startswith("sample kinds whose documents are never chunked")  # the line above
    assert rows["mixture"][3] == "{source: {tokens | fraction: budget, upsample: factor}}"  # the line's end
    github = {r[0]: r for r in option_rows(STAGES["sources.github"])}
    assert github["code"][3].startswith("mirror: commits")  # a field inherited from CrawlSettings


def test_the_generator_writes_only_a_changed_file(tmp_path, capsys):
    target = tmp_path / "ref.md"
    main([str(target)])
    assert target.read_text(encoding="utf-8") == render_reference() and "wrote" in capsys.readouterr().out
    main([str(target)])
    assert "up to date" in capsys.readouterr().out
