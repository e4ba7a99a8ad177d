"""One run of the TRAIT experiment: every model answers every task, resumably.

``TraitSettings`` says what is asked (like ``DPOSettings`` for DPO); ``run_trait`` asks it. Per model
(the first model, or ``detail_models``, get every task; the others ``main`` and ``cf`` only):

* ``main``    every sampled item x template x official order, by likelihood (every label spelling);
* ``bare``    a subsample on one template again, with the official bare-token lookup (the released
              code's defect);
* ``persona`` a subsample with the high and the low persona prompt of its trait as system prompt;
* ``self``    the self-report proxy (``persona.trait.selfreport``), every template and order;
* ``gen``     free generation on a subsample (original order, every template) for refusal rates, TRAIT
              items and as many self-report statements per trait;
* ``cf``      the content-free prompts that calibrate ``main``, ``self`` and ``persona``
              (``persona.trait.calibration``): one per template x order x system prompt.

``TraitSettings.scoring`` names the protocols that read ``main``, ``persona`` and ``self``: "letter" (the
official next-token probability of the option labels; always run) and the option-text (cloze) protocols
"cloze-<normalisation>" (``persona.engine.cloze``). Any cloze protocol adds the tasks ``main-cloze`` (every
model), ``persona-cloze`` and ``self-cloze`` (detailed models): the same prompts, both orders (the order
changes only the prompt's list of options), each scored by the likelihood of each option's text. Their
rows store the parts of every normalisation (log-probabilities after the prompt and after the neutral
context, tokens, characters), so one run serves every cloze protocol; ``TraitRun.scored`` turns them into
the per-order probability table that label scoring gives. They are tasks of their own, with their own
results folders: changing the scoring never reuses label results, nor the reverse.

The first model answers the full sample sizes; every later model answers ``other_sizes`` (a subsample of
the first model's items, so the models can be compared item by item). Each (model, task) has its own
results folder, named by a hash of its parameters (the item keys included) and of the code that produces
its rows; its prompts are cut into shards that ``persona.runs.resume`` computes once.
"""

from __future__ import annotations

import gc
import hashlib
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from persona.engine import NORMALISATIONS, Engine
from persona.engine.cloze import NEUTRAL_CONTEXT
from persona.runs import ResultStore, Unit, code_fingerprint, params_folder, resume
from persona.trait.calibration import content_free_grid
from persona.trait.items import TRAITS, TraitItem, load_trait_items, subsample
from persona.trait.prompts import TEMPLATES, persona_system_prompt, trait_grid
from persona.trait.scoring import CLOZE_PARTS, RAW_COLS, cloze_frame, text_only_frame
from persona.trait.selfreport import (
    LIKERT4,
    SelfReportItem,
    load_selfreport_items,
    selfreport_grid,
    selfreport_refusal_sample,
    selfreport_subsample,
)

#: The modules whose code produces the stored rows (the analysis modules read them and are not listed).
PRODUCING_MODULES = ("persona.engine", "persona.models", "persona.trait.items", "persona.trait.prompts",
                     "persona.trait.selfreport", "persona.trait.calibration", "persona.trait.run")
TASKS = ("main", "bare", "persona", "self", "gen", "cf")
#: Scoring protocols of the likelihood tasks: the label protocol and one per option-text normalisation.
SCORINGS = ("letter", *(f"cloze-{n}" for n in NORMALISATIONS))
#: The controls of the cloze protocols: the same decisions from the option texts alone (``text_only_frame``).
CONTROLS = tuple(f"text-only-{n}" for n in NORMALISATIONS)
#: The tasks scored by option text when a cloze protocol is asked, and the label task each mirrors.
CLOZE_TASKS = {"main-cloze": "main", "persona-cloze": "persona", "self-cloze": "self"}
#: Sample sizes a later model may answer at a smaller scale (``TraitSettings.other_sizes``).
SIZE_FIELDS = ("per_trait", "bare_per_trait", "persona_per_trait", "selfreport_per_trait_level",
               "refusal_per_trait")
#: Sizes drawn from the model's main sample (so they cannot exceed ``per_trait``).
SUBSAMPLES = ("bare_per_trait", "persona_per_trait", "refusal_per_trait")


