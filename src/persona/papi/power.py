"""How many subjects and items a paired comparison of two methods needs (power of the alignment design).

A subject's Score difference between methods A and B is a sum over the five domains of the mean, over that
domain's m held-out items, of the item-level difference in absolute error. Its variance across subjects is

    Var(D) = var_subject + 5 * var_item / m,

where ``var_item`` is the variance of item differences within a (subject, domain) and ``var_subject`` the
variance of subjects' true differences. Both are estimated from a run's item-level errors; the power of the
paired t test for a design of n subjects and m items per domain then follows (``persona.verdicts.power_t``),
at the significance level the chapter's verdicts use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from persona.papi import metrics
from persona.papi.data import Convention
from persona.verdicts import TARGET_POWER, n_for_power, power_t

N_DOMAINS = 5


def item_differences(predictions: pd.DataFrame, truth: pd.DataFrame, a: str, b: str,
                     convention: Convention = "corrected", column: str = "predicted") -> pd.DataFrame:
    """Per (subject, domain, item): error of ``b`` minus error of ``a`` (positive favours ``a``), on the items
    and subjects both methods answered. ``column``: "predicted" (the chosen option) or "expected"."""
    frames = []
    for method in (a, b):
        block = predictions[predictions["method"] == method][["method", "subject", "item", column]]
        frames.append(metrics.item_errors(block.rename(columns={column: "predicted"}), truth, convention)
                      .set_index(["subject", "item"]))
    both = frames[0].merge(frames[1], left_index=True, right_index=True, suffixes=("_a", "_b"), how="inner")
    out = pd.DataFrame({"domain": both["domain_a"], "diff": both["error_b"] - both["error_a"]}).reset_index()
    return out


@dataclass(frozen=True)
class Components:
    """Variance components of a subject's Score difference (see the module docstring)."""

    var_subject: float
    var_item: float
    items_per_domain: float
    n_subjects: int
    mean: float

    def sd(self, items_per_domain: float) -> float:
        """Standard deviation of one subject's Score difference with ``items_per_domain`` items per domain."""
        return math.sqrt(self.var_subject + N_DOMAINS * self.var_item / items_per_domain)


def components(diffs: pd.DataFrame) -> Components:
    """Estimate the variance components from ``item_differences`` (at least two subjects)."""
    by_domain = diffs.groupby(["subject", "domain"])["diff"]
    within = by_domain.var(ddof=1).dropna()
    counts = by_domain.count()
    var_item = float(np.average(within, weights=counts.loc[within.index] - 1)) if len(within) else 0.0
    per_subject = by_domain.mean().groupby("subject").sum()
    m = float(counts.mean())
    total = float(per_subject.var(ddof=1)) if len(per_subject) > 1 else float("nan")
    return Components(max(0.0, total - N_DOMAINS * var_item / m), var_item, m, int(len(per_subject)),
                      float(per_subject.mean()))


def power(effect: float, comp: Components, n_subjects: int, items_per_domain: float, level: float = 0.95) -> float:
    """Power of the paired t test to detect ``effect`` (Score points) with this design; NaN when the run
    shows no variance at all (e.g. two methods that answered alike), which estimates nothing."""
    sd = comp.sd(items_per_domain)
    if not sd > 0 or n_subjects < 2:
        return float("nan")
    return power_t(effect, sd / math.sqrt(n_subjects), n_subjects - 1, level)


def subjects_needed(effect: float, comp: Components, items_per_domain: float, level: float = 0.95) -> int | None:
    """Subjects for 80% power at ``items_per_domain`` items per domain."""
    sd = comp.sd(items_per_domain)
    return n_for_power(effect, lambda n: (sd / math.sqrt(n), n - 1), level) if sd > 0 else None


def grid(effect: float, comp: Components, subjects: Sequence[int], items_per_domain: Sequence[int],
         level: float = 0.95) -> pd.DataFrame:
    """Power for every design of the grid (rows: subjects; columns: items per domain)."""
    rows = {n: {m: power(effect, comp, n, m, level) for m in items_per_domain} for n in subjects}
    out = pd.DataFrame(rows).T
    out.index.name, out.columns.name = "subjects", "items per domain"
    return out


def summary(effect: float, comp: Components, n_subjects: int, items_per_domain: float, level: float = 0.95,
            full_items: int = 36) -> dict:
    """The figures a reader needs: power here, subjects needed here and with all held-out items."""
    return {"effect": effect, "power": power(effect, comp, n_subjects, items_per_domain, level),
            "subjects_needed": subjects_needed(effect, comp, items_per_domain, level),
            "subjects_needed_all_items": subjects_needed(effect, comp, full_items, level),
            "sd_subject": math.sqrt(comp.var_subject), "sd_item": math.sqrt(comp.var_item),
            "target_power": TARGET_POWER}


#: Two human yardsticks for what a method comparison can need, from the 300 people's own answers: two highly
#: correlated no-model predictors (facet against domain mean), and a predictor against a constant answer.
YARDSTICKS = {"facet vs domain mean": ("facet mean", "domain mean"),
              "facet mean vs always 3": ("facet mean", "always 3")}


def human_yardsticks() -> dict[str, Components]:
    """Variance components of the yardsticks' Score differences on all 300 subjects and 180 held-out items."""
    from persona import papi
    from persona.papi import reference

    everyone = papi.load_subjects()
    by_number = papi.items_by_number(papi.load_item_key())
    split = papi.load_split()
    heldout, known = [by_number[n] for n in split.heldout], [by_number[n] for n in split.known]
    predictors = {"facet mean": reference.SubjectMean(known, "facet", "corrected"),
                  "domain mean": reference.SubjectMean(known, "domain", "corrected"),
                  "always 3": reference.Constant(3)}
    human = pd.concat([reference.predictions_frame(p, everyone, heldout, method=name)
                       for name, p in predictors.items()])
    truth = papi.answers_frame(everyone, heldout)
    return {name: components(item_differences(human, truth, a, b)) for name, (a, b) in YARDSTICKS.items()}
