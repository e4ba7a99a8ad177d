"""The alignment experiment: settings checked before any model, a seeded paired stratified sample, every
method's predictions with its times and trace, sharded runs that merge into the same numbers."""

from __future__ import annotations

import pandas as pd
import pytest
from methods_fixtures import papi_items
from tiny_models import tiny_model, tiny_tokenizer

from persona.engine import Engine
from persona.papi import experiment as ex
from persona.papi.methods.dpo import DPOSettings
from persona.runs import ResultStore
from persona.timing import StageTimer


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (conftest)


@pytest.mark.parametrize("bad,message", [
    ({"n_subjects": 0}, "n_subjects"), ({"n_subjects": 301}, "n_subjects"), ({"n_subjects": -1}, "n_subjects"),
    ({"n_test_per_domain": 37}, "n_test_per_domain"), ({"n_test_per_domain": 0}, "n_test_per_domain"),
    ({"n_known_per_domain": 25}, "n_known_per_domain"), ({"alphas": ()}, "alphas"), ({"alphas": (2, 4)}, "alphas"),
    ({"alphas": (0, -1)}, "alphas"), ({"k_share": 0.0}, "k_share"), ({"methods": ("pas[honest]",)}, "pas"),
    ({"methods": ("fewshot[corrected]",)}, "unknown method"), ({"dpo_subjects": 3, "n_subjects": 2}, "dpo_subjects"),
    ({"contrast": "letters"}, "contrast"), ({"dpo_method": "few-shot[paper]"}, "dpo_method"),
])
def test_bad_settings_stop_before_any_work_naming_the_parameter(bad, message):
    with pytest.raises(ValueError, match=message):
        ex.AlignmentSettings(**bad)
    with pytest.raises(ValueError, match="learning_rates"):
        DPOSettings(learning_rates=())


def test_the_sample_is_seeded_paired_and_stratified_by_domain_and_sign():
    papi_items()  # skips without data
    settings = ex.AlignmentSettings(n_subjects=10, n_test_per_domain=6, n_known_per_domain=None, seed=3)
    a, b = ex.papi_setup(settings), ex.papi_setup(settings)
    assert [s.case for s in a.subjects] == [s.case for s in b.subjects]
    assert [i.number for i in a.test] == [i.number for i in b.test]
    other = ex.papi_setup(ex.AlignmentSettings(n_subjects=10, n_test_per_domain=6, n_known_per_domain=None, seed=4))
    assert [s.case for s in other.subjects] != [s.case for s in a.subjects]
    counts = ex.sample_table(a)
    assert (counts["+"] == 3).all() and (counts["-"] == 3).all()  # both keying signs in every domain
    assert len(a.known) == 120 and len(a.truth) == 10 * 30
    assert [s.index for s in a.subjects] == sorted(s.index for s in a.subjects)  # not the first rows of the file
    assert [s.index for s in a.subjects] != list(range(10))
    assert len(a.others) == 290 and not {s.case for s in a.others} & {s.case for s in a.subjects}


def test_run_stores_predictions_times_and_traces_and_shards_merge_to_the_same_numbers(tmp_path):
    papi_items()
    tok = tiny_tokenizer()
    engine = Engine(tiny_model("llama", tok, seed=1), tok)
    settings = ex.AlignmentSettings(n_subjects=4, n_test_per_domain=1, n_known_per_domain=3, alphas=(0, 4),
                                    k_share=0.5, methods=("few-shot[corrected]", "pas[honest,corrected]"))
    setup = ex.papi_setup(settings)

    def one_run(folder, shards):
        store = ResultStore(folder, {"t": 1}, code="test")
        timer = StageTimer()
        activations = ex.Activations(engine, setup, timer)
        methods = {m: ex.make_method(m, engine, setup, settings, activations=activations, timer=timer)
                   for m in settings.methods}
        for shard in shards:
            ex.run(methods, setup, store, timer, shard=shard)
        assert not ex.missing(store, list(methods), setup)
        return store, ex.run(methods, setup, store, timer)

    whole_store, whole = one_run(tmp_path / "whole", [None])
    sharded_store, sharded = one_run(tmp_path / "sharded", [(0, 2), (1, 2)])
    key = ["method", "subject", "item"]
    columns = ["item", "predicted", "expected", "p5", "p1", "p5_orig", "cf5_rev", "subject", "method"]
    pd.testing.assert_frame_equal(whole.sort_values(key)[columns].reset_index(drop=True),
                                  sharded.sort_values(key)[columns].reset_index(drop=True))
    times = ex.records(whole_store, list(settings.methods), "times")
    assert {"fit", "pas/probes", "pas/alpha-search"} <= set(times["stage"])
    assert (times["stage"] == "pas/activations").sum() == 1  # computed once, on first use
    trace = ex.records(whole_store, ["pas[honest,corrected]"], "trace")
    assert len(trace) == 4 * 2 and set(trace["alpha"]) == {0, 4}


def test_a_sharded_run_reports_what_other_shards_still_owe(tmp_path):
    papi_items()
    tok = tiny_tokenizer()
    engine = Engine(tiny_model("llama", tok, seed=1), tok)
    settings = ex.AlignmentSettings(n_subjects=3, n_test_per_domain=1, n_known_per_domain=2, methods=("no-change",))
    setup = ex.papi_setup(settings)
    store = ResultStore(tmp_path, {}, code="test")
    methods = {"no-change": ex.make_method("no-change", engine, setup, settings)}
    got = ex.run(methods, setup, store, StageTimer(), shard=(0, 2))
    assert got["subject"].nunique() == 2  # positions 0 and 2 of the sample
    assert ex.missing(store, ["no-change"], setup) == [("no-change", setup.subjects[1].case)]


def test_the_alignment_notebooks_take_their_defaults_from_one_place():
    """Notebooks 02, 03 and 05 assign exactly ``experiment.DEFAULTS`` in their parameters cells (05 adds its own)."""
    from persona.runbook import NOTEBOOK_DIR, notebook_defaults

    for stem in ("02_alignment", "03_cost", "05_transfer"):
        cell = notebook_defaults(NOTEBOOK_DIR / f"{stem}.ipynb")
        shared = {k: v for k, v in cell.items() if not k.startswith("transfer_")}
        assert shared == ex.DEFAULTS, stem


@pytest.mark.parametrize("bad, message", [
    ({"control_alphas": []}, "control_alphas"),
    ({"control_alphas": [-8, 0]}, "positive alpha"),
    ({"control_k_shares": [0.0]}, "control_k_shares"),
    ({"methods": "no-change"}, "list of method names"),
    ({"n_boot": 0}, "n_boot"),
    ({"n_boot": -5}, "n_boot"),
    ({"n_subjects": -5}, "n_subjects"),
    ({"shard": "3/2"}, "shard"),
    ({"threads": -1}, "threads"),
])
def test_every_alignment_parameter_is_checked_before_any_model_loads(bad, message):
    with pytest.raises(ValueError, match=message):
        ex.check_parameters({**ex.DEFAULTS, **bad})
