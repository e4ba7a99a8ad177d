"""Shared fixtures. Tests never touch the user's cache: each session gets its own cache folder,
except for converted models, which are reused from the configured cache (converting takes ~30 s)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """A fresh, empty data cache for one test."""
    monkeypatch.setenv("PERSONA_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def mirror_or_skip() -> Path:
    """The data mirror named by PERSONA_DATA_MIRROR (CI sets it); tests that need data skip without it."""
    value = os.environ.get("PERSONA_DATA_MIRROR")
    if not value or not Path(value).is_dir():
        pytest.skip("PERSONA_DATA_MIRROR is not set to a folder holding the study's data")
    return Path(value)


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module of tiny-model tests (``pytest.mark.usefixtures("one_thread")``): they
    run tens of times faster than on several threads contending on a loaded machine."""
    from persona.engine.testing import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def tok():
    """The tiny in-memory tokenizer of ``persona.engine.testing`` (chat template included)."""
    from persona.engine.testing import tiny_tokenizer

    return tiny_tokenizer()
