"""The official TRAIT aggregation, its fixed form and the score statistics, on hand-made items."""

import numpy as np
import pytest

from persona.trait.items import TRAIT_ORDERS
from persona.trait.scoring import bootstrap_ci, fixed_choice, official_is_high, order_choice, trait_score


def to_identity(presented, order):
    """Label probabilities as shown (A, B, C, D) -> identity order (high1, low1, high2, low2)."""
    out = np.empty(4)
    out[list(TRAIT_ORDERS[order])] = presented
    return out


def official_reference(likelihood, likelihood_rev):
    """Line-by-line transcription of pull-ups/TRAIT analysis.py for one sample (numpy floats)."""
    a, b, c, d = (np.float64(likelihood.get(k, 0)) for k in "ABCD")
    ar, br, cr, dr = (np.float64(likelihood_rev.get(k, 0)) for k in "ABCD")
    with np.errstate(invalid="ignore"):
        an, bn, cn, dn = a / (a + b + c + d), b / (a + b + c + d), c / (a + b + c + d), d / (a + b + c + d)
        arn, brn, crn, drn = ar / (ar + br + cr + dr), br / (ar + br + cr + dr), cr / (ar + br + cr + dr), dr / (ar + br + cr + dr)
    high_1, low_1 = (an + brn) / 2, (bn + arn) / 2
    high_2, low_2 = (cn + drn) / 2, (dn + crn) / 2
    return int(np.argmax([high_1, high_2, low_1, low_2])) in [0, 1]


def test_official_rule_on_a_hand_made_item():
    # Original order: A=high1 .5, B=low1 .2, C=high2 .2, D=low2 .1 (already sums to 1).
    # Reversed order: A=low1 .6, B=high1 .1, C=low2 .2, D=high2 .1.
    # Averages: high1 .30, low1 .40, high2 .15, low2 .15 -> argmax low1 -> LOW, although the
    # original order alone says high (A = high1 is its top letter).
    orig = to_identity([0.5, 0.2, 0.2, 0.1], "original")
    rev = to_identity([0.6, 0.1, 0.2, 0.1], "reversed")
    np.testing.assert_allclose(rev, [0.1, 0.6, 0.1, 0.2])
    assert not official_is_high(orig[None], rev[None])[0]
    assert fixed_choice(orig[None], rev[None])[0] == 0.0
    assert order_choice(orig[None])[0] == 1.0 and order_choice(rev[None])[0] == 0.0


def test_official_rule_normalises_each_order_before_averaging():
    # Unnormalised: the original order has 100x the label mass; without per-order normalisation
    # its high2 would win. Normalised: high2 (.4+.1)/2 = .25 < low2 (.1+.7)/2 = .4 -> LOW.
    orig = 100 * np.array([[0.3, 0.2, 0.4, 0.1]])
    rev = 1 * np.array([[0.1, 0.1, 0.1, 0.7]])
    assert not official_is_high(orig, rev)[0]
    assert fixed_choice(orig, rev)[0] == 0.0


def test_official_rule_matches_transcription_on_random_items():
    rng = np.random.default_rng(1)
    raw = rng.dirichlet(np.ones(4), size=(500, 2)) * rng.uniform(0.01, 1, size=(500, 2, 1))
    raw[rng.random((500, 2, 4)) < 0.15] = 0.0  # labels missing from the top-k, whole orders empty
    ours = official_is_high(raw[:, 0], raw[:, 1])
    for i in range(500):
        shown = [dict(zip("ABCD", raw[i, k][list(TRAIT_ORDERS[o])])) for k, o in enumerate(TRAIT_ORDERS)]
        shown = [{lab: p for lab, p in s.items() if p > 0} for s in shown]  # absent = not in the dict
        assert ours[i] == official_reference(*shown), i


def released_reference(likelihood, likelihood_rev):
    """The same lines with the plain Python floats the released script reads from JSON."""
    a, b, c, d = (float(likelihood.get(k, 0)) for k in "ABCD")
    total = a + b + c + d
    an = a / total  # noqa: F841 (the division is the point)
    ar, br, cr, dr = (float(likelihood_rev.get(k, 0)) for k in "ABCD")
    return ar / (ar + br + cr + dr)


def test_the_released_script_stops_on_an_order_without_label_mass():
    with pytest.raises(ZeroDivisionError):
        released_reference({}, {"A": 0.5, "B": 0.5})
    with pytest.raises(ZeroDivisionError):
        released_reference({"A": 0.5}, {})
    assert official_reference({}, {"B": 1.0})  # numpy arithmetic instead: NaN -> argmax high1 -> "high"


