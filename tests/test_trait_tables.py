"""The TRAIT chapter's tables (reliability against the proxy and the paper, calibration, persona) on
hand-made items whose every cell is known."""

import numpy as np
import pandas as pd
import pytest

from persona.trait import reliability as R
from persona.trait import scoring as S
from persona.trait.reported import PAPER_PERSONA_HIGH_PSYCHOPATHY, PAPER_PERSONA_SUCCESS, PAPER_RELIABILITY


def sensitivities(model, test, rows):
    """Per-item sensitivities as :func:`item_reliability` gives them: (key, trait, order, prompt)."""
    return pd.DataFrame([{"model": model, "test": test, "key": k, "trait": t, "order_sensitivity": o,
                          "prompt_sensitivity": p} for k, t, o, p in rows])


def refusals(model, test, rows):
    """Per-item refusal shares as :func:`refusal_items` gives them: (key, trait, refused, unparseable)."""
    return pd.DataFrame([{"model": model, "test": test, "key": k, "trait": t, "refused": r, "unparseable": u,
                          "no_answer": r + u, "generations": 3} for k, t, r, u in rows])


def reliability_inputs(model="m"):
    items = pd.concat([
        sensitivities(model, "TRAIT", [("O/1", "Openness", 0.0, 0.0), ("O/2", "Openness", 100.0, 100.0),
                                       ("N/1", "Narcissism", 50.0, 0.0)]),
        sensitivities(model, "self-report", [("O/1", "Openness", 100.0, 0.0), ("N/1", "Narcissism", 100.0, 100.0)]),
    ], ignore_index=True)
    # N/9 was asked in free text only: it counts for refusals and for nothing else
    ref = pd.concat([
        refusals(model, "TRAIT", [("O/1", "Openness", 0.0, 100.0), ("N/9", "Narcissism", 100.0, 0.0)]),
        refusals(model, "self-report", [("O/1", "Openness", 50.0, 0.0), ("N/1", "Narcissism", 50.0, 0.0)]),
    ], ignore_index=True)
    return items, ref


def test_proxy_table_averages_each_measure_over_the_items_that_have_it_per_half():
    items, ref = reliability_inputs()
    table = R.proxy_table(items, ref).set_index(["test", "half"])
    assert set(table.index.get_level_values("test")) == {"TRAIT", "self-report proxy"}
    assert set(table.index.get_level_values("half")) == {"Big Five", "Dark Triad", "all traits"}
    trait = table.loc["TRAIT"]
    assert trait.loc["Big Five", "order_sensitivity"] == 50.0 and trait.loc["Big Five", "prompt_sensitivity"] == 50.0
    assert trait.loc["Dark Triad", "order_sensitivity"] == 50.0 and trait.loc["Dark Triad", "prompt_sensitivity"] == 0.0
    assert trait.loc["all traits", "order_sensitivity"] == 50.0
    assert trait.loc["all traits", "prompt_sensitivity"] == pytest.approx(100 / 3)
    # refusals: O/1 (0) and the free-text-only N/9 (100); O/2 and N/1 were not asked in free text
    assert trait.loc["all traits", "refused"] == 50.0 and trait.loc["all traits", "refused_n"] == 2
    assert trait.loc["all traits", "unparseable"] == 50.0 and trait.loc["all traits", "order_sensitivity_n"] == 3
    assert trait.loc["Dark Triad", "refused"] == 100.0
    proxy = table.loc["self-report proxy"]
    assert proxy.loc["all traits", "order_sensitivity"] == 100.0 and proxy.loc["all traits", "refused"] == 50.0
    # two items at 0 and 100: the t interval is cut to the range a percentage can take
    assert (trait.loc["Big Five", "order_sensitivity_low"], trait.loc["Big Five", "order_sensitivity_high"]) == (0, 100)


def test_beside_paper_puts_the_run_in_model_order_and_labels_the_papers_rows():
    items_b, ref_b = reliability_inputs("b")
    items_a, ref_a = reliability_inputs("a")
    table = R.proxy_table(pd.concat([items_b, items_a]), pd.concat([ref_b, ref_a]))  # "b" appears first
    shown = R.beside_paper(table, ["a", "b"])
    halves = ["Big Five", "Dark Triad", "all traits"]
    ours = [(m, t, h) for m in ("a", "b") for t in ("TRAIT", "self-report proxy") for h in halves]
    papers = [("paper", f"{name} (paper)", "") for name in PAPER_RELIABILITY]
    assert list(shown.index) == ours + papers
    assert shown.loc[("a", "TRAIT", "Big Five"), "order_sensitivity"] == "50 [0, 100]"
    assert shown.loc[("a", "TRAIT", "Dark Triad"), "order_sensitivity"] == "50"  # one item: no interval
    for name, reported in PAPER_RELIABILITY.items():
        row = shown.loc[("paper", f"{name} (paper)", "")]
        assert row["refused"] == reported["refusal_rate"]
        assert row["order_sensitivity"] == reported["option_order_sensitivity"]
        assert row["prompt_sensitivity"] == reported["prompt_sensitivity"]
        assert row["unparseable"] == ""  # the paper does not report it
    assert not any(c.endswith(("_low", "_high", "_n")) for c in shown.columns)


