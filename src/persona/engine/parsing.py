r"""Map generated text to an option, a refusal, or "unparseable"; never guess silently.

Two parsers:

* ``"letter-window"``: PAlign's ``process_answers``: ``re.search(r"[abcdeABCDE][^a-zA-Z]", text[:12])``,
  i.e. the first letter A-E (either case) followed by a non-letter within the first 12
  characters. It reads letters inside words ("I'd" -> D) and cannot tell a refusal from noise:
  a miss is PAlign's "UNK", which we report as unparseable. The class of letters generalises to
  the prompt's labels (both cases of letter labels). PAlign applied it to the decoded text after
  the header (for Llama-3, "\n\n" + reply; with the later "Option" cue, "\n\nOption" + reply):
  pass that leading text as ``window_prefix``.
  TRAIT's released code has no generation mode (likelihoods only), so there is no TRAIT parser.
* ``"strict"`` (default): an option only when the answer names exactly one option and does not
  negate it; it never guesses. The text is NFKC-normalised (full-width brackets and colons become
  ASCII) and curly apostrophes become straight ones. Then:

  1. **Option texts.** An option's full text (case-insensitive, whole words only, any run of
     spaces, without its final full stop) names that option. Longer texts are matched first and
     masked, so an option text inside a longer one ("Agree" in "Strongly Agree") counts only where
     it stands outside the longer one; being part of a word ("Agree" in "Disagree") never counts.
     A fragment of an option text is nothing.
  2. **Answer forms of a label** (each names the option it labels):

     * a label in brackets, bold, italics, backticks or double quotes anywhere, in either case:
       "(B)", "[b]", "(B).", "**(B)**", "**B**", "*B*", "`B`", '"B"';
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
     ("I'd", "A.I.", "A.M.", "B.Sc.", "E.g.", "E=mc^2", "A-level", "2023"), unless brackets delimit
     it. A bare label at a line start followed by a lower-case word is not an answer either: the
     article in "A person like me", the number in "2 hours", and also "B is ...". After a cue an
     upper-case label may be followed by any word ("Option A is closest"); a digit may not (a
     quantity: "Response: 2 hours").

     **Initials, names and transcripts.** A label at a line start followed by "." or ":" and a
     word is read only when that word is the first word of one of the option texts ("B.
     Moderately", "A: Strongly agree", "A. Explore ..."; which option's text is checked by rule
     7 only when the text is complete): otherwise the label may be an initial ("A. Lincoln"),
     a transcript's answer label ("A: Yes") or a label followed by a sentence ("B. I think so",
     "B: Yes", a paraphrase "C. Participating in ..."), and it is only a mention (rule 4).
     Without option texts no such word is accepted. "B." or "A:" at the end of a line, "B)",
     "(B).", "B -" and "B Moderately" are unaffected. Moreover a letter, a full stop and a space
     before another such initial ("A. A. Milne", "C. G. Jung", "D. H. Lawrence", "B. F. Skinner")
     or before a lower-case word ("E. coli", "S. aureus"; so also "b. yes") is an initial or an
     abbreviated word wherever it stands: no answer and no mention ("(B), as C. G. Jung put it"
     reads B).
     After a question label ("Q:", "Question:", "Q1:", or "Q." / "Q)" at a line start) every "A:"
     (either case, also "A1:", and "A." / "A)" at a line start) is the transcript's answer label
     and reads as the cue "Answer:": "Q: Do you worry?\nA: Yes, quite often." names nothing,
     "Q: ...\nA: (B)" and "Q: ...\nA: B" read B. "Answer: A" is a cue as always.
  3. **Lower case.** A lower-case letter is read only where it cannot be a word: in brackets, bold
     or quotes ("(b)", "b)", "**b**"), after a cue ending in a colon and not followed by a word ("answer: b"),
     or standing alone at a line start, followed by nothing, "." or ":" ("b", "b.", "b:"; and
     "b: moderately" under the word rule above).
     "The answer is a" or "I'd say a" are not read (an answer cut off by the token limit could be
     "... is a bit"), and a lower-case letter is never a mention (rule 4).
  4. **Mentions.** Every other stand-alone label in the prompt's own case ("C" in "B, but C
     too"; not "A" or a digit followed by a lower-case word, which is the article or a number;
     not glued, not an initial, as in rule 2) is a mention. A mention cannot give an answer, but
     it vetoes one.
  5. **Several options.** Two different labels in the same case joined by "," "/" "&" "-" "or"
     "and" "to" ("A, B", "a or b", "(A) or (C)", "2-3") mean several options.
  6. **Negation.** A label (answer form or mention) or an option text that is negated makes the
     whole answer unparseable: a negated option is not chosen, and which other option is meant
     is a guess ("I cannot choose A.", "I won't pick B.", "I'd never say C.", "Don't pick D",
     "Not option B", "anything but B", "I wouldn't say Strongly agree", "(B) is not me"). Negated
     means either
     (a) after a negation in the same clause: "not" (but not "why not", "not only"), "never",
     "cannot", any "...n't" (also without the apostrophe: "dont", "cant", "wont"), "no" (but not
     the interjection "No," / "No.", nor "no doubt"), "unable", "hardly", "no way", "by no means",
     "anything but", "everything but", "except",
     "other than", "rather than", "instead of", "apart from", "avoid", "reject", "exclude",
     "eliminate", "rule out", "refuse", "decline" (and their inflections), and a few foreign
     ones ("nicht", "kein", "nie", "pas", "jamais", "nunca", "non", "niet", "não", "не", "不",
     "没"). The negation reaches to the end of its clause: a sentence end (". ", "!", "?",
     ";"), a line break, "but", or a comma followed by "so" / "therefore" / "thus" / "hence".
     A comma alone does not end it ("I would not, under any circumstances, choose B" is
     negated); so "Never mind, (C)" and "I don't know, (B)" are unparseable (a lost answer,
     never a misread one), while "Not sure, but I'd pick (B)", "I don't worry much, so (D)" and
     "I can't choose. If I had to: (C)" read the option after the clause. A negation after the
     last label changes nothing ("(B) I don't worry much" reads B).
     (b) directly followed by a negation ("not", "never", "no" but not "no doubt", "wrong",
     "incorrect"), optionally after punctuation and "is" / "was" / "would be" / "seems" /
     "sounds": "(B) is not me", "B isn't", "B. Not really", "B is wrong", "Would I choose A? No.".

     Hedges are not negations: "Maybe (B)", "Probably (B)" and "Not sure, but I'd pick B" read
     B; "Not sure, but B" does not, because a bare "B" inside a sentence is a mention, not an
     answer form (rule 4). A contrast names two options and is unparseable: "B, not A" (a
     mention of A; here also a negated one), "B rather than A".

  Outcome (rule 7): exactly one option named by rules 1-3, no mention of another option, no
  rule-5 list and no negation (rule 6) -> that option's position. Letter and text must agree:
  "(B) <text of option D>" is unparseable. Otherwise, a refusal phrase ("As an AI ...", "I don't
  have personal feelings", "I cannot answer", "I'm sorry") with no option evidence at all (rules
  1-6) -> ``REFUSED``; everything else (nothing recognisable, an echoed option list, several
  options, a negated option, a refusal naming an option it refuses: "I cannot choose A") ->
  ``UNPARSEABLE``. A refusal that still names exactly one option, outside the refusal's clause
  ("As an AI I have no feelings, but I'd pick B.") is read as that option: the model did answer,
  and the caller's refusal rate counts only answers without one. Refusal phrases are detected in
  English only: a refusal in another language without option evidence is ``UNPARSEABLE``, as is
  any other-language text without one of the label forms above. Empty or whitespace text is
  ``UNPARSEABLE``.

  Cost: linear in the length of the text. No pattern can split one run of spaces between two
  of its parts (runs are matched possessively) or start with an optional run, and the checks
  after a match look at the text in place, never at a copy of the rest of the text: 100,000
  spaces, newlines, dashes or "A A A ..." parse in well under a second (tested).
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple, Sequence

REFUSED = "refused"
UNPARSEABLE = "unparseable"

# --- strict parser: the patterns -------------------------------------------------------------
# Runs of spaces use possessive quantifiers (``*+``) and no pattern starts with an optional run.
# Profiled before: the several-options pattern began with ``[(\[]?[ \t]*`` (a try at every space of
# a run, each scanning the rest of the run) and had ``[ \t]*[)\]]?[ \t]*`` (two runs that can trade
# characters: O(run^2) per label); the line-start pattern and ``_LOWER_ALONE`` had three such runs
# (O(run^3) per line start), the cue's gap one more; and every match copied the rest of the text
# (``text[m.end():]``). A reply of 100,000 spaces took over a minute.

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
#: What may stand between a cue and its label: spaces, markdown emphasis, a colon, "=", a dash
#: (possessive: no label is made of these characters, so giving some back never helps).
_CUE_GAP = r"[ \t*_:=\-–]*+"
#: Follows a label that is part of a word, an abbreviation, a number or a formula:
#: "I'd" (after the d), "A.I.", "E.g.", "E=mc^2", "A-level", "C++", "2023".
_GLUED_AFTER = re.compile(r"[\w']|[.=^+\-/]\w|[+#]")
#: A lower-case word follows: "A person", "2 hours", "b because".
_WORD_FOLLOWS = re.compile(r"[ \t]++[a-z]")
#: A lower-case label standing alone at a line start: nothing, "." or ":" (+ spaces) then the line's end,
#: or "." / ":" followed by a space (then ``_THEN_WORD`` decides: "b: moderately"; "b. yes" is an abbreviation).
_LOWER_ALONE = re.compile(r"(?:\*\*|__)?[ \t]*+[.:]?[ \t]*+(?:\*\*|__)?[ \t]*+(?:\n|$)|[.:][ \t]")
#: Labels that are also English words or numbers when a lower-case word follows: the article "A", digits.
_WORDLIKE = re.compile(r"A|\d+")
#: Initials: two or more capital letters, each with a full stop ("A. A." Milne, "C. G." Jung, "J.R.R.").
_INITIALS = re.compile(r"(?<![\w'.])[A-Z]\.(?:[ \t]?[A-Z]\.)+")
#: An abbreviated word before a lower-case word: "E. coli", "S. aureus", "b. yes".
_ABBREVIATED = re.compile(r"(?<![\w'.])[A-Za-z]\.[ \t]++[a-z]")
#: A question label: "Q:", "Question:", "Q1:", "**Q:**", and "Q." / "Q)" at a line start.
_QUESTION_LABEL = re.compile(
    r"(?<![\w'])(?:q|question)(?:[ \t]*+\d+)?(?:\*\*|__)?[ \t]*+:"
    r"|^[ \t>*#-]*+(?:\*\*|__)?Q(?:[ \t]*+\d+)?[.)](?=[ \t]|$)",
    re.IGNORECASE | re.MULTILINE,
)
#: A transcript's answer label (after a question label): "A:", "a:", "A1:", "**A:**", and "A." / "A)" at
#: a line start. Group ``lab`` is replaced by "Answer:".
_TRANSCRIPT_ANSWER = re.compile(
    r"(?<![\w'])(?P<lab>a(?:[ \t]*+\d+)?(?:\*\*|__)?[ \t]*+:)"
    r"|^[ \t>*#-]*+(?:\*\*|__)?(?P<dot>A(?:[ \t]*+\d+)?[.)])(?=[ \t]|$)",
    re.IGNORECASE | re.MULTILINE,
)
#: After a label at a line start: "." or ":" and a word -- "B. Moderately", "A: Yes", "A. Lincoln" (rule 2).
_THEN_WORD = re.compile(r"[ \t]*+(?:\*\*|__)?[ \t]*+[.:](?:\*\*|__)?[ \t]*+[*_\"“'(]*+(?P<word>[^\W\d_][\w'-]*+)")
#: An option text's first word.
_FIRST_WORD = re.compile(r"[^\W\d_][\w'-]*+")
#: A negation; it negates every label and option text after it in its clause (rule 6a).
_NEGATION = re.compile(
    r"(?<![\w'])(?:(?<!why )not(?![ \t]++only\b)|never|cannot|can[ \t]++not|unable|hardly"
    r"|no[ \t]++way|by[ \t]++no[ \t]++means"
    r"|(?:anything|everything)[ \t]++but|except|other[ \t]++than|rather[ \t]++than|instead[ \t]++of"
    r"|apart[ \t]++from|rule[ \t]++out|(?:avoid|reject|exclud|eliminat|refus|declin)\w*"
    r"|(?:do|does|did|is|are|was|were|would|could|should|must|might|need|have|has|had|ai|ca|wo)nt"
    r"|no(?![ \t]*+(?:[,.!?:;\-–—]|doubt\b))"
    r"|nicht|nie|niemals|kein\w*|pas|jamais|nunca|jam[aá]s|non(?!-)|niet|nooit|n[ãa]o"
    r"|не|нет|никогда)(?![\w'])"
    r"|(?<![\w'])\w+n't(?![\w'])|[不没沒]",
    re.IGNORECASE,
)
#: Ends a negation's clause: a sentence end, a line break, "but", ", so" / ", therefore" / ", thus" / ", hence".
_CLAUSE_END = re.compile(
    r"[.!?;](?=\s|$)|[\n。！？；]|(?<![\w'])but(?![\w'])"
    r"|,[ \t]*+(?:and[ \t]++)?(?:so|therefore|thus|hence)(?![\w'])",
    re.IGNORECASE,
)
#: Right after a label (and its brackets): a negation of it, "(B) is not me", "B isn't", "B. Not really" (rule 6b).
_NEGATED_AFTER = re.compile(
    r"[ \t]*+(?:[)\]\"”»*_`][ \t]*+)*+(?:[.,:;!?\-–—][ \t]*+)*+"
    r"(?:(?:is|was|would[ \t]++be|seems|sounds)[ \t]*+)?"
    r"(?:not|never|n't|no(?![ \t]*+doubt\b)|wrong|incorrect)(?![\w'])",
    re.IGNORECASE,
)
#: The words of ``_NEGATED_AFTER`` that ``_NEGATION`` may not find ("No." is no negation before a label).
_ONLY_AFTER = re.compile(r"wrong|incorrect|(?<![\w'])no(?![\w'])", re.IGNORECASE)
#: Stands in for a masked option text (not a word character, not lower case).
_MASK = "\ufffc"


@dataclass(frozen=True)
class _Patterns:
    """The strict parser's label patterns for one set of labels (each has a group ``lab``)."""

    #: "(B)", "[b]", "**B**", "*B*", "`B`", '"B"': brackets, bold, italics, backticks or double quotes.
    delimited: tuple[re.Pattern, ...]
    #: A label at a line start after spaces, a list bullet or "**"; optional brackets.
    line_start: re.Pattern
    #: A cue, the gap, then a label with optional brackets.
    cued: re.Pattern
    #: Any stand-alone label (case-sensitive: the prompt's own spelling), not glued (rule 2), and not
    #: "A" or a digit followed by a lower-case word (the article in "A person", the number in "2 hours").
    mention: re.Pattern
    #: Two labels joined by a list separator ("A, B", "a or b", "(A) or (C)", "2-3").
    pair: re.Pattern


