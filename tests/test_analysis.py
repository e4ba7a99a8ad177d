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
