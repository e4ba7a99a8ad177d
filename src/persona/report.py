"""Numbers and verdicts into the book's prose: every value is glued from the run that produced it.

``glue_all`` glues many values at once (no output in the page), formatting floats with a fixed number of
digits, so a chapter does not need twenty hand-written ``glue`` lines; ``glue_verdict`` glues a verdict
under ``<key>`` (the word), ``<key>_evidence`` (effect, interval, n, power) and ``<key>_reason``.
Glued names are checked: a name may hold letters, digits and underscores only (the findings page refers to
them across pages, where anything else breaks the reference).
"""

from __future__ import annotations

import math
import re
from typing import Mapping

from persona.verdicts import Verdict

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def fmt(value: object, digits: int = 2) -> str:
    """A value as the prose shows it: floats with ``digits`` decimals, NaN as "n/a", the rest as text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.{digits}f}"
    return str(value)


def count(value: object) -> str:
    """A count as the prose shows it ("1,265"); None or NaN as "n/a" (e.g. no sample size reaches 80%)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{int(value):,}"


def pct(value: float, digits: int = 0) -> str:
    """A share (0..1) as a percentage, e.g. 0.256 -> "26%"."""
    return "n/a" if value != value else f"{100 * value:.{digits}f}%"


def glue_all(values: Mapping[str, object], *, prefix: str = "", digits: int = 2) -> None:
    """Glue every ``prefix + name`` -> formatted value (nothing is shown in the page)."""
    from myst_nb import glue

    for name, value in values.items():
        key = prefix + name
        if not _NAME.match(key):
            raise ValueError(f"glue name {key!r}: use letters, digits and underscores")
        glue(key, value if isinstance(value, str) else fmt(value, digits), display=False)


def glue_verdict(key: str, verdict: Verdict) -> None:
    """Glue a verdict's word, its evidence line and its reason under ``key``, ``key_evidence``, ``key_reason``."""
    glue_all({key: verdict.verdict, f"{key}_evidence": verdict.evidence, f"{key}_reason": verdict.reason})
