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
    from tiny_models import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def tok():
    """The tiny in-memory tokenizer of ``tiny_models`` (chat template included)."""
    from tiny_models import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture
def umask():
    """``umask(0o022)`` sets the process umask for one test; the old one is restored after it."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def mode(path) -> int:
    """The permission bits of ``path`` (0o644 for rw-r--r--)."""
    return Path(path).stat().st_mode & 0o777


@pytest.fixture
def deny_reading(monkeypatch):
    """``deny_reading(path)``: opening ``path`` fails as it does for a file of another user's without read
    permission (these tests may run as root, whom ``chmod 000`` does not stop)."""
    import builtins
    import io

    denied: set[str] = set()
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) in denied:
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    return lambda path: denied.add(os.path.abspath(path))