class _Hit(NamedTuple):
    """A label found in the text: the option position, where the label starts, where its form ends."""

    position: int
    start: int
    end: int


def _label_alt(labels: Sequence[str]) -> str:
    return "|".join(re.escape(lab) for lab in sorted(labels, key=len, reverse=True))


@lru_cache(maxsize=32)
def _patterns(labels: tuple[str, ...]) -> _Patterns:
    alt = _label_alt(labels)
    lab = rf"(?P<lab>{alt})"
    mentioned = "|".join(re.escape(label) + (r"(?![ \t]++[a-z])" if _WORDLIKE.fullmatch(label) else "")
                         for label in sorted(labels, key=len, reverse=True))
    close = r"(?:[ \t]*+(?P<close>[)\]]))?"  # a closing bracket; trailing spaces stay outside the match
    # a label's start: not right after a letter or digit ("answered" is not "answer" + "e")
    starts = r"(?<![^\W_])"
    return _Patterns(
        delimited=tuple(
            re.compile(rf"{opening}[ \t]*+{lab}[ \t]*+{closing}", re.IGNORECASE)
            for opening, closing in ((r"[(\[]", r"[)\]]"), (r"\*\*", r"\*\*"),
                                     (r"(?<![*\w])\*(?![ \t])", r"(?<![ \t])\*(?!\*)"),  # italics: "*B*"
                                     ('["“«]', '["”»]'), ("`", "`"))
        ),
        line_start=re.compile(
            rf"^[ \t]*+(?:[-*•>#]++[ \t]++)?(?:\*\*|__)?[ \t]*+(?P<open>[(\[])?[ \t]*+{lab}{close}",
            re.IGNORECASE | re.MULTILINE,
        ),
        cued=re.compile(
            rf"\b(?P<cue>{_CUE_EN}|{_CUE_FOREIGN})(?P<gap>{_CUE_GAP})(?P<open>[(\[])?[ \t]*+{starts}{lab}{close}",
            re.IGNORECASE,
        ),
        # not glued: after "\w." as in "U.S.A" or "x=E", before what _GLUED_AFTER matches ("A.I.", "E.g.")
        mention=re.compile(rf"(?<![\w'])(?<!\w[.=^+\-/])(?P<lab>{mentioned})(?![\w']|[.=^+\-/]\w|[+#])"),
        pair=re.compile(
            rf"(?<![\w'])(?:[(\[][ \t]*+)?(?P<a>{alt})[ \t]*+(?:[)\]][ \t]*+)?(?:,|/|&|-|–|\bor\b|\band\b|\bto\b)"
            rf"[ \t]*+(?:[(\[][ \t]*+)?(?P<b>{alt})(?![\w']|[.=^+\-/]\w)",
            re.IGNORECASE,
        ),
    )


