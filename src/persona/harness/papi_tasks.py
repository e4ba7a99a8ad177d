"""The PAPI prompt baselines as harness tasks: no change and few-shot, one document per (subject, held-out item).

The sample is the alignment chapter's (``persona.papi.experiment.papi_setup``): ``n_subjects`` subjects,
``n_test_per_domain`` held-out and ``n_known_per_domain`` known items per domain drawn with ``seed`` (all 300
subjects and every item when absent: the paper's scale). The system prompt is the method's own
(``persona.papi.methods.prompting``: PAlign's default prompt, or the subject's known answers as PAlign's
few-shot block, in ``convention`` "corrected" or "paper"); the prompt ends with the engine's answer cue for
the tokenizer (``persona.papi.prompts.answer_cue``); both option orders are asked and averaged, as the
chapter's likelihood mode does. The lm-eval metrics are the paper's Score (sum over the five domains of the
mean absolute error of the chosen option) under both conventions; the report adds the chapter's other
endpoints. Content-free calibration is not asked (the chapter's calibrated columns need one more prompt per
subject and order).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from persona.engine.calibration import mean_over_orders
from persona.harness.docs import Renderer, TaskInputError, count, model_tokenizer, prompt_fields, provisioned, \
    sample_record
from persona.harness.results import normalised, option_raw
from persona.papi import metrics
from persona.papi import prompts as papi_prompts
from persona.papi.data import stored_to_agreement
from persona.papi.experiment import AlignmentSettings, papi_setup
from persona.papi.methods.answering import OPTION_AGREEMENT
from persona.papi.methods.prompting import FewShot, NoChange
from persona.papi.prompts import ORDER_TAGS, ORDERS

CONVENTIONS = ("corrected", "paper")
RECORD = ("subject", "item", "domain", "predicted", "stored", "agreement")


def sample_parameters(meta: Mapping[str, Any]) -> dict:
    """The sample asked for (None = all), checked by the chapter's own settings."""
    params = {name: count(meta, name) for name in ("n_subjects", "n_test_per_domain", "n_known_per_domain")}
    try:
        params["seed"] = int(meta.get("seed", 0))
        AlignmentSettings(**params, methods=("no-change",))
    except (TypeError, ValueError) as exc:
        raise TaskInputError(str(exc)) from None
    return params


@lru_cache(maxsize=2)
def _setup(n_subjects, n_test_per_domain, n_known_per_domain, seed):
    settings = AlignmentSettings(n_subjects=n_subjects, n_test_per_domain=n_test_per_domain,
                                 n_known_per_domain=n_known_per_domain, seed=seed, methods=("no-change",))
    return provisioned(lambda: papi_setup(settings), "PAPI data")


def setup_for(params: Mapping[str, Any]):
    """The chapter's seeded sample (subjects, known and held-out items, truth)."""
    return _setup(params["n_subjects"], params["n_test_per_domain"], params["n_known_per_domain"], params["seed"])


def method_for(task: str, meta: Mapping[str, Any]):
    """The chapter's method object whose system prompt the task uses (it is never given a model)."""
    if task == "papi_nochange":
        return NoChange(engine=None)
    convention = str(meta.get("convention", "corrected")).strip().lower()
    if convention not in CONVENTIONS:
        raise TaskInputError(f"unknown convention {meta.get('convention')!r}; valid: {', '.join(CONVENTIONS)}")
    return FewShot(engine=None, convention=convention)


