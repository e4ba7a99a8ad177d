"""Reliability definitions on hand-made decisions with known answers."""

import numpy as np
import pandas as pd
import pytest

from persona.trait.items import TRAIT_ORDERS
from persona.trait.reliability import (
    agreement_table,
    calibration_change,
    chance_prompt_sensitivity,
    cohen_kappa,
    fleiss_kappa,
    item_reliability,
    mean_interval,
    option_order_sensitivity,
    prompt_sensitivity,
    refusal_items,
    refusal_rate,
    reliability_table,
)
from persona.trait.reported import kappa_from_disagreement
from persona.trait.scoring import order_choice


def test_prompt_sensitivity_counts_items_without_unanimity():
    choices = np.array([[1, 1, 1], [0, 0, 0], [1, 0, 1], [0, 1, 1], [1, np.nan, 1]], float)
    assert prompt_sensitivity(choices) == 0.5  # 2 of the 4 fully decided items disagree
    with pytest.raises(ValueError):
        prompt_sensitivity(np.ones(3))


def test_chance_level_matches_simulation():
    rng = np.random.default_rng(0)
    coins = rng.random((200_000, 3)) < 0.5
    assert abs(prompt_sensitivity(coins.astype(float)) - chance_prompt_sensitivity(3)) < 0.005
    assert chance_prompt_sensitivity(3) == 0.75
    assert chance_prompt_sensitivity(3, 1.0) == 0.0


def test_a_letter_biased_model_is_fully_order_sensitive_on_trait():
    # A model that always puts 70% on letter "A", whatever the content.
    shown = np.array([0.7, 0.1, 0.1, 0.1])
    per_order = {}
    for order, perm in TRAIT_ORDERS.items():
        identity = np.empty(4)
        identity[list(perm)] = shown
        per_order[order] = order_choice(np.tile(identity, (5, 1)))
    assert option_order_sensitivity(per_order["original"], per_order["reversed"]) == 1.0
    assert option_order_sensitivity(np.array([1.0, 0, np.nan]), np.array([1.0, 1, 0])) == 0.5


def test_refusal_is_split_into_explicit_refusals_and_unparseable_answers_per_item():
    assert refusal_rate([0, 2, "refused", "unparseable"]) == 0.5
    gen = pd.DataFrame({"model": "m", "test": "t", "key": ["a", "a", "b", "b"], "trait": "Openness",
                        "outcome": ["0", "refused", "unparseable", "unparseable"]})
    items = refusal_items(gen).set_index("key")
    assert items.loc["a", ["refused", "unparseable", "no_answer"]].tolist() == [50.0, 0.0, 50.0]
    assert items.loc["b", ["refused", "unparseable", "no_answer"]].tolist() == [0.0, 100.0, 100.0]
    row = reliability_table(items.reset_index(), ["test"], measures=("refused", "unparseable")).iloc[0]
    assert (row["refused"], row["unparseable"], row["refused_n"]) == (25.0, 50.0, 2)  # two items, not four answers


def dec_frame(rows):
    """rows: (key, template, fixed, orig, rev)."""
    return pd.DataFrame([{"model": "m", "test": "t", "key": k, "trait": "Openness", "template": t,
                          "fixed": f, "orig": o, "rev": r} for k, t, f, o, r in rows])


def test_item_sensitivities_on_hand_made_decisions():
    dec = dec_frame([("a", 1, 1.0, 1.0, 0.0), ("a", 2, 1.0, 1.0, 1.0),        # orders differ in 1 of 2 templates
                     ("b", 1, 1.0, 1.0, 1.0), ("b", 2, 0.0, 0.0, 0.0),        # templates disagree
                     ("c", 1, 0.0, 0.0, np.nan), ("c", 2, np.nan, np.nan, np.nan)])  # undetermined
    items = item_reliability(dec).set_index("key")
    assert items.loc["a", "order_sensitivity"] == 50.0 and items.loc["a", "prompt_sensitivity"] == 0.0
    assert items.loc["b", "order_sensitivity"] == 0.0 and items.loc["b", "prompt_sensitivity"] == 100.0
    assert np.isnan(items.loc["c", "order_sensitivity"]) and np.isnan(items.loc["c", "prompt_sensitivity"])
    row = reliability_table(items.reset_index(), ["model"]).iloc[0]
    assert row["order_sensitivity"] == 25.0 and row["prompt_sensitivity"] == 50.0
    assert row["order_sensitivity_n"] == 2  # the undetermined item is left out, not counted as agreement


