"""TRAIT scored by option text (cloze): its rows become the same per-order probability table as label scoring,
so decisions, reliability and persona tables read them unchanged; it is a task of its own in a run."""

import numpy as np
import pandas as pd
import pytest
from conftest import mirror_or_skip
from tiny_models import tiny_model, torch_threads

from persona.engine import Engine
from persona.trait import reliability as R
from persona.trait import scoring as S
from persona.trait.items import TraitItem
from persona.trait.prompts import trait_grid
from persona.trait.run import TraitSettings, _cloze_shard, _with_options, run_trait
from persona.trait.scoring import CLOZE_PARTS, RAW_COLS, cloze_frame, decisions, text_only_frame


@pytest.fixture(scope="module")
def engine(tok):
    with torch_threads(1):
        yield Engine(tiny_model("llama", tok), tok, batch_size=4)


def fake_items(n=4):
    return [TraitItem(trait="Openness" if i % 2 else "Narcissism", row=i, question=f"I make friends {i} times?",
                      high1=f"Worry about things {i}", high2="Make friends", low1="Answer the question",
                      low2=f"Describe a situation {i}")
            for i in range(n)]


def test_cloze_rows_hold_every_normalisation_and_match_the_engine(engine):
    items = fake_items()
    prompts, meta = _with_options(trait_grid(items, templates=(0, 2)), {it.key: it.options for it in items})
    with torch_threads(1):
        by_item = _cloze_shard(engine, prompts, meta, neutral="Answer:", by_item=True)
        at_once = _cloze_shard(engine, prompts, meta, neutral="Answer:", by_item=False)
        direct = engine.score_options(prompts, meta["options"].tolist(), normalisation="unconditional")
    assert "options" not in by_item.columns
    for cols in CLOZE_PARTS.values():
        np.testing.assert_allclose(by_item[cols].to_numpy(float), at_once[cols].to_numpy(float), atol=1e-4)
    for normalisation in ("none", "length", "token", "unconditional"):
        table = cloze_frame(by_item, normalisation)
        want = direct.renormalised(normalisation).probs
        np.testing.assert_allclose(table[RAW_COLS].to_numpy(float), want, atol=1e-5)
        assert (table["scoring"] == f"cloze-{normalisation}").all()
        assert not set(CLOZE_PARTS["logprob"]) & set(table.columns)
        dec = decisions(table)
        assert len(dec) == len(items) * 2 and dec["fixed"].notna().all()
    # the options' total text probability, not a label mass
    np.testing.assert_allclose(by_item["mass"], direct.mass, rtol=1e-4)
    assert (by_item["mass"] < 1e-3).all()


def _stored_row(key, order, logprob, nchar, uncond=(0.0, 0.0, 0.0, 0.0), template=1):
    return {"key": key, "trait": "Openness", "template": template, "order": order, "persona": "none",
            "mask": "1010", **dict(zip(CLOZE_PARTS["logprob"], logprob)), **dict(zip(CLOZE_PARTS["n_chars"], nchar)),
            **dict(zip(CLOZE_PARTS["n_tokens"], (2, 4, 3, 5))), **dict(zip(CLOZE_PARTS["unconditional"], uncond)),
            "mass": float(np.exp(logprob).sum())}