def test_zero_mass_item_counts_high_officially_and_is_excluded_when_fixed():
    zero = np.zeros((1, 4))
    low = np.array([[0.1, 0.7, 0.1, 0.1]])
    assert official_is_high(zero, zero)[0]
    assert official_is_high(zero, low)[0]  # one empty order poisons the average with NaN -> high
    assert np.isnan(fixed_choice(zero, zero)[0])
    assert fixed_choice(zero, low)[0] == 0.0  # the fixed rule uses the order that has mass
    choices = fixed_choice(np.vstack([zero, low, low]), np.vstack([zero, low, low]))
    assert trait_score(choices) == 0.0  # the undetermined item is left out, not counted high


def test_tie_between_high_and_low_is_high_officially_and_undetermined_when_fixed():
    tie = np.full((1, 4), 0.25)
    assert official_is_high(tie, tie)[0]
    assert np.isnan(fixed_choice(tie, tie)[0])


def test_high_mask_generalises_to_likert_items():
    agree_high = (True, True, False, False)
    raw = np.array([[0.1, 0.5, 0.3, 0.1]])  # "Agree" wins
    assert fixed_choice(raw, raw, agree_high)[0] == 1.0
    assert fixed_choice(raw, raw, (False, False, True, True))[0] == 0.0
    with pytest.raises(ValueError):
        fixed_choice(raw, raw, (True, True, True, True))


def test_trait_score_and_bootstrap():
    choices = np.array([1.0] * 30 + [0.0] * 10 + [np.nan] * 5)
    assert trait_score(choices) == 75.0
    low, high = bootstrap_ci(choices, n_boot=4000, seed=3)
    assert low < 75.0 < high
    assert (low, high) == bootstrap_ci(choices, n_boot=4000, seed=3)
    # binomial SE for p=.75, n=40 is 6.85 points; a 95% interval spans about 4 SE
    assert 20 < high - low < 34
    wide = bootstrap_ci(choices, n_boot=4000, seed=3)
    narrow = bootstrap_ci(np.tile(choices, 16), n_boot=4000, seed=3)
    assert narrow[1] - narrow[0] < (wide[1] - wide[0]) / 3
    assert np.isnan(trait_score(np.array([np.nan])))


def persona_dec(rows):
    """rows: (trait, key, persona, template, fixed) -> a decisions frame of one model."""
    import pandas as pd

    return pd.DataFrame([{"model": "m", "trait": t, "key": k, "persona": p, "template": tp, "fixed": f}
                         for t, k, p, tp, f in rows])


def test_persona_items_measure_the_share_of_answers_in_the_intended_direction():
    from persona.trait.scoring import persona_items, persona_responsiveness, persona_summary

    persona = persona_dec([
        ("Openness", "o1", "high", 1, 1.0), ("Openness", "o1", "high", 2, 0.0),   # 1 of 2 answers high
        ("Openness", "o1", "low", 1, 0.0), ("Openness", "o1", "low", 2, 0.0),     # both low: 100% intended
        ("Openness", "o2", "high", 1, 1.0), ("Openness", "o2", "high", 2, 1.0),
        ("Openness", "o2", "low", 1, 1.0), ("Openness", "o2", "low", 2, np.nan),  # one undetermined answer
    ])
    base = persona_dec([("Openness", k, "none", t, f) for k, t, f in
                        (("o1", 1, 0.0), ("o1", 2, 0.0), ("o2", 1, 1.0), ("o2", 2, 1.0), ("o2", 3, 0.0),
                         ("x", 1, 1.0))])  # template 3 and item x were not asked with a persona: ignored
    items = persona_items(persona, base).set_index(["key", "persona"])
    assert items.loc[("o1", "high"), ["intended", "baseline", "shift"]].tolist() == [50.0, 0.0, 50.0]
    assert items.loc[("o1", "low"), ["intended", "baseline", "shift"]].tolist() == [100.0, 100.0, 0.0]
    assert items.loc[("o2", "high"), "intended"] == 100.0 and items.loc[("o2", "high"), "baseline"] == 100.0
    assert items.loc[("o2", "low"), "intended"] == 0.0  # its decided answer is high: not as intended
    resp = persona_responsiveness(items.reset_index()).set_index("key")["responsiveness"]
    # o2 answers high whatever the persona: 100 under high, 0 under low -> 50, no effect
    assert resp.to_dict() == {"o1": 75.0, "o2": 50.0}
    summary = persona_summary(items.reset_index()).set_index("persona")
    assert summary.loc["high", "intended"] == 75.0 and summary.loc["high", "n_items"] == 2


