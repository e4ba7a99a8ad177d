"""Psychometric checks of the PAPI answers: keying evidence, reliability, scores, known/held-out consistency.

All functions read KEYED scores (stored values, facet direction; see ``persona.papi``) with missing answers
(stored 0) as NaN. Missing-value policy: item correlations and Cronbach's alpha use pairwise deletion
(pingouin's ``nan_policy="pairwise"``: each covariance uses the subjects who answered both items);
scale scores are the mean of the answered items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
import pingouin as pg

from persona.papi.data import DOMAINS, MISSING, Item, Split, Subject


def keyed_wide(subjects: Sequence[Subject], numbers: Sequence[int]) -> pd.DataFrame:
    """Subjects (index: case) x items (columns: item number) of keyed scores, NaN where missing."""
    data = np.array([[s.answers[n] for n in numbers] for s in subjects], dtype="float64")
    data[data == MISSING] = np.nan
    return pd.DataFrame(data, index=pd.Index([s.case for s in subjects], name="subject"), columns=list(numbers))


def within_facet_pairs(subjects: Sequence[Subject], items: Sequence[Item]) -> pd.DataFrame:
    """Every pair of items of the same facet with the Pearson r of their STORED values (pairwise complete).

    If '-' items were stored as agreement with their text, opposite-sign pairs would correlate negatively;
    if they are stored reverse-scored (keyed), they correlate positively like same-sign pairs.
    """
    wide = keyed_wide(subjects, [i.number for i in items])
    corr = wide.corr()  # pairwise deletion of NaN
    rows = []
    by_facet: dict[str, list[Item]] = {}
    for item in items:
        by_facet.setdefault(item.facet, []).append(item)
    for facet, members in by_facet.items():
        for a, b in combinations(members, 2):
            rows.append((facet, a.number, b.number, a.sign * b.sign < 0, float(corr.loc[a.number, b.number])))
    return pd.DataFrame(rows, columns=["facet", "item_a", "item_b", "opposite_sign", "r"])


def cronbach(wide: pd.DataFrame, ci: float = 0.95) -> tuple[float, float, float]:
    """Cronbach's alpha with its Feldt CI (pingouin), pairwise deletion of missing values."""
    alpha, (low, high) = pg.cronbach_alpha(data=wide, nan_policy="pairwise", ci=ci)
    return float(alpha), float(low), float(high)


def reliability(
    subjects: Sequence[Subject], items: Sequence[Item], forms: Mapping[str, Sequence[int]]
) -> pd.DataFrame:
    """Cronbach's alpha of each domain and facet within each form (e.g. {"120": known, "300": all})."""
    rows = []
    for form, numbers in forms.items():
        chosen = [i for i in items if i.number in set(numbers)]
        scales: dict[tuple[str, str], list[int]] = {}
        for item in chosen:
            scales.setdefault(("domain", item.domain), []).append(item.number)
            scales.setdefault(("facet", item.facet), []).append(item.number)
        for (level, scale), members in sorted(scales.items()):
            alpha, low, high = cronbach(keyed_wide(subjects, members))
            rows.append((form, level, scale, len(members), alpha, low, high))
    return pd.DataFrame(rows, columns=["form", "level", "scale", "n_items", "alpha", "ci_low", "ci_high"])


def scale_scores(
    subjects: Sequence[Subject], items: Sequence[Item], numbers: Sequence[int] | None = None,
    level: str = "domain",
) -> pd.DataFrame:
    """Subjects x scales (domains or facets): mean keyed score over the answered items among ``numbers``."""
    chosen = [i for i in items if numbers is None or i.number in set(numbers)]
    wide = keyed_wide(subjects, [i.number for i in chosen])
    groups = pd.Series([i.domain if level == "domain" else i.facet for i in chosen], index=wide.columns)
    out = wide.T.groupby(groups).mean().T
    return out.reindex(columns=list(DOMAINS)) if level == "domain" else out


def known_heldout_consistency(
    subjects: Sequence[Subject], items: Sequence[Item], split: Split, level: str = "domain"
) -> tuple[pd.Series, pd.Series]:
    """How far the 120 known answers already determine the 180 held-out ones.

    Returns (per scale: Pearson r across subjects between the known-item and held-out-item scale means;
    per subject: Pearson r between their known and held-out profiles over the scales).
    """
    known = scale_scores(subjects, items, split.known, level)
    heldout = scale_scores(subjects, items, split.heldout, level)
    across_subjects = known.corrwith(heldout, axis=0)
    per_subject = known.corrwith(heldout, axis=1)
    across_subjects.name, per_subject.name = "r_across_subjects", "r_profile"
    return across_subjects, per_subject
