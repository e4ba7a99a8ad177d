"""The official TRAIT aggregation, its fixed form and the score statistics, on hand-made items."""

import numpy as np
import pytest

from persona.trait.items import TRAIT_ORDERS
from persona.trait.scoring import bootstrap_ci, fixed_choice, official_is_high, order_choice, trait_score


def to_identity(presented, order):
    """Label probabilities as shown (A, B, C, D) -> identity order (high1, low1, high2, low2)."""
    out = np.empty(4)
    out[list(TRAIT_ORDERS[order])] = presented
    return out


def official_reference(likelihood, likelihood_rev):
    """Line-by-line transcription of pull-ups/TRAIT analysis.py for one sample (numpy floats)."""
    a, b, c, d = (np.float64(likelihood.get(k, 0)) for k in "ABCD")
    ar, br, cr, dr = (np.float64(likelihood_rev.get(k, 0)) for k in "ABCD")
    with np.errstate(invalid="ignore"):
        an, bn, cn, dn = a / (a + b + c + d), b / (a + b + c + d), c / (a + b + c + d), d / (a + b + c + d)
        arn, brn, crn, drn = ar / (ar + br + cr + dr), br / (ar + br + cr + dr), cr / (ar + br + cr + dr), dr / (ar + br + cr + dr)
    high_1, low_1 = (an + brn) / 2, (bn + arn) / 2
    high_2, low_2 = (cn + drn) / 2, (dn + crn) / 2
    return int(np.argmax([high_1, high_2, low_1, low_2])) in [0, 1]


def test_official_rule_on_a_hand_made_item():
    # Original order: A=high1 .5, B=low1 .2, C=high2 .2, D=low2 .1 (already sums to 1).
    # Reversed order: A=low1 .6, B=high1 .1, C=low2 .2, D=high2 .1.
    # Averages: high1 .30, low1 .40, high2 .15, low2 .15 -> argmax low1 -> LOW, although the
    # original order alone says high (A = high1 is its top letter).
    orig = to_identity([0.5, 0.2, 0.2, 0.1], "original")
    rev = to_identity([0.6, 0.1, 0.2, 0.1], "reversed")
    np.testing.assert_allclose(rev, [0.1, 0.6, 0.1, 0.2])
    assert not official_is_high(orig[None], rev[None])[0]
    assert fixed_choice(orig[None], rev[None])[0] == 0.0
    assert order_choice(orig[None])[0] == 1.0 and order_choice(rev[None])[0] == 0.0


def test_official_rule_normalises_each_order_before_averaging():
    # Unnormalised: the original order has 100x the label mass; without per-order normalisation
    # its high2 would win. Normalised: high2 (.4+.1)/2 = .25 < low2 (.1+.7)/2 = .4 -> LOW.
    orig = 100 * np.array([[0.3, 0.2, 0.4, 0.1]])
    rev = 1 * np.array([[0.1, 0.1, 0.1, 0.7]])
    assert not official_is_high(orig, rev)[0]
    assert fixed_choice(orig, rev)[0] == 0.0


def test_official_rule_matches_transcription_on_random_items():
    rng = np.random.default_rng(1)
    raw = rng.dirichlet(np.ones(4), size=(500, 2)) * rng.uniform(0.01, 1, size=(500, 2, 1))
    raw[rng.random((500, 2, 4)) < 0.15] = 0.0  # labels missing from the top-k, whole orders empty
    ours = official_is_high(raw[:, 0], raw[:, 1])
    for i in range(500):
        shown = [dict(zip("ABCD", raw[i, k][list(TRAIT_ORDERS[o])])) for k, o in enumerate(TRAIT_ORDERS)]
        shown = [{lab: p for lab, p in s.items() if p > 0} for s in shown]  # absent = not in the dict
        assert ours[i] == official_reference(*shown), i


def test_zero_mass_item_counts_high_officially_and_is_excluded_when_fixed():
    zero = np.zeros((1, 4))
    low = np.array([[0.1, 0.7, 0.1, 0.1]])
    assert official_is_high(zero, zero)[0]
    assert official_is_high(zero, low)[0]  # one empty order poisons the average with NaN -> high
    assert np.isnan(fixed_choice(zero, zero)[0])
    assert fixed_choice(zero, low)[0] == 0.0  # the fixed rule uses the order that has mass
    choices = fixed_choice(np.vstack([zero, low, low]), np.vstack([zero, low, low]))
    assert trait_score(choices) == 0.0  # the undetermined item is left out, not counted high


def test_tie_between_high_and_low_is_high_officially_and_undetermined_when_fixed():
    tie = np.full((1, 4), 0.25)
    assert official_is_high(tie, tie)[0]
    assert np.isnan(fixed_choice(tie, tie)[0])


def test_high_mask_generalises_to_likert_items():
    agree_high = (True, True, False, False)
    raw = np.array([[0.1, 0.5, 0.3, 0.1]])  # "Agree" wins
    assert fixed_choice(raw, raw, agree_high)[0] == 1.0
    assert fixed_choice(raw, raw, (False, False, True, True))[0] == 0.0
    with pytest.raises(ValueError):
        fixed_choice(raw, raw, (True, True, True, True))


def test_trait_score_and_bootstrap():
    choices = np.array([1.0] * 30 + [0.0] * 10 + [np.nan] * 5)
    assert trait_score(choices) == 75.0
    low, high = bootstrap_ci(choices, n_boot=4000, seed=3)
    assert low < 75.0 < high
    assert (low, high) == bootstrap_ci(choices, n_boot=4000, seed=3)
    # binomial SE for p=.75, n=40 is 6.85 points; a 95% interval spans about 4 SE
    assert 20 < high - low < 34
    wide = bootstrap_ci(choices, n_boot=4000, seed=3)
    narrow = bootstrap_ci(np.tile(choices, 16), n_boot=4000, seed=3)
    assert narrow[1] - narrow[0] < (wide[1] - wide[0]) / 3
    assert np.isnan(trait_score(np.array([np.nan])))


def test_persona_table_success_is_the_intended_direction():
    import pandas as pd

    from persona.trait.scoring import persona_table

    rows = [("Openness", "none", [1, 0, 0, 0]), ("Openness", "high", [1, 1, 0, 0]), ("Openness", "low", [1, 1, 1, 0]),
            ("Narcissism", "none", [1, 1, 0, 0]), ("Narcissism", "high", [1, 1, 0, 0]), ("Narcissism", "low", [0, 0, 0, np.nan])]
    dec = pd.DataFrame([{"trait": t, "persona": p, "fixed": float(v)} for t, p, vs in rows for v in vs])
    table = persona_table(dec).set_index(["trait", "persona"])
    assert list(table.index.get_level_values("trait")) == ["Openness"] * 2 + ["Narcissism"] * 2  # TRAIT order
    assert table.loc[("Openness", "high"), "shift"] == 25.0 and table.loc[("Openness", "high"), "success"]
    assert not table.loc[("Openness", "low"), "success"]  # 75 > 25: moved the wrong way
    assert not table.loc[("Narcissism", "high"), "success"]  # no movement is no success
    assert table.loc[("Narcissism", "low"), "success"] and table.loc[("Narcissism", "low"), "intended"] == 100.0