def test_model_differences_pair_items_and_permutation_p_values_behave():
    import pandas as pd

    from persona.trait.scoring import model_differences, sign_flip_pvalue

    keys = [f"k{i}" for i in range(12)]
    a = pd.DataFrame({"model": "a", "trait": "Openness", "key": keys, "score": [100.0] * 10 + [0.0, 50.0]})
    b = a.assign(model="b", score=[0.0] * 10 + [0.0, np.nan])  # k11 is missing for b: left out
    table = model_differences(pd.concat([a, b]), "a", "b", n_perm=999).iloc[0]
    assert table["n_items"] == 11 and table["difference"] == pytest.approx(1000 / 11)
    # as extreme: the ten +100s all of one sign (2 patterns), whatever the sign of the 0 (x2), of 2^11
    assert table["p_sign_flip"] == pytest.approx(4 / 2 ** 11) and table["exact"]
    assert sign_flip_pvalue(np.zeros(5)) == 1.0
    # 8 discrete differences: the exact p counts the 256 sign patterns (3 of +100, 5 of 0: |mean| >= 37.5 in
    # 2 of the 8 patterns of the nonzero signs -> 0.25), where the t test says 0.08
    assert sign_flip_pvalue([100.0, 100.0, 100.0, 0, 0, 0, 0, 0]) == pytest.approx(2 / 8)
    rng = np.random.default_rng(0)
    p_null = [sign_flip_pvalue(rng.normal(size=20), n_perm=199, seed=k) for k in range(200)]
    assert 0.02 < np.mean(np.array(p_null) < 0.05) < 0.10  # about 5% under no difference


def order_rows(model, key, template, orig, rev, trait="Openness"):
    """Two per-order rows of raw label probabilities (identity order) for one item."""
    import pandas as pd

    from persona.trait.scoring import RAW_COLS

    return pd.DataFrame([{"model": model, "key": key, "trait": trait, "template": template, "order": o,
                          "persona": "none", "mask": "1010", **dict(zip(RAW_COLS, raw)), "mass": float(sum(raw))}
                         for o, raw in (("original", orig), ("reversed", rev))])


def test_official_variants_measure_the_bare_token_defect():
    import pandas as pd

    from persona.trait.scoring import decisions, official_variants

    keys = ("model", "key", "trait", "template", "persona")
    # every tokenisation: k1 high, k2 low; bare tokens carry half the mass and reverse k2
    main = pd.concat([order_rows("m", "k1", 3, [.6, .2, .1, .1], [.6, .2, .1, .1]),
                      order_rows("m", "k2", 3, [.1, .6, .2, .1], [.1, .6, .2, .1])], ignore_index=True)
    bare = pd.concat([order_rows("m", "k1", 3, [.3, .1, .05, .05], [.3, .1, .05, .05]),
                      order_rows("m", "k2", 3, [.3, 0, 0, 0], [0, 0, 0, 0])], ignore_index=True)
    variants, summary = official_variants(decisions(main, keys=keys), decisions(bare, keys=keys), main, bare)
    row = summary.loc["m"]
    assert row["bare_share"] == pytest.approx(100 * (0.5 + 0.5 + 0.3 + 0) / 4)
    assert row["flips"] == 50.0  # k2: bare says high (an empty order makes it "high"), fixed says low
    assert row["zero_mass_items"] == 1  # k2's reversed order has no bare mass: the released script stops there
    assert variants.loc[("m", "Openness")].tolist() == [100.0, 50.0, 50.0]


def test_item_scores_and_answered_templates():
    import pandas as pd

    from persona.trait.scoring import answered_templates, item_scores

    dec = pd.DataFrame({"model": "m", "key": ["a", "a", "a", "b"], "trait": "Openness", "template": [1, 2, 3, 1],
                        "fixed": [1.0, 0.0, np.nan, np.nan]})
    scores = item_scores(dec).set_index("key")["score"]
    assert scores["a"] == 50.0 and np.isnan(scores["b"])  # undetermined answers are left out
    frame = pd.DataFrame({"model": "g", "template": [1, 1, 3, 3], "mass": [0.9, 0.7, 1e-5, 3e-5]})
    table = answered_templates(frame, 0.05).set_index("template")
    assert table.loc[1, "answered"] and not table.loc[3, "answered"]
    assert table.loc[1, "label_mass"] == pytest.approx(0.8)


def test_tables_keep_the_run_s_model_order():
    import pandas as pd

    from persona.trait.scoring import in_model_order

    frame = pd.DataFrame({"model": ["a", "z", "a", "z"], "x": [1, 2, 3, 4]})
    assert in_model_order(frame, ["z", "a"])["x"].tolist() == [2, 4, 1, 3]
    indexed = frame.set_index(["model", "x"])
    assert in_model_order(indexed, ["z", "a"]).index.get_level_values("x").tolist() == [2, 4, 1, 3]


def test_persona_overall_counts_each_item_once():
    import pandas as pd

    from persona.trait.scoring import persona_overall

    items = pd.DataFrame({"model": "m", "trait": "Openness", "key": ["a", "a", "b", "b"],
                          "persona": ["high", "low"] * 2, "intended": [100.0, 100.0, 100.0, 0.0],
                          "shift": [50.0, -50.0, 0.0, 0.0]})
    row = persona_overall(items).iloc[0]
    assert row["intended"] == 75.0 and row["n_items"] == 2  # item a: 100, item b: 50
    assert row["shift"] == 25.0  # mean absolute shift per item: 50 and 0
