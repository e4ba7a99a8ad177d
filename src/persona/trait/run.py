"""One run of the TRAIT experiment: every model answers every task, resumably.

``TraitSettings`` says what is asked (like ``DPOSettings`` for DPO); ``run_trait`` asks it. Per model,
one task each (the first model, or ``detail_models``, gets all five; the others only ``main``):

* ``main``    every sampled item x template x official order, by likelihood (every label spelling);
* ``bare``    one template again with the official bare-token lookup (the released code's defect);
* ``persona`` a subsample with the high and the low persona prompt of its trait as system prompt;
* ``self``    the self-report comparator (``persona.trait.selfreport``), every template and order;
* ``gen``     free generation on a subsample (original order, every template) for refusal rates.

Each (model, task) has its own results folder, named by a hash of its parameters and of the code that
produces its rows; its prompts are cut into shards that ``persona.runs.resume`` computes once.
"""

from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from persona.engine import Engine
from persona.runs import ResultStore, Unit, code_fingerprint, params_folder, resume
from persona.trait.items import TRAITS, TraitItem, load_trait_items, subsample
from persona.trait.prompts import TEMPLATES, persona_system_prompt, trait_grid
from persona.trait.scoring import RAW_COLS
from persona.trait.selfreport import (
    LIKERT4,
    SelfReportItem,
    load_selfreport_items,
    selfreport_grid,
    selfreport_subsample,
)

#: The modules whose code produces the stored rows (the analysis modules read them and are not listed).
PRODUCING_MODULES = ("persona.engine", "persona.models", "persona.trait.items", "persona.trait.prompts",
                     "persona.trait.selfreport", "persona.trait.run")
TASKS = ("main", "bare", "persona", "self", "gen")


def _count(value: int | None, name: str, *, allow_none: bool = True, minimum: int = 1) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{' or None (all)' if allow_none else ''}, "
                         f"got {value!r}")


@dataclass(frozen=True)
class TraitSettings:
    """Everything that defines a TRAIT run; recorded with its results. Checked on creation."""

    models: tuple[str, ...] = ("smollm2-135m-instruct",)
    detail_models: tuple[str, ...] | None = None  # models that get every task (None: the first)
    per_trait: int | None = 1  # items per trait (None: all 1,000)
    templates: tuple[int, ...] = (0, 1, 2)  # official templates 1-3, 0-based
    seed: int = 0
    bare_template: int = 2
    persona_per_trait: int = 1  # items per trait (from the main sample) asked with persona prompts
    persona_template: int = 2
    selfreport_per_trait_level: int | None = 1  # statements per trait and keying (None: all 142)
    refusal_per_trait: int = 1  # items per trait (from the main sample) answered in free text
    max_new_tokens: int = 12
    batch_size: int = 8
    shard_size: int = 32
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.models or not all(isinstance(m, str) and m for m in self.models):
            raise ValueError(f"models must be a non-empty list of model names, got {self.models!r}")
        unknown = set(self.detail_models or ()) - set(self.models)
        if unknown:
            raise ValueError(f"detail_models {sorted(unknown)} are not in models {list(self.models)}")
        _count(self.per_trait, "per_trait")
        for name in ("persona_per_trait", "refusal_per_trait", "max_new_tokens", "batch_size", "shard_size"):
            _count(getattr(self, name), name, allow_none=False)
        _count(self.selfreport_per_trait_level, "selfreport_per_trait_level")
        n = len(TEMPLATES)
        if not self.templates or any(t not in range(n) for t in self.templates) or len(set(self.templates)) < len(self.templates):
            raise ValueError(f"templates must be distinct indices in 0..{n - 1}, got {list(self.templates)!r}")
        for name in ("bare_template", "persona_template"):
            if getattr(self, name) not in range(n):
                raise ValueError(f"{name} must be a template index in 0..{n - 1}, got {getattr(self, name)!r}")
        if self.per_trait is not None:
            for name in ("persona_per_trait", "refusal_per_trait"):
                if getattr(self, name) > self.per_trait:
                    raise ValueError(f"{name}={getattr(self, name)} exceeds per_trait={self.per_trait}: "
                                     f"it subsamples the main sample")

    @property
    def detailed(self) -> tuple[str, ...]:
        return tuple(self.detail_models) if self.detail_models else self.models[:1]


