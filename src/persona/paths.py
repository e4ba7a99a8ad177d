"""Where the study keeps what it downloads or builds, overridable by environment variables.

``PERSONA_CACHE_DIR``   root of the user cache (default ``~/.cache/persona``)
``PERSONA_DATA_MIRROR`` a folder laid out like ``data/manifest.json`` names (``papi/...``, ``trait/...``)
``PERSONA_MODEL_DIR``   where converted models are stored (default ``<cache>/models``)
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def shown(path: str | os.PathLike) -> str:
    """A path as a log or a message shows it: relative to the repository when inside it, so that no
    machine's own folders reach a notebook, a page or a log a reader sees."""
    try:
        return Path(path).resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def cache_dir() -> Path:
    """Root of the per-user cache; created on demand."""
    root = Path(os.environ.get("PERSONA_CACHE_DIR", Path.home() / ".cache" / "persona")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def data_cache_dir() -> Path:
    path = cache_dir() / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def model_cache_dir() -> Path:
    path = Path(os.environ.get("PERSONA_MODEL_DIR", cache_dir() / "models")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_mirror() -> Path | None:
    """The mirror folder named by ``PERSONA_DATA_MIRROR``, or None when unset."""
    value = os.environ.get("PERSONA_DATA_MIRROR")
    return Path(value).expanduser() if value else None


def results_dir(*parts: str) -> Path:
    """Where experiments write resumable results (``PERSONA_RESULTS_DIR``, default ``<repo>/results``)."""
    root = Path(os.environ.get("PERSONA_RESULTS_DIR", REPO_ROOT / "results")).expanduser()
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
