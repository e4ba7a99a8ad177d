"""The PAPI alignment metric, defined once: per-domain MAE on held-out items, averaged over subjects.

Input: a tidy long DataFrame of predictions with columns

* ``subject``   the subject's case id (``Subject.case``),
* ``item``      the item number (1..300),
* ``predicted`` the option the method ticked, on the AGREEMENT scale (5 = Very Accurate, 4 = Moderately
  Accurate, 3 = Neither, 2 = Moderately Inaccurate, 1 = Very Inaccurate). PAlign maps the answer letters
  the same way (``SCORES = {"A": 5, "B": 4, "C": 3, "D": 2, "E": 1}`` in its ``main.py``). Floats are allowed
  (expected values); NaN = no recognisable answer, dropped from the average as PAlign drops unparsed answers.
* any grouping columns (default ``method``): each group is scored separately by the same code.

and the truth, ``persona.papi.answers_frame(subjects, items)``. Two conventions:

``paper``
    exactly PAlign's ``process_answers``: ``|predicted - stored|``. The ticked agreement is compared with the
    STORED value, which for reverse-keyed items is the reverse of what the person ticked (that is the bug),
    and a stored 0 (missing) is a target like any other.
``corrected``
    ``|predicted - agreement|`` with ``agreement = stored`` for '+' items and ``6 - stored`` for '-' items:
    the tick is compared with what the person ticked; missing answers are excluded. Equivalently
    ``|keyed(predicted) - stored|``, so trait-direction errors are the same for both item signs.

For each convention: per subject and domain, the mean absolute error over that domain's scored items;
per domain, the mean over subjects; the paper's "Score" is the sum of the five domain means. Confidence
intervals resample subjects with replacement (seeded percentile bootstrap), the unit the paper averages over.

Endpoints beside the Score (``endpoints``), per subject, because the Score rewards answering the middle
option: a model that answers "Neither" everywhere scores like the always-"Neither" predictor.

* ``expected_score``: the same sum of domain MAEs for the *expected* answer (probability-weighted over
  the five options) instead of the chosen one;
* ``rho``: Spearman's rank correlation, over the subject's held-out items, between the expected answer and
  what the subject answered. A constant answer has no rank correlation (NaN), so it cannot game it; but
  item norms (some statements are endorsed by almost everyone) give a positive rho without knowing the
  person, which is why the experiment reports the population item means beside the methods;
* each from the raw option probabilities or after content-free calibration (``calibrated``: each order's
  probabilities divided by those of a content-free "N/A" question under the same prompt and order, then
  renormalised; Zhao et al. 2021), and from the two orders averaged (``both``) or each order alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from scipy import stats

from persona.engine.calibration import mean_over_orders
from persona.papi.data import DOMAINS, Convention
from persona.papi.prompts import ORDER_TAGS
from persona.verdicts import constant_interval

SCORE = "Score"  # the paper's name for the sum of the five domain MAEs


def _check_predictions(predictions: pd.DataFrame, truth: pd.DataFrame, by: Sequence[str]) -> None:
    needed = {"subject", "item", "predicted", *by}
    if not needed <= set(predictions.columns):
        raise ValueError(f"predictions need columns {sorted(needed)}; got {list(predictions.columns)}")
    values = predictions["predicted"].dropna()
    if ((values < 1) | (values > 5)).any():
        bad = predictions.loc[values.index[(values < 1) | (values > 5)][0]]
        raise ValueError(f"predicted must be on the 1..5 agreement scale; got {bad.to_dict()}")
    if predictions.duplicated(["subject", "item", *by]).any():
        raise ValueError("predictions hold more than one row per (subject, item, group)")
    unknown = set(predictions["subject"]) - set(truth["subject"])
    if unknown:
        raise ValueError(f"predictions name subjects missing from the truth, e.g. {sorted(unknown)[:3]}")


def item_errors(
    predictions: pd.DataFrame, truth: pd.DataFrame, convention: Convention, by: Sequence[str] = ("method",)
) -> pd.DataFrame:
    """One row per scored (group, subject, item) with its ``domain`` and absolute ``error``."""
    by = list(by)
    _check_predictions(predictions, truth, by)
    merged = predictions.merge(
        truth[["subject", "item", "domain", "stored", "agreement"]], on=["subject", "item"], how="left",
        validate="many_to_one",
    )
    if merged["domain"].isna().any():
        raise ValueError("predictions name items missing from the truth")
    if convention == "paper":
        target = merged["stored"].astype("float64")  # 0 (missing) stays a target, as in PAlign
    elif convention == "corrected":
        target = merged["agreement"]  # NaN for missing -> dropped below
    else:
        raise ValueError(f"unknown convention {convention!r}")
    merged["error"] = (merged["predicted"].astype("float64") - target).abs()
    return merged.dropna(subset=["error"])[[*by, "subject", "item", "domain", "error"]]


def subject_domain_mae(
    predictions: pd.DataFrame, truth: pd.DataFrame, convention: Convention, by: Sequence[str] = ("method",)
) -> pd.DataFrame:
    """Per (group, subject): the MAE of each domain (columns A, C, E, N, O; NaN if nothing was scored)."""
    errors = item_errors(predictions, truth, convention, by)
    table = errors.pivot_table(index=[*by, "subject"], columns="domain", values="error", aggfunc="mean")
    return table.reindex(columns=list(DOMAINS))


def _bootstrap(matrix: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_domains + 1) bootstrap replicates of the domain means and their sum, resampling rows."""
    idx = rng.integers(0, len(matrix), size=(n_boot, len(matrix)))
    means = np.nanmean(matrix[idx], axis=1)
    return np.column_stack([means, means.sum(axis=1)])


