"""The sandbox model: leak guard, targets in both orders, training towards them, cached states, cache."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from persona.engine import Engine
from persona.papi import Item, Subject
from persona.papi import sandbox as sb
from persona.papi.methods.answering import AnswerMode, ask_items

from tiny_models import tiny_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

PLUS = Item(1, 1, "N", "N1", "Anxiety", +1, "Worry about things.")
MINUS = Item(31, 31, "N", "N1", "Anxiety", -1, "Am not easily bothered by things.")
ITEMS = [PLUS, MINUS]


def people(n: int, answers=None) -> list[Subject]:
    return [Subject(case=100 + k, index=k, answers=answers[k] if answers else {1: 5, 31: 1}) for k in range(n)]


def tiny_llama(layers: int = 2, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         initializer_range=0.1, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                         bos_token_id=tok.bos_token_id, tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval(), tok


# ------------------------------------------------------------------------------------------------ leak guard


def test_leak_guard_refuses_evaluation_subjects_among_the_training_people():
    everyone = people(60)
    recipe = sb.Recipe(excluded=[100, 101])
    sb.check_no_leak(recipe, everyone[:2], everyone=everyone)  # excluded: fine
    with pytest.raises(sb.SandboxError, match="Leak: 1 of the 2"):
        sb.check_no_leak(recipe, everyone[1:3], everyone=everyone)
    with pytest.raises(sb.SandboxError, match="Leak"):  # a built sandbox's record, as a dict
        sb.check_no_leak({"people": [105, 106], "recipe": {"name": "x"}}, everyone[5:6])


def test_a_recipe_leaving_too_few_people_is_refused():
    everyone = people(60)
    with pytest.raises(sb.SandboxError, match="leaves 10 training people"):
        sb.training_people(sb.Recipe(excluded=[s.case for s in everyone[:50]]), everyone)


def test_no_recipe_for_a_model_is_an_error():
    with pytest.raises(sb.SandboxError, match="No sandbox recipe for model 'gemma-3-270m'"):
        sb.recipe_for("gemma-3-270m")
    assert sb.recipe_for("smollm2-135m-instruct", excluded=[3, 1]).excluded == (1, 3)


# ------------------------------------------------------------------------------------------------ targets


def test_targets_are_what_people_ticked_in_each_orders_letters():
    # stored values: '+' item as ticked; '-' item reverse-scored (stored 5 = ticked 1), 0 = missing
    trio = people(3, [{1: 5, 31: 5}, {1: 4, 31: 5}, {1: 5, 31: 2}])
    identity = sb.tick_distribution(trio, ITEMS)
    np.testing.assert_allclose(identity[0], [2 / 3, 1 / 3, 0, 0, 0])  # Very Accurate first
    np.testing.assert_allclose(identity[1], [0, 1 / 3, 0, 0, 2 / 3])  # ticks 1, 1, 4
    original, reversed_ = sb.letter_targets(identity, "original"), sb.letter_targets(identity, "reversed")
    np.testing.assert_allclose(original[0], [2 / 3, 1 / 3, 0, 0, 0])  # A = Very Accurate
    np.testing.assert_allclose(reversed_[0], [0, 0, 0, 1 / 3, 2 / 3])  # A = Very Inaccurate
    np.testing.assert_allclose(reversed_[1], [2 / 3, 0, 0, 1 / 3, 0])
    np.testing.assert_allclose(sb.expected_agreement(identity), [14 / 3, 2.0])
    missing = people(2, [{1: 0, 31: 1}, {1: 3, 31: 1}])
    np.testing.assert_allclose(sb.tick_distribution(missing, ITEMS)[0], [0, 0, 1, 0, 0])  # 0 dropped
    sharp = sb.sharpen(identity, 0.5)
    np.testing.assert_allclose(sharp[0], [0.8, 0.2, 0, 0, 0])
    with pytest.raises(sb.SandboxError, match="No training person answered"):
        sb.tick_distribution(people(2, [{1: 0, 31: 1}] * 2), ITEMS)


# ------------------------------------------------------------------------------------------------ cached states


def test_cached_lower_states_and_the_top_layers_equal_the_full_forward():
    model, tok = tiny_llama(layers=3)
    engine = Engine(model, tok)
    seqs = sb.training_sequences(engine, ITEMS + [Item(2, 2, "N", "N2", "Anger", 1, "Get angry easily.")],
                                 np.full((3, 5), 0.2), "You are a helpful assistant.", ("original", "reversed"))
    assert len({len(i) for i in seqs.ids}) > 1  # left padding is exercised
    frozen = sb.split_layers(model, 2)
    states = sb.cache_lower(model, seqs.ids, frozen, engine.pad_id, batch_size=4)
    for row, ids in enumerate(seqs.ids):
        full = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[frozen][0]
        torch.testing.assert_close(states.hidden[row, -len(ids):], full, atol=1e-5, rtol=1e-5)
    ours = sb.identity_by_order(sb.letter_distributions(model, states, seqs, frozen)[0], seqs)
    items = ITEMS + [Item(2, 2, "N", "N2", "Anger", 1, "Get angry easily.")]
    answers = ask_items(engine, items, "You are a helpful assistant.", AnswerMode(calibrate=False))
    for order in ("original", "reversed"):
        np.testing.assert_allclose(ours[order], answers.by_order[order], atol=1e-5)


# ------------------------------------------------------------------------------------------------ training


def test_training_moves_both_orders_towards_the_people_and_not_the_letters():
    model, tok = tiny_llama(layers=2)
    engine = Engine(model, tok)
    crowd = people(60, [{1: 5 if k % 4 else 4, 31: 5 if k % 4 else 4} for k in range(60)])  # '+' agree, '-' not
    targets = sb.tick_distribution(crowd, ITEMS)
    recipe = sb.Recipe(trained_layers=1, epochs=200, lr=1e-2, batch_size=4, warmup=0.0)
    seqs = sb.training_sequences(engine, ITEMS, targets, "You are a helpful assistant.", recipe.orders)
    frozen = sb.split_layers(model, 1)
    states = sb.cache_lower(model, seqs.ids, frozen, engine.pad_id)
    curve = sb.train_top(model, states, seqs, recipe)
    assert curve[-1]["loss"] < 0.25 * curve[0]["loss"]
    answers = ask_items(engine, ITEMS, "You are a helpful assistant.", AnswerMode(calibrate=False))
    for order in ("original", "reversed"):  # a flipped order mapping would put the reversed order on the mirror
        got = answers.by_order[order]
        assert np.abs(got - targets).sum(axis=1).max() < 0.3, order
        assert np.abs(got - targets[:, ::-1]).sum(axis=1).min() > 1.0, order
    assert answers.mass.min() > 0.8  # the default loss keeps most next-token mass on the letters (0.82 here)
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.training


# ------------------------------------------------------------------------------------------------ build once


@pytest.fixture
def tiny_base(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONA_MODEL_DIR", str(tmp_path / "models"))
    model, tok = tiny_llama(layers=2)
    base = tmp_path / "base"
    model.save_pretrained(base)
    tok.save_pretrained(base)
    return base


def tiny_recipe(base, **changes):
    recipe = sb.Recipe(name="tiny-papi", base=str(base), items=(1, 31), trained_layers=1, epochs=2, batch_size=4,
                       min_people=5, excluded=(100,))
    return dataclasses.replace(recipe, **changes)


def test_built_once_reused_rebuilt_on_change_and_refused_when_damaged(tiny_base):
    crowd, logs = people(10), []
    recipe = tiny_recipe(tiny_base)
    folder = sb.path(recipe, everyone=crowd, item_key=ITEMS, log=logs.append)
    assert any("built" in line for line in logs)
    source = json.loads((folder / "persona_source.json").read_text())
    assert source["people"] == [101 + k for k in range(9)] and len(source["curve"]) == 2
    sb.check_no_leak(folder, crowd[:1])
    with pytest.raises(sb.SandboxError, match="Leak"):
        sb.check_no_leak(folder, crowd[1:2])

    logs.clear()
    assert sb.path(recipe, everyone=crowd, item_key=ITEMS, log=logs.append) == folder
    assert not logs  # reused, not rebuilt

    other = sb.path(tiny_recipe(tiny_base, seed=1), everyone=crowd, item_key=ITEMS, log=logs.append)
    assert other != folder and any("built" in line for line in logs)

    with pytest.raises(sb.SandboxError, match="other training people"):  # the data changed under the recipe
        sb.path(recipe, everyone=people(11), item_key=ITEMS, log=logs.append)

    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(sb.SandboxError, match="file 'model.safetensors' has sha256 .* Delete the folder"):
        sb.path(recipe, everyone=crowd, item_key=ITEMS, log=logs.append)


def test_a_changed_base_model_is_another_sandbox(tiny_base):
    recipe = tiny_recipe(tiny_base)
    before = sb.folder_for(recipe)
    model, _ = tiny_llama(layers=2, seed=1)
    model.save_pretrained(tiny_base)
    assert sb.folder_for(recipe) != before


# ------------------------------------------------------------------------------------------------ competence


def test_competence_sees_content_and_letter_bias_apart():
    norms = np.array([1.5, 2.5, 3.5, 4.5])
    content = np.eye(5)[[4, 3, 1, 0]] * 0.8 + 0.04  # answers follow the norms, the same in both orders
    measured = sb.competence_from({"original": content, "reversed": content}, norms)
    assert measured["r_norms"] > 0.9 and measured["r_orders"] > 0.99 and sb.passes(measured)
    # a letter-bound model: the same letter distribution in both orders, so identity order mirrors it
    by_letter = np.full((4, 5), 0.1) + np.eye(5)[[0, 0, 1, 0]] * 0.5 + np.eye(5)[[1, 2, 3, 4]] * 0.05
    by_letter /= by_letter.sum(axis=1, keepdims=True)
    blind = sb.competence_from({"original": by_letter, "reversed": by_letter[:, ::-1]}, norms)
    assert blind["r_orders"] == pytest.approx(-1.0) and not sb.passes(blind)


def test_every_recipe_is_a_model_the_book_builds_from_its_base():
    from persona.models import BUILT_FROM

    recipes = {r.name: r.base for scales in sb.RECIPES.values() for r in scales.values()}
    assert recipes == BUILT_FROM
    assert sb.by_name("smollm2-135m-papi", excluded=[7]).excluded == (7,)
    with pytest.raises(sb.SandboxError, match="No sandbox recipe is called 'gemma-3-270m-papi'"):
        sb.by_name("gemma-3-270m-papi", excluded=[])


def test_competence_against_several_groups_asks_the_model_once_and_equals_one_group_at_a_time(monkeypatch):
    model, tok = tiny_llama()
    engine = Engine(model, tok)
    agree, disagree = people(3, answers=[{1: 5, 31: 5}] * 3), people(3, answers=[{1: 1, 31: 1}] * 3)
    asked = []
    original = engine.label_probs
    def counted(prompts, **kw):
        asked.append(len(prompts))
        return original(prompts, **kw)

    monkeypatch.setattr(engine, "label_probs", counted)
    both = sb.competence(engine, ITEMS, {"agree": agree, "disagree": disagree})
    calls = len(asked)
    assert both["agree"] == sb.competence(engine, ITEMS, agree)
    assert both["disagree"] == sb.competence(engine, ITEMS, disagree)
    assert len(asked) == 3 * calls  # the two groups cost one asking, like one group
    assert both["agree"]["n_people"] == 3 and both["agree"]["r_norms"] == -both["disagree"]["r_norms"]