def _count(value: int | None, name: str, *, allow_none: bool = True, minimum: int = 1) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{' or None (all)' if allow_none else ''}, "
                         f"got {value!r}")


def _check_sizes(sizes: dict, where: str = "") -> None:
    for name in SIZE_FIELDS:
        _count(sizes[name], f"{where}{name}")
    if sizes["per_trait"] is not None:
        for name in SUBSAMPLES:
            if sizes[name] is None or sizes[name] > sizes["per_trait"]:
                raise ValueError(f"{where}{name}={sizes[name]} exceeds {where}per_trait={sizes['per_trait']}: "
                                 f"it subsamples the main sample")


@dataclass(frozen=True)
class TraitSettings:
    """Everything that defines a TRAIT run; recorded with its results. Checked on creation, before any
    model loads, and every error names the parameter."""

    models: tuple[str, ...] = ("smollm2-135m-instruct",)
    detail_models: tuple[str, ...] | None = None  # models that get every task (None: the first)
    per_trait: int | None = 1  # items per trait (None: all 1,000)
    templates: tuple[int, ...] = (0, 1, 2)  # official templates 1-3, 0-based
    seed: int = 0
    bare_template: int = 2
    bare_per_trait: int | None = 1  # items per trait (from the main sample) read with bare tokens only
    persona_per_trait: int | None = 1  # items per trait (from the main sample) asked with persona prompts
    persona_templates: tuple[int, ...] = (0,)
    selfreport_per_trait_level: int | None = 1  # statements per trait and keying (None: all 142)
    refusal_per_trait: int | None = 1  # items (and statements) per trait answered in free text
    other_sizes: dict = field(default_factory=dict)  # sizes for every model after the first (SIZE_FIELDS)
    max_new_tokens: int = 12
    batch_size: int = 8
    shard_size: int = 32
    min_label_mass: float = 0.05  # analysis: a template answered with less label mass is left out of trait scores
    n_boot: int = 2000  # analysis: bootstrap resamples of items
    scoring: tuple[str, ...] = ("letter",)  # protocols read from main/persona/self (SCORINGS)
    cloze_context: str = NEUTRAL_CONTEXT  # the neutral context of the "cloze-unconditional" normalisation

    def __post_init__(self) -> None:
        if not self.models or not all(isinstance(m, str) and m for m in self.models):
            raise ValueError(f"models must be a non-empty list of model names, got {self.models!r}")
        if len(set(self.models)) < len(self.models):
            raise ValueError(f"models must be distinct, got {list(self.models)!r}")
        unknown = set(self.detail_models or ()) - set(self.models)
        if unknown:
            raise ValueError(f"detail_models {sorted(unknown)} are not in models {list(self.models)}")
        for name in ("max_new_tokens", "batch_size", "shard_size"):
            _count(getattr(self, name), name, allow_none=False)
        _count(self.n_boot, "n_boot", allow_none=False, minimum=100)
        if isinstance(self.min_label_mass, bool) or not isinstance(self.min_label_mass, (int, float)) \
                or not 0 <= self.min_label_mass < 1:
            raise ValueError(f"min_label_mass must be a number in [0, 1), got {self.min_label_mass!r}")
        if (not isinstance(self.scoring, tuple) or not self.scoring or set(self.scoring) - set(SCORINGS)
                or len(set(self.scoring)) < len(self.scoring) or "letter" not in self.scoring):
            raise ValueError(f"scoring must be distinct names among {list(SCORINGS)} including 'letter' (the "
                             f"official protocol, which the bare-token and calibration tasks read), "
                             f"got {self.scoring!r}")
        if not isinstance(self.cloze_context, str) or not self.cloze_context.strip():
            raise ValueError(f"cloze_context must be a non-empty text, got {self.cloze_context!r}")
        if self.shard_size % 2:
            raise ValueError(f"shard_size must be even (an item's two orders share a shard), got {self.shard_size}")
        n = len(TEMPLATES)
        for name in ("templates", "persona_templates"):
            chosen = getattr(self, name)
            if not chosen or any(t not in range(n) for t in chosen) or len(set(chosen)) < len(chosen):
                raise ValueError(f"{name} must be distinct indices in 0..{n - 1}, got {list(chosen)!r}")
        if self.bare_template not in range(n):
            raise ValueError(f"bare_template must be a template index in 0..{n - 1}, got {self.bare_template!r}")
        if not isinstance(self.other_sizes, dict) or set(self.other_sizes) - set(SIZE_FIELDS):
            raise ValueError(f"other_sizes must map some of {list(SIZE_FIELDS)} to sizes, got {self.other_sizes!r}")
        _check_sizes(self.sizes(self.models[0]))
        if len(self.models) > 1:
            other = self.sizes(self.models[1])
            _check_sizes(other, "other_sizes.")
            first = self.per_trait
            if first is not None and (other["per_trait"] is None or other["per_trait"] > first):
                raise ValueError(f"other_sizes.per_trait={other['per_trait']} exceeds per_trait={first}: later "
                                 f"models answer a subsample of the first model's items")

    @classmethod
    def from_parameters(cls, params: dict) -> "TraitSettings":
        """The settings from a notebook's parameters (``globals()``): every field the notebook assigns, lists as
        tuples. A string where a list is expected is an error naming the parameter (``tuple("abc")`` would
        silently ask for models "a", "b", "c")."""
        names = [f for f in cls.__dataclass_fields__ if f in params and f != "extra"]
        values = {}
        for name in names:
            value = params[name]
            if name in ("models", "detail_models", "templates", "persona_templates", "scoring") and isinstance(value, str):
                raise ValueError(f"{name} must be a list, got the string {value!r} (write [{value!r}])")
            values[name] = tuple(value) if isinstance(value, list) else value
        if values.get("detail_models") == ():
            values["detail_models"] = None
        if isinstance(values.get("other_sizes"), type(None)):
            values["other_sizes"] = {}
        return cls(**values)

    @property
    def detailed(self) -> tuple[str, ...]:
        return tuple(self.detail_models) if self.detail_models else self.models[:1]

    def sizes(self, model: str) -> dict:
        """The sample sizes ``model`` answers: the settings' own for the first model, else ``other_sizes``."""
        own = {name: getattr(self, name) for name in SIZE_FIELDS}
        return own if model == self.models[0] else {**own, **self.other_sizes}


