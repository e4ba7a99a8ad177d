"""From option-label probabilities to TRAIT trait scores: the official rule, its fixed form, CIs.

Inputs are *raw* (un-normalised) next-token probabilities of the option labels, one row per item,
columns in identity order (for TRAIT: high1, low1, high2, low2), one array per presentation order.

Official rule (``trait/src/analysis.py`` of pull-ups/TRAIT): normalise the four probabilities within
each order, average each response over the two orders, take the argmax over
``[high1, high2, low1, low2]``; argmax in the high half -> "high". Trait score = 100 x #high /
(#high + #low). Two defects are reproduced by :func:`official_is_high` on purpose:

* an order whose label probabilities are all zero gives 0/0. The released script divides plain Python
  floats loaded from JSON, so it stops with ``ZeroDivisionError``: the run fails and no item gets a
  decision. Only under numpy arithmetic (as in :func:`official_is_high`) does 0/0 become NaN, and
  ``np.argmax`` then returns the first NaN, ``high1``: the item would count as **high**. An exact tie
  between a high and a low response also goes to high;
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
from persona.engine.cloze import normalise, softmax
from persona.trait.items import HIGH_MASK, TRAITS
from persona.trait.reliability import mean_interval
from persona.trait.reported import PAPER_PERSONA_HIGH_PSYCHOPATHY, PAPER_PERSONA_SUCCESS


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

# --- option-text (cloze) rows -----------------------------------------------------------------------
#: What a cloze row stores per option (identity order), from which every normalisation is derived:
#: the summed log-probability of the option's text after the prompt, the same after the neutral context,
#: and the text's tokens and characters (``persona.engine.cloze``).
CLOZE_PARTS = {"logprob": [f"logprob_{k}" for k in range(4)], "unconditional": [f"uncond_{k}" for k in range(4)],
               "n_tokens": [f"ntok_{k}" for k in range(4)], "n_chars": [f"nchar_{k}" for k in range(4)]}


def cloze_frame(frame: pd.DataFrame, normalisation: str) -> pd.DataFrame:
    """Stored cloze rows as the per-order table label scoring gives: ``raw_*`` = the options' probabilities
    under ``normalisation`` ("none", "length", "token", "unconditional"), so that :func:`decisions`, the
    reliability measures and the persona tables read them unchanged; ``scoring`` = "cloze-<normalisation>".

    ``mass`` stays what the rows store: the total probability of the four option texts after the prompt.
    It is not a label mass (it is tiny for any sentence-long option), so a label-mass threshold
    (``answered_templates``) does not apply to these rows.
    """
    parts = _cloze_parts(frame)
    scores = normalise(parts["logprob"], parts["n_tokens"], parts["n_chars"], parts["unconditional"], normalisation)
    return _as_table(frame, scores, f"cloze-{normalisation}")


def text_only_frame(frame: pd.DataFrame, normalisation: str) -> pd.DataFrame:
    """The control of a cloze protocol: the same table from the option texts alone, without the question
    (``scoring`` = "text-only-<normalisation>").

    For "none", "length" and "token" the scores are the normalised log-probabilities after the neutral
    context instead of after the prompt (token counts: those after the prompt). For "unconditional" they are minus those log-probabilities: what
    the protocol picks when the prompt makes every option equally likely (a prompt that lists the options
    lets a model copy any of them almost surely), i.e. the option text least likely on its own. The texts
    are the same in both orders and (given the same separator) every template, so the control is
    consistent by construction; a protocol whose decisions mostly equal its control's owes its consistency
    to the option texts, not to the question.
    """
    parts = _cloze_parts(frame)
    if normalisation == "unconditional":
        scores = -parts["unconditional"]
    else:
        scores = normalise(parts["unconditional"], parts["n_tokens"], parts["n_chars"], None, normalisation)
    return _as_table(frame, scores, f"text-only-{normalisation}")


def _cloze_parts(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    n = sum(c in frame.columns for c in CLOZE_PARTS["logprob"])
    return {name: frame[cols[:n]].to_numpy(float) for name, cols in CLOZE_PARTS.items()}


def _as_table(frame: pd.DataFrame, scores: np.ndarray, scoring: str) -> pd.DataFrame:
    out = frame.drop(columns=[c for cols in CLOZE_PARTS.values() for c in cols if c in frame.columns])
    out[RAW_COLS[: scores.shape[1]]] = softmax(scores)
    out["scoring"] = scoring
    return out


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


def trait_score_table(dec: pd.DataFrame, by: Sequence[str], column: str = "fixed", *, n_boot: int = 2000,
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


def item_scores(dec: pd.DataFrame, column: str = "fixed", *,
                keys: Sequence[str] = ("model", "key", "trait")) -> pd.DataFrame:
    """Per item (and ``keys``): 100 x the mean decision over the templates it was asked (NaN: none decided)."""
    return (dec.groupby(list(keys), sort=False)[column].mean().mul(100).rename("score").reset_index())


def answered_templates(frame: pd.DataFrame, min_mass: float, *, by: Sequence[str] = ("model", "template")) -> pd.DataFrame:
    """Mean label mass per model and template, and whether it reaches ``min_mass`` (``answered``).

    A base model asked for a letter may answer with a digit instead (Gemma-3-270M on template 3 puts
    about 4e-6 on the letters): its letter probabilities then say nothing about the item.
    """
    table = frame.groupby(list(by))["mass"].mean().rename("label_mass").reset_index()
    table["answered"] = table["label_mass"] >= min_mass
    return table


def persona_items(dec_persona: pd.DataFrame, dec_base: pd.DataFrame, column: str = "fixed") -> pd.DataFrame:
    """Per model, item and persona direction: the share of the item's answers in the intended direction.

    The paper's measure: under the *high* persona an answer is as intended when it is the high response,
    under the *low* persona when it is the low one; ``intended`` is 100 x the share of the item's answers
    (one per persona template, the official item decision) that are as intended, ``baseline`` the same
    share without a persona (same items, same templates), ``shift`` their difference. An item without a
    decided answer is NaN.
    """
    templates = dec_persona[["model", "template"]].drop_duplicates()
    base = dec_base.merge(templates, on=["model", "template"])
    base = base[base["key"].isin(set(dec_persona["key"]))]
    high_share = lambda d: d.groupby(["model", "key", "trait"], sort=False)[column].mean()  # noqa: E731
    base_high = high_share(base)
    rows = []
    for level in ("high", "low"):
        under = high_share(dec_persona[dec_persona["persona"] == level])
        flip = (lambda x: x) if level == "high" else (lambda x: 1 - x)
        part = pd.DataFrame({"intended": 100 * flip(under),
                             "baseline": 100 * flip(base_high.reindex(under.index))})
        rows.append(part.assign(persona=level).reset_index())
    out = pd.concat(rows, ignore_index=True)
    out["shift"] = out["intended"] - out["baseline"]
    return out[["model", "trait", "persona", "key", "intended", "baseline", "shift"]]


def persona_responsiveness(items: pd.DataFrame) -> pd.DataFrame:
    """Per model and item: the mean of its high- and low-persona ``intended`` shares (50 = no effect).

    Averaging the two directions of the same item cancels the model's own lean on that item: a model
    that answers "high" whatever the persona scores 100 under the high persona and 0 under the low one.
    """
    wide = items.set_index(["model", "trait", "key", "persona"])["intended"].unstack("persona")
    wide = wide.reindex(columns=["high", "low"])
    return wide.mean(axis=1, skipna=False).rename("responsiveness").reset_index()


def persona_summary(items: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per model, trait and persona direction: mean ``intended`` and ``shift`` over items, t intervals."""
    rows = []
    for (model, trait, persona), part in items.groupby(["model", "trait", "persona"], sort=False):
        ok = part.dropna(subset=["intended"])
        intended = mean_interval(ok["intended"], level, bounds=(0.0, 100.0))
        shift = mean_interval(ok["shift"], level, bounds=(-100.0, 100.0))
        rows.append({"model": model, "trait": trait, "persona": persona, "intended": intended["mean"],
                     "intended_low": intended["ci_low"], "intended_high": intended["ci_high"],
                     "baseline": float(ok["baseline"].mean()), "shift": shift["mean"],
                     "shift_low": shift["ci_low"], "shift_high": shift["ci_high"], "n_items": intended["n_items"]})
    out = pd.DataFrame(rows)
    out["trait"] = pd.Categorical(out["trait"], TRAITS, ordered=True)
    return out.sort_values(["model", "trait", "persona"], kind="stable").reset_index(drop=True)


