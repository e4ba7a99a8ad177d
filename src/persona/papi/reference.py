"""Reference predictors for the PAPI task: no language model, the floor any alignment method must beat.

Every predictor has the interface of the alignment methods::

    class ReferencePredictor(Protocol):
        name: str
        def predict(self, subject: Subject, items: Sequence[Item]) -> dict[int, float]  # item -> tick 1..5

A prediction is the option ticked for the item text (agreement scale, 5 = Very Accurate), the input of
``persona.papi.metrics``. Predictors that infer a level from data work on keyed scores (facet direction) and
convert to a tick at the end, in one of two pipelines (``convention``):

``paper``
    PAlign's pipeline shows the stored values as if they were ticks, so a predictor that reads them
    ticks a stored-scale value: tick = keyed prediction. This is how the third-party reference numbers
    were computed (always-neutral 3.80, subject facet mean 2.73 on ``Test-set.json``).
``corrected``
    tick = the keyed prediction read back as agreement for the item's sign (``6 - x`` for '-' items).

Ticks are rounded to an option with numpy's round-half-to-even by default (``rounding="half-even"``): a
respondent or a model ticks one option; this choice reproduces the third-party 2.73 (half-up gives 2.75,
no rounding 2.90; see ``notebooks/01_papi_data.ipynb``). Missing answers (stored 0) never enter a mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold

from persona.papi.data import MISSING, Convention, Item, Subject, agreement_to_keyed

Rounding = Literal["half-even", "half-up", "none"]


class ReferencePredictor(Protocol):
    name: str

    def predict(self, subject: Subject, items: Sequence[Item]) -> dict[int, float]: ...


def _round(value: float, rounding: Rounding) -> float:
    if rounding == "half-even":
        return float(round(value))  # Python's round() rounds halves to even, like numpy.round
    if rounding == "half-up":
        return float(math.floor(value + 0.5))
    if rounding == "none":
        return float(value)
    raise ValueError(f"unknown rounding {rounding!r}")


def keyed_to_tick(keyed_value: float, item: Item, convention: Convention, rounding: Rounding) -> float:
    """Turn a predicted keyed score into the tick a pipeline would record (see the module docstring)."""
    value = _round(min(max(float(keyed_value), 1.0), 5.0), rounding)
    if convention == "paper":
        return value
    if convention == "corrected":
        return agreement_to_keyed(value, item.sign)  # keyed <-> agreement is the same involution
    raise ValueError(f"unknown convention {convention!r}")


@dataclass
class Constant:
    """Always tick the same option (3 = Neither Accurate Nor Inaccurate, 4 = Moderately Accurate)."""

    tick: int
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"always {self.tick}"

    def predict(self, subject: Subject, items: Sequence[Item]) -> dict[int, float]:
        return {item.number: float(self.tick) for item in items}


@dataclass
class SubjectMean:
    """The subject's mean keyed score over their known answers in the item's domain or facet."""

    known_items: Sequence[Item]
    level: Literal["domain", "facet"] = "facet"
    convention: Convention = "corrected"
    rounding: Rounding = "half-even"
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"subject {self.level} mean"

    def _group(self, item: Item) -> str:
        return item.facet if self.level == "facet" else item.domain

    def predict(self, subject: Subject, items: Sequence[Item]) -> dict[int, float]:
        sums: dict[str, list[int]] = {}
        for known in self.known_items:
            value = subject.answers[known.number]
            if value != MISSING:
                sums.setdefault(self._group(known), []).append(value)
        levels = {group: sum(values) / len(values) for group, values in sums.items()}
        # a group with no known answer gets the neutral level 3
        return {
            item.number: keyed_to_tick(levels.get(self._group(item), 3.0), item, self.convention, self.rounding)
            for item in items
        }


def _keyed_matrix(subjects: Sequence[Subject], numbers: Sequence[int]) -> np.ndarray:
    """(n_subjects, n_items) keyed scores, NaN where missing."""
    matrix = np.array([[s.answers[n] for n in numbers] for s in subjects], dtype="float64")
    matrix[matrix == MISSING] = np.nan
    return matrix


@dataclass
class PopulationItemMean:
    """Each item's mean keyed score over a training population (other subjects)."""

    train_subjects: Sequence[Subject]
    convention: Convention = "corrected"
    rounding: Rounding = "half-even"
    name: str = "population item mean"
    _means: dict[int, float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        numbers = sorted(self.train_subjects[0].answers)
        means = np.nanmean(_keyed_matrix(self.train_subjects, numbers), axis=0)
        self._means = dict(zip(numbers, means.tolist(), strict=True))

    def predict(self, subject: Subject, items: Sequence[Item]) -> dict[int, float]:
        return {i.number: keyed_to_tick(self._means[i.number], i, self.convention, self.rounding) for i in items}


@dataclass
class RidgeFromKnown:
    """Ridge regression from the known items' keyed scores to every other item's, fitted on other subjects.

    Missing answers are imputed with the training population's item mean (inputs and targets); the
    penalty is chosen by RidgeCV's efficient leave-one-out over ``alphas`` on the training subjects.
    """

    train_subjects: Sequence[Subject]
    known: Sequence[int]
    convention: Convention = "corrected"
    rounding: Rounding = "half-even"
    alphas: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0, 10000.0)
    name: str = "ridge from known items"
    _targets: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._targets = sorted(set(self.train_subjects[0].answers) - set(self.known))
        x = _keyed_matrix(self.train_subjects, self.known)
        y = _keyed_matrix(self.train_subjects, self._targets)
        self._x_mean = np.nanmean(x, axis=0)
        y_mean = np.nanmean(y, axis=0)
        x = np.where(np.isnan(x), self._x_mean, x)
        y = np.where(np.isnan(y), y_mean, y)
        self._model = RidgeCV(alphas=self.alphas).fit(x, y)

    @property
    def alpha(self) -> float:
        return float(self._model.alpha_)

    def predict(self, subject: Subject, items: Sequence[Item]) -> dict[int, float]:
        x = _keyed_matrix([subject], self.known)[0]
        x = np.where(np.isnan(x), self._x_mean, x)
        keyed = dict(zip(self._targets, self._model.predict(x[None, :])[0].tolist(), strict=True))
        return {i.number: keyed_to_tick(keyed[i.number], i, self.convention, self.rounding) for i in items}


