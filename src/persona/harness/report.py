"""The chapters' tables from lm-eval's output: ``python -m persona.harness.report <lm-eval output folder>``.

lm-eval writes, per model, ``results_<time>.json`` and, with ``--log_samples``, ``samples_<task>_<time>.jsonl``
(each line: the document and lm-eval's answers to its requests). This command rebuilds from them the frames the
chapters compute (``persona.trait.run``'s ``main``, ``self`` and ``gen``; ``persona.papi``'s predictions) with
the harness's own readers (``persona.harness.trait_tasks``, ``persona.harness.papi_tasks``) and then calls the
chapters' functions on them, in the chapters' order:

* TRAIT (chapter 4, the letter protocol): the label mass per template, the trait scores per template (fixed
  rule) and the profile over the answered templates, the official rule's scores, and the reliability table (refused and unparseable
  free-text answers, prompt and option-order sensitivity; TRAIT and the self-report proxy, Big Five, Dark
  Triad and all traits) beside the paper's figures;
* PAPI (chapter 2): the methods table (the paper's Score of the chosen option, the Score of the expected
  answer, the rank correlation, the share of "Neither"; corrected convention) with the chapter's no-model
  reference points on the same subjects and items, and the Score under PAlign's convention.

Each table is written as CSV (numbers) and Markdown (as displayed) into ``--out`` and printed. Several models
(several lm-eval runs in one folder) share the tables; the latest run of each model and task is read.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import pandas as pd

from persona.harness.docs import TaskInputError
from persona.harness.papi_tasks import prediction_row
from persona.harness.trait_tasks import generation_row, likelihood_rows
from persona.trait import reliability as R
from persona.trait import scoring as S
from persona.trait.items import SHORT, TRAITS
from persona.trait.reported import PAPER_RELIABILITY

KEYS = ("model", "test", "key", "trait", "template", "persona")
LIKELIHOOD = {"trait": "main", "trait_selfreport": "self"}
GENERATION = ("trait_gen", "trait_selfreport_gen")
PAPI = ("papi_nochange", "papi_fewshot")
MEASURES = ["refused", "unparseable", "prompt_sensitivity", "order_sensitivity"]


@dataclass
class Run:
    """What one lm-eval output folder holds: the samples of each (model, task), and each model's settings."""

    source: Path
    samples: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    metadata: dict[tuple[str, str], dict] = field(default_factory=dict)

    def of(self, task: str) -> list[tuple[str, list[dict]]]:
        return [(model, self.samples[(model, task)]) for model in self.models if (model, task) in self.samples]


def model_label(name: str) -> str:
    """A model's name in the tables: a hub id as is, a local folder by its last component."""
    return Path(name).name if name.startswith(("/", ".", "~")) else name


def _latest(paths: Iterable[Path], prefix: str) -> dict[str, Path]:
    """The newest file of each name (``<prefix><name>_<time>``) in one folder."""
    newest: dict[str, Path] = {}
    for path in sorted(paths, key=lambda p: p.stem.rsplit("_", 1)[-1]):
        newest[path.stem[len(prefix):].rsplit("_", 1)[0]] = path
    return newest


def load(folder: str | Path) -> Run:
    """Every model's latest results and samples under ``folder`` (lm-eval's ``--output_path``)."""
    root = Path(folder)
    results = sorted(root.rglob("results_*.json"))
    if not results:
        raise TaskInputError(f"no lm-eval results (results_*.json) under {root}: run lm_eval with --output_path "
                             f"{root} --log_samples")
    run = Run(root)
    for directory in sorted({p.parent for p in results}):
        result_files = list(directory.glob("results_*.json"))
        info = json.loads(sorted(result_files, key=lambda p: p.stem)[-1].read_text(encoding="utf-8"))
        model = model_label(str(info.get("model_name") or directory.name))
        for task, path in _latest(directory.glob("samples_*.jsonl"), "samples_").items():
            with open(path, encoding="utf-8") as handle:
                run.samples[(model, task)] = [json.loads(line) for line in handle if line.strip()]
            run.metadata[(model, task)] = info.get("configs", {}).get(task, {}).get("metadata", {})
        if model not in run.models and any(m == model for m, _ in run.samples):
            run.models.append(model)
    if not run.samples:
        raise TaskInputError(f"lm-eval results under {root} hold no samples: run lm_eval with --log_samples")
    return run


def loglikelihoods(sample: dict) -> list[float]:
    """lm-eval's log-likelihoods of one sample, in request order (the file stores them as text)."""
    return [float(resp[0]) for resp in sample["filtered_resps"]]


