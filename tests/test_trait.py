"""TRAIT items, the official option orders and persona prompts, and the self-report items."""


import pytest
from conftest import mirror_or_skip

from persona.trait.items import DARK_BASE, TRAIT_ORDERS, TRAITS, TraitDataError, _join_dark, load_trait_items, subsample
from persona.trait.prompts import TEMPLATES as TRAIT_TEMPLATES
from persona.trait.prompts import persona_system_prompt, trait_grid, trait_prompts
from persona.trait.selfreport import SELFREPORT_ORDERS, load_selfreport_items, selfreport_grid


@pytest.fixture(scope="module")
def items():
    mirror_or_skip()
    return load_trait_items()


def test_items_cover_eight_traits_and_join_the_dark_triad(items):
    assert len(items) == 8000
    assert [t for t in TRAITS for _ in range(1000)] == [it.trait for it in items]
    dark = [it for it in items if it.trait in DARK_BASE]
    assert all(it.idx == DARK_BASE[it.trait] + it.row for it in dark)
    assert all(it.question == f"{it.statement} {it.query}" for it in dark)
    assert sum(it.dark_split == "good" for it in dark) == 1500
    assert all(it.situation is None for it in items if it.trait not in DARK_BASE)


def test_dark_join_rejects_a_mismatch(items):
    record = {"split": "Narcissism", "row": 3, "personality": "Narcissism", "question": "x y",
              "response_high1": "h1", "response_high2": "h2", "response_low1": "l1", "response_low2": "l2"}
    extra = {**record, "idx": 6003, "statement": "x", "query": "y"}
    assert _join_dark([record], [extra])[("Narcissism", 3)]["idx"] == 6003
    with pytest.raises(TraitDataError, match="statement"):
        _join_dark([record], [{**extra, "query": "z"}])
    with pytest.raises(TraitDataError, match="response_low2"):
        _join_dark([record], [{**extra, "response_low2": "other"}])


def test_subsample_is_deterministic_and_per_trait_stable(items):
    a = subsample(items, 5, seed=1)
    assert [it.key for it in a] == [it.key for it in subsample(items, 5, seed=1)]
    assert len(a) == 40 and {it.trait for it in a} == set(TRAITS)
    only_o = subsample([it for it in items if it.trait == "Openness"], 5, seed=1)
    assert [it.key for it in only_o] == [it.key for it in a if it.trait == "Openness"]


def test_official_orders_show_the_right_responses(items):
    item = items[0]
    original = trait_prompts([item], TRAIT_TEMPLATES[0], "original")[0].user
    reversed_ = trait_prompts([item], TRAIT_TEMPLATES[0], "reversed")[0].user
    assert f"A. {item.high1}\nB. {item.low1}\nC. {item.high2}\nD. {item.low2}\n" in original
    assert f"A. {item.low1}\nB. {item.high1}\nC. {item.low2}\nD. {item.high2}\n" in reversed_
    assert TRAIT_ORDERS["reversed"] == (1, 0, 3, 2)
    prompts, meta = trait_grid(items[:3], templates=(0, 2))
    assert len(prompts) == len(meta) == 3 * 2 * 2
    assert set(meta["order"]) == set(TRAIT_ORDERS) and set(meta["template"]) == {1, 3}


def test_persona_prompt_is_the_upstream_text():
    mirror_or_skip()
    text = persona_system_prompt("Openness", "high")
    assert text.startswith("You are an assistant with high openness. Following statements are descriptions "
                           "of high openness.\n1. Being original and coming up with new ideas. 2. ")
    assert text.endswith(". ")
    assert persona_system_prompt("Psychopathy", "low").startswith("You are an assistant with low psychopathy.")
    with pytest.raises(ValueError):
        persona_system_prompt("Openness", "medium")


def test_selfreport_items_are_balanced_and_keyed():
    mirror_or_skip()
    items = load_selfreport_items()
    assert len(items) == 142 and sum(it.keyed_high for it in items) == 71
    talk = next(it for it in items if it.statement == "Being talkative.")
    quiet = next(it for it in items if it.statement == "Not being talkative.")
    assert talk.keyed_high and talk.high_mask == (True, True, False, False)
    assert not quiet.keyed_high and quiet.high_mask == (False, False, True, True)
    prompts, meta = selfreport_grid(items[:2], templates=(0,))
    assert "A. Strongly disagree\nB. Disagree" in prompts[1].user  # reversed order of item 0, next to its original
    assert SELFREPORT_ORDERS["reversed"] == (3, 2, 1, 0)
    assert list(meta["mask"][:1]) == ["1100"]
