"""The TRAIT chapter's verdicts on synthetic items whose truth is known (persona.trait.claims)."""

import numpy as np
import pandas as pd
import pytest

from persona import verdicts as V
from persona.trait import claims
from persona.trait.items import TRAITS
from persona.trait.reported import PAPER_EFFECTS

FAMILY = len(claims.FAMILY)


def two_models(n_per_trait, shift, seed=0):
    """Item scores (0-100, mean of 3 binary template decisions) of two models; model b's chance of
    answering high is model a's plus ``shift[trait]``."""
    rng = np.random.default_rng(seed)
    rows = []
    for t, trait in enumerate(TRAITS):
        for i in range(n_per_trait):
            p = rng.uniform(0.3, 0.7)
            for model, q in (("a", p), ("b", np.clip(p + shift[t], 0, 1))):
                rows.append({"model": model, "trait": trait, "key": f"{trait}/{i}",
                             "score": 100 * (rng.random(3) < q).mean()})
    return pd.DataFrame(rows)


def test_models_that_differ_by_40_points_are_distinct():
    shift = [0.4 if t % 2 else -0.4 for t in range(8)]  # the direction changes between traits
    v = claims.distinct(two_models(20, shift), "a", "b", family_size=FAMILY)
    assert v.verdict == V.REPLICATED and v.effect > 20 and v.n == 80  # half of the 160 items test
    assert v.paper_effect == pytest.approx(25.625)


def test_models_with_the_same_personality_are_rarely_called_distinct():
    calls = [claims.distinct(two_models(20, [0.0] * 8, seed=s), "a", "b", family_size=FAMILY, seed=s).verdict
             for s in range(40)]
    assert calls.count(V.REPLICATED) <= 1  # the error rate is alpha / family at most (about 0.6%)


def test_identical_models_are_not_distinct_and_one_model_is_not_testable():
    scores = two_models(10, [0.0] * 8)
    same = pd.concat([scores[scores["model"] == "a"], scores[scores["model"] == "a"].assign(model="b")])
    v = claims.distinct(same, "a", "b", family_size=FAMILY)
    assert v.verdict == V.NOT_REPLICATED and v.effect == 0.0  # the exact interval (no item differs) excludes 25.6
    assert claims.distinct(scores, "a", "a", family_size=FAMILY).verdict == V.NOT_TESTABLE


def test_split_half_is_per_trait_and_deterministic():
    keys = pd.Series([f"k{i}" for i in range(10)])
    trait = pd.Series(["O"] * 6 + ["C"] * 4)
    a, b = claims.split_half(keys, trait, 0), claims.split_half(keys, trait, 0)
    assert a.equals(b) and a[trait == "O"].sum() == 3 and a[trait == "C"].sum() == 2


def decisions(orig, rev, fixed):
    rows = []
    for i in range(orig.shape[0]):
        for t in range(orig.shape[1]):
            rows.append({"key": f"i{i:03d}", "template": t + 1, "orig": orig[i, t], "rev": rev[i, t],
                         "fixed": fixed[i, t]})
    return pd.DataFrame(rows)


def test_consistency_replicates_for_agreeing_answers_and_not_for_a_letter_biased_model():
    rng = np.random.default_rng(1)
    content = (rng.random((60, 1)) < 0.5).astype(float) * np.ones((60, 3))
    noisy = np.where(rng.random((60, 3)) < 0.1, 1 - content, content)
    v = claims.consistent_orders(decisions(content, noisy, content), family_size=FAMILY, n_boot=300)
    assert v.verdict == V.REPLICATED and v.effect > 0.6
    assert claims.consistent_templates(decisions(content, content, content), family_size=FAMILY,
                                       n_boot=300).verdict == V.REPLICATED
    # the original order always "high" (letter A is high1), the reversed always "low"
    biased = claims.consistent_orders(decisions(np.ones((60, 3)), np.zeros((60, 3)), np.ones((60, 3))),
                                      family_size=FAMILY, n_boot=300)
    assert biased.effect == 0.0 and biased.verdict == V.NOT_REPLICATED  # kappa 0 excludes the paper's 0.37
    assert biased.paper_effect == pytest.approx(PAPER_EFFECTS["consistent_orders"][0])


def items(values, column):
    return pd.DataFrame({"key": [f"k{i}" for i in range(len(values))], column: np.asarray(values, float)})


def test_trait_against_the_proxy_points_the_claimed_way():
    rng = np.random.default_rng(2)
    trait = items(100 * (rng.random(80) < 0.3), "prompt_sensitivity")
    proxy = items(100 * (rng.random(80) < 0.8), "prompt_sensitivity")
    v = claims.lower_than_proxy(trait, proxy, "prompt", family_size=FAMILY)
    assert v.verdict == V.REPLICATED and v.effect == pytest.approx(proxy.iloc[:, 1].mean() - trait.iloc[:, 1].mean())
    worse = claims.lower_than_proxy(proxy, trait, "prompt", family_size=FAMILY)
    assert worse.verdict == V.NOT_REPLICATED and "opposite" in worse.reason


def test_no_explicit_refusal_on_either_side_fails_the_refusal_check_with_its_exact_bound():
    from persona import gate as G

    frame = pd.DataFrame({"key": ["a", "b"], "refused": [0.0, 0.0], "unparseable": [50.0, 0.0],
                          "generations": [3, 3]})
    check = claims.refusal_check(frame, frame, "m", family_size=FAMILY)
    assert check.status == G.FAILED and "refused none of its 12" in check.finding
    assert f"{V.could_differ(12, 1 - 0.05 / FAMILY):.1%}" in check.finding
    v = G.gated(claims.lower_than_proxy(frame, frame, "refusal", family_size=FAMILY), check)
    assert v.verdict == V.NOT_TESTABLE_ON_MODEL and "refused none" in v.evidence
    some = frame.assign(refused=[0.0, 100 / 3])
    assert claims.refusal_check(frame, some, "m").passed


