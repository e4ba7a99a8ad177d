"""TRAIT items in one typed form, and the two option orders of the official protocol.

TRAIT (Lee et al., NAACL 2025 Findings) asks 1,000 four-option scenario questions per trait. What
is reachable is the hub's form of the data (``mirlab/TRAIT``): ``question`` = statement + " " +
query, with the four responses. The official ``run.py`` builds the item from ``situation`` +
" " + ``query`` instead; the ``situation`` text exists only for the 3,000 Dark Triad items
(``TRAIT_Dark.json``), so every trait is asked here in the hub form and the Dark Triad extras are
joined for inspection only (a mixed protocol would make the traits incomparable).

Options are kept in the *identity order* ``(high1, low1, high2, low2)``: the official first order
shows them exactly so (A=high1, B=low1, C=high2, D=low2), and its second order swaps each pair
(A=low1, B=high1, C=low2, D=high2).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Iterable, Sequence

from persona.datafiles import fetch
from persona.engine import MCItem

HF_FILE = "trait/trait_hf_8b31c078.derived.jsonl"
PERSONA_FILE = "trait/personality_prompt_BFI.json"
DARK_FILE = "trait/TRAIT_Dark.json"

BIG_FIVE = ("Openness", "Conscientiousness", "Extraversion", "Agreeableness", "Neuroticism")
DARK_TRIAD = ("Machiavellianism", "Narcissism", "Psychopathy")
TRAITS = BIG_FIVE + DARK_TRIAD
SHORT = {"Openness": "O", "Conscientiousness": "C", "Extraversion": "E", "Agreeableness": "A",
         "Neuroticism": "N", "Machiavellianism": "M", "Narcissism": "Na", "Psychopathy": "P"}

# Row r of hub split T is item idx DARK_BASE[T] + r of TRAIT_Dark.json (verified on load).
DARK_BASE = {"Machiavellianism": 5000, "Narcissism": 6000, "Psychopathy": 7000}

# Identity order of the options and which of them show the trait high.
OPTION_NAMES = ("high1", "low1", "high2", "low2")
HIGH_MASK = (True, False, True, False)

# Presentation orders of the official protocol: position i shows identity option perm[i].
TRAIT_ORDERS: dict[str, tuple[int, ...]] = {
    "original": (0, 1, 2, 3),  # A=high1 B=low1 C=high2 D=low2
    "reversed": (1, 0, 3, 2),  # A=low1 B=high1 C=low2 D=high2
}


class TraitDataError(ValueError):
    """The TRAIT files disagree with each other or with the expected layout."""


@dataclass(frozen=True)
class TraitItem:
    """One TRAIT question. ``situation``/``statement``/``query``/``dark_split`` exist for Dark Triad only."""

    trait: str
    row: int  # 0-based row within the trait's hub split
    question: str  # hub form: statement + " " + query
    high1: str
    high2: str
    low1: str
    low2: str
    idx: int | None = None  # TRAIT_Dark.json idx (Dark Triad only)
    statement: str | None = None
    situation: str | None = None
    query: str | None = None
    dark_split: str | None = None  # "good" | "bad" framing of the statement

    @property
    def key(self) -> str:
        """A stable identifier, e.g. ``Openness/17``."""
        return f"{self.trait}/{self.row}"

    @property
    def options(self) -> tuple[str, str, str, str]:
        """Responses in identity order (high1, low1, high2, low2)."""
        return (self.high1, self.low1, self.high2, self.low2)

    def mc_item(self) -> MCItem:
        return MCItem(stem=self.question, options=self.options)


def _read_hub(path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _join_dark(records: list[dict], dark: list[dict]) -> dict[tuple[str, int], dict]:
    """Map (trait, row) -> the Dark Triad record, checking text identity on every field."""
    by_idx = {d["idx"]: d for d in dark}
    joined: dict[tuple[str, int], dict] = {}
    for rec in records:
        trait = rec["split"]
        if trait not in DARK_BASE:
            continue
        extra = by_idx.get(DARK_BASE[trait] + rec["row"])
        if extra is None:
            raise TraitDataError(f"No TRAIT_Dark item for {trait} row {rec['row']}")
        problems = []
        if extra["personality"] != trait:
            problems.append("personality")
        if rec["question"] != extra["statement"] + " " + extra["query"]:
            problems.append("question != statement + ' ' + query")
        problems += [f for f in ("response_high1", "response_high2", "response_low1", "response_low2")
                     if rec[f] != extra[f]]
        if problems:
            raise TraitDataError(f"{trait} row {rec['row']} disagrees with TRAIT_Dark idx {extra['idx']}: {problems}")
        joined[(trait, rec["row"])] = extra
    return joined


def load_trait_items(traits: Iterable[str] = TRAITS) -> list[TraitItem]:
    """All items of ``traits`` from the hub file, Dark Triad extras joined and verified."""
    wanted = tuple(traits)
    unknown = set(wanted) - set(TRAITS)
    if unknown:
        raise ValueError(f"Unknown traits {sorted(unknown)}; known: {TRAITS}")
    records = [r for r in _read_hub(fetch(HF_FILE)) if r["split"] in wanted]
    for rec in records:
        if rec["personality"] != rec["split"]:
            raise TraitDataError(f"Row {rec['split']}/{rec['row']} has personality {rec['personality']!r}")
    dark = {}
    if any(t in DARK_BASE for t in wanted):
        dark = _join_dark(records, json.loads(fetch(DARK_FILE).read_text(encoding="utf-8")))
    items = []
    for rec in records:
        extra = dark.get((rec["split"], rec["row"]), {})
        items.append(TraitItem(
            trait=rec["split"], row=rec["row"], question=rec["question"],
            high1=rec["response_high1"], high2=rec["response_high2"],
            low1=rec["response_low1"], low2=rec["response_low2"],
            idx=extra.get("idx"), statement=extra.get("statement"), situation=extra.get("situation"),
            query=extra.get("query"), dark_split=extra.get("split"),
        ))
    order = {t: i for i, t in enumerate(TRAITS)}
    return sorted(items, key=lambda it: (order[it.trait], it.row))


def subsample(items: Sequence[TraitItem], per_trait: int | None, seed: int = 0) -> list[TraitItem]:
    """``per_trait`` items of each trait drawn without replacement (all when None), in row order.

    Each trait's draw uses its own seeded generator, so adding a trait never changes another's items.
    """
    if per_trait is None:
        return list(items)
    out: list[TraitItem] = []
    for trait in dict.fromkeys(it.trait for it in items):
        pool = [it for it in items if it.trait == trait]
        rng = random.Random(f"{seed}/{trait}")
        chosen = sorted(rng.sample(range(len(pool)), min(per_trait, len(pool))))
        out += [pool[i] for i in chosen]
    return out
