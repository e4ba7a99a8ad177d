"""The package's rooms: the engine knows no task, the two studies do not import each other, plumbing
imports no room, ``transfer`` (which asks a question across both studies) sits above them, and no module
imports upward (which would make a cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "persona"
PLUMBING = {"data", "models", "paths", "runs", "timing", "steering", "verdicts", "report", "audit", "provision",
            "runbook"}
#: What each room may import from the package (besides itself).
ALLOWED = {
    "engine": set(),
    "papi": {"engine", *PLUMBING},
    "trait": {"engine", *PLUMBING},
    "plumbing": PLUMBING,
    "transfer": {"engine", "papi", "trait", *PLUMBING},
}


def _room(path: Path) -> str:
    first = path.relative_to(PACKAGE).parts[0]
    if first == "transfer.py":
        return "transfer"
    return first if first in ("engine", "papi", "trait") else "plumbing"


def _persona_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("persona"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:  # "from persona import papi"
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("persona."))
    return found


def test_no_room_imports_from_a_room_it_must_not_know():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        room = _room(path)
        for target in _persona_imports(path):
            if target != room and target not in ALLOWED[room]:
                problems.append(f"{path.relative_to(PACKAGE)} ({room}) imports persona.{target}")
    assert not problems, "\n".join(problems)


def test_the_engine_holds_no_task_text():
    task_phrases = ["Given a statement of you", "Here are some of your behaviors", "Given a situation",
                    "Now I will briefly describe a situation", "Very Accurate", "personality_prompt"]
    for path in sorted((PACKAGE / "engine").rglob("*.py")):
        text = path.read_text()
        if path.name == "testing.py":  # a generic corpus for tiny tokenizers may use common scale words
            task_phrases_here = task_phrases[:4] + task_phrases[5:]
        else:
            task_phrases_here = task_phrases
        for phrase in task_phrases_here:
            assert phrase not in text, f"engine/{path.name} holds task text {phrase!r}"


def test_plumbing_modules_do_not_import_the_studies():
    for name in PLUMBING:
        module = PACKAGE / f"{name}.py"
        paths = [module] if module.exists() else sorted((PACKAGE / name).rglob("*.py"))  # a module or a package
        assert paths, f"persona.{name} is listed as plumbing but is neither a module nor a package"
        for path in paths:
            assert not _persona_imports(path) & {"engine", "papi", "trait"}, path.relative_to(PACKAGE)
