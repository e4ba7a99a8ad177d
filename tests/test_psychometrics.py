"""Psychometrics: alpha by hand, keying evidence on synthetic and real data, consistency invariants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import mirror_or_skip

from persona.papi import Item, Split, Subject, load_item_key, load_split, load_subjects
from persona.papi import psychometrics as P


def test_cronbach_alpha_by_hand():
    # 4 subjects x 3 items. Item sums of squared deviations: 5, 4.75, 2.75 (variances /3) -> sum 12.5/3.
    # Totals 6, 8, 10, 14 -> mean 9.5, squared deviations sum 35 -> variance 35/3.
    # alpha = 3/2 * (1 - 12.5/35) = 3/2 * 22.5/35 = 27/28
    wide = pd.DataFrame([[1, 2, 3], [2, 3, 3], [3, 3, 4], [4, 5, 5]], dtype=float)
    alpha, low, high = P.cronbach(wide)
    assert alpha == pytest.approx(27 / 28)
    assert low < alpha < high
    identical = pd.DataFrame({"a": [1, 2, 3, 4, 5.0], "b": [1, 2, 3, 4, 5.0]})
    assert P.cronbach(identical)[0] == pytest.approx(1.0)


def _synthetic(store_minus_as_agreement: bool, n: int = 200) -> tuple[list[Subject], list[Item]]:
    """One facet of 2 '+' and 2 '-' items driven by one latent level."""
    rng = np.random.default_rng(0)
    items = [Item(k + 1, None, "N", "N1", "Anxiety", s, "t") for k, s in enumerate([1, 1, -1, -1])]
    subjects = []
    for case in range(n):
        level = rng.normal()
        keyed = np.clip(np.round(3 + 1.2 * level + rng.normal(0, 0.7, 4)), 1, 5).astype(int)
        stored = [6 - k if (store_minus_as_agreement and it.sign < 0) else k for k, it in zip(keyed, items)]
        subjects.append(Subject(case, case, dict(zip([1, 2, 3, 4], map(int, stored)))))
    return subjects, items


def test_opposite_sign_pairs_reveal_how_minus_items_are_stored():
    keyed_subjects, items = _synthetic(store_minus_as_agreement=False)
    pairs = P.within_facet_pairs(keyed_subjects, items)
    assert len(pairs) == 6 and pairs["opposite_sign"].sum() == 4
    assert (pairs["r"] > 0.3).all()
    agreement_subjects, _ = _synthetic(store_minus_as_agreement=True)
    pairs = P.within_facet_pairs(agreement_subjects, items)
    assert (pairs.loc[pairs["opposite_sign"], "r"] < -0.3).all()
    assert (pairs.loc[~pairs["opposite_sign"], "r"] > 0.3).all()


def test_consistency_is_perfect_when_heldout_items_copy_known_ones():
    rng = np.random.default_rng(3)
    items = [Item(n, None, d, f"{d}1", "x", 1, "t") for n, d in zip(range(1, 11), "AACCEENNOO")]
    split = Split(known=(1, 3, 5, 7, 9), heldout=(2, 4, 6, 8, 10))
    subjects = []
    for case in range(30):
        levels = rng.integers(1, 6, size=5)
        subjects.append(Subject(case, case, {n: int(levels[(n - 1) // 2]) for n in range(1, 11)}))
    across, profile = P.known_heldout_consistency(subjects, items, split)
    assert np.allclose(across, 1.0)
    assert np.allclose(profile.dropna(), 1.0)


def test_scale_scores_ignore_missing_answers():
    items = [Item(1, None, "A", "A1", "x", 1, "t"), Item(2, None, "A", "A1", "x", -1, "t")]
    subject = Subject(1, 0, {1: 4, 2: 0})
    assert P.scale_scores([subject], items)["A"].iloc[0] == 4.0


def test_real_data_minus_items_are_stored_reverse_scored():
    mirror_or_skip()
    items, subjects = load_item_key(), load_subjects()
    pairs = P.within_facet_pairs(subjects, items)
    opposite = pairs[pairs["opposite_sign"]]
    assert len(opposite) == 696
    assert (opposite["r"] > 0).mean() > 0.99  # SOURCE.md: only 0.4 % negative
    split = load_split()
    table = P.reliability(subjects, items, {"120": split.known})
    assert set(table["level"]) == {"domain", "facet"} and len(table) == 35
    assert (table.loc[table["level"] == "domain", "alpha"] > 0.8).all()
