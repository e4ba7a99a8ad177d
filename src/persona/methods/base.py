"""The one interface every PAPI alignment method implements, and the shared way LLM methods answer.

A method is fitted on one subject's known answers (the IPIP-NEO-120 items) and then answers other
items. The experiment loop only sees this protocol, so no-change, few-shot, P^2, PAS, DPO and the
reference predictors are interchangeable.

LLM methods answer by **likelihood**: the engine's next-token probabilities of the option letters,
renormalised over the five options. Wrapping the engine in ``GenerationScorer`` switches every method to
**generation** (greedy text, strict parser) without changing them. Small models' answers are dominated by letter position, so
every item is asked in both option orders (A = Very Accurate first, and reversed) and the two
identity-order distributions are averaged before taking the most likely option.

The assistant turn starts with the answer cue ``(``: the options read "(A). Very Accurate", and a chat
model opens its reply with "(" (SmolLM2-135M's most likely first token), so
without the cue the letter probabilities would be read at a position where the model is not yet choosing.
With the cue the scored distribution is the one a generated "(A)" answer is drawn from. PAlign generates
the answer instead; the alignment chapter measures the letter mass with and without the cue.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import pandas as pd

from persona.engine import PAPI_OPTIONS, PAPI_TEMPLATE, MCItem, build_prompt, order_permutation
from persona.engine import PAPI_SYSTEM_PROMPT, papi_fewshot_system_from_values
from persona.engine.scoring import ScoreResult
from persona.papi import Convention, Item, Subject, agreement, shown_value

#: Agreement value of each option in identity order (Very Accurate .. Very Inaccurate).
OPTION_AGREEMENT = np.array([5, 4, 3, 2, 1])
ORDERS: tuple[str, ...] = ("original", "reversed")
#: Text the assistant turn starts with before the option letter (see the module docstring).
ANSWER_CUE = "("
#: PAlign's default system prompt (used without a persona and for the PAS contrast prompts).
DEFAULT_SYSTEM = PAPI_SYSTEM_PROMPT


@dataclass
class Answers:
    """A method's answers to ``items``: option probabilities in identity order and derived choices."""

    items: tuple[int, ...]  # item numbers
    probs: np.ndarray  # (n_items, 5): P(Very Accurate) .. P(Very Inaccurate)
    info: dict = field(default_factory=dict)  # method details to record (alpha chosen, steps, ...)
    ticks: np.ndarray | None = None  # explicit ticks (reference predictors); else argmax of probs
    mass: np.ndarray | None = None  # (n_items,) next-token mass on the option letters, mean over orders

    @property
    def agreement(self) -> np.ndarray:
        """The chosen option as agreement 1..5 (5 = Very Accurate): argmax of the probabilities.

        A row of NaN probabilities (generation mode: no order gave an option) is no answer: NaN, which the
        metrics leave out.
        """
        if self.ticks is not None:
            return self.ticks
        missing = np.isnan(self.probs).any(axis=1)
        choice = OPTION_AGREEMENT[np.argmax(np.nan_to_num(self.probs, nan=-1.0), axis=1)]
        return np.where(missing, np.nan, choice) if missing.any() else choice

    @property
    def expected(self) -> np.ndarray:
        """Probability-weighted mean agreement (a smoother summary, reported beside the argmax)."""
        return self.probs @ OPTION_AGREEMENT

    def frame(self, **columns) -> pd.DataFrame:
        """Tidy rows (one per item): ``predicted`` = chosen agreement (``persona.metrics`` input),
        ``expected``, ``p5..p1`` (p5 = P(Very Accurate)) and ``label_mass`` (NaN without a model), plus
        ``columns`` and ``info``."""
        out = pd.DataFrame({"item": list(self.items), "predicted": self.agreement, "expected": self.expected})
        out["label_mass"] = self.mass if self.mass is not None else np.nan
        for k in range(5):
            out[f"p{5 - k}"] = self.probs[:, k]  # p5 = P(Very Accurate)
        for key, value in {**columns, **self.info}.items():
            out[key] = value
        return out


@runtime_checkable
class Method(Protocol):
    """Fit on one subject's known answers, then answer items (agreement 1..5 and option probabilities)."""

    name: str

    def fit(self, subject: Subject, known: Sequence[Item]) -> None: ...

    def answer(self, items: Sequence[Item]) -> Answers: ...


# --------------------------------------------------------------------------- prompts


def few_shot_system(subject: Subject, items: Sequence[Item], convention: Convention) -> str:
    """PAlign's few-shot block: "Here are some of your behaviors ...;" + "text:label" joined by ";".

    ``paper`` shows the stored value (reverse-keyed items inverted, 0 as "Unknown") exactly as the
    original code; ``corrected`` shows what the subject ticked and leaves missing answers out.
    """
    pairs = [(item.text, shown_value(subject, item, convention)) for item in items]
    return papi_fewshot_system_from_values((text, value) for text, value in pairs if value is not None)


