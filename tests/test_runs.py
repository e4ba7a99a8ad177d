"""Resumable results: an interrupted run resumes without recomputing or duplicating; timing helpers."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from persona.runs import ResultStore
from persona.timing import StageTimer, amortised_total, interleave


def _rows(subject):
    return pd.DataFrame({"subject": [subject] * 2, "item": [1, 2], "predicted": [3, 4]})


def test_interrupted_run_resumes_without_recomputing(tmp_path):
    calls = []

    def compute(subject):
        if subject == 3 and not calls.count("crashed"):
            calls.append("crashed")
            raise KeyboardInterrupt  # the run dies while subject 3 is being computed
        calls.append(subject)
        return _rows(subject)

    store = ResultStore(tmp_path, params={"model": "tiny", "n": 5})
    with pytest.raises(KeyboardInterrupt):
        store.run("few-shot", range(5), compute)
    assert calls == [0, 1, 2, "crashed"]
    assert not list(tmp_path.rglob(".partial-*"))  # nothing half-written is left behind
    assert sorted(store.load()["subject"].unique()) == [0, 1, 2]

    store = ResultStore(tmp_path, params={"model": "tiny", "n": 5})  # a new process resumes
    assert store.run("few-shot", range(5), compute) == 2
    assert calls[-2:] == [3, 4]  # only the missing subjects were computed
    frame = store.load()
    assert len(frame) == 10 and not frame.duplicated(["subject", "item"]).any()
    assert store.run("few-shot", range(5), compute) == 0


def test_resume_with_other_parameters_is_refused(tmp_path):
    ResultStore(tmp_path, params={"model": "a"})
    with pytest.raises(ValueError, match="other parameters"):
        ResultStore(tmp_path, params={"model": "b"})


def test_load_selects_methods(tmp_path):
    store = ResultStore(tmp_path)
    store.save("pas[paper]", 1, _rows(1).assign(method="pas[paper]"))
    store.save("dpo", 1, _rows(1).assign(method="dpo"))
    assert set(store.load(["dpo"])["method"]) == {"dpo"}
    assert len(store.load()) == 4


def test_interleave_alternates_order():
    assert interleave([1, 2, 3], ["A", "B"]) == [(1, "A"), (1, "B"), (2, "B"), (2, "A"), (3, "A"), (3, "B")]


def test_stage_timer_measures_wall_and_cpu():
    timer = StageTimer()
    with timer.stage("sleep", method="x", subject=0):
        time.sleep(0.2)
    with timer.stage("spin", method="x", subject=0):
        end = time.process_time() + 0.2
        while time.process_time() < end:
            pass
    frame = timer.frame()
    sleep, spin = frame.iloc[0], frame.iloc[1]
    assert sleep.wall_s >= 0.2 and sleep.cpu_s < 0.1  # waiting costs wall time, not CPU
    assert spin.cpu_s >= 0.2
    assert (frame.peak_rss_mb > 0).all()


def test_amortised_total_spreads_once_stages():
    frame = pd.DataFrame({
        "method": ["pas", "pas", "pas", "dpo", "dpo"],
        "stage": ["activations", "fit", "fit", "train", "train"],
        "subject": [None, 0, 1, 0, 1],
        "wall_s": [10.0, 1.0, 2.0, 30.0, 40.0],
        "cpu_s": [10.0, 1.0, 2.0, 30.0, 40.0],
    })
    out = amortised_total(frame, once_stages=["activations"], n_subjects=2).set_index(["method", "subject"])
    assert out.loc[("pas", 0), "wall_s"] == pytest.approx(6.0)
    assert out.loc[("pas", 1), "wall_s"] == pytest.approx(7.0)
    assert out.loc[("dpo", 1), "wall_s"] == pytest.approx(40.0)


def test_code_fingerprint_and_params_folder(tmp_path):
    from persona.runs import code_fingerprint, params_folder

    a = code_fingerprint("persona.runs", "persona.methods")
    assert a == code_fingerprint("persona.runs", "persona.methods") and len(a) == 12
    assert a != code_fingerprint("persona.runs")
    assert params_folder(tmp_path, {"x": 1}) == params_folder(tmp_path, {"x": 1})
    assert params_folder(tmp_path, {"x": 1}) != params_folder(tmp_path, {"x": 2})
