"""Question templates: how a multiple-choice item becomes user text, for any task.

A ``Template`` holds only wording (a body with ``{stem}`` and ``{options}`` fields, one line per
option, the labels); the tasks define their own templates (``persona.papi.prompts``,
``persona.trait.prompts``). The chat template and the answer cue are applied later
(``rendering``), so the same template serves chat and base models.
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
