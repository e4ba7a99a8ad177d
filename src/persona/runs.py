"""Resumable experiment results: one file per finished (subject, method) unit, written atomically.

A long run (300 subjects x several methods) must survive interruption without recomputing or
duplicating work. Each unit's tidy rows go to ``<root>/<method>/<subject>.csv`` through a temporary
file and an atomic ``os.replace``, so a file either exists complete or not at all; the run asks
``done`` before computing a unit, and ``load`` concatenates whatever exists. A ``run.json`` next to the
results records the parameters; resuming with different parameters is refused rather than mixing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

_SAFE = re.compile(r"[^A-Za-z0-9_.=-]+")


def _safe(name: object) -> str:
    return _SAFE.sub("_", str(name))


class ResultStore:
    """Per-(method, subject) result files under ``root``; see the module docstring."""

    def __init__(self, root: str | os.PathLike, params: dict | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        if params is not None:
            self._check_params(params)

    def _check_params(self, params: dict) -> None:
        path = self.root / "run.json"
        text = json.dumps(params, sort_keys=True, default=str)
        if path.exists():
            if json.dumps(json.loads(path.read_text()), sort_keys=True, default=str) != text:
                raise ValueError(
                    f"{path} was written with other parameters; use a new results folder or delete it to rerun"
                )
        else:
            _atomic_write(path, json.dumps(params, sort_keys=True, indent=1, default=str))

    def path(self, method: str, subject: object) -> Path:
        return self.root / _safe(method) / f"{_safe(subject)}.csv"

    def done(self, method: str, subject: object) -> bool:
        return self.path(method, subject).exists()

    def save(self, method: str, subject: object, frame: pd.DataFrame) -> Path:
        target = self.path(method, subject)
        target.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(target, frame.to_csv(index=False))
        return target

    def load(self, methods: Iterable[str] | None = None) -> pd.DataFrame:
        wanted = None if methods is None else {_safe(m) for m in methods}
        frames = [
            pd.read_csv(p)
            for p in sorted(self.root.glob("*/*.csv"))
            if wanted is None or p.parent.name in wanted
        ]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def run(
        self,
        method: str,
        subjects: Iterable[object],
        compute: Callable[[object], pd.DataFrame],
        *,
        key: Callable[[object], object] = lambda s: s,
    ) -> int:
        """Compute and save every subject not yet done; returns how many were computed now."""
        computed = 0
        for subject in subjects:
            sid = key(subject)
            if self.done(method, sid):
                continue
            self.save(method, sid, compute(subject))
            computed += 1
        return computed


def code_fingerprint(*modules: str) -> str:
    """Short hash of the source files of the given modules/packages (e.g. ``"persona.methods"``).

    Put it in a run's parameters (or folder name) so that results computed by older code are never
    resumed as if they were current.
    """
    import importlib.util

    digest = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ValueError(f"cannot locate module {name!r}")
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for path in files:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def params_folder(root: str | os.PathLike, params: dict) -> Path:
    """``root/<hash of params>``: one results folder per distinct configuration."""
    text = json.dumps(params, sort_keys=True, default=str)
    return Path(root) / hashlib.sha256(text.encode()).hexdigest()[:12]


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
