"""Multiple-choice items and the prompts shown to a model, with option order as data.

An item keeps its options in a fixed *identity* order, the one its task defines (an agreement scale
from agree to disagree; high and low responses in pairs). A prompt may present them in another order; ``permutation``
records which identity sits at each position, so every score can be mapped back to identities.
Option order is a first-class parameter because small models' answers are dominated by letter
and position bias: results must be comparable across orders.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MCItem:
    """One multiple-choice question; ``options`` are in their canonical identity order."""

    stem: str
    options: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.options) < 2:
            raise ValueError(f"An item needs at least two options, got {self.options!r}")


@dataclass(frozen=True)
class MCPrompt:
    """What the model sees.

    ``labels`` are in presentation order; position ``i`` shows option identity ``permutation[i]``
    (``()`` means the identity permutation). ``system`` is the shared prefix candidate: prompts
    with the same ``system`` are scored with one key/value cache of their common token prefix.
    """

    system: str | None
    user: str
    labels: tuple[str, ...]
    assistant_prefix: str = ""
    permutation: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"Option labels must be distinct, got {self.labels!r}")
        if self.permutation:
            check_permutation(self.permutation, len(self.labels))

    @property
    def identity_of_position(self) -> tuple[int, ...]:
        """``identity_of_position[i]``: the option identity shown at presentation position ``i``."""
        return self.permutation or tuple(range(len(self.labels)))


def check_permutation(permutation: tuple[int, ...], n: int) -> None:
    if sorted(permutation) != list(range(n)):
        raise ValueError(f"{permutation!r} is not a permutation of range({n})")


def order_permutation(n: int, order: str) -> tuple[int, ...]:
    """Presentation order of ``n`` options by name.

    ``original``: identity. ``reversed``: last option first. ``pair_swapped`` (alias
    ``trait_reversed``): swap neighbours (0<->1, 2<->3, ...): TRAIT's "reversed" order, which
    shows A=low1, B=high1, C=low2, D=high2 for options stored as (high1, low1, high2, low2).
    """
    if order == "original":
        return tuple(range(n))
    if order == "reversed":
        return tuple(range(n - 1, -1, -1))
    if order in ("pair_swapped", "trait_reversed"):
        if n % 2:
            raise ValueError(f"'{order}' needs an even number of options, got {n}")
        return tuple(i + 1 if i % 2 == 0 else i - 1 for i in range(n))
    raise ValueError(f"Unknown order '{order}': use 'original', 'reversed' or 'pair_swapped'")
