"""Optimisation time of PAS against DPO, read from the alignment runs (nothing is trained twice).

Every method's fit in ``persona.papi.experiment.run`` records its stage times and its trace (the
validation quality after each alpha, or after each DPO validation, with the wall and CPU time spent so
far). From them:

* ``fit_times``: optimisation time per (method, subject), the ``fit`` total plus an equal share of the
  subject-independent PAS activations (computed once per model and construction, never read from a cache);
* ``quality_curves``: validation quality against cumulative optimisation time, per subject and method;
* ``time_to_quality``: the paper's claim made precise. PAS needs its whole fit (it knows its chosen alpha
  only at the end of the sweep) to reach its chosen validation quality; DPO needs the time at which its
  search *first* reaches that same quality, without its refit (a lower bound of DPO's cost, so the ratio
  errs in DPO's favour). When DPO never reaches it, its whole search is the bound and the ratio is an
  upper bound (``censored``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from persona.verdicts import INCONCLUSIVE, NOT_REPLICATED, Verdict, at_most, not_testable

ACTIVATIONS = "pas/activations"


def activation_seconds(times: pd.DataFrame, contrast: str, clock: str = "wall_s") -> float:
    """Time of one computation of a construction's contrast activations (the first one recorded)."""
    rows = times[(times["stage"] == ACTIVATIONS) & (times["method"] == f"contrast:{contrast}")]
    return float(rows[clock].iloc[0]) if len(rows) else 0.0


def fit_times(times: pd.DataFrame, pas_contrasts: dict[str, str], n_subjects: int) -> pd.DataFrame:
    """Per (method, subject): ``wall_s`` and ``cpu_s`` of the fit; a PAS method (``pas_contrasts``: method ->
    its construction) with an equal share of its activations."""
    fits = times[times["stage"] == "fit"].groupby(["method", "subject"], as_index=False)[["wall_s", "cpu_s"]].sum()
    for method, contrast in pas_contrasts.items():
        for clock in ("wall_s", "cpu_s"):
            fits.loc[fits["method"] == method, clock] += activation_seconds(times, contrast, clock) / max(n_subjects, 1)
    return fits


def stage_table(times: pd.DataFrame) -> pd.DataFrame:
    """Mean wall and CPU seconds and peak memory per (method, stage) and subject."""
    stages = times[times["stage"] != "fit"]
    return (stages.groupby(["method", "stage"], as_index=False)
            .agg(wall_s=("wall_s", "mean"), cpu_s=("cpu_s", "mean"), peak_rss_mb=("peak_rss_mb", "max"),
                 subjects=("subject", "nunique")))


def quality_curves(traces: pd.DataFrame, times: pd.DataFrame, pas_method: str, dpo_method: str,
                   n_subjects: int, contrast: str = "content") -> pd.DataFrame:
    """Validation quality against cumulative optimisation wall time, per subject and method.

    PAS: one point per alpha of its validation sweep, offset by its share of the activations; DPO: one point
    per validation of its search (step 0 is the unchanged model). Columns: method, subject, wall_s, cpu_s,
    val_loss, and the alpha or (lr, step) of the point.
    """
    share = {c: activation_seconds(times, contrast, c) / max(n_subjects, 1) for c in ("wall_s", "cpu_s")}
    pas = traces[(traces["method"] == pas_method)].copy()
    if "on" in pas:
        pas = pas[pas["on"] == "validation"]
    pas["val_loss"] = pas["loss"]  # PAS's trace calls its validation loss "loss"
    for clock in ("wall_s", "cpu_s"):
        pas[clock] = pas[clock] + share[clock]
    dpo = traces[(traces["method"] == dpo_method)]
    if "phase" in dpo:
        dpo = dpo[dpo["phase"] == "search"]
    keep = ["method", "subject", "wall_s", "cpu_s", "val_loss"]
    extra = [c for c in ("alpha", "lr", "step", "val_score", "val_rho", "reward_acc", "margin") if c in traces]
    return pd.concat([pas, dpo], ignore_index=True)[keep + extra]


