"""What a model name means, and whether a hub model can be had before anything is loaded.

A name is an embedded short name (``persona.models.embedded``), an existing local folder, or a hub id
(``meta-llama/Meta-Llama-3-8B-Instruct``), which ``from_pretrained`` resolves. ``locate`` also checks that
a hub id can be had: in the local hub cache when the hub is offline (else the message names
`hf auth login` / HF_TOKEN / a local folder), or reachable and not refused. ``trust_remote_code`` is
never enabled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from persona.models.embedded import BUILT_FROM, EMBEDDED, embedded_path
from persona.models.errors import ModelError


def model_path(name_or_path: str) -> str:
    """The folder or hub id ``from_pretrained`` should load for ``name_or_path``."""
    if name_or_path in EMBEDDED:
        return str(embedded_path(EMBEDDED[name_or_path]))
    if name_or_path in BUILT_FROM:
        raise ModelError(f"'{name_or_path}' is built by the book from {BUILT_FROM[name_or_path]} (the alignment "
                         f"chapter's sandbox): open it with persona.papi.experiment.open_run, which builds, verifies "
                         f"and leak-checks it for the run's subjects.")
    local = Path(name_or_path).expanduser()
    if local.exists():
        return str(local)
    if name_or_path.count("/") == 1 and not name_or_path.startswith((".", "/")):
        return name_or_path  # a hub id, e.g. meta-llama/Meta-Llama-3-8B-Instruct
    raise ModelError(
        f"Unknown model '{name_or_path}': not an embedded name ({', '.join(EMBEDDED)}), "
        f"not an existing local folder, and not a hub id of the form 'owner/name'."
    )


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
