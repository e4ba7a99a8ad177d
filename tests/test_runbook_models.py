"""The runner's model check (``persona.runbook.model_check``): what the notebooks will load, asked of
``persona.models.preflight`` once per model with a fake device, and what a study says a notebook trains.
Nothing is loaded: the models are config files only."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from persona import runbook
from persona.runbook import model_check

LLAMA3_8B = dict(model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                 num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False)


def _notebook(folder: Path, source: str, metadata: dict | None = None) -> Path:
    nb = new_notebook(cells=[new_code_cell(source, metadata={"tags": ["parameters"]})], metadata=metadata or {})
    path = folder / "02_model.ipynb"
    nbformat.write(nb, path)
    return path


def _config_only(folder: Path, **config) -> str:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def test_models_to_load_reads_the_parameters_and_the_notebooks_defaults(tmp_path):
    nb = _notebook(tmp_path, 'model = "smollm2-135m-instruct"\ndtype = "auto"\nbatch_size = 8\n')
    assert runbook.models_to_load(nb, {}) == [("smollm2-135m-instruct", "auto")]
    assert runbook.models_to_load(nb, {"model": "/m/x", "dtype": "bfloat16"}) == [("/m/x", "bfloat16")]
    trait = _notebook(tmp_path, 'models = ["a", "b"]\ndetail_models = None\n')
    assert runbook.models_to_load(trait, {"models": ["a", "b", "a"]}) == [("a", "auto"), ("b", "auto")]


def test_preflight_without_a_gpu_refuses_an_8b_model_in_bfloat16_naming_the_fixes(tmp_path):
    from persona.models import Device

    nb = _notebook(tmp_path, 'model = "m"\ndtype = "auto"\n')
    big = _config_only(tmp_path / "llama3-8b", **LLAMA3_8B)
    cpu = Device("cpu", "test cpu", None, 512 * 10**9)
    (problem,) = runbook.check_models([(nb, {"model": big, "dtype": "bfloat16"})], device=cpu)
    assert problem.startswith(f"02_model: Model '{big}' (8.0 B parameters) would run in bfloat16 on the CPU: torch "
                              f"sees no CUDA GPU")
    for fix in ("run on a machine with a CUDA GPU", "--profile cpu", "--param dtype=float32", "-p dtype float32"):
        assert fix in problem
    # dtype auto on a machine without CUDA: float32, but still an 8B model without a GPU
    assert "would run in float32 on the CPU" in runbook.check_models([(nb, {"model": big})], device=cpu)[0]
    # asked for explicitly, float32 on the CPU is a deliberate (slow) choice: allowed when the RAM suffices
    assert runbook.check_models([(nb, {"model": big, "dtype": "float32"})], device=cpu) == []


def test_preflight_on_a_gpu_with_too_little_memory_names_what_to_change(tmp_path, capsys):
    from persona.models import Device

    nb = _notebook(tmp_path, 'model = "m"\ndtype = "auto"\n')
    big = _config_only(tmp_path / "llama3-8b", **LLAMA3_8B)
    small = Device("cuda", "Fake GPU 12GB", 11 * 10**9, 12 * 10**9)
    (problem,) = runbook.check_models([(nb, {"model": big})], device=small)  # auto on CUDA: bfloat16
    assert "needs about 20.9 GB of GPU memory in bfloat16" in problem and "11.0 GB free of 12.0 GB" in problem
    assert "The weights alone do not fit" in problem and "a smaller model" in problem
    tight = Device("cuda", "Fake GPU 20GB", 19 * 10**9, 20 * 10**9)
    (problem,) = runbook.check_models([(nb, {"model": big})], device=tight)
    assert "lower `batch_size` and `dpo_batch_size`" in problem
    # a notebook that trains DPO: its batch's activations count too (the alignment chapter at dpo_batch_size 16)
    dpo = _notebook(tmp_path, 'model = "m"\ndtype = "auto"\ndpo_method = "dpo[corrected]"\ndpo_batch_size = 8\n',
                    metadata={"persona": {"training": "persona.papi.experiment:training_load"}})
    card = Device("cuda", "Fake GPU 24GB", int(23.6e9), 24 * 10**9)
    assert runbook.check_models([(dpo, {"model": big, "dpo_batch_size": 4})], device=card) == []
    (problem,) = runbook.check_models([(dpo, {"model": big, "dpo_batch_size": 16})], device=card)
    assert "plus 14.4 GB for DPO's backward pass at dpo_batch_size 16" in problem
    assert "Scoring fits" in problem and "--param dpo_batch_size=4" in problem
    assert runbook.training_load(dpo, {"dpo_method": None}) == (0, "")
    roomy = Device("cuda", "Fake GPU 80GB", 79 * 10**9, 80 * 10**9)
    assert runbook.check_models([(nb, {"model": big})], device=roomy) == []
    assert "02_model: model " in capsys.readouterr().out


def test_the_notebooks_that_train_ask_their_study_how_large_a_dpo_batch_is():
    """The runner knows no DPO parameter: a notebook that can train names its study's function in its
    metadata (persona.papi.experiment.training_load), which reads the notebook's own parameters."""
    from persona.papi.experiment import DPO_PROMPT_TOKENS

    real = {nb.stem: nb for nb in runbook.notebooks()}
    hooked = {stem for stem, nb in real.items()
              if (nbformat.read(nb, as_version=4).metadata.get("persona") or {}).get(model_check.TRAINING_HOOK)}
    assert hooked == {"02_alignment", "03_cost", "05_transfer"}  # the notebooks whose parameters hold dpo_method
    for stem in hooked:
        assert runbook.training_load(real[stem], {"dpo_batch_size": 16}) == (
            16 * DPO_PROMPT_TOKENS, "DPO's backward pass at dpo_batch_size 16")
        assert runbook.training_load(real[stem], {"dpo_method": None}) == (0, "")
    assert runbook.training_load(real["04_trait"], {}) == (0, "")  # names no hook: trains nothing


