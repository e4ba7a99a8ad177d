"""The lm-evaluation-harness tasks against the book's engine: the same prompts, the same label tokens, the same
per-option log-probabilities (|difference| <= 1e-4), the same answers; the report's tables against the chapters'.

One ``lm_eval`` command line (as a user runs it, offline) evaluates a tiny random Llama saved to a folder on every
task; the engine answers the same samples through the chapters' own code (``run_trait``, the PAPI methods).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import mirror_or_skip

pytest.importorskip("lm_eval")

from persona.engine import Engine  # noqa: E402
from tiny_models import save_tiny_llama, tiny_tokenizer, torch_threads  # noqa: E402
from persona.harness import include_path, report  # noqa: E402
from persona.harness.docs import TaskInputError  # noqa: E402
from persona.harness.papi_tasks import prediction_row  # noqa: E402
from persona.harness.results import option_raw  # noqa: E402
from persona.trait import reliability as R  # noqa: E402
from persona.trait import scoring as S  # noqa: E402
from persona.trait.items import SHORT, TRAITS, load_trait_items  # noqa: E402
from persona.trait.prompts import trait_grid  # noqa: E402
from persona.trait.run import TraitSettings, run_trait  # noqa: E402
from persona.trait.scoring import RAW_COLS  # noqa: E402

TOLERANCE = 1e-4  # per-option log-probability, harness vs engine
SAMPLE = {"per_trait": 1, "refusal_per_trait": 1, "selfreport_per_trait_level": 1, "seed": 0,
          "n_subjects": 2, "n_test_per_domain": 1, "n_known_per_domain": 2}
TASKS = "trait,trait_selfreport,trait_gen,trait_selfreport_gen,papi_nochange,papi_fewshot"
KEYS = ("model", "test", "key", "trait", "template", "persona")


def lm_eval_cli(folder: Path, out: Path, tasks: str, metadata: dict, *extra: str) -> subprocess.CompletedProcess:
    """``lm_eval`` as a user runs it, offline, on CPU, with the harness's include path."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    src = str(Path(report.__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
               f"pretrained={folder},dtype=float32", "--device", "cpu", "--batch_size", "8", "--tasks", tasks,
               "--include_path", include_path(), "--metadata", json.dumps(metadata), "--output_path", str(out),
               "--log_samples", *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random Llama that answers mostly with option labels, saved as a hub-style folder."""
    folder = tmp_path_factory.mktemp("models") / "tiny"
    save_tiny_llama(folder, tiny_tokenizer(), favour=("A", "B", "C", "D", "E", "1", "2", "3", "4"))
    return folder


@pytest.fixture(scope="module")
def loaded(tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny, dtype="float32").eval(), AutoTokenizer.from_pretrained(tiny)


@pytest.fixture(scope="module")
def harness(tiny, tmp_path_factory):
    """Every task through the lm_eval command line; the run as the report reads it."""
    mirror_or_skip()
    out = tmp_path_factory.mktemp("lm_eval_out")
    done = lm_eval_cli(tiny, out, TASKS, SAMPLE)
    assert done.returncode == 0, done.stderr[-3000:]
    return report.load(out)


@pytest.fixture(scope="module")
def chapter(loaded, tmp_path_factory):
    """The TRAIT chapter's run of the same sample on the same model (``run_trait``, the engine's fast path)."""
    model, tok = loaded
    settings = TraitSettings(models=("tiny",), per_trait=1, refusal_per_trait=1, selfreport_per_trait_level=1,
                             bare_per_trait=1, persona_per_trait=1)
    with torch_threads(1):
        return run_trait(settings, tmp_path_factory.mktemp("runs"), load=lambda name: (model, tok))


def _by_order(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index(["key", "template", "order"]).sort_index()


@pytest.mark.parametrize("task,frame", [("trait", "main"), ("trait_selfreport", "self")])
def test_option_log_probabilities_match_the_engine_in_both_orders_and_all_templates(harness, chapter, task, frame):
    harness_rows = _by_order(pd.DataFrame([row for s in harness.samples[("tiny", task)]
                                           for row in report.likelihood_rows(s["doc"], report.loglikelihoods(s))]))
    engine_rows = _by_order(chapter.frames[frame])
    assert harness_rows.index.equals(engine_rows.index)
    assert set(harness_rows.index.get_level_values("template")) == {1, 2, 3}
    assert set(harness_rows.index.get_level_values("order")) == {"original", "reversed"}
    ours, theirs = harness_rows[RAW_COLS].to_numpy(float), engine_rows[RAW_COLS].to_numpy(float)
    assert np.abs(np.log(ours) - np.log(theirs)).max() <= TOLERANCE
    assert (ours.argmax(axis=1) == theirs.argmax(axis=1)).all()  # the same chosen answer, every item and order
    assert len(set(theirs.argmax(axis=1))) > 1  # the answers differ between prompts: the check can fail
    assert all(not any(s["doc"]["missing"]) for s in harness.samples[("tiny", task)])  # every label token asked


def test_decisions_and_lm_eval_metrics_follow_the_official_rule(harness, chapter):
    samples = harness.samples[("tiny", "trait")]
    dec = S.decisions(chapter.frames["main"], keys=KEYS).set_index(["key", "template"])
    for s in samples:
        row = dec.loc[(s["doc"]["key"], s["doc"]["template"])]
        name = s["doc"]["trait"].lower()
        assert s[name] == 100.0 * row["official"]
        assert np.isclose(s[f"{name}_fixed"], 100.0 * row["fixed"], equal_nan=True)
    results = json.loads(next(iter(sorted(Path(harness.source).rglob("results_*.json")))).read_text())
    for trait in TRAITS:
        mine = dec[dec["trait"] == trait]
        assert results["results"]["trait"][f"{trait.lower()},none"] == pytest.approx(100 * mine["official"].mean())


def test_free_text_answers_and_parsed_outcomes_match_the_engine(harness, chapter):
    rows = [report.generation_row(s["doc"], report.generated_text(s)) for task in report.GENERATION
            for s in harness.samples[("tiny", task)]]
    ours = pd.DataFrame(rows).set_index(["test", "key", "template"]).sort_index()
    theirs = chapter.frames["gen"].set_index(["test", "key", "template"]).sort_index()
    assert ours.index.equals(theirs.index)
    assert (ours["text"] == theirs["text"]).all()
    assert (ours["outcome"] == theirs["outcome"]).all()


def test_report_reproduces_the_trait_chapter_tables(harness, chapter, tmp_path):
    report.main([str(harness.source), "--out", str(tmp_path), "--n-boot", "50"])
    frames = chapter.frames
    # chapter 4, "Reliability" cell, as written in notebooks/04_trait.ipynb
    dec_main = S.decisions(frames["main"], keys=KEYS)
    answered = S.answered_templates(frames["main"], 0.05)
    assert answered["answered"].any()
    dec_kept = dec_main.merge(answered.loc[answered["answered"], ["model", "template"]], on=["model", "template"])
    dec_self = S.decisions(frames["self"], keys=KEYS)
    rel_items = R.item_reliability(pd.concat([dec_kept, dec_self], ignore_index=True))
    ref_items = R.refusal_items(frames["gen"])
    measures = ["refused", "unparseable", "prompt_sensitivity", "order_sensitivity"]
    table = R.reliability_table(R.by_half(rel_items.merge(ref_items, how="outer", on=["model", "test", "key", "trait"])),
                                ["model", "test", "half"], measures=measures)
    table["test"] = table["test"].replace({"self-report": "self-report proxy"})
    written = pd.read_csv(tmp_path / "trait_reliability.csv", index_col=0)
    keys = ["model", "test", "half"]
    expected = table.sort_values(keys).reset_index(drop=True)
    got = written.sort_values(keys).reset_index(drop=True)[expected.columns]
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    # chapter 4, "Trait scores" cell: per template, fixed rule
    per_template = S.trait_score_table(dec_kept, ["model", "template", "trait"], n_boot=50, seed=0)
    wide = per_template.pivot_table(index=["model", "template"], columns="trait", values="score")
    scores = pd.read_csv(tmp_path / "trait_scores_per_template.csv", index_col=[0, 1])
    for trait in TRAITS:
        np.testing.assert_allclose(scores[SHORT[trait]].to_numpy(float), wide[trait].to_numpy(float))
    assert "TRAIT Big Five (paper)" in (tmp_path / "trait_reliability_shown.md").read_text()


def test_papi_baselines_match_the_chapters_methods(harness, loaded, tmp_path):
    from persona.papi import analysis, metrics
    from persona.papi.experiment import AlignmentSettings, floor_predictions, papi_setup
    from persona.papi.methods.prompting import FewShot, NoChange

    model, tok = loaded
    setup = papi_setup(AlignmentSettings(n_subjects=2, n_test_per_domain=1, n_known_per_domain=2, seed=0))
    engine = Engine(model, tok, batch_size=8)
    frames = []
    with torch_threads(1):
        for method in (NoChange(engine), FewShot(engine, convention="corrected")):
            for subject in setup.subjects:
                method.fit(subject, setup.known)
                frames.append(method.answer(setup.test).frame(subject=subject.case, method=method.name))
    theirs = pd.concat(frames, ignore_index=True).set_index(["method", "subject", "item"]).sort_index()
    ours = pd.DataFrame([prediction_row(s["doc"], report.loglikelihoods(s)) for task in report.PAPI
                         for s in harness.samples[("tiny", task)]]).set_index(["method", "subject", "item"]).sort_index()
    assert ours.index.equals(theirs.index) and len(ours) == 2 * 2 * 5
    columns = [f"p{v}_{tag}" for v in range(1, 6) for tag in ("orig", "rev")]
    assert np.abs(np.log(ours[columns].to_numpy(float)) - np.log(theirs[columns].to_numpy(float))).max() <= TOLERANCE
    assert (ours["predicted"] == theirs["predicted"]).all()
    # lm-eval's Score metric is the chapter's Score
    results = json.loads(next(iter(sorted(harness.source.rglob("results_*.json")))).read_text())["results"]
    truth = setup.truth
    for task, name in (("papi_nochange", "no-change"), ("papi_fewshot", "few-shot[corrected]")):
        preds = theirs.loc[name].reset_index().assign(method=name)
        for convention, metric in (("corrected", "score"), ("paper", "score_paper")):
            table = metrics.mae_table(preds, truth, convention, n_boot=0)
            expected = float(table.loc[table["domain"] == metrics.SCORE, "mae"].iloc[0])
            assert results[task][f"{metric},none"] == pytest.approx(expected)
    # the report's methods table is the chapter's
    report.main([str(harness.source), "--out", str(tmp_path), "--n-boot", "50"])
    together = pd.concat([theirs.reset_index(), floor_predictions(setup)], ignore_index=True)
    order = ["no-change", "few-shot[corrected]", "ref:facet-mean[corrected]", "ref:item-norms", "ref:always-3"]
    expected = analysis.methods_table(metrics.endpoints(together, truth, "corrected"), order)
    written = pd.read_csv(tmp_path / "papi_scores_corrected.csv", index_col=[0, 1]).loc["tiny"]
    pd.testing.assert_frame_equal(written.reindex(expected.index), expected, check_dtype=False)


def test_plain_text_asks_only_the_label_tokens_lm_eval_can_reach(tiny, loaded):
    """Without the chat template, templates 2 and 3 end in a space: lm-eval glues it to the label, so the bare
    label read after the space token cannot be asked. The harness lists those tokens as missing and gives the
    engine's numbers over the tokens it asks."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    mirror_or_skip()
    model, tok = loaded
    meta = {"pretrained": str(tiny), "chat_template": False, "per_trait": 1, "traits": "Openness"}
    with torch_threads(1):
        out = simple_evaluate(model="hf", model_args=f"pretrained={tiny},dtype=float32,device=cpu", tasks=["trait"],
                              task_manager=TaskManager(include_path=include_path(), metadata=meta), log_samples=True,
                              batch_size=8)
    engine = Engine(model, tok, use_chat_template=False)
    items = {it.key: it for it in load_trait_items(["Openness"])}
    samples = out["samples"]["trait"]
    assert sorted(s["doc"]["template"] for s in samples) == [1, 2, 3]
    for s in samples:
        doc = s["doc"]
        prompts, _ = trait_grid([items[doc["key"]]], [doc["template"] - 1])
        assert doc["contexts"] == [engine.render(p) for p in prompts]
        if doc["template"] == 1:  # "Answer: \n": every label token can be asked
            assert not any(doc["missing"])
        else:  # "Response: " / "Answer: ": the bare labels cannot
            assert sorted(doc["missing"][0]) == sorted(doc["labels"])
        asked = doc["continuations"][0]
        every = engine.label_token_ids(tuple(doc["labels"]))
        subset = [[t for t in ids if tok.decode([t], clean_up_tokenization_spaces=False) in asked[k]]
                  for k, ids in enumerate(every)]
        assert all(subset) and sum(map(len, subset)) == sum(map(len, asked))
        with torch_threads(1):
            theirs = engine.label_probs(prompts, label_ids=lambda labels: subset).raw
        ours = option_raw(doc, [r[0] for r in s["filtered_resps"]])
        assert np.abs(np.log(ours) - np.log(theirs)).max() <= TOLERANCE


