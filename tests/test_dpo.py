"""DPO: preference pairs follow the documented rule; training restores the shared model afterwards."""

from __future__ import annotations

import numpy as np
import pytest
from methods_fixtures import papi_items, per_domain
from tiny_models import tiny_model, tiny_tokenizer

from persona.engine import Engine
from persona.papi import Item, Subject
from persona.papi.methods.answering import ask_items
from persona.papi.methods.dpo import DPO, DPOSettings, dpo_loss, preference_pairs

ITEMS = [
    Item(1, 1, "N", "N1", "Anxiety", +1, "Worry about things."),
    Item(31, 31, "N", "N1", "Anxiety", -1, "Am not easily bothered by things."),
    Item(61, None, "N", "N1", "Anxiety", +1, "Fear for the worst."),
    Item(91, None, "N", "N1", "Anxiety", +1, "Get stressed out easily."),
]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (conftest)


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


def test_dpo_loss_by_hand():
    import torch

    pc, pr = torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -1.0])
    rc, rr = torch.tensor([-2.0, -2.0]), torch.tensor([-2.0, -2.0])
    loss, accuracy, margin = dpo_loss(pc, pr, rc, rr, beta=0.5)
    margins = 0.5 * np.array([(-1 + 2) - (-3 + 2), (-2 + 2) - (-1 + 2)])  # [1.0, -0.5]
    assert float(loss) == pytest.approx(np.mean(np.log1p(np.exp(-margins))))
    assert float(accuracy) == 0.5 and float(margin) == pytest.approx(margins.mean())


def test_dpo_searches_rates_stops_early_refits_and_restores_the_model():
    known, heldout = papi_items()
    from persona import papi

    tok = tiny_tokenizer()
    engine = Engine(tiny_model("llama", tok, seed=2), tok)
    subject = papi.load_subjects(limit=1)[0]
    test = per_domain(heldout, 1)
    before = ask_items(engine, test, None).probs
    settings = DPOSettings(learning_rates=(1e-3, 2e-2), max_steps=12, eval_every=2, patience=2, batch_size=4)
    method = DPO(engine, settings=settings)
    method.fit(subject, per_domain(known, 4))
    search = [t for t in method.trace if t["phase"] == "search"]
    for lr in settings.learning_rates:
        steps = [t["step"] for t in search if t["lr"] == lr]
        assert steps[0] == 0 and all(b - a == 2 for a, b in zip(steps, steps[1:]))
        losses = [t["val_loss"] for t in search if t["lr"] == lr]
        best_at = int(np.argmin(losses))
        assert len(losses) - 1 - best_at <= settings.patience  # stopped within `patience` of its best
    winner = min(search, key=lambda t: (t["val_loss"], t["step"]))
    assert (method.choice["lr"], method.choice["steps"]) == (winner["lr"], winner["step"])
    assert all(np.diff([t["wall_s"] for t in method.trace]) >= 0)  # the trace is chronological
    trained = [t for t in search if t["step"] > 0]
    assert trained and all(0 <= t["reward_acc"] <= 1 for t in trained)
    answers = method.answer(test)
    assert answers.info["steps"] == method.choice["steps"] and answers.probs.shape == (len(test), 5)
    method.release()
    after = ask_items(engine, test, None).probs
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert not any("lora_" in name for name, _ in engine.model.named_parameters())


def test_training_raises_the_chosen_letters_margin():
    """On the training pairs themselves, a few DPO steps must move the policy towards the chosen letters."""
    import torch

    known, _ = papi_items()
    from persona import papi

    tok = tiny_tokenizer()
    engine = Engine(tiny_model("llama", tok, seed=4), tok)
    method = DPO(engine, settings=DPOSettings(learning_rates=(1e-2,), batch_size=8))
    subject = papi.load_subjects(limit=1)[0]
    rows, pairs = method._encode(subject, per_domain(known, 2))
    reference = method._reference(rows)
    method._inject()
    seen = []
    method._train(rows, pairs, reference, 1e-2, 20, on_step=lambda step, stats: seen.append(stats))
    with torch.no_grad():
        from persona.papi.methods.dpo import _last_logprobs

        logp = _last_logprobs(engine.model, rows, engine.pad_id)
    idx = torch.tensor([p.prompt for p in pairs])
    gain = (logp[idx, [p.chosen for p in pairs]] - reference[idx, [p.chosen for p in pairs]]) - \
           (logp[idx, [p.rejected for p in pairs]] - reference[idx, [p.rejected for p in pairs]])
    assert float(gain.mean()) > 0 and seen[-1]["loss"] < seen[0]["loss"]
    method.release()


def test_bf16_model_trains_in_fp32_on_cpu_and_is_cast_back():
    import torch

    known, heldout = papi_items()
    from persona import papi

    tok = tiny_tokenizer()
    model = tiny_model("llama", tok, seed=3).to(torch.bfloat16)
    engine = Engine(model, tok)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    method = DPO(engine, settings=DPOSettings(learning_rates=(1e-3,), max_steps=1, eval_every=1, batch_size=4))
    method.fit(papi.load_subjects(limit=1)[0], per_domain(known, 2))
    method.answer(per_domain(heldout, 1))
    method.release()
    after = engine.model.state_dict()
    assert engine.model.dtype == torch.bfloat16 and set(after) == set(before)
    assert all(torch.equal(after[k], before[k]) for k in before)  # bf16 -> fp32 -> bf16 is exact
