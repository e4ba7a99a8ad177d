"""PAS as a method: contrast activations (once per model, cached), per-subject fit, alpha selection.

Protocols (``protocol=``):

``paper``
    as PAlign's ``process_pas``: probes and directions from all known items, then every alpha of the
    grid is evaluated **on the held-out test items** and the best test score is kept. Because alpha = 0
    (few-shot alone) is in the grid, the reported result can never be worse than few-shot on the test
    metric: the selection itself uses the test answers.
``honest``
    alpha is chosen without the test answers: the known items are split (seeded, per domain) into a
    fitting part and a validation part; probes, directions and the few-shot prompt use the fitting
    part, each alpha is scored on the validation part, the best alpha is kept, and the directions and
    prompt are then rebuilt from all known items for answering (the usual refit after model selection).

``few_shot=False`` steers with PAlign's default system prompt instead of the subject's answers (PAS
without the few-shot prompt). ``convention`` decides what the method may read: ``paper`` uses the
stored values as if they were agreement (PAlign's behaviour, inverted on reverse-keyed items),
``corrected`` uses the subject's real agreement; probe labels and the prompt both follow it.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from persona.engine import build_prompt
from persona.papi.data import Convention, Item, Subject
from persona.papi.methods.base import (
    LIKELIHOOD,
    AnswerMode,
    Answers,
    few_shot_system,
    label_values,
    score_items,
    selection_score,
    split_known,
)
from persona.papi.methods.pas_core import PASDirections, fit_pas
from persona.papi.prompts import CONTRAST_TEMPLATE, DEFAULT_SYSTEM, mc_item
from persona.paths import cache_dir
from persona.steering import capture_last_token, find_head_layout, steer
from persona.timing import StageTimer, maybe_stage

ALPHAS: tuple[float, ...] = (0, 1, 2, 4, 6, 8)


def contrast_sequences(engine, items: Sequence[Item]) -> list[list[int]]:
    """Token ids of each item's prompt answered "A" and answered "E": ``[A_0, E_0, A_1, E_1, ...]``.

    The prompt is the PAPI question in the original option order (A = Very Accurate) under PAlign's
    default system prompt, rendered exactly as the engine renders a question; the answer letter is
    the last token. (PAlign's Llama-3 path cut that letter off with ``[:-5]``; we keep it.)
    """
    out = []
    for item in items:
        text = engine.render(build_prompt(mc_item(item), CONTRAST_TEMPLATE, system=DEFAULT_SYSTEM))
        for letter in ("A", "E"):
            ids = engine.tokenizer(text + letter, add_special_tokens=not engine.use_chat_template)["input_ids"]
            out.append(list(ids))
    return out


def contrast_activations(
    engine, items: Sequence[Item], *, batch_size: int = 8, cache: bool = True, model_key: str | None = None
) -> np.ndarray:
    """Subject-independent PAS activations ``(n_items, 2, L, H, D)``, cached on disk.

    The cache key hashes the model identity (name, dtype, a weight checksum) and the exact token ids,
    so a changed prompt or model never reuses stale activations.
    """
    model = engine.model
    sequences = contrast_sequences(engine, items)
    layout = find_head_layout(model)
    digest = hashlib.sha256()
    first = layout.modules[0].weight
    ident = model_key or f"{getattr(model.config, '_name_or_path', '')}|{first.dtype}|{float(first.detach().double().sum()):.6e}"
    digest.update(ident.encode())
    for seq in sequences:
        digest.update(np.asarray(seq, dtype=np.int64).tobytes())
    path = cache_dir() / "pas" / f"{digest.hexdigest()[:20]}.npy"
    if cache and path.exists():
        return np.load(path)
    flat = capture_last_token(model, sequences, pad_id=engine.pad_id, batch_size=batch_size, layout=layout)
    acts = flat.reshape(len(items), 2, *flat.shape[1:])
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".partial.npy")
        np.save(tmp, acts)
        tmp.replace(path)
    return acts


class PAS:
    """Personality Activation Search with a chosen protocol; see the module docstring."""

    def __init__(
        self,
        engine,
        model,
        activations: np.ndarray,
        activation_items: Sequence[Item],
        *,
        protocol: str = "honest",
        test_items: Sequence[Item] | None = None,
        few_shot: bool = True,
        convention: Convention = "corrected",
        alphas: Sequence[float] = ALPHAS,
        k: int = 24,
        seed: int = 0,
        val_fraction: float = 0.2,
        timer: StageTimer | None = None,
        mode: AnswerMode = LIKELIHOOD,
    ) -> None:
        if protocol not in ("paper", "honest"):
            raise ValueError(f"protocol must be 'paper' or 'honest', got {protocol!r}")
        if protocol == "paper" and test_items is None:
            raise ValueError("the paper protocol selects alpha on the test items: pass test_items")
        self.engine, self.model = engine, model
        self.layout = find_head_layout(model)
        self.activations = activations
        self.row = {item.number: r for r, item in enumerate(activation_items)}
        self.protocol, self.test_items, self.few_shot = protocol, test_items, few_shot
        self.convention, self.alphas, self.k, self.seed = convention, tuple(alphas), k, seed
        self.val_fraction = val_fraction
        self.timer = timer
        self.mode = mode
        self.name = f"pas[{protocol}{'' if few_shot else ',no-fs'},{convention}]"
        self.directions: PASDirections | None = None
        self.system: str | None = None
        self.alpha: float | None = None
        self.sweep: dict[float, float] = {}
        self._answers: dict[tuple[tuple[int, ...], float], Answers] = {}

    # -- pieces
    def _fit_directions(self, subject: Subject, items: Sequence[Item]) -> PASDirections:
        acts = self.activations[[self.row[i.number] for i in items]]
        return fit_pas(acts, label_values(subject, items, self.convention), k=self.k, seed=self.seed)

    def _system(self, subject: Subject, items: Sequence[Item]) -> str:
        return few_shot_system(subject, items, self.convention) if self.few_shot else DEFAULT_SYSTEM

    def _score(self, items: Sequence[Item], system: str, directions: PASDirections, alpha: float) -> Answers:
        with steer(self.model, directions.shifts(alpha), layout=self.layout):
            return score_items(self.engine, items, system, self.mode)

    def _sweep(self, subject, items, system, directions) -> tuple[float, dict[float, Answers]]:
        answers, scores = {}, {}
        for alpha in self.alphas:
            answers[alpha] = self._score(items, system, directions, alpha)
            scores[alpha] = selection_score(answers[alpha], subject, items, self.convention)
        self.sweep = scores
        best = min(self.alphas, key=lambda a: (scores[a], self.alphas.index(a)))  # ties -> earlier in grid
        return best, answers

    def _stage(self, stage: str, subject: Subject):
        return maybe_stage(self.timer, f"pas/{stage}", method=self.name, subject=subject.case)

    # -- Method interface
    def fit(self, subject: Subject, known: Sequence[Item]) -> None:
        self._answers.clear()
        self._case = subject.case
        if self.protocol == "paper":
            with self._stage("probes", subject):
                self.directions = self._fit_directions(subject, known)
            self.system = self._system(subject, known)
            with self._stage("alpha-search", subject):
                self.alpha, answers = self._sweep(subject, self.test_items, self.system, self.directions)
            key = tuple(i.number for i in self.test_items)
            for alpha, ans in answers.items():
                self._answers[(key, alpha)] = ans
        else:
            fit_items, val_items = split_known(known, val_fraction=self.val_fraction, seed=self.seed + subject.case)
            with self._stage("probes", subject):
                directions = self._fit_directions(subject, fit_items)
            with self._stage("alpha-search", subject):
                self.alpha, _ = self._sweep(subject, val_items, self._system(subject, fit_items), directions)
            if self.alpha == 0:  # no steering: the directions are never used, skip the refit
                self.directions = directions
            else:
                with self._stage("probes-refit", subject):
                    self.directions = self._fit_directions(subject, known)
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
