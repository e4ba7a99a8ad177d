"""Controls for option-order and label bias.

* ``mean_over_orders``: mean of values scored under different option orders. Each is already in
  identity order, so the average cancels position bias to first order (TRAIT's analysis averages
  the two orders' normalised probabilities the same way).
* Content-free calibration (Zhao et al. 2021, "Calibrate before use"): score a content-free
  item (``content_free_item``, "N/A") with the same template, system prompt and order; its option distribution
  estimates the model's prior over labels/positions. ``divide`` applies their diagonal
  ``W = diag(p_cf)^-1`` and renormalises; ``subtract`` returns ``p - p_cf`` (rows sum to 0:
  a score for ranking options, not a probability).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from persona.engine.items import MCItem
from persona.engine.scoring import OptionProbs

CONTENT_FREE = "N/A"


def mean_over_orders(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Element-wise mean of the same items' identity-ordered values under several orders.

    NaN marks an order that gave no answer (generation mode, or no label mass): it is left out, and an
    entry that no order answered stays NaN.
    """
    if len(arrays) == 0:
        raise ValueError("at least one order is needed")
    stacked = np.stack([np.asarray(a, dtype=np.float64) for a in arrays])
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all orders unanswered: NaN is the intended result
        return np.nanmean(stacked, axis=0)


def content_free_item(item: MCItem, content: str = CONTENT_FREE, *, keep_options: bool = True) -> MCItem:
    """``item`` with its stem (and, unless ``keep_options``, its option texts) replaced by ``content``.

    Keep the options for questionnaires whose options are fixed (PAPI: the prior of the
    accuracy scale itself); replace them when option texts carry the item's content (TRAIT).
    """
    options = item.options if keep_options else tuple(content for _ in item.options)
    return MCItem(stem=content, options=options)


def calibrate(result: OptionProbs, prior: OptionProbs | np.ndarray, method: str = "divide") -> OptionProbs:
    """Remove a content-free prior (one row, or one row per item) from ``result``."""
    p_cf = prior.probs if isinstance(prior, OptionProbs) else np.asarray(prior, dtype=float)
    p_cf = np.broadcast_to(p_cf.reshape(-1, result.probs.shape[1]), result.probs.shape)
    if method == "divide":
        scaled = result.probs / p_cf
        probs = scaled / scaled.sum(axis=1, keepdims=True)
    elif method == "subtract":
        probs = result.probs - p_cf
    else:
        raise ValueError(f"Unknown calibration method '{method}': use 'divide' or 'subtract'")
    return OptionProbs(probs=probs, mass=result.mass.copy(), raw=result.raw.copy())
