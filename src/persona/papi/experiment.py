"""The PAPI experiment: which subjects and items, every method on every subject, and the tables.

``papi_setup`` picks subjects and items; ``make_method`` builds a method from its name; ``run`` fits
and answers every (method, subject) through a resumable ``ResultStore``; the rest turns predictions
into the book's tables (the no-model floor, expressed trait levels, paired tests). Timing of PAS
against DPO lives in ``persona.papi.cost``.
Method names: ``no-change``, ``few-shot[<conv>]``, ``p2``, ``pas[<protocol>,<conv>]``,
``pas[<protocol>,no-fs,<conv>]``, ``dpo[<conv>]`` with ``<conv>`` in paper/corrected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from persona import papi
from persona.papi import metrics, reference
from persona.papi.methods.base import LIKELIHOOD, AnswerMode, Method
from persona.papi.methods.dpo import DPO, DPOSettings
from persona.papi.methods.pas import PAS, contrast_activations
from persona.papi.methods.prompting import FewShot, NoChange, PersonalityPrompt
from persona.runs import ResultStore, Unit, resume
from persona.timing import StageTimer, interleave, maybe_stage


#: The modules whose code produces the stored predictions (analysis modules read them and are not listed).
PRODUCING_MODULES = ("persona.engine", "persona.models", "persona.steering", "persona.papi.data",
                     "persona.papi.prompts", "persona.papi.methods", "persona.papi.experiment")


@dataclass
class PapiSetup:
    """The subjects and items of one run, plus the truth table ``persona.papi.metrics`` scores against."""

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
                timer: StageTimer | None = None, seed: int = 0, mode: AnswerMode = LIKELIHOOD) -> Method:
    """Build the method called ``name`` (see the module docstring); every LLM method answers in ``mode``."""
    match = _NAME.match(name)
    if match is None:
        raise ValueError(f"bad method name {name!r}")
    kind, args = match["kind"], (match["args"] or "").split(",")
    if kind == "no-change":
        return NoChange(engine, mode)
    if kind == "p2":
        return PersonalityPrompt(engine, mode)
    if kind == "few-shot":
        return FewShot(engine, convention=args[0], mode=mode)
    if kind == "dpo":
        return DPO(engine, convention=args[0], settings=dpo_settings, timer=timer, mode=mode)
    if kind == "pas":
        if activations is None:
            raise ValueError("PAS needs the contrast activations")
        protocol, convention = args[0], args[-1]
        extra = {"alphas": tuple(alphas)} if alphas is not None else {}
        return PAS(engine, engine.model, activations, setup.known, protocol=protocol, test_items=setup.test,
                   few_shot="no-fs" not in args, convention=convention, seed=seed, timer=timer, mode=mode, **extra)
    raise ValueError(f"unknown method {name!r}")


def pas_activations(engine, setup: PapiSetup, timer: StageTimer | None = None) -> np.ndarray:
    """The subject-independent PAS activations (disk-cached), timed once as ``pas/activations``."""
    with maybe_stage(timer, "pas/activations", method="pas", subject=None):
        return contrast_activations(engine, setup.known)


def _fit_and_answer(method: Method, name: str, subject: papi.Subject, setup: PapiSetup) -> pd.DataFrame:
    method.fit(subject, setup.known)
    frame = method.answer(setup.test).frame(subject=subject.case, method=name)
    if hasattr(method, "release"):
        method.release()
    return frame


def run(methods: dict[str, Method], setup: PapiSetup, store: ResultStore,
        subjects: Sequence[papi.Subject] | None = None) -> pd.DataFrame:
    """Fit and answer every (method, subject) not yet in ``store``; return the predictions of all of them.

    Subjects are interleaved across methods (A B, B A, ...) so slow drift of the machine is shared.
    """
    subjects = list(subjects if subjects is not None else setup.subjects)
    units = [Unit(name, str(subject.case), partial(_fit_and_answer, methods[name], name, subject, setup),
                  rows=len(setup.test), label=f"{name} on subject {subject.case}")
             for subject, name in interleave(subjects, list(methods))]
    return resume(store, units, desc="alignment")


def floor_predictions(setup: PapiSetup) -> pd.DataFrame:
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
    """``persona.papi.metrics.score`` in both conventions, stacked (convention, method, domain, mae, CI)."""
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
