"""Answer parsing: unambiguous answers map to options, refusals and garble never do."""

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
def test_paper_parser_reproduces_palign_regex(text, prefix, expected):
    assert parse_answer(text, LABELS, parser="paper", window_prefix=prefix) == expected


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
    assert len(CASES) >= 80
    assert read + undetermined + refused == len(CASES)
    wrongly_read = [text for (_, text, expected, _), o in zip(CASES, outcomes)
                    if expected == UNPARSEABLE and isinstance(o, int)]
    assert not wrongly_read, wrongly_read
    assert (read, undetermined, refused) == (sum(isinstance(e, int) for _, _, e, _ in CASES),
                                             sum(e == UNPARSEABLE for _, _, e, _ in CASES),
                                             sum(e == REFUSED for _, _, e, _ in CASES))
