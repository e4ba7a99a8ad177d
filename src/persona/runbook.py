"""Execute the book's notebooks with papermill for one profile, then render the book.

``python -m persona.runbook --profile cpu``          execute every notebook, then ``jupyter-book build``
``python -m persona.runbook --profile smoke --no-build``

Each notebook is executed into ``_build/executed/<profile>/`` with the parameters of its section
in ``profiles/<profile>.yaml``. A notebook is skipped when a fingerprint of (notebook source,
its parameters, the package source, the pinned dependencies) matches the previous execution, so an
unchanged book is not re-executed. The executed copies are then copied to ``book/generated/``,
which the book renders with ``execute_notebooks: off``. Provenance (profile, versions, data
checksums, timings, date) is written next to them for the intro page.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import yaml

from persona.paths import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
PROFILE_DIR = REPO_ROOT / "profiles"
GENERATED_DIR = REPO_ROOT / "book" / "generated"
PINNED = ["torch", "transformers", "trl", "peft", "pandas", "statsmodels", "pingouin", "seaborn",
          "papermill", "jupyter-book", "myst-nb"]


def load_profile(profile: str) -> dict:
    path = PROFILE_DIR / f"{profile}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
        raise SystemExit(f"Unknown profile '{profile}' (known: {known})")
    return yaml.safe_load(path.read_text()) or {}


def notebooks() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def declared_parameters(notebook: Path) -> str:
    """Source of the notebook's cell tagged ``parameters`` ('' when it has none)."""
    import nbformat

    if not Path(notebook).exists():
        return ""
    cells = nbformat.read(notebook, as_version=4).cells
    return "\n".join(c.source for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))


def parameters_for(profile: dict, notebook: Path) -> dict:
    """The notebook's own section, plus the book-wide ``model``/``profile`` where the notebook declares them."""
    params = dict(profile.get(notebook.stem) or {})
    book = profile.get("_book") or {}
    declared = declared_parameters(notebook)
    for name in ("model", "profile"):
        if name in book and name not in params and (not declared or f"{name} =" in declared):
            params[name] = book[name]
    return params


def fingerprint(notebook: Path, params: dict) -> str:
    digest = hashlib.sha256()
    digest.update(notebook.read_bytes())
    digest.update(json.dumps(params, sort_keys=True).encode())
    for path in sorted((REPO_ROOT / "src" / "persona").rglob("*.py")):
        digest.update(path.relative_to(REPO_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    digest.update((REPO_ROOT / "pyproject.toml").read_bytes())
    return digest.hexdigest()


def execute(profile_name: str, only: list[str] | None = None, force: bool = False) -> list[dict]:
    """Execute the notebooks of ``profile_name``; return one timing record per notebook."""
    import papermill as pm

    profile = load_profile(profile_name)
    out_dir = REPO_ROOT / "_build" / "executed" / profile_name
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for notebook in notebooks():
        if only and notebook.stem not in only:
            continue
        params = parameters_for(profile, notebook)
        stamp = out_dir / f"{notebook.stem}.json"
        target = out_dir / notebook.name
        key = fingerprint(notebook, params)
        previous = json.loads(stamp.read_text()) if stamp.exists() else {}
        if not force and target.exists() and previous.get("fingerprint") == key:
            print(f"[runbook] {notebook.name}: unchanged, not re-executed ({previous.get('seconds', 0):.0f} s last time)")
            records.append(previous)
            continue
        print(f"[runbook] executing {notebook.name} with profile '{profile_name}': {params}", flush=True)
        start = time.perf_counter()
        stamp.unlink(missing_ok=True)
        pm.execute_notebook(
            str(notebook), str(target), parameters=params, kernel_name="python3",
            cwd=str(NOTEBOOK_DIR), progress_bar=sys.stderr.isatty(), log_output=False,
        )
        record = {"notebook": notebook.name, "profile": profile_name, "parameters": params,
                  "seconds": round(time.perf_counter() - start, 1), "fingerprint": key,
                  "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        stamp.write_text(json.dumps(record, indent=1))
        records.append(record)
    return records


def publish(profile_name: str) -> None:
    """Copy the executed notebooks of a profile into ``book/generated`` and write provenance."""
    src = REPO_ROOT / "_build" / "executed" / profile_name
    shutil.rmtree(GENERATED_DIR, ignore_errors=True)
    GENERATED_DIR.mkdir(parents=True)
    records = []
    for notebook in notebooks():
        executed = src / notebook.name
        if not executed.exists():
            raise SystemExit(f"{notebook.name} has not been executed for profile '{profile_name}'")
        shutil.copyfile(executed, GENERATED_DIR / notebook.name)
        records.append(json.loads((src / f"{notebook.stem}.json").read_text()))
    write_provenance(profile_name, records)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def write_provenance(profile_name: str, records: list[dict]) -> None:
    from persona.data import manifest

    profile = load_profile(profile_name)
    lines = [
        f"| | |\n|---|---|",
        f"| profile | `{profile_name}` |",
        f"| default model | `{(profile.get('_book') or {}).get('model', '?')}` |",
        f"| built | {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC |",
        f"| machine | {platform.machine()}, {platform.python_implementation()} {platform.python_version()} |",
        "",
        "| notebook | parameters | run time (s) | finished |\n|---|---|---|---|",
    ]
    for r in records:
        params = ", ".join(f"{k}={v}" for k, v in r["parameters"].items())
        lines.append(f"| {r['notebook']} | {params} | {r['seconds']} | {r['finished']} |")
    lines += ["", "| package | version |\n|---|---|"]
    lines += [f"| {name} | {_version(name)} |" for name in PINNED]
    lines += ["", "| data file | sha256 |\n|---|---|"]
    lines += [f"| `{e.name}` | `{e.sha256[:16]}…` |" for e in manifest().values() if e.kind != "hf-cache"]
    (GENERATED_DIR / "provenance.md").write_text("\n".join(lines) + "\n")
    (GENERATED_DIR / "provenance.json").write_text(json.dumps(records, indent=1))


def build(output: Path, strict: bool) -> None:
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(REPO_ROOT), "--path-output", str(output)]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    print("[runbook]", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO_ROOT)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--only", nargs="*", help="notebook stems to execute (default: all)")
    parser.add_argument("--force", action="store_true", help="re-execute even when unchanged")
    parser.add_argument("--no-build", action="store_true", help="execute only, do not render")
    parser.add_argument("--strict", action="store_true", help="build with -W -n --keep-going")
    parser.add_argument("--output", default=None, help="book output folder (default _build or _build/<profile>)")
    args = parser.parse_args(argv)
    execute(args.profile, args.only, args.force)
    publish(args.profile)
    if not args.no_build:
        default = REPO_ROOT if args.profile == "cpu" else REPO_ROOT / "_build" / args.profile
        build(Path(args.output) if args.output else default, args.strict)


if __name__ == "__main__":
    main()