def _docs(task: str, meta: Mapping[str, Any]):
    from datasets import Dataset, DatasetDict

    params = sample_parameters(meta)
    tokenizer = model_tokenizer(meta, required=True, task=task)
    renderer = Renderer.for_meta(tokenizer, meta)
    method = method_for(task, meta)
    setup = setup_for(params)
    cue = papi_prompts.answer_cue(tokenizer)
    record = sample_record({**params, "method": method.name})
    docs = []
    for subject in setup.subjects:
        method.fit(subject, setup.known)
        for item in setup.test:
            asked = [papi_prompts.prompts([item], method.system, order, cue)[0] for order in ORDERS]
            stored = subject.answers[item.number]
            agreement = stored_to_agreement(stored, item.sign)
            docs.append({"task": task, "method": method.name, "subject": subject.case, "item": item.number,
                         "domain": item.domain, "sign": item.sign, "stored": stored,
                         "agreement": -1 if agreement is None else agreement, "sample": record,
                         **prompt_fields(asked, list(ORDERS), renderer)})
    return DatasetDict({"test": Dataset.from_list(docs)})


def nochange_docs(**meta: Any):
    """lm-eval dataset of ``papi_nochange``: PAlign's default system prompt, every subject x held-out item."""
    return _docs("papi_nochange", meta)


def fewshot_docs(**meta: Any):
    """lm-eval dataset of ``papi_fewshot``: the subject's known answers as the system prompt."""
    return _docs("papi_fewshot", meta)


# --------------------------------------------------------------------------------------------------
# Per-document results and the Score

def answer(doc: Mapping, loglikelihoods: Sequence[float]) -> dict:
    """The chapter's answer to one item (``persona.papi.methods.answering.Answers``): per-order option probabilities,
    their mean over orders, the chosen agreement (1..5) and the expected one, the label mass."""
    raw = option_raw(doc, loglikelihoods)
    by_order = normalised(raw)
    probs = mean_over_orders(list(by_order))
    missing = bool(np.isnan(probs).any())
    predicted = float("nan") if missing else float(OPTION_AGREEMENT[int(np.argmax(probs))])
    return {"raw": raw, "by_order": by_order, "probs": probs, "predicted": predicted,
            "expected": float(probs @ OPTION_AGREEMENT), "label_mass": float(raw.sum(axis=1).mean())}


def likelihood_results(doc: Mapping, results: Sequence) -> dict:
    """lm-eval metrics of one document: the record both Scores are computed from, and the label mass."""
    got = answer(doc, [r[0] for r in results])
    agreement = float("nan") if doc["agreement"] < 0 else float(doc["agreement"])
    record = (int(doc["subject"]), int(doc["item"]), doc["domain"], got["predicted"], int(doc["stored"]), agreement)
    return {"score": record, "score_paper": record, "label_mass": got["label_mass"]}


def score(records: Sequence[Sequence], convention: str) -> float:
    """The paper's Score over the documents' records (``persona.papi.metrics``: per subject and domain the mean
    absolute error, averaged over subjects, summed over the five domains)."""
    frame = pd.DataFrame([tuple(r) for r in records], columns=list(RECORD)).assign(method="harness")
    truth = frame[["subject", "item", "domain", "stored", "agreement"]]
    per_subject = metrics.subject_domain_mae(frame[["method", "subject", "item", "predicted"]], truth, convention)
    table = metrics.summarize(per_subject, n_boot=0)
    return float(table.loc[table["domain"] == metrics.SCORE, "mae"].iloc[0])


def score_corrected(records: Sequence[Sequence]) -> float:
    return score(records, "corrected")


def score_paper(records: Sequence[Sequence]) -> float:
    return score(records, "paper")


def prediction_row(doc: Mapping, loglikelihoods: Sequence[float]) -> dict:
    """The chapter's prediction row (``Answers.frame``): predicted, expected, label mass, p5..p1 and per order."""
    got = answer(doc, loglikelihoods)
    row = {"method": doc["method"], "subject": int(doc["subject"]), "item": int(doc["item"]),
           "predicted": got["predicted"], "expected": got["expected"], "label_mass": got["label_mass"]}
    for k in range(5):
        row[f"p{5 - k}"] = got["probs"][k]
    for o, order in enumerate(doc["orders"]):
        for k in range(5):
            row[f"p{5 - k}_{ORDER_TAGS[order]}"] = got["by_order"][o, k]
            row[f"cf{5 - k}_{ORDER_TAGS[order]}"] = float("nan")
    return row
