"""The PAPI experiment: a seeded paired sample, every method on every subject, and what it records.

``open_run(parameters)`` is how a chapter opens an alignment run: it checks the notebook's parameters (the names
of ``DEFAULTS``, the single source of the chapters' defaults), draws the sample, loads the model and opens the
verified results folder, and returns them as one :class:`Run`.

``AlignmentSettings`` says what is run (checked before any model loads); ``papi_setup`` draws the sample:
subjects at random, held-out (and, at small scale, known) items stratified by domain and keying sign, the
same for every method (paired). ``make_method`` builds a method from its name; ``run`` fits and answers
every (method, subject) through the verified resumable store, and stores beside each prediction the
method's stage times and its optimisation trace (quality after each alpha or DPO validation, with the
time spent), which the cost chapter reads instead of training anything again.

Method names: ``no-change``, ``few-shot[<conv>]``, ``p2``, ``pas[<protocol>,<conv>]``,
``pas[<protocol>,no-fs,<conv>]``, ``dpo[<conv>]``; ``<protocol>`` is test-tuned (PAlign's: alpha chosen on
the test answers) or honest; ``<conv>`` is paper or corrected. A suffix ``@palign`` runs the method in
PAlign's own pipeline (greedy generation, original order only, its regex parser, no answer cue; PAS then uses
PAlign's contrast construction).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from persona import papi
from persona.papi import reference
from persona.papi.methods.answering import LIKELIHOOD, PALIGN, AnswerMode
from persona.papi.methods.base import Method
from persona.papi.methods.dpo import DPO, DPOSettings
from persona.papi.methods.pas import ALPHAS, CONTRASTS, K_SHARE, PAS, contrast_activations
from persona.papi.methods.prompting import FewShot, NoChange, PersonalityPrompt
from persona.runs import ResultStore, Unit, resume
from persona.timing import StageTimer, interleave

#: The modules whose code produces the stored predictions (analysis modules read them and are not listed).
PRODUCING_MODULES = ("persona.engine", "persona.models", "persona.steering", "persona.papi.data",
                     "persona.papi.prompts", "persona.papi.methods", "persona.papi.experiment")
N_HELDOUT_PER_DOMAIN = 36
N_KNOWN_PER_DOMAIN = 24
_NAME = re.compile(r"^(?P<kind>[\w-]+)(?:\[(?P<args>[^\]]*)\])?(?:@(?P<pipeline>palign))?$")
KINDS = ("no-change", "few-shot", "p2", "pas", "dpo")


def parse_method(name: str) -> tuple[str, list[str], str]:
    """``(kind, args, pipeline)`` of a method name; raises naming the allowed forms."""
    match = _NAME.match(name)
    if match is None or match["kind"] not in KINDS:
        raise ValueError(f"unknown method {name!r}: use one of {', '.join(KINDS)} with [arguments] and an "
                         f"optional @palign, e.g. 'pas[honest,corrected]'")
    args = [a.strip() for a in (match["args"] or "").split(",") if a.strip()]
    kind = match["kind"]
    conventions = {"paper", "corrected"}
    if kind in ("few-shot", "dpo") and (len(args) != 1 or args[0] not in conventions):
        raise ValueError(f"{name!r}: {kind} takes one convention, paper or corrected")
    if kind == "pas" and (len(args) not in (2, 3) or args[0] not in ("test-tuned", "honest") or args[-1] not in conventions
                          or (len(args) == 3 and args[1] != "no-fs")):
        raise ValueError(f"{name!r}: pas takes [protocol,(no-fs,)convention], e.g. pas[honest,corrected]")
    return kind, args, match["pipeline"] or "ours"


def _count(value, name: str, high: int, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
        raise ValueError(f"{name} must be an integer from 1 to {high}{' or None (all)' if allow_none else ''}, "
                         f"got {value!r}")


@dataclass(frozen=True)
class AlignmentSettings:
    """Everything that defines an alignment run; every field is checked on creation (before any model)."""

    n_subjects: int | None = 2
    n_test_per_domain: int | None = 1
    n_known_per_domain: int | None = 2
    methods: tuple[str, ...] = ("no-change", "few-shot[corrected]", "pas[honest,corrected]")
    palign_methods: tuple[str, ...] = ()
    palign_subjects: int | None = None  # the first subjects of the sample that also get PAlign's pipeline
    dpo_method: str | None = None
    dpo_subjects: int = 1  # the first subjects of the sample that also get DPO
    dpo: DPOSettings = field(default_factory=lambda: DPOSettings(learning_rates=(5e-4,), max_steps=2, eval_every=1))
    alphas: tuple[float, ...] = (0, 4)
    k_share: float = K_SHARE
    contrast: str = "content"
    seed: int = 0
    batch_size: int = 8

    def __post_init__(self) -> None:
        _count(self.n_subjects, "n_subjects", 300)
        _count(self.n_test_per_domain, "n_test_per_domain", N_HELDOUT_PER_DOMAIN)
        _count(self.n_known_per_domain, "n_known_per_domain", N_KNOWN_PER_DOMAIN)
        n = self.n_subjects or 300
        _count(self.palign_subjects, "palign_subjects", n)
        _count(self.dpo_subjects, "dpo_subjects", n, allow_none=False)
        _count(self.batch_size, "batch_size", 4096, allow_none=False)
        if not self.alphas or any(not math.isfinite(a) or a < 0 for a in self.alphas) or 0 not in self.alphas:
            raise ValueError(f"alphas must be a non-empty list of non-negative numbers containing 0 (no steering), "
                             f"got {list(self.alphas)!r}")
        if not 0 < self.k_share <= 1:
            raise ValueError(f"k_share must be in (0, 1], got {self.k_share!r}")
        if self.contrast not in CONTRASTS:
            raise ValueError(f"contrast must be one of {sorted(CONTRASTS)}, got {self.contrast!r}")
        for name in (*self.methods, *self.palign_methods):
            parse_method(name)
        if self.dpo_method is not None and parse_method(self.dpo_method)[0] != "dpo":
            raise ValueError(f"dpo_method must be a dpo[...] method, got {self.dpo_method!r}")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` -> ``(i, n)`` with 0 <= i < n; None stays None."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not int(match[1]) < int(match[2]):
        raise ValueError(f"shard must be 'i/n' with 0 <= i < n (e.g. '0/4'), got {text!r}")
    return int(match[1]), int(match[2])


def settings_from(params: dict) -> AlignmentSettings:
    """The settings of a run from notebook parameters (the names of ``notebooks/02_alignment.ipynb``)."""
    dpo = DPOSettings(learning_rates=tuple(params.get("dpo_learning_rates", DPOSettings.learning_rates)),
                      max_steps=params.get("dpo_max_steps", DPOSettings.max_steps),
                      eval_every=params.get("dpo_eval_every", DPOSettings.eval_every),
                      patience=params.get("dpo_patience", DPOSettings.patience),
                      batch_size=params.get("dpo_batch_size", DPOSettings.batch_size),
                      seed=params.get("seed", 0))
    defaults = AlignmentSettings.__dataclass_fields__
    return AlignmentSettings(
        **{name: tuple(params[name]) if isinstance(params.get(name), list) else params[name]
           for name in ("n_subjects", "n_test_per_domain", "n_known_per_domain", "methods", "palign_methods",
                        "palign_subjects", "dpo_method", "dpo_subjects", "alphas", "k_share", "contrast", "seed",
                        "batch_size") if name in params and name in defaults},
        dpo=dpo)


#: The alignment chapters' parameters and their defaults (the smoke scale): the one source of the values that the
#: parameters cells of notebooks 02, 03 and 05 assign (a test holds the cells to it). The profiles override them.
DEFAULTS: dict = {
    "profile": "smoke", "model": "smollm2-135m-instruct", "diagnostic_model": None, "dtype": "auto",
    "n_subjects": 2, "n_test_per_domain": 1, "n_known_per_domain": 2,
    "methods": ["no-change", "few-shot[corrected]", "pas[honest,corrected]"],
    "palign_methods": ["few-shot[paper]", "p2", "pas[test-tuned,paper]"], "palign_subjects": None,
    "dpo_method": "dpo[corrected]", "dpo_subjects": 1, "dpo_learning_rates": [5e-4], "dpo_max_steps": 2,
    "dpo_eval_every": 1, "dpo_patience": 2, "dpo_batch_size": 8,
    "alphas": [0, 4], "k_share": K_SHARE, "contrast": "content",
    "control_alphas": [-8, 0, 8], "control_k_shares": [K_SHARE],
    "batch_size": 8, "n_boot": 200, "seed": 0, "threads": 0, "shard": None, "results_dir": None,
}


def _number_list(params: dict, name: str, *, allow_empty: bool = False) -> list[float]:
    value = params.get(name, DEFAULTS[name])
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or (not value and not allow_empty) \
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        raise ValueError(f"{name} must be a non-empty list of numbers, got {value!r}")
    return list(value)


def check_parameters(params: dict) -> AlignmentSettings:
    """Every alignment parameter checked before any model loads: the settings, the list parameters the settings
    do not hold (``control_alphas`` needs 0 and a positive alpha, ``control_k_shares`` shares in (0, 1]),
    ``n_boot``, ``threads`` and ``shard``. Raises ``ValueError`` naming the parameter and what it allows."""
    for name in ("methods", "palign_methods"):
        if isinstance(params.get(name), str):
            raise ValueError(f"{name} must be a list of method names, got the string {params[name]!r} "
                             f"(write [{params[name]!r}])")
    settings = settings_from(params)
    control = _number_list(params, "control_alphas")
    if 0 not in control or max(control) <= 0:
        raise ValueError(f"control_alphas must contain 0 (no steering) and a positive alpha, got {control!r}")
    shares = _number_list(params, "control_k_shares")
    if not all(0 < k <= 1 for k in shares):
        raise ValueError(f"control_k_shares must be shares of all heads in (0, 1], got {shares!r}")
    n_boot, threads = params.get("n_boot", DEFAULTS["n_boot"]), params.get("threads", DEFAULTS["threads"])
    if not isinstance(n_boot, int) or isinstance(n_boot, bool) or n_boot < 100:
        raise ValueError(f"n_boot must be an integer of at least 100 (bootstrap resamples), got {n_boot!r}")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 0):
        raise ValueError(f"threads must be 0 (torch's default) or a positive integer, got {threads!r}")
    parse_shard(params.get("shard"))
    return settings


@dataclass
class Run:
    """An open alignment run: what every alignment chapter needs, opened in one call (:func:`open_run`)."""

    settings: AlignmentSettings
    setup: "PapiSetup"
    model: str
    engine: Any
    store: ResultStore
    timer: StageTimer
    activations: "Activations"
    params: dict
    shard: tuple[int, int] | None
    built: dict | None = None  # the build record of a model the book builds (the sandbox), else None

    @property
    def llm(self):
        return self.engine.model

    @property
    def total_heads(self) -> int:
        config = self.engine.model.config
        return config.num_hidden_layers * config.num_attention_heads


def open_run(parameters: dict, *, model: str | None = None) -> Run:
    """Open an alignment run from a notebook's parameters (``globals()``; missing names take ``DEFAULTS``).

    Checks every parameter first, seeds torch, sets its threads, draws the sample, loads the model (``model``
    overrides the parameter, e.g. for a second model in the same chapter), and opens the verified results folder
    ``<results_dir or results/papi/<profile>/<model>>/<hash of model, dtype, settings and code>``.
    """
    import torch

    from persona.engine import Engine
    from persona.models import load_model
    from persona.paths import results_dir as results_root
    from persona.runs import code_fingerprint, params_folder

    params = {**DEFAULTS, **{k: v for k, v in parameters.items() if k in DEFAULTS}}
    settings = check_parameters(params)
    shard = parse_shard(params["shard"])
    name = model or params["model"]
    if params["threads"]:
        torch.set_num_threads(params["threads"])
    torch.manual_seed(params["seed"])
    setup = papi_setup(settings)
    source, built = open_model(name, setup)
    llm, tokenizer = load_model(source, dtype=params["dtype"])
    engine = Engine(llm, tokenizer, batch_size=settings.batch_size)
    record = {"model": name, "dtype": str(llm.dtype), "settings": repr(settings),
              "code": code_fingerprint(*PRODUCING_MODULES)}
    if built is not None:
        record["built"] = built["key"]  # another recipe or base model: another results folder
    base = (Path(params["results_dir"]) if params["results_dir"]
            else results_root("papi", params["profile"], name.replace("/", "__")))
    store = ResultStore(params_folder(base, record), record, code=record["code"])
    timer = StageTimer()
    return Run(settings, setup, name, engine, store, timer,
               Activations(engine, setup, timer, batch_size=settings.batch_size), record, shard, built)


def open_model(name: str, setup: "PapiSetup") -> tuple[str, dict | None]:
    """What to load for ``name``: itself, or for a model the book builds (``persona.models.BUILT_FROM``, the
    sandbox) its verified folder, built without the run's subjects and leak-checked against them, with its
    build record."""
    from persona.models import BUILT_FROM

    if name not in BUILT_FROM:
        return name, None
    from persona.papi import sandbox

    recipe = sandbox.by_name(name, excluded=[s.case for s in setup.subjects])
    folder = sandbox.path(recipe)
    record = sandbox.verify(folder, recipe)
    sandbox.check_no_leak(record, setup.subjects)  # a sandbox never learned from the people it is judged on
    return str(folder), record


#: Tokens of one DPO prompt (a PAPI item with PAlign's default system prompt and the answer cue): about 130
#: with SmolLM2's tokenizer, taken as 160 for the memory estimate of a DPO batch.
DPO_PROMPT_TOKENS = 160


def training_load(params: dict) -> tuple[int, str]:
    """Tokens of one DPO training batch a run with these notebook parameters may train (``dpo_batch_size``
    prompts), and what to call that batch; ``(0, "")`` without DPO. The runbook asks this before any notebook
    runs, to check that the model fits the GPU with DPO's activations (the notebooks that can train name it
    in their metadata). The parameters are checked as ``open_run`` checks them (ValueError), so a bad one
    stops the runbook before any notebook runs."""
    settings = check_parameters({**DEFAULTS, **{k: v for k, v in params.items() if k in DEFAULTS}})
    if settings.dpo_method is None:
        return 0, ""
    return (settings.dpo.batch_size * DPO_PROMPT_TOKENS,
            f"DPO's backward pass at dpo_batch_size {settings.dpo.batch_size}")


@dataclass
class PapiSetup:
    """The subjects and items of one run, plus the truth table ``persona.papi.metrics`` scores against."""

    subjects: list[papi.Subject]
    known: list[papi.Item]
    test: list[papi.Item]
    truth: pd.DataFrame
    others: list[papi.Subject] = field(default_factory=list)  # the subjects NOT sampled (population norms)


def stratified_items(items: Sequence[papi.Item], n_per_domain: int | None, rng: np.random.Generator) -> list[papi.Item]:
    """``n_per_domain`` items of each domain drawn at random, half reverse-keyed (the odd one positively keyed;
    a sign with too few items is filled from the other), returned in their original order. None: all."""
    if n_per_domain is None:
        return list(items)
    chosen: set[int] = set()
    for domain in papi.DOMAINS:
        plus = [i.number for i in items if i.domain == domain and i.sign > 0]
        minus = [i.number for i in items if i.domain == domain and i.sign < 0]
        if n_per_domain > len(plus) + len(minus):
            raise ValueError(f"{n_per_domain} items per domain requested, domain {domain} has {len(plus) + len(minus)}")
        n_minus = min(n_per_domain // 2, len(minus))
        n_plus = min(n_per_domain - n_minus, len(plus))
        n_minus = n_per_domain - n_plus
        chosen |= set(rng.choice(plus, n_plus, replace=False).tolist()) | set(rng.choice(minus, n_minus, replace=False).tolist())
    return [i for i in items if i.number in chosen]


def papi_setup(settings: AlignmentSettings) -> PapiSetup:
    """The seeded paired sample: random subjects (in file order), stratified known and held-out items."""
    rng = np.random.default_rng(settings.seed)
    by_number = papi.items_by_number(papi.load_item_key())
    split = papi.load_split()
    everyone = papi.load_subjects()
    if settings.n_subjects is None:
        subjects = everyone
    else:
        picked = set(rng.choice(len(everyone), settings.n_subjects, replace=False).tolist())
        subjects = [s for k, s in enumerate(everyone) if k in picked]
    test = stratified_items([by_number[n] for n in split.heldout], settings.n_test_per_domain, rng)
    known = stratified_items([by_number[n] for n in split.known], settings.n_known_per_domain, rng)
    cases = {s.case for s in subjects}
    return PapiSetup(subjects, known, test, papi.answers_frame(subjects, test),
                     others=[s for s in everyone if s.case not in cases])


class Activations:
    """The subject-independent PAS contrast activations of each construction, computed on first use and
    timed once (stage ``pas/activations``)."""

    def __init__(self, engine, setup: PapiSetup, timer: StageTimer, batch_size: int = 8) -> None:
        self.engine, self.setup, self.timer, self.batch_size = engine, setup, timer, batch_size
        self._done: dict[str, np.ndarray] = {}

    def array(self, contrast: str) -> np.ndarray:
        """The activations of one contrast construction, computed (and timed) on first use."""
        if contrast not in self._done:
            with self.timer.stage("pas/activations", method=f"contrast:{contrast}", subject=None):
                self._done[contrast] = contrast_activations(self.engine, self.setup.known, CONTRASTS[contrast],
                                                            batch_size=self.batch_size)
        return self._done[contrast]

    def lazy(self, contrast: str) -> Callable[[], np.ndarray]:
        """A deferred :meth:`array`: PAS computes it in ``prepare``, outside the first subject's timed fit."""
        return lambda: self.array(contrast)


