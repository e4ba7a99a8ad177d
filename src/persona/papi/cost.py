"""Optimisation time of PAS against DPO, measured side by side on the same subjects.

``cost_comparison`` times both methods interleaved per subject (stage by stage, wall and CPU time,
peak memory); ``cost_by_model`` repeats it per model; ``cost_ratio`` and ``projected_ratio`` turn the
stage times into the numbers the cost chapter reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from persona import papi
from persona.papi.experiment import PapiSetup, make_method, pas_activations
from persona.papi.methods.dpo import DPOSettings, validation_steps
from persona.timing import StageTimer, amortised_total, interleave


def cost_comparison(engine, setup: PapiSetup, subjects: Sequence[papi.Subject], *, pas_name: str,
                    dpo_name: str, dpo_settings: DPOSettings, alphas: Sequence[float] | None = None,
                    timer: StageTimer | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time PAS and DPO side by side (interleaved per subject); returns (stage times, predictions)."""
    timer = timer or StageTimer()
    activations = pas_activations(engine, setup, timer)
    methods = {
        pas_name: make_method(pas_name, engine, setup, activations=activations, alphas=alphas, timer=timer),
        dpo_name: make_method(dpo_name, engine, setup, dpo_settings=dpo_settings, timer=timer),
    }
    frames = []
    for subject, name in interleave(list(subjects), list(methods)):
        method = methods[name]
        with timer.stage("fit", method=name, subject=subject.case, total=True):
            method.fit(subject, setup.known)
        frames.append(method.answer(setup.test).frame(subject=subject.case, method=name))
        if hasattr(method, "release"):
            method.release()
    times = timer.frame()
    if "total" not in times:
        times["total"] = False
    times["total"] = times["total"].fillna(False).astype(bool)
    times["family"] = times["stage"].str.split("/").str[0].where(~times["total"], "fit")
    return times, pd.concat(frames, ignore_index=True)


@dataclass
class ModelCost:
    """One model's side-by-side timing: stage times, test predictions and its parameter count."""

    model: str
    n_params: int
    times: pd.DataFrame
    predictions: pd.DataFrame


def cost_by_model(model_names: Sequence[str], setup: PapiSetup, *, pas_name: str, dpo_name: str,
                  dpo_settings: DPOSettings, alphas: Sequence[float] | None = None, dtype=None,
                  batch_size: int = 8) -> list[ModelCost]:
    """``cost_comparison`` for each model in turn (one loaded at a time) on the same subjects and items."""
    import gc

    from persona.engine import Engine
    from persona.models import load_model

    out = []
    for name in model_names:
        model, tokenizer = load_model(name, dtype=dtype)
        engine = Engine(model, tokenizer, batch_size=batch_size)
        times, predictions = cost_comparison(engine, setup, setup.subjects, pas_name=pas_name, dpo_name=dpo_name,
                                             dpo_settings=dpo_settings, alphas=alphas)
        out.append(ModelCost(name, sum(p.numel() for p in model.parameters()), times.assign(model=name),
                             predictions.assign(model=name)))
        del engine, model
        gc.collect()
    return out


def fit_seconds(times: pd.DataFrame, pas_name: str, clock: str = "wall_s") -> pd.DataFrame:
    """Optimisation time per (method, subject): the ``fit`` totals, with PAS's once-per-model activations
    spread over the subjects (``persona.timing.amortised_total``)."""
    fits = times[times["total"]]
    once = times[times["stage"] == "pas/activations"].assign(method=pas_name)
    return amortised_total(pd.concat([fits, once], ignore_index=True), once_stages=["pas/activations"],
                           n_subjects=fits["subject"].nunique())[["method", "subject", clock]]


def cost_ratio(times: pd.DataFrame, pas_name: str, dpo_name: str, *, n_boot: int = 2000, seed: int = 0,
               clock: str = "wall_s") -> pd.Series:
    """PAS / DPO optimisation time per subject (fit incl. the amortised activations), with a bootstrap CI.

    The activations are computed once per model: their time is divided by the number of subjects.
    The CI resamples subjects (ratio of mean times).
    """
    fit = fit_seconds(times, pas_name, clock).pivot_table(index="subject", columns="method", values=clock)
    n = len(fit)
    once = times.loc[times["stage"] == "pas/activations", clock].sum()
    pas, dpo = fit[pas_name].to_numpy(), fit[dpo_name].to_numpy()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    reps = pas[idx].mean(axis=1) / dpo[idx].mean(axis=1)
    low, high = np.quantile(reps, [0.025, 0.975])
    return pd.Series({"ratio": pas.mean() / dpo.mean(), "ci_low": low, "ci_high": high, "n_subjects": n,
                      "pas_s": pas.mean(), "dpo_s": dpo.mean(), "activations_once_s": once})


def n_validations(max_steps: int, eval_every: int) -> int:
    """How many validation Scores a DPO fit computes (``persona.papi.methods.dpo.validation_steps``)."""
    return len(validation_steps(max_steps, eval_every))


def projected_ratio(times: pd.DataFrame, pas_name: str, dpo_name: str, *, steps_run: int, eval_every: int,
                    steps: Sequence[int], clock: str = "wall_s") -> pd.DataFrame:
    """PAS/DPO ratio projected to other DPO step counts from the measured per-step and per-validation costs.

    A projection, not a measurement: it assumes each DPO step and each validation cost what they cost here
    (true for a fixed batch size and model) and keeps ``eval_every``; PAS's measured time is unchanged.
    """
    fit = fit_seconds(times, pas_name, clock).groupby("method")[clock].mean()
    stage = times[~times["total"]].groupby("stage")[clock].mean()
    pas = fit[pas_name]
    per_step = stage["dpo/train"] / steps_run
    per_validation = stage["dpo/validate"] / n_validations(steps_run, eval_every)
    fixed = fit[dpo_name] - stage["dpo/train"] - stage["dpo/validate"]  # setup and bookkeeping
    rows = []
    for n in steps:
        dpo = fixed + n * per_step + n_validations(n, eval_every) * per_validation
        rows.append({"dpo_steps": n, "dpo_s": dpo, "pas_s": pas, "ratio": pas / dpo})
    return pd.DataFrame(rows)