def generated_text(sample: dict) -> str:
    resp = sample["filtered_resps"][0]
    return resp if isinstance(resp, str) else resp[0]


# --------------------------------------------------------------------------------------------------
# Frames, as the chapters hold them

def trait_frames(run: Run) -> dict[str, pd.DataFrame]:
    """``main``, ``self`` (one row per item, template and order) and ``gen`` (one per free-text answer)."""
    frames = {}
    for task, name in LIKELIHOOD.items():
        rows = [dict(row, model=model) for model, samples in run.of(task) for s in samples
                for row in likelihood_rows(s["doc"], loglikelihoods(s))]
        frames[name] = pd.DataFrame(rows)
    gen = [dict(generation_row(s["doc"], generated_text(s)), model=model) for task in GENERATION
           for model, samples in run.of(task) for s in samples]
    frames["gen"] = pd.DataFrame(gen)
    return frames


def papi_predictions(run: Run) -> pd.DataFrame:
    rows = [dict(prediction_row(s["doc"], loglikelihoods(s)), model=model) for task in PAPI
            for model, samples in run.of(task) for s in samples]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# TRAIT tables (chapter 4)

def trait_tables(frames: dict[str, pd.DataFrame], models: list[str], *, min_label_mass: float = 0.05,
                 n_boot: int = 2000, seed: int = 0) -> dict[str, pd.DataFrame]:
    """The chapter's TRAIT tables from its frames (the same calls as ``notebooks/04_trait.ipynb``)."""
    tables: dict[str, pd.DataFrame] = {}
    main = frames.get("main", pd.DataFrame())
    dec_kept = pd.DataFrame()
    if len(main):
        dec_main = S.decisions(main, keys=KEYS)
        answered = S.answered_templates(main, min_label_mass)
        tables["trait_label_mass"] = answered.pivot(index="model", columns="template", values="label_mass").reindex(
            models).mul(100).add_prefix("template ")
        # the templates each model answers with its labels (label mass >= min_label_mass), as the chapter keeps them
        dec_kept = dec_main.merge(answered.loc[answered["answered"], ["model", "template"]], on=["model", "template"])
        per_template = S.trait_score_table(dec_kept, ["model", "template", "trait"], n_boot=n_boot, seed=seed)
        tables["trait_scores_per_template"] = S.in_model_order(per_template.pivot_table(
            index=["model", "template"], columns="trait", values="score")[[t for t in TRAITS if t in set(
                per_template["trait"])]].rename(columns=SHORT), models)
        item_means = dec_kept.groupby(["model", "trait", "key"], sort=False)["fixed"].mean().reset_index()
        tables["trait_profiles"] = S.in_model_order(S.trait_score_table(item_means, ["model", "trait"], n_boot=n_boot,
                                                                  seed=seed), models)
        official = dec_main.assign(official=dec_main["official"].astype(float))
        tables["trait_scores_official"] = S.in_model_order(S.trait_score_table(official, ["model", "trait"], "official",
                                                                         n_boot=n_boot, seed=seed), models)
    table = reliability_table(dec_kept, frames.get("self", pd.DataFrame()), frames.get("gen", pd.DataFrame()))
    if table is not None:
        tables["trait_reliability"] = S.in_model_order(table.sort_values(["test", "half"]), models)
        tables["trait_reliability_shown"] = reliability_shown(tables["trait_reliability"])
    return tables


def reliability_table(dec_kept: pd.DataFrame, self_frame: pd.DataFrame, gen: pd.DataFrame) -> pd.DataFrame | None:
    """Refused, unparseable, prompt and order sensitivity per model, test and half (chapter 4's table; TRAIT on
    the templates each model answers with its labels)."""
    parts = [dec_kept] + ([S.decisions(self_frame, keys=KEYS)] if len(self_frame) else [])
    parts = [p for p in parts if len(p)]
    rel_items = R.item_reliability(pd.concat(parts, ignore_index=True)) if parts else None
    ref_items = R.refusal_items(gen) if len(gen) else None
    if rel_items is None and ref_items is None:
        return None
    on = ["model", "test", "key", "trait"]
    if rel_items is None:
        merged = ref_items
    elif ref_items is None:
        merged = rel_items
    else:
        merged = rel_items.merge(ref_items, how="outer", on=on)
    for measure in MEASURES:
        if measure not in merged:
            merged[measure] = float("nan")
    table = R.reliability_table(R.by_half(merged), ["model", "test", "half"], measures=MEASURES)
    table["test"] = table["test"].replace({"self-report": "self-report proxy"})
    return table


