"""Fetch the study's third-party data files by name and sha256.

Resolution order for a manifest name such as ``papi/Test-set.json``:
1. the user cache (``<PERSONA_CACHE_DIR>/data/<name>``), if its checksum matches;
2. the mirror folder ``PERSONA_DATA_MIRROR`` (copied into the cache after verification);
3. upstream: a pinned raw URL, or the Hugging Face hub for hub datasets (gated ones need ``HF_TOKEN``).

A file whose checksum does not match is never used and never kept. Every failure raises
``DataError`` whose message names the real cause and the fix: a mirror variable pointing nowhere,
a mirror lacking the file (and whether upstream was tried), a missing Python package (with its
install command), an unreachable network, a gated hub dataset without access, a checksum mismatch, a
file of the mirror or cache that this user may not read (cached files are written as readable as the
umask allows, ``persona.files``, so that a cache can serve a colleague as a mirror).
Nothing here is committed to the repository.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from persona.files import atomic_path
from persona.paths import REPO_ROOT, data_cache_dir, data_mirror

MANIFEST_PATH = REPO_ROOT / "data" / "manifest.json"
MIRROR_VARIABLE = "PERSONA_DATA_MIRROR"

# import name -> distribution name, for install commands of the packages that upstream builds need
_DISTRIBUTIONS = {"python_calamine": "python-calamine", "datasets": "datasets", "pandas": "pandas"}


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


def _mirror_hint(name: str) -> str:
    return (f"Set {MIRROR_VARIABLE} to a folder holding '{name}' (laid out as data/manifest.json names: "
            f"papi/..., trait/...).")


def _fix_hint(entry: DataFile) -> str:
    return (
        f"Delete it and fetch again, or point {MIRROR_VARIABLE} at a folder holding an intact "
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
    """Copy ``source`` to a temp file next to ``target``, verify, then move it into place (``persona.files``:
    atomic, and readable as the umask allows, so that this cache can serve a colleague as a mirror)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
        _verify(tmp, entry, origin)
    return target


def _permission_error(name: str, exc: PermissionError) -> DataError:
    """One line naming the file that could not be read or written, and the fix."""
    path = Path(exc.filename) if exc.filename else None
    mirror = data_mirror()
    if path is not None and mirror is not None and path.is_relative_to(mirror):
        fix = (f"ask the mirror's owner to make it readable (chmod -R g+rX {mirror}), or point {MIRROR_VARIABLE} at "
               f"a folder you can read")
    else:
        folder = path.parent if path is not None else "the cache"
        fix = (f"ask the owner of {folder} to make it readable and writable to you (chmod -R g+rwX), or set "
               f"PERSONA_CACHE_DIR to a cache of your own")
    return DataError(f"Cannot fetch '{name}': permission denied on {path or exc}; {fix}.")


def install_command(distribution: str) -> str:
    """``pip install <distribution>==<pin>`` with the pin of pyproject.toml when it has one."""
    try:
        import tomllib

        pins = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    except Exception:  # no pyproject (installed as a wheel) or Python 3.10: fall back to the bare name
        pins = []
    for pin in pins:
        if pin.partition("==")[0].strip().lower() == distribution.lower():
            return f"pip install {pin}"
    return f"pip install {distribution}"


def _missing_package(entry: DataFile, module: str) -> DataError:
    distribution = _DISTRIBUTIONS.get(module, module.replace("_", "-"))
    return DataError(
        f"Building '{entry.name}' from upstream needs the Python package '{distribution}', which is not "
        f"installed. Install it with:\n    {install_command(distribution)}\n(or reinstall the project: "
        f"pip install -e .). {_mirror_hint(entry.name)}"
    )


def _require(entry: DataFile, module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise _missing_package(entry, module)


def _download_url(entry: DataFile, dest: Path) -> None:
    request = urllib.request.Request(entry.source, headers={"User-Agent": "persona-study"})
    with urllib.request.urlopen(request, timeout=60) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out)


def _build_trait_jsonl(entry: DataFile, dest: Path) -> None:
    """Rebuild the TRAIT jsonl from the (gated) hub dataset in the same serialisation as the mirror."""
    _require(entry, "datasets")
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
    """The UTF-8 CSV of the upstream .xls item key, read with pandas' calamine engine (python-calamine).

    Byte-identical to the CSV first made with pandas + xlrd (the manifest's checksum); xlrd's engine is
    deprecated in pandas 3 and calamine is its named successor."""
    _require(entry, "pandas")
    _require(entry, "python_calamine")
    import pandas as pd

    try:
        xls = fetch(entry.source)
    except DataError as exc:
        raise DataError(f"'{entry.name}' is built from '{entry.source}', which could not be had: {exc}") from exc
    frame = pd.read_excel(xls, engine="calamine")
    frame["Short#"] = frame["Short#"].astype("Int64")  # blank for items outside the 120-item short form
    frame.to_csv(dest, index=False, encoding="utf-8", lineterminator="\n")


def _chain(exc: BaseException):
    """``exc`` and the exceptions it was raised from or during (bounded)."""
    seen: list[BaseException] = []
    while exc is not None and len(seen) < 16 and all(exc is not s for s in seen):
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _http_status(exc: BaseException) -> int | None:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