def time_to_quality(curves: pd.DataFrame, pas_method: str, dpo_method: str, fits: pd.DataFrame,
                    clock: str = "wall_s") -> pd.DataFrame:
    """Per subject with both methods: PAS's time and chosen quality, the time DPO first reaches it, the ratio.

    Columns: pas_s, pas_loss, dpo_s, reached (DPO reached PAS's quality), ratio (an upper bound when not
    reached: ``censored``), reached_untrained (DPO's step 0, the unchanged model, already matched PAS: PAS
    aligned nothing that DPO had to train for), dpo_beats_unchanged (DPO's best validation loss below its step 0).
    """
    rows = []
    fit = fits.set_index(["method", "subject"])[clock]
    for subject in sorted(set(curves.loc[curves["method"] == dpo_method, "subject"])):
        pas = curves[(curves["method"] == pas_method) & (curves["subject"] == subject)]
        dpo = curves[(curves["method"] == dpo_method) & (curves["subject"] == subject)].sort_values(clock)
        if pas.empty or dpo.empty or (pas_method, subject) not in fit.index:
            continue
        pas_loss = float(pas["val_loss"].min())
        pas_s = float(fit.loc[(pas_method, subject)])
        hit = dpo[dpo["val_loss"] <= pas_loss + 1e-12]
        reached = not hit.empty
        dpo_s = float(hit[clock].iloc[0] if reached else dpo[clock].iloc[-1])
        start = dpo.loc[dpo["step"] == 0, "val_loss"] if "step" in dpo else dpo["val_loss"].iloc[:1]
        untrained = bool(reached and "step" in hit and float(hit["step"].iloc[0]) == 0)
        rows.append({"subject": subject, "pas_s": pas_s, "pas_loss": pas_loss, "dpo_s": dpo_s, "reached": reached,
                     "ratio": pas_s / dpo_s if dpo_s > 0 else np.nan, "censored": not reached,
                     "reached_untrained": untrained,
                     "dpo_best_loss": float(dpo["val_loss"].min()),
                     "dpo_beats_unchanged": bool(dpo["val_loss"].min() < float(start.min()) - 1e-12)})
    return pd.DataFrame(rows)


def cost_verdict(ttq: pd.DataFrame, bound: float = 0.2, family_size: int = 1) -> Verdict:
    """The claim "PAS needs at most 1/5 of DPO's time to reach its quality", by ``persona.verdicts.at_most``.

    Ratios from subjects where DPO never reached PAS's quality are upper bounds: they can support
    "replicated" (the true ratios are smaller still) but not "not replicated". Subjects where the unchanged
    model (DPO's step 0) already matched PAS's quality are left out: there PAS aligned nothing, and DPO's
    "time" is that of validating the untouched model, so their ratio is one of two budgets, not of two
    optimisations. If no subject is left, the claim is not testable here.
    """
    if ttq.empty:
        return not_testable("no subject has both PAS and DPO timings")
    if "reached_untrained" in ttq:
        untrained = int(ttq["reached_untrained"].sum())
        ttq = ttq[~ttq["reached_untrained"].astype(bool)]
        if ttq.empty:
            return not_testable(f"for all {untrained} subjects PAS's chosen validation quality was no better than "
                                f"the unchanged model's (DPO's step 0 already matched it): no alignment whose "
                                f"cost could be compared")
    verdict = at_most(ttq.set_index("subject")["ratio"], bound, family_size=family_size, effect_label="time ratio")
    n_censored = int(ttq["censored"].sum())
    if verdict.verdict == NOT_REPLICATED and n_censored:
        return Verdict(INCONCLUSIVE, f"the interval lies above {bound:.2f}, but for {n_censored} of {len(ttq)} "
                       f"subjects DPO never reached PAS's validation quality, so their ratios are upper bounds",
                       **{k: v for k, v in verdict.__dict__.items() if k not in ("verdict", "reason")})
    return verdict