def make_method(name: str, engine, setup: PapiSetup, settings: AlignmentSettings, *,
                activations: Activations | None = None, timer: StageTimer | None = None) -> Method:
    """Build the method called ``name`` (see the module docstring)."""
    kind, args, pipeline = parse_method(name)
    mode: AnswerMode = PALIGN if pipeline == "palign" else LIKELIHOOD
    if kind == "no-change":
        return NoChange(engine, mode)
    if kind == "p2":
        return PersonalityPrompt(engine, mode)
    if kind == "few-shot":
        return FewShot(engine, convention=args[0], mode=mode)
    if kind == "dpo":
        return DPO(engine, convention=args[0], settings=settings.dpo, timer=timer, mode=mode)
    if activations is None:
        raise ValueError("PAS needs the contrast activations")
    contrast = "palign" if pipeline == "palign" else settings.contrast
    return PAS(engine, activations.lazy(contrast), setup.known, contrast=CONTRASTS[contrast], protocol=args[0],
               test_items=setup.test, few_shot="no-fs" not in args, convention=args[-1], alphas=settings.alphas,
               k_share=settings.k_share, seed=settings.seed, val_fraction=settings.dpo.val_fraction,
               timer=timer, mode=mode)


# ----------------------------------------------------------------------------------- the positive control


