"""Where the book's parts lie: the notebooks, the profiles, the executed copies and the rendered chapters.

Every module of the runner reads these folders here, at call time (``layout.NOTEBOOK_DIR``, never a copy
taken at import), so that setting them in this one module points the whole runner at another book (the
tests' fake book, a rehearsal's temporary folders).
"""

from __future__ import annotations

import logging
from pathlib import Path

from persona.paths import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
PROFILE_DIR = REPO_ROOT / "profiles"
GENERATED_DIR = REPO_ROOT / "book" / "generated"
EXECUTED_DIR = REPO_ROOT / "_build" / "executed"
#: The docname folder of the executed chapters in ``_toc.yml`` (relative to the book's root).
GENERATED_DOCS = "book/generated"

#: The runner's log (the kernels' output, one line each); its own progress lines go to stdout (``say``).
LOG = logging.getLogger("persona.runbook")


def say(message: str) -> None:
    print(f"[runbook] {message}", flush=True)


def profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def notebooks() -> list[Path]:
    """The book's chapters, in order: ``notebooks/NN_name.ipynb``."""
    return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def stems() -> list[str]:
    return [nb.stem for nb in notebooks()]


def executed_dir(profile_name: str) -> Path:
    return EXECUTED_DIR / profile_name