def summarize(per_subject: pd.DataFrame, n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """Long table per group and domain (plus ``Score``): ``mae``, ``ci_low``, ``ci_high``, ``n_subjects``."""
    group_levels = [name for name in per_subject.index.names if name != "subject"]
    rows = []
    grouped = per_subject.groupby(level=group_levels, sort=False) if group_levels else [((), per_subject)]
    for key, block in grouped:
        key = key if isinstance(key, tuple) else (key,)
        matrix = block.to_numpy(dtype="float64")
        point = np.nanmean(matrix, axis=0)
        point = np.append(point, point.sum())
        reps = _bootstrap(matrix, n_boot, np.random.default_rng(seed)) if n_boot > 0 else None
        for j, domain in enumerate([*per_subject.columns, SCORE]):
            low, high = (
                np.quantile(reps[:, j], [(1 - ci) / 2, (1 + ci) / 2]) if reps is not None else (np.nan, np.nan)
            )
            rows.append((*key, domain, point[j], low, high, len(matrix)))
    return pd.DataFrame(rows, columns=[*group_levels, "domain", "mae", "ci_low", "ci_high", "n_subjects"])


def mae_table(
    predictions: pd.DataFrame,
    truth: pd.DataFrame,
    convention: Convention,
    *,
    by: Sequence[str] = ("method",),
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> pd.DataFrame:
    """The metric with bootstrap CIs: per group, the five domain MAEs and their sum (``Score``)."""
    per_subject = subject_domain_mae(predictions, truth, convention, by)
    table = summarize(per_subject, n_boot=n_boot, seed=seed, ci=ci)
    table.insert(0, "convention", convention)
    return table


def wide(table: pd.DataFrame, value: str = "mae", index: str | Sequence[str] = "method") -> pd.DataFrame:
    """A ``mae_table`` pivoted to one row per group, columns A, C, E, N, O, Score."""
    out = table.pivot_table(index=index, columns="domain", values=value, sort=False)
    return out.reindex(columns=[*DOMAINS, SCORE])


def wide_with_ci(table: pd.DataFrame, index: str | Sequence[str] = "method", digits: int = 2) -> pd.DataFrame:
    """A ``mae_table`` as text cells ``"mae [ci_low, ci_high]"``, one row per group, for display."""
    def cell(row: pd.Series) -> str:
        return f"{row['mae']:.{digits}f} [{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]"

    text = table.assign(text=table.apply(cell, axis=1))
    out = text.pivot(index=index, columns="domain", values="text")
    order = list(dict.fromkeys(map(tuple, table[[index] if isinstance(index, str) else list(index)].to_numpy())))
    out = out.loc[[o[0] if isinstance(index, str) else o for o in order]]
    return out.reindex(columns=[*DOMAINS, SCORE])


CALIBRATIONS = ("raw", "calibrated")
#: The range of one subject's value of each endpoint: a Score sums five domain MAEs of at most 5 each (the paper
#: convention scores a stored 0 as a target), rho lies in [-1, 1], "neither" is a share. Means and differences
#: of identical subjects get their exact interval from it (``persona.verdicts.constant_interval``).
ENDPOINT_RANGE = {"score": (0.0, 25.0), "expected_score": (0.0, 25.0), "rho": (-1.0, 1.0), "neither": (0.0, 1.0)}
#: The largest difference two methods' values of an endpoint can have for one subject.
ENDPOINT_SPAN = {endpoint: high - low for endpoint, (low, high) in ENDPOINT_RANGE.items()}
VIEWS = ("both", "original", "reversed")
AGREEMENT = np.array([5, 4, 3, 2, 1])


def option_probs(frame: pd.DataFrame, calibration: str = "raw", view: str = "both") -> np.ndarray:
    """(n, 5) option probabilities of prediction rows: one order or both averaged, raw or calibrated.

    Rows without per-order columns (no-model predictors) or without a prior (generation) give NaN.
    """
    if calibration not in CALIBRATIONS or view not in VIEWS:
        raise ValueError(f"calibration in {CALIBRATIONS}, view in {VIEWS}; got {calibration!r}, {view!r}")
    per_order = []
    for order in (ORDER_TAGS if view == "both" else [view]):
        tag = ORDER_TAGS[order]
        cols = [f"p{v}_{tag}" for v in AGREEMENT]
        if not set(cols) <= set(frame.columns):
            return np.full((len(frame), 5), np.nan)
        probs = frame[cols].to_numpy(float)
        if calibration == "calibrated":
            prior = frame[[f"cf{v}_{tag}" for v in AGREEMENT]].to_numpy(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                scaled = probs / prior
                probs = scaled / scaled.sum(axis=1, keepdims=True)
        per_order.append(probs)
    return mean_over_orders(per_order)


def _subject_rho(frame: pd.DataFrame) -> pd.Series:
    def rho(block: pd.DataFrame) -> float:
        ok = block[["expected", "target"]].dropna()
        if len(ok) < 3 or ok["expected"].nunique() < 2 or ok["target"].nunique() < 2:
            return np.nan
        return float(stats.spearmanr(ok["expected"], ok["target"]).statistic)

    return frame.groupby("subject")[["expected", "target"]].apply(rho)


def endpoints(predictions: pd.DataFrame, truth: pd.DataFrame, convention: Convention = "corrected") -> pd.DataFrame:
    """Per (method, subject, calibration, view): ``score``, ``expected_score``, ``rho``, ``neither`` (share of
    chosen answers that are the middle option) and ``n_items``; see the module docstring.

    Prediction rows with option probabilities per order get every calibration and view; the others (no-model
    predictors) get ``raw``/``both`` only, with their tick as the expected answer.
    """
    target_col = "agreement" if convention == "corrected" else "stored"
    merged = predictions.merge(truth[["subject", "item", target_col]], on=["subject", "item"], how="left",
                               validate="many_to_one")
    merged["target"] = merged[target_col].astype(float)  # corrected: NaN where missing; paper: 0 is a target
    rows = []
    for method, block in merged.groupby("method", sort=False):
        views = [(c, v) for c in CALIBRATIONS for v in VIEWS]
        if np.isnan(option_probs(block)).all():
            views = [("raw", "both")]
        for calibration, view in views:
            probs = option_probs(block, calibration, view)
            if np.isnan(probs).all() and (calibration, view) != ("raw", "both"):
                continue
            frame = block[["subject", "item", "target"]].copy()
            if np.isnan(probs).all():  # a no-model predictor: its tick is its answer
                frame["predicted"] = block["predicted"].astype(float)
                frame["expected"] = frame["predicted"]
            else:
                missing = np.isnan(probs).any(axis=1)
                frame["predicted"] = np.where(missing, np.nan, AGREEMENT[np.argmax(np.nan_to_num(probs, nan=-1), axis=1)])
                frame["expected"] = probs @ AGREEMENT
            frame["method"] = method
            chosen = subject_domain_mae(frame[["method", "subject", "item", "predicted"]], truth, convention)
            expected = subject_domain_mae(frame[["method", "subject", "item"]].assign(
                predicted=frame["expected"].clip(1, 5)), truth, convention)
            summary = pd.DataFrame({
                "score": chosen.sum(axis=1, min_count=1).droplevel("method"),
                "expected_score": expected.sum(axis=1, min_count=1).droplevel("method"),
                "rho": _subject_rho(frame),
                "neither": frame.groupby("subject")["predicted"].apply(lambda p: float((p == 3).mean())),
                "n_items": frame.groupby("subject")["predicted"].apply(lambda p: int(p.notna().sum())),
            })
            rows.append(summary.reset_index().assign(method=method, calibration=calibration, view=view))
    out = pd.concat(rows, ignore_index=True)
    return out[["method", "subject", "calibration", "view", "score", "expected_score", "rho", "neither", "n_items"]]


def endpoint_summary(table: pd.DataFrame, *, level: float = 0.95) -> pd.DataFrame:
    """Mean over subjects of each endpoint per (method, calibration, view), with a t interval over subjects."""
    rows = []
    for key, block in table.groupby(["method", "calibration", "view"], sort=False):
        row = dict(zip(["method", "calibration", "view"], key))
        for endpoint in ("score", "expected_score", "rho", "neither"):
            values = block[endpoint].dropna().to_numpy(float)
            mean = values.mean() if len(values) else np.nan
            half = (stats.t.ppf(1 - (1 - level) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
                    if len(values) > 1 else np.nan)
            low, high = mean - half, mean + half
            if len(values) > 1 and np.all(values == values[0]):  # zero spread is not zero uncertainty
                low, high = constant_interval(mean, len(values), level, ENDPOINT_RANGE[endpoint][1],
                                              low=ENDPOINT_RANGE[endpoint][0])
            row.update({endpoint: mean, f"{endpoint}_low": low, f"{endpoint}_high": high,
                        f"{endpoint}_n": len(values)})
        rows.append(row)
    return pd.DataFrame(rows)