def predictions_frame(
    predictor: ReferencePredictor, subjects: Sequence[Subject], items: Sequence[Item], method: str | None = None
) -> pd.DataFrame:
    """The tidy frame ``persona.papi.metrics`` scores: method, subject, item, predicted."""
    rows = [
        (method or predictor.name, subject.case, number, tick)
        for subject in subjects
        for number, tick in predictor.predict(subject, items).items()
    ]
    return pd.DataFrame(rows, columns=["method", "subject", "item", "predicted"])


def cross_fit(
    make: Callable[[Sequence[Subject]], ReferencePredictor],
    subjects: Sequence[Subject],
    items: Sequence[Item],
    *,
    n_folds: int = 10,
    seed: int = 0,
    method: str | None = None,
) -> pd.DataFrame:
    """Predictions for every subject from a predictor built (``make(train_subjects)``) on the OTHER folds.

    Subjects are split into ``n_folds`` shuffled folds (seeded), so no subject's answers inform its own
    prediction: the population predictors are scored as they would be on new people.
    """
    frames = []
    folds = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for train_idx, test_idx in folds.split(np.arange(len(subjects))):
        predictor = make([subjects[i] for i in train_idx])
        frames.append(predictions_frame(predictor, [subjects[i] for i in test_idx], items, method))
    order = {s.case: k for k, s in enumerate(subjects)}
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["subject", "item"], key=lambda c: c.map(order) if c.name == "subject" else c,
                           kind="stable").reset_index(drop=True)


def reference_predictions(
    subjects: Sequence[Subject],
    items: Sequence[Item],
    known: Sequence[int],
    heldout: Sequence[int],
    convention: Convention,
    *,
    n_folds: int = 10,
    seed: int = 0,
    rounding: Rounding = "half-even",
) -> pd.DataFrame:
    """Predictions of every reference predictor for the held-out items, in one pipeline (``convention``).

    Columns: pipeline, method, subject, item, predicted. Population predictors are cross-fitted by subject.
    """
    by_number = {i.number: i for i in items}
    known_items = [by_number[n] for n in known]
    targets = [by_number[n] for n in heldout]
    subject_level = [
        Constant(3, "always 3 (neutral)"),
        Constant(4, "always 4 (moderately accurate)"),
        SubjectMean(known_items, "domain", convention, rounding),
        SubjectMean(known_items, "facet", convention, rounding),
    ]
    frames = [predictions_frame(p, subjects, targets) for p in subject_level]
    frames.append(cross_fit(lambda train: PopulationItemMean(train, convention, rounding), subjects, targets,
                            n_folds=n_folds, seed=seed))
    frames.append(cross_fit(lambda train: RidgeFromKnown(train, known, convention, rounding), subjects, targets,
                            n_folds=n_folds, seed=seed))
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "pipeline", convention)
    return out


#: Numbers reported by Zhu et al. (2025), Table 1, as quoted in STUDY.md (per-domain values are known only
#: for PAS on Llama-3-8B-Instruct). Reported under PAlign's own metric, i.e. the ``paper`` convention.
PAPER_REPORTED: pd.DataFrame = pd.DataFrame(
    [
        ("PAS", "Llama-3-8B-Instruct", 0.94, 0.91, 0.86, 0.98, 0.72, 4.41),
        ("Few-shot", "Llama-3-8B-Instruct", None, None, None, None, None, 5.96),
        ("DPO", "Llama-3-8B-Instruct", None, None, None, None, None, 7.45),
        ("PPO", "Llama-3-8B-Instruct", None, None, None, None, None, 7.62),
        ("GPT-4o", "GPT-4o", None, None, None, None, None, 4.42),
        ("PAS", "Llama-3-70B-Instruct", None, None, None, None, None, 4.74),
        ("Few-shot", "Llama-3-70B-Instruct", None, None, None, None, None, 5.21),
    ],
    columns=["method", "model", "A", "C", "E", "N", "O", "Score"],
)

#: Reference numbers computed by third parties on Test-set.json under PAlign's metric (sum of the five
#: domain MAEs), quoted in STUDY.md; the notebook checks that ``reference_predictions`` reproduces them.
THIRD_PARTY_PAPER_SCORES: dict[str, float] = {"always 3 (neutral)": 3.80, "subject facet mean": 2.73}
