"""Reliability definitions on hand-made decisions with known answers."""

import numpy as np
import pandas as pd
import pytest

from persona.trait.items import TRAIT_ORDERS
from persona.trait.reliability import (
    chance_prompt_sensitivity,
    option_order_sensitivity,
    prompt_sensitivity,
    refusal_rate,
    refusal_table,
    reliability_table,
)
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


def test_refusal_rate_and_tables():
    assert refusal_rate([0, 2, "refused", "unparseable"]) == 0.5
    gen = pd.DataFrame({"test": ["t"] * 4, "outcome": ["0", "refused", "unparseable", "3"]})
    row = refusal_table(gen, ["test"]).iloc[0]
    assert (row["refused"], row["unparseable"], row["refusal_rate"]) == (25.0, 25.0, 50.0)
    dec = pd.DataFrame({
        "test": "t", "key": ["a", "a", "b", "b"], "template": [1, 2, 1, 2],
        "fixed": [1.0, 1.0, 1.0, 0.0], "orig": [1.0, 1.0, 1.0, 0.0], "rev": [0.0, 1.0, 1.0, 0.0],
    })
    row = reliability_table(dec, ["test"]).iloc[0]
    assert row["prompt_sensitivity"] == 50.0  # item b flips between templates
    assert row["option_order_sensitivity"] == 25.0  # template 1: 1 of 2 items, template 2: 0 of 2
