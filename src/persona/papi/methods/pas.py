"""PAS as a method: contrast activations (once per model), per-subject fit, alpha selection, and the
positive control that checks the steering moves answers at all.

Contrast prompts (``Contrast``), subject-independent, read at the last token:

``content`` (default)
    every known item asked in both option orders, with the same answer cue as the test prompts, once
    answered with the letter of "Very Accurate" and once with the letter of "Very Inaccurate". The
    variants are labelled by content (agree / disagree), so the letter differs within a class and a
    direction cannot be just "the first letter".
``palign``
    PAlign's construction: the original order only, no cue, the item text not lower-cased, answered "A"
    (agree) and "E" (disagree). Letter and content coincide.

Protocols (``protocol=``):

``test-tuned``
    PAlign's protocol, as its ``process_pas``: probes and directions from all known items, then every alpha of the
    grid is evaluated **on the held-out test items** and the best test Score is kept. Because alpha = 0
    (few-shot alone) is in the grid, the reported result can never be worse than few-shot on the test
    metric: the selection itself uses the test answers.
``honest``
    alpha is chosen without the test answers: the known items are split (seeded, per domain) into a
    fitting part and a validation part; probes, directions and the few-shot prompt use the fitting
    part, each alpha is scored on the validation part (by ``criterion``), the best alpha is kept, and the
    directions and prompt are then rebuilt from all known items for answering (the usual refit).

K, the number of steered heads, is a share of all heads (``k_share``; PAlign's 24 of Llama-3-8B's 1,024
heads is 2.3%). ``few_shot=False`` steers with PAlign's default system prompt instead of the subject's
answers. ``convention`` decides what the method may read: ``paper`` uses the stored values as if they were
agreement (PAlign's behaviour, inverted on reverse-keyed items), ``corrected`` the subject's real
agreement; probe labels and the prompt both follow it. Every alpha evaluated is recorded in ``trace`` with
the optimisation time spent so far (the cost chapter's quality-against-time curve).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from persona.engine import Template, build_prompt, order_permutation
from persona.papi.data import OPTIONS, Convention, Item, Subject
from persona.papi.methods.answering import (
    LIKELIHOOD, OPTION_AGREEMENT, AnswerMode, Answers, few_shot_system, label_values, ask_items, selection_loss, split_known,
)
from persona.papi.methods.base import FitTrace, Method
from persona.papi.methods.pas_core import PASDirections, fit_pas, head_count
from persona.papi.prompts import (
    CONTRAST_TEMPLATE, DEFAULT_SYSTEM, ORDER_TAGS, ORDERS, TEMPLATE, answer_completion, answer_cue, mc_item,
)
from persona.steering import capture_last_token, find_head_layout, steer
from persona.timing import StageTimer, maybe_stage

ALPHAS: tuple[float, ...] = (0, 1, 2, 4, 6, 8)
K_SHARE = 24 / 1024  # PAlign's K on Llama-3-8B-Instruct (32 layers x 32 heads)
AGREE, DISAGREE = 0, len(OPTIONS) - 1  # option identities: Very Accurate, Very Inaccurate


@dataclass(frozen=True)
class Contrast:
    """How the subject-independent contrast prompts are built (see the module docstring)."""

    name: str
    orders: tuple[str, ...]
    cue: str  # "auto": ``answer_cue`` of the tokenizer, as the test prompts; "" with a bare letter: PAlign's
    template: Template
    bare_letter: bool = False  # the answer is the letter alone (PAlign's), not the rest of "(A" after the cue

    @property
    def agree(self) -> tuple[bool, ...]:
        """Per variant (order by order: agree, then disagree): does it answer with the agreeing option?"""
        return (True, False) * len(self.orders)

    def texts(self, engine, item: Item) -> list[str]:
        """The rendered prompt + answer letter of each variant, in ``agree`` order."""
        cue = answer_cue(engine.tokenizer) if self.cue == "auto" else self.cue
        out = []
        for order in self.orders:
            prompt = build_prompt(mc_item(item), self.template, system=DEFAULT_SYSTEM,
                                  permutation=order_permutation(len(OPTIONS), order), assistant_prefix=cue)
            text = engine.render(prompt)
            position = {identity: pos for pos, identity in enumerate(prompt.identity_of_position)}
            letters = [prompt.labels[position[identity]] for identity in (AGREE, DISAGREE)]
            out += [text + (letter if self.bare_letter else answer_completion(letter, cue)) for letter in letters]
        return out


CONTENT = Contrast("content", ORDERS, "auto", TEMPLATE)
PALIGN = Contrast("palign", ("original",), "", CONTRAST_TEMPLATE, bare_letter=True)
CONTRASTS = {c.name: c for c in (CONTENT, PALIGN)}


def contrast_sequences(engine, items: Sequence[Item], contrast: Contrast = CONTENT) -> list[list[int]]:
    """Token ids of every variant of every item, item by item; the answer letter is the last token.

    (PAlign's Llama-3 path cut that letter off with ``[:-5]``, making A- and E-prompts identical; we keep it.)
    """
    return [list(engine.tokenizer(text, add_special_tokens=not engine.use_chat_template)["input_ids"])
            for item in items for text in contrast.texts(engine, item)]


def contrast_activations(engine, items: Sequence[Item], contrast: Contrast = CONTENT, *,
                         batch_size: int = 8) -> np.ndarray:
    """Subject-independent PAS activations ``(n_items, V, L, H, D)`` (V = 2 per order), computed afresh.

    Computed once per model and run, never read from a disk cache, so their cost is measured every time.
    """
    sequences = contrast_sequences(engine, items, contrast)
    flat = capture_last_token(engine.model, sequences, pad_id=engine.pad_id, batch_size=batch_size)
    return flat.reshape(len(items), len(contrast.agree), *flat.shape[1:])


class PAS(Method):
    """Personality Activation Search with a chosen protocol; see the module docstring.

    ``activations`` may be a callable that computes them on first use, so a run whose PAS results are
    already stored does not pay for them.
    """

    def __init__(
        self,
        engine,
        activations: np.ndarray | Callable[[], np.ndarray],
        activation_items: Sequence[Item],
        *,
        contrast: Contrast = CONTENT,
        protocol: str = "honest",
        test_items: Sequence[Item] | None = None,
        few_shot: bool = True,
        convention: Convention = "corrected",
        alphas: Sequence[float] = ALPHAS,
        k_share: float = K_SHARE,
        seed: int = 0,
        val_fraction: float = 0.2,
        criterion: str = "expected",
        timer: StageTimer | None = None,
        mode: AnswerMode = LIKELIHOOD,
    ) -> None:
        if protocol not in ("test-tuned", "honest"):
            raise ValueError(f"protocol must be 'test-tuned' (PAlign's) or 'honest', got {protocol!r}")
        if protocol == "test-tuned" and test_items is None:
            raise ValueError("the test-tuned protocol (PAlign's) selects alpha on the test items: pass test_items")
        if not alphas or 0 not in alphas:
            raise ValueError(f"the alpha grid must contain 0 (no steering), got {list(alphas)!r}")
        self.engine = engine
        self.layout = find_head_layout(engine.model)
        self._activations = activations
        self.row = {item.number: r for r, item in enumerate(activation_items)}
        self.row_items, self._warm = list(activation_items), False
        self.contrast, self.protocol, self.test_items, self.few_shot = contrast, protocol, test_items, few_shot
        self.convention, self.alphas, self.seed = convention, tuple(alphas), seed
        self.k = head_count(k_share, self.layout.n_layers * self.layout.n_heads)
        self.val_fraction, self.criterion = val_fraction, criterion if protocol == "honest" else "score"
        self.timer, self.mode = timer, mode
        self.name = f"pas[{protocol}{'' if few_shot else ',no-fs'},{convention}]"
        self.directions: PASDirections | None = None
        self.system: str | None = None
        self.alpha: float | None = None
        self.trace: list[dict] = []
        self._answers: dict[tuple[tuple[int, ...], float], Answers] = {}

    def prepare(self) -> None:
        """Once per model, outside any subject's fit: compute the subject-independent activations, and warm the
        engine up (its label token ids, the first forward passes) on a few known items, so that the first
        subject's timed fit does not carry one-time costs the others do not (in a cpu build, alpha 0 of the first
        subject took 66 s against about 10 s for the others)."""
        _ = self.activations
        if not self._warm:
            ask_items(self.engine, list(self.row_items[:2]), DEFAULT_SYSTEM, self.mode)
            self._warm = True

    # -- pieces
    @property
    def activations(self) -> np.ndarray:
        if callable(self._activations):
            self._activations = self._activations()
        return self._activations

    def _fit_directions(self, subject: Subject, items: Sequence[Item]) -> PASDirections:
        acts = self.activations[[self.row[i.number] for i in items]]
        return fit_pas(acts, label_values(subject, items, self.convention), agree=self.contrast.agree, k=self.k,
                       seed=self.seed)

    def _system(self, subject: Subject, items: Sequence[Item]) -> str:
        return few_shot_system(subject, items, self.convention) if self.few_shot else DEFAULT_SYSTEM

    def _score(self, items: Sequence[Item], system: str, directions: PASDirections, alpha: float) -> Answers:
        with steer(self.engine.model, directions.shifts(alpha), layout=self.layout):
            return ask_items(self.engine, items, system, self.mode)

    def _sweep(self, subject, items, system, directions, where: str) -> tuple[float, dict[float, Answers]]:
        answers, losses = {}, {}
        for alpha in self.alphas:
            answers[alpha] = self._score(items, system, directions, alpha)
            losses[alpha] = selection_loss(answers[alpha], subject, items, self.convention, self.criterion)
            self._record(alpha=alpha, loss=losses[alpha], on=where)
        best = min(self.alphas, key=lambda a: (losses[a], self.alphas.index(a)))  # ties -> earlier in grid
        return best, answers

    def _record(self, **row) -> None:
        self._log.record(**row, criterion=self.criterion)

    def _stage(self, stage: str, subject: Subject):
        return maybe_stage(self.timer, f"pas/{stage}", method=self.name, subject=subject.case)

    # -- Method interface
    def fit(self, subject: Subject, known: Sequence[Item]) -> None:
        self._answers.clear()
        self._log = FitTrace()
        self.trace = self._log.rows
        self._case = subject.case
        if self.protocol == "test-tuned":
            with self._stage("probes", subject):
                self.directions = self._fit_directions(subject, known)
            self.system = self._system(subject, known)
            with self._stage("alpha-search", subject):
                self.alpha, answers = self._sweep(subject, self.test_items, self.system, self.directions, "test")
            key = tuple(i.number for i in self.test_items)
            for alpha, ans in answers.items():
                self._answers[(key, alpha)] = ans
        else:
            fit_items, val_items = split_known(known, val_fraction=self.val_fraction, seed=self.seed + subject.case)
            with self._stage("probes", subject):
                directions = self._fit_directions(subject, fit_items)
            with self._stage("alpha-search", subject):
                self.alpha, _ = self._sweep(subject, val_items, self._system(subject, fit_items), directions,
                                            "validation")
            if self.alpha == 0:  # no steering: the directions are never used, skip the refit
                self.directions = directions
            else:
                with self._stage("probes-refit", subject):
                    self.directions = self._fit_directions(subject, known)
            self.system = self._system(subject, known)

    def state(self) -> pd.DataFrame:
        """What the fit chose, to store beside the predictions: the heads and directions with the alpha.

        (The few-shot prompt is rebuilt from the subject's known answers.) ``restore`` reads it back.
        """
        if self.directions is None or self.alpha is None:
            raise RuntimeError("fit() first")
        return self.directions.frame().assign(alpha=self.alpha)

    def restore(self, state: pd.DataFrame, subject: Subject, known: Sequence[Item]) -> None:
        """Set the fitted state of ``subject`` from a stored ``state()`` instead of fitting again."""
        self._answers.clear()
        self._case = subject.case
        self.alpha = float(state["alpha"].iloc[0])
        self.directions = PASDirections.from_frame(state.drop(columns="alpha"))
        self.system = self._system(subject, known)

    def answer(self, items: Sequence[Item]) -> Answers:
        if self.directions is None or self.alpha is None:
            raise RuntimeError("fit() first")
        key = (tuple(i.number for i in items), self.alpha)
        if key not in self._answers:
            with maybe_stage(self.timer, "pas/answer", method=self.name, subject=self._case):
                self._answers[key] = self._score(items, self.system, self.directions, self.alpha)
        ans = self._answers[key]
        ans.info = {"alpha": self.alpha, "n_heads": len(self.directions.heads)}
        return ans


# ------------------------------------------------------------------------------------ positive control


def agree_directions(activations: np.ndarray, contrast: Contrast, k: int, seed: int = 0) -> PASDirections:
    """The direction of *agreeing*: PAS fitted for a subject who agrees with every item (agreeing
    variants labelled 1), so steering along it with alpha > 0 should raise the answers' agreement."""
    return fit_pas(activations, np.full(len(activations), 5), agree=contrast.agree, k=k, seed=seed)


def dose_response(engine, items: Sequence[Item], directions: PASDirections, alphas: Sequence[float], *,
                  system: str = DEFAULT_SYSTEM, mode: AnswerMode = LIKELIHOOD) -> pd.DataFrame:
    """Expected answer (agreement 1..5, probability-weighted) per alpha, item and option order.

    The positive control of the steering: with an *agree* direction, the expected answer should rise with
    alpha in both orders. A direction that only moves one order moves a letter, not the content.
    """
    layout = find_head_layout(engine.model)
    rows = []
    for alpha in alphas:
        with steer(engine.model, directions.shifts(alpha), layout=layout):
            answers = ask_items(engine, items, system, mode)
        frame = answers.frame(alpha=alpha)
        for order in ORDER_TAGS:
            if order in answers.by_order:
                expected = answers.by_order[order] @ OPTION_AGREEMENT
                rows.append(frame[["item"]].assign(alpha=alpha, order=order, expected=expected))
        rows.append(frame[["item", "expected"]].assign(alpha=alpha, order="both"))
    return pd.concat(rows, ignore_index=True)
