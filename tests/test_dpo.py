"""DPO: preference pairs follow the documented rule; training restores the shared model afterwards."""

from __future__ import annotations

import numpy as np
import pytest
from methods_fixtures import papi_items, per_domain

from persona.engine import Engine
from persona.engine.testing import tiny_model, tiny_tokenizer, torch_threads
from persona.papi import Item, Subject
from persona.papi.methods.base import score_items, selection_score, split_known
from persona.papi.methods.dpo import DPO, DPOSettings, preference_pairs
from persona.papi.prompts import DEFAULT_SYSTEM

ITEMS = [
    Item(1, 1, "N", "N1", "Anxiety", +1, "Worry about things."),
    Item(31, 31, "N", "N1", "Anxiety", -1, "Am not easily bothered by things."),
    Item(61, None, "N", "N1", "Anxiety", +1, "Fear for the worst."),
    Item(91, None, "N", "N1", "Anxiety", +1, "Get stressed out easily."),
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


def test_preference_pairs_by_hand():
    engine = Engine(tiny_model("llama", tiny_tokenizer()), tiny_tokenizer())
    # stored: 5 on '+' (agrees), 5 on '-' (ticked Very Inaccurate), 0 missing, 3 neutral
    subject = Subject(case=1, index=0, answers={1: 5, 31: 5, 61: 0, 91: 3})
    pairs = preference_pairs(engine, subject, ITEMS, "corrected")
    letters = [(p["chosen"], p["rejected"]) for p in pairs]
    # original order (A = Very Accurate), then reversed (A = Very Inaccurate); neutral -> C over both extremes
    assert letters == [("A", "E"), ("E", "A"), ("C", "A"), ("C", "E"),
                       ("E", "A"), ("A", "E"), ("C", "E"), ("C", "A")]
    paper = [(p["chosen"], p["rejected"]) for p in preference_pairs(engine, subject, ITEMS, "paper")]
    assert paper[:2] == [("A", "E"), ("A", "E")]  # PAlign's reading: stored 5 = Very Accurate for both
    assert all(p["prompt"].endswith("<|im_start|>assistant\n(") for p in pairs)  # the answer cue


def test_dpo_trains_chooses_a_step_and_restores_the_model(tmp_path):
    known, heldout = papi_items()
    from persona import papi

    tok = tiny_tokenizer()
    engine = Engine(tiny_model("llama", tok, seed=2), tok)
    subject = papi.load_subjects(limit=1)[0]
    test = per_domain(heldout, 1)
    before = score_items(engine, test, None).probs
    settings = DPOSettings(max_steps=4, eval_every=2, batch_size=4, learning_rate=5e-3, seed=0)
    method = DPO(engine, settings=settings, save_dir=tmp_path)
    known = per_domain(known, 4)
    method.fit(subject, known)
    assert [h["step"] for h in method.history] == [0, 2, 4]
    best = min(method.history, key=lambda h: h["val_score"])
    assert method.best_step == best["step"]
    # the restored adapter is the best step's: its validation score is reproduced exactly
    _, val = split_known(known, val_fraction=settings.val_fraction, seed=settings.seed + subject.case)
    again = selection_score(score_items(engine, val, DEFAULT_SYSTEM), subject, val, "corrected")
    assert again == pytest.approx(best["val_score"])
    answers = method.answer(test)
    assert answers.info["best_step"] == method.best_step and answers.probs.shape == (len(test), 5)
    assert (tmp_path / f"subject-{subject.case}" / "adapter_config.json").exists()
    method.release()
    after = score_items(engine, test, None).probs
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert not any("lora_" in name for name, _ in engine.model.named_parameters())


def test_bf16_model_trains_in_fp32_on_cpu_and_is_cast_back():
    import torch

    known, heldout = papi_items()
    from persona import papi

    tok = tiny_tokenizer()
    model = tiny_model("llama", tok, seed=3).to(torch.bfloat16)
    engine = Engine(model, tok)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    method = DPO(engine, settings=DPOSettings(max_steps=1, eval_every=1, batch_size=4, learning_rate=1e-3))
    method.fit(papi.load_subjects(limit=1)[0], per_domain(known, 2))
    method.answer(per_domain(heldout, 1))
    method.release()
    after = engine.model.state_dict()
    assert engine.model.dtype == torch.bfloat16 and set(after) == set(before)
    assert all(torch.equal(after[k], before[k]) for k in before)  # bf16 -> fp32 -> bf16 is exact
