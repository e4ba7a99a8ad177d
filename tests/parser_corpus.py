"""Labelled answers for the strict parser: what small chat models write after a PAPI or TRAIT prompt.

Each case is ``(prompt, text, expected, why)``: ``prompt`` names one of ``PROMPTS`` (labels and option
texts in presentation order), ``expected`` is the presentation position read (0 = first option),
``"refused"`` or ``"unparseable"``. The texts imitate greedy replies of small instruction-tuned models,
often cut off by the token limit (8 new tokens for PAPI, 12-15 for TRAIT); the PAPI assistant turn
starts with "(", so many replies start with the letter and its closing bracket ("B). Moder...").
"""

from __future__ import annotations

from persona.papi.data import OPTIONS as PAPI_OPTIONS

#: One TRAIT item (Openness, row 0) in the official original order: high1, low1, high2, low2.
TRAIT_OPTIONS = (
    "Explore each artist's booth to discover unique pieces and engage with the creators about their inspirations.",
    "Visit the top-rated food stalls first to enjoy the local flavors that everyone recommends.",
    "Participate in a hands-on workshop to learn a new craft or artistic technique offered at the fair.",
    "Stick to watching the main stage performances for a mix of popular local bands and traditional music.",
)

#: prompt name -> (labels, option texts in presentation order)
PROMPTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "papi": (("A", "B", "C", "D", "E"), PAPI_OPTIONS),  # "(A). Very Accurate" ... "(E). Very Inaccurate"
    "papi_reversed": (("A", "B", "C", "D", "E"), PAPI_OPTIONS[::-1]),  # A = Very Inaccurate
    "trait_abcd": (("A", "B", "C", "D"), TRAIT_OPTIONS),  # TRAIT templates 1 and 3
    "trait_1234": (("1", "2", "3", "4"), TRAIT_OPTIONS),  # TRAIT template 2 ("1 = ...")
}

R, U = "refused", "unparseable"

