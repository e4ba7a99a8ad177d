"""Variance components of a paired Score difference, recovered from simulated item-level errors."""

import math

import numpy as np
import pandas as pd
import pytest

from persona.papi import power


def simulated(n_subjects, m, sd_subject, sd_item, mean=0.0, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subjects):
        b = rng.normal(mean, sd_subject)  # the subject's true Score difference
        for d in "ACENO":
            for i in range(m):
                rows.append((s, d, f"{d}{i}", b / 5 + rng.normal(0, sd_item)))
    return pd.DataFrame(rows, columns=["subject", "domain", "item", "diff"])


def test_components_recover_the_simulated_variances():
    comp = power.components(simulated(3000, 6, sd_subject=0.8, sd_item=1.2, mean=0.3))
    assert comp.var_item == pytest.approx(1.44, rel=0.03)
    assert comp.var_subject == pytest.approx(0.64, rel=0.1)
    assert comp.mean == pytest.approx(0.3, abs=0.05) and comp.items_per_domain == 6
    assert comp.sd(6) == pytest.approx(math.sqrt(0.64 + 5 * 1.44 / 6), rel=0.05)


def test_more_items_or_subjects_buy_power_and_the_needed_n_reaches_80_percent():
    comp = power.Components(var_subject=0.25, var_item=1.0, items_per_domain=6, n_subjects=10, mean=0.0)
    table = power.grid(0.5, comp, subjects=[10, 40], items_per_domain=[6, 36])
    assert table.loc[40, 6] > table.loc[10, 6] and table.loc[10, 36] > table.loc[10, 6]
    n = power.subjects_needed(0.5, comp, 6)
    assert power.power(0.5, comp, n, 6) >= 0.8 > power.power(0.5, comp, n - 1, 6)
    # with no item noise left, the design is limited by the subjects' own spread only
    assert power.subjects_needed(0.5, comp, 10_000) < n


def test_item_differences_pair_the_two_methods_item_by_item():
    from persona.papi import DOMAINS, Item, Subject, answers_frame

    items = [Item(k + 1, None, d, f"{d}1", "x", 1, "t") for k, d in enumerate(DOMAINS)]
    subject = Subject(1, 0, {i.number: 4 for i in items})
    truth = answers_frame([subject], items)
    preds = pd.DataFrame([("a", 1, i.number, 4) for i in items] + [("b", 1, i.number, 2) for i in items],
                         columns=["method", "subject", "item", "predicted"])
    diffs = power.item_differences(preds, truth, "a", "b")
    assert diffs["diff"].tolist() == [2.0] * 5  # b is 2 points worse everywhere: positive favours a
