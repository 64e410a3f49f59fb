"""Redaction on mixed documents (planted secrets, clean traps and arbitrary text side by side): every planted value
is gone, lines keep their number, a second pass changes nothing; an edit sample made of such files either
round-trips after redaction or is quarantined with a reason — never anything else."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from datakit.redact.detect import find_secrets
from datakit.redact.replace import Redaction
from datakit.redact.samples import RedactReject, redact_sample
from datakit.samples.agentless import Reject
from tests.fuzzing import FUZZ
from tests.test_redact import edit_pair, read_back
from tests.test_redact_corpus import clean_corpus, planted_corpus

PLANTED = planted_corpus(seed=1)
CLEAN = clean_corpus(seed=1)
pieces = st.one_of(st.sampled_from(PLANTED).map(lambda p: (p[1], p[2])), st.sampled_from(CLEAN).map(lambda c: (c, [])),
                   st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30).map(lambda t: (t, [])))
documents = st.lists(pieces, min_size=1, max_size=8).map(
    lambda ps: ("\n".join(p for p, _ in ps) + "\n", [v for _, vs in ps for v in vs]))


@FUZZ
@given(documents)
def test_planted_values_gone_lines_kept_second_pass_idle(doc):
    text, values = doc
    red = Redaction.build(find_secrets(text), avoid=text)
    out = red.apply(text)
    assert not [v for v in values if v in out]
    assert out.count("\n") == text.count("\n")
    again = Redaction.build(find_secrets(out), avoid=out)
    assert again.apply(out) == out and not again.counts


@FUZZ
@given(documents, st.integers(0, 7))
def test_edit_samples_round_trip_or_are_quarantined(doc, changed):
    text, _ = doc
    lines = text.split("\n")
    k = changed % len(lines)
    new = "\n".join(lines[:k] + [lines[k] + " # changed"] + lines[k + 1:])
    try:
        _, edit = edit_pair(text, new)
    except Reject:
        assume(False)  # the samples stage would not make this sample (trailing whitespace, CR, …)
    try:
        out, red = redact_sample(edit)
    except RedactReject as exc:
        assert exc.reason in ("redaction_breaks_edit", "redaction_incomplete", "secret_in_path")
        return
    base, result = read_back(out)
    base0, result0 = read_back(edit)
    assert base == {p: red.apply(c) for p, c in base0.items()}
    assert result == {p: red.apply(c) for p, c in result0.items()}
