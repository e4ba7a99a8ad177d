"""Answer parsing: unambiguous answers map to options, refusals and garble never do."""

import random
import time

import pytest
from parser_corpus import CASES, PROMPTS

from persona.engine import REFUSED, UNPARSEABLE, parse_answer
from persona.papi.data import OPTIONS as PAPI_OPTIONS

LABELS = ("A", "B", "C", "D", "E")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("A", 0),
        (" (B). Moderately Accurate", 1),
        ("Option C: Neither", 2),
        ("Answer: D", 3),
        ("E.", 4),
        ("B Moderately Accurate", 1),
        ("The answer is (B).", 1),
        ("I would say Very Inaccurate.", 4),
        ("Neither Accurate Nor Inaccurate", 2),
        ("As an AI I have no feelings, but (A) fits best.", 0),
        ("A person like me would agree", UNPARSEABLE),  # the article is not option A
        ("(A) or (B)", UNPARSEABLE),
        ("", UNPARSEABLE),
        ("qzx!! 42 ##", UNPARSEABLE),
        ("As an AI language model, I don't have personal experiences.", REFUSED),
        ("I'm sorry, but I cannot answer that.", REFUSED),
        ("I don't have personal feelings or behaviors.", REFUSED),
    ],
)
def test_strict_parser(text, expected):
    assert parse_answer(text, LABELS, option_texts=PAPI_OPTIONS) == expected


def test_strict_parser_digits_and_no_option_texts():
    labels = ("1", "2", "3", "4")
    assert parse_answer("2 = Help at once", labels) == 1
    assert parse_answer("3", labels) == 2
    assert parse_answer("I'd pick 5", labels) == UNPARSEABLE


@pytest.mark.parametrize(
    "text,prefix,expected",
    [
        ("(A). Very", "", 0),
        ("b) yes", "", 1),
        ("I'd say B.", "", 3),  # PAlign's regex reads the d of "I'd" as option D
        ("A", "", UNPARSEABLE),  # needs a following non-letter
        ("A<|im_end|>", "", 0),
        ("As an AI, I", "", UNPARSEABLE),  # a refusal is just a miss ("UNK") for PAlign
        (" B) Moder", "\n\nOption", 1),
        ("            C.", "", UNPARSEABLE),  # outside the 12-character window
    ],
)
def test_letter_window_parser_reproduces_palign_regex(text, prefix, expected):
    assert parse_answer(text, LABELS, parser="letter-window", window_prefix=prefix) == expected


def test_unknown_parser_is_an_error():
    with pytest.raises(ValueError):
        parse_answer("A", LABELS, parser="lenient")


# --- the labelled corpus (tests/parser_corpus.py) -------------------------------------------------


@pytest.mark.parametrize("prompt,text,expected,why", CASES, ids=[f"{p}:{t[:40]!r}" for p, t, _, _ in CASES])
def test_strict_parser_on_the_corpus(prompt, text, expected, why):
    labels, option_texts = PROMPTS[prompt]
    assert parse_answer(text, labels, option_texts=option_texts) == expected, why


def test_corpus_counts():
    outcomes = [parse_answer(text, PROMPTS[prompt][0], option_texts=PROMPTS[prompt][1]) for prompt, text, _, _ in CASES]
    read = sum(isinstance(o, int) for o in outcomes)
    undetermined = sum(o == UNPARSEABLE for o in outcomes)
    refused = sum(o == REFUSED for o in outcomes)
    print(f"strict parser on {len(CASES)} labelled answers: read {read}, unparseable {undetermined}, refused {refused}")
    assert len(CASES) >= 230
    assert read + undetermined + refused == len(CASES)
    wrongly_read = [text for (_, text, expected, _), o in zip(CASES, outcomes)
                    if expected == UNPARSEABLE and isinstance(o, int)]
    assert not wrongly_read, wrongly_read
    assert (read, undetermined, refused) == (sum(isinstance(e, int) for _, _, e, _ in CASES),
                                             sum(e == UNPARSEABLE for _, _, e, _ in CASES),
                                             sum(e == REFUSED for _, _, e, _ in CASES))


# --- negation, initials, transcripts: generated strings beyond the corpus -------------------------

#: Answer forms that name option ``k`` of the PAPI prompt (label ``lab``, option text ``text``).
ANSWER_FORMS = ("{lab}", "({lab})", "({lab}).", "**{lab}**", "option {lab}", "Option {lab}", "({lab}). {text}",
                "{text}", "`{lab}`", '"{lab}"')
NEGATED_BEFORE = ("I cannot choose {}", "I can't say {}", "I won't pick {}", "I would never choose {}",
                  "I'd never say {}", "Don't pick {}", "Do not select {}", "Not {}", "Definitely not {}",
                  "I'm unable to choose {}", "I refuse to go with {}", "Anything but {}",
                  "I would not, under any circumstances, choose {}", "There is no way I'd pick {}",
                  "I wouldn't opt for {}", "Never {}", "I'd rule out {}", "I would avoid {}", "I'd hardly say {}",
                  "I am not going to pick {}", "I cant choose {}", "Except {}", "Nicht {}", "I shouldn't choose {}",
                  "By no means {}", "I'd choose anything other than {}")
NEGATED_AFTER = ("{} is not right", "{} isn't me", "{}? No way.", "{} is wrong", "{} - not really", "{}, never")


