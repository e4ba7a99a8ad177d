"""The GPU path rehearsed without a GPU (issue #17).

Every notebook is executed through the runbook's own code path for ``--profile gpu`` (profiles/gpu.yaml
as it is, the ``_book`` section included, the models' preflight check, the executed copies, provenance)
with the gpu profile's settings -- bfloat16, its batch sizes, the paper's alpha grid, its DPO learning
rates, evaluation interval, patience and batch size, every method -- on tiny random-weight models shaped
like Llama-3 (grouped-query attention, Llama-3's special tokens, chat template, pre-tokenizer split and
two stop tokens), saved to a folder by the test. Only the knobs that multiply work (``SCALE``) and where
things are (``ENVIRONMENT``) differ from profiles/gpu.yaml; the test checks that nothing else does. A second
run after a simulated interruption must recompute the interrupted unit and nothing else.

What only CUDA exercises (``tests/test_cuda.py`` and ``benchmarks/device_check.sh`` cover these on a GPU):

* DPO training in bfloat16 on the GPU: on CPU ``DPO._inject`` casts a bf16 model to float32 for training
  (bf16 autograd on CPU is slow) and back afterwards, so in the notebooks the bf16 backward pass through the
  LoRA adapter runs only on CUDA. Its dtype logic (bf16 base weights, float32 adapters, AdamW, the cast
  back on release) is run here on CPU by letting DPO believe CUDA is there
  (``test_dpo_trains_a_bfloat16_model_as_it_does_on_cuda``); the bf16 CUDA kernels are not.
* ``device="auto"`` choosing cuda and ``dtype="auto"`` choosing bfloat16 (``persona.models``): here the
  profile's explicit ``dtype: bfloat16`` loads bf16 on CPU; the TRAIT chapter (04) has no ``dtype``
  parameter and loads its models with "auto", so on CPU it runs in float32, on a GPU in bfloat16.
* Moving tensors between devices: inputs built on the CPU and sent to ``next(model.parameters()).device``,
  the steering hook's delta moved to the activation's device (``persona.steering.steer``), captured
  activations copied back (``capture_last_token``), the prefix key/value cache and packed masks on the GPU.
* CUDA kernels: bf16 SDPA attention (flash / memory-efficient) with the packed rows' additive masks, bf16
  matmuls with their own rounding (hence tolerances, not equality, between fast and naive paths on CUDA).
* The memory check against the GPU's free memory (``persona.models.check_fits`` with a CUDA ``Device``;
  its arithmetic is unit-tested in tests/test_models.py with a fake device), and real out-of-memory errors.
* Throughput, peak GPU memory and run times at the papers' scale.

Found while rehearsing, and fixed: under Llama-3's pre-tokenizer the answer cue "(" and an option letter
form one token ("(A" is in its vocabulary), so a "(" cue would read the letter at a split Llama-3 never
saw, and DPO's check that the answer follows the prompt as one token refused every prompt. The answer cue
now adapts to the tokenizer (``persona.papi.prompts.answer_cue``: no cue when "(A" is one token, and the
model's own "(A" token is read). The rehearsal's tokenizer is trained with "(A"-like single tokens, as
Llama-3's vocabulary has them; ``test_dpo_pairs_on_a_llama3_vocabulary_with_letter_tokens`` checks the fix.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from audit import LLAMA3_CHAT_TEMPLATE, LLAMA3_SPECIAL_TOKENS
from tiny_models import CL100K_PRETOKENIZER, save_tiny_llama, tiny_bpe_tokenizer

from persona import runbook
from persona.runbook import layout

GPU = "gpu"
#: The knobs that only multiply work (subjects, items, items per trait, steps), per notebook: the ONLY
#: settings of profiles/gpu.yaml the rehearsal changes. Every other key must equal the profile's.
_ALIGNMENT_SCALE = {
    "n_subjects": 2,            # gpu: all 300
    "n_test_per_domain": 4,     # gpu: all 36 held-out items per domain (40 prompts: batches of 32 and 8)
    "n_known_per_domain": 4,    # gpu: all 24 known items per domain
    "dpo_subjects": 1,          # gpu: 30
    "dpo_max_steps": 2,         # gpu: 250 (validation still at the last step; eval_every and patience unchanged)
}
SCALE = {
    "01_papi_data": {},  # no language model: the gpu profile's settings as they are
    "02_alignment": _ALIGNMENT_SCALE,
    "03_cost": _ALIGNMENT_SCALE,
    "05_transfer": {**_ALIGNMENT_SCALE, "transfer_subjects": 1, "transfer_per_trait": 1},  # gpu: 50, 100
    "04_trait": {"per_trait": 1, "bare_per_trait": 1, "persona_per_trait": 1,  # gpu: all 1,000; 200; 200
                 "selfreport_per_trait_level": 1, "refusal_per_trait": 1},    # gpu: all 142; 50
}
#: Where the models and results are, and one torch thread (CPU etiquette): not settings of the study.
ENVIRONMENT = {"model", "models", "detail_models", "results_dir", "threads"}
#: The tiny models answer mostly with option labels, as an instruct model does (``favour_tokens``), so that
#: every chapter gets past its label-mass filters and parses some generated answers.
LABELS = ("A", "B", "C", "D", "E", "1", "2", "3", "4", "5")
#: Llama-3's special tokens; Llama-3-Instruct stops at either of the last two.
LLAMA3_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", *LLAMA3_SPECIAL_TOKENS[1:]]
STOP_TOKENS = ("<|end_of_text|>", "<|eot_id|>")


def rehearsal_params(models: list[str], results: Path) -> list[str]:
    """The ``--param`` settings of the rehearsal: the scale knobs, the tiny models, results folders, 1 thread."""
    params = []
    for stem, knobs in SCALE.items():
        params += [f"{stem}.{name}={json.dumps(value)}" for name, value in knobs.items()]
    for stem in ("02_alignment", "03_cost", "05_transfer"):
        params += [f"{stem}.model={json.dumps(models[0])}", f"{stem}.results_dir={json.dumps(str(results / 'papi'))}"]
    params += [f"04_trait.models={json.dumps(models)}", f"04_trait.detail_models={json.dumps(models)}",
               f"04_trait.results_dir={json.dumps(str(results / 'trait'))}", "threads=1"]
    return params


def effective_parameters(params: list[str]) -> dict[str, dict]:
    """What each notebook receives: the gpu profile with the rehearsal's settings, as the runbook builds it."""
    profile = runbook.with_params(runbook.load_profile(GPU), params, runbook.notebooks())
    return {nb.stem: runbook.parameters_for(profile, nb) for nb in runbook.notebooks()}


