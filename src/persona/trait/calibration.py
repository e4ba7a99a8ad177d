"""Content-free calibration of TRAIT and self-report answers (Zhao et al. 2021, "Calibrate before use").

A small model's option probabilities mostly say which *letter* or *position* it likes, whatever the
question. Calibration estimates that preference from a content-free prompt and divides it out:

* the content-free prompt is the same template, option order and system prompt (none, or the persona
  prompt) with the stem replaced by "N/A"; for TRAIT the four option texts are replaced too (they carry
  the item's content), for the self-report proxy they are kept (the agreement scale is the same for every
  statement, like an accuracy scale);
* each answer's option probabilities are divided by that prompt's probabilities and renormalised
  (``persona.engine.calibration.calibrate``, method "divide"); the result feeds the same decision rule
  (``persona.trait.scoring.decisions``) and the same sensitivity measures as the raw probabilities.

Both orders are calibrated separately, with their own content-free prompt: a position preference is a
different *identity* preference in each order.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from persona.engine import MCItem, MCPrompt, build_prompt
from persona.engine.calibration import CONTENT_FREE, calibrate, content_free_item
from persona.engine.scoring import OptionProbs
from persona.trait.items import HIGH_MASK, TRAIT_ORDERS
from persona.trait.prompts import TEMPLATES, mask_code
from persona.trait.scoring import RAW_COLS
from persona.trait.selfreport import AGREE_MASK, LIKERT4, SELFREPORT_ORDERS, SELFREPORT_TEMPLATES

KEYS = ("model", "test", "template", "order", "persona")


def content_free_grid(templates: Sequence[int], *, test: str = "TRAIT",
                      systems: Mapping[str, str | None] | None = None) -> tuple[list[MCPrompt], pd.DataFrame]:
    """One content-free prompt per template x order x system prompt of ``test`` ("TRAIT" or "self-report").

    ``systems`` maps a persona label ("none", "high Openness", ...) to its system prompt (None: no system).
    """
    if test == "TRAIT":
        item = content_free_item(MCItem(CONTENT_FREE, ("",) * 4), keep_options=False)
        orders, wordings, mask = TRAIT_ORDERS, TEMPLATES, HIGH_MASK
    elif test == "self-report":
        item = content_free_item(MCItem(CONTENT_FREE, LIKERT4), keep_options=True)
        orders, wordings, mask = SELFREPORT_ORDERS, SELFREPORT_TEMPLATES, AGREE_MASK
    else:
        raise ValueError(f"test must be 'TRAIT' or 'self-report', got {test!r}")
    prompts, rows = [], []
    for persona, system in (systems or {"none": None}).items():
        for t in templates:
            for order, perm in orders.items():
                prompts.append(build_prompt(item, wordings[t], system=system, permutation=perm))
                rows.append({"test": test, "template": t + 1, "order": order, "persona": persona,
                             "mask": mask_code(mask)})
    return prompts, pd.DataFrame(rows)


def calibrate_frame(frame: pd.DataFrame, content_free: pd.DataFrame, keys: Sequence[str] = KEYS) -> pd.DataFrame:
    """``frame`` with its ``raw_*`` columns replaced by calibrated probabilities (identity order).

    ``content_free`` holds one scored content-free row per ``keys`` (the same columns as ``frame``).
    A row without label mass, or whose content-free prompt gave an option zero probability, becomes NaN
    (undetermined), never an arbitrary choice. ``mass`` keeps the raw label mass.
    """
    keys = [k for k in keys if k in frame.columns]
    if content_free.duplicated(keys).any():
        raise ValueError(f"the content-free rows must be unique per {keys}")
    prior = content_free.set_index(keys)[RAW_COLS]
    prior = prior.div(prior.sum(axis=1), axis=0).add_suffix("_cf")
    joined = frame.join(prior, on=keys)
    cf = joined[[f"{c}_cf" for c in RAW_COLS]].to_numpy(float)
    if np.isnan(cf).all(axis=1).any():
        missing = joined.loc[np.isnan(cf).all(axis=1), keys].drop_duplicates().head(3).to_dict("records")
        raise ValueError(f"no content-free prompt was scored for {missing}")
    raw = frame[RAW_COLS].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        probs = raw / raw.sum(axis=1, keepdims=True)
        result = calibrate(OptionProbs(probs=probs, mass=raw.sum(axis=1), raw=raw), cf, method="divide")
    out = frame.copy()
    calibrated = result.probs
    calibrated[~np.isfinite(calibrated).all(axis=1)] = np.nan
    out[RAW_COLS] = calibrated
    return out


__all__ = ["KEYS", "calibrate_frame", "content_free_grid"]
