"""Fetch the study's third-party data files by name and sha256.

Resolution order for a manifest name such as ``papi/Test-set.json``:
1. the user cache (``<PERSONA_CACHE_DIR>/data/<name>``), if its checksum matches;
2. the mirror folder ``PERSONA_DATA_MIRROR`` (copied into the cache after verification);
3. upstream: a pinned raw URL, or the Hugging Face hub for hub datasets (gated ones need ``HF_TOKEN``).

A file whose checksum does not match is never used and never kept: the error names the file, where
it came from and how to fix it. Nothing here is committed to the repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from persona.paths import REPO_ROOT, data_cache_dir, data_mirror

MANIFEST_PATH = REPO_ROOT / "data" / "manifest.json"


class DataError(RuntimeError):
    """A data file is missing, unreachable or corrupt."""


@dataclass(frozen=True)
class DataFile:
    name: str
    sha256: str
    size: int
    kind: str  # "url" | "derived" | "hf-dataset" | "hf-cache"
    source: str
    gated: bool
    description: str


def manifest(path: Path | None = None) -> dict[str, DataFile]:
    """All files the study uses, keyed by name."""
    entries = json.loads(Path(path or MANIFEST_PATH).read_text())["files"]
    return {e["name"]: DataFile(**e) for e in entries}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fix_hint(entry: DataFile) -> str:
    return (
        f"Delete it and fetch again, or point PERSONA_DATA_MIRROR at a folder holding an intact "
        f"'{entry.name}' (upstream: {entry.source})."
    )


def _verify(candidate: Path, entry: DataFile, origin: str) -> None:
    actual = sha256_of(candidate)
    if actual != entry.sha256:
        raise DataError(
            f"Checksum mismatch for data file '{entry.name}' from {origin}: expected sha256 "
            f"{entry.sha256}, got {actual}. The file was not used. {_fix_hint(entry)}"
        )


def _install(source: Path, entry: DataFile, origin: str, target: Path) -> Path:
    """Copy ``source`` to a temp file next to ``target``, verify, then move it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        shutil.copyfile(source, tmp)
        _verify(tmp, entry, origin)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _download_url(entry: DataFile, dest: Path) -> None:
    request = urllib.request.Request(entry.source, headers={"User-Agent": "persona-study"})
    with urllib.request.urlopen(request, timeout=60) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out)


def _build_trait_jsonl(entry: DataFile, dest: Path) -> None:
    """Rebuild the TRAIT jsonl from the (gated) hub dataset in the same serialisation as the mirror."""
    from datasets import load_dataset  # imported lazily: heavy and only needed upstream

    repo, revision = entry.source.removeprefix("hf://datasets/").split("@")
    token = os.environ.get("HF_TOKEN")  # never logged
    splits = load_dataset(repo, revision=revision, token=token)
    fields = ["personality", "question", "response_high1", "response_high2", "response_low1", "response_low2"]
    order = ["Openness", "Conscientiousness", "Extraversion", "Agreeableness", "Neuroticism",
             "Machiavellianism", "Narcissism", "Psychopathy"]
    with open(dest, "w", encoding="utf-8") as out:
        for split in order:
            for row, record in enumerate(splits[split]):
                obj = {"split": split, "row": row, **{f: record[f] for f in fields}}
                out.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _build_itemkey_csv(entry: DataFile, dest: Path) -> None:
    import pandas as pd

    xls = fetch(entry.source)
    frame = pd.read_excel(xls)  # needs xlrd
    frame["Short#"] = frame["Short#"].astype("Int64")
    frame.to_csv(dest, index=False)


def _from_upstream(entry: DataFile, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=target.parent))
    tmp = tmp_dir / Path(entry.name).name
    try:
        try:
            if entry.kind == "url":
                _download_url(entry, tmp)
            elif entry.kind == "hf-dataset":
                _build_trait_jsonl(entry, tmp)
            elif entry.kind == "derived":
                _build_itemkey_csv(entry, tmp)
            else:
                raise DataError(
                    f"'{entry.name}' is a hub cache file with no direct upstream URL; use "
                    f"'trait/trait_hf_8b31c078.derived.jsonl' or a mirror that holds it."
                )
        except DataError:
            raise
        except Exception as exc:  # network, auth, missing optional package
            gated = " It is gated: accept its terms on the hub and set HF_TOKEN." if entry.gated else ""
            raise DataError(
                f"Could not fetch '{entry.name}' from upstream {entry.source}: {exc!r}.{gated} "
                f"Offline? Set PERSONA_DATA_MIRROR to a folder holding '{entry.name}'."
            ) from exc
        return _install(tmp, entry, f"upstream {entry.source}", target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def fetch(name: str, *, allow_upstream: bool = True) -> Path:
    """Return a verified local path for the manifest entry ``name`` (e.g. ``papi/Test-set.json``)."""
    files = manifest()
    if name not in files:
        raise DataError(f"Unknown data file '{name}'. Known: {', '.join(sorted(files))}")
    entry = files[name]
    target = data_cache_dir() / name
    if target.exists():
        if target.stat().st_size == entry.size and sha256_of(target) == entry.sha256:
            return target
        target.unlink()  # a corrupt cached copy is dropped, then fetched again
    mirror = data_mirror()
    if mirror is not None:
        candidate = mirror / name
        if candidate.exists():
            return _install(candidate, entry, f"mirror {candidate}", target)
    if not allow_upstream:
        raise DataError(f"'{name}' is not in the cache or the mirror ({mirror}) and upstream is disabled.")
    return _from_upstream(entry, target)


def fetch_all(prefix: str = "") -> dict[str, Path]:
    """Fetch every manifest entry whose name starts with ``prefix`` (hub cache files skipped)."""
    return {
        name: fetch(name)
        for name, entry in manifest().items()
        if name.startswith(prefix) and entry.kind != "hf-cache"
    }
