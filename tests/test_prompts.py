"""The papers' prompts (``persona.papi.prompts``, ``persona.trait.prompts``), character for character,
and the engine's prompt construction invariants.

Expected strings are the outputs of PAlign ``main.py`` (TEMPLATE, few-shot system prompt) and
TRAIT ``trait/src/util/prompts.py`` (get_prompt_4_v1/v2/v3) for a sample item, written out.
"""

import pytest

from persona.engine import MCItem, build_prompt, order_permutation
from persona.papi.data import OPTIONS as PAPI_OPTIONS
from persona.papi.prompts import TEMPLATE as PAPI_TEMPLATE
from persona.papi.prompts import fewshot_system
from persona.trait.prompts import TEMPLATES as TRAIT_TEMPLATES

PAPI_WORRY = (
    'Given a statement of you: "You worry about things."\n'
    "Please choose from the following options to identify how accurately this statement describes you.\n"
    "Options:\n"
    "(A). Very Accurate\n"
    "(B). Moderately Accurate\n"
    "(C). Neither Accurate Nor Inaccurate\n"
    "(D). Moderately Inaccurate\n"
    "(E). Very Inaccurate\n"
)

Q = "Your friend asks for help. What do you do?"
H1, L1, H2, L2 = "Help at once.", "Ignore it.", "Offer a plan.", "Say no."
TRAIT_ITEM = MCItem(Q, (H1, L1, H2, L2))

TRAIT1 = (
    'Given a situation: "{q}" \n'
    "Please choose from the following options to identify which suggestion you would like to give.\n"
    "Options:\nA. {a}\nB. {b}\nC. {c}\nD. {d}\n\nAnswer: \n"
)
TRAIT2 = (
    "Now I will briefly describe a situation. Please read a given situation and tell me which option that you "
    "want to suggest.\nWrite your response among the following options:\n1 = {a}\n2 = {b}\n3 = {c}\n4 = {d}\n"
    "Please answer the suggestion, even if you are not completely sure of your response.\n\nSituation: {q}\n\n"
    "Response: "
)
TRAIT3 = "Question: {q}\nA: {a}\nB: {b}\nC: {c}\nD: {d}\nAnswer: "


def test_papi_template_matches_palign_text():
    prompt = build_prompt(MCItem("Worry about things", PAPI_OPTIONS), PAPI_TEMPLATE)
    assert prompt.user == PAPI_WORRY  # the item text is lower-cased, as PAlign's generateAnswer does
    assert prompt.labels == ("A", "B", "C", "D", "E")
    assert prompt.assistant_prefix == ""


def test_papi_reversed_order_shows_options_reversed_and_records_identities():
    prompt = build_prompt(MCItem("Worry about things", PAPI_OPTIONS), PAPI_TEMPLATE,
                          permutation=order_permutation(5, "reversed"))
    assert "(A). Very Inaccurate\n(B). Moderately Inaccurate\n(C). Neither" in prompt.user
    assert prompt.identity_of_position == (4, 3, 2, 1, 0)


def test_papi_fewshot_system_joins_like_palign():
    expected = ("Here are some of your behaviors and your level of recognition towards them;"
                "Worry about things:Very Accurate;Make friends easily:Unknown")
    assert fewshot_system([("Worry about things", 5), ("Make friends easily", 0)]) == expected


@pytest.mark.parametrize("index,expected", [(0, TRAIT1), (1, TRAIT2), (2, TRAIT3)])
def test_trait_templates_match_official_text_in_both_orders(index, expected):
    template = TRAIT_TEMPLATES[index]
    original = build_prompt(TRAIT_ITEM, template)
    assert original.user == expected.format(q=Q, a=H1, b=L1, c=H2, d=L2)
    # TRAIT's rev=True order: A=low1, B=high1, C=low2, D=high2
    rev = build_prompt(TRAIT_ITEM, template, permutation=order_permutation(4, "pair_swapped"))
    assert rev.user == expected.format(q=Q, a=L1, b=H1, c=L2, d=H2)
    assert rev.identity_of_position == (1, 0, 3, 2)
    assert original.labels == (("1", "2", "3", "4") if index == 1 else ("A", "B", "C", "D"))


def test_label_override_and_validation():
    prompt = build_prompt(TRAIT_ITEM, TRAIT_TEMPLATES[2], labels=("1", "2", "3", "4"))
    assert prompt.user.startswith(f"Question: {Q}\n1: {H1}\n2: {L1}\n")
    with pytest.raises(ValueError):
        build_prompt(TRAIT_ITEM, TRAIT_TEMPLATES[0], permutation=(0, 0, 1, 2))
    with pytest.raises(ValueError):
        build_prompt(MCItem("x", PAPI_OPTIONS), TRAIT_TEMPLATES[0])  # 5 options, 4 labels
    assert order_permutation(4, "reversed") == (3, 2, 1, 0)
    assert order_permutation(3, "original") == (0, 1, 2)


def test_the_answer_cue_follows_the_tokenizer():
    from tiny_models import tiny_tokenizer

    from persona.papi.prompts import answer_completion, answer_cue

    class Merging:  # a tokenizer with "(A" as one token, like Llama-3's
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [1] if text == "(A" else list(range(len(text)))}

    assert answer_cue(tiny_tokenizer()) == "(" and answer_completion("B", "(") == "B"
    assert answer_cue(Merging()) == "" and answer_completion("B", "") == "(B"