# --- strict parser: the rules ----------------------------------------------------------------


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).replace("\u2019", "'").replace("\u2018", "'")


def _named_option_texts(text: str, option_texts: Sequence[str]) -> tuple[set[int], str]:
    """Positions whose full option text occurs (rule 1), and the text with those occurrences masked."""
    named: set[int] = set()
    order = sorted(range(len(option_texts)), key=lambda k: len(option_texts[k]), reverse=True)
    for k in order:
        words = _normalise(option_texts[k]).strip().rstrip(".!?").split()
        if not words:
            continue
        pattern = re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)", re.IGNORECASE)
        text, count = pattern.subn(_MASK, text)
        if count:
            named.add(k)
    return named, text


def _rewrite_transcript(text: str) -> str:
    """After a question label, every transcript answer label ("A:", "A.") becomes the cue "Answer:" (rule 2)."""
    question = _QUESTION_LABEL.search(text)
    if not question:
        return text
    parts, last = [], 0
    for m in _TRANSCRIPT_ANSWER.finditer(text, question.end()):
        group = "lab" if m["lab"] else "dot"
        parts += [text[last:m.start(group)], "Answer:"]
        last = m.end(group)
    return "".join(parts) + text[last:]


def _abbreviation_letters(text: str) -> set[int]:
    """Indices of letters that are initials ("C. G. Jung") or abbreviate a word ("E. coli") (rule 2)."""
    skip = {m.start() for m in _ABBREVIATED.finditer(text)}
    for m in _INITIALS.finditer(text):
        skip.update(i for i in range(m.start(), m.end()) if text[i].isalpha())
    return skip