def persona_items(intended_high, intended_low, traits):
    rows = []
    for i, (h, lo, t) in enumerate(zip(intended_high, intended_low, traits)):
        rows += [{"model": "m", "trait": t, "key": f"{t}/{i}", "persona": "high", "intended": h, "shift": h - 50},
                 {"model": "m", "trait": t, "key": f"{t}/{i}", "persona": "low", "intended": lo, "shift": lo - 50}]
    return pd.DataFrame(rows)


def test_persona_positive_control():
    rng = np.random.default_rng(3)
    traits = [TRAITS[i % 8] for i in range(80)]
    moved = persona_items(100 * (rng.random(80) < 0.9), 100 * (rng.random(80) < 0.9), traits)
    v = claims.persona_moves(moved, family_size=FAMILY)
    assert v.verdict == V.REPLICATED and 30 < v.effect < 50
    # a model that answers "high" whatever the persona: 100% under high, 0% under low -> no effect
    stuck = persona_items([100.0] * 80, [0.0] * 80, traits)
    v = claims.persona_moves(stuck, family_size=FAMILY)
    assert v.effect == 0.0 and v.verdict == V.NOT_REPLICATED


def test_named_hard_directions_against_the_other_traits():
    rng = np.random.default_rng(4)
    traits = [TRAITS[i % 8] for i in range(400)]
    high = np.array([100.0 * (rng.random() < (0.4 if t == "Psychopathy" else 0.9)) for t in traits])
    low = np.array([100.0 * (rng.random() < (0.4 if t == "Conscientiousness" else 0.9)) for t in traits])
    v = claims.persona_hard(persona_items(high, low, traits), family_size=FAMILY)
    assert v.verdict == V.REPLICATED and 35 < v.effect < 65
    assert v.n == 50 + 50 + 300  # P items (high), C items (low), the six other traits' items once each
    assert "other traits (300 items) minus the named directions (100 items, the smaller group)" in v.evidence
    even = claims.persona_hard(persona_items(100 * (rng.random(400) < .9), 100 * (rng.random(400) < .9), traits),
                               family_size=FAMILY)
    assert even.verdict != V.REPLICATED


def test_named_directions_are_measured_by_the_shift_not_the_lean():
    """A model that leans "low" on psychopathy items without any persona: its high-psychopathy share is low
    (it carries the lean), but the persona moves it as much as any other trait. Measured by the shift, the
    named directions are not less responsive."""
    rng = np.random.default_rng(5)
    rows = []
    for i in range(400):
        t = TRAITS[i % 8]
        base_high = 0.1 if t == "Psychopathy" else 0.5  # the model's own lean
        for persona, base in (("high", base_high), ("low", 1 - base_high)):
            intended = 100 * min(1.0, base + 0.3 + rng.normal(0, 0.05))
            rows.append({"model": "m", "trait": t, "key": f"{t}/{i}", "persona": persona, "intended": intended,
                         "shift": intended - 100 * base})
    v = claims.persona_hard(pd.DataFrame(rows), family_size=FAMILY)
    assert v.verdict != V.REPLICATED and abs(v.effect) < 5


def test_the_persona_control_passes_when_personas_move_answers_apart_and_bounds_a_model_that_ignores_them():
    from persona import gate as G

    rng = np.random.default_rng(3)
    traits = [TRAITS[i % 8] for i in range(32)]
    moved = persona_items(100 * (rng.random(32) < 0.9), 100 * (rng.random(32) < 0.9), traits)
    assert claims.persona_check(moved, "m", family_size=FAMILY).passed
    ignored = persona_items([100.0] * 32, [0.0] * 32, traits)  # same answer whatever the persona
    check = claims.persona_check(ignored, "smol", family_size=FAMILY)
    assert check.status == G.FAILED
    assert "ignores persona prompts" in check.finding and "all 32 items" in check.finding
    assert f"at most {V.could_differ(32, 1 - 0.05 / FAMILY):.0%}" in check.finding and "exact 99.4% bound" in check.finding
    gated = G.gated(claims.persona_moves(ignored, family_size=FAMILY), check)
    assert gated.verdict == V.NOT_TESTABLE_ON_MODEL


def test_the_content_check_fails_a_letter_answering_model_and_passes_a_content_reader():
    from persona import gate as G

    rng = np.random.default_rng(6)
    truth = rng.random(60) < 0.5

    def decisions(rev_agrees: bool):
        rows = []
        for k, high in enumerate(truth):
            for template in range(3):
                orig = float(high) if rev_agrees else float(k % 2)
                rev = orig if rev_agrees else 1 - orig  # a letter habit: the reversed order gives the other one
                noise = rng.random() < 0.1
                rows.append({"model": "m", "key": f"k{k}", "trait": "Openness", "template": template,
                             "orig": orig if not noise else 1 - orig, "rev": rev, "fixed": orig})
        return pd.DataFrame(rows)

    reads = claims.content_check(decisions(True), "reader", n_boot=300)
    letters = claims.content_check(decisions(False), "letters", n_boot=300)
    assert reads.passed and letters.status == G.FAILED
    assert "by option position" in letters.finding