@pytest.mark.parametrize("k", range(5))
def test_negated_answer_forms_are_never_read(k):
    """Every answer form that alone reads option k is unparseable once negated, before or after."""
    lab, text = LABELS[k], PAPI_OPTIONS[k]
    forms = [f.format(lab=lab, text=text) for f in ANSWER_FORMS]
    assert [parse_answer(f, LABELS, option_texts=PAPI_OPTIONS) for f in forms] == [k] * len(forms)  # positive control
    negated = [n.format(f) for f in forms for n in NEGATED_BEFORE + NEGATED_AFTER]
    read = [t for t in negated if parse_answer(t, LABELS, option_texts=PAPI_OPTIONS) != UNPARSEABLE]
    assert not read, read


def test_a_clause_end_lifts_a_negation_and_a_negation_after_the_answer_is_harmless():
    for text in ("I can't choose. If I had to: (C)", "Not sure, but I'd pick (C)", "I don't have feelings, so (C)",
                 "(C) I don't worry much", "I'm not sure.\n(C)", "No, (C)", "I have no idea; (C)", "Why not (C)?"):
        assert parse_answer(text, LABELS, option_texts=PAPI_OPTIONS) == 2, text


@pytest.mark.parametrize("lab", LABELS)
def test_initials_names_and_transcript_labels_are_not_options(lab):
    texts = [f"{lab}. {x}. {name} wrote it" for x in "AGHJR" for name in ("Milne", "Jung", "Smith")]
    texts += [f"{lab}. {species} is a bacterium" for species in ("coli", "aureus", "subtilis")]
    texts += [f"{lab}. {name} said so" for name in ("Lincoln", "Einstein", "Darwin")]
    texts += [f"Q: Do you worry?\n{lab}: Yes", f"{lab}: Yes", f"{lab}: No, never", f"Q. Really?\nA. Sure, {lab} too",
              f"q: do you worry?\na: sometimes, {lab.lower()}"]
    read = [t for t in texts if isinstance(parse_answer(t, LABELS, option_texts=PAPI_OPTIONS), int)]
    assert not read, read
    # ... while the same letter before its own option text, or after a transcript's "A:", is read
    k = LABELS.index(lab)
    for text in (f"{lab}. {PAPI_OPTIONS[k]}", f"{lab}: {PAPI_OPTIONS[k]}", f"Q: Do you worry?\nA: ({lab})",
                 f"Q: Do you worry?\nA: {lab}", f"Answer: {lab}"):
        assert parse_answer(text, LABELS, option_texts=PAPI_OPTIONS) == k, text


def test_no_silent_outcome_on_random_text():
    """Any text gives an option position, "refused" or "unparseable", and never raises."""
    tokens = ["A", "B", "C", "b", "(B)", "**", "Answer:", "answer is", "I'd pick", "not", "never", "don't", "but", ",",
              ".", ":", "\n", " ", "   ", "\t", "Q:", "A:", "E.", "coli", "C. G.", "Very Accurate", "Moderately",
              "As an AI", "I'm sorry", "or", "-", "/", "1", "2", "答案：", "（", "）", "’", "é", "\u200b", "*", "`", '"', "I"]
    rng = random.Random(28)
    allowed = set(range(len(LABELS))) | {REFUSED, UNPARSEABLE}
    for _ in range(3000):
        text = "".join(rng.choice(tokens) + rng.choice(["", " "]) for _ in range(rng.randint(0, 12)))
        assert parse_answer(text, LABELS, option_texts=PAPI_OPTIONS) in allowed, text
        assert parse_answer(text, ("1", "2", "3", "4")) in {0, 1, 2, 3, REFUSED, UNPARSEABLE}, text


# --- cost: linear in the length of the text ------------------------------------------------------------

LONG_RUNS = {
    "spaces": lambda n: "x" + " " * n + "x",
    "spaces after a label": lambda n: "B" + " " * n,
    "spaces before a word": lambda n: " " * n + "x",
    "tabs": lambda n: "answer" + "\t" * n + "x",
    "newlines": lambda n: "x" + "\n" * n + "x",
    "dashes": lambda n: "-" * n + "x",
    "A A A": lambda n: "A " * (n // 2),
    "a long word": lambda n: "x" * n,
    "negations": lambda n: "not " * (n // 4) + "B",
    "initials": lambda n: "A. " * (n // 3),
}


def _seconds(text: str) -> float:
    """Best of 3 parse times; one run past 2 s is enough (the test fails on it, no need to wait 3 times)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        parse_answer(text, LABELS, option_texts=PAPI_OPTIONS)
        best = min(best, time.perf_counter() - start)
        if best > 2.0:
            break
    return best


@pytest.mark.parametrize("run", LONG_RUNS)
def test_parsing_is_linear_in_long_runs(run):
    """10x the text costs about 10x the time (quadratic: 100x; the old parser took minutes on 100,000 spaces).

    The two sizes are timed side by side (best of 3); the small one is floored at 1 ms so that timer
    noise on a tiny time cannot fail the ratio."""
    # fail fast first: a cubic parser takes about a second on 1,000 characters (hours on 10,000),
    # a quadratic one about a second on 10,000 (minutes on 100,000); this one takes milliseconds
    assert _seconds(LONG_RUNS[run](1_000)) < 0.1, run
    small = _seconds(LONG_RUNS[run](10_000))
    assert small < 0.25, (run, small)
    large = _seconds(LONG_RUNS[run](100_000))
    assert large < 2.0, (run, large)
    assert large < 30 * max(small, 1e-3), (run, small, large)
