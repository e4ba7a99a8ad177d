"""Before loading: will the model fit the device, and is there a GPU for it (clear messages, no heavy work).

``preflight`` (which the runbook runs for every model of a profile before the first notebook) makes every
check ``load_model`` makes, without loading: the model can be had (``locate``); a model of a billion
parameters or more needs a CUDA GPU unless float32 is asked for explicitly; the memory it needs
(parameters x bytes x 1.3, plus a training step's activations where DPO runs) must fit the GPU's free
memory (else the message names the batch sizes to lower, or a larger GPU or smaller model). Also here:
the device and dtype policy (``resolve_device``, ``default_dtype``, ``parse_dtype``).
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass

import torch

from persona.models.embedded import EMBEDDED
from persona.models.errors import ModelError
from persona.models.hub import locate


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
