"""One vocabulary for the findings chapter: each abstract claim gets a verdict computed from a run.

Verdicts are decided in the notebook that holds the evidence, from its numbers, and glued; the
findings page only pastes them. So a re-run on another model or profile updates the verdicts too.
"""

from __future__ import annotations

REPLICATED = "replicated"
NOT_REPLICATED = "not replicated"
INCONCLUSIVE = "inconclusive at this scale"
NOT_TESTABLE = "not testable here"


def compare(better: bool, significant: bool | None = None) -> str:
    """Verdict for a claim that "X is better than Y".

    ``better``: the point estimate goes the claimed way. ``significant``: a test (or an interval)
    excludes no difference; ``None`` when no test applies. A claimed direction that is seen but not
    significant is inconclusive, never replicated.
    """
    if not better:
        return NOT_REPLICATED
    if significant is False:
        return INCONCLUSIVE
    return REPLICATED


def at_most(value: float, bound: float, upper_ci: float | None = None) -> str:
    """Verdict for a claim "value <= bound" (e.g. a time ratio of at most 1/5)."""
    if value != value:  # NaN: nothing was measured
        return NOT_TESTABLE
    if value > bound:
        return NOT_REPLICATED
    if upper_ci is not None and upper_ci > bound:
        return INCONCLUSIVE
    return REPLICATED