def sign_flip_pvalue(differences, *, n_perm: int = 2000, seed: int = 0, exact_up_to: int = 16) -> float:
    """Two-sided permutation p-value of a mean paired difference: swapping the two models' answers on an
    item flips the sign of its difference, so under "same personality" every sign pattern is as likely.

    Up to ``exact_up_to`` items every one of the 2^n sign patterns is enumerated (the exact p, which a few
    discrete differences need: a Monte Carlo or t approximation can disagree with it); beyond, ``n_perm``
    random patterns."""
    d = np.asarray(differences, float)
    d = d[np.isfinite(d)]
    if d.size == 0 or not d.any():
        return float("nan") if d.size == 0 else 1.0
    observed = abs(d.mean()) - 1e-12
    if d.size <= exact_up_to:
        patterns = 1 - 2 * ((np.arange(2 ** d.size)[:, None] >> np.arange(d.size)) & 1)
        return float((np.abs((patterns * d).mean(axis=1)) >= observed).mean())
    rng = np.random.default_rng(seed)
    flips = rng.choice([-1.0, 1.0], size=(n_perm, d.size))
    null = np.abs((flips * d).mean(axis=1))
    return float((1 + (null >= observed).sum()) / (n_perm + 1))


def model_differences(scores: pd.DataFrame, first: str, second: str, *, n_perm: int = 2000,
                      seed: int = 0) -> pd.DataFrame:
    """Per trait: both models' mean item scores on the items both answered, the paired difference
    (first - second) and its sign-flip p-value (exact for up to 16 items). No t interval: with a few discrete
    differences (0 or +-100 per item) it can disagree with the exact test."""
    wide = scores[scores["model"].isin([first, second])].pivot_table(
        index=["trait", "key"], columns="model", values="score").dropna()
    rows = []
    for trait in [t for t in TRAITS if t in wide.index.get_level_values("trait")]:
        part = wide.loc[trait]
        diff = part[first] - part[second]
        rows.append({"trait": trait, first: float(part[first].mean()), second: float(part[second].mean()),
                     "difference": float(diff.mean()), "p_sign_flip": sign_flip_pvalue(diff, n_perm=n_perm, seed=seed),
                     "exact": len(diff) <= 16, "n_items": len(diff)})
    return pd.DataFrame(rows)


