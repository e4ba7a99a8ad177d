"""Every model the notebooks to execute will load, checked before the first of them runs.

The check of one model is ``persona.models.preflight`` (on disk or reachable, its size, whether it fits the
device in its dtype); this module only gathers what the notebooks will load, asks the device once, and
reports one line per model. Which models a notebook loads is the book's convention for its parameters: a
``model`` or a ``models`` list, in ``dtype``. How much a notebook trains is its study's business, not the
runner's: the notebook names the study's function in its metadata (``training_load``).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

from persona.runbook import layout
from persona.runbook.parameters import notebook_defaults

#: Notebook metadata ``{"persona": {"training": "module:function"}}``: the function takes the notebook's
#: parameters (a dict) and returns ``(tokens of one training batch, what to call that batch in a message)``,
#: ``(0, "")`` when those parameters train nothing.
TRAINING_HOOK = "training"
#: Notebook metadata ``{"persona": {"check": "module:function"}}``: the function takes the notebook's parameters
#: (its defaults overridden by the run's) and raises ``ValueError`` naming a bad one; it runs before any notebook.
CHECK_HOOK = "check"


def _hook(notebook: Path, kind: str):
    import nbformat

    hook = (nbformat.read(notebook, as_version=4).metadata.get("persona") or {}).get(kind)
    if not hook:
        return None
    module, _, name = str(hook).partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{layout.NOTEBOOK_DIR.name}/{notebook.name} names the {kind} hook '{hook}' in its "
                         f"metadata, which cannot be imported ({type(exc).__name__}: {exc})") from None


def check_parameters(notebook: Path, params: dict) -> None:
    """The notebook's own check of its parameters (``CHECK_HOOK``), before anything runs: a bad value stops the
    run with one line naming the parameter, not a kernel traceback after the model loaded."""
    function = _hook(notebook, CHECK_HOOK)
    if function is not None:
        try:
            function({**notebook_defaults(notebook), **params})
        except TypeError as exc:
            raise ValueError(str(exc)) from None


def models_to_load(notebook: Path, params: dict) -> list[tuple[str, str]]:
    """``(model, dtype)`` for every model the notebook loads with these parameters (its ``model`` and
    ``diagnostic_model``, or its ``models`` list; ``dtype`` its parameter, else "auto")."""
    merged = {**notebook_defaults(notebook), **params}
    names = [merged[key] for key in ("model", "diagnostic_model") if isinstance(merged.get(key), str)]
    names += [m for m in merged.get("models") or [] if isinstance(m, str)]
    dtype = merged.get("dtype") or "auto"
    return [(name, str(dtype)) for name in dict.fromkeys(names)]


def training_load(notebook: Path, params: dict) -> tuple[int, str]:
    """What the notebook's study says one training batch of this run holds (``TRAINING_HOOK``), from the
    notebook's defaults overridden by ``params``; ``(0, "")`` for a notebook that names no hook. A hook that
    cannot be imported, or that refuses the parameters, raises ValueError naming the notebook."""
    function = _hook(notebook, TRAINING_HOOK)
    if function is None:
        return 0, ""
    try:
        tokens, what = function({**notebook_defaults(notebook), **params})
    except TypeError as exc:  # a parameter of the wrong type: reported with the others, before any work
        raise ValueError(str(exc)) from None
    return int(tokens), str(what)


def kernel_device():
    """The device the notebooks' kernels will compute on, as ``persona.models.probe_device`` sees it. On a
    CUDA machine it is asked in a child process, so that this long-lived runner creates no CUDA context (and
    holds none of the GPU's memory) while the kernels run."""
    import torch

    from persona.models import Device, probe_device

    if not torch.cuda.is_available():
        return probe_device("cpu")
    code = "import json; from persona.models import probe_device as p; print(json.dumps(p('cuda').__dict__))"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
        return Device(**json.loads(done.stdout.strip().splitlines()[-1]))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError, TypeError):
        layout.say("could not read the GPU's free memory; the memory check is skipped")
        return Device("cuda", torch.cuda.get_device_name())


def check_models(runs: list[tuple[Path, dict]], device=None) -> list[str]:
    """Check every model the notebooks of ``runs`` will load with ``persona.models.preflight``, before any
    of them runs; returns one problem per model (or notebook) that fails, ``[]`` when all pass, and prints
    one line per model checked. Embedded models are small: only their package is checked, and no device
    is probed for them."""
    from persona import models
    from persona.models import preflight

    wanted: dict[tuple[str, str], list[str]] = {}
    training: dict[tuple[str, str], tuple[int, str]] = {}
    problems = []
    for notebook, params in runs:
        try:
            check_parameters(notebook, params)
            load = training_load(notebook, params)
        except ValueError as exc:
            problems.append(f"{notebook.stem}: {exc}")
            continue
        for pair in models_to_load(notebook, params):
            wanted.setdefault(pair, []).append(notebook.stem)
            training[pair] = max(training.get(pair, (0, "")), load)
    for (name, dtype), stems in wanted.items():
        where = ", ".join(stems)
        try:
            if name in models.BUILT_FROM:  # the book builds it from an embedded model: check that one's wheel
                models._package_dir(models.EMBEDDED[models.BUILT_FROM[name]])
                continue
            if name in models.EMBEDDED:
                models._package_dir(models.EMBEDDED[name])
                continue
            device = device or kernel_device()
            tokens, what = training[(name, dtype)]
            found = preflight(name, device, dtype, training_tokens=tokens, training_what=what or "training")
        except (models.ModelError, ValueError) as exc:
            problems.append(f"{where}: {exc}")
            continue
        free = f" of {device.free_bytes / 1e9:.0f} GB free on {device.name}" if device.free_bytes else ""
        need = f"needs about {found['needed_bytes'] / 1e9:.1f} GB{free}" if found["needed_bytes"] else "size unknown"
        layout.say(f"{where}: model {name} ({models.size_text(found['parameters'])}) in "
                   f"{str(found['dtype']).removeprefix('torch.')} on {device.type}: {need}")
    return problems
