"""Execute the book's notebooks with papermill for one profile, then render the book.

``python -m persona.runbook --profile cpu``                      execute every notebook, then ``jupyter-book build``
``python -m persona.runbook --profile smoke --no-build``         execute (and copy into the book) only
``python -m persona.runbook --profile gpu --only 02_alignment``  execute one notebook; render when all are executed
``python -m persona.runbook --profile gpu --render-only``        execute nothing; render what was executed
``python -m persona.runbook --profile gpu --param model=/models/llama3``  a parameter other than the profile's
``python -m persona.runbook publish-pages --remote origin``      put ``_build/html`` on the ``gh-pages`` branch

The profile (``profiles/<profile>.yaml``) is checked before anything runs: every section must name a
notebook (or be ``_book``), every key must be a parameter that the notebook's ``parameters`` cell assigns.

``--param [NOTEBOOK.]NAME=VALUE`` (repeatable; VALUE is YAML) sets a parameter on top of the profile: for the
named notebook, or for every executed notebook whose parameters cell assigns NAME. It is checked like the
profile, before anything runs, and is part of the parameters (fingerprint, stamp, provenance) like any other.

Before the first notebook runs, every model the notebooks to execute will load is checked (``persona.models``
``preflight``): a hub id not on disk while the hub is offline, a large model in bfloat16 without a CUDA GPU,
a model that needs more GPU memory than is free; each stops the run with a message naming the fix.

Each notebook is executed into ``_build/executed/<profile>/`` with the parameters of its section. A
notebook is skipped when a fingerprint of (notebook source, its parameters, the package source but this
runner, the pinned dependencies) matches the previous execution, so an unchanged book is not re-executed.
Before each notebook the runner prints how long its last run took (the ``<stem>.json`` stamp), and the
kernel's stdout/stderr is forwarded to stderr line by line, prefixed with the notebook's name.

The executed copies are then copied to ``book/generated/``, which the book renders with
``execute_notebooks: off``, together with the provenance of the build (code version, profile, run times,
package versions, data checksums). ``book/generated/`` is only replaced once every chapter has an executed
copy for the profile (or, with ``--render-only``, with a placeholder page for each chapter that has none).

This module is also a Sphinx extension (listed in ``_config.yml``): it points the launch buttons of an
executed chapter at its source notebook in ``notebooks/``.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import hashlib
import json
import logging
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from typing import Sequence

import yaml

from persona.paths import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
PROFILE_DIR = REPO_ROOT / "profiles"
GENERATED_DIR = REPO_ROOT / "book" / "generated"
EXECUTED_DIR = REPO_ROOT / "_build" / "executed"
#: The docname folder of the executed chapters in ``_toc.yml`` (relative to the book's root).
GENERATED_DOCS = "book/generated"
#: The profile section holding settings of the runner itself, and the keys it may hold.
BOOK_SECTION = "_book"
BOOK_KEYS = ("profile", "model")
PINNED = ["torch", "transformers", "peft", "pandas", "statsmodels", "pingouin", "seaborn",
          "papermill", "jupyter-book", "myst-nb"]
#: A progress line the kernel keeps rewriting (``\r``, e.g. tqdm) is forwarded at most this often (seconds).
PROGRESS_EVERY = 30.0

LOG = logging.getLogger("persona.runbook")


def _say(message: str) -> None:
    print(f"[runbook] {message}", flush=True)


def _shown(path: Path) -> str:
    """A path as the user should read it: relative to the repository when it lies inside."""
    try:
        return Path(path).resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------------
# Profiles and notebooks

def profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def notebooks() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def stems() -> list[str]:
    return [nb.stem for nb in notebooks()]


def declared_parameters(notebook: Path) -> str:
    """Source of the notebook's cell tagged ``parameters`` ('' when it has none)."""
    import nbformat

    if not Path(notebook).exists():
        return ""
    cells = nbformat.read(notebook, as_version=4).cells
    return "\n".join(c.source for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))


