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

from persona.data import fetch
from persona.engine.items import MCItem, MCPrompt
from persona.engine.templates import Template, build_prompt

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


def trait_prompts(items: Sequence[TraitItem], template: Template, order: str,
                  system: str | None = None) -> list[MCPrompt]:
    """Each item rendered with ``template`` in the official ``order`` (see ``TRAIT_ORDERS``)."""
    perm = TRAIT_ORDERS[order]
    return [build_prompt(it.mc_item(), template, system=system, permutation=perm) for it in items]


def persona_system_prompt(trait: str, level: str) -> str:
    """The persona prompt of upstream ``get_system_prompt("<level> <trait>")``, without its crash.

    Upstream reuses the argument's name as its loop variable, so every call raises a KeyError;
    the intended text is "You are an assistant with high openness. Following statements are
    descriptions of high openness.\n1. ... 2. ... " built from the behaviour list of that level.
    """
    if level not in ("high", "low"):
        raise ValueError(f"level must be 'high' or 'low', got {level!r}")
    behaviours = json.loads(fetch(PERSONA_FILE).read_text(encoding="utf-8"))["behavior"][trait.lower()][level]
    name = f"{level} {trait.lower()}"
    listed = "".join(f"{i + 1}. {text} " for i, text in enumerate(behaviours))
    return f"You are an assistant with {name}. Following statements are descriptions of {name}.\n{listed}"


def trait_grid(items: Sequence[TraitItem], templates: Sequence[int] = (0, 1, 2), *,
               system: str | None = None, persona: str = "none") -> tuple[list[MCPrompt], "pd.DataFrame"]:
    """Every item x template (index into ``TRAIT_TEMPLATES``) x official order, with one meta row each."""
    import pandas as pd

    from persona.engine.templates import TRAIT_TEMPLATES

    prompts: list[MCPrompt] = []
    rows: list[dict] = []
    for t in templates:
        for order in TRAIT_ORDERS:
            prompts += trait_prompts(items, TRAIT_TEMPLATES[t], order, system=system)
            rows += [{"key": it.key, "trait": it.trait, "template": t + 1, "order": order,
                      "persona": persona, "mask": "1010"} for it in items]
    return prompts, pd.DataFrame(rows)


# --- numbers reported by the paper (TRAIT project page; lee2025trait), for side-by-side tables ---
PAPER_PROFILES: dict[str, dict[str, float]] = {
    "GPT-4": {"Openness": 58, "Conscientiousness": 93, "Extraversion": 35, "Agreeableness": 86,
              "Neuroticism": 24, "Psychopathy": 0, "Machiavellianism": 11, "Narcissism": 8},
    "Llama2-7B": {"Openness": 69, "Conscientiousness": 76, "Extraversion": 55, "Agreeableness": 53,
                  "Neuroticism": 34, "Psychopathy": 48, "Machiavellianism": 43, "Narcissism": 42},
}
# Percent, lower is better: refusal in generation mode, prompt and option-order sensitivity.
PAPER_RELIABILITY: dict[str, dict[str, float]] = {
    "BFI": {"refusal_rate": 53.9, "prompt_sensitivity": 37.2, "option_order_sensitivity": 62.0},
    "TRAIT Big Five": {"refusal_rate": 3.1, "prompt_sensitivity": 31.6, "option_order_sensitivity": 33.5},
    "SD-3": {"refusal_rate": 45.7, "prompt_sensitivity": 54.7, "option_order_sensitivity": 66.5},
    "TRAIT Dark Triad": {"refusal_rate": 3.3, "prompt_sensitivity": 28.1, "option_order_sensitivity": 28.2},
}
PAPER_PERSONA_SUCCESS = 85.2  # percent, average over traits and directions
PAPER_PERSONA_HIGH_PSYCHOPATHY = 79.8
