"""The one interface every PAPI alignment method implements (``Method``) and the optimisation log that PAS and
DPO share (``FitTrace``).

A method is fitted on one subject's known answers (the IPIP-NEO-120 items) and then answers other
items. The experiment loop only sees this protocol, so no-change, few-shot, P^2, PAS and DPO are
interchangeable. How LLM methods answer is ``persona.papi.methods.answering``.
"""

from __future__ import annotations

import time
from typing import Sequence

import pandas as pd

from persona.papi.data import Item, Subject
from persona.papi.methods.answering import Answers


class Method:
    """Fit on one subject's known answers, then answer items (agreement 1..5 and option probabilities).

    The experiment loop calls, per subject: ``prepare()`` (once-per-model work, timed apart from the subject's
    fit), ``fit``, ``answer``, ``release()`` (free per-subject state, e.g. an adapter), then stores ``trace``
    (the optimisation's quality over time, if any) and ``state()`` (what the fit chose, if anything). The
    defaults below do nothing, so a method declares only what it has.
    """

    name: str = "method"
    trace: list[dict] = []  # replaced per fit by methods that optimise (see ``FitTrace``)

    def prepare(self) -> None:
        """Once-per-model work before the first fit (nothing by default)."""

    def fit(self, subject: Subject, known: Sequence[Item]) -> None:
        raise NotImplementedError

    def answer(self, items: Sequence[Item]) -> Answers:
        raise NotImplementedError

    def release(self) -> None:
        """Drop what this subject's fit added to the shared model (nothing by default)."""

    def state(self) -> pd.DataFrame | None:
        """What the fit chose, to store beside the predictions (None: nothing to store)."""
        return None


class FitTrace:
    """The optimisation log of one fit: each row stamped with the wall and CPU seconds since the fit started.
    PAS (one row per alpha) and DPO (one row per validation) share it; the cost chapter reads the rows."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self._wall0, self._cpu0 = time.perf_counter(), time.process_time()

    def record(self, **row) -> None:
        self.rows.append({**row, "wall_s": time.perf_counter() - self._wall0,
                          "cpu_s": time.process_time() - self._cpu0})
