"""Answer parsing: unambiguous answers map to options, refusals and garble never do."""

import pytest

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
