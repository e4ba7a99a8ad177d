"""The verdict rule on synthetic data whose truth is known: each branch, power, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from persona import verdicts as V


def series(values, start=0):
    return pd.Series(np.asarray(values, float), index=range(start, start + len(values)))


def scores(n, effect, sd, seed=0):
    """Per-subject error of X and Y (lower is better), X better than Y by ``effect`` on average."""
    rng = np.random.default_rng(seed)
    y = rng.normal(4.0, 1.0, n)
    x = y - effect + rng.normal(0, sd, n)
    return series(x), series(y)


def test_a_clear_effect_in_the_claimed_direction_is_replicated():
    x, y = scores(30, effect=1.0, sd=0.5)
    v = V.paired(x, y, higher_is_better=False, paper_effect=1.55)
    assert v.verdict == V.REPLICATED and v.ci_low > 0 and v.n == 30
    assert v.effect == pytest.approx(float((y - x).mean()))


def test_wrong_direction_but_not_significant_is_inconclusive():
    y = series(np.full(8, 4.0))
    x = y - 3 * series([-2, 1.5, -1, 2, -0.5, 1, -1.5, -1])  # X worse on average, very noisy
    v = V.paired(x, y, higher_is_better=False, paper_effect=1.55)
    assert v.effect < 0 and v.ci_high > 0
    assert v.verdict == V.INCONCLUSIVE
    assert 0 < v.power < 1 and v.n_needed > 8  # the run says what it could detect and what it would need


def test_a_tight_interval_around_zero_that_excludes_the_papers_margin_is_not_replicated():
    x, y = scores(60, effect=0.0, sd=0.3, seed=2)
    v = V.paired(x, y, higher_is_better=False, paper_effect=1.55, paper_label="PAS vs few-shot, Llama-3-8B")
    assert v.ci_low < 0 < v.ci_high < 1.55
    assert v.verdict == V.NOT_REPLICATED
    assert "1.55" in v.reason and "Llama-3-8B" in v.reason
    assert v.power > 0.99


def test_significantly_opposite_is_not_replicated_even_without_a_paper_effect():
    x, y = scores(40, effect=-1.0, sd=0.5, seed=3)
    v = V.paired(x, y, higher_is_better=False, paper_effect=None)
    assert v.ci_high < 0 and v.verdict == V.NOT_REPLICATED and "opposite" in v.reason


def test_a_wide_interval_without_a_paper_effect_stays_inconclusive():
    x, y = scores(5, effect=0.1, sd=2.0, seed=4)
    v = V.paired(x, y, higher_is_better=False, paper_effect=None)
    assert v.verdict == V.INCONCLUSIVE and "no power figure" in v.evidence


def test_one_subject_is_inconclusive():
    v = V.paired(series([3.0]), series([4.0]), higher_is_better=False, paper_effect=1.55)
    assert v.verdict == V.INCONCLUSIVE and v.n == 1 and "no interval" in v.reason


def test_nan_is_not_testable():
    v = V.paired(series([3.0, np.nan, 2.0]), series([4.0, 4.0, 4.0]), higher_is_better=False, paper_effect=1.0)
    assert v.verdict == V.NOT_TESTABLE and "NaN" in v.reason


def test_identical_answers_are_not_evidence_either_way():
    # PAS that chose alpha = 0 for every subject is few-shot: a tie is not a loss
    x = series([3.1, 2.9, 3.4, 3.0])
    v = V.paired(x, x.copy(), higher_is_better=False, paper_effect=1.55)
    assert v.verdict == V.NOT_TESTABLE and "identical" in v.reason


def test_empty_and_mismatched_data_never_give_a_silent_verdict():
    assert V.paired(series([]), series([]), higher_is_better=True, paper_effect=1).verdict == V.NOT_TESTABLE
    with pytest.raises(ValueError, match="different units"):
        V.paired(series([1.0, 2.0]), series([1.0, 2.0], start=5), higher_is_better=True, paper_effect=1)
    with pytest.raises(TypeError):
        V.paired([1.0, 2.0], [2.0, 3.0], higher_is_better=True, paper_effect=1)
    doubled = pd.Series([1.0, 2.0], index=[1, 1])
    with pytest.raises(ValueError, match="once"):
        V.paired(doubled, doubled, higher_is_better=True, paper_effect=1)


def test_paired_units_are_matched_by_label_not_position():
    x = pd.Series([1.0, 5.0, 2.0], index=["a", "b", "c"])
    y = pd.Series([4.0, 1.0, 3.0], index=["b", "a", "c"])  # same values per unit, shuffled order
    v = V.paired(x, y, higher_is_better=True, paper_effect=None)
    assert v.effect == pytest.approx(((5 - 4) + (1 - 1) + (2 - 3)) / 3)


def test_multiplicity_widens_the_interval():
    x, y = scores(20, effect=0.5, sd=1.0, seed=5)
    one = V.paired(x, y, higher_is_better=False, paper_effect=1.0)
    five = V.paired(x, y, higher_is_better=False, paper_effect=1.0, family_size=5)
    assert five.level == pytest.approx(0.99)
    assert five.ci_high - five.ci_low > one.ci_high - one.ci_low
    assert five.power < one.power


def test_power_matches_the_textbook_and_the_needed_n_reaches_it():
    # paired t test, effect 0.5 sd, n = 34: the classic ~80% power example
    p = V.power_t(0.5, 1 / np.sqrt(34), 33, 0.95)
    assert p == pytest.approx(0.807, abs=0.01)
    n = V.n_for_power(0.5, lambda m: (1 / np.sqrt(m), m - 1), 0.95)
    assert n == 34
    assert V.power_t(0.5, 1 / np.sqrt(n - 1), n - 2, 0.95) < 0.8


def test_two_samples_replicates_a_clear_difference_and_computes_power():
    rng = np.random.default_rng(6)
    trait = rng.binomial(1, 0.3, 200)  # sensitivity indicators per item: lower is better
    self_report = rng.binomial(1, 0.7, 200)
    v = V.two_samples(trait, self_report, higher_is_better=False, paper_effect=0.28, unit="items")
    assert v.verdict == V.REPLICATED and v.effect == pytest.approx(self_report.mean() - trait.mean())
    a, b = np.array([0, 1] * 5), np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0])  # 50% vs 60%
    small = V.two_samples(a, b, higher_is_better=False, paper_effect=0.05, unit="items")
    assert small.verdict == V.INCONCLUSIVE and small.n_needed > 20


def test_bootstrap_verdict_for_agreement_beyond_chance():
    rng = np.random.default_rng(7)
    agree = rng.random(300) < 0.9  # per item: do two prompt variants agree?

    def excess(idx):
        return agree[idx].mean() - 0.5  # agreement beyond a coin

    v = V.bootstrap(excess, 300, claimed=0.0, paper_effect=0.33, unit="items")
    assert v.verdict == V.REPLICATED
    coin = rng.random(300) < 0.5
    w = V.bootstrap(lambda idx: coin[idx].mean() - 0.5, 300, claimed=0.0, paper_effect=0.33, unit="items")
    assert w.verdict == V.NOT_REPLICATED  # a coin: the interval excludes the paper's 0.33


def test_bound_claims():
    rng = np.random.default_rng(8)
    cheap = series(np.exp(rng.normal(np.log(0.1), 0.2, 10)))
    dear = series(np.exp(rng.normal(np.log(0.6), 0.2, 10)))
    unclear = series(np.exp(rng.normal(np.log(0.2), 0.8, 4)))
    assert V.at_most(cheap, 0.2).verdict == V.REPLICATED
    assert V.at_most(dear, 0.2).verdict == V.NOT_REPLICATED
    v = V.at_most(unclear, 0.2)
    assert v.verdict == V.INCONCLUSIVE and v.ci_low < 0.2 < v.ci_high
    assert V.at_most(series([0.3]), 0.2).verdict == V.INCONCLUSIVE
    assert V.at_most(series([0.3, np.nan]), 0.2).verdict == V.NOT_TESTABLE
    with pytest.raises(ValueError):
        V.at_most(series([0.3, -1.0]), 0.2)


def test_evidence_text_names_effect_interval_n_and_power():
    x, y = scores(12, effect=0.3, sd=1.0, seed=9)
    v = V.paired(x, y, higher_is_better=False, paper_effect=1.55, effect_label="Score(few-shot) - Score(PAS)")
    text = v.evidence
    for part in ("Score(few-shot) - Score(PAS)", "CI", "n = 12 subjects", "power", "1.55"):
        assert part in text
    with pytest.raises(ValueError):
        V.Verdict("probably", "no such verdict")


def test_identical_sides_are_evidence_when_they_could_have_differed():
    many = series([50.0] * 40)
    v = V.paired(many, many.copy(), higher_is_better=True, paper_effect=35.2, identical_is_evidence=True, bound=50.0)
    # 0 of 40 items differ: at most 1 - 0.025^(1/40) = 8.8% could, each by at most 50 points -> +-4.4
    assert v.verdict == V.NOT_REPLICATED and "35.2" in v.reason and "8.8%" in v.reason
    assert v.ci_low == pytest.approx(-4.41, abs=0.01) and v.ci_high == pytest.approx(4.41, abs=0.01)
    assert not np.isfinite(v.power) and "not computable" in v.evidence  # zero spread: no 100% power
    # three items that did not move cannot exclude 35.2 points: 71% of items could still move
    few = series([50.0] * 3)
    v = V.paired(few, few.copy(), higher_is_better=True, paper_effect=35.2, identical_is_evidence=True, bound=50.0)
    assert v.verdict == V.INCONCLUSIVE and v.ci_high == pytest.approx(35.4, abs=0.05)


def test_constant_differences_get_an_exact_interval_never_a_zero_width_one():
    low, high = V.constant_interval(10.0, 25, 0.99, 50.0)
    q = (high - 10.0) / (50.0 - 10.0)
    assert (10.0 - low) / (10.0 + 50.0) == pytest.approx(q)
    assert stats.binom.pmf(0, 25, q) == pytest.approx(0.005)  # Clopper-Pearson: P(0 of 25 | q) = (1 - level) / 2
    x = series([3.0] * 12)
    v = V.paired(x, series([2.5] * 12), higher_is_better=True, paper_effect=1.0)
    assert v.verdict == V.INCONCLUSIVE and v.effect == 0.5 and not np.isfinite(v.ci_low)  # no bound: no interval
    v = V.paired(x, series([2.5] * 12), higher_is_better=True, paper_effect=1.0, bound=4.0)
    assert v.ci_low < 0.5 < v.ci_high and v.verdict == V.INCONCLUSIVE


def test_power_stays_defined_far_in_the_tail():
    assert V.power_t(40.0, 1.0, 30, 0.99) == pytest.approx(1.0)
    assert V.power_t(0.01, 1.0, 30, 0.99) < 0.05


# ------------------------------------------------------------------ two samples: constant sides, the scale


def test_a_constant_side_is_not_exact_the_order_sensitivity_fixture():
    """The proxy's 32 statements all at 100% order sensitivity, TRAIT's 200 items near 95%: treating the proxy as
    exact made "replicated, 4.8 [2.5, 7.1]"; its exact binomial bound reaches down to about 83, so the interval
    must include 0."""
    rng = np.random.default_rng(0)
    proxy = np.full(32, 100.0)
    trait = np.clip(rng.normal(95.2, 18.0, 200), 0, 100)
    v = V.two_samples(proxy, trait, higher_is_better=True, paper_effect=32.2, family_size=8, unit="items",
                      scale=(0.0, 100.0))
    assert v.ci_low < 0 < v.ci_high
    assert v.verdict != V.REPLICATED
    assert "exact binomial" in v.reason and not np.isfinite(v.power)
    # without the scale the old (wrong) answer comes back: the test can fail
    old = V.two_samples(proxy, trait, higher_is_better=True, paper_effect=32.2, family_size=8, unit="items")
    assert old.verdict == V.REPLICATED


def test_welch_intervals_are_clipped_to_the_scale():
    a, b = np.array([0.0, 100.0]), np.array([0.0, 100.0, 50.0, 50.0])
    v = V.two_samples(a, b, higher_is_better=True, paper_effect=None, scale=(0.0, 100.0))
    assert -100.0 <= v.ci_low and v.ci_high <= 100.0
    unclipped = V.two_samples(a, b, higher_is_better=True, paper_effect=None)
    assert unclipped.ci_high > 100.0  # the two-item side alone gives df ~ 1: the clip is doing the work


def test_two_constant_sides_without_a_scale_give_no_zero_width_interval():
    v = V.two_samples(np.full(5, 3.0), np.full(5, 1.0), higher_is_better=True, paper_effect=None)
    assert v.verdict == V.INCONCLUSIVE and not np.isfinite(v.ci_low)


def test_replicated_below_the_papers_effect_says_so_in_the_evidence_line():
    x, y = scores(200, effect=0.5, sd=0.3, seed=5)
    v = V.paired(x, y, higher_is_better=False, paper_effect=1.55)
    assert v.verdict == V.REPLICATED and v.ci_high < 1.55
    assert "smaller than the paper's 1.55" in v.evidence
    big = V.paired(*scores(200, effect=2.0, sd=0.3, seed=5), higher_is_better=False, paper_effect=1.55)
    assert "smaller" not in big.evidence
