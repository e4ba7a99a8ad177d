"""What the alignment chapter computes from its stored runs: the positive control, the methods table, the
paired verdicts against the paper's effect sizes, and how often each alpha was chosen.

Every verdict goes through ``persona.verdicts`` with subjects as the unit (items are nested in subjects:
a subject's Score averages its items first), paired (the same subjects and items for both methods).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Sequence

import numpy as np
import pandas as pd

from persona import gate as G
from persona import verdicts
from persona.papi import metrics

#: The paper's Scores (Table 1, as quoted by third parties; PAlign's metric), Llama-3-8B-Instruct.
PAPER_SCORES = {"PAS": 4.41, "Few-shot": 5.96, "DPO": 7.45, "PPO": 7.62}


@dataclass(frozen=True)
class Comparison:
    """A claim "``better`` aligns better than ``worse``" on one endpoint, with the paper's effect if any."""

    key: str
    better: str
    worse: str
    paper_effect: float | None
    paper_label: str
    convention: str = "corrected"
    endpoint: str = "score"
    higher_is_better: bool = False
    needs: tuple[str, ...] = ()  # capability checks (``persona.gate``) the comparison rests on


def paper_gap(better: str, worse: str) -> float:
    """The paper's Score gap between two of its methods (Llama-3-8B-Instruct)."""
    return round(PAPER_SCORES[worse] - PAPER_SCORES[better], 2)


def control_shifts(curve: pd.DataFrame, *, family_size: int = 1) -> pd.DataFrame:
    """Positive control: per order and alpha, the shift of the expected answer from alpha 0 (items as units,
    paired) with its interval, and whether it moved as intended (the verdict of "steering along *agree*
    raises agreement" for alpha > 0, "lowers it" for alpha < 0)."""
    rows = []
    for order, block in curve.groupby("order", sort=False):
        wide = block.pivot_table(index="item", columns="alpha", values="expected")
        for alpha in [a for a in wide.columns if a != 0]:
            v = verdicts.paired(wide[alpha], wide[0], higher_is_better=alpha > 0, paper_effect=None,
                                family_size=family_size, unit="items", bound=4.0)  # answers 1..5
            sign = 1 if alpha > 0 else -1  # the verdict's effect is in the intended direction
            low, high = sorted((sign * v.ci_low, sign * v.ci_high))
            rows.append({"order": order, "alpha": alpha, "shift": sign * v.effect, "ci_low": low, "ci_high": high,
                         "n_items": v.n, "moved_as_intended": v.verdict == verdicts.REPLICATED})
    return pd.DataFrame(rows)


def control_passes(at_top: pd.DataFrame) -> bool:
    """The positive control passes when steering at the control's largest (positive) alpha moved the expected
    answer as intended in both option orders (``at_top``: :func:`control_shifts` rows of that alpha)."""
    rows = at_top.reset_index() if "order" not in at_top else at_top
    rows = rows[rows["order"].isin(["original", "reversed"])]
    return bool(len(rows) == 2 and (rows["alpha"] > 0).all() and rows["moved_as_intended"].all())


def validated_alpha(shifts: pd.DataFrame) -> float:
    """The largest positive alpha up to which every positive alpha of :func:`control_shifts` moved the expected
    answer as intended in both option orders; 0 when the smallest one already failed (or none was run)."""
    valid = 0.0
    for alpha in sorted(a for a in set(shifts["alpha"]) if a > 0):
        both = shifts[(shifts["alpha"] == alpha) & shifts["order"].isin(["original", "reversed"])]
        if len(both) != 2 or not both["moved_as_intended"].all():
            break
        valid = float(alpha)
    return valid


def control_check(at_top: pd.DataFrame, model: str) -> G.Check:
    """The positive control as the gate's check: at the control's largest alpha, the expected answer must rise in
    both option orders (``at_top``: :func:`control_shifts` rows of that alpha, one per order)."""
    rows = (at_top.reset_index() if "order" not in at_top else at_top).set_index("order")
    parts = {}
    for order in ("original", "reversed"):
        if order not in rows.index:
            parts[order] = G.Check("positive control", model, G.UNDECIDED, f"the {order} order was not run")
            continue
        r = rows.loc[order]
        evidence = (f"shift {r['shift']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}] at alpha {r['alpha']:g}, "
                    f"n = {int(r['n_items'])} items")
        status = (G.UNDECIDED if not np.isfinite(r["ci_low"]) else G.PASSED if bool(r["moved_as_intended"])
                  else G.FAILED)
        parts[order] = G.Check("positive control", model, status, evidence)
    lean = {o: float(rows.loc[o, "shift"]) for o in parts if o in rows.index}
    amounts = " and ".join(f"{v:+.2f} in the {o} order" for o, v in lean.items())
    moved = [o for o, check in parts.items() if check.status == G.PASSED]
    if len(moved) == 1 and len(lean) == 2 and all(v > 0 for v in lean.values()):
        finding = (f"steering along the agree direction raises agreement clearly in the {moved[0]} order only (the "
                   f"other order's interval includes no shift), so most of what it moves is a letter: the expected "
                   f"answer moves {amounts}")
    else:
        finding = ("steering along the agree direction moves a letter, not the content: the expected answer moves "
                   + amounts)
    return G.all_of("positive control", model, parts, finding=finding)