CASES: list[tuple[str, str, int | str, str]] = [
    # --- PAPI: clear single answers ---------------------------------------------------------------
    ("papi", "B", 1, "a lone label"),
    ("papi", "(B)", 1, "bracketed"),
    ("papi", "(B).", 1, "bracketed with the template's full stop"),
    ("papi", "B.", 1, "label and full stop"),
    ("papi", "B). Moderately Accurate", 1, "after the '(' cue: closing bracket, then the matching text"),
    ("papi", "A). Very Accurate", 0, "after the '(' cue"),
    ("papi", "E). Very Inacc", 4, "cut off inside the option text"),
    ("papi", "D). Moderately", 3, "cut off: a fragment of the text is no evidence, the label is"),
    ("papi", "C). Neither Accurate Nor Inaccurate", 2, "label and text agree"),
    ("papi", "**B**", 1, "markdown bold"),
    ("papi", "**(B)** Moderately Accurate", 1, "bold bracketed label and matching text"),
    ("papi", "**B. Moderately Accurate**", 1, "bold line"),
    ("papi", "Answer: b", 1, "lower case after a colon cue"),
    ("papi", "answer: (b)", 1, "lower case in brackets"),
    ("papi", "b", 1, "a lone lower-case label"),
    ("papi", "(b)", 1, "lower case in brackets"),
    ("papi", "b) Moderately Accurate", 1, "lower case with a closing bracket"),
    ("papi", "I'd say A.", 0, "cue 'say'; the d of I'd is not option D"),
    ("papi", "I would choose C", 2, "cue 'choose'"),
    ("papi", "I would choose C because it fits me", 2, "cue 'choose', upper-case label, a reason follows"),
    ("papi", "My answer is D.", 3, "cue 'answer is'"),
    ("papi", "Option E", 4, "cue 'option'"),
    ("papi", "Option C: Neither", 2, "cue 'option' and a fragment of the text"),
    ("papi", "The answer is (C) Neither Accurate Nor Inaccurate", 2, "letter and its own text agree"),
    ("papi", "C) Neither", 2, "closing bracket at the start"),
    ("papi", "Moderately Accurate", 1, "an option's full text alone"),
    ("papi", "moderately inaccurate", 3, "full text, lower case"),
    ("papi", "Very Inaccurate.", 4, "'Very Inaccurate' is not 'Very Accurate'"),
    ("papi", "I would say Very Accurate.", 0, "full text inside a sentence"),
    ("papi", "Neither Accurate Nor Inaccurate", 2, "the longest text wins over none of its parts"),
    ("papi", "Answer:\nB", 1, "the label on its own line"),
    ("papi", "- B", 1, "a list bullet"),
    ("papi", "**Answer:** D", 3, "bold cue"),
    ("papi", "The correct option is (A).", 0, "cue and brackets"),
    ("papi", "B\n\nA person who worries a lot", 1, "the article on the next line is not option A"),
    ("papi", "（B）", 1, "full-width brackets"),
    ("papi", "I’d pick E", 4, "curly apostrophe"),
    ("papi", "B Moderately Accurate", 1, "label then its text"),
    ("papi", "I'll go with B.", 1, "cue 'go with'"),
    ("papi", "I think the answer is B", 1, "cue 'answer is'"),
    ("papi", 'The answer is "B".', 1, "double quotes"),
    ("papi", "No, Very Inaccurate", 4, "'No,' is not a negation of the option text"),
    # --- PAPI: refusals ---------------------------------------------------------------------------
    ("papi", "As an AI, I don't have personal feelings", R, "refusal, cut off"),
    ("papi", "As an AI language model, I do not", R, "refusal, cut off"),
    ("papi", "I cannot answer that.", R, "refusal"),
    ("papi", "I'm sorry, but I can't provide", R, "refusal, cut off"),
    ("papi", "A.I. cannot answer this.", R, "A.I. is an abbreviation, not option A; 'cannot answer'"),
    ("papi", "I don't have personal experiences or emotions", R, "refusal"),
    ("papi", "I am an AI and do not worry", R, "refusal"),
    ("papi", "As an AI I have no feelings, but I'd pick B.", 1, "a refusal that names one option is read"),
    ("papi", "I'm sorry, as an AI I can't choose. If I had to: (C)", 2, "a refusal that names one option"),
    ("papi", "As an AI, I cannot choose between A and B.", U, "a refusal naming two options: unparseable"),
    # --- PAPI: several options ----------------------------------------------------------------------
    ("papi", "A, B", U, "two letters"),
    ("papi", "A or B", U, "two letters"),
    ("papi", "(A) or (B)", U, "two bracketed letters"),
    ("papi", "(A) Very Accurate ... (C)", U, "two bracketed letters"),
    ("papi", "A.\nB.\nC.\nD.\nE.", U, "echoed list of labels"),
    ("papi", "(A). Very Accurate\n(B). Moderately Accurate\n(C). Neither", U, "echoed option list"),
    ("papi", "Options:\n(A). Very Accurate\n(B).", U, "echoed option list, cut off"),
    ("papi", "B, but C could also fit", U, "a second letter vetoes the first"),
    ("papi", "b or c", U, "lower-case pair"),
    ("papi", "Very Accurate or Moderately Accurate", U, "two option texts"),
    ("papi", "I'd say B or maybe C", U, "a second letter vetoes the cue"),
    ("papi", "B/D", U, "slash pair"),
    ("papi", "not very accurate", U, "a negated option text names no option"),
    ("papi", "I wouldn't say Very Accurate", U, "a negated option text names no option"),
    # --- PAPI: letter and text disagree -------------------------------------------------------------
    ("papi", "(B). Very Inaccurate", U, "letter B, text of E"),
    ("papi", "A Very Inaccurate", U, "letter A, text of E"),
    ("papi_reversed", "(B). Moderately Accurate", U, "reversed order: B shows Moderately Inaccurate"),
    ("papi_reversed", "(B). Moderately Inaccurate", 1, "reversed order: letter and text agree"),
    ("papi_reversed", "A). Very Inaccurate", 0, "reversed order: A is Very Inaccurate"),
    # --- PAPI: letters inside words, abbreviations, formulas, articles -----------------------------
    ("papi", "E.g. I would rather not", U, "E.g. is an abbreviation"),
    ("papi", "E=mc^2", U, "a formula"),
    ("papi", "I'd", U, "the d of I'd"),
    ("papi", "A person like me would agree", U, "the article"),
    ("papi", "I am a very anxious person", U, "the article in lower case"),
    ("papi", "A lot of the time, yes", U, "the article"),
    ("papi", "Accurate", U, "part of several option texts, the full text of none"),
    ("papi", "Inaccurate", U, "part of several option texts, the full text of none"),
    ("papi", "I think C is right", U, "a bare mention without an answer form is not enough"),
    ("papi", "D.C. is a nice city", U, "an abbreviation"),
    ("papi", "The answer is a bit", U, "lower-case 'a' after a word cue: cut off, may be 'a bit'"),
    ("papi", "I'd say a little", U, "lower-case 'a' as the article"),
    ("papi", "A-level students often", U, "a compound word"),
    # --- PAPI: garbage and empty --------------------------------------------------------------------
    ("papi", "", U, "empty"),
    ("papi", "   \n ", U, "whitespace"),
    ("papi", "qzx!! 42 ##", U, "noise"),
    ("papi", "You worry about things.", U, "echo of the statement"),
    ("papi", "Given a statement of you: \"You", U, "echo of the prompt"),
    ("papi", "Yes", U, "not an option"),
    ("papi", "I worry about things sometimes", U, "a sentence with no option"),
    ("papi", "(F)", U, "not a label"),
    # --- PAPI: other languages ----------------------------------------------------------------------
    ("papi", "Respuesta: B", 1, "Spanish label form"),
    ("papi", "Antwort: (C)", 2, "German label form"),
    ("papi", "Réponse : D", 3, "French label form with a space before the colon"),
    ("papi", "答案：A", 0, "Chinese label form, full-width colon"),
    ("papi", "Creo que la opción B es la mejor", U, "Spanish prose: a mention only"),
    ("papi", "Ich würde B wählen", U, "German prose: a mention only"),
    ("papi", "Como IA, no tengo sentimientos personales", U, "Spanish refusal: refusals are detected in English only"),
    ("papi", "Je suis une IA, je ne peux pas répondre", U, "French refusal: unparseable"),
    ("papi", "Muy preciso", U, "translated option text"),
    # --- TRAIT, letters -----------------------------------------------------------------------------
    ("trait_abcd", "A. Explore each artist's booth to discover unique", 0, "label, text cut off"),
    ("trait_abcd", "C", 2, "a lone label"),
    ("trait_abcd", "Answer: D", 3, "cue"),
    ("trait_abcd", "D: Stick to watching the main stage performances", 3, "template 3 style"),
    ("trait_abcd", "Visit the top-rated food stalls first to enjoy the local flavors that everyone recommends.",
     1, "the full option text"),
    ("trait_abcd", "B. " + TRAIT_OPTIONS[2], U, "letter B, full text of C"),
    ("trait_abcd", "I would suggest option C, participating in a workshop", 2, "cue 'option'"),
    ("trait_abcd", "A\nB\nC\nD", U, "echoed labels"),
    ("trait_abcd", "A or C", U, "two letters"),
    ("trait_abcd", "E", U, "not a label of a four-option prompt"),
    ("trait_abcd", "A great way to spend your time", U, "the article"),
    ("trait_abcd", "As an AI, I don't have personal preferences, but", R, "refusal, cut off"),
    ("trait_abcd", "I'm sorry, I cannot make", R, "refusal, cut off"),
    ("trait_abcd", "**C. Participate in a hands-on workshop**", 2, "bold"),
    ("trait_abcd", "c", 2, "a lone lower-case label"),
    ("trait_abcd", "The best choice is B.", 1, "cue 'choice is'"),
    # --- TRAIT, digits ------------------------------------------------------------------------------
    ("trait_1234", "2", 1, "a lone digit"),
    ("trait_1234", "Response: 3", 2, "cue"),
    ("trait_1234", "3 = Participate in a hands-on workshop", 2, "template 2 style"),
    ("trait_1234", "4.", 3, "digit and full stop"),
    ("trait_1234", "1 or 2", U, "two digits"),
    ("trait_1234", "2 hours at the fair", U, "a number, not a label"),
    ("trait_1234", "I'd pick 5", U, "not a label"),
    ("trait_1234", "2023 was a good year", U, "part of a number"),
    ("trait_1234", "1 = Explore\n2 = Visit\n3 = Participate", U, "echoed option list"),
    ("trait_1234", "I'm sorry, but I can't choose", R, "refusal"),
    ("trait_1234", "(4)", 3, "bracketed digit"),
    ("trait_1234", "Response: 2 hours", U, "a quantity after the cue, not a label"),
    ("trait_1234", "2 = " + TRAIT_OPTIONS[3].rstrip("."), U, "digit 2, full text of 4 (without its full stop)"),
]
