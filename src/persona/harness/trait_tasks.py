"""TRAIT and the self-report proxy as harness tasks: documents, per-document results, and the report's rows.

Tasks (``persona/harness/tasks``):

* ``trait``                one document per (item, template), both official orders; likelihood;
* ``trait_selfreport``     the self-report proxy (``persona.trait.selfreport``), the same way;
* ``trait_gen``            one document per (item, template), original order: one greedy answer read by the
                           engine's strict parser (the chapter's refusal measure; and the trait scores of a
                           backend that gives no log-probabilities);
* ``trait_selfreport_gen`` the same for the proxy's statements.

The sample is the chapter's (``persona.trait.run.draw_samples``): ``per_trait`` items per trait drawn with
``seed`` (all 1,000 when absent), ``refusal_per_trait`` of them for the generation tasks,
``selfreport_per_trait_level`` statements per trait and keying; ``traits`` and ``templates`` (1-3, TRAIT's
``prompt_type``) restrict what is asked. Documents run item by item, the traits in turn and an item's
templates together, so ``--limit 24`` asks one item of every trait under every template.

Per-document results are the chapter's decisions (``persona.trait.scoring``): the official rule (bugs
included) and the fixed rule, each order's own decision, the label mass.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence, TypeVar

import numpy as np

from persona.engine.parsing import REFUSED, UNPARSEABLE
from persona.harness.docs import (
    Renderer,
    TaskInputError,
    as_list,
    choose,
    count,
    model_tokenizer,
    prompt_fields,
    provisioned,
    sample_record,
)
from persona.harness.results import generated_outcome, option_raw
from persona.trait.items import SHORT, TRAITS, load_trait_items
from persona.trait.prompts import TEMPLATES, trait_grid
from persona.trait.run import TraitSettings, draw_samples
from persona.trait.scoring import RAW_COLS, fixed_choice, official_is_high, order_choice
from persona.trait.selfreport import LIKERT4, load_selfreport_items, selfreport_grid

#: The lm-eval metric of each trait's score (the official rule; ``<name>_fixed`` the fixed rule).
METRIC = {trait: trait.lower() for trait in TRAITS}
TEMPLATE_NAMES = {"1": 1, "2": 2, "3": 3, **{t.name: k + 1 for k, t in enumerate(TEMPLATES)}}
TEMPLATE_LISTING = "1, 2, 3 (TRAIT's prompt_type: 1 'Given a situation', 2 'Now I will briefly describe', " \
                   "3 'Question: ... Answer:')"
TRAIT_NAMES = {**{t.lower(): t for t in TRAITS}, **{s.lower(): t for t, s in SHORT.items()}}
TRAIT_LISTING = ", ".join(f"{t} ({SHORT[t]})" for t in TRAITS)

T = TypeVar("T")


@lru_cache(maxsize=1)
def _items():
    return provisioned(load_trait_items, "TRAIT data")


@lru_cache(maxsize=1)
def _statements():
    return provisioned(load_selfreport_items, "The self-report proxy's statements (TRAIT's personality_prompt_BFI.json)")


def sample_parameters(meta: Mapping[str, Any]) -> dict:
    """The sample asked for, checked: sizes (None = all), seed, traits and templates (1-based)."""
    per_trait = count(meta, "per_trait")
    refusal = count(meta, "refusal_per_trait")
    try:
        seed = int(meta.get("seed", 0))
    except (TypeError, ValueError):
        raise TaskInputError(f"seed must be an integer, got {meta.get('seed')!r}") from None
    traits = choose(as_list(meta.get("traits")) or list(TRAITS), TRAIT_NAMES, "trait", TRAIT_LISTING)
    templates = choose(as_list(meta.get("templates")) or [1, 2, 3], TEMPLATE_NAMES, "template", TEMPLATE_LISTING)
    return {"per_trait": per_trait, "refusal_per_trait": refusal if refusal is not None else per_trait,
            "selfreport_per_trait_level": count(meta, "selfreport_per_trait_level"), "seed": seed,
            "traits": [t for t in TRAITS if t in traits], "templates": sorted(templates)}


def draw(params: Mapping[str, Any]):
    """The chapter's sample for these parameters (``persona.trait.run.draw_samples``)."""
    per_trait = params["per_trait"]
    try:
        settings = TraitSettings(models=("harness",), per_trait=per_trait, seed=params["seed"],
                                 refusal_per_trait=params["refusal_per_trait"], bare_per_trait=per_trait and 1,
                                 persona_per_trait=per_trait and 1,
                                 selfreport_per_trait_level=params["selfreport_per_trait_level"])
    except ValueError as exc:
        raise TaskInputError(str(exc)) from None
    return draw_samples(settings, _items(), _statements())["harness"]