def test_the_rehearsal_differs_from_the_gpu_profile_only_in_scale_and_environment():
    gpu = runbook.load_profile(GPU)
    models = ["tiny-llama3-0", "tiny-llama3-1", "tiny-llama3-2"]  # placeholders: nothing is loaded here
    rehearsed = effective_parameters(rehearsal_params(models, Path("results")))
    assert set(rehearsed) == set(SCALE), "a notebook was added or removed: give it its SCALE entry"
    for nb in runbook.notebooks():
        profile = runbook.parameters_for(gpu, nb)
        for key in SCALE[nb.stem]:
            assert key in profile, f"{nb.stem}: scale knob '{key}' is not set by profiles/gpu.yaml (renamed?)"
        changed = {k for k in set(profile) | set(rehearsed[nb.stem]) if profile.get(k) != rehearsed[nb.stem].get(k)}
        extra = changed - set(SCALE[nb.stem]) - ENVIRONMENT
        assert not extra, f"{nb.stem}: the rehearsal also differs from profiles/gpu.yaml in {sorted(extra)}"
    al = rehearsed["02_alignment"]
    assert al["dtype"] == "bfloat16" and al["batch_size"] == 32 and al["dpo_batch_size"] == 16
    assert al["alphas"] == [0, 1, 2, 4, 6, 8] and al["dpo_learning_rates"] == [5e-5, 1e-4, 5e-4]
    assert (al["dpo_eval_every"], al["dpo_patience"]) == (25, 3) and al["profile"] == GPU
    assert rehearsed["04_trait"]["batch_size"] == 32 and rehearsed["04_trait"]["max_new_tokens"] == 24


