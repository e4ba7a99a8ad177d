"""From lm-eval's answers back to the engine's numbers: the requests a document makes, and what they give.

A likelihood document asks, for each option order, the base (the prompt's trailing whitespace alone, when
it has some) and every continuation of every label (``persona.harness.docs``). lm-eval returns one
log-likelihood per request, in the order asked; :func:`option_raw` turns them into the engine's ``raw``
(``persona.engine.scoring.OptionProbs``): per order, the next-token probability of each option's label
summed over its tokens, columns in identity order. A generation document asks one greedy answer, which
:func:`generated_outcome` reads with the engine's strict parser.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from persona.engine.parsing import parse_answer


def request_plan(doc: Mapping) -> list[tuple[int, int | None, str]]:
    """``(order index, label index or None for the base, continuation text)`` of each request, in order."""
    plan: list[tuple[int, int | None, str]] = []
    for o in range(len(doc["orders"])):
        if doc["base"][o]:
            plan.append((o, None, ""))
        for k, texts in enumerate(doc["continuations"][o]):
            plan.extend((o, k, text) for text in texts)
    return plan


def option_raw(doc: Mapping, loglikelihoods: Sequence[float]) -> np.ndarray:
    """(n_orders, n_options) label probabilities in identity order, as the engine's ``raw``.

    Each label's tokens add up; a token's probability is exp(its continuation's log-likelihood minus the base's):
    both share the context and the trailing whitespace, so what is left is the token's log-probability after
    the whole prompt.
    """
    plan = request_plan(doc)
    if len(plan) != len(loglikelihoods):
        raise ValueError(f"document asked {len(plan)} requests, got {len(loglikelihoods)} answers")
    n_orders, n_options = len(doc["orders"]), len(doc["labels"])
    base = np.zeros(n_orders)
    for (o, k, _), ll in zip(plan, loglikelihoods):
        if k is None:
            base[o] = ll
    presented = np.zeros((n_orders, n_options))
    for (o, k, _), ll in zip(plan, loglikelihoods):
        if k is not None:
            presented[o, k] += math.exp(ll - base[o])
    raw = np.empty_like(presented)
    for o in range(n_orders):
        raw[o, list(doc["permutations"][o])] = presented[o]
    return raw


def normalised(raw: np.ndarray) -> np.ndarray:
    """Rows renormalised over the options (the engine's ``probs``); a row without mass becomes NaN."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return raw / raw.sum(axis=-1, keepdims=True)


def generated_outcome(doc: Mapping, text: str) -> int | str:
    """The greedy answer read as ``Engine.answer`` reads it (strict parser, option texts shown in their
    presented order): an option index in identity order, ``"refused"`` or ``"unparseable"``."""
    ident = list(doc["permutations"][0])
    shown = [doc["options"][j] for j in ident]
    parsed = parse_answer(text, tuple(doc["labels"]), parser="strict", option_texts=shown)
    return ident[parsed] if isinstance(parsed, int) else parsed


def nanmean(values: Sequence[float]) -> float:
    """Mean of the values that are numbers (an undetermined item is left out); NaN when none is."""
    array = np.asarray([v for v in values if v is not None], dtype=float)
    array = array[np.isfinite(array)]
    return float(array.mean()) if array.size else float("nan")
