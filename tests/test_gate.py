"""The capability gate: a verdict about a model passes only when the check it rests on passed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from persona import gate as G
from persona import verdicts as V


def _verdict(effect, sd=0.1, n=20, seed=0):
    rng = np.random.default_rng(seed)
    d = pd.Series(effect + rng.normal(0, sd, n))
    return V.paired(d, pd.Series(0.0, index=d.index), higher_is_better=True, paper_effect=None, unit="items",
                    effect_label="shift")


def test_a_passed_check_lets_the_verdict_through_and_a_failed_one_blocks_it_with_its_numbers():
    gate = G.Gate()
    gate.record(G.from_verdict("positive control", "good", _verdict(0.8)))
    gate.record(G.from_verdict("positive control", "bad", _verdict(-0.5), finding="steering moves a letter"))
    claim = _verdict(1.0, seed=3)
    assert gate.decide(claim, needs=[("positive control", "good")]) is claim
    blocked = gate.decide(claim, needs=[("positive control", "bad")])
    assert blocked.verdict == V.NOT_TESTABLE_ON_MODEL
    assert "positive control failed on bad" in blocked.reason and "-0.5" in blocked.evidence
    assert "steering moves a letter" in blocked.evidence


def test_a_blocked_verdict_is_never_computed():
    gate = G.Gate()
    gate.record(G.from_verdict("persona control", "m", _verdict(0.0, sd=1.0)))
    calls = []
    out = gate.decide(lambda: calls.append(1) or _verdict(1.0), needs=[("persona control", "m")])
    assert out.verdict == V.NOT_TESTABLE_ON_MODEL and calls == []


def test_a_check_that_was_not_computed_raises_naming_it():
    with pytest.raises(G.GateError, match="content sensitivity.*'gemma'"):
        G.Gate().decide(_verdict(1.0), needs=[("content sensitivity", "gemma")])
    with pytest.raises(ValueError, match="declared checks"):
        G.Gate().check("vibes", "m")


def test_too_few_items_to_bound_the_interval_is_undecided_not_passed():
    one = V.paired(pd.Series([2.0]), pd.Series([0.0]), higher_is_better=True, paper_effect=None, unit="items")
    check = G.from_verdict("positive control", "m", one)
    assert check.status == G.UNDECIDED and not check.passed and "too few items" in check.evidence
    out = G.gated(_verdict(1.0), check)
    assert out.verdict == V.NOT_TESTABLE_ON_MODEL and "could not be decided" in out.reason


def test_a_check_made_of_parts_needs_every_part():
    up, down = (G.from_verdict("positive control", "m", _verdict(e)) for e in (0.8, -0.5))
    assert G.all_of("positive control", "m", {"original": up, "reversed": up}).passed
    both = G.all_of("positive control", "m", {"original": up, "reversed": down}, finding="a letter moves")
    assert both.status == G.FAILED and "original:" in both.evidence and "reversed:" in both.evidence
    assert both.finding == "a letter moves"