def decisions(test, items, orig, rev, fixed, model="m", trait="Openness"):
    """Item decisions as :func:`scoring.decisions` gives them, over three templates: per item a list per order."""
    rows = []
    for i, key in enumerate(items):
        for template in range(3):
            rows.append({"model": model, "test": test, "key": key, "trait": trait, "template": template,
                         "orig": orig[i][template], "rev": rev[i][template], "fixed": fixed[i][template]})
    return pd.DataFrame(rows)


def test_calibration_table_pairs_raw_and_calibrated_items_per_test():
    # Raw: a letter-biased model; each order alone always says high in one order and low in the other (order
    # sensitivity 100); the item decisions of k0 differ between templates. Calibrated: the orders agree and
    # every template gives the same decision.
    keys = ["k0", "k1"]
    biased = [[1, 1, 1]] * 2, [[0, 0, 0]] * 2, [[1, 0, 1], [1, 1, 1]]
    raw = pd.concat([decisions("TRAIT", keys, *biased), decisions("self-report", keys, *biased)])
    agreeing = [[1, 1, 1], [0, 0, 0]]
    cal_trait = decisions("TRAIT", keys, agreeing, agreeing, agreeing)
    cal_self = decisions("self-report", keys, *biased)  # calibration changes nothing on the proxy
    # an item only calibrated (and order-sensitive) has no raw partner: the change is paired, it is left out
    cal_extra = decisions("TRAIT", ["k9"], [[1, 1, 1]], [[0, 0, 0]], [[1, 1, 1]])
    change = R.calibration_table(R.item_reliability(raw), [cal_trait, cal_self, cal_extra])
    change = change.set_index(["test", "measure"])
    assert set(change.index.get_level_values("test")) == {"TRAIT", "self-report proxy"}
    order = change.loc[("TRAIT", "order_sensitivity")]
    assert (order["raw"], order["calibrated"], order["change"], order["n_items"]) == (100.0, 0.0, -100.0, 2)
    prompt = change.loc[("TRAIT", "prompt_sensitivity")]
    assert (prompt["raw"], prompt["calibrated"], prompt["change"]) == (50.0, 0.0, -50.0)
    assert change.loc[("self-report proxy", "order_sensitivity"), "change"] == 0.0
    assert change.loc[("self-report proxy", "prompt_sensitivity"), "calibrated"] == 50.0


def persona_rows(model, values):
    """Per-item persona shares as :func:`scoring.persona_items` gives them; values: (trait, key, high, low)."""
    rows = []
    for trait, key, high, low in values:
        for persona, intended in (("high", high), ("low", low)):
            rows.append({"model": model, "trait": trait, "persona": persona, "key": key, "intended": intended,
                         "baseline": 50.0, "shift": intended - 50.0})
    return pd.DataFrame(rows)


def test_persona_table_adds_the_calibrated_share_and_the_papers_number_to_each_row():
    raw = pd.concat([
        persona_rows("m1", [("Psychopathy", "p1", 100.0, 0.0), ("Psychopathy", "p2", 100.0, 100.0),
                            ("Openness", "o1", 0.0, 100.0)]),
        persona_rows("m2", [("Psychopathy", "p1", 0.0, 0.0), ("Openness", "o1", 100.0, 100.0)]),
    ], ignore_index=True)
    # calibrated rows list m2 first: the table must match rows by model, not by position
    calibrated = pd.concat([
        persona_rows("m2", [("Psychopathy", "p1", 100.0, 100.0), ("Openness", "o1", 100.0, 0.0)]),
        persona_rows("m1", [("Psychopathy", "p1", 0.0, 0.0), ("Psychopathy", "p2", 0.0, 100.0),
                            ("Openness", "o1", 100.0, 100.0)]),
    ], ignore_index=True)
    table = S.persona_table(raw, calibrated).set_index(["model", "trait", "persona"])
    assert len(table) == 2 * 2 * 2 + 2  # models x traits x directions, and one "all traits" row per model
    m1 = table.loc["m1"]
    assert (m1.loc[("Psychopathy", "high"), "intended"], m1.loc[("Psychopathy", "high"), "calibrated"]) == (100, 0)
    assert (m1.loc[("Psychopathy", "low"), "intended"], m1.loc[("Psychopathy", "low"), "calibrated"]) == (50, 50)
    assert (m1.loc[("Openness", "high"), "intended"], m1.loc[("Openness", "high"), "calibrated"]) == (0, 100)
    # all traits: per item the mean of its two directions, then the mean over items
    assert m1.loc[("all traits", "both"), "intended"] == pytest.approx((50 + 100 + 50) / 3)
    assert m1.loc[("all traits", "both"), "calibrated"] == pytest.approx((0 + 50 + 100) / 3)
    m2 = table.loc["m2"]
    assert (m2.loc[("all traits", "both"), "intended"], m2.loc[("all traits", "both"), "calibrated"]) == (50, 75)
    assert m2.loc[("Psychopathy", "high"), "calibrated"] == 100.0 and m2.loc[("Openness", "low"), "calibrated"] == 0
    paper = table["paper"]
    assert paper.loc[("m1", "all traits", "both")] == paper.loc[("m2", "all traits", "both")] == PAPER_PERSONA_SUCCESS
    assert paper.loc[("m1", "Psychopathy", "high")] == PAPER_PERSONA_HIGH_PSYCHOPATHY
    assert np.isnan(paper.loc[("m1", "Psychopathy", "low")]) and np.isnan(paper.loc[("m2", "Openness", "high")])