_NETWORK_CLASSES = {"ConnectError", "ConnectTimeout", "NetworkError", "TimeoutException", "OfflineModeIsEnabled"}


def _is_network_error(exc: BaseException) -> bool:
    for e in _chain(exc):
        if isinstance(e, urllib.error.HTTPError) or _http_status(e) is not None:
            return False  # the server answered: the network works
        if isinstance(e, (urllib.error.URLError, socket.gaierror, socket.timeout, TimeoutError, ConnectionError)):
            return True
        names = _class_names(e)
        if names & _NETWORK_CLASSES or ("ConnectionError" in names and "requests" in type(e).__module__):
            return True
    return False


def _is_gated_refusal(exc: BaseException) -> bool:
    for e in _chain(exc):
        if "GatedRepoError" in _class_names(e) or "gated" in str(e).lower() or _http_status(e) in (401, 403):
            return True
    return False


def _upstream_error(entry: DataFile, exc: Exception) -> DataError:
    """A DataError naming why the upstream fetch of ``entry`` failed, and what to do."""
    where = f"upstream {entry.source}"
    for e in _chain(exc):
        if isinstance(e, ModuleNotFoundError) and e.name:
            return _missing_package(entry, e.name.partition(".")[0])
    if entry.gated and _is_gated_refusal(exc):
        repo = entry.source.removeprefix("hf://datasets/").partition("@")[0]
        token = "HF_TOKEN is set but was refused" if os.environ.get("HF_TOKEN") else "HF_TOKEN is not set"
        return DataError(
            f"Cannot fetch '{entry.name}': the hub dataset {repo} is gated and refused access ({token}). "
            f"Accept its terms on the dataset's hub page ({repo}) while logged in, then set HF_TOKEN to a "
            f"read token of that account and run again. {_mirror_hint(entry.name)}"
        )
    if _is_network_error(exc):
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
        why = ("HF_HUB_OFFLINE is set, so the hub was not contacted" if offline and entry.kind == "hf-dataset"
               else "the network is unreachable")
        gated = " It is gated: online, it also needs HF_TOKEN (see README)." if entry.gated else ""
        return DataError(
            f"Cannot fetch '{entry.name}' from {where}: {why} ({type(exc).__name__}: {exc}). "
            f"{_mirror_hint(entry.name)}{gated}"
        )
    status = next((s for s in map(_http_status, _chain(exc)) if s is not None), None)
    if status is not None:
        return DataError(
            f"Cannot fetch '{entry.name}': {where} answered HTTP {status} ({exc}). {_mirror_hint(entry.name)}"
        )
    return DataError(f"Cannot fetch '{entry.name}' from {where}: {type(exc).__name__}: {exc}. "
                     f"{_mirror_hint(entry.name)}")


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
        except Exception as exc:  # network, auth, missing optional package, HTTP error
            raise _upstream_error(entry, exc) from exc
        return _install(tmp, entry, f"upstream {entry.source}", target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _mirror() -> Path | None:
    """The mirror folder, or None when the variable is unset; a set variable naming no folder is an error."""
    mirror = data_mirror()
    if mirror is not None and not mirror.is_dir():
        what = "is not a folder" if mirror.exists() else "does not exist"
        raise DataError(
            f"{MIRROR_VARIABLE} is set to {mirror}, which {what}. Point it at a folder laid out as "
            f"data/manifest.json names (papi/..., trait/...), or unset it to fetch from upstream."
        )
    return mirror


def fetch(name: str, *, allow_upstream: bool = True) -> Path:
    """Return a verified local path for the manifest entry ``name`` (e.g. ``papi/Test-set.json``)."""
    files = manifest()
    if name not in files:
        raise DataError(f"Unknown data file '{name}'. Known: {', '.join(sorted(files))}")
    try:
        return _fetch(files[name], allow_upstream)
    except PermissionError as exc:  # e.g. a colleague's cache used as a mirror, its files not readable by others
        raise _permission_error(name, exc) from None


def _fetch(entry: DataFile, allow_upstream: bool) -> Path:
    name = entry.name
    target = data_cache_dir() / name
    if target.exists():
        if target.stat().st_size == entry.size and sha256_of(target) == entry.sha256:
            return target
        target.unlink()  # a corrupt cached copy is dropped, then fetched again
    mirror = _mirror()
    if mirror is not None:
        candidate = mirror / name
        if candidate.is_file():
            return _install(candidate, entry, f"mirror {candidate}", target)
    if not allow_upstream:
        where = (f"the mirror {mirror} ({MIRROR_VARIABLE}) has no '{name}'" if mirror is not None
                 else f"{MIRROR_VARIABLE} is not set")
        raise DataError(f"'{name}' is not in the cache and {where}; upstream was not tried (disabled).")
    try:
        return _from_upstream(entry, target)
    except DataError as exc:
        if mirror is None:
            raise
        raise DataError(f"The mirror {mirror} ({MIRROR_VARIABLE}) has no '{name}'; upstream was tried and "
                        f"failed: {exc}") from exc


def fetch_all(prefix: str = "") -> dict[str, Path]:
    """Fetch every manifest entry whose name starts with ``prefix`` (hub cache files skipped)."""
    return {
        name: fetch(name)
        for name, entry in manifest().items()
        if name.startswith(prefix) and entry.kind != "hf-cache"
    }