def test_unknown_names_list_the_valid_ones(tiny):
    from persona.harness.trait_tasks import trait_docs

    with pytest.raises(SystemExit, match=r"unknown template 4; valid: 1, 2, 3"):
        trait_docs(pretrained=str(tiny), templates=[4])
    with pytest.raises(SystemExit, match=r"unknown trait 'Honesty'; valid: Openness \(O\), .*Psychopathy \(P\)"):
        trait_docs(pretrained=str(tiny), traits=["Honesty"])
    with pytest.raises(SystemExit, match="per_trait must be a positive integer"):
        trait_docs(pretrained=str(tiny), per_trait=0)
    with pytest.raises(SystemExit, match="needs the model's Hugging Face tokenizer"):
        trait_docs(pretrained=str(tiny / "nowhere"))
    assert issubclass(TaskInputError, SystemExit)


def test_data_not_provisioned_gives_the_provisioning_message_not_a_traceback(tiny, tmp_path):
    """A new user without the data: lm_eval stops with how to get it."""
    env_mirror = tmp_path / "empty-mirror"
    env_mirror.mkdir()
    out = tmp_path / "out"
    code = ("import sys, urllib.request\n"
            "def refuse(*a, **k): raise OSError('no network in this test')\n"
            "urllib.request.urlopen = refuse\n"
            "from lm_eval.__main__ import cli_evaluate\n"
            "sys.argv = ['lm_eval'] + sys.argv[1:]\n"
            "cli_evaluate()\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PERSONA_DATA_MIRROR": str(env_mirror),
           "PERSONA_CACHE_DIR": str(tmp_path / "cache")}
    env["PYTHONPATH"] = str(Path(report.__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", code, "--model", "hf", "--model_args", f"pretrained={tiny}",
                           "--device", "cpu", "--tasks", "trait", "--include_path", include_path(),
                           "--output_path", str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1
    assert "python -m persona.provision" in done.stderr and "PERSONA_DATA_MIRROR" in done.stderr
    assert "Traceback" not in done.stderr


def test_likelihood_tasks_refuse_backends_without_log_probabilities_and_foreign_prompt_options(tiny):
    from lm_eval import simple_evaluate
    from lm_eval.models.openai_completions import LocalChatCompletion
    from lm_eval.tasks import TaskManager

    mirror_or_skip()
    manager = TaskManager(include_path=include_path(), metadata={"pretrained": str(tiny), **SAMPLE})
    chat_api = LocalChatCompletion(base_url="http://127.0.0.1:9/v1/chat/completions", model="a-chat-model")
    with pytest.raises(SystemExit, match="gives no log-probabilities.*trait_gen and trait_selfreport_gen"):
        simple_evaluate(model=chat_api, tasks=["trait"], task_manager=manager, apply_chat_template=True, limit=1)
    hf = f"pretrained={tiny},dtype=float32,device=cpu"
    with pytest.raises(SystemExit, match="do not pass --apply_chat_template"):
        simple_evaluate(model="hf", model_args=hf, tasks=["trait"], task_manager=manager, apply_chat_template=True,
                        limit=1)
    with pytest.raises(SystemExit, match="--num_fewshot does not apply"):
        simple_evaluate(model="hf", model_args=hf, tasks=["papi_fewshot"], task_manager=manager, num_fewshot=3,
                        limit=1)
    with pytest.raises(SystemExit, match="--system_instruction does not apply"):
        simple_evaluate(model="hf", model_args=hf, tasks=["trait"], task_manager=manager, limit=1,
                        system_instruction="You are nice.")


@pytest.mark.slow
def test_embedded_smollm2_gives_the_engines_log_probabilities(tmp_path):
    """The embedded model through lm_eval (a few documents) against the engine's fast path."""
    mirror_or_skip()
    from persona.models import load_model, model_path

    folder = model_path("smollm2-135m-instruct")
    done = lm_eval_cli(Path(folder), tmp_path, "trait", {"per_trait": 1}, "--limit", "3")
    assert done.returncode == 0, done.stderr[-3000:]
    run = report.load(tmp_path)
    model, tok = load_model("smollm2-135m-instruct")
    engine = Engine(model, tok)
    items = {it.key: it for it in load_trait_items()}
    samples = run.samples[(report.model_label(folder), "trait")]
    assert len(samples) == 3 and {s["doc"]["template"] for s in samples} == {1, 2, 3}
    with torch_threads(2):
        for s in samples:
            prompts, _ = trait_grid([items[s["doc"]["key"]]], [s["doc"]["template"] - 1])
            theirs = engine.label_probs(prompts).raw
            ours = option_raw(s["doc"], report.loglikelihoods(s))
            assert np.abs(np.log(ours) - np.log(theirs)).max() <= TOLERANCE
            assert (ours.argmax(axis=1) == theirs.argmax(axis=1)).all()


def test_generation_tasks_send_messages_through_lm_evals_chat_template_when_asked(tiny):
    """A chat API needs --apply_chat_template: the generation tasks then hand lm-eval the system and user messages;
    on a local model lm-eval's rendering is the engine's."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    mirror_or_skip()
    manager = TaskManager(include_path=include_path(), metadata={"pretrained": str(tiny), **SAMPLE})
    with torch_threads(1):
        out = simple_evaluate(model="hf", model_args=f"pretrained={tiny},dtype=float32,device=cpu",
                              tasks=["trait_gen"], task_manager=manager, apply_chat_template=True, limit=3,
                              log_samples=True)
    samples = out["samples"]["trait_gen"]
    assert len(samples) == 3 and all(s["doc"]["users"] and s["doc"]["systems"] == [""] for s in samples)
    for s in samples:
        assert s["arguments"][0][0] == s["doc"]["contexts"][0]