# --------------------------------------------------------------------------------------------------
# The run itself (one module-scoped execution, several checks)

def llama3_tokenizer(corpus: tuple[str, ...], letter_tokens: bool = False):
    """A small byte-level BPE with Llama-3's special tokens, chat template and pre-tokenizer split (no pad
    token, like Llama-3). ``letter_tokens``: train on option lines "(A). ..." too, so that "(A" ... "(E" are
    single tokens, as they are in Llama-3's vocabulary (tiktoken cl100k ranks 4444, 5462, 3100, 5549, 10953)."""
    options = tuple(f"({label}). {text}" for label, text in zip("ABCDE", ["Very", "Moderately", "Neither", "Rather",
                                                                        "Not at all"])) if letter_tokens else ()
    return tiny_bpe_tokenizer(chat_template=LLAMA3_CHAT_TEMPLATE, special_tokens=LLAMA3_TOKENS,
                              bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                              pre_tokenizer_regex=CL100K_PRETOKENIZER, extra_corpus=corpus + options * 8,
                              vocab_size=1536)


def task_corpus() -> tuple[str, ...]:
    """Item texts of both studies, so the tiny tokenizer splits prompts about as finely as a real one."""
    from persona import papi
    from persona.trait.items import load_trait_items

    situations = tuple(t.situation for t in load_trait_items()[::20] if t.situation)
    return tuple(i.text for i in papi.load_item_key()) + situations


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _run(argv: list[str]) -> str:
    """``python -m persona.runbook <argv>`` in this process; its own lines and the kernels' output."""
    handler, out = _Lines(), io.StringIO()
    logger = logging.getLogger("persona.runbook")
    logger.addHandler(handler)
    try:
        with contextlib.redirect_stdout(out):
            runbook.main(argv)
    finally:
        logger.removeHandler(handler)
    return out.getvalue() + "\n".join(handler.lines)


def _store(results: Path) -> Path:
    (folder,) = [p.parent for p in (results / "papi").glob("*/run.json")]
    return folder


def _frame(store: Path, group: str) -> pd.DataFrame:
    from persona.runs import _safe

    return pd.concat([pd.read_csv(p) for p in sorted((store / _safe(group)).glob("*.csv"))], ignore_index=True)


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    from conftest import mirror_or_skip

    from persona.paths import data_cache_dir, data_mirror

    if data_mirror() is None and not any(data_cache_dir().glob("papi/*")):
        mirror_or_skip()
    tmp = tmp_path_factory.mktemp("rehearsal")
    shutil.copytree(data_cache_dir(), tmp / "cache" / "data")  # verified data, so nothing is fetched again
    with pytest.MonkeyPatch.context() as mp:
        for name, value in (("PERSONA_CACHE_DIR", tmp / "cache"), ("PERSONA_MODEL_DIR", tmp / "cache" / "models"),
                            ("PERSONA_RESULTS_DIR", tmp / "results"), ("HF_HUB_OFFLINE", "1"),
                            ("OMP_NUM_THREADS", "1"), ("MKL_NUM_THREADS", "1")):
            mp.setenv(name, str(value))
        mp.setattr(layout, "EXECUTED_DIR", tmp / "executed")
        mp.setattr(layout, "GENERATED_DIR", tmp / "generated")
        tokenizer = llama3_tokenizer(task_corpus(), letter_tokens=True)
        models = [str(save_tiny_llama(tmp / f"tiny-llama3-{k}", tokenizer, seed=k, eos_tokens=STOP_TOKENS,
                                      favour=LABELS)) for k in range(3)]
        params = [p for item in rehearsal_params(models, tmp / "results") for p in ("--param", item)]
        first = _run(["--profile", GPU, "--no-build", *params])
        # an interruption: the DPO unit's rows were written, its meta file was not. The cost chapter (the
        # cheapest that fits DPO) is run again: it must recompute that unit and reuse every other one.
        interrupted = next((_store(tmp / "results") / "dpo_corrected_").glob("*.meta.json"))
        interrupted.unlink()
        second = _run(["--profile", GPU, "--no-build", "--force", "--only", "03_cost", *params])
        yield {"tmp": tmp, "models": models, "first": first, "second": second, "interrupted": interrupted}


