"""Running TRAIT through the engine: the run module on a tiny model, resumable shards, the official
bare-token lookup, decisions from stored frames."""

import numpy as np
import pandas as pd
import pytest
from conftest import mirror_or_skip
from tiny_models import tiny_model, torch_threads

from persona.engine import Engine
from persona.runs import ResultStore
from persona.trait.items import TraitItem
from persona.trait.prompts import trait_grid
from persona.trait.run import TraitSettings, _score_shard, bare_label_ids, draw_samples, run_trait
from persona.trait.scoring import RAW_COLS, decisions, trait_score_table


@pytest.fixture(scope="module")
def engine(tok):
    with torch_threads(1):
        yield Engine(tiny_model("llama", tok), tok, batch_size=4)


def tiny_loader(tok):
    def load(name):
        return tiny_model("llama", tok, seed=0 if name == "a" else 1), tok
    return load


def fake_items(n=5):
    return [TraitItem(trait="Openness" if i % 2 else "Narcissism", row=i, question=f"I make friends {i} times?",
                      high1=f"Worry {i}", high2="Make friends", low1="Answer things", low2=f"A B {i}")
            for i in range(n)]


def test_run_trait_asks_every_task_and_resumes_without_recomputing(tok, tmp_path):
    mirror_or_skip()
    settings = TraitSettings(models=("a", "b"), per_trait=2, persona_per_trait=1, refusal_per_trait=1,
                             bare_per_trait=1, selfreport_per_trait_level=1, max_new_tokens=4, batch_size=8,
                             shard_size=16, other_sizes={"per_trait": 1})
    with torch_threads(1):
        first = run_trait(settings, tmp_path, load=tiny_loader(tok))
        main = first.frames["main"]
        assert (main["model"] == "a").sum() == 8 * 2 * 3 * 2  # items x templates x orders
        assert (main["model"] == "b").sum() == 8 * 1 * 3 * 2  # the second model's smaller sample
        assert set(main.loc[main["model"] == "b", "key"]) < set(main.loc[main["model"] == "a", "key"])
        for task in ("bare", "persona", "self", "gen"):  # the detail tasks: the first model only
            assert set(first.frames[task]["model"]) == {"a"}, task
        assert len(first.frames["persona"]) == 8 * 1 * 2 * 2  # items x (high, low) x orders
        assert first.frames["gen"]["outcome"].notna().all()
        assert set(first.frames["gen"]["test"]) == {"TRAIT", "self-report"}
        cf = first.frames["cf"]
        assert len(cf[cf["model"] == "b"]) == 3 * 2  # TRAIT: templates x orders
        assert len(cf[cf["model"] == "a"]) == 3 * 2 * 2 + 8 * 2 * 2  # + self-report, + each persona prompt x order
        table = first.sample_table()
        assert table.loc["a", "main"] == 2 and table.loc["b", "main"] == 1
        shards = sorted(tmp_path.rglob("a/main/*/shards/*.csv"))
        assert len(shards) == 6  # 96 prompts in shards of 16
        stamp = shards[0].stat().st_mtime_ns
        shards[1].unlink()  # a lost shard is recomputed, the others are reused
        again = run_trait(settings, tmp_path, load=tiny_loader(tok))
    assert shards[0].stat().st_mtime_ns == stamp
    for task, frame in first.frames.items():
        pd.testing.assert_frame_equal(frame, again.frames[task], check_exact=False, atol=1e-6)


def test_scoring_an_items_two_orders_together_gives_the_same_probabilities(engine):
    prompts, meta = trait_grid(fake_items(4), templates=(0, 2))
    assert meta["order"].tolist()[:4] == ["original", "reversed"] * 2  # an item's orders are neighbours
    together = _score_shard(engine, prompts, meta, None, by_item=True)
    at_once = _score_shard(engine, prompts, meta, None, by_item=False)
    np.testing.assert_allclose(together[RAW_COLS].to_numpy(float), at_once[RAW_COLS].to_numpy(float), atol=1e-5)


def test_settings_are_checked_before_any_work():
    with pytest.raises(ValueError, match="per_trait"):
        TraitSettings(per_trait=0)
    with pytest.raises(ValueError, match="persona_per_trait"):
        TraitSettings(per_trait=2, persona_per_trait=3)
    with pytest.raises(ValueError, match="templates"):
        TraitSettings(templates=(0, 3))
    with pytest.raises(ValueError, match="persona_templates"):
        TraitSettings(persona_templates=())
    with pytest.raises(ValueError, match="detail_models"):
        TraitSettings(models=("a",), detail_models=("b",))
    with pytest.raises(ValueError, match="other_sizes.per_trait"):
        TraitSettings(models=("a", "b"), per_trait=2, other_sizes={"per_trait": 3})
    with pytest.raises(ValueError, match="other_sizes"):
        TraitSettings(models=("a", "b"), other_sizes={"items": 3})
    with pytest.raises(ValueError, match="other_sizes.refusal_per_trait"):
        TraitSettings(models=("a", "b"), per_trait=4, refusal_per_trait=2, other_sizes={"per_trait": 1})
    with pytest.raises(ValueError, match="shard_size"):
        TraitSettings(shard_size=15)


