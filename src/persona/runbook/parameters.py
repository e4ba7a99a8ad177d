"""Profiles and parameters, checked before any notebook runs.

A profile (``profiles/<profile>.yaml``) maps each notebook's stem to the parameters papermill gives it,
plus the runner's own section ``_book`` (the book-wide ``profile`` and ``model``). Every section must name
a notebook and every key must be a parameter its ``parameters`` cell assigns: a typo would otherwise run
for hours at the notebook's smoke-scale default. ``--param [NOTEBOOK.]NAME=VALUE`` is checked the same way.
"""

from __future__ import annotations

import ast
import difflib
import re
from pathlib import Path

import yaml

from persona.paths import shown
from persona.runbook import layout

#: The profile section holding settings of the runner itself, and the keys it may hold.
BOOK_SECTION = "_book"
BOOK_KEYS = ("profile", "model")


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


def did_you_mean(word: object, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(word), choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_profile(sections: object) -> list[str]:
    """What is wrong with a parsed profile: unknown sections, keys that are not parameters. [] when fine."""
    if not isinstance(sections, dict):
        return [f"the file must map section names to parameters, not hold a {type(sections).__name__}"]
    known = {nb.stem: nb for nb in layout.notebooks()}
    allowed_sections = [BOOK_SECTION, *known]
    problems = []
    for section, values in sections.items():
        if section not in allowed_sections:
            problems.append(f"section '{section}' matches no notebook{did_you_mean(section, allowed_sections)}; "
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
                                f"{did_you_mean(key, allowed)}; its parameters: {', '.join(allowed)}")
    return problems


def load_profile(profile: str) -> dict:
    """The parsed ``profiles/<profile>.yaml``, checked against the notebooks (SystemExit naming every problem)."""
    path = layout.PROFILE_DIR / f"{profile}.yaml"
    if not path.exists():
        raise SystemExit(f"Unknown profile '{profile}' (known: {', '.join(layout.profiles())})")
    try:
        sections = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SystemExit(f"{shown(path)} is not valid YAML; nothing was run.\n{exc}") from None
    sections = {} if sections is None else sections
    problems = check_profile(sections)
    if problems:
        raise SystemExit(f"{shown(path)}: {len(problems)} problem(s); nothing was run.\n  " + "\n  ".join(problems))
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
    known = {nb.stem: nb for nb in layout.notebooks()}
    for text in params or []:
        try:
            section, name, value = parse_param(text)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if section is not None:
            if section not in known:
                problems.append(f"--param {text}: '{section}' matches no notebook{did_you_mean(section, list(known))}; "
                                f"notebooks: {', '.join(known)}")
                continue
            if name not in parameter_names(known[section]):
                problems.append(f"--param {text}: '{name}' is not a parameter of notebooks/{known[section].name}"
                                f"{did_you_mean(name, parameter_names(known[section]))}")
                continue
            targets = [by_stem[section]] if section in by_stem else []
        else:
            targets = [nb for nb in selected if name in parameter_names(nb)]
            if not targets:
                every = sorted({n for nb in selected for n in parameter_names(nb)})
                problems.append(f"--param {text}: no notebook being executed ({', '.join(by_stem)}) has a parameter "
                                f"'{name}'{did_you_mean(name, every)}")
                continue
        for nb in targets:
            out[nb.stem] = {**(out.get(nb.stem) or {}), name: value}
    if problems:
        raise SystemExit(f"--param: {len(problems)} problem(s); nothing was run.\n  " + "\n  ".join(problems))
    return out
