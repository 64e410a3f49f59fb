"""The one normalisation before hashing (`datakit.decontam.normalize`), each step on real Verified text.

Every variant must hash exactly like the original (word hashes equal), be caught by the shipped index, and map
its matched span back into the variant's own characters.
"""

from __future__ import annotations

import html
import random
from pathlib import Path

import numpy as np
import pytest

from datakit.decontam import ngrams
from datakit.decontam.content import content_matches
from datakit.decontam.index import default_index
from datakit.decontam.normalize import canonical
from datakit.decontam.reference import load_reference
from tests.conftest import shared_missing
from tests.test_decontam_planted import (HUNK_VARIANTS, STATEMENT_VARIANTS, hunk_side, hunks, new_start,
                                         own_words, words)

SWEBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "swebench"


@pytest.fixture(scope="module")
def instances():
    if why := shared_missing("swebench/verified.jsonl"):
        pytest.skip(why)
    return load_reference("files", SWEBENCH)


def H(text: str) -> list[int]:
    return ngrams.word_hashes(text)[0].tolist()


def test_each_step_on_small_text():
    assert H("He said &quot;don&#39;t&quot; &lt;&gt;&amp; caf&eacute;") == H("He said \"don't\" <>& café")
    assert H("x&nbsp;y &#x41;BC") == H("x y ABC")
    assert H("&notanentity; &amp") == H("notanentity amp")  # not entities: left as they are
    assert H("ＡＢＣ ﬁle x²") == H("ABC file x2")  # NFKC
    assert H("foo\u200bbar soft\u00adhyphen \ufeffbom") == H("foobar softhyphen bom")
    assert H("\u201cquoted\u201d \u2018single\u2019 a\u2014b c\u2013d") == H('"quoted" \'single\' a-b c-d')
    assert H("my\\_var \\*\\*kwargs \\# title") == H("my_var **kwargs # title")
    assert H("   190\tdef f():\n   191\t    return 1\n192: x = 2\n+ 193 | y") == H("def f():\n    return 1\nx = 2\ny")
    assert len(H("a 12: b\nx[1:2]")) == 6  # a number not at a line start stays a word
    assert H("10: first\n2019: the year") == H("first\nthe year")


def test_fast_path_is_plain_lowered_bytes():
    b, m = canonical("Plain ASCII Code(x)\n")
    assert m is None and bytes(b) == b"plain ascii code(x)\n"
    b, m = canonical("caf&eacute; ok")
    assert m is not None and len(m) == len(b) + 1 and m[-1] == len("caf&eacute; ok")


def test_offsets_point_into_the_original():
    text = "x &quot;caf&eacute;&quot; \u200bzéro ＡＢＣ end"
    starts, ends = ngrams.word_spans(text)
    assert [text[a:b] for a, b in zip(starts, ends)] == ["x", "caf&eacute;", "zéro", "ＡＢＣ", "end"]


def _variant_cases(instances):
    rng = random.Random(5)
    stmts = [x for x in instances if words(x.problem_statement) >= 40]
    # statements that actually contain what each step changes
    pick = {
        "html_entities": [x for x in stmts if any(c in x.problem_statement for c in "<>&\"'")][:25],
        "nbsp_zero_width": stmts[:25], "typographic": [x for x in stmts if '"' in x.problem_statement][:25],
        "markdown_escapes": [x for x in stmts if "_" in x.problem_statement][:25], "nfkc_fullwidth": stmts[25:50],
        "crlf_case_space": stmts[50:75],
    }
    for name, xs in pick.items():
        for x in xs:
            yield name, x, x.problem_statement, STATEMENT_VARIANTS[name](x.problem_statement, rng)


def test_statement_variants_hash_like_the_original(instances):
    n = 0
    for name, x, orig, variant in _variant_cases(instances):
        assert variant != orig or name == "plain"
        assert H(variant) == H(orig), (name, x.instance_id)
        n += 1
    assert n >= 140


def test_statement_variants_are_caught_with_spans(instances):
    index = default_index()
    n = 0
    for name, x, orig, variant in _variant_cases(instances):
        n += 1
        text = "Some intro line.\n" + variant + "\nThanks!"
        ms = [m for m in content_matches(text, index) if m.instance_id == x.instance_id]
        assert ms, (name, x.instance_id)
        span = text[ms[0].span_start:ms[0].span_end]
        assert span and H(span) and set(H(span)) <= set(H(text))
    assert n >= 140


def test_real_entities_in_verified_text(instances):
    """Statements with &quot; / &lt; scraped from HTML: the escaped and the plain forms hash alike."""
    x = next(x for x in instances if "<" in x.problem_statement and ">" in x.problem_statement)
    assert H(html.escape(x.problem_statement)) == H(x.problem_statement)


def test_line_numbered_hunks_hash_like_their_new_side(instances):
    index = default_index()
    checked = 0
    for x in instances[:200]:
        for h in hunks(x.patch):
            new = "".join(hunk_side(h, "new"))
            if own_words(new) < 30:
                continue
            for name in ("line_numbers_colon", "line_numbers_tab"):
                view = HUNK_VARIANTS[name](h)
                assert H(view) == H(new), (x.instance_id, name)
                assert content_matches(view, index)  # (an earlier instance may own a shared hunk)
            checked += 1
    assert checked >= 40
    assert new_start("@@ -10,3 +12,4 @@ def f") == 12