def by_rank(things: Iterable[T], traits: Sequence[str]) -> list[T]:
    """The traits' items in turn (first item of each trait, then the second ...), within a trait in order."""
    per = {t: [x for x in things if x.trait == t] for t in traits}
    longest = max((len(v) for v in per.values()), default=0)
    return [per[t][r] for r in range(longest) for t in traits if r < len(per[t])]


def _renderer(meta: Mapping[str, Any], task: str, *, required: bool = True) -> Renderer:
    return Renderer.for_meta(model_tokenizer(meta, required=required, task=task), meta)


def _docs(task: str, units: Sequence, grid, templates: Sequence[int], renderer: Renderer, record: str,
          *, test: str, options, generation: bool = False) -> list[dict]:
    """One document per unit (item or statement) and template, units first: the book's grid, one template
    at a time, its rows (an item's orders are adjacent) grouped by item."""
    docs: dict[tuple[int, int], dict] = {}
    for t in templates:
        prompts, meta = grid(units, [t - 1])
        meta = meta.reset_index(drop=True)
        if generation:  # the chapter asks free text in the original order only
            keep = (meta["order"] == "original").to_numpy()
            prompts, meta = [p for p, k in zip(prompts, keep) if k], meta[keep].reset_index(drop=True)
        per_unit = len(meta) // len(units)
        for u, unit in enumerate(units):
            rows = range(u * per_unit, (u + 1) * per_unit)
            first = meta.iloc[rows[0]]
            docs[(u, t)] = {"task": task, "test": test, "key": first["key"], "trait": first["trait"],
                            "template": int(first["template"]), "persona": first["persona"], "mask": first["mask"],
                            "options": list(options(unit)), "sample": record,
                            **prompt_fields([prompts[i] for i in rows], [meta["order"][i] for i in rows], renderer,
                                              likelihood=not generation)}
    return [docs[key] for key in sorted(docs)]


def _dataset(docs: list[dict]):
    from datasets import Dataset, DatasetDict

    if not docs:
        raise TaskInputError("the sample holds no document (check traits, templates and the sizes)")
    return DatasetDict({"test": Dataset.from_list(docs)})


def trait_docs(**meta: Any):
    """lm-eval dataset of ``trait``: every sampled item x template, both official orders."""
    params = sample_parameters(meta)
    renderer = _renderer(meta, "trait")
    items = by_rank(draw(params).main, params["traits"])
    return _dataset(_docs("trait", items, trait_grid, params["templates"], renderer, sample_record(params),
                          test="TRAIT", options=lambda it: it.options))


def selfreport_docs(**meta: Any):
    """lm-eval dataset of ``trait_selfreport``: every sampled statement x template, both orders."""
    params = sample_parameters(meta)
    renderer = _renderer(meta, "trait_selfreport")
    statements = by_rank(draw(params).selfreport, params["traits"])
    return _dataset(_docs("trait_selfreport", statements, selfreport_grid, params["templates"], renderer,
                          sample_record(params), test="self-report", options=lambda _: LIKERT4))


