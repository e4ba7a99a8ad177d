"""How LLM methods answer PAPI items: the answer modes, the answers, and the helpers the methods share.

LLM methods answer in one of two modes (``AnswerMode``): by **likelihood**, the engine's next-token
probabilities of the option letters renormalised over the five options, or by **generation**, greedy
text read by a parser (the strict one, or PAlign's regex). Small models' answers are dominated by letter
position, so by default every item is asked in both option orders (A = Very Accurate first, and reversed)
and the two identity-order distributions are averaged before taking the most likely option. Prompts end
with the answer cue of ``persona.papi.prompts``. ``ask_items`` asks a model every item that way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from persona.engine.calibration import mean_over_orders
from persona.papi import metrics, prompts
from persona.papi.data import DOMAINS, OPTIONS, Convention, Item, Subject, agreement, answers_frame, shown_value
from persona.papi.prompts import ORDER_TAGS, ORDERS

#: Agreement value of each option in identity order (Very Accurate .. Very Inaccurate).
OPTION_AGREEMENT = np.array([5, 4, 3, 2, 1])


@dataclass(frozen=True)
class AnswerMode:
    """How answers are read from the model.

    ``kind``: ``"likelihood"`` (option-letter probabilities) or ``"generation"`` (greedy text, then
    ``parser``: ``"strict"`` or ``"letter-window"`` (PAlign's regex); an answer the parser cannot read is no answer).
    ``orders``: the option orders each item is asked in; their identity-order answers are averaged.
    ``cue``: the text the assistant turn starts with; ``"auto"``: ``persona.papi.prompts.answer_cue`` of the
    engine's tokenizer.
    ``calibrate``: also score a content-free question ("N/A") under the same system prompt, template and
    order (likelihood only), so that answers can be calibrated afterwards (Zhao et al. 2021).
    """

    kind: str = "likelihood"
    parser: str = "strict"
    max_new_tokens: int = 8
    orders: tuple[str, ...] = ORDERS
    cue: str = "auto"
    calibrate: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("likelihood", "generation"):
            raise ValueError(f"mode must be 'likelihood' or 'generation', got {self.kind!r}")
        if self.parser not in ("strict", "letter-window"):
            raise ValueError(f"parser must be 'strict' or 'letter-window', got {self.parser!r}")
        if not self.orders or set(self.orders) - set(ORDERS):
            raise ValueError(f"orders must be a non-empty subset of {ORDERS}, got {self.orders!r}")

    @property
    def label(self) -> str:
        """How a reader should call this pipeline in a table."""
        orders = "both orders" if len(self.orders) == 2 else f"{self.orders[0]} order"
        if self.kind == "likelihood":
            return f"likelihood, {orders}"
        return f"greedy generation, {self.parser} parser, {orders}"


LIKELIHOOD = AnswerMode()
#: PAlign's own pipeline: greedy text in the original order only, read by its regex, no answer cue.
PALIGN = AnswerMode(kind="generation", parser="letter-window", orders=("original",), cue="", calibrate=False)


@dataclass
class Answers:
    """A method's answers to ``items``: option probabilities in identity order and derived choices.

    ``by_order[o]`` holds the probabilities from order ``o`` alone; ``probs`` is their mean. ``prior[o]`` is
    the content-free distribution under the same prompt and order (likelihood mode with calibration).
    """

    items: tuple[int, ...]  # item numbers
    probs: np.ndarray  # (n_items, 5): P(Very Accurate) .. P(Very Inaccurate)
    info: dict = field(default_factory=dict)  # method details to record (alpha chosen, steps, ...)
    mass: np.ndarray | None = None  # (n_items,) next-token mass on the option letters, mean over orders
    by_order: dict[str, np.ndarray] = field(default_factory=dict)
    prior: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def agreement(self) -> np.ndarray:
        """The chosen option as agreement 1..5 (5 = Very Accurate): argmax of the probabilities.

        A row of NaN probabilities (generation mode: no order gave an option) is no answer: NaN, which the
        metrics leave out.
        """
        missing = np.isnan(self.probs).any(axis=1)
        choice = OPTION_AGREEMENT[np.argmax(np.nan_to_num(self.probs, nan=-1.0), axis=1)]
        return np.where(missing, np.nan, choice) if missing.any() else choice

    @property
    def expected(self) -> np.ndarray:
        """Probability-weighted mean agreement (a smoother summary, reported beside the argmax)."""
        return self.probs @ OPTION_AGREEMENT

    def frame(self, **columns) -> pd.DataFrame:
        """Tidy rows (one per item): ``predicted`` = chosen agreement (``persona.papi.metrics`` input),
        ``expected``, ``p5..p1`` (p5 = P(Very Accurate)), ``label_mass`` (NaN without a model), the same per
        order (``p5_orig`` ...) and the content-free prior per order (``cf5_orig`` ..., the same on every
        row), plus ``columns`` and ``info``."""
        out = pd.DataFrame({"item": list(self.items), "predicted": self.agreement, "expected": self.expected})
        out["label_mass"] = self.mass if self.mass is not None else np.nan
        for k in range(5):
            out[f"p{5 - k}"] = self.probs[:, k]  # p5 = P(Very Accurate)
        for order, tag in ORDER_TAGS.items():
            for k in range(5):
                out[f"p{5 - k}_{tag}"] = self.by_order[order][:, k] if order in self.by_order else np.nan
                out[f"cf{5 - k}_{tag}"] = self.prior[order][k] if order in self.prior else np.nan
        for key, value in {**columns, **self.info}.items():
            out[key] = value
        return out


# --------------------------------------------------------------------------- prompts and answers


def few_shot_system(subject: Subject, items: Sequence[Item], convention: Convention) -> str:
    """PAlign's few-shot block: "Here are some of your behaviors ...;" + "text:label" joined by ";".

    ``paper`` shows the stored value (reverse-keyed items inverted, 0 as "Unknown") exactly as the
    original code; ``corrected`` shows what the subject ticked and leaves missing answers out.
    """
    pairs = [(item.text, shown_value(subject, item, convention)) for item in items]
    return prompts.fewshot_system((text, value) for text, value in pairs if value is not None)


def label_values(subject: Subject, items: Sequence[Item], convention: Convention) -> np.ndarray:
    """The subject's answers to ``items`` on the agreement scale as a method is allowed to read them.

    ``paper``: the stored value (what PAlign uses as agreement; 0 = missing); ``corrected``: the true
    agreement, 0 for missing. Used for PAS probe labels and DPO preference pairs.
    """
    if convention == "paper":
        return np.array([subject.answers[i.number] for i in items])
    return np.array([agreement(subject, i) or 0 for i in items])


def _generated_probs(engine, asked, mode: AnswerMode) -> tuple[np.ndarray, np.ndarray]:
    """One-hot probabilities (identity order) of generated answers; a row of NaN where none was read."""
    result = engine.answer(asked, max_new_tokens=mode.max_new_tokens, parser=mode.parser,
                           option_texts=[OPTIONS] * len(asked))
    probs = np.full((len(asked), len(OPTIONS)), np.nan)
    for row, choice in enumerate(result.choice):
        if choice >= 0:
            probs[row] = 0.0
            probs[row, choice] = 1.0
    return probs, (~np.isnan(probs).any(axis=1)).astype(float)


def ask_items(engine, items: Sequence[Item], system: str | None, mode: AnswerMode = LIKELIHOOD) -> Answers:
    """Answers to ``items`` in every order of ``mode``, averaged in identity order.

    All orders (and, when calibrating, one content-free question per order) go to the engine in one call,
    so the shared system prefix is encoded once for all of them. In generation mode an item that no order
    answered is a NaN row (``mass`` 0), left out by the metrics; when the orders disagree the answer is split
    between them.
    """
    if not items:
        return Answers((), np.zeros((0, 5)), mass=np.zeros(0))
    cue = prompts.answer_cue(engine.tokenizer) if mode.cue == "auto" else mode.cue
    asked = [p for order in mode.orders for p in prompts.prompts(items, system, order, cue)]
    n_cf = 0
    if mode.kind == "likelihood":
        if mode.calibrate:
            asked += [prompts.content_free_prompt(system, order, cue) for order in mode.orders]
            n_cf = len(mode.orders)
        result = engine.label_probs(asked)
        probs, mass = np.asarray(result.probs, dtype=np.float64), np.asarray(result.mass, dtype=np.float64)
    else:
        probs, mass = _generated_probs(engine, asked, mode)
    n = len(mode.orders) * len(items)
    prior = {order: probs[n + j] for j, order in enumerate(mode.orders)} if n_cf else {}
    probs = probs[:n].reshape(len(mode.orders), len(items), -1)
    mass = mass[:n].reshape(len(mode.orders), len(items))
    return Answers(tuple(i.number for i in items), mean_over_orders(probs), mass=mass.mean(axis=0),
                   by_order=dict(zip(mode.orders, probs)), prior=prior)


def selection_loss(answers: Answers, subject: Subject, items: Sequence[Item], convention: Convention,
                   criterion: str = "score") -> float:
    """What a method minimises on validation items for one subject: the paper's Score (sum over domains of
    the per-domain MAE of the chosen option) or, with ``criterion="expected"``, the same sum for the expected
    answer (continuous, so it rarely ties when a small model answers the middle option everywhere).

    A domain with no readable answer makes the loss infinite: the candidate is inadmissible. (Summing the other
    domains instead would let an alpha whose answers are all unparseable score 0.0 and win. PAlign charges such
    a candidate 1e6, but still scores a domain on whichever of its answers could be read.)"""
    if criterion not in ("score", "expected"):
        raise ValueError(f"criterion must be 'score' or 'expected', got {criterion!r}")
    preds = answers.frame(subject=subject.case, method="selection")
    if criterion == "expected":
        preds["predicted"] = preds["expected"]
    truth = answers_frame([subject], list(items))
    per = metrics.subject_domain_mae(preds[["method", "subject", "item", "predicted"]], truth, convention)
    target = truth["stored"] if convention == "paper" else truth["agreement"]
    scored = sorted(set(truth.loc[target.notna(), "domain"]))  # domains the subject answered
    values = per.reindex(columns=scored).to_numpy(dtype=float)
    if values.size < len(scored) or not np.isfinite(values).all():
        return float("inf")  # a domain the subject answered got no readable answer: inadmissible
    return float(values.sum())


def split_known(items: Sequence[Item], *, val_fraction: float, seed: int) -> tuple[list[Item], list[Item]]:
    """Seeded split of the known items into (fit, validation), the same share taken from each domain."""
    rng = np.random.default_rng(seed)
    fit, val = [], []
    for domain in DOMAINS:
        block = [i for i in items if i.domain == domain]
        n_val = max(1, int(round(len(block) * val_fraction))) if len(block) > 1 and val_fraction > 0 else 0
        chosen = set(rng.choice(len(block), size=n_val, replace=False).tolist()) if n_val else set()
        for j, item in enumerate(block):
            (val if j in chosen else fit).append(item)
    return fit, val