@dataclass
class TraitRun:
    """What a run asked and what came back: one frame per task (all models, a ``model`` column)."""

    settings: TraitSettings
    items: list[TraitItem]
    persona_items: list[TraitItem]
    refusal_items: list[TraitItem]
    selfreport_items: list[SelfReportItem]
    frames: dict[str, pd.DataFrame]
    timings: pd.DataFrame


def bare_label_ids(tokenizer) -> Callable[[tuple[str, ...]], list[list[int]]]:
    """The official lookup: each label counts through its bare token only (``convert_tokens_to_ids``)."""
    return lambda labels: [[int(tokenizer.convert_tokens_to_ids(lab))] for lab in labels]


def _shards(n: int, size: int) -> list[tuple[str, slice]]:
    return [(f"shard-{k // size:05d}", slice(k, min(k + size, n))) for k in range(0, n, size)]


def _score_shard(engine: Engine, prompts: Sequence, meta: pd.DataFrame, label_ids) -> pd.DataFrame:
    result = engine.score(list(prompts), label_ids=label_ids)
    frame = meta.copy()
    frame[RAW_COLS[: result.raw.shape[1]]] = result.raw
    frame["mass"] = result.mass
    return frame


def _generate_shard(engine: Engine, prompts: Sequence, meta: pd.DataFrame, *, max_new_tokens: int) -> pd.DataFrame:
    """Greedy answers read by the strict parser; ``meta["options"]`` holds each prompt's option texts."""
    answers = engine.answer(list(prompts), max_new_tokens=max_new_tokens, option_texts=meta["options"].tolist())
    frame = meta.drop(columns="options")
    frame["text"] = answers.texts
    frame["outcome"] = [str(o) for o in answers.outcome]  # identity index, "refused", "unparseable"
    return frame


def _units(task: str, prompts: Sequence, meta: pd.DataFrame, shard_size: int, compute) -> list[Unit]:
    meta = meta.reset_index(drop=True)
    return [Unit("shards", sid, partial(compute, prompts[part], meta.iloc[part]), rows=part.stop - part.start,
                 label=f"{task} {sid}")
            for sid, part in _shards(len(prompts), shard_size)]


def _store(root: Path, model: str, task: str, params: dict, code: str) -> ResultStore:
    params = {"model": model, "task": task, **params, "code": code}
    return ResultStore(params_folder(root / model.replace("/", "__") / task, params), params, code=code)