@pytest.mark.rehearsal
def test_every_notebook_runs_through_the_runbooks_gpu_path(rehearsal):
    tmp, log = rehearsal["tmp"], rehearsal["first"]
    assert "profile 'gpu': 5 of 5 notebook(s) to execute" in log
    # the models' preflight passed: bfloat16 as the profile asks (04 has no dtype parameter: "auto")
    assert re.search(r"02_alignment, 03_cost, 05_transfer: model \S+tiny-llama3-0 \([\d.]+ M parameters\) in "
                     r"bfloat16 on (cpu|cuda): needs about", log), log[:3000]
    assert re.search(r"04_trait: model \S+tiny-llama3-2 .* on (cpu|cuda): needs about", log)
    stamps = {p.stem: json.loads(p.read_text()) for p in (tmp / "executed" / GPU).glob("*.json")}
    assert sorted(stamps) == [nb.stem for nb in runbook.notebooks()]
    assert stamps["02_alignment"]["parameters"]["dtype"] == "bfloat16"
    provenance = json.loads((tmp / "generated" / "provenance.json").read_text())
    assert provenance["profile"] == GPU and not provenance["not_executed"]
    run = json.loads((_store(tmp / "results") / "run.json").read_text())
    assert run["params"]["dtype"] == "torch.bfloat16"  # the alignment chapter computed in bfloat16
    assert "batch_size=32" in run["params"]["settings"] and "alphas=(0, 1, 2, 4, 6, 8)" in run["params"]["settings"]


@pytest.mark.rehearsal
def test_steering_dpo_and_generation_ran_at_the_gpu_settings(rehearsal):
    store = _store(rehearsal["tmp"] / "results")
    for method in ("pas[honest,corrected]", "pas[honest,no-fs,corrected]", "pas[test-tuned,paper]@palign"):
        trace = _frame(store, f"{method}~trace")
        assert sorted(trace["alpha"].unique()) == [0, 1, 2, 4, 6, 8], method  # the hooks steered at every alpha
        assert len(_frame(store, f"{method}~state")) > 0, method
    dpo = _frame(store, "dpo[corrected]~trace")
    search = dpo[dpo["phase"] == "search"]
    assert sorted(search["lr"].unique()) == [5e-5, 1e-4, 5e-4]
    assert sorted(search["step"].unique()) == [0, 2]  # trained 2 steps with every rate, validated at the last
    assert search["loss"].notna().any() and (dpo["phase"] == "refit").sum() == 1
    for method in ("few-shot[paper]@palign", "p2@palign", "pas[test-tuned,paper]@palign"):  # PAlign's pipeline: greedy text
        assert len(_frame(store, method)) == 2 * 20, method  # 2 subjects x 20 held-out items, parsed or not
    trait = rehearsal["tmp"] / "results" / "trait"
    generated = {p.relative_to(trait).parts[0]: p for p in trait.glob("*/gen/**/*.csv")}
    assert len(generated) == 3, "every TRAIT model answers in free text (the refusal measure)"
    assert "text" in pd.read_csv(next(iter(generated.values()))).columns