def test_synthetic_rows_give_known_decisions():
    """Identity order (high1, low1, high2, low2). Item x: the short high1 wins on the sum, the long low1 per
    character, so "none" says high and "length" says low, in both orders. Item y: the orders disagree under
    "none" (the listed order moved the scores) and the unconditional prior reverses item z's choice."""
    rows = [
        _stored_row("x", "original", (-6, -9, -8, -20), (3, 6, 4, 10)),
        _stored_row("x", "reversed", (-6, -9, -8, -20), (3, 6, 4, 10)),
        _stored_row("y", "original", (-5, -7, -9, -9), (5, 5, 5, 5)),
        _stored_row("y", "reversed", (-7, -5, -9, -9), (5, 5, 5, 5)),
        _stored_row("z", "original", (-5, -6, -9, -9), (5, 5, 5, 5), uncond=(-1, -4, -5, -5)),
        _stored_row("z", "reversed", (-5, -6, -9, -9), (5, 5, 5, 5), uncond=(-1, -4, -5, -5)),
    ]
    frame = pd.DataFrame(rows)
    dec = {n: decisions(cloze_frame(frame, n)).set_index("key") for n in ("none", "length", "unconditional")}
    assert dec["none"].loc["x", "fixed"] == 1.0 and dec["length"].loc["x", "fixed"] == 0.0
    assert dec["none"].loc["y", "orig"] == 1.0 and dec["none"].loc["y", "rev"] == 0.0
    assert dec["none"].loc["z", "fixed"] == 1.0 and dec["unconditional"].loc["z", "fixed"] == 0.0
    items = R.item_reliability(dec["none"].reset_index().assign(model="m", test="TRAIT"))
    assert items.set_index("key")["order_sensitivity"].to_dict() == {"x": 0.0, "y": 100.0, "z": 0.0}
    # the text-only controls: item z's texts alone. Least likely text (-uncond): high2/low2 tie at 5, so
    # undetermined; the likeliest text on its own: high1
    control = {n: decisions(text_only_frame(frame, n)).set_index("key") for n in ("none", "unconditional")}
    assert control["none"].loc["z", "fixed"] == 1.0 and np.isnan(control["unconditional"].loc["z", "fixed"])
    assert (text_only_frame(frame, "length")["scoring"] == "text-only-length").all()


def test_reliability_and_persona_tables_read_cloze_rows(engine):
    items = fake_items(6)
    options = {it.key: it.options for it in items}
    base_prompts, base_meta = _with_options(trait_grid(items, templates=(0, 1, 2)), options)
    persona_grid = [trait_grid(items, (0,), system=f"You are a helpful assistant {level}.", persona=level)
                    for level in ("high", "low")]
    p_prompts = [p for grid in persona_grid for p in grid[0]]
    p_meta = pd.concat([grid[1] for grid in persona_grid], ignore_index=True)
    p_prompts, p_meta = _with_options((p_prompts, p_meta), options)
    with torch_threads(1):
        main = _cloze_shard(engine, base_prompts, base_meta, neutral="Answer:").assign(model="m", test="TRAIT")
        persona = _cloze_shard(engine, p_prompts, p_meta, neutral="Answer:", by_item=False).assign(
            model="m", test="TRAIT")
    keys = ("model", "test", "key", "trait", "template", "persona")
    for normalisation in ("length", "unconditional"):
        dec_main = S.decisions(cloze_frame(main, normalisation), keys=keys)
        rel = R.reliability_table(R.item_reliability(dec_main), ["model", "test"])
        assert rel["order_sensitivity"].between(0, 100).all() and rel["order_sensitivity_n"].iloc[0] == 6
        agreement = R.agreement_table(dec_main, ["model"], n_boot=50)
        assert agreement["n_items"].iloc[0] == 6
        dec_persona = S.decisions(cloze_frame(persona, normalisation), keys=keys)
        summary = S.persona_summary(S.persona_items(dec_persona, dec_main))
        assert len(summary) == 2 * 2 and summary["intended"].between(0, 100).all()


def test_settings_check_the_scoring():
    assert TraitSettings().scoring == ("letter",)
    TraitSettings(scoring=("letter", "cloze-length", "cloze-unconditional"))
    for bad in (("cloze-length",), ("letter", "cloze"), ("letter", "letter"), (), ["letter"]):
        with pytest.raises(ValueError, match="scoring"):
            TraitSettings(scoring=bad)
    with pytest.raises(ValueError, match="cloze_context"):
        TraitSettings(cloze_context=" ")
    # from a notebook's parameters: a list becomes a tuple, a lone string is refused (not split into letters)
    assert TraitSettings.from_parameters({"scoring": ["letter", "cloze-length"]}).scoring == ("letter", "cloze-length")
    with pytest.raises(ValueError, match="scoring"):
        TraitSettings.from_parameters({"scoring": "letter"})


def tiny_loader(tok):
    return lambda name: (tiny_model("llama", tok), tok)