def test_a_study_that_refuses_the_parameters_or_a_missing_hook_stops_the_check(tmp_path):
    nb = _notebook(tmp_path, 'model = "smollm2-135m-instruct"\ndpo_method = "dpo[corrected]"\ndpo_batch_size = 8\n',
                   metadata={"persona": {"training": "persona.papi.experiment:training_load"}})
    assert runbook.check_models([(nb, {"dpo_batch_size": 0})]) == [
        "02_model: dpo batch_size must be an integer >= 1, got 0"]
    assert runbook.check_models([(nb, {"dpo_batch_size": "8"})]) == [
        "02_model: dpo batch_size must be an integer >= 1, got '8'"]
    nbformat.write(new_notebook(cells=nbformat.read(nb, as_version=4).cells,
                                metadata={"persona": {"training": "persona.papi.experiment:no_such_hook"}}), nb)
    (problem,) = runbook.check_models([(nb, {})])
    assert problem.startswith("02_model: ") and "training hook 'persona.papi.experiment:no_such_hook'" in problem


def test_preflight_names_a_hub_model_missing_offline_and_probes_no_device_for_embedded_ones(tmp_path, monkeypatch):
    from huggingface_hub import constants

    nb = _notebook(tmp_path, 'model = "m"\ndtype = "auto"\n')
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    probed = []
    monkeypatch.setattr(model_check, "kernel_device", lambda: probed.append(1) or __import__("persona.models").models.Device("cpu"))
    assert runbook.check_models([(nb, {"model": "smollm2-135m-instruct", "dtype": "bfloat16"})]) == [] and not probed
    (problem,) = runbook.check_models([(nb, {"model": "meta-llama/Meta-Llama-3-8B-Instruct", "dtype": "bfloat16"})])
    assert "it is not in the local hub cache, and the hub is offline (HF_HUB_OFFLINE=1)" in problem
    assert "hf auth login" in problem and "HF_TOKEN" in problem and "--param model=/path/to/folder" in problem
    assert "Also: " in problem and "torch sees no CUDA GPU" in problem  # what the next run would meet on this machine


def test_the_device_is_probed_in_a_child_process_on_cuda(monkeypatch):
    import torch

    from persona.models import Device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    reply = json.dumps({"type": "cuda", "name": "Fake H100", "free_bytes": 70 * 10**9, "total_bytes": 80 * 10**9})
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout=f"noise\n{reply}\n", stderr="")

    monkeypatch.setattr(model_check.subprocess, "run", fake_run)
    assert runbook.kernel_device() == Device("cuda", "Fake H100", 70 * 10**9, 80 * 10**9)
    assert "probe_device" in calls[0][-1]


@pytest.mark.parametrize("stem, bad, named", [
    ("01_papi_data", {"n_subjects": -5}, "n_subjects"),
    ("01_papi_data", {"n_boot": 0}, "n_boot"),
    ("02_alignment", {"control_alphas": []}, "control_alphas"),
    ("03_cost", {"n_boot": -5}, "n_boot"),
    ("04_trait", {"models": "smollm2-135m-instruct"}, "models must be a list"),
    ("04_trait", {"n_boot": 0}, "n_boot"),
    ("05_transfer", {"transfer_per_trait": 0}, "per_trait"),
])
def test_every_notebook_checks_its_parameters_before_anything_runs(stem, bad, named):
    """A bad parameter of any chapter stops the run with one line naming it, before a model loads (chapter 01
    used to run on 295 subjects with n_subjects=-5, and n_boot=0 gave [nan, nan] intervals)."""
    from persona.runbook import layout, model_check

    notebook = layout.NOTEBOOK_DIR / f"{stem}.ipynb"
    problems = model_check.check_models([(notebook, bad)], device="unused: the check fails first")
    assert len(problems) == 1 and problems[0].startswith(f"{stem}: ") and named in problems[0]
    assert "\n" not in problems[0]