@lru_cache(maxsize=32)
def _positions(labels: tuple[str, ...]) -> dict[str, int]:
    """Label spelling -> position: the prompt's own spelling first, then the other case."""
    index = {lab.casefold(): k for k, lab in reversed(list(enumerate(labels)))}
    index.update({lab: k for k, lab in reversed(list(enumerate(labels)))})
    return index


def _position(found: str, labels: Sequence[str]) -> int:
    index = _positions(tuple(labels))
    return index[found] if found in index else index[found.casefold()]


@lru_cache(maxsize=256)
def _first_words(option_texts: tuple[str, ...]) -> frozenset[str]:
    """The first word of each option text, case-folded ("very", "moderately", "explore")."""
    words = (_FIRST_WORD.search(_normalise(t)) for t in option_texts)
    return frozenset(w.group().casefold() for w in words if w)


def _answer_labels(text: str, pats: _Patterns, labels: Sequence[str], skip: set[int],
                   first_words: frozenset[str]) -> list[_Hit]:
    """Labels in an answer form (rules 2 and 3)."""
    found: list[_Hit] = []
    for pattern in pats.delimited:
        found += [_Hit(_position(m["lab"], labels), m.start("lab"), m.end()) for m in pattern.finditer(text)]
    for m in pats.line_start.finditer(text):
        if m.start("lab") in skip:
            continue  # "C. G. Jung", "E. coli"
        if m["close"]:
            ok = True  # "B)", "b)", "(B)"
        elif _GLUED_AFTER.match(text, m.end()) or _WORD_FOLLOWS.match(text, m.end()):
            ok = False  # "A.I.", "E=mc^2", "A person", "2 hours"
        else:
            ok = m["lab"] in labels or bool(_LOWER_ALONE.match(text, m.end()))
            word = None if m["open"] else _THEN_WORD.match(text, m.end())
            if ok and word:  # "B. Moderately" is an answer; "A: Yes", "A. Lincoln", "B. I think" are not
                ok = word["word"].casefold() in first_words
        if ok:
            found.append(_Hit(_position(m["lab"], labels), m.start("lab"), m.end()))
    for m in pats.cued.finditer(text):
        end = m.end()
        colon = ":" in m["gap"] or "=" in m["gap"]
        if _IS_FOREIGN_CUE.fullmatch(m["cue"]) and not colon:
            continue
        if m["open"] and m["close"]:
            ok = True
        elif m.start("lab") in skip:
            ok = False  # "Answer: C. G. Jung"
        elif _GLUED_AFTER.match(text, end) or (m["lab"].isdigit() and _WORD_FOLLOWS.match(text, end)):
            ok = False  # "answered", "Response: 2 hours"
        elif m["lab"] in labels:
            ok = True  # "Option A is closest"
        else:  # lower case: only "answer: b", never "the answer is a" (maybe "... is a bit")
            ok = colon and not _WORD_FOLLOWS.match(text, end)
        if ok:
            found.append(_Hit(_position(m["lab"], labels), m.start("lab"), end))
    return found