@dataclass
class Sample:
    """What one model is asked: its TRAIT items per task and its self-report statements."""

    main: list[TraitItem]
    bare: list[TraitItem]
    persona: list[TraitItem]
    refusal: list[TraitItem]
    selfreport: list[SelfReportItem]
    selfreport_refusal: list[SelfReportItem]

    def counts(self) -> dict[str, int]:
        """Items (statements) per trait of each part; every trait gets the same number."""
        return {name: len(getattr(self, name)) // len(TRAITS) for name in
                ("main", "bare", "persona", "refusal", "selfreport", "selfreport_refusal")}


def draw_samples(settings: TraitSettings, items: Sequence[TraitItem],
                 statements: Sequence[SelfReportItem]) -> dict[str, Sample]:
    """Each model's sample: later models' items are subsamples of the first model's (item-level pairing)."""
    first = subsample(items, settings.per_trait, settings.seed)
    out = {}
    for name in settings.models:
        size = settings.sizes(name)
        main = first if name == settings.models[0] else subsample(first, size["per_trait"], settings.seed)
        out[name] = Sample(
            main=main, bare=subsample(main, size["bare_per_trait"], settings.seed),
            persona=subsample(main, size["persona_per_trait"], settings.seed),
            refusal=subsample(main, size["refusal_per_trait"], settings.seed),
            selfreport=selfreport_subsample(statements, size["selfreport_per_trait_level"]),
            selfreport_refusal=selfreport_refusal_sample(statements, size["refusal_per_trait"]),
        )
    return out


