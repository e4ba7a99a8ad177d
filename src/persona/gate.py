"""The capability gate: a verdict about a model's behaviour is decided only where the model can take the test.

A claim such as "PAS aligns better than few-shot" says something about PAS only if steering moves this model's
answers at all; "TRAIT is less order-sensitive than self-report" says something about TRAIT only if the model
reads the items' content rather than their letters. Each chapter therefore computes, per model, the checks its
verdicts rest on, *before* deciding them, and passes every such verdict through :meth:`Gate.decide`:

* a check that **passed** lets the verdict through unchanged;
* a check that **failed** replaces it with ``"not testable on this model"``, naming the check and its numbers;
  the failure is itself a finding (``Check.finding``: what the model does instead);
* a check that **could not be decided** (too few items to bound its interval) also blocks the verdict, saying
  so: a check never passes for lack of evidence;
* a verdict asked for a check that was never computed raises :class:`GateError` naming it.

The checks are pre-declared (``CHECKS``): what each requires is fixed here, before any result is seen.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from persona import verdicts as V

#: The pre-declared checks: name -> what passing requires.
CHECKS: dict[str, str] = {
    "positive control": "steering along an 'agree' direction raises the expected answer in BOTH option orders "
                        "(each shift's interval above 0)",
    "content sensitivity": "after content-free calibration, the item decisions of the two option orders agree "
                           "beyond chance (Cohen's kappa with its interval above 0)",
    "persona control": "the high and the low persona of an item move its answers apart (share of high answers "
                       "under the high persona minus under the low one, interval above 0)",
    "refusal": "the model refuses at least one prompt of the comparator questionnaire (otherwise there is no "
               "refusal rate to lower)",
}
PASSED, FAILED, UNDECIDED = "passed", "failed", "undecided"


class GateError(LookupError):
    """A verdict was asked for a model whose capability check was not computed."""


@dataclass(frozen=True)
class Check:
    """The outcome of one capability check for one model: passed, failed or undecided, with its numbers."""

    name: str
    model: str
    status: str
    evidence: str  # the check's numbers: effect, interval, n
    finding: str = ""  # what a failure says about the model, as a sentence for the findings page

    def __post_init__(self) -> None:
        if self.name not in CHECKS:
            raise ValueError(f"unknown check {self.name!r}: the declared checks are {sorted(CHECKS)}")
        if self.status not in (PASSED, FAILED, UNDECIDED):
            raise ValueError(f"status must be passed, failed or undecided, got {self.status!r}")

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def summary(self) -> str:
        """One line: the check, its outcome and its numbers."""
        return f"{self.name} {self.status} on {self.model} ({self.evidence})"


def from_verdict(name: str, model: str, verdict: V.Verdict, *, finding: str = "") -> Check:
    """A check decided by an interval: passed when the verdict's interval lies above 0 (``replicated``), undecided
    when there is no interval (too few units to bound it), failed otherwise."""
    if not np.isfinite(verdict.ci_low):
        status = UNDECIDED
    else:
        status = PASSED if verdict.verdict == V.REPLICATED else FAILED
    evidence = (f"{verdict.effect_label} {verdict._num(verdict.effect)} {verdict.interval}, n = {verdict.n} "
                f"{verdict.unit}" if np.isfinite(verdict.effect) else verdict.reason)
    if status == UNDECIDED:
        evidence = f"{evidence}; too few {verdict.unit} to bound the interval"
    return Check(name, model, status, evidence, finding if status != PASSED else "")


def all_of(name: str, model: str, parts: dict[str, Check], *, finding: str = "") -> Check:
    """One check made of several (e.g. the positive control in each option order): passed when every part
    passed, undecided when none failed but some could not be decided, failed otherwise."""
    if not parts:
        return Check(name, model, UNDECIDED, "no data")
    statuses = {c.status for c in parts.values()}
    status = FAILED if FAILED in statuses else UNDECIDED if UNDECIDED in statuses else PASSED
    evidence = "; ".join(f"{label}: {c.evidence}" for label, c in parts.items())
    return Check(name, model, status, evidence, finding if status != PASSED else "")


class Gate:
    """The checks a chapter computed, per (check, model), and the verdicts that rest on them."""

    def __init__(self) -> None:
        self.checks: dict[tuple[str, str], Check] = {}

    def record(self, check: Check) -> Check:
        self.checks[(check.name, check.model)] = check
        return check

    def check(self, name: str, model: str) -> Check:
        if name not in CHECKS:
            raise ValueError(f"unknown check {name!r}: the declared checks are {sorted(CHECKS)}")
        try:
            return self.checks[(name, model)]
        except KeyError:
            raise GateError(f"the capability check {name!r} was not computed for model {model!r}: compute it "
                            f"before any verdict that rests on it") from None

    def decide(self, verdict: V.Verdict | Callable[[], V.Verdict], *, needs: list[tuple[str, str]]) -> V.Verdict:
        """The verdict when every check in ``needs`` ((check, model) pairs) passed, else "not testable on this
        model" naming the first check that did not pass. ``verdict`` may be a callable, so that a blocked
        verdict is never computed."""
        for name, model in needs:
            check = self.check(name, model)
            if not check.passed:
                return blocked(check)
        return verdict() if callable(verdict) else verdict

    def table(self):
        """Every check as a table: check, model, status, evidence, finding."""
        import pandas as pd

        return pd.DataFrame([{"check": c.name, "model": c.model, "status": c.status, "evidence": c.evidence,
                              "finding": c.finding} for c in self.checks.values()])


def blocked(check: Check) -> V.Verdict:
    """The verdict a claim gets when the check it rests on did not pass."""
    what = "failed" if check.status == FAILED else "could not be decided"
    return V.Verdict(V.NOT_TESTABLE_ON_MODEL, f"the {check.name} {what} on {check.model} ({check.evidence})"
                     + (f": {check.finding}" if check.finding else ""))


def gated(verdict: V.Verdict, check: Check | None, *, name: str = "") -> V.Verdict:
    """One verdict through one check (``None``: the check was not computed, which raises)."""
    if check is None:
        raise GateError(f"the capability check {name or '?'!r} was not computed: compute it before the verdict")
    return verdict if check.passed else blocked(check)


def with_finding(check: Check, finding: str) -> Check:
    return replace(check, finding=finding if not check.passed else "")


__all__ = ["CHECKS", "Check", "FAILED", "Gate", "GateError", "PASSED", "UNDECIDED", "all_of", "blocked",
           "from_verdict", "gated", "with_finding"]