def _mentioned_labels(text: str, pats: _Patterns, labels: Sequence[str], skip: set[int]) -> list[_Hit]:
    """Stand-alone labels in the prompt's own spelling (rule 4)."""
    found: list[_Hit] = []
    index = _positions(tuple(labels))  # the prompt's own spelling only
    for m in pats.mention.finditer(text):  # never "A.I.", "E.g.", "U.S.A", "A person", "2 hours"
        if m.start() not in skip:  # "C. G. Jung", "E. coli"
            found.append(_Hit(index[m["lab"]], m.start(), m.end()))
    return found


def _names_several(text: str, pats: _Patterns, labels: Sequence[str]) -> bool:
    """Two different labels in one list, "A, B" or "a or b" (rule 5); both in the same case."""
    for m in pats.pair.finditer(text):
        a, b = m["a"], m["b"]
        if (a in labels) == (b in labels) and _position(a, labels) != _position(b, labels):
            return True
    return False


def _any_negated(text: str, spans: Sequence[tuple[int, int]]) -> bool:
    """Whether a label or masked option text (start, end) is negated (rule 6).

    (a) It starts after a negation with no clause end in between: take the last negation ending at
    or before it and the first clause end after that negation (both found once, by bisection).
    (b) A negation follows it directly.
    """
    negation_ends = [m.end() for m in _NEGATION.finditer(text)]
    if not negation_ends and not _ONLY_AFTER.search(text):
        return False  # no negation word at all: neither (a) nor (b) can hold
    clause_ends = [m.start() for m in _CLAUSE_END.finditer(text)]
    for start, end in spans:
        i = bisect_right(negation_ends, start)
        if i:
            j = bisect_left(clause_ends, negation_ends[i - 1])
            if j == len(clause_ends) or clause_ends[j] >= start:
                return True
        if _NEGATED_AFTER.match(text, end):
            return True
    return False


