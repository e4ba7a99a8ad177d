"""Executing the notebooks with papermill, and knowing which executed copies can be trusted.

Each notebook is executed into ``_build/executed/<profile>/`` with the parameters of its section; when
papermill has finished, a stamp ``<stem>.json`` records the parameters, the run time, the code version, a
fingerprint of what the results depend on, and the sha256 of the executed copy. A notebook is skipped when
the fingerprint matches and the copy is intact, so an unchanged book is not executed again; a copy without
its stamp (a run that failed or was interrupted) or one that changed since (cut, edited) is never trusted:
it is executed again, or, when only rendering, named and rendered as a placeholder.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from persona.paths import REPO_ROOT, shown
from persona.runbook import layout, model_check
from persona.runbook.layout import executed_dir, say
from persona.runbook.logs import KernelOutput
from persona.runbook.parameters import load_profile, parameters_for, with_params
from persona.runbook.provenance import code_version

# --------------------------------------------------------------------------------------------------
# What a result depends on

def fingerprinted_sources() -> list[Path]:
    """The package's source files a notebook's results may depend on: all but this runner's, whose part in
    a result (the parameters) is fingerprinted as such; editing the runner does not re-execute the book."""
    runner = Path(__file__).resolve().parent
    return [p for p in sorted((REPO_ROOT / "src" / "persona").rglob("*.py")) if runner not in p.resolve().parents]


def fingerprint(notebook: Path, params: dict) -> str:
    digest = hashlib.sha256()
    digest.update(notebook.read_bytes())
    digest.update(json.dumps(params, sort_keys=True).encode())
    for path in fingerprinted_sources():
        digest.update(path.relative_to(REPO_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    digest.update((REPO_ROOT / "pyproject.toml").read_bytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Stamps, and which executed copies can be used

def read_stamp(path: Path) -> dict:
    """The stamp's record; ``{}`` when it is missing or damaged (then nothing in it is trusted)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def copy_problem(copy: Path, stamp: dict) -> str | None:
    """Why an executed copy cannot be used with its stamp, or None when it is intact: its sha256 must be
    the stamp's (a stamp written before checksums were recorded: the copy must read as a notebook)."""
    import nbformat

    try:
        data = Path(copy).read_bytes()
    except OSError as exc:
        return f"{shown(copy)} cannot be read ({type(exc).__name__})"
    if stamp.get("sha256"):
        if hashlib.sha256(data).hexdigest() != stamp["sha256"]:
            return (f"{shown(copy)} is damaged: it changed since its execution finished (its sha256 is not the "
                    f"stamp's)")
        return None
    try:
        nbformat.reads(data.decode("utf-8"), as_version=4)
    except (ValueError, KeyError, TypeError) as exc:  # NotJSONError and UnicodeDecodeError are ValueErrors
        return f"{shown(copy)} is damaged: it does not read as a notebook ({type(exc).__name__})"
    return None


def unusable(profile_name: str) -> dict[str, str]:
    """``{stem: why}`` for every notebook without a usable execution for the profile: no copy or no stamp
    (never executed, or the run failed or was interrupted), a damaged stamp or a damaged copy (named, with
    what is wrong)."""
    src, out = executed_dir(profile_name), {}
    for nb in layout.notebooks():
        copy, stamp = src / nb.name, src / f"{nb.stem}.json"
        if not copy.exists() or not stamp.exists():
            out[nb.stem] = "not executed"
        elif not (record := read_stamp(stamp)).get("fingerprint"):
            out[nb.stem] = f"its stamp {shown(stamp)} is damaged"
        elif (problem := copy_problem(copy, record)) is not None:
            out[nb.stem] = problem
    return out


def missing_notebooks(profile_name: str) -> list[str]:
    """Stems of the notebooks without a usable execution for the profile (see ``unusable``)."""
    return list(unusable(profile_name))


def described(problems: dict[str, str]) -> str:
    """``01_x, 02_y (why)``: the stems, each with what is wrong when more than 'not executed'."""
    return ", ".join(stem if why == "not executed" else f"{stem} ({why})" for stem, why in problems.items())


# --------------------------------------------------------------------------------------------------
# How long a notebook takes

def duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def last_run(stem: str, profile_name: str) -> dict | None:
    """The stamp of the notebook's last completed run: this profile's, else the most recent of any profile."""
    own = read_stamp(executed_dir(profile_name) / f"{stem}.json")
    if own.get("seconds") is not None:
        return own
    others = [s for p in sorted(layout.EXECUTED_DIR.glob(f"*/{stem}.json")) if p.parent.name != profile_name
              for s in [read_stamp(p)] if s.get("seconds") is not None]
    return max(others, key=lambda s: str(s.get("finished", ""))) if others else None


