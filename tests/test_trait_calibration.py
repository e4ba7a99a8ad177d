"""Content-free calibration of TRAIT answers (persona.trait.calibration) on hand-made probabilities."""

import numpy as np
import pandas as pd
import pytest

from persona.trait.calibration import calibrate_frame, content_free_grid
from persona.trait.items import TRAIT_ORDERS
from persona.trait.reliability import item_reliability
from persona.trait.scoring import RAW_COLS, decisions


def test_content_free_prompts_replace_trait_options_but_keep_the_agreement_scale():
    prompts, meta = content_free_grid([0, 2], test="TRAIT", systems={"none": None, "high": "You are bold."})
    assert len(prompts) == 2 * 2 * 2 and set(meta["order"]) == set(TRAIT_ORDERS)
    first = prompts[0].user
    assert "N/A" in first and first.count("N/A") == 5  # the stem and all four options
    assert prompts[0].user == prompts[1].user  # both orders read the same: only the identities move
    assert prompts[0].permutation != prompts[1].permutation
    assert {p.system for p in prompts} == {None, "You are bold."}
    self_prompts, _ = content_free_grid([0], test="self-report")
    assert "Strongly agree" in self_prompts[0].user and self_prompts[0].user.count("N/A") == 1
    with pytest.raises(ValueError, match="test"):
        content_free_grid([0], test="BFI")


def shown_to_identity(shown, order):
    out = np.empty(4)
    out[list(TRAIT_ORDERS[order])] = shown
    return out


def letter_biased_rows(content, letter_bias):
    """A model whose label probability = position bias x item content (identity order), per order."""
    rows, cf = [], []
    for key, c in content.items():
        for order in TRAIT_ORDERS:
            prior = shown_to_identity(letter_bias, order)
            raw = prior * np.asarray(c)
            rows.append({"model": "m", "test": "TRAIT", "key": key, "trait": "Openness", "template": 1,
                         "order": order, "persona": "none", "mask": "1010", **dict(zip(RAW_COLS, raw)),
                         "mass": raw.sum()})
    for order in TRAIT_ORDERS:
        prior = shown_to_identity(letter_bias, order)
        cf.append({"model": "m", "test": "TRAIT", "template": 1, "order": order, "persona": "none",
                   **dict(zip(RAW_COLS, 0.5 * prior))})  # the scale of the prior does not matter
    return pd.DataFrame(rows), pd.DataFrame(cf)


def test_calibration_removes_a_letter_bias_and_with_it_the_order_sensitivity():
    # Content says: k1 prefers high2 a little, k2 prefers low1 a little; letter A is 20x more likely.
    content = {"k1": [0.24, 0.25, 0.27, 0.24], "k2": [0.24, 0.28, 0.24, 0.24]}
    frame, cf = letter_biased_rows(content, np.array([0.8, 0.04, 0.08, 0.08]))
    raw = item_reliability(decisions(frame, keys=("model", "test", "key", "trait", "template", "persona")))
    assert (raw["order_sensitivity"] == 100.0).all()  # letter A is high1 in one order and low1 in the other
    calibrated = calibrate_frame(frame, cf)
    for key, c in content.items():  # each order recovers the content exactly
        got = calibrated.loc[calibrated["key"] == key, RAW_COLS].to_numpy()
        np.testing.assert_allclose(got, np.tile(np.asarray(c) / sum(c), (2, 1)))
    dec = decisions(calibrated, keys=("model", "test", "key", "trait", "template", "persona")).set_index("key")
    assert dec.loc["k1", "fixed"] == 1.0 and dec.loc["k2", "fixed"] == 0.0
    assert (item_reliability(dec.reset_index())["order_sensitivity"] == 0.0).all()


def test_a_zero_prior_or_no_mass_leaves_the_answer_undetermined():
    frame, cf = letter_biased_rows({"k1": [0.3, 0.2, 0.3, 0.2]}, np.array([0.4, 0.2, 0.2, 0.2]))
    cf.loc[0, "raw_0"] = 0.0
    frame.loc[1, RAW_COLS] = 0.0
    calibrated = calibrate_frame(frame, cf)
    assert calibrated[RAW_COLS].isna().all(axis=1).tolist() == [True, True]
    with pytest.raises(ValueError, match="content-free"):
        calibrate_frame(frame.assign(template=2), cf)
