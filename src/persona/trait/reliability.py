"""Reliability of a questionnaire answered by a model: refusal, sensitivities, agreement, all per item.

The TRAIT paper reports refusal rate, prompt sensitivity and option-order sensitivity but its
formulas were not available, so the book uses these definitions (percent of items; lower is better).
Item decisions are 1.0 = high, 0.0 = low, NaN = undetermined, as produced by
:mod:`persona.trait.scoring`. Every measure is first computed **per item** and then averaged over
items, so its interval can treat items as the independent units (an item's templates, orders and
generations are nested in it):

* **Refusal**: among free (greedy) generations, one per item and template, the share the strict
  answer parser reads as an *explicit refusal* ("I cannot answer ..."), and separately the share it
  cannot map to one option (*unparseable*: a list of options, a letter with another option's text).
  Only explicit refusals are refusals in the paper's sense; both are reported.
* **Prompt sensitivity**: the share of items whose high/low decision (both orders averaged, the
  official item decision) is *not the same under all templates*. Independent fair coins over three
  templates give 1 - 2 x 0.5^3 = 75%.
* **Option-order sensitivity**: per item, the share of templates in which the decision from the
  original order alone differs from that of the reversed order alone; averaged over items. A fair coin
  gives 50%; a model that always picks the same letter gives 100% on TRAIT (each order swaps the high
  and low response of a position).
* **Agreement beyond chance** (the same data read as consistency): Cohen's kappa between the two
  orders' decisions, and Fleiss' kappa between the templates' decisions; 0 = what independent answers
  with the same marginal shares would give, 1 = perfect agreement.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from persona.trait.items import BIG_FIVE
from persona.trait.reported import PAPER_RELIABILITY
from persona.verdicts import constant_interval


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


def mean_interval(values, level: float = 0.95, bounds: tuple[float, float] | None = None) -> dict:
    """Mean of per-item values with a Student-t interval (items are the independent units); NaN skipped.

    ``bounds``: the range the measure can take (e.g. 0-100 for a percentage); the interval is cut to it,
    since with few items and values at the ends a t interval can cross them. When every item gives the same
    value, a t interval would have zero width: with ``bounds`` the interval is the exact one of
    :func:`persona.verdicts.constant_interval`, without them there is none (NaN).
    """
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return {"mean": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n_items": 0}
    mean = float(v.mean())
    if n < 2:
        return {"mean": mean, "ci_low": float("nan"), "ci_high": float("nan"), "n_items": n}
    if np.all(v == v[0]):
        low, high = (constant_interval(mean, n, level, bounds[1], low=bounds[0]) if bounds is not None
                     else (float("nan"), float("nan")))
        return {"mean": mean, "ci_low": low, "ci_high": high, "n_items": n}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / np.sqrt(n))
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return {"mean": mean, "ci_low": low, "ci_high": high, "n_items": n}


def _groups(frame: pd.DataFrame, by: Sequence[str]):
    for group, part in frame.groupby(list(by), sort=False):
        yield dict(zip(by, group if isinstance(group, tuple) else (group,))), part


def item_reliability(dec: pd.DataFrame, by: Sequence[str] = ("model", "test")) -> pd.DataFrame:
    """One row per item (within ``by``): its option-order and prompt sensitivity in percent.

    ``order_sensitivity``: 100 x the share of the item's templates (decided in both orders) whose two
    per-order decisions differ. ``prompt_sensitivity``: 100 when the item's decision (both orders
    averaged) differs between templates, 0 when it is the same under all; NaN when a template left it
    undetermined. ``dec`` comes from :func:`persona.trait.scoring.decisions`.
    """
    keys = [*by, "key", "trait"]
    frame = dec.assign(
        _differs=(dec["orig"] != dec["rev"]).astype(float).where(dec["orig"].notna() & dec["rev"].notna()),
        _templates=dec.groupby(list(by))["template"].transform("nunique"))
    grouped = frame.groupby(keys, sort=False)
    out = pd.DataFrame({
        "order_sensitivity": 100 * grouped["_differs"].mean(),
        "_decided": grouped["fixed"].count(), "_templates": grouped["_templates"].first(),
        "_low": grouped["fixed"].min(), "_high": grouped["fixed"].max(),
    }).reset_index()
    complete = (out["_decided"] == out["_templates"]) & (out["_templates"] >= 2)
    out["prompt_sensitivity"] = np.where(complete, 100.0 * (out["_low"] != out["_high"]), np.nan)
    return out.drop(columns=["_decided", "_templates", "_low", "_high"])


MEASURES = ("order_sensitivity", "prompt_sensitivity")


def reliability_table(items: pd.DataFrame, by: Sequence[str], measures: Sequence[str] = MEASURES,
                      level: float = 0.95) -> pd.DataFrame:
    """Per group of per-item values (:func:`item_reliability`, :func:`refusal_items`): each measure's
    mean over items with a t interval over items (``<measure>``, ``<measure>_low``, ``<measure>_high``),
    cut to 0-100."""
    rows = []
    for ids, part in _groups(items, by):
        row = dict(ids)
        for m in measures:
            ci = mean_interval(part[m], level, bounds=(0.0, 100.0))
            row.update({m: ci["mean"], f"{m}_low": ci["ci_low"], f"{m}_high": ci["ci_high"],
                        f"{m}_n": ci["n_items"]})
        rows.append(row)
    return pd.DataFrame(rows)


def refusal_items(gen: pd.DataFrame, by: Sequence[str] = ("model", "test")) -> pd.DataFrame:
    """Per item: percent of its generations that are explicit refusals, unparseable, or either."""
    outcome = gen["outcome"].astype(str)
    frame = gen.assign(refused=100.0 * (outcome == "refused"), unparseable=100.0 * (outcome == "unparseable"))
    frame["no_answer"] = frame["refused"] + frame["unparseable"]
    keys = [*by, "key", "trait"]
    return (frame.groupby(keys, sort=False)[["refused", "unparseable", "no_answer"]].mean()
            .join(frame.groupby(keys, sort=False).size().rename("generations")).reset_index())


# --- agreement beyond chance ---------------------------------------------------------------------

def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two binary raters (pairs with a NaN are skipped); NaN when chance agreement is 1."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size == 0:
        return float("nan")
    observed = float((a == b).mean())
    pa, pb = a.mean(), b.mean()
    chance = float(pa * pb + (1 - pa) * (1 - pb))
    return float("nan") if chance >= 1 else (observed - chance) / (1 - chance)


def fleiss_kappa(choices: np.ndarray) -> float:
    """Fleiss' kappa of binary decisions, items x raters; items with a NaN are skipped."""
    x = np.asarray(choices, float)
    x = x[np.isfinite(x).all(axis=1)]
    if x.shape[0] == 0 or x.shape[1] < 2:
        return float("nan")
    m = x.shape[1]
    highs = x.sum(axis=1)
    counts = np.stack([highs, m - highs], axis=1)
    agreement = ((counts * (counts - 1)).sum(axis=1) / (m * (m - 1))).mean()
    shares = counts.sum(axis=0) / counts.sum()
    chance = float((shares**2).sum())
    return float("nan") if chance >= 1 else float((agreement - chance) / (1 - chance))


