"""TRAIT as a task: the official prompt templates, the persona prompts, and the grid of prompts a run asks.

Templates are reproduced from ``get_prompt_4_v1/v2/v3`` of pull-ups/TRAIT ``trait/src/util/prompts.py``
(option labels from ``option_dict_4.py``: ABCD for templates 1 and 3, 1234 for template 2). Every prompt
carries one row of identifiers (item key, trait, template, order, persona, and the mask of which options
show the trait high), so scores can be mapped back without re-deriving anything.
"""

from __future__ import annotations

import json
from typing import Sequence

import pandas as pd

from persona.datafiles import fetch
from persona.engine import MCPrompt, Template, build_prompt
from persona.trait.items import HIGH_MASK, PERSONA_FILE, TRAIT_ORDERS, TraitItem


def mask_code(high_mask: Sequence[bool]) -> str:
    """A high mask as the string stored with each prompt, e.g. (True, False, True, False) -> "1010"."""
    return "".join("1" if m else "0" for m in high_mask)


# --- TRAIT (pull-ups/TRAIT prompts.py) -------------------------------------------------------
TEMPLATES: tuple[Template, ...] = (
    Template(
        name="trait1",
        body=(
            'Given a situation: "{stem}" \n'
            "Please choose from the following options to identify which suggestion you would like to give.\n"
            "Options:\n"
            "{options}"
            "\n"
            "Answer: \n"
        ),
        option_line="{label}. {text}",
        labels=("A", "B", "C", "D"),
    ),
    Template(
        name="trait2",
        body=(
            "Now I will briefly describe a situation. Please read a given situation and tell me which option "
            "that you want to suggest.\n"
            "Write your response among the following options:\n"
            "{options}"
            "Please answer the suggestion, even if you are not completely sure of your response.\n"
            "\n"
            "Situation: {stem}\n"
            "\n"
            "Response: "
        ),
        option_line="{label} = {text}",
        labels=("1", "2", "3", "4"),
    ),
    Template(
        name="trait3",
        body="Question: {stem}\n{options}Answer: ",
        option_line="{label}: {text}",
        labels=("A", "B", "C", "D"),
    ),
)
"""TRAIT's templates 1, 2, 3 (``prompt_type`` 1..3) at indices 0, 1, 2."""


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
               system: str | None = None, persona: str = "none") -> tuple[list[MCPrompt], pd.DataFrame]:
    """Every item x template (index into ``TEMPLATES``) x official order, with one meta row each.

    Rows run template by template and, within a template, item by item with the item's two orders
    next to each other: the two prompts share their text up to the options, so a shard can score
    them together behind one encoding of that prefix (see ``persona.trait.run``).
    """
    prompts: list[MCPrompt] = []
    rows: list[dict] = []
    for t in templates:
        for it in items:
            for order, perm in TRAIT_ORDERS.items():
                prompts.append(build_prompt(it.mc_item(), TEMPLATES[t], system=system, permutation=perm))
                rows.append({"key": it.key, "trait": it.trait, "template": t + 1, "order": order,
                             "persona": persona, "mask": mask_code(HIGH_MASK)})
    return prompts, pd.DataFrame(rows)
