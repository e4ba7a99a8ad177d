"""The PAPI experiment loop shared by the alignment and cost notebooks and the cost benchmark.

``papi_setup`` picks subjects and items; ``make_method`` builds a method from its name; ``run`` fits
and answers every (method, subject) through a resumable ``ResultStore``; the rest turns predictions
into the book's tables (reference predictors, expressed trait levels, paired tests, cost ratios).
Method names: ``no-change``, ``few-shot[<conv>]``, ``p2``, ``pas[<protocol>,<conv>]``,
``pas[<protocol>,no-fs,<conv>]``, ``dpo[<conv>]`` with ``<conv>`` in paper/corrected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from persona import metrics, papi, reference
from persona.methods.base import Method, ReferenceMethod
from persona.methods.dpo import DPO, DPOSettings, validation_steps
from persona.methods.pas import PAS, contrast_activations
from persona.methods.prompting import FewShot, NoChange, PersonalityPrompt
from persona.runs import ResultStore
from persona.timing import StageTimer, amortised_total, interleave, maybe_stage


@dataclass
class PapiSetup:
    """The subjects and items of one run, plus the truth table ``persona.metrics`` scores against."""

    subjects: list[papi.Subject]
    known: list[papi.Item]
    test: list[papi.Item]
    truth: pd.DataFrame


def _first_per_domain(items: Sequence[papi.Item], n: int | None) -> list[papi.Item]:
    if n is None:
        return list(items)
    return [i for d in papi.DOMAINS for i in [x for x in items if x.domain == d][:n]]


def papi_setup(n_subjects: int | None, n_test_per_domain: int | None = None,
               n_known_per_domain: int | None = None) -> PapiSetup:
    """The first ``n_subjects`` of ``Test-set.json``; the first items of each domain (None = all)."""
    items = papi.items_by_number(papi.load_item_key())
    split = papi.load_split()
    known = _first_per_domain([items[n] for n in split.known], n_known_per_domain)
    test = _first_per_domain([items[n] for n in split.heldout], n_test_per_domain)
    subjects = papi.load_subjects(limit=n_subjects)
    return PapiSetup(subjects, known, test, papi.answers_frame(subjects, test))


_NAME = re.compile(r"^(?P<kind>[\w-]+)(?:\[(?P<args>[^\]]*)\])?$")


def make_method(name: str, engine, setup: PapiSetup, *, activations: np.ndarray | None = None,
                dpo_settings: DPOSettings | None = None, alphas: Sequence[float] | None = None,
                timer: StageTimer | None = None, seed: int = 0) -> Method:
    """Build the method called ``name`` (see the module docstring)."""
    match = _NAME.match(name)
    if match is None:
        raise ValueError(f"bad method name {name!r}")
    kind, args = match["kind"], (match["args"] or "").split(",")
    if kind == "no-change":
        return NoChange(engine)
    if kind == "p2":
        return PersonalityPrompt(engine)
    if kind == "few-shot":
        return FewShot(engine, convention=args[0])
    if kind == "dpo":
        return DPO(engine, convention=args[0], settings=dpo_settings, timer=timer)
    if kind == "pas":
        if activations is None:
            raise ValueError("PAS needs the contrast activations")
        protocol, convention = args[0], args[-1]
        extra = {"alphas": tuple(alphas)} if alphas is not None else {}
        return PAS(engine, engine.model, activations, setup.known, protocol=protocol, test_items=setup.test,
                   few_shot="no-fs" not in args, convention=convention, seed=seed, timer=timer, **extra)
    raise ValueError(f"unknown method {name!r}")


def pas_activations(engine, setup: PapiSetup, timer: StageTimer | None = None) -> np.ndarray:
    """The subject-independent PAS activations (disk-cached), timed once as ``pas/activations``."""
    with maybe_stage(timer, "pas/activations", method="pas", subject=None):
        return contrast_activations(engine, setup.known)


def run(methods: dict[str, Method], setup: PapiSetup, store: ResultStore,
        subjects: Sequence[papi.Subject] | None = None) -> pd.DataFrame:
    """Fit and answer every (method, subject) not yet in ``store``; return all stored predictions.

    Subjects are interleaved across methods (A B, B A, ...) so slow drift of the machine is shared.
    """
    subjects = list(subjects if subjects is not None else setup.subjects)
    for subject, name in interleave(subjects, list(methods)):
        if store.done(name, subject.case):
            continue
        method = methods[name]
        method.fit(subject, setup.known)
        frame = method.answer(setup.test).frame(subject=subject.case, method=name)
        if hasattr(method, "release"):
            method.release()
        store.save(name, subject.case, frame)
    return store.load(list(methods))


def reference_predictions(setup: PapiSetup) -> pd.DataFrame:
    """The no-LLM floor on the same subjects and items: always-3 and the subject's facet mean.

    The facet mean is computed in both pipelines (``paper`` reads stored values as ticks).
    """
    frames = []
    for convention in ("paper", "corrected"):
        predictor = reference.SubjectMean(setup.known, level="facet", convention=convention)
        frames.append(reference.predictions_frame(predictor, setup.subjects, setup.test,
                                                  method=f"ref:facet-mean[{convention}]"))
    frames.append(reference.predictions_frame(reference.Constant(3), setup.subjects, setup.test, method="ref:always-3"))
    return pd.concat(frames, ignore_index=True)


def score_table(predictions: pd.DataFrame, truth: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """``persona.metrics.score`` in both conventions, stacked (convention, method, domain, mae, CI)."""
    return pd.concat([metrics.score(predictions[["method", "subject", "item", "predicted"]], truth, c,
                                    n_boot=n_boot, seed=seed) for c in ("paper", "corrected")], ignore_index=True)


def subject_scores(predictions: pd.DataFrame, truth: pd.DataFrame, convention: str) -> pd.DataFrame:
    """Per (method, subject) Score (sum of the five domain MAEs), one column per method."""
    per = metrics.subject_domain_mae(predictions[["method", "subject", "item", "predicted"]], truth, convention)
    return per.sum(axis=1, min_count=1).unstack("method")


def paired_tests(scores: pd.DataFrame, pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Paired t-tests of per-subject Scores for ``(a, b)`` pairs, Holm-corrected across the pairs."""
    rows = []
    for a, b in pairs:
        if a not in scores or b not in scores:
            continue
        both = scores[[a, b]].dropna()
        diff = both[a] - both[b]
        if len(both) >= 2 and diff.std() > 0:
            t, p = stats.ttest_rel(both[a], both[b])
        else:
            t, p = np.nan, np.nan
        rows.append({"a": a, "b": b, "mean_diff": diff.mean(), "t": t, "p": p, "n_subjects": len(both)})
    out = pd.DataFrame(rows)
    if len(out):
        valid = out["p"].notna()
        out["p_holm"] = np.nan
        if valid.any():
            out.loc[valid, "p_holm"] = multipletests(out.loc[valid, "p"], method="holm")[1]
    return out


def expressed_levels(predictions: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Per (method, subject, domain): the trait level the answers express vs the subject's true level.

    Both are mean keyed scores over the test items (a tick is read back through the item's sign;
    the truth's stored values are keyed already; missing answers dropped). A method that aligns to a
    person should express high levels for people who are high.
    """
    merged = predictions.merge(truth[["subject", "item", "domain", "sign", "keyed"]], on=["subject", "item"])
    merged["expressed"] = np.where(merged["sign"] > 0, merged["predicted"], 6 - merged["predicted"])
    return (merged.groupby(["method", "subject", "domain"], as_index=False)
            .agg(expressed=("expressed", "mean"), true=("keyed", "mean")))


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
    """How many validation Scores a DPO fit computes (``persona.methods.dpo.validation_steps``)."""
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


__all__ = ["n_validations", "projected_ratio", "fit_seconds", "PapiSetup", "papi_setup", "make_method", "pas_activations", "run", "reference_predictions",
           "score_table", "subject_scores", "paired_tests", "expressed_levels", "cost_comparison", "cost_ratio",
           "ModelCost", "cost_by_model",
           "ReferenceMethod"]