def estimate(stem: str, profile_name: str) -> str:
    """A sentence on how long the notebook will take, from its last run ('no earlier run' when none)."""
    stamp = last_run(stem, profile_name)
    if stamp is None:
        return "no earlier run, no estimate"
    seconds = float(stamp["seconds"])
    until = (datetime.now() + timedelta(seconds=seconds)).strftime("%H:%M")
    when = str(stamp.get("finished", ""))[:10] or "an earlier run"
    if stamp.get("profile", profile_name) == profile_name:
        return f"about {duration(seconds)} (the last run, {when}); done around {until}"
    return (f"no earlier run on '{profile_name}'; on profile '{stamp.get('profile')}' ({when}) it took "
            f"{duration(seconds)}, at that profile's scale")


# --------------------------------------------------------------------------------------------------
# Execution

def execute(profile_name: str, only: list[str] | None = None, force: bool = False, verbose: bool = False,
            params: list[str] | None = None) -> list[dict]:
    """Execute the notebooks of ``profile_name`` (those named in ``only``), with the ``--param`` settings
    ``params`` on top of the profile; return one timing record each. The models are checked first."""
    import papermill as pm

    selected = [nb for nb in layout.notebooks() if not only or nb.stem in only]
    profile = with_params(load_profile(profile_name), params, selected)
    out_dir = executed_dir(profile_name)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = []
    for notebook in selected:
        params = parameters_for(profile, notebook)
        key = fingerprint(notebook, params)
        previous = read_stamp(out_dir / f"{notebook.stem}.json")
        fresh = not force and (out_dir / notebook.name).exists() and previous.get("fingerprint") == key
        if fresh and (problem := copy_problem(out_dir / notebook.name, previous)) is not None:
            say(f"{notebook.name}: {problem}; executing it again")
            fresh = False
        plan.append((notebook, params, key, previous if fresh else None))
    to_run = [step for step in plan if step[3] is None]
    say(f"profile '{profile_name}': {len(to_run)} of {len(plan)} notebook(s) to execute"
        + (f", {len(plan) - len(to_run)} unchanged" if len(to_run) < len(plan) else ""))
    problems = model_check.check_models([(notebook, params_) for notebook, params_, _, _ in to_run])
    if problems:
        raise SystemExit(f"The models cannot be run as asked: {len(problems)} problem(s); nothing was run.\n  "
                         + "\n  ".join(problems))
    records, done = [], 0
    for notebook, params, key, previous in plan:
        if previous is not None:
            say(f"{notebook.name}: unchanged, not re-executed ({duration(previous.get('seconds', 0))} last time)")
            records.append(previous)
            continue
        done += 1
        stamp, target = out_dir / f"{notebook.stem}.json", out_dir / notebook.name
        say(f"[{done}/{len(to_run)}] executing {notebook.name} with profile '{profile_name}': {params}")
        say(f"[{done}/{len(to_run)}] {notebook.stem}: {estimate(notebook.stem, profile_name)}")
        start = time.perf_counter()
        stamp.unlink(missing_ok=True)
        out, err = KernelOutput(notebook.stem), KernelOutput(notebook.stem)
        try:
            pm.execute_notebook(
                str(notebook), str(target), parameters=params, kernel_name="python3", cwd=str(layout.NOTEBOOK_DIR),
                progress_bar=sys.stderr.isatty(), log_output=verbose,
                stdout_file=None if verbose else out, stderr_file=None if verbose else err,
            )
        except BaseException:
            say(f"{notebook.name} failed after {duration(time.perf_counter() - start)}; "
                f"the partly executed copy is {shown(target)}")
            raise
        finally:
            out.close()
            err.close()
        record = {"notebook": notebook.name, "profile": profile_name, "parameters": params,
                  "seconds": round(time.perf_counter() - start, 1), "fingerprint": key,
                  "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "code": code_version(),
                  "sha256": hashlib.sha256(target.read_bytes()).hexdigest()}
        partial = stamp.with_name(f".{stamp.name}.partial")
        partial.write_text(json.dumps(record, indent=1))
        os.replace(partial, stamp)  # a stamp is whole or absent: it is what makes the copy count
        say(f"[{done}/{len(to_run)}] {notebook.name} done in {duration(record['seconds'])}")
        records.append(record)
    return records
