"""Questionnaire templates of the two papers, reproduced character for character.

Sources (read from the official repositories):

* PAPI / PAS: ``TEMPLATE``, ``SYSTEM_PROMPT`` and the few-shot system prompt of zhu-minjun/PAlign
  ``main.py`` (``process_pas``). The code lower-cases the item text before formatting
  (``generateAnswer``), but not in the PAS activation prompts: hence ``lowercase_stem``.
* TRAIT: ``get_prompt_4_v1/v2/v3`` of pull-ups/TRAIT ``trait/src/util/prompts.py``; option labels
  from ``option_dict_4.py`` (ABCD for templates 1 and 3, 1234 for template 2).

A template only says how an item becomes user text; the chat template and the answer cue are
applied later (``rendering``), so the same template serves chat and base models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from persona.engine.items import MCItem, MCPrompt, check_permutation


@dataclass(frozen=True)
class Template:
    """How an item is written: ``body`` has ``{stem}`` and ``{options}`` fields.

    ``{options}`` is replaced by one ``option_line`` (fields ``{label}``, ``{text}``) per option,
    each followed by a newline, in presentation order.
    """

    name: str
    body: str
    option_line: str
    labels: tuple[str, ...]
    assistant_prefix: str = ""
    lowercase_stem: bool = False

    def render_user(self, stem: str, option_texts: Iterable[str], labels: tuple[str, ...]) -> str:
        texts = list(option_texts)
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} options but {len(labels)} labels")
        options = "".join(self.option_line.format(label=lab, text=txt) + "\n" for lab, txt in zip(labels, texts))
        return self.body.format(stem=stem.lower() if self.lowercase_stem else stem, options=options)


# --- PAPI (PAlign main.py) -------------------------------------------------------------------
PAPI_OPTIONS: tuple[str, ...] = (
    "Very Accurate",
    "Moderately Accurate",
    "Neither Accurate Nor Inaccurate",
    "Moderately Inaccurate",
    "Very Inaccurate",
)
"""PAPI option texts in identity order; option ``i`` is answer value ``5 - i`` (A=5 .. E=1)."""

PAPI_ANSWER_TEXT: dict[int, str] = {
    5: "Very Accurate",
    4: "Moderately Accurate",
    3: "Neither Accurate Nor Inaccurate",
    2: "Moderately Inaccurate",
    1: "Very Inaccurate",
    0: "Unknown",
}
"""PAlign's ``SCORES_BACK``: stored answer value -> text used in the few-shot system prompt."""

PAPI_SYSTEM_PROMPT = "You are a helpful, honest and concise assistant."
"""PAlign's default system prompt (the ``NO_CHANGE`` mode)."""

PAPI_FEWSHOT_HEADER = "Here are some of your behaviors and your level of recognition towards them;"

PAPI_TEMPLATE = Template(
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


def papi_fewshot_system(pairs: Iterable[tuple[str, str]]) -> str:
    """PAS/few-shot system prompt from ``(item text, answer text)`` pairs, joined as PAlign does.

    ``'Here are some of your behaviors ... towards them;' + ';'.join(f"{text}:{answer}")``; the item
    text is used as stored (not lower-cased) and the answer is a text such as ``"Very Accurate"``
    (see ``PAPI_ANSWER_TEXT``; PAlign maps the value 0 = missing to ``"Unknown"``).
    """
    return PAPI_FEWSHOT_HEADER + ";".join(f"{text}:{answer}" for text, answer in pairs)


def papi_fewshot_system_from_values(pairs: Iterable[tuple[str, int]]) -> str:
    """Same as ``papi_fewshot_system`` from stored answer values (0..5)."""
    return papi_fewshot_system((text, PAPI_ANSWER_TEXT[int(value)]) for text, value in pairs)


# --- TRAIT (pull-ups/TRAIT prompts.py) -------------------------------------------------------
TRAIT_TEMPLATES: tuple[Template, ...] = (
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

TEMPLATES: dict[str, Template] = {t.name: t for t in (PAPI_TEMPLATE, *TRAIT_TEMPLATES)}


def build_prompt(
    item: MCItem,
    template: Template,
    *,
    system: str | None = None,
    permutation: tuple[int, ...] = (),
    labels: tuple[str, ...] | None = None,
    assistant_prefix: str | None = None,
) -> MCPrompt:
    """Render ``item`` with its options shown in ``permutation`` order (position i -> identity).

    ``labels`` overrides the template's labels (e.g. digits instead of letters); the first
    ``len(item.options)`` labels are used.
    """
    n = len(item.options)
    chosen = tuple(labels if labels is not None else template.labels)
    if len(chosen) < n:
        raise ValueError(f"Template '{template.name}' has {len(chosen)} labels for {n} options")
    chosen = chosen[:n]
    if permutation:
        check_permutation(permutation, n)
    order = permutation or tuple(range(n))
    user = template.render_user(item.stem, (item.options[i] for i in order), chosen)
    return MCPrompt(
        system=system,
        user=user,
        labels=chosen,
        assistant_prefix=template.assistant_prefix if assistant_prefix is None else assistant_prefix,
        permutation=tuple(permutation),
    )
