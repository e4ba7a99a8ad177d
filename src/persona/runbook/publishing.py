"""Putting the executed notebooks into the book, and rendering it.

The book renders ``book/generated/`` with ``execute_notebooks: off``: a reader's copy of each executed
notebook (or, when rendering what there is, a placeholder page for a chapter without a usable execution),
with the provenance of the build. The new chapters are written into a folder beside it and swapped in only
once all of them are ready, so a failure on the way (a damaged copy, a full disk) leaves the rendered
chapters of the last build as they were.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from persona.paths import REPO_ROOT, shown
from persona.runbook import layout
from persona.runbook.execution import described, executed_dir, read_stamp, unusable
from persona.runbook.layout import say
from persona.runbook.provenance import write_provenance


def _title(notebook: Path) -> str:
    import nbformat

    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "markdown":
            heading = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if heading:
                return heading.group(1).strip()
    return notebook.stem


def _placeholder(notebook: Path, profile_name: str) -> str:
    return (f"# {_title(notebook)}\n\n"
            f":::{{note}}\nThis chapter has not been executed for the profile `{profile_name}` yet, so this build "
            f"has no results for it. Execute it, then render the book again:\n\n"
            f"```bash\npython -m persona.runbook --profile {profile_name} --only {notebook.stem}\n```\n:::\n")


def copy_for_readers(executed: Path, target: Path) -> None:
    """The executed notebook as readers get it (page and download): the stderr of cells tagged
    ``remove-stderr`` (progress logs, library warnings with this machine's paths) is dropped, as the page
    hides it anyway; papermill's cell of injected parameters is collapsed, like the defaults cell; everything
    else is kept. A copy that does not read as a notebook is named."""
    import nbformat

    try:
        nb = nbformat.read(executed, as_version=4)
    except (ValueError, KeyError, TypeError) as exc:  # NotJSONError names no file
        raise SystemExit(f"{shown(executed)} does not read as a notebook ({type(exc).__name__}); the rendered "
                         f"chapters are left as they were. Execute it again (--only {Path(executed).stem}).") from None
    for cell in nb.cells:
        tags = cell.get("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "hide-cell" not in tags:
            tags.append("hide-cell")  # the run's parameters: one collapsed cell, as the defaults cell is
        if "remove-stderr" in tags and cell.get("outputs"):
            cell.outputs = [o for o in cell.outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
    nbformat.write(nb, target)


def replace_folder(target: Path, fill: Callable[[Path], None]) -> None:
    """Replace ``target`` with a folder that ``fill`` writes: ``fill`` writes into a new folder beside it,
    which takes ``target``'s place only when ``fill`` returns; when it raises, ``target`` is untouched and
    the new folder is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        os.chmod(staging, 0o755)  # mkdtemp's folder is private; the rendered chapters are not
        fill(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def publish(profile_name: str, placeholders: bool = False) -> None:
    """Put the executed notebooks of a profile into ``book/generated``, with the build's provenance.

    Every notebook must have a usable execution for the profile; otherwise SystemExit names those that have
    none (and what is wrong with a damaged one), and ``book/generated`` is left as it was. With
    ``placeholders``, each of them gets a page saying so instead.
    """
    src = executed_dir(profile_name)
    problems = unusable(profile_name)
    if problems and not placeholders:
        raise SystemExit(
            f"Not executed for profile '{profile_name}': {described(problems)}; {shown(layout.GENERATED_DIR)} is "
            f"left as it was.\nExecute them (python -m persona.runbook --profile {profile_name} --only "
            f"{' '.join(problems)}) or render with a placeholder for each (--render-only).")

    def fill(folder: Path) -> None:
        records = []
        for notebook in layout.notebooks():
            if notebook.stem in problems:
                (folder / f"{notebook.stem}.md").write_text(_placeholder(notebook, profile_name))
                continue
            copy_for_readers(src / notebook.name, folder / notebook.name)
            records.append(read_stamp(src / f"{notebook.stem}.json"))
        write_provenance(folder, profile_name, records, list(problems))

    replace_folder(layout.GENERATED_DIR, fill)


def build(output: Path, strict: bool) -> None:
    """Render the book (``jupyter-book build``) into ``output``; ``strict``: warnings are errors."""
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(REPO_ROOT), "--path-output", str(output)]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    say(" ".join(cmd))
    subprocess.run(cmd, check=True, cwd=REPO_ROOT)
