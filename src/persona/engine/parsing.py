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
* ``"strict"`` (default): an option only when the answer names exactly one option; it never
  guesses. The text is NFKC-normalised (full-width brackets and colons become ASCII) and curly
  apostrophes become straight ones. Then:

  1. **Option texts.** An option's full text (case-insensitive, whole words only, any run of
     spaces, without its final full stop) names that option. Longer texts are matched first and
     masked, so an option text inside a longer one ("Agree" in "Strongly Agree") counts only where
     it stands outside the longer one; being part of a word ("Agree" in "Disagree") never counts.
     A fragment of an option text is nothing. An option text right after a negation ("not",
     "never", "n't", with at most one word between: "I wouldn't say <option text>") makes the
     answer unparseable: a negated option text names no option.
  2. **Answer forms of a label** (each names the option it labels):

     * a label in brackets, bold or double quotes anywhere, in either case: "(B)", "[b]", "(B).",
       "**(B)**", "**B**", '"B"';
     * a label at the start of a line (after spaces, a list bullet or ``**``), optionally with a
       closing bracket: "B", "B.", "B)", "B: ...", "C) Neither", "B Strongly ...", "2 = ...",
       "**B.** ...";
     * a label after an answer cue, anywhere: "Answer: B", "answer: (b)", "The answer is D",
       "My answer is D.", "Option E", "Response: 3", "I'd say A.", "I would choose C",
       "I'll go with B"; cues are answer/option/choice/response/selection (optionally followed
       by "is", "would be", "will be") and say, choose (chose, chosen), pick (picked), select
       (selected), go with, opt for. In other languages only the word for "answer" followed by
       a colon is a cue: "Respuesta: B", "Antwort: (C)", "Réponse : B", "答案：B".

     A label is NOT an answer when it is glued to a word, an abbreviation or a formula: a letter,
     digit or apostrophe next to it, or "." "=" "^" "+" "-" "/" followed by a letter or digit
     ("I'd", "A.I.", "E.g.", "E=mc^2", "A-level", "2023"), unless brackets delimit it. A bare label
     at a line start followed by a lower-case word is not an answer either: the article in
     "A person like me", the number in "2 hours", and also "B is ...". After a cue an upper-case
     label may be followed by any word ("Option A is closest"); a digit may not (a quantity:
     "Response: 2 hours").
  3. **Lower case.** A lower-case letter is read only where it cannot be a word: in brackets, bold
     or quotes ("(b)", "b)", "**b**"), after a cue ending in a colon and not followed by a word ("answer: b"),
     or standing alone at a line start, followed by nothing, "." or ":" ("b", "b.", "b. yes").
     "The answer is a" or "I'd say a" are not read (an answer cut off by the token limit could be
     "... is a bit"), and a lower-case letter is never a mention (rule 4).
  4. **Mentions.** Every other stand-alone label in the prompt's own case ("C" in "B, but C
     too"; not "A" or a digit followed by a lower-case word, which is the article or a number;
     not glued as in rule 2) is a mention. A mention cannot give an answer, but it vetoes one.
  5. **Several options.** Two different labels in the same case joined by "," "/" "&" "-" "or"
     "and" "to" ("A, B", "a or b", "(A) or (C)", "2-3") mean several options; so does a negated
     option text (rule 1).

  Outcome: exactly one option named by rules 1-3, no mention of another option and no rule-5 list
  -> that option's position. Letter and text must agree: "(B) <text of option D>" is unparseable.
  Otherwise, a refusal phrase ("As an AI ...", "I don't have personal feelings", "I cannot
  answer", "I'm sorry") with no option evidence at all (rules 1-5) -> ``REFUSED``; everything else
  (nothing recognisable, an echoed option list, several options, a refusal naming several
  options) -> ``UNPARSEABLE``. A refusal that still names exactly one option ("As an AI I have no
  feelings, but I'd pick B.") is read as that option: the model did answer, and the caller's
  refusal rate counts only answers without one. Refusal phrases are detected in English only: a
  refusal in another language without option evidence is ``UNPARSEABLE``, as is any
  other-language text without one of the label forms above. Empty or whitespace text is
  ``UNPARSEABLE``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

REFUSED = "refused"
UNPARSEABLE = "unparseable"

# --- strict parser: the patterns -------------------------------------------------------------

#: English refusal phrases. Consulted only when the text names no option at all.
_REFUSAL = re.compile(
    r"\b(?:as an? (?:ai|a\.i\.|artificial intelligence|(?:large )?language model|ai (?:language )?model"
    r"|ai assistant|assistant|machine|chatbot)"
    r"|i(?:'m| am) (?:just |only |merely )?an? (?:ai|language model|assistant|machine|chatbot)"
    r"|(?:cannot|can't|can not|won't|will not|unable to|not able to) (?:really )?"
    r"(?:answer|respond|provide|choose|select|pick|say|share|express|determine|identify|describe|rate|assess"
    r"|make|give|evaluate|relate|apply)"
    r"|(?:don't|do not|doesn't|does not) (?:have|possess) (?:any )?(?:personal|feelings|emotions|opinions"
    r"|preferences|a personality|personality|experiences|a self|human|the ability)"
    r"|i(?:'m| am) sorry|i apologi[sz]e|sorry, (?:but )?i\b"
    r"|not (?:able|possible|appropriate) (?:for me )?to (?:answer|choose|say|rate))",
    re.IGNORECASE,
)

#: English words announcing the answer; a label may follow directly ("Option B", "I'd pick C",
#: "The answer is D", "Answer: b").
_CUE_EN = (
    r"(?:answer|option|choice|response|selection)(?:\s+(?:is|would\s+be|will\s+be))?"
    r"|say|choose|chose|chosen|pick|picked|select|selected|go\s+with|opt\s+for"
)
#: "Answer" in other languages: a cue only when a colon follows ("Respuesta: B", "答案：B").
_CUE_FOREIGN = (
    r"respuesta|antwort|r[ée]ponse|risposta|resposta|antwoord|svar|vastaus|odpowied[zź]|cevap|jawaban"
    r"|ответ|答案|回答|答え|정답|답"
)
_IS_FOREIGN_CUE = re.compile(rf"(?:{_CUE_FOREIGN})", re.IGNORECASE)
#: What may stand between a cue and its label: spaces, markdown emphasis, a colon, "=", a dash.
_CUE_GAP = r"[ \t*_:=\-–]*"
#: Follows a label that is part of a word, an abbreviation, a number or a formula:
#: "I'd" (after the d), "A.I.", "E.g.", "E=mc^2", "A-level", "C++", "2023".
_GLUED_AFTER = re.compile(r"[\w']|[.=^+\-/]\w|[+#]")
#: Precedes (as the last two characters) a label inside an abbreviation or formula: "U.S.A", "x=E".
_GLUED_BEFORE = re.compile(r"\w[.=^+\-/]$")
#: A lower-case word follows: "A person", "2 hours", "b because".
_WORD_FOLLOWS = re.compile(r"[ \t]+[a-z]")
#: A lower-case label standing alone at a line start: nothing, "." or ":" (+ spaces) then the line's end,
#: or "." / ":" followed by a space ("b. yes").
_LOWER_ALONE = re.compile(r"(?:\*\*|__)?[ \t]*[.:]?[ \t]*(?:\*\*|__)?[ \t]*(?:\n|$)|[.:][ \t]")
#: Labels that are also English words or numbers when a lower-case word follows: the article "A", digits.
_WORDLIKE = re.compile(r"A|\d+")
#: Ends the text before a negated option text: "not <option>", "never <option>", "I wouldn't say <option>"
#: (a negation, at most one word, then the option text).
_NEGATED = re.compile(r"(?:\bnot|n't|\bnever)(?:[ \t]+\w+)?[ \t]+$", re.IGNORECASE)
#: Stands in for a masked option text (not a word character, not lower case).
_MASK = "\ufffc"


@dataclass(frozen=True)
class _Patterns:
    """The strict parser's label patterns for one set of labels (each has a group ``lab``)."""

    #: "(B)", "[b]", "**B**", '"B"': brackets, bold or double quotes delimit the label.
    delimited: tuple[re.Pattern, ...]
    #: A label at a line start after spaces, a list bullet or "**"; optional brackets.
    line_start: re.Pattern
    #: A cue, the gap, then a label with optional brackets.
    cued: re.Pattern
    #: Any stand-alone label (case-sensitive: the prompt's own spelling).
    mention: re.Pattern
    #: Two labels joined by a list separator ("A, B", "a or b", "(A) or (C)", "2-3").
    pair: re.Pattern


def _label_alt(labels: Sequence[str]) -> str:
    return "|".join(re.escape(lab) for lab in sorted(labels, key=len, reverse=True))


@lru_cache(maxsize=32)
def _patterns(labels: tuple[str, ...]) -> _Patterns:
    alt = _label_alt(labels)
    lab = rf"(?P<lab>{alt})"
    close = r"(?:[ \t]*(?P<close>[)\]]))?"  # a closing bracket; trailing spaces stay outside the match
    # a label's start: not right after a letter or digit ("answered" is not "answer" + "e")
    starts = r"(?<![^\W_])"
    return _Patterns(
        delimited=tuple(
            re.compile(rf"{opening}[ \t]*{lab}[ \t]*{closing}", re.IGNORECASE)
            for opening, closing in ((r"[(\[]", r"[)\]]"), (r"\*\*", r"\*\*"), ('["“«]', '["”»]'))
        ),
        line_start=re.compile(
            rf"^[ \t]*(?:[-*•>#]+[ \t]+)?(?:\*\*|__)?[ \t]*(?P<open>[(\[])?[ \t]*{lab}{close}",
            re.IGNORECASE | re.MULTILINE,
        ),
        cued=re.compile(
            rf"\b(?P<cue>{_CUE_EN}|{_CUE_FOREIGN})(?P<gap>{_CUE_GAP})(?P<open>[(\[])?[ \t]*{starts}{lab}{close}",
            re.IGNORECASE,
        ),
        mention=re.compile(rf"(?<![\w']){lab}(?![\w'])"),
        pair=re.compile(
            rf"(?<![\w'])[(\[]?[ \t]*(?P<a>{alt})[ \t]*[)\]]?[ \t]*(?:,|/|&|-|–|\bor\b|\band\b|\bto\b)"
            rf"[ \t]*[(\[]?[ \t]*(?P<b>{alt})(?![\w']|[.=^+\-/]\w)",
            re.IGNORECASE,
        ),
    )


# --- strict parser: the rules ----------------------------------------------------------------


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).replace("\u2019", "'").replace("\u2018", "'")


def _named_option_texts(text: str, option_texts: Sequence[str]) -> tuple[set[int], bool, str]:
    """Positions whose full option text occurs (rule 1), whether one occurrence is negated, and the
    text with those occurrences masked."""
    named: set[int] = set()
    negated = False
    order = sorted(range(len(option_texts)), key=lambda k: len(option_texts[k]), reverse=True)
    for k in order:
        words = _normalise(option_texts[k]).strip().rstrip(".!?").split()
        if not words:
            continue
        pattern = re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)", re.IGNORECASE)
        for m in pattern.finditer(text):
            named.add(k)
            negated = negated or bool(_NEGATED.search(text[max(m.start() - 30, 0):m.start()]))
        text = pattern.sub(_MASK, text)
    return named, negated, text


