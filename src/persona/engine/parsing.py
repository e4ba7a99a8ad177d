r"""Map generated text to an option, a refusal, or "unparseable"; never guess silently.

Two parsers:

* ``"paper"``: PAlign's ``process_answers``: ``re.search(r"[abcdeABCDE][^a-zA-Z]", text[:12])``,
  i.e. the first letter A-E (either case) followed by a non-letter within the first 12
  characters. It reads letters inside words ("I'd" -> D) and cannot tell a refusal from noise:
  a miss is PAlign's "UNK", which we report as unparseable. The class of letters generalises to
  the prompt's labels (both cases of letter labels). PAlign applied it to the decoded text after
  the header (for Llama-3, "\n\n" + reply; with the later "Option" cue, "\n\nOption" + reply):
  pass that leading text as ``window_prefix``.
  TRAIT's released code has no generation mode (likelihoods only), so there is no TRAIT parser.
* ``"strict"`` (default): an option only when the answer is unambiguous. Evidence is a label at
  the start ("B", "(B).", "Option B:", "Answer: B") not followed by a lower-case word (so the
  article in "A person ..." is not option A), a bracketed label "(B)" or "answer is B" anywhere,
  or the full text of an option; all evidence must point to one option. A refusal phrase with no
  evidence is "refused"; anything else is "unparseable".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

REFUSED = "refused"
UNPARSEABLE = "unparseable"

_REFUSAL = re.compile(
    r"\b(?:as an? (?:ai|artificial intelligence|language model|large language model|assistant)"
    r"|i(?:'m| am) (?:just )?an? (?:ai|language model|assistant)"
    r"|i (?:cannot|can't|can not|won't|am unable to|'m unable to|am not able to|'m not able to)"
    r" (?:answer|respond|provide|choose|select|pick|say|share|express|determine|identify|describe|rate|assess|make)"
    r"|i do(?:n't| not) have (?:personal|feelings|emotions|opinions|preferences|a personality|experiences)"
    r"|i(?:'m| am) sorry|i apologi[sz]e|not (?:able|possible) (?:for me )?to (?:answer|choose|say))",
    re.IGNORECASE,
)


def _label_alt(labels: Sequence[str]) -> str:
    return "|".join(re.escape(lab) for lab in sorted(labels, key=len, reverse=True))


def parse_strict(text: str, labels: Sequence[str], option_texts: Sequence[str] = ()) -> int | str:
    """Presentation position of the answer, or ``REFUSED`` / ``UNPARSEABLE``."""
    t = text.strip()
    if not t:
        return UNPARSEABLE
    alt = _label_alt(labels)
    start = re.match(
        rf"^(?i:(?:the )?(?:option|answer|response|choice)(?: is)?\s*[:=\-]?\s*)?[\(\[]?\s*({alt})\s*[\)\]]?"
        rf"(?=$|[.:;,!)\]=]|\s+(?![a-z]))",
        t,
    )
    found: set[int] = {labels.index(start.group(1))} if start else set()
    mentions = rf"[\(\[]\s*({alt})\s*[\)\]]|\b(?:answer|option|choice) is:?\s*\(?({alt})\b"
    for m in re.finditer(mentions, t, re.IGNORECASE):
        lab = m.group(1) or m.group(2)
        if lab in labels:
            found.add(labels.index(lab))
        elif lab.upper() in labels:
            found.add(labels.index(lab.upper()))
    lowered = t.lower()
    texts = [o.lower() for o in option_texts]
    for k, o in enumerate(texts):
        # an option text counts only when it is not part of a longer option text that also matches
        if o and o in lowered and not any(o != other and o in other and other in lowered for other in texts):
            found.add(k)
    if len(found) == 1:
        return found.pop()
    if not found and _REFUSAL.search(t):
        return REFUSED
    return UNPARSEABLE


def parse_paper(text: str, labels: Sequence[str], window_prefix: str = "") -> int | str:
    """PAlign's regex over the first 12 characters (see module docstring)."""
    chars = "".join(sorted({c for lab in labels for c in (lab, lab.lower(), lab.upper())}))
    if any(len(lab) != 1 for lab in labels):
        raise ValueError("The paper parser reads single-character labels only")
    m = re.search(rf"[{re.escape(chars)}][^a-zA-Z]", (window_prefix + text)[:12])
    if not m:
        return UNPARSEABLE
    hit = m.group()[0]
    for k, lab in enumerate(labels):
        if hit in (lab, lab.lower(), lab.upper()):
            return k
    return UNPARSEABLE


def parse_answer(
    text: str,
    labels: Sequence[str],
    *,
    parser: str = "strict",
    option_texts: Sequence[str] = (),
    window_prefix: str = "",
) -> int | str:
    """Presentation position chosen in ``text``, or ``"refused"`` / ``"unparseable"``."""
    if parser == "strict":
        return parse_strict(text, labels, option_texts)
    if parser == "paper":
        return parse_paper(text, labels, window_prefix)
    raise ValueError(f"Unknown parser '{parser}': use 'strict' or 'paper'")


@dataclass
class GenerationResult:
    """Generated answers mapped to option identities; ``choice[i]`` is -1 when not an option."""

    texts: list[str]
    outcome: list[int | str]  # identity index, "refused" or "unparseable"

    @property
    def choice(self) -> list[int]:
        return [o if isinstance(o, int) else -1 for o in self.outcome]

    @property
    def refusal_rate(self) -> float:
        return sum(o == REFUSED for o in self.outcome) / max(len(self.outcome), 1)

    @property
    def unparseable_rate(self) -> float:
        return sum(o == UNPARSEABLE for o in self.outcome) / max(len(self.outcome), 1)

    @property
    def answered_rate(self) -> float:
        return sum(isinstance(o, int) for o in self.outcome) / max(len(self.outcome), 1)
