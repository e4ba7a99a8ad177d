"""The PAPI questionnaire as a task: PAlign's prompt texts and how a PAPI item becomes an engine prompt.

Texts are reproduced character for character from zhu-minjun/PAlign ``main.py``: ``TEMPLATE``,
``SYSTEM_PROMPT`` and the few-shot system prompt of ``process_pas``. The code lower-cases the item
text before formatting (``generateAnswer``) but not in the PAS activation prompts; hence
``lowercase_stem`` and ``CONTRAST_TEMPLATE``.

The answer cue: the options read "(A). Very Accurate", and a chat model opens its reply with "("
(SmolLM2-135M's most likely first token), so our prompts end the assistant turn with ``(`` and the letter
probabilities are read where the model chooses. That needs "(" and the letter to be two tokens. A
tokenizer with "(A" as one token (Llama-3's) would rarely have seen "(" followed by "A" in training, so for
it the cue is empty and the model's own "(A" token is read (the engine counts it as the label A):
``answer_cue(tokenizer)`` decides. PAlign generates the answer instead.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

from persona.engine import MCItem, MCPrompt, Template, build_prompt, content_free_item, order_permutation
from persona.papi.data import MISSING, OPTIONS, Item, option_text

#: PAlign's default system prompt (the ``NO_CHANGE`` mode; also the PAS contrast prompts' system prompt).
DEFAULT_SYSTEM = "You are a helpful, honest and concise assistant."
FEWSHOT_HEADER = "Here are some of your behaviors and your level of recognition towards them;"
#: Text the assistant turn starts with before the option letter, where the tokenizer keeps it apart from the
#: letter (see the module docstring and ``answer_cue``).
ANSWER_CUE = "("
#: Both presentation orders: A = Very Accurate first, and reversed (A = Very Inaccurate).
ORDERS: tuple[str, ...] = ("original", "reversed")
#: Short tags of the orders in column names (``p5_orig``: P(Very Accurate) in the original order).
ORDER_TAGS: dict[str, str] = {"original": "orig", "reversed": "rev"}

TEMPLATE = Template(
    name="papi",
    body=(
        'Given a statement of you: "You {stem}."\n'
        "Please choose from the following options to identify how accurately this statement describes you.\n"
        "Options:\n"
        "{options}"
    ),
    option_line="({label}). {text}",
    labels=("A", "B", "C", "D", "E"),
    lowercase_stem=True,
)
#: PAlign renders the activation prompts without lower-casing the item text (unlike the test prompts).
CONTRAST_TEMPLATE = dataclasses.replace(TEMPLATE, lowercase_stem=False)


def answer_cue(tokenizer) -> str:
    """``ANSWER_CUE`` when the tokenizer writes "(A" as two tokens ("(" then "A"); "" when "(A" is one token."""
    return ANSWER_CUE if len(tokenizer("(A", add_special_tokens=False)["input_ids"]) > 1 else ""


def answer_completion(letter: str, cue: str) -> str:
    """What follows the prompt when the subject's answer is ``letter``: the rest of "(A" after the cue."""
    return ANSWER_CUE[len(cue):] + letter


def answer_text(value: int) -> str:
    """PAlign's ``SCORES_BACK``: a stored or agreement value as the text of the few-shot block (0 = "Unknown")."""
    return "Unknown" if int(value) == MISSING else option_text(value)


def fewshot_system(pairs: Iterable[tuple[str, int]]) -> str:
    """PAlign's few-shot system prompt from ``(item text, value)`` pairs.

    ``header + ';'.join(f"{text}:{answer}")`` with the item text as stored (not lower-cased) and the answer
    written by ``answer_text``.
    """
    return FEWSHOT_HEADER + ";".join(f"{text}:{answer_text(value)}" for text, value in pairs)


def mc_item(item: Item) -> MCItem:
    """The engine's multiple-choice item for a PAPI item (options in identity order)."""
    return MCItem(stem=item.text, options=OPTIONS)


def prompts(items: Sequence[Item], system: str | None, order: str, cue: str = ANSWER_CUE,
            template: Template = TEMPLATE) -> list[MCPrompt]:
    """Engine prompts for ``items`` in one option order with one system prompt, the answer cue after them."""
    perm = order_permutation(len(OPTIONS), order)
    return [build_prompt(mc_item(item), template, system=system, permutation=perm, assistant_prefix=cue)
            for item in items]


def content_free_prompt(system: str | None, order: str, cue: str = ANSWER_CUE) -> MCPrompt:
    """The calibration question: "N/A" in the PAPI template with the scale's own options, under the same
    system prompt, order and cue as the items it calibrates (Zhao et al. 2021; ``persona.engine.calibration``)."""
    item = content_free_item(MCItem(stem="", options=OPTIONS), keep_options=True)
    return build_prompt(item, TEMPLATE, system=system, permutation=order_permutation(len(OPTIONS), order),
                        assistant_prefix=cue)