def test_mean_interval_is_a_t_interval_over_items():
    ci = mean_interval([0.0, 100.0, 100.0, 0.0, np.nan])
    half = 3.1824463 * np.std([0, 100, 100, 0], ddof=1) / 2  # t(0.975, df 3)
    assert ci["mean"] == 50.0 and ci["n_items"] == 4
    assert ci["ci_low"] == pytest.approx(50 - half) and ci["ci_high"] == pytest.approx(50 + half)
    assert np.isnan(mean_interval([3.0])["ci_low"])
    cut = mean_interval([0.0, 100.0, 100.0, 0.0], bounds=(0.0, 100.0))  # a percentage stays in 0-100
    assert (cut["ci_low"], cut["ci_high"]) == (0.0, 100.0)


def test_mean_interval_of_identical_items_is_exact_not_zero_width():
    same = mean_interval([50.0] * 32, bounds=(0.0, 100.0))
    q = 1 - 0.025 ** (1 / 32)  # at most this share of items could differ (0 of 32 did)
    assert same["mean"] == 50.0 and same["ci_low"] == pytest.approx(50 - 50 * q)
    assert same["ci_high"] == pytest.approx(50 + 50 * q) and 5 < 50 * q < 6
    at_end = mean_interval([100.0] * 32, bounds=(0.0, 100.0))
    assert at_end["ci_high"] == 100.0 and at_end["ci_low"] == pytest.approx(100 - 100 * q)
    assert np.isnan(mean_interval([50.0] * 32)["ci_low"])  # no bounds: no interval


def test_kappas_on_known_answers():
    assert cohen_kappa(np.array([1, 0, 1, 0.0]), np.array([1, 0, 1, 0.0])) == 1.0
    assert cohen_kappa(np.array([1, 1, 0, 0.0]), np.array([0, 0, 1, 1.0])) == -1.0
    # a letter-biased model: the original order always "high", the reversed always "low": no agreement
    assert cohen_kappa(np.ones(6), np.zeros(6)) == 0.0
    # 3 of 4 agree with balanced marginals: p_o = .75, p_e = .5 -> kappa .5 = 1 - 2 x 25%
    assert cohen_kappa(np.array([1, 1, 0, 0.0]), np.array([1, 0, 0, 0.0])) == pytest.approx(0.5)
    assert np.isnan(cohen_kappa(np.ones(4), np.ones(4)))  # chance agreement 1: undefined
    unanimous = np.array([[1, 1, 1], [0, 0, 0]], float)
    assert fleiss_kappa(unanimous) == 1.0
    # balanced items, a share u unanimous, the rest split 2-1: kappa = (4u - 1)/3
    u_half = np.array([[1, 1, 1], [0, 0, 0], [1, 1, 0], [0, 0, 1]], float)
    assert fleiss_kappa(u_half) == pytest.approx(kappa_from_disagreement(0.5, 3)) == pytest.approx(1 / 3)
    assert kappa_from_disagreement(0.335, 2) == pytest.approx(0.33)


def test_independent_coins_have_kappa_near_zero_and_the_interval_covers_it():
    rng = np.random.default_rng(0)
    n = 400
    rows = [(f"i{k}", t, float(rng.random() < .5), float(rng.random() < .5), float(rng.random() < .5))
            for k in range(n) for t in (1, 2, 3)]
    table = agreement_table(dec_frame(rows), ["model"], n_boot=300).iloc[0]
    for name in ("order_kappa", "template_kappa"):
        assert abs(table[name]) < 0.08
        assert table[f"{name}_low"] < 0 < table[f"{name}_high"]


def test_calibration_change_pairs_items():
    raw = pd.DataFrame({"model": "m", "key": list("abcd"), "order_sensitivity": [100.0, 100, 100, 0],
                        "prompt_sensitivity": [0.0, 0, 100, 0]})
    cal = raw.assign(order_sensitivity=[0.0, 100, 0, 0])
    table = calibration_change(raw, cal, ["model"]).set_index("measure")
    assert table.loc["order_sensitivity", ["raw", "calibrated", "change"]].tolist() == [75.0, 25.0, -50.0]
    assert table.loc["prompt_sensitivity", "change"] == 0.0