def reliability_shown(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the chapter shows it: "value [low, high]" cells, the paper's rows below."""
    paper = pd.DataFrame([{"model": "paper", "test": f"{name} (paper)", "half": "", "refused": v["refusal_rate"],
                           "prompt_sensitivity": v["prompt_sensitivity"],
                           "order_sensitivity": v["option_order_sensitivity"]}
                          for name, v in PAPER_RELIABILITY.items()]).set_index(["model", "test", "half"])
    shown = R.with_intervals(table, MEASURES).set_index(["model", "test", "half"])
    return pd.concat([shown, paper]).fillna("")


# --------------------------------------------------------------------------------------------------
# PAPI tables (chapter 2)

def papi_sample(run: Run, model: str) -> dict:
    """The sample parameters of a model's PAPI runs (every PAPI task of one model must share them)."""
    found = {json.dumps({k: v for k, v in json.loads(samples[0]["doc"]["sample"]).items() if k != "method"},
                        sort_keys=True) for task in PAPI for m, samples in run.of(task) if m == model and samples}
    if len(found) != 1:
        raise TaskInputError(f"{model}'s PAPI tasks were run on different samples ({sorted(found)}): give both tasks "
                             f"the same --metadata")
    return json.loads(found.pop())


def papi_tables(predictions: pd.DataFrame, run: Run) -> dict[str, pd.DataFrame]:
    """The chapter's methods table per model, with the no-model reference points on the same sample."""
    from persona.papi import analysis, metrics
    from persona.papi.experiment import floor_predictions
    from persona.harness.papi_tasks import setup_for

    tables = {}
    for model, block in predictions.groupby("model", sort=False):
        setup = setup_for(papi_sample(run, model))
        asked = set(zip(block["subject"], block["item"]))
        truth = setup.truth[[pair in asked for pair in zip(setup.truth["subject"], setup.truth["item"])]]
        floor = floor_predictions(setup)
        floor = floor[[pair in asked for pair in zip(floor["subject"], floor["item"])]]
        together = pd.concat([block.drop(columns="model"), floor], ignore_index=True)
        methods = list(dict.fromkeys(block["method"]))
        refs = ["ref:facet-mean[corrected]", "ref:item-norms", "ref:always-3"]
        for convention in ("corrected", "paper"):
            endpoints = metrics.endpoints(together, truth, convention)
            shown = analysis.methods_table(endpoints, methods + (refs if convention == "corrected" else
                                                                 ["ref:facet-mean[paper]", "ref:always-3"]))
            tables[f"papi_scores_{convention}"] = pd.concat(
                [tables.get(f"papi_scores_{convention}", pd.DataFrame()), shown.assign(model=model).set_index(
                    "model", append=True).reorder_levels(["model", "method"])])
    return tables


# --------------------------------------------------------------------------------------------------

def all_tables(run: Run, *, min_label_mass: float = 0.05, n_boot: int = 2000, seed: int = 0) -> dict[str, pd.DataFrame]:
    tables = trait_tables(trait_frames(run), run.models, min_label_mass=min_label_mass, n_boot=n_boot, seed=seed)
    predictions = papi_predictions(run)
    if len(predictions):
        tables.update(papi_tables(predictions, run))
    return tables


def write(tables: dict[str, pd.DataFrame], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv")
        (out / f"{name}.md").write_text(table.to_markdown(floatfmt=".1f") + "\n", encoding="utf-8")
        written += [out / f"{name}.csv", out / f"{name}.md"]
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m persona.harness.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", help="lm-eval's --output_path (run with --log_samples)")
    parser.add_argument("--out", default=None, help="folder for the tables (default: <output>/persona_tables)")
    parser.add_argument("--min-label-mass", type=float, default=0.05,
                        help="a model's template with less mean label mass is left out of the profile (chapter 4)")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples of items")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run = load(args.output)
    tables = all_tables(run, min_label_mass=args.min_label_mass, n_boot=args.n_boot, seed=args.seed)
    if not tables:
        raise TaskInputError("no TRAIT or PAPI samples found (tasks trait, trait_selfreport, trait_gen, "
                             "trait_selfreport_gen, papi_nochange, papi_fewshot)")
    out = Path(args.out) if args.out else Path(args.output) / "persona_tables"
    write(tables, out)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 1):
        for name, table in tables.items():
            print(f"\n== {name}\n{table}")
    print(f"\n[persona.harness.report] {len(tables)} tables written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
