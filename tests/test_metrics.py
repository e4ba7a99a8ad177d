"""The PAPI metric on hand-made subjects whose MAEs are computed by hand, in both conventions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from persona.papi import DOMAINS, Item, Subject, answers_frame, metrics

# Two items per domain: an even number is '+', an odd number is '-'.
ITEMS = [
    Item(number=2 * k + j + 1, short_number=None, domain=d, facet=f"{d}1", facet_name="x", sign=1 - 2 * j, text="t")
    for k, d in enumerate(DOMAINS)
    for j in (0, 1)
]
# items: A: 1(+) 2(-) | C: 3(+) 4(-) | E: 5(+) 6(-) | N: 7(+) 8(-) | O: 9(+) 10(-)
S1 = Subject(case=1, index=0, answers={1: 4, 2: 5, 3: 0, 4: 2, 5: 3, 6: 3, 7: 1, 8: 1, 9: 5, 10: 4})
S2 = Subject(case=2, index=1, answers={1: 2, 2: 2, 3: 3, 4: 3, 5: 5, 6: 1, 7: 3, 8: 3, 9: 3, 10: 3})
TRUTH = answers_frame([S1, S2], ITEMS)


def _predictions(ticks: dict[int, dict[int, float]], method: str = "m") -> pd.DataFrame:
    rows = [(method, case, item, tick) for case, by_item in ticks.items() for item, tick in by_item.items()]
    return pd.DataFrame(rows, columns=["method", "subject", "item", "predicted"])


# Subject 1 ticks; errors by hand (paper: |tick - stored|; corrected: |tick - agreement|, missing dropped)
#   A: 1 tick 5 stored 4 agr 4 -> 1 | 1 ; 2 tick 1 stored 5 agr 1 -> 4 | 0      => A paper 2.5, corrected 0.5
#   C: 3 tick 3 stored 0 (missing)  -> 3 | - ; 4 tick 4 stored 2 agr 4 -> 2 | 0 => C paper 2.5, corrected 0.0
#   E: 5 tick 3 stored 3 -> 0 | 0 ; 6 tick 3 stored 3 agr 3 -> 0 | 0           => E 0.0, 0.0
#   N: 7 tick 2 stored 1 -> 1 | 1 ; 8 tick 5 stored 1 agr 5 -> 4 | 0           => N 2.5, 0.5
#   O: 9 tick 5 stored 5 -> 0 | 0 ; 10 tick 2 stored 4 agr 2 -> 2 | 0          => O 1.0, 0.0
S1_TICKS = {1: 5, 2: 1, 3: 3, 4: 4, 5: 3, 6: 3, 7: 2, 8: 5, 9: 5, 10: 2}
# Subject 2 ticks 3 everywhere: paper |3 - stored|, corrected |3 - agreement| = |3 - stored| (no missing)
#   A: |3-2|,|3-2| -> 1 ; C: 0,0 -> 0 ; E: 2,2 -> 2 ; N: 0 ; O: 0
S2_TICKS = dict.fromkeys(range(1, 11), 3)


def test_hand_computed_domain_maes_in_both_conventions():
    preds = _predictions({1: S1_TICKS, 2: S2_TICKS})
    paper = metrics.subject_domain_mae(preds, TRUTH, "paper").loc["m"]
    corrected = metrics.subject_domain_mae(preds, TRUTH, "corrected").loc["m"]
    assert paper.loc[1].tolist() == [2.5, 2.5, 0.0, 2.5, 1.0]
    assert corrected.loc[1].tolist() == [0.5, 0.0, 0.0, 0.5, 0.0]
    assert paper.loc[2].tolist() == corrected.loc[2].tolist() == [1.0, 0.0, 2.0, 0.0, 0.0]


def test_domain_means_over_subjects_and_score_is_their_sum():
    preds = _predictions({1: S1_TICKS, 2: S2_TICKS})
    table = metrics.wide(metrics.mae_table(preds, TRUTH, "paper", n_boot=0))
    assert table.loc["m"].tolist() == pytest.approx([1.75, 1.25, 1.0, 1.25, 0.5, 5.75])
    table = metrics.wide(metrics.mae_table(preds, TRUTH, "corrected", n_boot=0))
    assert table.loc["m"].tolist() == pytest.approx([0.75, 0.0, 1.0, 0.25, 0.0, 2.0])


def test_a_perfect_agreement_predictor_scores_zero_only_under_the_corrected_convention():
    ticks = {
        s.case: {i.number: float(s.answers[i.number] if i.sign > 0 else 6 - s.answers[i.number]) for i in ITEMS
                 if s.answers[i.number] != 0}
        for s in (S1, S2)
    }
    preds = _predictions(ticks)
    assert metrics.wide(metrics.mae_table(preds, TRUTH, "corrected", n_boot=0)).loc["m", "Score"] == 0
    assert metrics.wide(metrics.mae_table(preds, TRUTH, "paper", n_boot=0)).loc["m", "Score"] > 0


def test_unparsed_answers_are_dropped_like_palign():
    ticks = {1: {**S1_TICKS, 2: np.nan}}
    per_subject = metrics.subject_domain_mae(_predictions(ticks), TRUTH, "paper")
    assert per_subject.loc[("m", 1), "A"] == 1.0  # only item 1 left


def test_methods_are_scored_separately_by_the_same_function():
    preds = pd.concat([_predictions({1: S1_TICKS}, "a"), _predictions({1: S2_TICKS}, "b")])
    table = metrics.wide(metrics.mae_table(preds, TRUTH, "paper", n_boot=0))
    assert table.loc["a", "A"] == 2.5
    assert table.loc["b", "A"] == pytest.approx((abs(3 - 4) + abs(3 - 5)) / 2)


def test_bootstrap_is_seeded_and_brackets_the_point_estimate():
    rng = np.random.default_rng(1)
    subjects = [Subject(c, c, {i.number: int(rng.integers(1, 6)) for i in ITEMS}) for c in range(40)]
    truth = answers_frame(subjects, ITEMS)
    preds = _predictions({s.case: dict.fromkeys(range(1, 11), 3) for s in subjects})
    a = metrics.mae_table(preds, truth, "corrected", n_boot=300, seed=7)
    b = metrics.mae_table(preds, truth, "corrected", n_boot=300, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert (a["ci_low"] <= a["mae"]).all() and (a["mae"] <= a["ci_high"]).all()
    assert (a["ci_high"] - a["ci_low"] > 0).all()
    # identical subjects: no sampling variability, the interval collapses onto the point
    same = [Subject(c, c, dict(S2.answers)) for c in range(10)]
    preds = _predictions({s.case: S1_TICKS for s in same})
    c = metrics.mae_table(preds, answers_frame(same, ITEMS), "paper", n_boot=100)
    assert np.allclose(c["ci_low"], c["mae"]) and np.allclose(c["ci_high"], c["mae"])


def test_invalid_predictions_are_rejected():
    with pytest.raises(ValueError, match="1..5"):
        metrics.mae_table(_predictions({1: {1: 0}}), TRUTH, "paper")
    with pytest.raises(ValueError, match="more than one row"):
        metrics.mae_table(pd.concat([_predictions({1: {1: 3}})] * 2), TRUTH, "paper")
    with pytest.raises(ValueError, match="subjects missing"):
        metrics.mae_table(_predictions({99: {1: 3}}), TRUTH, "paper")
    with pytest.raises(ValueError, match="convention"):
        metrics.mae_table(_predictions({1: {1: 3}}), TRUTH, "other")  # type: ignore[arg-type]


def _prob_rows(subject, probs_by_item, prior=None, method="m"):
    """Prediction rows with per-order probabilities (the same in both orders) and an optional prior."""
    rows = []
    for item, p in probs_by_item.items():
        row = {"method": method, "subject": subject, "item": item, "predicted": 5 - int(np.argmax(p))}
        for tag in ("orig", "rev"):
            for k, v in enumerate((5, 4, 3, 2, 1)):
                row[f"p{v}_{tag}"] = p[k]
                row[f"cf{v}_{tag}"] = (prior if prior is not None else [0.2] * 5)[k]
        rows.append(row)
    return pd.DataFrame(rows)


def test_endpoints_expected_answer_and_rank_correlation_by_hand():
    # subject 2 ticked (agreement) 2,4 | 3,3 | 5,5 | 3,3 | 3,3 on items 1..10 (odd items are '-')
    middle = [0.1, 0.1, 0.6, 0.1, 0.1]  # expected 3.0, chosen "Neither"
    follow = {i: np.eye(5)[5 - int(TRUTH.set_index(["subject", "item"]).loc[(2, i), "agreement"])] for i in range(1, 11)}
    preds = pd.concat([_prob_rows(2, dict.fromkeys(range(1, 11), middle), method="neither"),
                       _prob_rows(2, follow, method="copy")])
    table = metrics.endpoints(preds, TRUTH, "corrected").set_index(["method", "calibration", "view"])
    neither = table.loc[("neither", "raw", "both")]
    assert neither["score"] == pytest.approx(3.0)  # |3 - agreement| summed over domain means: A 1, E 2
    assert neither["expected_score"] == pytest.approx(3.0)
    assert np.isnan(neither["rho"]) and neither["neither"] == 1.0  # a constant answer has no rank correlation
    copy = table.loc[("copy", "raw", "both")]
    assert copy["score"] == 0.0 and copy["rho"] == pytest.approx(1.0)


def test_calibration_removes_a_letter_prior():
    # every item: the model prefers option C by the same factor the content-free prior does -> flat after calibration
    prior = np.array([0.1, 0.1, 0.6, 0.1, 0.1])
    tilted = prior * np.array([2.0, 1, 1, 1, 1])  # the item itself favours "Very Accurate"
    preds = _prob_rows(2, dict.fromkeys(range(1, 11), tilted / tilted.sum()), prior=list(prior))
    raw = metrics.option_probs(preds, "raw", "both")[0]
    calibrated = metrics.option_probs(preds, "calibrated", "original")[0]
    assert np.argmax(raw) == 2 and np.argmax(calibrated) == 0
    np.testing.assert_allclose(calibrated, [2 / 6, 1 / 6, 1 / 6, 1 / 6, 1 / 6])


def test_endpoints_of_a_no_model_predictor_use_its_tick():
    preds = _predictions({2: S2_TICKS}, method="always-3")
    table = metrics.endpoints(preds, TRUTH, "corrected")
    assert list(table[["calibration", "view"]].drop_duplicates().itertuples(index=False)) == [("raw", "both")]
    assert table["score"].iloc[0] == pytest.approx(3.0) and np.isnan(table["rho"].iloc[0])


def test_endpoint_summary_of_identical_subjects_is_exact_not_zero_width():
    rows = [{"method": "m", "subject": s, "calibration": "raw", "view": "both", "score": 4.0,
             "expected_score": 3.0 + s, "rho": 0.1, "neither": 1.0} for s in range(10)]
    summary = metrics.endpoint_summary(pd.DataFrame(rows)).iloc[0]
    q = 1 - 0.025 ** (1 / 10)  # at most this share of subjects could differ (0 of 10 did)
    assert summary["score_low"] == pytest.approx(4.0 - 4.0 * q) and summary["score_high"] == pytest.approx(4.0 + 21 * q)
    assert summary["neither_high"] == 1.0 and summary["neither_low"] == pytest.approx(1 - q)
    assert summary["expected_score_low"] < 7.5 < summary["expected_score_high"] < 10  # varied: a t interval