@pytest.mark.rehearsal
def test_an_interrupted_run_resumes_without_recomputing(rehearsal):
    first, second = rehearsal["first"], rehearsal["second"]
    assert "units already done, reused" in first  # the cost and transfer chapters reuse the alignment fits
    assert "03_cost | [alignment]" in first and "05_transfer | [alignment]" in first
    assert "written without its meta file (interrupted); it is not used and will be recomputed" in second
    recomputed = [line for line in second.splitlines() if "elapsed" in line and "03_cost | [alignment]" in line]
    assert len(recomputed) == 1 and "dpo[corrected] on subject" in recomputed[0], recomputed
    assert "1 of 2 units already done, reused" in second  # PAS reused, DPO recomputed
    assert "2 of 2 units already done, reused" in second  # PAlign's PAS on both subjects
    assert rehearsal["interrupted"].exists()


def test_dpo_trains_a_bfloat16_model_as_it_does_on_cuda(tmp_path, monkeypatch):
    """DPO's CUDA branch (no float32 copy: the bf16 model trains as it is) on the CPU, with a tiny Llama-3."""
    import numpy as np
    import torch
    from methods_fixtures import papi_items, per_domain
    from tiny_models import torch_threads

    from persona import papi
    from persona.engine import Engine
    from persona.models import load_model
    from persona.papi.methods.dpo import DPO, DPOSettings

    known, heldout = papi_items()
    folder = save_tiny_llama(tmp_path / "tiny", llama3_tokenizer(()), eos_tokens=STOP_TOKENS, favour=LABELS)
    with torch_threads(1):
        model, tok = load_model(str(folder), dtype="bfloat16")
        before = {k: v.clone() for k, v in model.state_dict().items()}
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # what DPO asks before training in float32
        engine = Engine(model, tok)
        method = DPO(engine, settings=DPOSettings(learning_rates=(1e-2,), max_steps=2, eval_every=1, batch_size=16))
        subject = papi.load_subjects(limit=1)[0]
        method._encode(subject, per_domain(known, 4))
        method._inject()
        assert {p.dtype for n, p in engine.model.named_parameters() if "lora_" not in n} == {torch.bfloat16}
        method.release()
        method.fit(subject, per_domain(known, 4))
        trained = [t for t in method.trace if t["phase"] == "search" and t["step"] > 0]
        assert trained and all(np.isfinite(t["loss"]) for t in trained)
        assert np.isfinite(method.answer(per_domain(heldout, 1)).probs).all()
        method.release()
    after = engine.model.state_dict()
    assert engine.model.dtype == torch.bfloat16 and all(torch.equal(after[k], before[k]) for k in before)


# --------------------------------------------------------------------------------------------------
# Found by rehearsing on Llama-3's tokenization: "(A" is one token there, so the answer cue adapts

def test_dpo_pairs_on_a_llama3_vocabulary_with_letter_tokens(tmp_path):
    from methods_fixtures import papi_items, per_domain
    from tiny_models import torch_threads

    from persona import papi
    from persona.engine import Engine
    from persona.models import load_model
    from persona.papi.methods.dpo import DPO

    known, _ = papi_items()
    tokenizer = llama3_tokenizer((), letter_tokens=True)
    assert len(tokenizer("(A", add_special_tokens=False)["input_ids"]) == 1
    with torch_threads(1):
        model, tok = load_model(str(save_tiny_llama(tmp_path / "tiny", tokenizer, eos_tokens=STOP_TOKENS)),
                                dtype="bfloat16")
        engine = Engine(model, tok)
        rows, pairs = DPO(engine)._encode(papi.load_subjects(limit=1)[0], per_domain(known, 2))
    from persona.papi.prompts import answer_cue

    assert answer_cue(tok) == ""  # no "(" cue for this tokenizer: the model's own "(A" token is the answer
    assert {tok.decode([p.chosen]) for p in pairs} <= {"(A", "(B", "(C", "(D", "(E"} and len(pairs) > 0
    merged = tok("(A", add_special_tokens=False)["input_ids"][0]
    assert merged in engine.label_token_ids(("A", "B", "C", "D", "E"))[0]  # scoring counts "(A" as the label A