def _tasks(engine: Engine, run: TraitRun, name: str) -> dict[str, tuple[list, pd.DataFrame, Callable, dict]]:
    """The prompts, identifiers, shard computation and parameters of each task this model answers."""
    s = run.settings
    sample = {"per_trait": s.per_trait, "seed": s.seed}
    score = partial(_score_shard, engine, label_ids=None)
    tasks = {"main": (*trait_grid(run.items, s.templates), score, {"templates": s.templates, **sample})}
    if name not in s.detailed:
        return tasks
    tasks["bare"] = (*trait_grid(run.items, [s.bare_template]), partial(_score_shard, engine,
                     label_ids=bare_label_ids(engine.tokenizer)), {"template": s.bare_template, **sample})
    persona_prompts, persona_meta = [], []
    for trait in TRAITS:
        chosen = [it for it in run.persona_items if it.trait == trait]
        for level in ("high", "low"):
            p, m = trait_grid(chosen, [s.persona_template], system=persona_system_prompt(trait, level), persona=level)
            persona_prompts += p
            persona_meta.append(m)
    tasks["persona"] = (persona_prompts, pd.concat(persona_meta, ignore_index=True), score,
                        {"template": s.persona_template, "persona_per_trait": s.persona_per_trait, **sample})
    tasks["self"] = (*selfreport_grid(run.selfreport_items, s.templates), score,
                     {"templates": s.templates, "per_level": s.selfreport_per_trait_level})
    # free generation: original order only, every template, TRAIT subsample and self-report statements
    t_prompts, t_meta = trait_grid(run.refusal_items, s.templates)
    s_prompts, s_meta = selfreport_grid(run.selfreport_items, s.templates)
    keep_t, keep_s = (t_meta["order"] == "original").to_numpy(), (s_meta["order"] == "original").to_numpy()
    by_key = {it.key: it for it in run.refusal_items}
    prompts = [p for p, k in zip(t_prompts, keep_t) if k] + [p for p, k in zip(s_prompts, keep_s) if k]
    meta = pd.concat([t_meta[keep_t].assign(test="TRAIT"), s_meta[keep_s].assign(test="self-report")],
                     ignore_index=True)
    options = [by_key[k].options for k in t_meta.loc[keep_t, "key"]] + [LIKERT4] * int(keep_s.sum())
    meta["options"] = pd.Series(options, dtype=object)  # carried with each shard, dropped from the rows
    gen = partial(_generate_shard, engine, max_new_tokens=s.max_new_tokens)
    tasks["gen"] = (prompts, meta, gen, {"templates": s.templates, "per_trait": s.refusal_per_trait, "seed": s.seed,
                                         "per_level": s.selfreport_per_trait_level,
                                         "max_new_tokens": s.max_new_tokens})
    return tasks


def run_trait(settings: TraitSettings, root: str | Path, *, load=None) -> TraitRun:
    """Ask every model every task of ``settings``; results resume from ``root`` (see the module docstring).

    ``load(name) -> (model, tokenizer)`` defaults to ``persona.models.load_model`` (tests pass tiny models).
    Models are loaded one at a time.
    """
    if load is None:
        from persona.models import load_model as load
    all_items = load_trait_items()
    items = subsample(all_items, settings.per_trait, settings.seed)
    run = TraitRun(
        settings=settings, items=items,
        persona_items=subsample(items, settings.persona_per_trait, settings.seed),
        refusal_items=subsample(items, settings.refusal_per_trait, settings.seed),
        selfreport_items=selfreport_subsample(load_selfreport_items(), settings.selfreport_per_trait_level),
        frames={}, timings=pd.DataFrame(),
    )
    code = code_fingerprint(*PRODUCING_MODULES)
    collected: dict[str, list[pd.DataFrame]] = {task: [] for task in TASKS}
    timings = []
    for name in settings.models:
        start = time.perf_counter()
        model, tokenizer = load(name)
        engine = Engine(model, tokenizer, batch_size=settings.batch_size)
        for task, (prompts, meta, compute, params) in _tasks(engine, run, name).items():
            store = _store(Path(root), name, task, params, code)
            shard_size = settings.shard_size if task != "gen" else max(1, settings.shard_size // 2)
            frame = resume(store, _units(task, prompts, meta, shard_size, compute), desc=f"trait {name} {task}")
            collected[task].append(frame.assign(model=name))
        timings.append({"model": name, "seconds": time.perf_counter() - start,
                        "chat template": engine.use_chat_template})
        del engine, model
        gc.collect()
    run.frames = {task: pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
                  for task, frames in collected.items()}
    if len(run.frames["main"]):
        run.frames["main"]["test"] = "TRAIT"
    if len(run.frames["self"]):
        run.frames["self"]["test"] = "self-report"
    run.timings = pd.DataFrame(timings)
    return run


def settings_record(settings: TraitSettings) -> dict:
    """The settings as plain data (for the run table)."""
    return {k: v for k, v in asdict(settings).items() if k != "extra"}


__all__ = ["PRODUCING_MODULES", "TASKS", "TraitRun", "TraitSettings", "bare_label_ids",
           "run_trait", "settings_record"]