def parameter_names(notebook: Path) -> list[str]:
    """Names the ``parameters`` cell assigns at its top level (``name = ...``), in order."""
    source = declared_parameters(notebook)
    try:
        tree = ast.parse(source)
    except SyntaxError:  # e.g. an IPython magic in the cell: fall back to the lines' shape
        return list(dict.fromkeys(re.findall(r"^([A-Za-z_]\w*)\s*(?::[^=]+)?=(?!=)", source, re.M)))
    names: list[str] = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            for name in (target.elts if isinstance(target, ast.Tuple) else [target]):
                if isinstance(name, ast.Name) and name.id not in names:
                    names.append(name.id)
    return names


def _did_you_mean(word: object, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(word), choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_profile(sections: object) -> list[str]:
    """What is wrong with a parsed profile: unknown sections, keys that are not parameters. [] when fine."""
    if not isinstance(sections, dict):
        return [f"the file must map section names to parameters, not hold a {type(sections).__name__}"]
    known = {nb.stem: nb for nb in notebooks()}
    allowed_sections = [BOOK_SECTION, *known]
    problems = []
    for section, values in sections.items():
        if section not in allowed_sections:
            problems.append(f"section '{section}' matches no notebook{_did_you_mean(section, allowed_sections)}; "
                            f"allowed sections: {', '.join(allowed_sections)}")
            continue
        if values is None:
            continue
        if not isinstance(values, dict):
            problems.append(f"section '{section}' must map parameter names to values, not hold {values!r}")
            continue
        if section == BOOK_SECTION:
            allowed, owner = list(BOOK_KEYS), f"the runner's section '{BOOK_SECTION}'"
        else:
            allowed, owner = parameter_names(known[section]), f"notebooks/{known[section].name}"
            if not allowed and values:
                problems.append(f"section '{section}': notebooks/{known[section].name} has no cell tagged "
                                f"'parameters', so it takes no parameters (found {', '.join(map(str, values))})")
                continue
        for key in values:
            if key not in allowed:
                problems.append(f"section '{section}': '{key}' is not a parameter of {owner}"
                                f"{_did_you_mean(key, allowed)}; its parameters: {', '.join(allowed)}")
    return problems


def load_profile(profile: str) -> dict:
    """The parsed ``profiles/<profile>.yaml``, checked against the notebooks (SystemExit naming every problem)."""
    path = PROFILE_DIR / f"{profile}.yaml"
    if not path.exists():
        raise SystemExit(f"Unknown profile '{profile}' (known: {', '.join(profiles())})")
    try:
        sections = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SystemExit(f"{_shown(path)} is not valid YAML; nothing was run.\n{exc}") from None
    sections = {} if sections is None else sections
    problems = check_profile(sections)
    if problems:
        raise SystemExit(f"{_shown(path)}: {len(problems)} problem(s); nothing was run.\n  " + "\n  ".join(problems))
    return sections


def parameters_for(profile: dict, notebook: Path) -> dict:
    """The notebook's own section, plus the book-wide ``model``/``profile`` where the notebook declares them."""
    params = dict(profile.get(notebook.stem) or {})
    book = profile.get(BOOK_SECTION) or {}
    declared = parameter_names(notebook)
    for name in BOOK_KEYS:
        if name in book and name not in params and (not declared or name in declared):
            params[name] = book[name]
    return params


def fingerprinted_sources() -> list[Path]:
    """The package's source files a notebook's results may depend on: all but this runner, whose part in
    a result (the parameters) is fingerprinted as such; editing the runner does not re-execute the book."""
    runner = Path(__file__).resolve()
    return [p for p in sorted((REPO_ROOT / "src" / "persona").rglob("*.py")) if p.resolve() != runner]


def fingerprint(notebook: Path, params: dict) -> str:
    digest = hashlib.sha256()
    digest.update(notebook.read_bytes())
    digest.update(json.dumps(params, sort_keys=True).encode())
    for path in fingerprinted_sources():
        digest.update(path.relative_to(REPO_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    digest.update((REPO_ROOT / "pyproject.toml").read_bytes())
    return digest.hexdigest()


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


def _version_label(version: dict | None, short: bool = True) -> str:
    if not version or not version.get("commit"):
        return "unknown (not a git checkout)" if version else "not recorded"
    commit = version["commit"][:7] if short else version["commit"]
    return f"{commit} (dirty)" if version.get("dirty") else commit


# --------------------------------------------------------------------------------------------------
# Parameters set on the command line (--param)

def parse_param(text: str) -> tuple[str | None, str, object]:
    """``"[NOTEBOOK.]NAME=VALUE"`` -> ``(NOTEBOOK or None, NAME, VALUE parsed as YAML)``."""
    key, sep, value = str(text).partition("=")
    section, _, name = key.strip().rpartition(".")
    if not sep or not re.fullmatch(r"[A-Za-z_]\w*", name) or (section and not re.fullmatch(r"\w+", section)):
        raise ValueError(f"--param {text!r}: write NAME=VALUE or NOTEBOOK.NAME=VALUE (e.g. shard=0/4, "
                         f"02_alignment.batch_size=8, 04_trait.models=[a, b])")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise ValueError(f"--param {text!r}: the value is not valid YAML ({str(exc).splitlines()[0]})") from None
    return section or None, name, parsed


def with_params(profile: dict, params: list[str] | None, selected: list[Path]) -> dict:
    """The profile with the ``--param`` settings applied to the ``selected`` notebooks (a new dict; the
    profile's sections, which YAML anchors may share, are copied). A setting for a named notebook that is not
    selected is checked and left out; one without a notebook must be a parameter of a selected notebook.
    SystemExit names every problem."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in profile.items()}
    problems = []
    by_stem = {nb.stem: nb for nb in selected}
    known = {nb.stem: nb for nb in notebooks()}
    for text in params or []:
        try:
            section, name, value = parse_param(text)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if section is not None:
            if section not in known:
                problems.append(f"--param {text}: '{section}' matches no notebook{_did_you_mean(section, list(known))}; "
                                f"notebooks: {', '.join(known)}")
                continue
            if name not in parameter_names(known[section]):
                problems.append(f"--param {text}: '{name}' is not a parameter of notebooks/{known[section].name}"
                                f"{_did_you_mean(name, parameter_names(known[section]))}")
                continue
            targets = [by_stem[section]] if section in by_stem else []
        else:
            targets = [nb for nb in selected if name in parameter_names(nb)]
            if not targets:
                every = sorted({n for nb in selected for n in parameter_names(nb)})
                problems.append(f"--param {text}: no notebook being executed ({', '.join(by_stem)}) has a parameter "
                                f"'{name}'{_did_you_mean(name, every)}")
                continue
        for nb in targets:
            out[nb.stem] = {**(out.get(nb.stem) or {}), name: value}
    if problems:
        raise SystemExit(f"--param: {len(problems)} problem(s); nothing was run.\n  " + "\n  ".join(problems))
    return out


# --------------------------------------------------------------------------------------------------
# The models the notebooks will load, checked before any notebook runs

def notebook_defaults(notebook: Path) -> dict:
    """The literal values the notebook's ``parameters`` cell assigns (what papermill does not override)."""
    try:
        tree = ast.parse(declared_parameters(notebook))
    except SyntaxError:
        return {}
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except (ValueError, SyntaxError):
                pass
    return values


def models_to_load(notebook: Path, params: dict) -> list[tuple[str, str]]:
    """``(model, dtype)`` for every model the notebook loads with these parameters (its ``model``, or its
    ``models`` list; ``dtype`` its parameter, else "auto")."""
    merged = {**notebook_defaults(notebook), **params}
    names = [merged["model"]] if isinstance(merged.get("model"), str) else []
    names += [m for m in merged.get("models") or [] if isinstance(m, str)]
    dtype = merged.get("dtype") or "auto"
    return [(name, str(dtype)) for name in dict.fromkeys(names)]


#: Tokens of one DPO prompt (a PAPI item with PAlign's default system prompt and the answer cue): about 130
#: with SmolLM2's tokenizer, taken as 160 for the memory estimate of a DPO batch.
DPO_PROMPT_TOKENS = 160


def training_tokens(notebook: Path, params: dict) -> int:
    """Tokens of one DPO training batch the notebook may run (``dpo_batch_size`` prompts), 0 without DPO."""
    merged = {**notebook_defaults(notebook), **params}
    if not merged.get("dpo_method") or not isinstance(merged.get("dpo_batch_size"), int):
        return 0
    return merged["dpo_batch_size"] * DPO_PROMPT_TOKENS


def probe_device():
    """The device the notebooks' kernels will compute on (``persona.models.Device``). On a CUDA machine the
    free memory is read in a child process, so this long-lived runner creates no CUDA context of its own."""
    import torch

    from persona import models

    if not torch.cuda.is_available():
        return models.probe_device("cpu")
    code = "import json; from persona.models import probe_device as p; print(json.dumps(p('cuda').__dict__))"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
        return models.Device(**json.loads(done.stdout.strip().splitlines()[-1]))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError, TypeError):
        _say("could not read the GPU's free memory; the memory check is skipped")
        return models.Device("cuda", torch.cuda.get_device_name())


def preflight(runs: list[tuple[Path, dict]], device=None) -> list[str]:
    """Check every model the notebooks of ``runs`` will load (``persona.models.preflight``), before any of
    them runs; returns one problem per model that fails (``[]`` when all pass) and prints one line per model
    checked. Embedded models are small: only their package is checked, and no device is probed for them."""
    from persona import models

    wanted: dict[tuple[str, str], list[str]] = {}
    training: dict[tuple[str, str], int] = {}
    for notebook, params in runs:
        for pair in models_to_load(notebook, params):
            wanted.setdefault(pair, []).append(notebook.stem)
            training[pair] = max(training.get(pair, 0), training_tokens(notebook, params))
    problems = []
    for (name, dtype), stems_ in wanted.items():
        where = ", ".join(stems_)
        try:
            if name in models.EMBEDDED:
                models._package_dir(models.EMBEDDED[name])
                continue
            device = device or probe_device()
            tokens = training[(name, dtype)]
            found = models.preflight(name, device, dtype, training_tokens=tokens,
                                     training_what=f"DPO's backward pass at dpo_batch_size {tokens // DPO_PROMPT_TOKENS}")
        except (models.ModelError, ValueError) as exc:
            problems.append(f"{where}: {exc}")
            continue
        free = f" of {device.free_bytes / 1e9:.0f} GB free on {device.name}" if device.free_bytes else ""
        need = f"needs about {found['needed_bytes'] / 1e9:.1f} GB{free}" if found["needed_bytes"] else "size unknown"
        _say(f"{where}: model {name} ({models.size_text(found['parameters'])}) in "
             f"{str(found['dtype']).removeprefix('torch.')} on {device.type}: {need}")
    return problems


# --------------------------------------------------------------------------------------------------
# Execution

def executed_dir(profile_name: str) -> Path:
    return EXECUTED_DIR / profile_name


def _read_stamp(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def _duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def last_run(stem: str, profile_name: str) -> dict | None:
    """The stamp of the notebook's last completed run: this profile's, else the most recent of any profile."""
    own = _read_stamp(executed_dir(profile_name) / f"{stem}.json")
    if own.get("seconds") is not None:
        return own
    others = [s for p in sorted(EXECUTED_DIR.glob(f"*/{stem}.json")) if p.parent.name != profile_name
              for s in [_read_stamp(p)] if s.get("seconds") is not None]
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
        return f"about {_duration(seconds)} (the last run, {when}); done around {until}"
    return (f"no earlier run on '{profile_name}'; on profile '{stamp.get('profile')}' ({when}) it took "
            f"{_duration(seconds)}, at that profile's scale")


class _StderrHandler(logging.Handler):
    """Writes to the current ``sys.stderr`` through tqdm, so a progress bar is not torn by the lines."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def configure_logging(verbose: bool = False) -> None:
    """The runner's and papermill's loggers print to stderr, one short line each (idempotent)."""
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    for name, level in (("persona.runbook", logging.INFO), ("papermill", logging.INFO if verbose else logging.WARNING)):
        logger = logging.getLogger(name)
        logger.handlers = [h for h in logger.handlers if not isinstance(h, _StderrHandler)] + [handler]
        logger.setLevel(level)
        logger.propagate = False


class KernelOutput:
    """A file-like sink for papermill's ``stdout_file``/``stderr_file``: each line the kernel prints is
    logged as ``<stem> | <line>``. Of a line rewritten with carriage returns (a progress bar) only what a
    terminal would show is kept, and while it is being rewritten it is logged at most every ``every`` seconds."""

    def __init__(self, stem: str, every: float = PROGRESS_EVERY):
        self.stem, self.every = stem, every
        self._partial = ""            # the line being written (no newline yet)
        self._logged = None           # what was last logged of it
        self._logged_at = float("-inf")

    @staticmethod
    def _shown(line: str) -> str:
        """What a terminal shows of a line rewritten with carriage returns: its last non-empty state."""
        return next((part for part in reversed(line.split("\r")) if part.strip()), "").rstrip()

    def _emit(self, line: str) -> None:
        if line:
            LOG.info("  %s | %s", self.stem, line)

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            shown = self._shown(line)
            if shown != self._logged:  # not when this very state was logged as progress already
                self._emit(shown)
            self._logged, self._logged_at = None, float("-inf")
        if "\r" in self._partial:
            shown, now = self._shown(self._partial), time.monotonic()
            if shown != self._logged and now - self._logged_at >= self.every:
                self._emit(shown)
                self._logged, self._logged_at = shown, now
            # keep only the state being written: from the carriage return before the last non-empty one
            start = self._partial.rfind("\r", 0, len(self._partial.rstrip("\r")))
            self._partial = self._partial[max(start, 0):]
        return len(text)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._partial:
            self.write("\n")


def execute(profile_name: str, only: list[str] | None = None, force: bool = False, verbose: bool = False,
            params: list[str] | None = None) -> list[dict]:
    """Execute the notebooks of ``profile_name`` (those named in ``only``), with the ``--param`` settings
    ``params`` on top of the profile; return one timing record each. The models are checked first."""
    import papermill as pm

    selected = [nb for nb in notebooks() if not only or nb.stem in only]
    profile = with_params(load_profile(profile_name), params, selected)
    out_dir = executed_dir(profile_name)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = []
    for notebook in selected:
        params = parameters_for(profile, notebook)
        key = fingerprint(notebook, params)
        previous = _read_stamp(out_dir / f"{notebook.stem}.json")
        fresh = not force and (out_dir / notebook.name).exists() and previous.get("fingerprint") == key
        plan.append((notebook, params, key, previous if fresh else None))
    to_run = [step for step in plan if step[3] is None]
    _say(f"profile '{profile_name}': {len(to_run)} of {len(plan)} notebook(s) to execute"
         + (f", {len(plan) - len(to_run)} unchanged" if len(to_run) < len(plan) else ""))
    problems = preflight([(notebook, params_) for notebook, params_, _, _ in to_run])
    if problems:
        raise SystemExit(f"The models cannot be run as asked: {len(problems)} problem(s); nothing was run.\n  "
                         + "\n  ".join(problems))
    records, done = [], 0
    for notebook, params, key, previous in plan:
        if previous is not None:
            _say(f"{notebook.name}: unchanged, not re-executed ({_duration(previous.get('seconds', 0))} last time)")
            records.append(previous)
            continue
        done += 1
        stamp, target = out_dir / f"{notebook.stem}.json", out_dir / notebook.name
        _say(f"[{done}/{len(to_run)}] executing {notebook.name} with profile '{profile_name}': {params}")
        _say(f"[{done}/{len(to_run)}] {notebook.stem}: {estimate(notebook.stem, profile_name)}")
        start = time.perf_counter()
        stamp.unlink(missing_ok=True)
        out, err = KernelOutput(notebook.stem), KernelOutput(notebook.stem)
        try:
            pm.execute_notebook(
                str(notebook), str(target), parameters=params, kernel_name="python3", cwd=str(NOTEBOOK_DIR),
                progress_bar=sys.stderr.isatty(), log_output=verbose,
                stdout_file=None if verbose else out, stderr_file=None if verbose else err,
            )
        except BaseException:
            _say(f"{notebook.name} failed after {_duration(time.perf_counter() - start)}; "
                 f"the partly executed copy is {_shown(target)}")
            raise
        finally:
            out.close()
            err.close()
        record = {"notebook": notebook.name, "profile": profile_name, "parameters": params,
                  "seconds": round(time.perf_counter() - start, 1), "fingerprint": key,
                  "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "code": code_version()}
        stamp.write_text(json.dumps(record, indent=1))
        _say(f"[{done}/{len(to_run)}] {notebook.name} done in {_duration(record['seconds'])}")
        records.append(record)
    return records


# --------------------------------------------------------------------------------------------------
# Publishing into the book, provenance, rendering

def missing_notebooks(profile_name: str) -> list[str]:
    """Stems of the notebooks without a completed execution for the profile (copy and stamp)."""
    src = executed_dir(profile_name)
    return [nb.stem for nb in notebooks() if not (src / nb.name).exists() or not (src / f"{nb.stem}.json").exists()]


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


def publish(profile_name: str, placeholders: bool = False) -> None:
    """Copy the executed notebooks of a profile into ``book/generated`` and write provenance.

    Every notebook must have been executed for the profile; otherwise SystemExit names those that were not
    and ``book/generated`` is left as it was. With ``placeholders``, each of them gets a page saying so instead.
    """
    src = executed_dir(profile_name)
    missing = missing_notebooks(profile_name)
    if missing and not placeholders:
        raise SystemExit(
            f"Not executed for profile '{profile_name}': {', '.join(missing)}; {_shown(GENERATED_DIR)} is left as it "
            f"was.\nExecute them (python -m persona.runbook --profile {profile_name} --only {' '.join(missing)}) or "
            f"render with a placeholder for each (--render-only).")
    shutil.rmtree(GENERATED_DIR, ignore_errors=True)
    GENERATED_DIR.mkdir(parents=True)
    records = []
    for notebook in notebooks():
        if notebook.stem in missing:
            (GENERATED_DIR / f"{notebook.stem}.md").write_text(_placeholder(notebook, profile_name))
            continue
        _copy_for_readers(src / notebook.name, GENERATED_DIR / notebook.name)
        records.append(_read_stamp(src / f"{notebook.stem}.json"))
    write_provenance(profile_name, records, missing)


def _copy_for_readers(executed: Path, target: Path) -> None:
    """The executed notebook as readers get it (page and download): the stderr of cells tagged
    ``remove-stderr`` (progress logs, library warnings with this machine's paths) is dropped, as the page
    hides it anyway; everything else is kept."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        if "remove-stderr" in cell.get("metadata", {}).get("tags", []) and cell.get("outputs"):
            cell.outputs = [o for o in cell.outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
    nbformat.write(nb, target)


def _version(name: str) -> str:
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
        lines.append(f"| {r.get('notebook')} | {seconds / 60:.1f} min | {_version_label(r.get('code'))} |")
    lines += [f"| {stem}.ipynb | not executed | |" for stem in missing]
    lines.append(f"| **all notebooks** | **{total / 60:.1f} min** | |")
    return "\n".join(lines) + "\n"


def write_provenance(profile_name: str, records: list[dict], missing: list[str] = ()) -> None:
    """``provenance.md`` (the tables of the provenance page), ``summary.md`` (one sentence for the intro)
    and ``provenance.json`` in ``book/generated``."""
    from persona.data import manifest

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
                     f"| {_version_label(r.get('code'))} |")
    lines += [f"| {stem}.ipynb | not executed for this profile | | | |" for stem in missing]
    from persona.models import EMBEDDED

    lines += ["", "| embedded model | what runs here |\n|---|---|"]
    lines += [f"| `{m.name}` | {m.description}; shipped as a 4-bit GGUF file in `{m.pip_install.split()[-1]}`, "
              f"dequantised once (float32 on a CPU, bfloat16 on a GPU) |" for m in EMBEDDED.values()]
    lines += ["", "| package | version |\n|---|---|"]
    lines += [f"| {name} | {_version(name)} |" for name in PINNED]
    lines += ["", "| data file | sha256 |\n|---|---|"]
    lines += [f"| `{e.name}` | `{e.sha256[:16]}…` |" for e in manifest().values() if e.kind != "hf-cache"]
    (GENERATED_DIR / "provenance.md").write_text("\n".join(lines) + "\n")
    (GENERATED_DIR / "run_times.md").write_text(run_times_table(profile_name, records, missing))
    short = _version_label(version)
    summary = (f"This build ran the notebooks with the profile `{profile_name}` at commit `{short}` of the code "
               f"and was rendered on {built:%Y-%m-%d %H:%M} UTC.")
    if missing:
        summary += f" Not executed for this profile: {', '.join(missing)}."
    (GENERATED_DIR / "summary.md").write_text(summary + "\n")
    (GENERATED_DIR / "provenance.json").write_text(json.dumps(
        {"profile": profile_name, "code": version, "built": built.isoformat(timespec="seconds"),
         "notebooks": records, "not_executed": list(missing)}, indent=1))


def build(output: Path, strict: bool) -> None:
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(REPO_ROOT), "--path-output", str(output)]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    print("[runbook]", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO_ROOT)


# --------------------------------------------------------------------------------------------------
# Publishing the rendered book on GitHub Pages (gh-pages branch)

def publish_pages(html: Path, remote: str = "origin", branch: str = "gh-pages", repo: Path | None = None) -> None:
    """Commit the rendered book ``html`` to ``branch`` (with ``.nojekyll``) with ghp-import, and push it to
    ``remote`` (a remote's name, a URL or a path). ``repo`` is the git checkout to work in (this one)."""
    repo = Path(repo or REPO_ROOT)
    html = Path(html).resolve()
    if not (html / "index.html").exists():
        raise SystemExit(f"{_shown(html)} holds no index.html: render the book first (make book)")
    message = f"Publish the rendered book (checkout at {_version_label(code_version(repo))})"
    # Best effort: know the remote's branch, so that ghp-import builds on it and the push is a fast-forward.
    subprocess.run(["git", "-C", str(repo), "fetch", "--quiet", remote, branch], capture_output=True)
    cmd = [sys.executable, "-m", "ghp_import", "--no-jekyll", "--push", "--remote", remote, "--branch", branch,
           "--message", message, str(html)]
    _say(" ".join(cmd[1:]))
    subprocess.run(cmd, check=True, cwd=repo)
    _say(f"{_shown(html)} pushed to branch '{branch}' of '{remote}'; with GitHub Pages serving that branch, "
         f"the book is at https://<owner>.github.io/<repository>/")


# --------------------------------------------------------------------------------------------------
# Sphinx extension: launch buttons of an executed chapter point at its source notebook

def point_launch_buttons_at_sources(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """``html-page-context`` handler run after sphinx-book-theme's: the theme builds Binder/Colab links to the
    page's own path (``book/generated/<stem>.ipynb``, which is not committed); rewrite them to the source
    notebook ``notebooks/<stem>.ipynb``, whose parameters cell defaults to the smoke scale."""
    prefix = GENERATED_DOCS.rstrip("/") + "/"
    if not pagename.startswith(prefix):
        return
    name = pagename[len(prefix):] + ".ipynb"
    generated, source = f"{pagename}.ipynb", f"{_shown(NOTEBOOK_DIR)}/{name}"
    for group in context.get("header_buttons") or []:
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if "url" in button and generated in button["url"]:
                button["url"] = button["url"].replace(generated, source)
                button["tooltip"] = f"Open the source notebook {source} on {button.get('text', '')} (smoke-scale defaults)"


def setup(app) -> dict:
    """Sphinx entry point (``sphinx: extra_extensions: [persona.runbook]`` in ``_config.yml``)."""
    app.connect("html-page-context", point_launch_buttons_at_sources, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


# --------------------------------------------------------------------------------------------------
# Command line

def _parser() -> argparse.ArgumentParser:
    known = ", ".join(stems()) or "(none found)"
    epilog = (f"profiles ({_shown(PROFILE_DIR)}/*.yaml): {', '.join(profiles()) or '(none found)'}\n"
              f"notebooks ({_shown(NOTEBOOK_DIR)}/, the names --only takes): {known}\n\n"
              "publish the rendered book on the gh-pages branch of a remote (what `make publish` runs):\n"
              "  python -m persona.runbook publish-pages [--html _build/html] [--remote origin] [--branch gh-pages]")
    parser = argparse.ArgumentParser(prog="python -m persona.runbook", description=__doc__, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", metavar="PROFILE", help=f"one of {', '.join(profiles())} (default cpu)")
    parser.add_argument("--only", nargs="+", metavar="NOTEBOOK",
                        help="execute only these notebooks (stems, see below); the book is rendered when every "
                             "notebook has been executed for the profile")
    parser.add_argument("--force", action="store_true", help="re-execute even when unchanged")
    parser.add_argument("--param", action="append", default=None, metavar="[NOTEBOOK.]NAME=VALUE",
                        help="set a notebook parameter on top of the profile (repeatable; VALUE is YAML): for "
                             "NOTEBOOK only, or for every executed notebook that has NAME, e.g. --param "
                             "model=/models/Meta-Llama-3-8B-Instruct, --param 02_alignment.batch_size=8")
    parser.add_argument("--render-only", action="store_true",
                        help="execute nothing; render what was executed for the profile, with a placeholder "
                             "page for each notebook that was not")
    parser.add_argument("--no-build", action="store_true", help="do not render (executed copies still go to the book)")
    parser.add_argument("--strict", action="store_true", help="build with -W -n --keep-going")
    parser.add_argument("--output", default=None, help="book output folder (default _build or _build/<profile>)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="papermill's own log: every cell's start and end and every displayed result")
    return parser


def _check_only(parser: argparse.ArgumentParser, only: list[str] | None) -> list[str] | None:
    if only is None:
        return None
    names = [Path(n).name.removesuffix(".ipynb") for n in only]
    known = stems()
    unknown = [n for n in names if n not in known]
    if unknown:
        hints = "".join(_did_you_mean(n, known) for n in unknown)
        parser.error(f"--only: unknown notebook(s) {', '.join(unknown)}{hints}; known: {', '.join(known)}")
    return names


def publish_pages_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m persona.runbook publish-pages",
                                     description=publish_pages.__doc__)
    parser.add_argument("--html", default=str(REPO_ROOT / "_build" / "html"), help="the rendered book (default _build/html)")
    parser.add_argument("--remote", default="origin", help="remote name, URL or path (default origin)")
    parser.add_argument("--branch", default="gh-pages")
    args = parser.parse_args(argv)
    publish_pages(Path(args.html), args.remote, args.branch)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["publish-pages"]:
        return publish_pages_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.profile not in profiles():
        parser.error(f"unknown profile '{args.profile}'; known: {', '.join(profiles())}")
    only = _check_only(parser, args.only)
    if args.render_only and (only or args.force or args.param):
        parser.error("--render-only executes nothing: it takes neither --only nor --force nor --param")
    configure_logging(args.verbose)
    load_profile(args.profile)  # every problem of the profile stops the run here, before any notebook
    if not args.render_only:
        execute(args.profile, only, args.force, verbose=args.verbose, params=args.param)
    missing = missing_notebooks(args.profile)
    if missing and not args.render_only:
        if not only:
            raise SystemExit(f"Not executed for profile '{args.profile}': {', '.join(missing)}")
        rest = " ".join(missing)
        _say(f"not rendering the book: {', '.join(missing)} not executed for profile '{args.profile}' yet "
             f"({_shown(GENERATED_DIR)} is left as it was). Later, either")
        _say(f"  python -m persona.runbook --profile {args.profile} --only {rest}   # execute them, then render")
        _say(f"  python -m persona.runbook --profile {args.profile} --render-only   # render now, a placeholder for each")
        return None
    if missing and args.strict:
        raise SystemExit(f"--strict renders only a complete book; not executed for '{args.profile}': {', '.join(missing)}")
    publish(args.profile, placeholders=args.render_only)
    if missing:
        _say(f"rendering with a placeholder page for {', '.join(missing)}")
    if not args.no_build:
        default = REPO_ROOT if args.profile == "cpu" else REPO_ROOT / "_build" / args.profile
        build(Path(args.output) if args.output else default, args.strict)
    return None


if __name__ == "__main__":
    main()
