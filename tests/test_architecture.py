"""The package's rooms: the engine knows no task, the two studies do not import each other, plumbing
imports no room, ``transfer`` (which asks a question across both studies) sits above them, ``harness`` (the
lm-evaluation-harness tasks) sits above the studies and nothing imports it, and no module imports upward
(which would make a cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "persona"
PLUMBING = {"datafiles", "files", "gate", "models", "paths", "runs", "timing", "steering", "verdicts", "report", "provision",
            "runbook"}
#: What each room may import from the package (besides itself).
ALLOWED = {
    "engine": set(),
    "papi": {"engine", *PLUMBING},
    "trait": {"engine", *PLUMBING},
    "plumbing": PLUMBING,
    "transfer": {"engine", "papi", "trait", *PLUMBING},
    "harness": {"engine", "papi", "trait", *PLUMBING},
}


def _room(path: Path) -> str:
    first = path.relative_to(PACKAGE).parts[0]
    if first == "transfer.py":
        return "transfer"
    return first if first in ("engine", "papi", "trait", "harness") else "plumbing"


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
        for phrase in task_phrases:
            assert phrase not in text, f"engine/{path.name} holds task text {phrase!r}"


def test_plumbing_modules_do_not_import_the_studies():
    checked = 0
    for name in PLUMBING:
        module, package = PACKAGE / f"{name}.py", PACKAGE / name
        assert module.exists() != package.is_dir(), f"plumbing {name!r} must be one module or one package"
        for path in [module] if module.exists() else sorted(package.rglob("*.py")):
            assert not _persona_imports(path) & {"engine", "papi", "trait"}, path.relative_to(PACKAGE)
            checked += 1
    assert checked >= len(PLUMBING)


def test_nothing_imports_the_harness_and_only_its_task_module_imports_lm_eval():
    """The harness is an optional extra: the book must run without lm-eval installed."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        if _room(path) != "harness":
            assert "harness" not in _persona_imports(path), path
        if any(m == "lm_eval" or m.startswith("lm_eval.") for m in modules):
            assert path.relative_to(PACKAGE).as_posix() == "harness/task.py", path