def test_run_trait_stores_cloze_as_its_own_task(tok, tmp_path):
    mirror_or_skip()
    small = dict(models=("a",), per_trait=1, persona_per_trait=1, refusal_per_trait=1, bare_per_trait=1,
                 selfreport_per_trait_level=1, max_new_tokens=2, batch_size=8, shard_size=16)
    with torch_threads(1):
        letter = run_trait(TraitSettings(**small), tmp_path, load=tiny_loader(tok))
        main_shards = sorted(tmp_path.rglob("a/main/*/shards/*.csv"))
        stamps = [p.stat().st_mtime_ns for p in main_shards]
        both = run_trait(TraitSettings(**small, scoring=("letter", "cloze-length", "cloze-unconditional")),
                         tmp_path, load=tiny_loader(tok))
    assert "main-cloze" not in letter.frames
    assert [p.stat().st_mtime_ns for p in main_shards] == stamps  # label results reused, never rewritten
    pd.testing.assert_frame_equal(letter.frames["main"], both.frames["main"])
    cloze_shards = sorted(tmp_path.rglob("a/main-cloze/*/shards/*.csv"))
    assert cloze_shards and not set(cloze_shards) & set(main_shards)
    for task, n in (("main-cloze", 8 * 3 * 2), ("persona-cloze", 8 * 2 * 2), ("self-cloze", 16 * 3 * 2)):
        assert len(both.frames[task]) == n, task
    stacked = both.scored_all("main")
    assert stacked["scoring"].value_counts().to_dict() == {"letter": 48, "cloze-length": 48, "cloze-unconditional": 48}
    keys = ("model", "test", "key", "trait", "template", "persona", "scoring")
    dec = S.decisions(stacked, keys=keys)
    assert set(dec["scoring"]) == {"letter", "cloze-length", "cloze-unconditional"} and len(dec) == 3 * 24
    assert set(both.timings["task"]) >= {"main", "main-cloze", "persona-cloze", "self-cloze"}
    assert both.scored("self", "cloze-token")["test"].eq("self-report").all()  # any normalisation, from the parts
    assert both.scored("main", "text-only-unconditional")["scoring"].eq("text-only-unconditional").all()
    with pytest.raises(KeyError, match="cloze"):
        letter.scored("main", "cloze-length")


def test_protocol_rows_put_every_protocol_side_by_side_with_its_control_and_check(tok, tmp_path):
    from persona import gate as G
    from persona.trait import protocols
    from persona.trait.calibration import calibrate_frame

    mirror_or_skip()
    small = dict(models=("a",), per_trait=2, persona_per_trait=1, refusal_per_trait=1, bare_per_trait=1,
                 selfreport_per_trait_level=1, max_new_tokens=2, batch_size=8, shard_size=16,
                 scoring=("letter", "cloze-length", "cloze-unconditional"))
    with torch_threads(1):
        run = run_trait(TraitSettings(**small), tmp_path, load=tiny_loader(tok))
    plain = run.frames["cf"][run.frames["cf"]["persona"] == "none"]
    calibrated = S.decisions(calibrate_frame(run.frames["main"], plain), keys=protocols.KEYS)
    table, checks = protocols.protocol_rows(run, "a", run.settings.scoring, calibrated_letter=calibrated,
                                            n_boot=200, seed=0, family_size=8)
    assert list(table.index) == ["letter", "cloze-length", "cloze-unconditional"]
    assert set(checks) == set(table.index) and all(isinstance(c, G.Check) for c in checks.values())
    assert table[["TRAIT order sensitivity", "proxy order sensitivity"]].notna().all().all()
    assert np.isnan(table.loc["letter", "agrees with text-only control (%)"])
    assert table.loc[["cloze-length", "cloze-unconditional"], "agrees with text-only control (%)"].between(0, 100).all()


def test_control_agreement_counts_equal_item_decisions():
    from persona.trait.protocols import control_agreement

    dec = pd.DataFrame({"key": ["a", "b", "c", "d"], "template": 0, "fixed": [1.0, 0.0, 1.0, np.nan]})
    control = dec.assign(fixed=[1.0, 1.0, 1.0, 0.0])
    assert control_agreement(dec, control) == pytest.approx(100 * 2 / 3)  # d is undetermined: left out