def parse_strict(text: str, labels: Sequence[str], option_texts: Sequence[str] = ()) -> int | str:
    """Presentation position of the answer, or ``REFUSED`` / ``UNPARSEABLE`` (rules: module docstring)."""
    normal = _normalise(text)
    if not normal.strip():
        return UNPARSEABLE
    pats = _patterns(tuple(labels))
    named, masked = _named_option_texts(normal, option_texts)
    masked = _rewrite_transcript(masked)
    skip = _abbreviation_letters(masked)
    answers = _answer_labels(masked, pats, labels, skip, _first_words(tuple(option_texts)))
    mentions = _mentioned_labels(masked, pats, labels, skip)
    masks = [(m.start(), m.end()) for m in re.finditer(_MASK, masked)]
    negated = _any_negated(masked, [(h.start, h.end) for h in answers + mentions] + masks)
    named |= {h.position for h in answers}
    mentioned = {h.position for h in mentions}
    several = _names_several(masked, pats, labels)
    if len(named) == 1 and mentioned <= named and not several and not negated:
        return next(iter(named))
    if not (named or mentioned or several or negated) and _REFUSAL.search(normal):
        return REFUSED
    return UNPARSEABLE


def parse_letter_window(text: str, labels: Sequence[str], window_prefix: str = "") -> int | str:
    """PAlign's regex over the first 12 characters (see module docstring)."""
    chars = "".join(sorted({c for lab in labels for c in (lab, lab.lower(), lab.upper())}))
    if any(len(lab) != 1 for lab in labels):
        raise ValueError("The letter-window parser reads single-character labels only")
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
    if parser == "letter-window":
        return parse_letter_window(text, labels, window_prefix)
    raise ValueError(f"Unknown parser '{parser}': use 'strict' or 'letter-window'")


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
