"""Reliability measures of a questionnaire answered by a model, defined precisely.

The TRAIT paper reports refusal rate, prompt sensitivity and option-order sensitivity but its
formulas were not available, so the book uses these definitions (all are fractions of items,
shown as percentages; lower is better). Item decisions are 1.0 = high, 0.0 = low, NaN =
undetermined, as produced by :mod:`persona.trait.scoring`.

* **Refusal rate**: among free (greedy) generations, one per sampled item and prompt variant, the
  fraction from which the engine's strict answer parser recovers no option: explicit refusals
  plus unparseable text (both are "no answer" for a questionnaire; they are also shown apart).
* **Prompt sensitivity**: among items decided under every template, the fraction whose
  high/low decision (both orders averaged, the official item decision) is *not the same under
  all templates*. Independent fair coins over three templates give 1 - 2 x 0.5^3 = 75%.
* **Option-order sensitivity**: among items decided in both orders, the fraction whose high/low
  decision from the original order alone differs from that of the reversed order alone,
  averaged over templates. A fair coin gives 50%; a model that always picks the same letter
  gives 100% on TRAIT (each order swaps the high and low response of a position).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd


def refusal_rate(outcomes: Sequence[int | str]) -> float:
    """Fraction of parsed generations that are not an option index ("refused" or "unparseable")."""
    if len(outcomes) == 0:
        return float("nan")
    return sum(not isinstance(o, (int, np.integer)) for o in outcomes) / len(outcomes)


def prompt_sensitivity(choices: np.ndarray) -> float:
    """Fraction of items (rows) whose decision differs across templates (columns); NaN rows skipped."""
    choices = np.asarray(choices, float)
    if choices.ndim != 2 or choices.shape[1] < 2:
        raise ValueError("choices must be (n_items, n_templates) with at least two templates")
    decided = choices[np.isfinite(choices).all(axis=1)]
    if decided.size == 0:
        return float("nan")
    return float((decided.min(axis=1) != decided.max(axis=1)).mean())


def option_order_sensitivity(choice_orig: np.ndarray, choice_rev: np.ndarray) -> float:
    """Fraction of items whose per-order decisions disagree; items undetermined in either are skipped."""
    a, b = np.asarray(choice_orig, float), np.asarray(choice_rev, float)
    if a.shape != b.shape:
        raise ValueError("both orders must cover the same items")
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return float("nan")
    return float((a[ok] != b[ok]).mean())


def chance_prompt_sensitivity(n_templates: int, p_high: float = 0.5) -> float:
    """Prompt sensitivity of a responder choosing high with probability ``p_high`` independently."""
    return 1 - p_high**n_templates - (1 - p_high) ** n_templates


def reliability_table(dec: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Prompt and option-order sensitivity (percent) per group of an item-decision frame.

    ``dec`` comes from :func:`persona.trait.scoring.decisions` (columns key, template, fixed, orig,
    rev). Option-order sensitivity is computed per template and averaged over templates.
    """
    rows = []
    for group, part in dec.groupby(list(by), sort=False):
        wide = part.pivot_table(index="key", columns="template", values="fixed", aggfunc="first", dropna=False)
        per_template = [option_order_sensitivity(t["orig"].to_numpy(float), t["rev"].to_numpy(float))
                        for _, t in part.groupby("template")]
        rows.append({**dict(zip(by, group if isinstance(group, tuple) else (group,))),
                     "prompt_sensitivity": 100 * prompt_sensitivity(wide.to_numpy(float)),
                     "option_order_sensitivity": 100 * float(np.nanmean(per_template)),
                     "n_items": int(wide.shape[0]), "n_templates": int(wide.shape[1])})
    return pd.DataFrame(rows)


def refusal_table(gen: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Percent of generations refused, unparseable, and not answered (their sum: our refusal rate)."""
    rows = []
    for group, part in gen.groupby(list(by), sort=False):
        outcome = part["outcome"].astype(str)
        refused = float((outcome == "refused").mean())
        unparseable = float((outcome == "unparseable").mean())
        rows.append({**dict(zip(by, group if isinstance(group, tuple) else (group,))),
                     "refused": 100 * refused, "unparseable": 100 * unparseable,
                     "refusal_rate": 100 * (refused + unparseable), "n": len(part)})
    return pd.DataFrame(rows)
