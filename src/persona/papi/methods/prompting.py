"""Prompt-only alignment methods: no change, few-shot (PAlign's system prompt) and P^2.

They differ only in the system prompt: PAlign's default assistant prompt, the subject's known
answers listed as "text:label", or the subject's P^2 personality paragraph (written by a large model
from the same answers; shipped as ``personality_prompt.json`` in ``Test-set.json`` order).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Sequence

from persona.datafiles import fetch
from persona.papi.data import Convention, Item, Subject
from persona.papi.methods.answering import LIKELIHOOD, AnswerMode, Answers, few_shot_system, ask_items
from persona.papi.methods.base import Method
from persona.papi.prompts import DEFAULT_SYSTEM


class PromptMethod(Method):
    """A method that only chooses a system prompt per subject; subclasses say which (``system_for``)."""

    name = "prompt"

    def __init__(self, engine, mode: AnswerMode = LIKELIHOOD) -> None:
        self.engine = engine
        self.mode = mode
        self.system: str | None = None

    def system_for(self, subject: Subject, known: Sequence[Item]) -> str:
        raise NotImplementedError

    def fit(self, subject: Subject, known: Sequence[Item]) -> None:
        self.system = self.system_for(subject, known)

    def answer(self, items: Sequence[Item]) -> Answers:
        if self.system is None:
            raise RuntimeError("fit() first")
        return ask_items(self.engine, items, self.system, self.mode)


class NoChange(PromptMethod):
    """The model as is, with PAlign's default system prompt; the same answers for every subject."""

    name = "no-change"

    def __init__(self, engine, mode: AnswerMode = LIKELIHOOD) -> None:
        super().__init__(engine, mode)
        self._cache: dict[tuple[int, ...], Answers] = {}

    def system_for(self, subject: Subject, known: Sequence[Item]) -> str:
        return DEFAULT_SYSTEM  # nothing to learn: subject-independent

    def answer(self, items: Sequence[Item]) -> Answers:
        key = tuple(i.number for i in items)
        if key not in self._cache:  # computed once, reused for every subject
            self._cache[key] = ask_items(self.engine, items, DEFAULT_SYSTEM, self.mode)
        return self._cache[key]


class FewShot(PromptMethod):
    """The subject's known answers in the system prompt, as PAlign's few-shot baseline and PAS prompt."""

    def __init__(self, engine, convention: Convention = "corrected", mode: AnswerMode = LIKELIHOOD) -> None:
        super().__init__(engine, mode)
        self.convention = convention
        self.name = f"few-shot[{convention}]"

    def system_for(self, subject: Subject, known: Sequence[Item]) -> str:
        return few_shot_system(subject, known, self.convention)


@lru_cache(maxsize=1)
def personality_paragraphs() -> tuple[str, ...]:
    """The 300 P^2 paragraphs, in ``Test-set.json`` subject order."""
    records = json.loads(fetch("papi/personality_prompt.json").read_text(encoding="utf-8"))
    return tuple(r["output"][0] for r in records)


class PersonalityPrompt(PromptMethod):
    """P^2: the subject's generated personality paragraph as the system prompt.

    The paragraphs were generated from PAlign's "text:label" lists built with the *stored* values, so
    reverse-keyed items were described inverted; we use them as shipped (the paper's baseline).
    ``known`` is not used: the paragraph already encodes the known answers.
    """

    name = "p2"

    def system_for(self, subject: Subject, known: Sequence[Item]) -> str:
        return personality_paragraphs()[subject.index]