@dataclass
class TraitRun:
    """What a run asked and what came back: one frame per task (all models, a ``model`` column)."""

    settings: TraitSettings
    samples: dict[str, Sample]
    frames: dict[str, pd.DataFrame]
    timings: pd.DataFrame

    def scored(self, task: str, scoring: str = "letter") -> pd.DataFrame:
        """The per-order rows of ``task`` ("main", "persona" or "self") under one scoring protocol, as the
        table ``persona.trait.scoring.decisions`` reads (``raw_*`` in identity order), with a ``scoring``
        column. Cloze protocols and their text-only controls (CONTROLS) are derived from the task's cloze
        rows (any normalisation, once any cloze protocol was run)."""
        if scoring not in SCORINGS + CONTROLS:
            raise ValueError(f"scoring must be one of {list(SCORINGS + CONTROLS)}, got {scoring!r}")
        if scoring == "letter":
            return self.frames[task].assign(scoring="letter")
        cloze_task = f"{task}-cloze"
        if cloze_task not in CLOZE_TASKS or not len(self.frames.get(cloze_task, ())):
            raise KeyError(f"no cloze rows for task {task!r}: run with a cloze protocol in settings.scoring")
        if scoring in CONTROLS:
            return text_only_frame(self.frames[cloze_task], scoring.removeprefix("text-only-"))
        return cloze_frame(self.frames[cloze_task], scoring.removeprefix("cloze-"))

    def scored_all(self, task: str) -> pd.DataFrame:
        """``scored`` under every protocol of ``settings.scoring``, stacked (tell them apart by ``scoring``)."""
        return pd.concat([self.scored(task, s) for s in self.settings.scoring], ignore_index=True)

    @property
    def items(self) -> list[TraitItem]:
        """The first model's main sample (every later model's items are among them)."""
        return self.samples[self.settings.models[0]].main

    def sample_table(self) -> pd.DataFrame:
        """Items (statements) per trait that each model answered, per task: the run's scale at a glance."""
        rows = {name: sample.counts() if name in self.settings.detailed else {"main": sample.counts()["main"]}
                for name, sample in self.samples.items()}
        return pd.DataFrame(rows).T.rename_axis("model")


def bare_label_ids(tokenizer) -> Callable[[tuple[str, ...]], list[list[int]]]:
    """The official lookup: each label counts through its bare token only (``convert_tokens_to_ids``)."""
    return lambda labels: [[int(tokenizer.convert_tokens_to_ids(lab))] for lab in labels]


def _shards(n: int, size: int) -> list[tuple[str, slice]]:
    return [(f"shard-{k // size:05d}", slice(k, min(k + size, n))) for k in range(0, n, size)]


def _score_shard(engine: Engine, prompts: Sequence, meta: pd.DataFrame, label_ids, *,
                 by_item: bool = True) -> pd.DataFrame:
    """Label probabilities of a shard's prompts, with their meta rows.

    ``by_item``: score each item's prompts of one template (its two orders) in one call, so the engine
    encodes their common text (header and stem) once; ``False`` scores the shard in one call (persona
    prompts, whose long shared prefix is the system prompt).
    """
    meta = meta.reset_index(drop=True)
    groups = (list(meta.groupby(["key", "template", "persona"], sort=False).indices.values()) if by_item
              else [list(range(len(meta)))])
    frame = meta.copy()
    for rows in groups:
        result = engine.label_probs([prompts[i] for i in rows], label_ids=label_ids)
        frame.loc[rows, RAW_COLS[: result.raw.shape[1]]] = result.raw
        frame.loc[rows, "mass"] = result.mass
    return frame


def _cloze_shard(engine: Engine, prompts: Sequence, meta: pd.DataFrame, *, neutral: str,
                 by_item: bool = True) -> pd.DataFrame:
    """Option-text log-probabilities of a shard's prompts (the parts of every normalisation, ``CLOZE_PARTS``)
    and the options' total probability as ``mass``; ``meta["options"]`` holds each prompt's option texts in
    identity order. ``by_item`` as in ``_score_shard`` (an item's two orders share their header and stem);
    one engine call per shard either way, so each distinct option text is scored once after the neutral
    context (the texts are the same in both orders and, in a chat template, in every template)."""
    meta = meta.reset_index(drop=True)
    share = list(zip(meta["key"], meta["template"], meta["persona"])) if by_item else None
    result = engine.score_options(list(prompts), meta["options"].tolist(), normalisation="unconditional",
                                  neutral=neutral, share=share)
    frame = meta.drop(columns="options")
    n = result.logprob.shape[1]
    for name, cols in CLOZE_PARTS.items():
        frame[cols[:n]] = getattr(result, name)
    frame["mass"] = result.mass
    return frame