def _agree_curve(run: Run, construction: str, k_share: float | None, fit: Sequence[papi.Item],
                 steered: Sequence[papi.Item], alphas: Sequence[float]) -> pd.DataFrame:
    """The dose-response of the *agree* direction of ``construction``, fitted on the known items ``fit`` (their
    rows of the run's contrast activations), steering the items ``steered`` at each alpha."""
    from persona.papi.methods.pas import agree_directions, dose_response
    from persona.papi.methods.pas_core import head_count

    activations = run.activations.array(construction)
    if [i.number for i in fit] != [i.number for i in run.setup.known]:  # a part of them: its rows (a copy)
        position = {item.number: row for row, item in enumerate(run.setup.known)}
        activations = activations[[position[i.number] for i in fit]]
    agree = agree_directions(activations, CONTRASTS[construction],
                             k=head_count(k_share or run.settings.k_share, run.total_heads), seed=run.settings.seed)
    return dose_response(run.engine, steered, agree, alphas)


def positive_control(run: Run, alphas: Sequence[float], constructions: Sequence[str] | None = None,
                     k_share: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The instrument check of PAS (the gate's "positive control"): the *agree* direction of each contrast
    construction, fitted on the sample's known items, steers the held-out items at each alpha.

    Returns the dose-response curve (expected answer per construction, alpha, item and order) and the shifts
    from alpha 0 with their intervals (items as units; the family is every shift tested)."""
    from persona.papi import analysis

    constructions = list(dict.fromkeys(constructions or [run.settings.contrast]))
    family = 2 * 3 * (len(alphas) - 1) if len(constructions) > 1 else 3 * (len(alphas) - 1)
    curves, shifts = [], []
    for construction in constructions:
        curve = _agree_curve(run, construction, k_share, run.setup.known, run.setup.test, alphas)
        curve = curve.assign(construction=construction)
        curves.append(curve)
        shifts.append(analysis.control_shifts(curve, family_size=family).assign(construction=construction))
    return pd.concat(curves, ignore_index=True), pd.concat(shifts, ignore_index=True)


def steering_range(run: Run, grid: Sequence[float] = ALPHAS, *, val_fraction: float = 0.5
                   ) -> tuple[pd.DataFrame, float]:
    """The positive control on the *known* items only, to say where a model's steering moves content before
    the control is run on the held-out items: the agree direction (PAS's construction and K) is fitted on one
    part of the known items (``split_known``, seeded) and steers the other part at every positive alpha of
    ``grid``. No person's answers are read and no held-out item is asked.

    Returns the shifts (:func:`persona.papi.analysis.control_shifts`, the family every shift tested) and the
    validated range: the largest alpha up to which every alpha of the grid moved the expected answer as
    intended in both option orders (0 when the smallest already failed)."""
    from persona.papi import analysis
    from persona.papi.methods.answering import split_known

    fit, val = split_known(run.setup.known, val_fraction=val_fraction, seed=run.settings.seed)
    if not fit or not val:
        raise ValueError(f"steering_range needs known items on both sides of the split, got {len(fit)} and "
                         f"{len(val)}: use more known items or another val_fraction")
    alphas = sorted({0.0, *(float(a) for a in grid if a > 0)})
    curve = _agree_curve(run, run.settings.contrast, None, fit, val, alphas)
    shifts = analysis.control_shifts(curve, family_size=3 * (len(alphas) - 1))
    return shifts.assign(fit_items=len(fit), val_items=len(val)), analysis.validated_alpha(shifts)


def stored_control(run: Run, alphas: Sequence[float]) -> pd.DataFrame:
    """The positive control's shifts at its largest alpha for PAS's own construction, one row per order: read
    from the run's results folder (the alignment chapter stores them), computed and stored when missing (a
    chapter run on its own)."""
    construction = run.settings.contrast
    if not run.store.done("control", construction):  # the alignment chapter's design, so the same intervals
        _, shifts = positive_control(run, alphas, [construction, "palign"])
        top = shifts[(shifts["alpha"] == max(alphas)) & (shifts["construction"] == construction)]
        run.store.save("control", construction, top.reset_index(drop=True))
    return run.store.read("control", construction)


# ----------------------------------------------------------------------------------- running


def _fit_and_answer(method: Method, name: str, subject: papi.Subject, setup: PapiSetup, store: ResultStore,
                    timer: StageTimer) -> pd.DataFrame:
    start = len(timer.records)
    method.prepare()  # once-per-model work (PAS activations) is timed apart from the subject's fit
    with timer.stage("fit", method=name, subject=subject.case, total=True):
        method.fit(subject, setup.known)
    frame = method.answer(setup.test).frame(subject=subject.case, method=name)
    method.release()
    times = pd.DataFrame(timer.frame().iloc[start:]).assign(method=name, subject=subject.case)
    store.save(f"{name}~times", subject.case, times)
    if method.trace:
        store.save(f"{name}~trace", subject.case, pd.DataFrame(method.trace).assign(method=name, subject=subject.case))
    state = method.state()
    if state is not None:
        store.save(f"{name}~state", subject.case, state)
    return frame


def run(methods: dict[str, Method], setup: PapiSetup, store: ResultStore, timer: StageTimer,
        subjects: Sequence[papi.Subject] | None = None, shard: tuple[int, int] | None = None) -> pd.DataFrame:
    """Fit and answer every (method, subject) not yet in ``store``; return the predictions of all of them.

    Subjects are interleaved across methods (A B, B A, ...) so slow drift of the machine is shared.
    ``shard=(i, n)`` computes only the subjects at positions i, i+n, ... of the sample (several machines
    can share one results folder); the others must already be stored by other shards, or are skipped
    here and listed by ``missing``.
    """
    subjects = list(subjects if subjects is not None else setup.subjects)
    mine = subjects if shard is None else subjects[shard[0]::shard[1]]
    units = [Unit(name, str(subject.case), partial(_fit_and_answer, methods[name], name, subject, setup, store, timer),
                  rows=len(setup.test), label=f"{name} on subject {subject.case}")
             for subject, name in interleave(mine, list(methods))]
    resume(store, units, desc="alignment")
    done = [(name, s) for s in subjects for name in methods if store.done(name, s.case, len(setup.test))]
    frames = [store.read(name, s.case) for name, s in done]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def missing(store: ResultStore, methods: Sequence[str], setup: PapiSetup,
            subjects: Sequence[papi.Subject] | None = None) -> list[tuple[str, int]]:
    """(method, subject) units not yet in the store (a sharded run that other shards have not finished)."""
    subjects = list(subjects if subjects is not None else setup.subjects)
    return [(m, s.case) for s in subjects for m in methods if not store.done(m, s.case, len(setup.test))]


def records(store: ResultStore, methods: Sequence[str], kind: str) -> pd.DataFrame:
    """The stored ``kind`` ("times" or "trace") of ``methods``, all subjects."""
    return store.load([f"{m}~{kind}" for m in methods])


def fitted_state(store: ResultStore, method: str, subject: papi.Subject) -> pd.DataFrame:
    """What a stored fit of ``method`` chose for ``subject`` (PAS: heads, directions, alpha)."""
    return store.read(f"{method}~state", subject.case)


#: What the diagnostic model runs: the prompt methods only (its PAS, PAlign pipeline and DPO would rest on a
#: positive control that models answering by letter fail).
DIAGNOSTIC_METHODS = {"methods": ["no-change", "few-shot[corrected]"], "palign_methods": [], "dpo_method": None}


@dataclass
class Diagnosis:
    """An off-the-shelf model run beside the chapter's model on the same sample (:func:`diagnose`)."""

    model: str
    control: Any  # persona.gate.Check: the positive control at the chapter's control alpha
    table: pd.DataFrame  # endpoints (corrected convention) of the prompt methods and the item-norm floor
    methods: list[str]


def diagnose(parameters: dict, model: str, control_alpha: float) -> Diagnosis:
    """Run ``model`` as the diagnostic: the positive control at ``control_alpha`` and the prompt methods of
    ``DIAGNOSTIC_METHODS`` on the same sample (its own results folder, resumable like any run)."""
    from persona.papi import analysis, metrics

    run_ = open_run({**parameters, **DIAGNOSTIC_METHODS}, model=model)
    _, shifts = positive_control(run_, [0, control_alpha])
    control = analysis.control_check(shifts[shifts["alpha"] == control_alpha], model)
    methods = {m: make_method(m, run_.engine, run_.setup, run_.settings) for m in run_.settings.methods}
    predictions = run(methods, run_.setup, run_.store, run_.timer)
    table = metrics.endpoints(pd.concat([predictions, floor_predictions(run_.setup)]), run_.setup.truth, "corrected")
    return Diagnosis(model, control, table, list(run_.settings.methods))


# ----------------------------------------------------------------------------------- tables


def floor_predictions(setup: PapiSetup) -> pd.DataFrame:
    """The no-model floor on the same subjects and items: always "Neither", the subject's facet mean (both
    pipelines; ``paper`` reads stored values as ticks), and each item's mean over the subjects NOT sampled
    (what item norms alone give, e.g. to the rank correlation)."""
    frames = []
    for convention in ("paper", "corrected"):
        predictor = reference.SubjectMean(setup.known, level="facet", convention=convention)
        frames.append(reference.predictions_frame(predictor, setup.subjects, setup.test,
                                                  method=f"ref:facet-mean[{convention}]"))
    frames.append(reference.predictions_frame(reference.Constant(3), setup.subjects, setup.test, method="ref:always-3"))
    if setup.others:
        norms = reference.PopulationItemMean(setup.others, rounding="none")
        frames.append(reference.predictions_frame(norms, setup.subjects, setup.test, method="ref:item-norms"))
    return pd.concat(frames, ignore_index=True)


def expressed_levels(predictions: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Per (method, subject, domain): the trait level the answers express vs the subject's true level.

    Both are mean keyed scores over the test items (a tick is read back through the item's sign;
    the truth's stored values are keyed already; missing answers dropped). A method that aligns to a
    person should express high levels for people who are high.
    """
    merged = predictions.merge(truth[["subject", "item", "domain", "sign", "keyed"]], on=["subject", "item"])
    value = merged["expected"] if "expected" in merged else merged["predicted"]
    merged["expressed"] = np.where(merged["sign"] > 0, value, 6 - value)
    return (merged.groupby(["method", "subject", "domain"], as_index=False)
            .agg(expressed=("expressed", "mean"), true=("keyed", "mean")))


def sample_table(setup: PapiSetup) -> pd.DataFrame:
    """Held-out items of the sample per domain and keying sign (the paired design, at a glance)."""
    frame = pd.DataFrame([(i.domain, "+" if i.sign > 0 else "-") for i in setup.test], columns=["domain", "sign"])
    return frame.value_counts().unstack("sign", fill_value=0).reindex(list(papi.DOMAINS))


__all__ = ["AlignmentSettings", "Activations", "DEFAULTS", "DPO_PROMPT_TOKENS", "PapiSetup", "Run", "check_parameters", "open_run", "positive_control", "stored_control", "PRODUCING_MODULES", "expressed_levels",
           "floor_predictions", "make_method", "missing", "papi_setup", "parse_method", "records", "run",
           "sample_table", "stratified_items", "training_load"]
