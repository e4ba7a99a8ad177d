"""What a build records about itself: the code version, the run times, the packages, the data.

Each executed notebook's stamp carries its code version; the rendered book gets the tables of its
provenance page (``provenance.md``), the setup page's run times (``run_times.md``), one sentence for the
introduction (``summary.md``) and all of it as ``provenance.json``.
"""

from __future__ import annotations

import json
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Sequence

from persona.paths import REPO_ROOT
from persona.runbook.parameters import BOOK_SECTION, load_profile

#: The packages whose versions the provenance page lists.
PINNED = ["torch", "transformers", "peft", "pandas", "statsmodels", "pingouin", "seaborn",
          "papermill", "jupyter-book", "myst-nb"]


def code_version(repo: Path | None = None) -> dict:
    """``{"commit": <HEAD hash or None>, "dirty": <uncommitted changes? or None>}`` of the git checkout."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(repo or REPO_ROOT), *args], capture_output=True, text=True, timeout=120)

    try:
        head = git("rev-parse", "--verify", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        status = git("status", "--porcelain", "--untracked-files=normal")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def version_label(version: dict | None, short: bool = True) -> str:
    if not version or not version.get("commit"):
        return "unknown (not a git checkout)" if version else "not recorded"
    commit = version["commit"][:7] if short else version["commit"]
    return f"{commit} (dirty)" if version.get("dirty") else commit


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def run_times_table(profile_name: str, records: list[dict], missing: Sequence[str] = ()) -> str:
    """The setup page's table: each notebook's measured execution time in this build, and their sum."""
    lines = [f"| notebook (profile `{profile_name}`) | measured time | executed at |\n|---|---|---|"]
    total = 0.0
    for r in records:
        seconds = float(r.get("seconds") or 0.0)
        total += seconds
        lines.append(f"| {r.get('notebook')} | {seconds / 60:.1f} min | {version_label(r.get('code'))} |")
    lines += [f"| {stem}.ipynb | not executed | |" for stem in missing]
    lines.append(f"| **all notebooks** | **{total / 60:.1f} min** | |")
    return "\n".join(lines) + "\n"


def write_provenance(folder: Path, profile_name: str, records: list[dict], missing: Sequence[str] = ()) -> None:
    """``provenance.md`` (the tables of the provenance page), ``run_times.md``, ``summary.md`` (one
    sentence for the intro) and ``provenance.json`` in ``folder`` (the rendered chapters being prepared)."""
    from persona.datafiles import manifest
    from persona.models import EMBEDDED

    profile = load_profile(profile_name)
    version = code_version()
    built = datetime.now(timezone.utc)
    dirty = (" (dirty: the working tree had uncommitted changes, so this commit alone does not reproduce it)"
             if version["dirty"] else "")
    commit = f"git commit `{version['commit']}`{dirty}" if version["commit"] else "unknown (not a git checkout)"
    lines = [
        "| | |\n|---|---|",
        f"| profile | `{profile_name}` |",
        f"| code version | {commit} |",
        f"| built | {built:%Y-%m-%d %H:%M} UTC |",
        f"| default model | `{(profile.get(BOOK_SECTION) or {}).get('model', '?')}` |",
        f"| machine | {platform.machine()}, {platform.python_implementation()} {platform.python_version()} |",
        "",
        "| notebook | parameters | run time (s) | finished | code version |\n|---|---|---|---|---|",
    ]
    for r in records:
        params = ", ".join(f"{k}={v}" for k, v in r.get("parameters", {}).items())
        lines.append(f"| {r.get('notebook')} | {params} | {r.get('seconds')} | {r.get('finished')} "
                     f"| {version_label(r.get('code'))} |")
    lines += [f"| {stem}.ipynb | not executed for this profile | | | |" for stem in missing]
    lines += ["", "| embedded model | what runs here |\n|---|---|"]
    lines += [f"| `{m.name}` | {m.description}; shipped as a 4-bit GGUF file in `{m.pip_install.split()[-1]}`, "
              f"dequantised once (float32 on a CPU, bfloat16 on a GPU) |" for m in EMBEDDED.values()]
    lines += ["", "| package | version |\n|---|---|"]
    lines += [f"| {name} | {package_version(name)} |" for name in PINNED]
    lines += ["", "| data file | sha256 |\n|---|---|"]
    lines += [f"| `{e.name}` | `{e.sha256[:16]}…` |" for e in manifest().values() if e.kind != "hf-cache"]
    (folder / "provenance.md").write_text("\n".join(lines) + "\n")
    (folder / "run_times.md").write_text(run_times_table(profile_name, records, missing))
    short = version_label(version)
    summary = (f"This build ran the notebooks with the profile `{profile_name}` at commit `{short}` of the code "
               f"and was rendered on {built:%Y-%m-%d %H:%M} UTC.")
    if missing:
        summary += f" Not executed for this profile: {', '.join(missing)}."
    (folder / "summary.md").write_text(summary + "\n")
    (folder / "provenance.json").write_text(json.dumps(
        {"profile": profile_name, "code": version, "built": built.isoformat(timespec="seconds"),
         "notebooks": records, "not_executed": list(missing)}, indent=1))