def _with_options(grid: tuple[list, pd.DataFrame], options) -> tuple[list, pd.DataFrame]:
    """A grid with each prompt's option texts (identity order) in ``meta["options"]``; ``options`` maps an
    item key to them (or is one tuple for every prompt)."""
    prompts, meta = grid
    meta = meta.copy()
    texts = [options if isinstance(options, tuple) else options[k] for k in meta["key"]]
    meta["options"] = pd.Series(texts, index=meta.index, dtype=object)
    return prompts, meta


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


def _sample_id(keys: Sequence[str]) -> str:
    """A short hash of the asked item keys: a results folder holds exactly one sample."""
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:12]


def _persona_grid(items: Sequence[TraitItem], templates: Sequence[int]) -> tuple[list, pd.DataFrame]:
    prompts, metas = [], []
    for trait in TRAITS:
        chosen = [it for it in items if it.trait == trait]
        for level in ("high", "low"):
            p, m = trait_grid(chosen, templates, system=persona_system_prompt(trait, level), persona=level)
            prompts += p
            metas.append(m)
    return prompts, pd.concat(metas, ignore_index=True)


def _generation_grid(sample: Sample, templates: Sequence[int]) -> tuple[list, pd.DataFrame]:
    """Original order only, every template: TRAIT items, then as many self-report statements per trait."""
    t_prompts, t_meta = trait_grid(sample.refusal, templates)
    s_prompts, s_meta = selfreport_grid(sample.selfreport_refusal, templates)
    keep_t, keep_s = (t_meta["order"] == "original").to_numpy(), (s_meta["order"] == "original").to_numpy()
    by_key = {it.key: it for it in sample.refusal}
    prompts = [p for p, k in zip(t_prompts, keep_t) if k] + [p for p, k in zip(s_prompts, keep_s) if k]
    meta = pd.concat([t_meta[keep_t].assign(test="TRAIT"), s_meta[keep_s].assign(test="self-report")],
                     ignore_index=True)
    options = [by_key[k].options for k in t_meta.loc[keep_t, "key"]] + [LIKERT4] * int(keep_s.sum())
    meta["options"] = pd.Series(options, dtype=object)  # carried with each shard, dropped from the rows
    return prompts, meta


def _content_free_grid(s: TraitSettings, detailed: bool) -> tuple[list, pd.DataFrame]:
    """The calibration prompts: TRAIT (and, for detailed models, self-report and every persona prompt)."""
    parts = [content_free_grid(s.templates, test="TRAIT")]
    if detailed:
        parts.append(content_free_grid(s.templates, test="self-report"))
        for trait in TRAITS:
            for level in ("high", "low"):
                p, m = content_free_grid(s.persona_templates, test="TRAIT",
                                         systems={level: persona_system_prompt(trait, level)})
                parts.append((p, m.assign(trait=trait)))
    prompts = [p for part, _ in parts for p in part]
    meta = pd.concat([m for _, m in parts], ignore_index=True)
    meta["trait"] = meta["trait"].fillna("all") if "trait" in meta else "all"
    meta["key"] = "content-free"
    return prompts, meta


