"""Running TRAIT prompts through the engine: resumable shards, official bare-token lookup, decisions."""

import numpy as np
import pandas as pd
import pytest

from persona.engine import Engine, MCItem
from persona.engine.testing import tiny_model, tiny_tokenizer, torch_threads
from persona.runs import ResultStore
from persona.trait import TraitItem, trait_grid
from persona.trait_scoring import RAW_COLS, bare_label_ids, decisions, score_resumable, score_table


@pytest.fixture(scope="module")
def engine():
    with torch_threads(1):
        tok = tiny_tokenizer()
        yield Engine(tiny_model("llama", tok), tok, batch_size=4)


def fake_items(n=5):
    return [TraitItem(trait="Openness" if i % 2 else "Narcissism", row=i, question=f"I make friends {i} times?",
                      high1=f"Worry {i}", high2="Make friends", low1="Answer things", low2=f"A B {i}")
            for i in range(n)]


def test_shards_resume_without_recomputing(engine, tmp_path):
    prompts, meta = trait_grid(fake_items(), templates=(0, 2))
    store = ResultStore(tmp_path / "run", params={"n": 5})
    first = score_resumable(engine, prompts, meta, store, "main", shard_size=6, progress=False)
    shards = sorted((tmp_path / "run" / "main").glob("*.csv"))
    assert len(shards) == 4 and len(first) == len(prompts)
    shards[1].unlink()
    stamp = shards[0].stat().st_mtime_ns
    again = score_resumable(engine, prompts, meta, store, "main", shard_size=6, progress=False)
    assert shards[0].stat().st_mtime_ns == stamp  # untouched
    pd.testing.assert_frame_equal(first, again)
    direct = engine.score(prompts)
    np.testing.assert_allclose(first[RAW_COLS].to_numpy(), direct.raw, atol=1e-5)


def test_bare_tokens_are_a_subset_of_all_tokenisations(engine, tmp_path):
    prompts, meta = trait_grid(fake_items(3), templates=(0, 1, 2))
    store = ResultStore(tmp_path / "run")
    every = score_resumable(engine, prompts, meta, store, "all", progress=False)
    bare = score_resumable(engine, prompts, meta, store, "bare", label_ids=bare_label_ids(engine.tokenizer),
                           progress=False)
    a, b = every[RAW_COLS].to_numpy(), bare[RAW_COLS].to_numpy()
    assert (b <= a + 1e-9).all() and (b < a - 1e-6).any()  # " A" etc. carry mass the official code misses


def test_decisions_and_scores_from_frames(engine, tmp_path):
    prompts, meta = trait_grid(fake_items(4), templates=(0, 1))
    frame = score_resumable(engine, prompts, meta, ResultStore(tmp_path / "r"), "main", progress=False)
    dec = decisions(frame)
    assert len(dec) == 4 * 2 and set(dec.columns) >= {"official", "fixed", "orig", "rev", "mass"}
    table = score_table(dec, ["template", "trait"], n_boot=50)
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
    store = ResultStore(tmp_path / "s")
    store.save("self", "shard-00000", pd.DataFrame(rows))
    dec = decisions(store.load(["self"])).set_index("key")
    assert dec.loc["low0", "mask"] == "0011" and dec.loc["high0", "mask"] == "1100"
    assert dec.loc["high0", "fixed"] == 1.0 and dec.loc["low0", "fixed"] == 0.0
