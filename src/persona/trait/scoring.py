"""From option-label probabilities to TRAIT trait scores: the official rule, its fixed form, CIs.

Inputs are *raw* (un-normalised) next-token probabilities of the option labels, one row per item,
columns in identity order (for TRAIT: high1, low1, high2, low2), one array per presentation order.

Official rule (``trait/src/analysis.py`` of pull-ups/TRAIT): normalise the four probabilities within
each order, average each response over the two orders, take the argmax over
``[high1, high2, low1, low2]``; argmax in the high half -> "high". Trait score = 100 x #high /
(#high + #low). Two defects are reproduced by :func:`official_is_high` on purpose:

* an order whose label probabilities are all zero gives 0/0. In numpy arithmetic that is NaN, and
  ``np.argmax`` returns the first NaN, i.e. ``high1``: the item counts as **high**. (The released
  script divides Python floats loaded from JSON, where 0/0 stops the run with ZeroDivisionError
  instead; either way the item gets no valid decision.) An exact tie also goes to high;
* the official runner reads only the *bare* label tokens ("A"), not their space-prefixed forms
  (" A") that many tokenizers emit after "Answer:"; that is an input defect, handled by feeding
  bare-token probabilities to the official rule (see the notebook).

:func:`fixed_choice` drops an order with no label mass, calls an item *undetermined* (NaN) when no
order has mass or the best high and best low response tie, and excludes undetermined items from
the score instead of counting them high.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from persona.engine.calibration import mean_over_orders
from persona.trait.items import HIGH_MASK, TRAITS


def _mask(high_mask: Sequence[bool], n_options: int) -> np.ndarray:
    mask = np.asarray(high_mask, dtype=bool)
    if mask.shape != (n_options,) or mask.all() or not mask.any():
        raise ValueError(f"high_mask {high_mask!r} must have {n_options} entries, some high and some low")
    return mask


def _normalise_official(raw: np.ndarray) -> np.ndarray:
    """Row-normalise with numpy semantics: a zero row becomes NaN (the official 0/0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return raw / raw.sum(axis=1, keepdims=True)


def official_is_high(raw_orig: np.ndarray, raw_rev: np.ndarray,
                     high_mask: Sequence[bool] = HIGH_MASK) -> np.ndarray:
    """The official item decision, bugs included: True = high (NaN items and ties count high)."""
    raw_orig, raw_rev = np.asarray(raw_orig, float), np.asarray(raw_rev, float)
    mask = _mask(high_mask, raw_orig.shape[1])
    averaged = (_normalise_official(raw_orig) + _normalise_official(raw_rev)) / 2
    # The official argmax runs over [high1, high2, low1, low2]: highs first, each half in identity order.
    ordered = np.concatenate([averaged[:, mask], averaged[:, ~mask]], axis=1)
    return np.argmax(ordered, axis=1) < mask.sum()


def _normalise_valid(raw: np.ndarray) -> np.ndarray:
    """Row-normalise; rows without label mass (or with NaN) become NaN so they can be skipped."""
    total = raw.sum(axis=1, keepdims=True)
    out = np.full_like(raw, np.nan, dtype=float)
    ok = (total[:, 0] > 0) & np.isfinite(total[:, 0])
    out[ok] = raw[ok] / total[ok]
    return out


def _decide(probs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """1.0 = high, 0.0 = low, NaN = undetermined (no probabilities, or best high == best low)."""
    best_high = probs[:, mask].max(axis=1)
    best_low = probs[:, ~mask].max(axis=1)
    out = np.where(best_high > best_low, 1.0, 0.0)
    out[~np.isfinite(best_high) | ~np.isfinite(best_low) | (best_high == best_low)] = np.nan
    return out


def fixed_choice(raw_orig: np.ndarray, raw_rev: np.ndarray,
                 high_mask: Sequence[bool] = HIGH_MASK) -> np.ndarray:
    """The official rule without its defects: 1 high, 0 low, NaN undetermined (excluded from scores)."""
    raw_orig, raw_rev = np.asarray(raw_orig, float), np.asarray(raw_rev, float)
    mask = _mask(high_mask, raw_orig.shape[1])
    return _decide(mean_over_orders([_normalise_valid(raw_orig), _normalise_valid(raw_rev)]), mask)


def order_choice(raw: np.ndarray, high_mask: Sequence[bool] = HIGH_MASK) -> np.ndarray:
    """The high/low decision from one presentation order alone (for option-order sensitivity)."""
    raw = np.asarray(raw, float)
    return _decide(_normalise_valid(raw), _mask(high_mask, raw.shape[1]))


def trait_score(choices: np.ndarray) -> float:
    """100 x #high / (#high + #low); undetermined (NaN) items are left out; NaN if none is left."""
    choices = np.asarray(choices, float)
    valid = choices[np.isfinite(choices)]
    return float(100 * valid.mean()) if valid.size else float("nan")


def bootstrap_ci(choices: np.ndarray, *, n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of :func:`trait_score`, resampling the determined items."""
    choices = np.asarray(choices, float)
    valid = choices[np.isfinite(choices)]
    if valid.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = 100 * valid[rng.integers(0, valid.size, size=(n_boot, valid.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


RAW_COLS = [f"raw_{k}" for k in range(4)]


# --- from per-order rows to item decisions and scores ---------------------------------------------

def decisions(frame: pd.DataFrame, keys: Sequence[str] = ("key", "trait", "template", "persona")) -> pd.DataFrame:
    """One row per item and condition: official (bool), fixed / orig / rev (1 high, 0 low, NaN), mass.

    ``frame`` rows are per presentation order (column ``order``: "original" | "reversed") with
    ``raw_*`` in identity order and a ``mask`` column (see :func:`persona.trait.prompts.mask_code`).
    """
    keys = list(keys) + ["mask"]
    cols = [c for c in RAW_COLS if c in frame.columns]
    frame = frame.assign(mask=frame["mask"].astype(str).str.zfill(len(cols)))  # CSV reads "0011" as 11
    orig = frame[frame["order"] == "original"].set_index(keys).sort_index()
    rev = frame[frame["order"] == "reversed"].set_index(keys).sort_index()
    if not orig.index.equals(rev.index):
        raise ValueError("every item needs both orders")
    out = pd.DataFrame(index=orig.index)
    masks = orig.index.get_level_values("mask")
    for code in masks.unique():
        rows = np.asarray(masks == code)
        mask = [c == "1" for c in code]
        a, b = orig.loc[rows, cols].to_numpy(float), rev.loc[rows, cols].to_numpy(float)
        out.loc[rows, "official"] = official_is_high(a, b, mask)
        out.loc[rows, "fixed"] = fixed_choice(a, b, mask)
        out.loc[rows, "orig"] = order_choice(a, mask)
        out.loc[rows, "rev"] = order_choice(b, mask)
    out["official"] = out["official"].astype(bool)
    out["mass"] = (orig["mass"].to_numpy() + rev["mass"].to_numpy()) / 2
    return out.reset_index()


def score_table(dec: pd.DataFrame, by: Sequence[str], column: str = "fixed", *, n_boot: int = 2000,
                seed: int = 0) -> pd.DataFrame:
    """Trait score with a bootstrap CI per group of ``by`` (``column``: "fixed" or "official")."""
    rows = []
    for group, part in dec.groupby(list(by), sort=False):
        values = part[column].to_numpy(float)
        low, high = bootstrap_ci(values, n_boot=n_boot, seed=seed)
        rows.append({**dict(zip(by, group if isinstance(group, tuple) else (group,))),
                     "score": trait_score(values), "ci_low": low, "ci_high": high,
                     "n_items": int(np.isfinite(values).sum()), "n_undetermined": int((~np.isfinite(values)).sum())})
    return pd.DataFrame(rows)


def persona_table(dec: pd.DataFrame, *, baseline: str = "none") -> pd.DataFrame:
    """Per trait: score without persona and with the high / low persona, and whether each moved as intended.

    Success (our definition) for a high persona: its score is above the no-persona score on the
    same items and template; for a low persona: below. ``intended`` is the share of item choices in
    the intended direction (score for high, 100 - score for low).
    """
    rows = []
    present = [t for t in TRAITS if t in set(dec["trait"])]
    for trait in present:
        part = dec[dec["trait"] == trait]
        score = {p: trait_score(part.loc[part["persona"] == p, "fixed"].to_numpy(float))
                 for p in part["persona"].unique()}
        base = score.get(baseline, float("nan"))
        for level in ("high", "low"):
            if level not in score:
                continue
            moved = score[level] - base
            rows.append({"trait": trait, "persona": level, "score_none": base, "score_persona": score[level],
                         "shift": moved, "success": bool(moved > 0 if level == "high" else moved < 0),
                         "intended": score[level] if level == "high" else 100 - score[level]})
    return pd.DataFrame(rows)