def trait_gen_docs(**meta: Any):
    """lm-eval dataset of ``trait_gen``: the refusal sample x template, original order (as the chapter)."""
    params = sample_parameters(meta)
    renderer = _renderer(meta, "trait_gen", required=False)
    items = by_rank(draw(params).refusal, params["traits"])
    return _dataset(_docs("trait_gen", items, trait_grid, params["templates"], renderer, sample_record(params),
                          test="TRAIT", options=lambda it: it.options, generation=True))


def selfreport_gen_docs(**meta: Any):
    """lm-eval dataset of ``trait_selfreport_gen``: as many statements per trait as ``trait_gen`` asks items
    (high- and low-keyed in turn), original order."""
    params = sample_parameters(meta)
    renderer = _renderer(meta, "trait_selfreport_gen", required=False)
    statements = by_rank(draw(params).selfreport_refusal, params["traits"])
    return _dataset(_docs("trait_selfreport_gen", statements, selfreport_grid, params["templates"], renderer,
                          sample_record(params), test="self-report", options=lambda _: LIKERT4, generation=True))


# --------------------------------------------------------------------------------------------------
# Per-document results (lm-eval's process_results) and the rows the report reads

def _mask(doc: Mapping) -> list[bool]:
    return [c == "1" for c in doc["mask"]]


def decisions(doc: Mapping, raw: np.ndarray) -> dict:
    """The chapter's decisions for one document (rows of ``raw``: original, reversed): official (bool),
    fixed / orig / rev (1 high, 0 low, NaN undetermined)."""
    mask = _mask(doc)
    first, second = raw[0:1], raw[1:2]
    return {"official": bool(official_is_high(first, second, mask)[0]), "fixed": float(fixed_choice(first, second, mask)[0]),
            "orig": float(order_choice(first, mask)[0]), "rev": float(order_choice(second, mask)[0])}


def likelihood_results(doc: Mapping, results: Sequence) -> dict:
    """lm-eval metrics of one likelihood document: its trait's score under the official rule (100 high, 0 low)
    and the fixed rule (NaN undetermined), whether the two orders disagree (100/0), its mean label mass."""
    raw = option_raw(doc, [r[0] for r in results])
    d = decisions(doc, raw)
    differs = float(d["orig"] != d["rev"]) if np.isfinite(d["orig"]) and np.isfinite(d["rev"]) else float("nan")
    name = METRIC[doc["trait"]]
    return {name: 100.0 * d["official"], f"{name}_fixed": 100.0 * d["fixed"], "order_sensitivity": 100.0 * differs,
            "label_mass": float(raw.sum(axis=1).mean())}


def generation_results(doc: Mapping, results: Sequence) -> dict:
    """lm-eval metrics of one generation document: explicit refusal and unparseable (100/0), and the trait's
    score from the parsed answer (100 high, 0 low; NaN when no option was read)."""
    outcome = generated_outcome(doc, results[0])
    high = 100.0 * _mask(doc)[outcome] if isinstance(outcome, int) else float("nan")
    return {"refused": 100.0 * (outcome == REFUSED), "unparseable": 100.0 * (outcome == UNPARSEABLE),
            METRIC[doc["trait"]]: high}


def _identifiers(doc: Mapping, order: str) -> dict:
    return {"test": doc["test"], "key": doc["key"], "trait": doc["trait"], "template": int(doc["template"]),
            "order": order, "persona": doc["persona"], "mask": doc["mask"]}


def likelihood_rows(doc: Mapping, loglikelihoods: Sequence[float]) -> list[dict]:
    """The chapter's score rows (``persona.trait.run``'s ``main`` and ``self`` frames): one per order, with
    ``raw_*`` in identity order and the label ``mass``."""
    raw = option_raw(doc, loglikelihoods)
    return [{**_identifiers(doc, order), **dict(zip(RAW_COLS, raw[o])), "mass": float(raw[o].sum())}
            for o, order in enumerate(doc["orders"])]


def generation_row(doc: Mapping, text: str) -> dict:
    """The chapter's free-generation row (``gen`` frame): the text and its parsed outcome."""
    return {**_identifiers(doc, doc["orders"][0]), "text": text, "outcome": str(generated_outcome(doc, text))}