def official_variants(dec_main: pd.DataFrame, dec_bare: pd.DataFrame, main: pd.DataFrame,
                      bare: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The released pipeline against the fixed one, per model, on the items read with bare tokens.

    Returns (per model and trait: the trait score of the official rule on bare tokens, the official rule on
    every tokenisation, the fixed rule on every tokenisation; per model: the share of label mass the bare
    tokens carry, the share of items whose decision the two pipelines disagree on, items with an order
    without any bare-token mass (where the released script stops), and the number of undetermined item
    decisions of the whole run).
    """
    keys = ["model", "key", "template"]
    both = dec_bare.merge(dec_main, on=keys, suffixes=("_bare", ""))
    variants = pd.DataFrame({
        "model": both["model"], "trait": both["trait"],
        "official rule, bare tokens (as released)": 100 * both["official_bare"].astype(float),
        "official rule, every tokenisation": 100 * both["official"].astype(float),
        "fixed rule, every tokenisation": 100 * both["fixed"]})
    table = variants.groupby(["model", "trait"], sort=False).mean()
    mass = bare.merge(main, on=[*keys, "order"], suffixes=("_bare", ""))
    summary = pd.DataFrame({
        "bare_share": 100 * mass.groupby("model")["mass_bare"].sum() / mass.groupby("model")["mass"].sum(),
        "flips": 100 * (both["official_bare"].astype(float) != both["fixed"]).groupby(both["model"]).mean(),
        "zero_mass_items": bare.groupby(keys)["mass"].min().eq(0).groupby("model").sum(),
        "items": both.groupby("model").size(),
        "undetermined_run": dec_main["fixed"].isna().groupby(dec_main["model"]).sum(),
    })
    return table, summary


def in_model_order(frame: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Rows sorted by the run's model order (the default model first), by a ``model`` column or index level;
    the order within a model is kept."""
    rank = {m: i for i, m in enumerate(models)}
    if "model" in frame.columns:
        return frame.sort_values("model", key=lambda s: s.map(rank), kind="stable")
    level = frame.index.get_level_values("model")
    return frame.iloc[np.argsort(level.map(rank).to_numpy(), kind="stable")]


def persona_overall(items: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per model, all traits and both directions: the mean share of answers in the intended direction (the
    number the paper reports as 85.2%), with a t interval over items (each item's two directions averaged,
    so an item counts once)."""
    rows = []
    for model, part in items.groupby("model", sort=False):
        resp = mean_interval(persona_responsiveness(part)["responsiveness"], level, bounds=(0.0, 100.0))
        shift = part.groupby("key")["shift"].apply(lambda s: s.abs().mean())
        rows.append({"model": model, "trait": "all traits", "persona": "both", "intended": resp["mean"],
                     "intended_low": resp["ci_low"], "intended_high": resp["ci_high"],
                     "baseline": float("nan"), "shift": float(shift.mean()), "shift_low": float("nan"),
                     "shift_high": float("nan"), "n_items": resp["n_items"]})
    return pd.DataFrame(rows)


#: The paper's persona numbers as the chapter's persona table places them, by (trait, direction): the average
#: over traits and directions (the "all traits" row) and high psychopathy, the direction it names as hardest.
PAPER_PERSONA: dict[tuple[str, str], float] = {("all traits", "both"): PAPER_PERSONA_SUCCESS,
                                               ("Psychopathy", "high"): PAPER_PERSONA_HIGH_PSYCHOPATHY}


def persona_table(items: pd.DataFrame, calibrated: pd.DataFrame,
                  paper: dict[tuple[str, str], float] = PAPER_PERSONA, level: float = 0.95) -> pd.DataFrame:
    """The chapter's persona table: :func:`persona_summary` per model, trait and direction, then one
    :func:`persona_overall` row per model ("all traits", "both"); ``calibrated`` is the mean ``intended`` share
    of the same rows after content-free calibration (``calibrated``: :func:`persona_items` of calibrated
    decisions), ``paper`` the paper's number where it reports one (NaN elsewhere), so each row reads against
    its own reference.
    """
    rows = ["model", "trait", "persona"]
    summary = persona_summary(items, level)
    cal = persona_summary(calibrated, level)[rows + ["intended"]].rename(columns={"intended": "calibrated"})
    summary["calibrated"] = summary.merge(cal, on=rows, how="left")["calibrated"].to_numpy()
    overall = persona_overall(items, level)
    cal_overall = persona_overall(calibrated, level).set_index("model")["intended"]
    overall["calibrated"] = overall["model"].map(cal_overall).to_numpy(float)
    table = pd.concat([summary, overall], ignore_index=True)
    table["paper"] = [paper.get((t, p)) for t, p in zip(table["trait"], table["persona"])]
    return table