def label_values(subject: Subject, items: Sequence[Item], convention: Convention) -> np.ndarray:
    """The subject's answers to ``items`` on the agreement scale as a method is allowed to read them.

    ``paper``: the stored value (what PAlign uses as agreement; 0 = missing); ``corrected``: the true
    agreement, 0 for missing. Used for PAS probe labels and DPO preference pairs.
    """
    if convention == "paper":
        return np.array([subject.answers[i.number] for i in items])
    return np.array([agreement(subject, i) or 0 for i in items])


def papi_mc_item(item: Item):
    """The engine's multiple-choice item for a PAPI item (options in identity order)."""
    return MCItem(stem=item.text, options=PAPI_OPTIONS)


def papi_prompts(items: Sequence[Item], system: str | None, order: str, cue: str = ANSWER_CUE):
    """Engine prompts for ``items`` in one option order with one system prompt, the answer cue after them."""
    perm = order_permutation(5, order)
    return [build_prompt(papi_mc_item(item), PAPI_TEMPLATE, system=system, permutation=perm, assistant_prefix=cue)
            for item in items]


def score_items(engine, items: Sequence[Item], system: str | None, orders: Sequence[str] = ORDERS,
                cue: str = ANSWER_CUE) -> Answers:
    """Likelihood answers averaged over option orders (identity-order probabilities, mean over orders).

    All orders go to the engine in one call, so the shared system prefix is encoded once for all of them.
    """
    if not items:
        return Answers((), np.zeros((0, 5)), mass=np.zeros(0))
    prompts = [p for order in orders for p in papi_prompts(items, system, order, cue)]
    result = engine.score(prompts)
    probs = np.asarray(result.probs, dtype=np.float64).reshape(len(orders), len(items), -1)
    mass = np.asarray(result.mass, dtype=np.float64).reshape(len(orders), len(items))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all orders unanswered (generation): NaN row
        mean = np.nanmean(probs, axis=0)
    return Answers(tuple(i.number for i in items), mean, mass=mass.mean(axis=0))


class GenerationScorer:
    """Generation mode: an engine stand-in whose ``score`` generates, parses and returns one-hot answers.

    Every method answers through ``engine.score``, so wrapping the engine switches all of them from
    likelihood to generation without touching them. A prompt's answer is greedy text parsed by the
    engine's strict parser (a refusal or unparseable text is no answer: a NaN row, ``mass`` 0); PAlign's
    regex is ``parser="paper"``. Everything else (model, tokenizer, rendering) is the wrapped engine's.
    """

    def __init__(self, engine, *, option_texts: Sequence[str] = PAPI_OPTIONS, max_new_tokens: int = 8,
                 parser: str = "strict") -> None:
        object.__setattr__(self, "engine", engine)
        object.__setattr__(self, "option_texts", tuple(option_texts))
        object.__setattr__(self, "max_new_tokens", max_new_tokens)
        object.__setattr__(self, "parser", parser)

    def __getattr__(self, name: str):
        return getattr(self.engine, name)

    def __setattr__(self, name: str, value) -> None:  # e.g. DPO puts the unloaded model back
        setattr(self.engine, name, value)

    def score(self, prompts, *, progress: bool = False) -> ScoreResult:
        result = self.engine.answer(prompts, max_new_tokens=self.max_new_tokens, parser=self.parser,
                                    option_texts=[self.option_texts] * len(prompts))
        probs = np.full((len(prompts), len(self.option_texts)), np.nan)
        for row, choice in enumerate(result.choice):
            if choice >= 0:
                probs[row] = 0.0
                probs[row, choice] = 1.0
        answered = (~np.isnan(probs).any(axis=1)).astype(float)
        return ScoreResult(probs=probs, mass=answered, raw=np.nan_to_num(probs))


class ReferenceMethod:
    """Adapter: a ``persona.reference`` predictor (no language model) behind the ``Method`` interface.

    The tick is kept as predicted; ``probs`` put all mass on the nearest option so that frames of
    reference and LLM methods have the same columns.
    """

    def __init__(self, predictor, name: str | None = None) -> None:
        self.predictor = predictor
        self.name = name or f"ref:{predictor.name}"
        self.subject: Subject | None = None

    def fit(self, subject: Subject, known: Sequence[Item]) -> None:
        self.subject = subject  # the predictors read the known answers from the subject themselves

    def answer(self, items: Sequence[Item]) -> Answers:
        if self.subject is None:
            raise RuntimeError("fit() first")
        predicted = self.predictor.predict(self.subject, items)
        ticks = np.array([predicted[i.number] for i in items], dtype=float)
        probs = np.zeros((len(items), 5))
        probs[np.arange(len(items)), 5 - np.clip(np.rint(ticks), 1, 5).astype(int)] = 1.0
        return Answers(tuple(i.number for i in items), probs, ticks=ticks)
