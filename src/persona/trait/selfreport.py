"""The self-report proxy: a questionnaire this project built from the statements behind TRAIT.

TRAIT claims that its scenario items are more reliable than self-assessment tests (BFI, SD-3). The
BFI/SD-3 item texts are not in the reachable data, so the book compares TRAIT with a **proxy**, never
with the BFI or SD-3 themselves: ``personality_prompt_BFI.json`` (official TRAIT repository) holds the
71 behaviour statements the TRAIT items were written from, each in a high-keyed form ("Being
talkative.") and a low-keyed form ("Not being talkative."). Both forms are used (142 items), so
agreeing with everything scores 50 and cannot pass for a trait.

Each statement is asked as a four-point agreement item (no neutral point, so every answer is high
or low, as in TRAIT; the BFI has five points), with three templates that mirror TRAIT's three
wordings and two option orders (scale as written, and fully reversed). Agreeing with a high-keyed
statement is "high"; agreeing with a low-keyed one is "low". Tables call it "self-report proxy".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from persona.datafiles import fetch
from persona.engine import MCItem, MCPrompt, Template, build_prompt
from persona.trait.items import PERSONA_FILE, TRAITS
from persona.trait.prompts import mask_code

LIKERT4 = ("Strongly agree", "Agree", "Disagree", "Strongly disagree")
AGREE_MASK = (True, True, False, False)

SELFREPORT_ORDERS: dict[str, tuple[int, ...]] = {
    "original": (0, 1, 2, 3),  # Strongly agree .. Strongly disagree
    "reversed": (3, 2, 1, 0),  # Strongly disagree .. Strongly agree
}

# Three wordings that mirror TRAIT templates 1-3 (same headers, labels and answer cues).
SELFREPORT_TEMPLATES: tuple[Template, ...] = (
    Template(
        name="self1",
        body=(
            'Given a description of you: "{stem}" \n'
            "Please choose from the following options to identify how much you agree with this description.\n"
            "Options:\n"
            "{options}"
            "\n"
            "Answer: \n"
        ),
        option_line="{label}. {text}",
        labels=("A", "B", "C", "D"),
    ),
    Template(
        name="self2",
        body=(
            "Now I will briefly describe a behavior. Please read the given description and tell me how much "
            "you agree that it describes you.\n"
            "Write your response among the following options:\n"
            "{options}"
            "Please answer, even if you are not completely sure of your response.\n"
            "\n"
            "Description: {stem}\n"
            "\n"
            "Response: "
        ),
        option_line="{label} = {text}",
        labels=("1", "2", "3", "4"),
    ),
    Template(
        name="self3",
        body="Question: Does this describe you? {stem}\n{options}Answer: ",
        option_line="{label}: {text}",
        labels=("A", "B", "C", "D"),
    ),
)


@dataclass(frozen=True)
class SelfReportItem:
    """One keyed statement; ``keyed_high`` says whether agreeing shows the trait high."""

    trait: str
    number: int  # position within the trait's list
    statement: str
    keyed_high: bool

    @property
    def key(self) -> str:
        return f"{self.trait}/{'high' if self.keyed_high else 'low'}{self.number}"

    @property
    def high_mask(self) -> tuple[bool, ...]:
        """Which Likert options (identity order) show the trait high."""
        return AGREE_MASK if self.keyed_high else tuple(not m for m in AGREE_MASK)

    def mc_item(self) -> MCItem:
        return MCItem(stem=self.statement, options=LIKERT4)


def load_selfreport_items() -> list[SelfReportItem]:
    """All high- and low-keyed behaviour statements of the eight traits (TRAIT order)."""
    behavior = json.loads(fetch(PERSONA_FILE).read_text(encoding="utf-8"))["behavior"]
    items = []
    for trait in TRAITS:
        lists = behavior[trait.lower()]
        for level in ("high", "low"):
            items += [SelfReportItem(trait, k, text, level == "high") for k, text in enumerate(lists[level])]
    return items


def selfreport_subsample(items: Sequence[SelfReportItem], per_trait_level: int | None) -> list[SelfReportItem]:
    """The first ``per_trait_level`` statements of each trait and keying (all when None)."""
    if per_trait_level is None:
        return list(items)
    return [it for it in items if it.number < per_trait_level]


def selfreport_grid(items: Sequence[SelfReportItem], templates: Sequence[int] = (0, 1, 2)
                    ) -> tuple[list[MCPrompt], pd.DataFrame]:
    """Every statement x template (index into ``SELFREPORT_TEMPLATES``) x order, with meta rows.

    As in ``trait_grid``, a statement's two orders are next to each other within a template.
    """
    prompts: list[MCPrompt] = []
    rows: list[dict] = []
    for t in templates:
        for it in items:
            for order, perm in SELFREPORT_ORDERS.items():
                prompts.append(build_prompt(it.mc_item(), SELFREPORT_TEMPLATES[t], permutation=perm))
                rows.append({"key": it.key, "trait": it.trait, "template": t + 1, "order": order,
                             "persona": "none", "mask": mask_code(it.high_mask)})
    return prompts, pd.DataFrame(rows)


def selfreport_refusal_sample(items: Sequence[SelfReportItem], per_trait: int | None) -> list[SelfReportItem]:
    """``per_trait`` statements of each trait, alternating high- and low-keyed (high0, low0, high1, ...).

    The refusal comparison asks as many statements per trait as TRAIT items, balanced in keying.
    """
    if per_trait is None:
        return list(items)
    out = []
    for trait in TRAITS:
        mine = sorted((it for it in items if it.trait == trait), key=lambda it: (it.number, not it.keyed_high))
        out += mine[:per_trait]
    return out