def _position(found: str, labels: Sequence[str]) -> int:
    for k, lab in enumerate(labels):
        if found == lab:
            return k
    return [lab.casefold() for lab in labels].index(found.casefold())


def _answer_labels(text: str, pats: _Patterns, labels: Sequence[str]) -> set[int]:
    """Positions named by a label in an answer form (rules 2 and 3)."""
    found: set[int] = set()
    for pattern in pats.delimited:
        found.update(_position(m["lab"], labels) for m in pattern.finditer(text))
    for m in pats.line_start.finditer(text):
        after = text[m.end():]
        if m["close"]:
            ok = True  # "B)", "b)", "(B)"
        elif _GLUED_AFTER.match(after) or _WORD_FOLLOWS.match(after):
            ok = False  # "A.I.", "E=mc^2", "A person", "2 hours"
        else:
            ok = m["lab"] in labels or bool(_LOWER_ALONE.match(after))
        if ok:
            found.add(_position(m["lab"], labels))
    for m in pats.cued.finditer(text):
        after = text[m.end():]
        colon = ":" in m["gap"] or "=" in m["gap"]
        if _IS_FOREIGN_CUE.fullmatch(m["cue"]) and not colon:
            continue
        if m["open"] and m["close"]:
            ok = True
        elif _GLUED_AFTER.match(after) or (m["lab"].isdigit() and _WORD_FOLLOWS.match(after)):
            ok = False  # "answered", "Response: 2 hours"
        elif m["lab"] in labels:
            ok = True  # "Option A is closest"
        else:  # lower case: only "answer: b", never "the answer is a" (maybe "... is a bit")
            ok = colon and not _WORD_FOLLOWS.match(after)
        if ok:
            found.add(_position(m["lab"], labels))
    return found