def test_samples_are_nested_and_balanced(tmp_path):
    mirror_or_skip()
    from persona.trait.items import load_trait_items
    from persona.trait.selfreport import load_selfreport_items

    settings = TraitSettings(models=("a", "b"), per_trait=6, persona_per_trait=3, refusal_per_trait=3,
                             bare_per_trait=2, selfreport_per_trait_level=2,
                             other_sizes={"per_trait": 4, "persona_per_trait": 2, "refusal_per_trait": 1,
                                          "bare_per_trait": 1})
    samples = draw_samples(settings, load_trait_items(), load_selfreport_items())
    a, b = samples["a"], samples["b"]
    assert a.counts() == {"main": 6, "bare": 2, "persona": 3, "refusal": 3, "selfreport": 4,
                          "selfreport_refusal": 3}
    assert b.counts()["main"] == 4 and b.counts()["persona"] == 2
    keys = lambda items: {it.key for it in items}  # noqa: E731
    assert keys(b.main) <= keys(a.main) and keys(b.persona) <= keys(b.main) and keys(a.refusal) <= keys(a.main)
    per_trait = pd.Series([it.keyed_high for it in a.selfreport_refusal]).groupby(
        [it.trait for it in a.selfreport_refusal]).sum()
    assert (per_trait == 2).all()  # 3 statements per trait: high0, low0, high1


def test_bare_tokens_are_a_subset_of_all_tokenisations(engine):
    prompts, _ = trait_grid(fake_items(3), templates=(0, 1, 2))
    every = engine.label_probs(prompts).raw
    bare = engine.label_probs(prompts, label_ids=bare_label_ids(engine.tokenizer)).raw
    assert (bare <= every + 1e-9).all() and (bare < every - 1e-6).any()  # " A" etc. carry mass the official code misses


def test_decisions_and_scores_from_frames(engine):
    prompts, meta = trait_grid(fake_items(4), templates=(0, 1))
    result = engine.label_probs(prompts)
    frame = meta.assign(**dict(zip(RAW_COLS, result.raw.T)), mass=result.mass)
    dec = decisions(frame)
    assert len(dec) == 4 * 2 and set(dec.columns) >= {"official", "fixed", "orig", "rev", "mass"}
    table = trait_score_table(dec, ["template", "trait"], n_boot=50)
    assert len(table) == 4 and table["score"].between(0, 100).all()
    # the official and fixed decisions agree wherever the item had label mass and no tie
    ok = dec["fixed"].notna()
    assert (dec.loc[ok, "official"] == (dec.loc[ok, "fixed"] == 1)).all()


def test_selfreport_masks_survive_the_csv_round_trip(tmp_path):
    # CSV reads the mask "0011" back as the integer 11; decisions must restore it, or a low-keyed
    # statement would be scored as high-keyed.
    raw = [0.1, 0.6, 0.2, 0.1]  # "Agree" (identity option 1) wins in both orders
    rows = [{"key": k, "trait": "Openness", "template": 1, "order": o, "persona": "none", "mask": m,
             **dict(zip(RAW_COLS, raw)), "mass": 1.0}
            for k, m in (("high0", "1100"), ("low0", "0011")) for o in ("original", "reversed")]
    store = ResultStore(tmp_path / "s", {}, code="test")
    store.save("self", "shard-00000", pd.DataFrame(rows))
    dec = decisions(store.load(["self"])).set_index("key")
    assert dec.loc["low0", "mask"] == "0011" and dec.loc["high0", "mask"] == "1100"
    assert dec.loc["high0", "fixed"] == 1.0 and dec.loc["low0", "fixed"] == 0.0
    assert np.isfinite(dec["mass"]).all()


def test_notebook_parameters_are_checked_as_settings_and_a_string_is_not_a_list():
    from persona.trait.run import TraitSettings

    params = {"models": ["smollm2-135m-instruct"], "per_trait": 2, "templates": [0, 1, 2], "threads": None,
              "results_dir": None, "other_sizes": {}, "detail_models": None}
    settings = TraitSettings.from_parameters(params)
    assert settings.models == ("smollm2-135m-instruct",) and settings.per_trait == 2
    with pytest.raises(ValueError, match="models must be a list"):
        TraitSettings.from_parameters({**params, "models": "smollm2-135m-instruct"})
    for bad in (0, -5, 99):
        with pytest.raises(ValueError, match="n_boot"):
            TraitSettings.from_parameters({**params, "n_boot": bad})


@pytest.mark.parametrize("change", [{"shard_size": 8}, {"batch_size": 4}, {"max_new_tokens": 3},
                                    {"templates": (0, 2)}, {"per_trait": 1, "persona_per_trait": 1,
                                                            "refusal_per_trait": 1, "bare_per_trait": 1}])
def test_a_setting_that_changes_stored_results_never_reuses_them(tok, tmp_path, change):
    """Re-running with another shard size used to return 48 rows (16 prompts twice, 16 missing) from the folder
    of the default size. Every setting that shapes the stored rows opens its own folder."""
    mirror_or_skip()
    base = dict(models=("a",), per_trait=2, persona_per_trait=1, refusal_per_trait=1, bare_per_trait=1,
                selfreport_per_trait_level=1, max_new_tokens=4, batch_size=8, shard_size=16)
    with torch_threads(1):
        run_trait(TraitSettings(**base), tmp_path, load=tiny_loader(tok))
        changed = TraitSettings(**{**base, **change})
        again = run_trait(changed, tmp_path, load=tiny_loader(tok))
    main = again.frames["main"]
    per_trait = changed.per_trait
    assert len(main) == 8 * per_trait * len(changed.templates) * 2
    assert not main.duplicated(["key", "template", "order"]).any()