def agreement_arrays(dec: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(original-order decisions, reversed-order decisions, item decisions), each items x templates."""
    wide = lambda col: dec.pivot_table(index="key", columns="template", values=col, aggfunc="first",  # noqa: E731
                                       dropna=False).sort_index()
    orig, rev, fixed = wide("orig"), wide("rev"), wide("fixed")
    return orig.to_numpy(float), rev.loc[orig.index].to_numpy(float), fixed.loc[orig.index].to_numpy(float)


def order_kappa(orig: np.ndarray, rev: np.ndarray) -> Callable[[np.ndarray], float]:
    """The statistic "Cohen's kappa between the orders" on a resample of items (rows)."""
    return lambda idx: cohen_kappa(orig[idx], rev[idx])


def template_kappa(fixed: np.ndarray) -> Callable[[np.ndarray], float]:
    """The statistic "Fleiss' kappa between the templates" on a resample of items (rows)."""
    return lambda idx: fleiss_kappa(fixed[idx])


def bootstrap_interval(statistic: Callable[[np.ndarray], float], units: int, *, n_boot: int = 2000,
                       level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of ``statistic(index)`` over resamples of the units (for tables)."""
    if units < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    reps = np.array([statistic(rng.integers(0, units, units)) for _ in range(n_boot)], float)
    reps = reps[np.isfinite(reps)]
    if reps.size < n_boot // 2:
        return float("nan"), float("nan")
    low, high = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def agreement_table(dec: pd.DataFrame, by: Sequence[str], *, n_boot: int = 2000, level: float = 0.95,
                    seed: int = 0) -> pd.DataFrame:
    """Per group: Cohen's kappa between orders and Fleiss' kappa between templates, bootstrap over items."""
    rows = []
    for ids, part in _groups(dec, by):
        orig, rev, fixed = agreement_arrays(part)
        n = orig.shape[0]
        row = dict(ids, n_items=n)
        for name, stat in (("order_kappa", order_kappa(orig, rev)), ("template_kappa", template_kappa(fixed))):
            low, high = bootstrap_interval(stat, n, n_boot=n_boot, level=level, seed=seed)
            row.update({name: stat(np.arange(n)), f"{name}_low": low, f"{name}_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def calibration_change(raw: pd.DataFrame, calibrated: pd.DataFrame, by: Sequence[str],
                       measures: Sequence[str] = MEASURES, level: float = 0.95) -> pd.DataFrame:
    """Per group and measure: raw and calibrated means over items, and their paired difference with a t
    interval (calibrated - raw, items present in both)."""
    keys = [*by, "key"]
    both = raw.merge(calibrated, on=keys, suffixes=("_raw", "_cal"))
    rows = []
    for ids, part in _groups(both, by):
        for m in measures:
            r = mean_interval(part[f"{m}_raw"], level, bounds=(0.0, 100.0))
            c = mean_interval(part[f"{m}_cal"], level, bounds=(0.0, 100.0))
            d = mean_interval(part[f"{m}_cal"] - part[f"{m}_raw"], level, bounds=(-100.0, 100.0))
            rows.append({**ids, "measure": m, "raw": r["mean"], "raw_low": r["ci_low"], "raw_high": r["ci_high"],
                         "calibrated": c["mean"], "calibrated_low": c["ci_low"], "calibrated_high": c["ci_high"],
                         "change": d["mean"], "change_low": d["ci_low"], "change_high": d["ci_high"],
                         "n_items": d["n_items"]})
    return pd.DataFrame(rows)


# --- tables for the chapter -----------------------------------------------------------------------

def by_half(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``half`` column ("Big Five", "Dark Triad"), plus a copy labelled "all traits"."""
    half = np.where(frame["trait"].isin(BIG_FIVE), "Big Five", "Dark Triad")
    return pd.concat([frame.assign(half=half), frame.assign(half="all traits")], ignore_index=True)


def with_intervals(table: pd.DataFrame, measures: Sequence[str], *, digits: int = 0,
                   low: str = "{}_low", high: str = "{}_high") -> pd.DataFrame:
    """Each measure as "value [low, high]" text, for display (the numbers stay in ``table``)."""
    out = table.drop(columns=[c for m in measures for c in (low.format(m), high.format(m), f"{m}_n")
                              if c in table.columns])
    for m in measures:
        value, lo, hi = table[m], table[low.format(m)], table[high.format(m)]
        out[m] = [("n/a" if not np.isfinite(v) else f"{v:.{digits}f}" if not np.isfinite(a)
                   else f"{v:.{digits}f} [{a:.{digits}f}, {b:.{digits}f}]") for v, a, b in zip(value, lo, hi)]
    return out


#: The measures of the chapter's reliability table, in its column order (refusals from free text, then the
#: two sensitivities from likelihood scoring).
TABLE_MEASURES = ("refused", "unparseable", "prompt_sensitivity", "order_sensitivity")
#: How the tables name the self-report test: the project's proxy, never the BFI or SD-3 the paper used.
PROXY = "self-report proxy"


def _proxy_named(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(test=table["test"].replace({"self-report": PROXY}))


def proxy_table(items: pd.DataFrame, refusals: pd.DataFrame, measures: Sequence[str] = TABLE_MEASURES,
                level: float = 0.95) -> pd.DataFrame:
    """TRAIT against the self-report proxy: per model, test and half (Big Five, Dark Triad, all traits), each
    measure's mean over items with its t interval (:func:`reliability_table`).

    ``items`` (:func:`item_reliability`) and ``refusals`` (:func:`refusal_items`) are joined item by item with
    an outer join: the free-text subsample is smaller than the scored one, so an item may have only one kind of
    measure, and each measure averages the items that have it.
    """
    both = items.merge(refusals, how="outer", on=["model", "test", "key", "trait"])
    return _proxy_named(reliability_table(by_half(both), ["model", "test", "half"], measures=measures, level=level))


def beside_paper(table: pd.DataFrame, models: Sequence[str], paper: dict[str, dict[str, float]] = PAPER_RELIABILITY,
                 measures: Sequence[str] = TABLE_MEASURES) -> pd.DataFrame:
    """:func:`proxy_table` as the chapter shows it: "value [low, high]" per measure, the run's models in their
    order (then test and half), and below them the paper's rows, labelled "<test> (paper)", so that a reader
    never takes the paper's BFI/SD-3 numbers for ours. A measure the paper does not report is left blank."""
    rank = {m: i for i, m in enumerate(models)}
    ordered = table.sort_values(["test", "half"]).sort_values("model", key=lambda s: s.map(rank), kind="stable")
    shown = with_intervals(ordered, measures).set_index(["model", "test", "half"])
    reported = pd.DataFrame([{"model": "paper", "test": f"{name} (paper)", "half": "", "refused": v["refusal_rate"],
                              "prompt_sensitivity": v["prompt_sensitivity"],
                              "order_sensitivity": v["option_order_sensitivity"]} for name, v in paper.items()])
    return pd.concat([shown, reported.set_index(["model", "test", "half"])]).fillna("")


def calibration_table(raw_items: pd.DataFrame, calibrated: Sequence[pd.DataFrame],
                      by: Sequence[str] = ("model", "test")) -> pd.DataFrame:
    """What content-free calibration does to the sensitivities: per model and test, each measure raw and
    calibrated, and the paired change (:func:`calibration_change`).

    ``raw_items``: :func:`item_reliability` of the raw decisions; ``calibrated``: the calibrated decisions of
    each test (:func:`persona.trait.scoring.decisions` of calibrated frames), measured here the same way.
    """
    cal_items = item_reliability(pd.concat(list(calibrated), ignore_index=True), by)
    return _proxy_named(calibration_change(raw_items, cal_items, list(by)))
