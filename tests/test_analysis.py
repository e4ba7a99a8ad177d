"""The alignment chapter's analysis: paired verdicts on complete cases, identical methods, the control."""

import numpy as np
import pandas as pd

from persona import verdicts
from persona.papi import analysis


def _table(values: dict[str, list[float]], neither: float = 1.0) -> pd.DataFrame:
    rows = [{"method": m, "subject": s, "calibration": "raw", "view": "both", "score": v, "expected_score": v,
             "rho": np.nan, "neither": neither, "n_items": 30} for m, vs in values.items() for s, v in enumerate(vs)]
    return pd.DataFrame(rows)


def test_identical_methods_are_not_testable_and_say_why():
    table = _table({"pas": [3.9, 4.0, 3.8], "few": [3.9, 4.0, 3.8]})
    c = analysis.Comparison("k", "pas", "few", 1.55, "paper")
    v = analysis.compare({"corrected": table}, [c])["k"]
    assert v.verdict == verdicts.NOT_TESTABLE and "100%" in v.reason and "cannot separate" in v.reason


def test_a_subject_without_a_value_is_left_out_and_named():
    rng = np.random.default_rng(0)
    better = list(rng.normal(2.0, 0.1, 12))
    worse = list(rng.normal(3.0, 0.1, 12))
    better[3] = np.nan
    v = analysis.compare({"corrected": _table({"a": better, "b": worse})},
                         [analysis.Comparison("k", "a", "b", 1.0, "")])["k"]
    assert v.verdict == verdicts.REPLICATED and v.n == 11 and "1 subject(s)" in v.reason


def test_control_shifts_read_both_directions():
    rows = [{"order": o, "alpha": a, "item": i,
             "expected": 3.0 + (0.1 if o == "original" else -0.1) * a * (1 + 0.01 * i) + 0.01 * i}
            for o in ("original", "reversed") for a in (-4, 0, 4) for i in range(10)]
    shifts = analysis.control_shifts(pd.DataFrame(rows)).set_index(["order", "alpha"])
    assert abs(shifts.loc[("original", 4), "shift"] - 0.4 * 1.045) < 1e-9
    assert shifts.loc[("original", 4), "moved_as_intended"] and shifts.loc[("original", -4), "moved_as_intended"]
    assert not shifts.loc[("reversed", 4), "moved_as_intended"]  # a letter, not the content


def test_the_positive_control_passes_only_when_both_orders_move_as_intended():
    def at_top(orig, rev, alpha=8.0):
        return pd.DataFrame({"order": ["original", "reversed", "both"], "alpha": alpha,
                             "moved_as_intended": [orig, rev, True]})
    assert analysis.control_passes(at_top(True, True))
    assert not analysis.control_passes(at_top(True, False))  # a letter moved, not the content
    assert not analysis.control_passes(at_top(False, True))
    assert not analysis.control_passes(at_top(True, True, alpha=0.0))  # no steering is no control
    assert analysis.control_passes(at_top(True, True).set_index("order"))  # as the chapter holds it
    assert not analysis.control_passes(at_top(True, True).iloc[[0]])  # one order missing


def test_a_dropped_subject_is_named_in_every_branch_and_shares_use_the_analysed_set():
    # subject 2 has no value for "pas" (its alpha's answers were all unparseable): named even when the others tie
    table = _table({"pas": [3.9, 4.0, np.nan], "few": [3.9, 4.0, 3.7]})
    table.loc[(table["subject"] == 2), "neither"] = 0.0  # the dropped subject answered no "Neither"
    v = analysis.compare({"corrected": table}, [analysis.Comparison("k", "pas", "few", 1.55, "")])["k"]
    assert v.verdict == verdicts.NOT_TESTABLE and "left out: 2" in v.reason
    assert "100% and 100%" in v.reason  # the analysed subjects' shares, not averaged with the dropped one's 0%


def test_a_comparison_that_needs_a_failed_check_is_not_testable_on_this_model():
    from persona import gate as G
    rows = [{"order": o, "alpha": a, "item": i,
             "expected": 3.0 + (0.1 if o == "original" else -0.1) * a * (1 + 0.01 * i) + 0.01 * i}
            for o in ("original", "reversed") for a in (0, 8) for i in range(10)]
    at_top = analysis.control_shifts(pd.DataFrame(rows))
    check = analysis.control_check(at_top, "tiny")
    assert check.status == G.FAILED and "reversed" in check.evidence and "letter" in check.finding
    gate = G.Gate()
    gate.record(check)
    rng = np.random.default_rng(0)
    table = _table({"pas": list(rng.normal(2, 0.1, 10)), "few": list(rng.normal(3, 0.1, 10))})
    both = [analysis.Comparison("pas", "pas", "few", 1.55, "", needs=("positive control",)),
            analysis.Comparison("ref", "pas", "few", None, "")]
    out = analysis.compare({"corrected": table}, both, gate=gate, model="tiny")
    assert out["pas"].verdict == verdicts.NOT_TESTABLE_ON_MODEL and "positive control failed" in out["pas"].reason
    assert out["ref"].verdict == verdicts.REPLICATED  # a comparison that needs no check is decided as before
    rows_up = [dict(r, expected=3.0 + 0.1 * r["alpha"] + 0.01 * r["item"] * (1 + r["alpha"] / 80)) for r in rows]
    passing = analysis.control_check(analysis.control_shifts(pd.DataFrame(rows_up)), "tiny")
    assert passing.passed


def test_a_control_that_rises_clearly_in_one_order_only_fails_and_says_so():
    from persona import gate as G

    def at_top(orig_ci, rev_ci):
        return pd.DataFrame([{"order": o, "alpha": 4.0, "shift": sum(ci) / 2, "ci_low": ci[0], "ci_high": ci[1],
                              "n_items": 30, "moved_as_intended": ci[0] > 0}
                             for o, ci in (("original", orig_ci), ("reversed", rev_ci))])
    weak = analysis.control_check(at_top((-0.10, 0.22), (0.46, 1.0)), "tiny")
    assert weak.status == G.FAILED and "in the reversed order only" in weak.finding and "+0.06" in weak.finding
    opposite = analysis.control_check(at_top((-0.13, -0.09), (0.04, 0.06)), "tiny")
    assert opposite.status == G.FAILED and "moves a letter, not the content" in opposite.finding
    assert analysis.control_check(at_top((0.1, 0.3), (0.4, 1.0)), "tiny").passed


def test_the_validated_alpha_is_the_last_alpha_before_the_first_failure_in_either_order():
    def shifts(passing):  # passing: {alpha: (original moved, reversed moved)}
        return pd.DataFrame([{"order": o, "alpha": a, "moved_as_intended": ok[k]}
                             for a, ok in passing.items() for k, o in enumerate(("original", "reversed"))]
                            + [{"order": "both", "alpha": a, "moved_as_intended": True} for a in passing])
    assert analysis.validated_alpha(shifts({2: (True, True), 4: (True, True), 8: (False, True)})) == 4
    assert analysis.validated_alpha(shifts({2: (True, False), 4: (True, True)})) == 0  # a gap ends the range
    assert analysis.validated_alpha(shifts({-8: (True, True), 2: (True, True)})) == 2  # negative alphas ignored
    assert analysis.validated_alpha(shifts({2: (True, True), 4: (True, True)}).iloc[1:]) == 0  # an order missing
