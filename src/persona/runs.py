"""Resumable, verified experiment results: the one loop that skips what is done, computes, and saves.

A long run (300 subjects x several methods, or thousands of TRAIT prompts) must survive interruption
without recomputing, duplicating or silently corrupting work. Work is cut into *units* (a method on one
subject, a shard of prompts); each finished unit is two files under the store's folder::

    <root>/run.json                 the parameters and the code fingerprint that made every unit here
    <root>/<group>/<key>.csv        the unit's tidy rows
    <root>/<group>/<key>.meta.json  its rows, the sha256 of the csv, and the hash of run.json

Both are written through a temporary file and an atomic ``os.replace`` (csv first, then meta; readable as the
umask allows, ``persona.files``), and only
units with a meta file are ever read, so a half-written or leftover temporary file is never a result.
Before a unit is reused it is verified (meta present, checksum, row count, same run); a unit that fails
is reported by path, deleted and recomputed. Opening a folder whose ``run.json`` names other
parameters or other code is refused, with the fix named: results of older code are never resumed. A
damaged ``run.json`` is refused as damaged, and the units beside it are kept (each names its run's hash).
``resume`` is the loop every experiment uses; it logs each unit with an estimate of the time left.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pandas as pd

from persona.files import atomic_write as _atomic_write
from persona.paths import shown

_SAFE = re.compile(r"[^A-Za-z0-9_.=-]+")


def _safe(name: object) -> str:
    return _SAFE.sub("_", str(name))


def _digest(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def log(message: str) -> None:
    """Progress for a person reading a log: stderr, flushed (hidden in the rendered book by cell tags)."""
    print(message, file=sys.stderr, flush=True)


class ResultStore:
    """Verified per-unit result files under ``root``; see the module docstring."""

    def __init__(self, root: str | os.PathLike, params: dict, *, code: str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        record = {"params": params, "code": code}
        text = json.dumps(record, sort_keys=True, indent=1, default=str)
        path = self.root / "run.json"
        self.run_hash = _digest(text)[:16]
        if path.exists():
            old, damage = _read_run(path)
            if damage:
                raise ValueError(self._damaged(path, damage))
            if json.dumps(old, sort_keys=True, indent=1, default=str) != text:
                what = "other code" if old.get("params") == json.loads(text)["params"] else "other parameters"
                raise ValueError(
                    f"{shown(path)} was written by {what}; results are never mixed. Delete the folder "
                    f"{shown(self.root)} to recompute, or use another results folder."
                )
        else:
            _atomic_write(path, text)

    def _damaged(self, path: Path, damage: str) -> str:
        """The refusal for a damaged ``run.json``: which parameters wrote the folder is unknown, but each
        unit's meta file holds the hash of the run that made it, so the units are kept and the user is told
        how many of them these parameters would reuse once only ``run.json`` is written again."""
        runs = []
        for meta in self.root.glob("*/*.meta.json"):
            try:
                runs.append(json.loads(meta.read_text()).get("run"))
            except (OSError, ValueError, AttributeError):
                runs.append(None)
        ours = sum(run == self.run_hash for run in runs)
        return (f"{shown(path)} is damaged ({damage}); the {len(runs)} stored unit(s) beside it are kept, "
                f"{ours} of them made by these parameters and code. Delete only {shown(path)} and run again: it is "
                f"written anew, every unit is verified against it (each records the hash of the parameters that "
                f"made it), those made by these parameters are reused and any other is recomputed.")

    def path(self, group: str, key: object) -> Path:
        return self.root / _safe(group) / f"{_safe(key)}.csv"

    def _meta_path(self, group: str, key: object) -> Path:
        return self.path(group, key).with_suffix(".meta.json")

    def _problem(self, group: str, key: object, expected_rows: int | None) -> str | None:
        """Why the stored unit cannot be used, or None when it is intact; '' when it does not exist."""
        csv, meta_path = self.path(group, key), self._meta_path(group, key)
        if not meta_path.exists():
            return "" if not csv.exists() else "written without its meta file (interrupted)"
        try:
            meta = json.loads(meta_path.read_text())
            data = csv.read_bytes()
        except PermissionError as exc:  # someone else's result: never deleted, never recomputed over
            raise ValueError(
                f"Cannot read {shown(Path(exc.filename or csv))}: permission denied. Ask its owner to make the "
                f"results folder readable (chmod -R g+rX {shown(self.root)}), or use a results folder of your own "
                f"(PERSONA_RESULTS_DIR).") from None
        except (OSError, json.JSONDecodeError) as exc:
            return f"unreadable ({exc.__class__.__name__})"
        if meta.get("run") != self.run_hash:
            return "made by another run (other parameters or code)"
        if _digest(data) != meta.get("sha256"):
            return "its contents changed since it was written (checksum mismatch)"
        if expected_rows is not None and meta.get("rows") != expected_rows:
            return f"holds {meta.get('rows')} rows, {expected_rows} expected"
        return None

    def done(self, group: str, key: object, expected_rows: int | None = None) -> bool:
        """True when the unit is stored and verified; a damaged unit is reported, removed, and False."""
        problem = self._problem(group, key, expected_rows)
        if problem is None:
            return True
        if problem:
            log(f"[results] {shown(self.path(group, key))}: {problem}; it is not used and will be recomputed")
            self.path(group, key).unlink(missing_ok=True)
            self._meta_path(group, key).unlink(missing_ok=True)
        return False

    def save(self, group: str, key: object, frame: pd.DataFrame, expected_rows: int | None = None) -> Path:
        if expected_rows is not None and len(frame) != expected_rows:
            raise ValueError(f"unit {group}/{key} computed {len(frame)} rows, {expected_rows} expected")
        target = self.path(group, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = frame.to_csv(index=False)
        _atomic_write(target, data)
        meta = {"rows": len(frame), "sha256": _digest(data.encode("utf-8")), "run": self.run_hash}
        _atomic_write(self._meta_path(group, key), json.dumps(meta))
        return target

    def read(self, group: str, key: object) -> pd.DataFrame:
        """One verified unit (raises naming the path when it is missing or damaged)."""
        problem = self._problem(group, key, None)
        if problem is not None:
            raise ValueError(f"{self.path(group, key)}: {problem or 'missing'}")
        return pd.read_csv(self.path(group, key))

    def keys(self, group: str) -> list[str]:
        """Keys of the verified units of ``group`` (leftover temporary files are never listed)."""
        folder = self.root / _safe(group)
        names = sorted(p.name[: -len(".meta.json")] for p in folder.glob("*.meta.json") if not p.name.startswith("."))
        return [k for k in names if self._problem(group, k, None) is None]

    def load(self, groups: Iterable[str]) -> pd.DataFrame:
        """Every verified unit of ``groups``, concatenated (an empty frame when there is none)."""
        frames = [self.read(g, k) for g in groups for k in self.keys(g)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@dataclass(frozen=True)
class Unit:
    """One piece of resumable work: ``compute()`` returns its rows (``rows`` of them, when known)."""

    group: str
    key: str
    compute: Callable[[], pd.DataFrame]
    rows: int | None = None
    label: str = ""


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def resume(store: ResultStore, units: Sequence[Unit], *, desc: str) -> pd.DataFrame:
    """The one resumable loop: reuse verified units, compute and save the others, return all rows in order.

    Logs one line per computed unit with the elapsed time and an estimate of the time left (the mean
    time of the units computed so far times the units still to do).
    """
    todo = [u for u in units if not store.done(u.group, u.key, u.rows)]
    if len(todo) < len(units):
        log(f"[{desc}] {len(units) - len(todo)} of {len(units)} units already done, reused")
    start = time.perf_counter()
    for n, unit in enumerate(todo, start=1):
        store.save(unit.group, unit.key, unit.compute(), expected_rows=unit.rows)
        elapsed = time.perf_counter() - start
        left = elapsed / n * (len(todo) - n)
        log(f"[{desc}] {n}/{len(todo)} {unit.label or f'{unit.group} {unit.key}'}: "
            f"elapsed {_clock(elapsed)}, about {_clock(left)} left")
    frames = [store.read(u.group, u.key) for u in units]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def code_fingerprint(*modules: str) -> str:
    """Short hash of the source files of the given modules/packages (e.g. ``"persona.papi"``).

    Give it to a ``ResultStore`` (and put it in the folder's parameters) so that results computed by
    older code are never resumed as if they were current.
    """
    digest = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ValueError(f"cannot locate module {name!r}")
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for path in files:
            digest.update(path.relative_to(origin.parent).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def params_folder(root: str | os.PathLike, params: dict) -> Path:
    """``root/<hash of params>``: one results folder per distinct configuration."""
    text = json.dumps(params, sort_keys=True, default=str)
    return Path(root) / hashlib.sha256(text.encode()).hexdigest()[:12]


def _read_run(path: Path) -> tuple[dict, str]:
    """``(record, '')`` for an intact ``run.json``; ``({}, what is wrong)`` for a damaged one (unreadable,
    not JSON, or not the ``{"params": ..., "code": ...}`` record a store writes)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return {}, f"unreadable: {exc.__class__.__name__}"
    except json.JSONDecodeError as exc:
        return {}, f"not valid JSON: {exc.msg} at line {exc.lineno}"
    if not isinstance(record, dict) or set(record) != {"params", "code"}:
        return {}, "not the record of parameters and code a results folder holds"
    return record, ""

