"""Reference predictors: hand-computed ticks, no leakage across subjects, and the third-party numbers."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import mirror_or_skip

from persona.papi import (
    Item,
    Subject,
    answers_frame,
    items_by_number,
    load_item_key,
    load_split,
    load_subjects,
    metrics,
)
from persona.papi.reference import (
    Constant,
    PopulationItemMean,
    RidgeFromKnown,
    SubjectMean,
    cross_fit,
    keyed_to_tick,
    predictions_frame,
)

# facet A1: known 1(+) 2(-) 3(+) 4(+), held-out 5(+) 6(-); facet A2: known 7(+), held-out 8(-)
KNOWN = [Item(n, n, "A", "A1", "Trust", s, "t") for n, s in [(1, 1), (2, -1), (3, 1), (4, 1)]] + [
    Item(7, 7, "A", "A2", "Morality", 1, "t")]
HELD = [Item(5, None, "A", "A1", "Trust", 1, "t"), Item(6, None, "A", "A1", "Trust", -1, "t"),
        Item(8, None, "A", "A2", "Morality", -1, "t")]


def test_keyed_to_tick_rounds_half_to_even_and_flips_minus_items_only_when_corrected():
    plus, minus = HELD[0], HELD[1]
    assert keyed_to_tick(3.5, plus, "paper", "half-even") == 4
    assert keyed_to_tick(2.5, plus, "paper", "half-even") == 2
    assert keyed_to_tick(2.5, plus, "paper", "half-up") == 3
    assert keyed_to_tick(2.5, plus, "paper", "none") == 2.5
    assert keyed_to_tick(4.2, minus, "paper", "half-even") == 4  # the paper pipeline ticks the stored scale
    assert keyed_to_tick(4.2, minus, "corrected", "half-even") == 2  # agreement = 6 - keyed
    assert keyed_to_tick(7.0, plus, "corrected", "none") == 5  # clipped to the scale


def test_subject_facet_mean_by_hand():
    # A1 known stored 4, 5, 0 (missing, ignored), 2 -> mean 11/3 = 3.67 -> 4; A2 known 1 -> 1
    subject = Subject(1, 0, {1: 4, 2: 5, 3: 0, 4: 2, 5: 3, 6: 3, 7: 1, 8: 3})
    corrected = SubjectMean(KNOWN, "facet", "corrected").predict(subject, HELD)
    paper = SubjectMean(KNOWN, "facet", "paper").predict(subject, HELD)
    assert corrected == {5: 4, 6: 2, 8: 5}
    assert paper == {5: 4, 6: 4, 8: 1}
    domain = SubjectMean(KNOWN, "domain", "paper", "none").predict(subject, HELD)
    assert domain == {5: 3.0, 6: 3.0, 8: 3.0}  # (4 + 5 + 2 + 1) / 4
    assert Constant(4).predict(subject, HELD) == {5: 4.0, 6: 4.0, 8: 4.0}


def _population(n: int, seed: int) -> list[Subject]:
    """Subjects whose held-out keyed answers equal a known item's answer: learnable from other people."""
    rng = np.random.default_rng(seed)
    out = []
    for case in range(n):
        level = int(rng.integers(1, 6))
        answers = {1: level, 2: int(rng.integers(1, 6)), 3: 6 - level, 4: 3, 7: 3, 5: level, 6: 6 - level, 8: 3}
        out.append(Subject(case, case, answers))
    return out


def test_ridge_learns_a_mapping_from_other_subjects():
    train, test = _population(80, 0), _population(20, 1)
    ridge = RidgeFromKnown(train, known=[1, 2, 3, 4, 7], convention="corrected", rounding="none")
    for subject in test:
        level = subject.answers[1]
        pred = ridge.predict(subject, HELD)
        assert pred[5] == pytest.approx(level, abs=0.15)
        assert pred[6] == pytest.approx(6 - (6 - level), abs=0.15)  # keyed 6-level, '-' item: agreement = level
    assert PopulationItemMean(train, "paper", "none").predict(test[0], HELD)[8] == 3.0


def test_cross_fit_never_trains_on_the_predicted_subject():
    subjects = _population(30, 2)
    seen: list[set[int]] = []

    class Spy:
        name = "spy"

        def __init__(self, train):
            self.train = {s.case for s in train}
            seen.append(self.train)

        def predict(self, subject, items):
            assert subject.case not in self.train
            return {i.number: 3.0 for i in items}

    frame = cross_fit(Spy, subjects, HELD, n_folds=5, seed=0)
    assert len(seen) == 5 and all(len(s) == 24 for s in seen)
    assert frame.groupby("subject").size().eq(len(HELD)).all() and frame["subject"].nunique() == 30
    assert frame["subject"].tolist()[:3] == [0, 0, 0]


@pytest.fixture(scope="module")
def papi():
    mirror_or_skip()
    items, split, subjects = load_item_key(), load_split(), load_subjects()
    by = items_by_number(items)
    return ([by[n] for n in split.known], [by[n] for n in split.heldout], subjects,
            answers_frame(subjects, items, split))


def test_third_party_reference_numbers_reproduce_under_the_paper_convention(papi):
    known, held, subjects, truth = papi
    neutral = predictions_frame(Constant(3), subjects, held)
    facet = predictions_frame(SubjectMean(known, "facet", "paper"), subjects, held)
    score = lambda p: metrics.wide(metrics.mae_table(p, truth, "paper", n_boot=0)).iloc[0]["Score"]  # noqa: E731
    assert round(score(neutral), 2) == 3.80
    assert round(score(facet), 2) == 2.73


def test_the_paper_metric_penalises_a_correctly_keyed_predictor(papi):
    known, held, subjects, truth = papi
    corrected = predictions_frame(SubjectMean(known, "facet", "corrected"), subjects, held)
    table = metrics.wide(metrics.mae_table(corrected, truth, "corrected", n_boot=0)).iloc[0]
    paper = metrics.wide(metrics.mae_table(corrected, truth, "paper", n_boot=0)).iloc[0]
    assert table["Score"] < 2.8 < 4.0 < paper["Score"]