def methods_table(table: pd.DataFrame, methods: Sequence[str], *, calibration: str = "raw",
                  view: str = "both") -> pd.DataFrame:
    """Mean endpoints per method (rows in the given order) with 95% intervals over subjects, as text."""
    summary = metrics.endpoint_summary(table[(table["calibration"] == calibration) & (table["view"] == view)])
    summary = summary.set_index("method").reindex([m for m in methods if m in set(summary["method"])])

    def cell(row, name, digits=2):
        if not np.isfinite(row[name]):
            return "undefined"
        interval = f" [{row[name + '_low']:.{digits}f}, {row[name + '_high']:.{digits}f}]" \
            if np.isfinite(row[name + "_low"]) else ""
        return f"{row[name]:.{digits}f}{interval}"

    return pd.DataFrame({
        "Score (chosen option)": [cell(r, "score") for _, r in summary.iterrows()],
        "Score (expected answer)": [cell(r, "expected_score") for _, r in summary.iterrows()],
        "rank correlation": [cell(r, "rho") for _, r in summary.iterrows()],
        "answers 'Neither'": [f"{r['neither']:.0%}" if np.isfinite(r["neither"]) else "" for _, r in summary.iterrows()],
        "subjects": summary["score_n"].astype(int).to_list(),
    }, index=summary.index)


def _neither(block: pd.DataFrame, method: str) -> float:
    return float(block.loc[block["method"] == method, "neither"].mean())


def compare(tables: dict[str, pd.DataFrame], comparisons: Sequence[Comparison], *, gate: G.Gate | None = None,
            model: str = "") -> dict[str, verdicts.Verdict]:
    """The verdict of each comparison (family = all of them), on per-subject endpoint values.

    ``tables[convention]`` is ``metrics.endpoints`` in that convention; raw probabilities, both orders. A
    comparison that ``needs`` a capability check goes through ``gate`` for ``model`` first: if the check did not
    pass, the verdict is "not testable on this model" and nothing is computed. The analysis set is the subjects
    with a value for both methods (a generated answer the parser could not read can leave a whole domain without
    one); every branch names the subjects left out. A comparison whose methods were not run, or whose two methods
    gave the same value for every subject, is *not testable here*: the endpoint cannot separate them (the reason
    gives how often each answered "Neither" on the analysed subjects).
    """
    out = {}
    for c in comparisons:
        decide = partial(_compare_one, tables, c, len(comparisons))
        out[c.key] = (gate.decide(decide, needs=[(name, model) for name in c.needs]) if c.needs and gate is not None
                      else decide())
    return out


def _left_out_text(dropped: Sequence) -> str:
    return (f" ({len(dropped)} subject(s) without a value for one method left out: "
            f"{', '.join(str(s) for s in dropped)})") if len(dropped) else ""


def _compare_one(tables: dict[str, pd.DataFrame], c: Comparison, family_size: int) -> verdicts.Verdict:
    table = tables[c.convention]
    block = table[(table["calibration"] == "raw") & (table["view"] == "both")]
    values = {m: block[block["method"] == m].set_index("subject")[c.endpoint] for m in (c.better, c.worse)}
    if any(v.empty for v in values.values()):
        return verdicts.not_testable(f"{c.better} or {c.worse} was not run")
    both = pd.DataFrame(values).dropna()
    dropped = sorted((set(values[c.better].index) | set(values[c.worse].index)) - set(both.index), key=str)
    left_out = _left_out_text(dropped)
    if both.empty:
        return verdicts.not_testable(f"no subject has a value for both methods{left_out}")
    if (both[c.better] == both[c.worse]).all():
        analysed = block[block["subject"].isin(both.index)]
        return verdicts.not_testable(
            f"both gave the same {c.endpoint} for every one of {len(both)} subjects (they answered 'Neither' on "
            f"{_neither(analysed, c.better):.0%} and {_neither(analysed, c.worse):.0%} of the items): the endpoint "
            f"cannot separate them{left_out}")
    label = (f"{c.endpoint}({c.worse}) - {c.endpoint}({c.better})" if not c.higher_is_better
             else f"{c.endpoint}({c.better}) - {c.endpoint}({c.worse})")
    verdict = verdicts.paired(both[c.better], both[c.worse], higher_is_better=c.higher_is_better,
                              paper_effect=c.paper_effect, paper_label=c.paper_label, family_size=family_size,
                              effect_label=label, bound=metrics.ENDPOINT_SPAN.get(c.endpoint))
    return replace(verdict, reason=f"{verdict.reason}{left_out}") if left_out else verdict


def endpoint_differences(tables: dict[str, pd.DataFrame], better: str, worse: str,
                         convention: str = "corrected") -> pd.DataFrame:
    """Descriptive, beside the verdicts: the paired difference of every endpoint (raw and calibrated, both
    orders) between two methods, in the direction that favours ``better``, with a 95% interval over subjects."""
    rows = []
    table = tables[convention]
    for calibration in metrics.CALIBRATIONS:
        block = table[(table["calibration"] == calibration) & (table["view"] == "both")]
        for endpoint, higher in (("score", False), ("expected_score", False), ("rho", True)):
            a = block[block["method"] == better].set_index("subject")[endpoint]
            b = block[block["method"] == worse].set_index("subject")[endpoint]
            both = pd.DataFrame({"a": a, "b": b}).dropna()
            if both.empty:
                continue
            v = verdicts.paired(both["a"], both["b"], higher_is_better=higher, paper_effect=None,
                                bound=metrics.ENDPOINT_SPAN[endpoint])
            rows.append({"calibration": calibration, "endpoint": endpoint, "difference": v.effect,
                         "ci_low": v.ci_low, "ci_high": v.ci_high, "subjects": len(both)})
    return pd.DataFrame(rows)


def alpha_choices(predictions: pd.DataFrame) -> pd.DataFrame:
    """How often each alpha was chosen, per PAS variant (one row per method and alpha)."""
    pas = predictions[predictions["method"].str.startswith("pas[")].drop_duplicates(["method", "subject"])
    return pas.groupby(["method", "alpha"]).size().rename("subjects").reset_index()