def _mentioned_labels(text: str, pats: _Patterns, labels: Sequence[str]) -> set[int]:
    """Positions of stand-alone labels in the prompt's own spelling (rule 4)."""
    found: set[int] = set()
    for m in pats.mention.finditer(text):
        after = text[m.end():]
        if _GLUED_AFTER.match(after) or _GLUED_BEFORE.search(text[max(m.start() - 2, 0):m.start()]):
            continue  # "A.I.", "E.g.", "U.S.A"
        if _WORDLIKE.fullmatch(m["lab"]) and _WORD_FOLLOWS.match(after):
            continue  # the article in "A person", the number in "2 hours"
        found.add(_position(m["lab"], labels))
    return found


def _names_several(text: str, pats: _Patterns, labels: Sequence[str]) -> bool:
    """Two different labels in one list, "A, B" or "a or b" (rule 5); both in the same case."""
    for m in pats.pair.finditer(text):
        a, b = m["a"], m["b"]
        if (a in labels) == (b in labels) and _position(a, labels) != _position(b, labels):
            return True
    return False


def parse_strict(text: str, labels: Sequence[str], option_texts: Sequence[str] = ()) -> int | str:
    """Presentation position of the answer, or ``REFUSED`` / ``UNPARSEABLE`` (rules: module docstring)."""
    normal = _normalise(text)
    if not normal.strip():
        return UNPARSEABLE
    pats = _patterns(tuple(labels))
    named, negated, masked = _named_option_texts(normal, option_texts)
    named |= _answer_labels(masked, pats, labels)
    mentioned = _mentioned_labels(masked, pats, labels)
    several = negated or _names_several(masked, pats, labels)
    if len(named) == 1 and mentioned <= named and not several:
        return next(iter(named))
    if not (named or mentioned or several) and _REFUSAL.search(normal):
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
