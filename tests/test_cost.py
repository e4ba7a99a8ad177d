"""Quality against time: the time DPO first reaches PAS's validation quality, censoring, the verdict."""

import pandas as pd
import pytest

from persona.papi import cost
from persona.verdicts import INCONCLUSIVE, NOT_REPLICATED, REPLICATED


def _traces(pas_losses, dpo_points):
    rows = [{"method": "pas", "subject": s, "alpha": a, "loss": loss, "on": "validation", "wall_s": 1.0 + k,
             "cpu_s": 1.0 + k} for s, losses in pas_losses.items() for k, (a, loss) in enumerate(losses)]
    rows += [{"method": "dpo", "subject": s, "phase": "search", "lr": 1e-3, "step": step, "val_loss": loss,
              "wall_s": t, "cpu_s": t} for s, points in dpo_points.items() for step, loss, t in points]
    return pd.DataFrame(rows)


def _times(pas_fit, dpo_fit, activations=20.0):
    rows = [{"stage": "pas/activations", "method": "contrast:content", "subject": None, "wall_s": activations,
             "cpu_s": activations, "peak_rss_mb": 1.0}]
    for s in pas_fit:
        rows.append({"stage": "fit", "method": "pas", "subject": s, "wall_s": pas_fit[s], "cpu_s": pas_fit[s],
                     "peak_rss_mb": 1.0})
        rows.append({"stage": "fit", "method": "dpo", "subject": s, "wall_s": dpo_fit[s], "cpu_s": dpo_fit[s],
                     "peak_rss_mb": 1.0})
    return pd.DataFrame(rows)


def test_time_to_quality_by_hand():
    traces = _traces({1: [(0, 2.4), (4, 2.0)], 2: [(0, 2.0), (4, 2.2)]},
                     {1: [(0, 3.0, 5.0), (8, 2.5, 40.0), (16, 1.9, 80.0)], 2: [(0, 3.0, 5.0), (8, 2.6, 50.0)]})
    times = _times({1: 10.0, 2: 10.0}, {1: 100.0, 2: 60.0})
    fits = cost.fit_times(times, {"pas": "content"}, n_subjects=2)
    assert fits.set_index(["method", "subject"]).loc[("pas", 1), "wall_s"] == pytest.approx(10 + 20 / 2)
    curves = cost.quality_curves(traces, times, "pas", "dpo", n_subjects=2)
    ttq = cost.time_to_quality(curves, "pas", "dpo", fits).set_index("subject")
    assert ttq.loc[1, "pas_loss"] == 2.0 and ttq.loc[1, "dpo_s"] == 80.0 and ttq.loc[1, "reached"]
    assert ttq.loc[1, "ratio"] == pytest.approx(20 / 80)
    assert not ttq.loc[2, "reached"] and ttq.loc[2, "censored"] and ttq.loc[2, "dpo_s"] == 50.0  # its whole search
    assert ttq.loc[1, "dpo_beats_unchanged"] and ttq.loc[2, "dpo_beats_unchanged"]
    assert not ttq["reached_untrained"].any()


def test_pas_no_better_than_the_unchanged_model_is_not_a_cost_comparison():
    # Subject 1: the unchanged model (DPO step 0, loss 2.0) already matches PAS's 2.0; DPO never improves.
    traces = _traces({1: [(0, 2.4), (4, 2.0)], 2: [(0, 2.5), (4, 2.1)]},
                     {1: [(0, 2.0, 5.0), (8, 2.2, 40.0)], 2: [(0, 3.0, 5.0), (8, 2.0, 50.0)]})
    times = _times({1: 10.0, 2: 10.0}, {1: 60.0, 2: 60.0})
    fits = cost.fit_times(times, {"pas": "content"}, n_subjects=2)
    curves = cost.quality_curves(traces, times, "pas", "dpo", n_subjects=2)
    ttq = cost.time_to_quality(curves, "pas", "dpo", fits).set_index("subject")
    assert ttq.loc[1, "reached_untrained"] and ttq.loc[1, "dpo_s"] == 5.0 and not ttq.loc[1, "dpo_beats_unchanged"]
    assert not ttq.loc[2, "reached_untrained"] and ttq.loc[2, "dpo_s"] == 50.0
    only_untrained = ttq.reset_index().iloc[[0, 0, 0]].assign(subject=[1, 2, 3])
    verdict = cost.cost_verdict(only_untrained)
    assert verdict.verdict == "not testable here" and "no better than the unchanged model" in verdict.reason
    # the untrained subject is left out, the others decide
    mixed = pd.DataFrame({"subject": [1, 2, 3, 4], "ratio": [1.2, 0.9, 1.1, 1.0], "censored": False,
                          "reached_untrained": [True, False, False, False]})
    assert cost.cost_verdict(mixed).n == 3


def test_censored_ratios_never_make_a_not_replicated():
    ttq = pd.DataFrame({"subject": [1, 2, 3], "ratio": [0.9, 1.1, 1.0], "censored": [False, True, False]})
    assert cost.cost_verdict(ttq).verdict == INCONCLUSIVE
    assert cost.cost_verdict(ttq.assign(censored=False)).verdict == NOT_REPLICATED
    cheap = pd.DataFrame({"subject": [1, 2, 3], "ratio": [0.05, 0.06, 0.04], "censored": [True, True, False]})
    assert cost.cost_verdict(cheap).verdict == REPLICATED  # upper bounds below 1/5: the true ratios are too
    assert cost.cost_verdict(pd.DataFrame()).verdict == "not testable here"