def _tasks(engine: Engine, run: TraitRun, name: str) -> dict[str, tuple[list, pd.DataFrame, Callable, dict]]:
    """The prompts, identifiers, shard computation and parameters of each task this model answers."""
    s, sample = run.settings, run.samples[name]
    score = partial(_score_shard, engine, label_ids=None)
    detailed = name in s.detailed
    ids = lambda items: {"items": _sample_id([it.key for it in items]), "n": len(items)}  # noqa: E731
    tasks = {"main": (*trait_grid(sample.main, s.templates), score, {"templates": s.templates, **ids(sample.main)})}
    if detailed:
        tasks["bare"] = (*trait_grid(sample.bare, [s.bare_template]),
                         partial(_score_shard, engine, label_ids=bare_label_ids(engine.tokenizer)),
                         {"template": s.bare_template, **ids(sample.bare)})
        tasks["persona"] = (*_persona_grid(sample.persona, s.persona_templates),
                            partial(_score_shard, engine, label_ids=None, by_item=False),
                            {"templates": s.persona_templates, **ids(sample.persona)})
        tasks["self"] = (*selfreport_grid(sample.selfreport, s.templates), score,
                         {"templates": s.templates, **ids(sample.selfreport)})
        tasks["gen"] = (*_generation_grid(sample, s.templates),
                        partial(_generate_shard, engine, max_new_tokens=s.max_new_tokens),
                        {"templates": s.templates, "max_new_tokens": s.max_new_tokens,
                         "trait_items": ids(sample.refusal), "statements": ids(sample.selfreport_refusal)})
    tasks["cf"] = (*_content_free_grid(s, detailed), partial(_score_shard, engine, label_ids=None, by_item=False),
                   {"templates": s.templates, "persona_templates": s.persona_templates if detailed else None})
    if any(x.startswith("cloze-") for x in s.scoring):
        options = {it.key: it.options for it in sample.main}
        cloze = {"scoring": "cloze", "neutral": s.cloze_context}
        by_item = partial(_cloze_shard, engine, neutral=s.cloze_context)
        tasks["main-cloze"] = (*_with_options(trait_grid(sample.main, s.templates), options), by_item,
                               {**tasks["main"][3], **cloze})
        if detailed:
            tasks["persona-cloze"] = (*_with_options(_persona_grid(sample.persona, s.persona_templates), options),
                                      partial(_cloze_shard, engine, neutral=s.cloze_context, by_item=False),
                                      {**tasks["persona"][3], **cloze})
            tasks["self-cloze"] = (*_with_options(selfreport_grid(sample.selfreport, s.templates), LIKERT4), by_item,
                                   {**tasks["self"][3], **cloze})
    return tasks


def check_parameters(params: dict) -> TraitSettings:
    """The TRAIT chapter's parameters as checked settings (the runner calls it before any notebook runs)."""
    return TraitSettings.from_parameters(params)


def run_trait(settings: TraitSettings, root: str | Path, *, load=None) -> TraitRun:
    """Ask every model every task of ``settings``; results resume from ``root`` (see the module docstring).

    ``load(name) -> (model, tokenizer)`` defaults to ``persona.models.load_model`` (tests pass tiny models).
    Models are loaded one at a time.
    """
    if load is None:
        from persona.models import load_model as load
    run = TraitRun(settings=settings, samples=draw_samples(settings, load_trait_items(), load_selfreport_items()),
                   frames={}, timings=pd.DataFrame())
    code = code_fingerprint(*PRODUCING_MODULES)
    cloze = any(x.startswith("cloze-") for x in settings.scoring)
    collected: dict[str, list[pd.DataFrame]] = {task: [] for task in (*TASKS, *(CLOZE_TASKS if cloze else ()))}
    timings = []
    for name in settings.models:
        start = time.perf_counter()
        model, tokenizer = load(name)
        engine = Engine(model, tokenizer, batch_size=settings.batch_size)
        for task, (prompts, meta, compute, params) in _tasks(engine, run, name).items():
            shard_size = settings.shard_size if task != "gen" else max(1, settings.shard_size // 2)
            # how prompts are cut into shards and batched is part of what is stored: a folder holds one layout
            store = _store(Path(root), name, task, {**params, "shard_size": shard_size,
                                                    "batch_size": settings.batch_size}, code)
            task_start = time.perf_counter()
            frame = resume(store, _units(task, prompts, meta, shard_size, compute), desc=f"trait {name} {task}")
            collected[task].append(frame.assign(model=name))
            timings.append({"model": name, "task": task, "prompts": len(prompts),
                            "seconds": time.perf_counter() - task_start})
        timings.append({"model": name, "task": "all (with loading)", "prompts": sum(
            t["prompts"] for t in timings if t["model"] == name), "seconds": time.perf_counter() - start,
            "chat template": engine.use_chat_template})
        del engine, model
        gc.collect()
    run.frames = {task: pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
                  for task, frames in collected.items()}
    for task, test in (("main", "TRAIT"), ("self", "self-report"), ("persona", "TRAIT"), ("main-cloze", "TRAIT"),
                       ("self-cloze", "self-report"), ("persona-cloze", "TRAIT")):
        if len(run.frames.get(task, ())):
            run.frames[task]["test"] = test
    run.timings = pd.DataFrame(timings)
    return run


__all__ = ["CLOZE_TASKS", "CONTROLS", "PRODUCING_MODULES", "SCORINGS", "SIZE_FIELDS", "TASKS", "Sample",
           "TraitRun", "TraitSettings", "bare_label_ids", "draw_samples", "run_trait"]
