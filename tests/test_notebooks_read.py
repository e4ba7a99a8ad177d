"""Readers see the study, not the plumbing: every chapter notebook reads as prose and short cells.

Rules, for every notebook in notebooks/ (a cell is *visible* unless a tag hides its input: remove-input,
hide-input, remove-cell, hide-cell, or it is the parameters cell):

1. no glue call (``glue``, ``glue_all``, ``glue_verdict``) in a visible code cell: numbers reach the prose from
   hidden cells tagged remove-input, right after the cell that computes them;
2. a markdown cell with at least one sentence right before every visible code cell, saying what it shows (a
   heading alone is not a sentence);
3. no code line over 110 characters in a visible cell (the rendered page would scroll sideways);
4. no code cell over 25 lines, hidden or not (parameters cells excepted): longer logic belongs in the package.

Besides, no import may rebind a parameter's name (the chapter would read a module instead of its parameter).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
HIDING = {"remove-input", "hide-input", "remove-cell", "hide-cell", "parameters"}
MAX_LINE, MAX_CELL = 110, 25
GLUE_CALL = re.compile(r"\bglue(?:_all|_verdict)?\s*\(")
# Notebooks being reworked this round; they must pass once that work lands.
PENDING: set[str] = set()  # notebooks not yet held to the rules (none)


def _tags(cell) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def visible(cell) -> bool:
    return cell.cell_type == "code" and not _tags(cell) & HIDING


def has_sentence(markdown: str) -> bool:
    """Prose beyond headings and MyST targets, with a sentence's end (. : ? !) somewhere."""
    prose = [line for line in markdown.splitlines()
             if line.strip() and not line.lstrip().startswith("#") and not re.fullmatch(r"\s*\(.+\)=\s*", line)]
    return bool(re.search(r"\w.*[.:?!]", " ".join(prose)))


def glue_in_sight(cells) -> list[str]:
    return [f"cell {i}: {line.strip()}" for i, c in enumerate(cells) if visible(c)
            for line in c.source.splitlines() if GLUE_CALL.search(line)]


def introduced(cells, i: int) -> bool:
    return i > 0 and cells[i - 1].cell_type == "markdown" and has_sentence(cells[i - 1].source)


def unintroduced(cells) -> list[str]:
    return [f"cell {i}: {c.source.strip()[:60]}" for i, c in enumerate(cells) if visible(c) and not introduced(cells, i)]


def long_lines(cells) -> list[str]:
    return [f"cell {i}: {len(line)} characters: {line.strip()[:60]}" for i, c in enumerate(cells) if visible(c)
            for line in c.source.splitlines() if len(line) > MAX_LINE]


def long_cells(cells) -> list[str]:
    return [f"cell {i}: {n} lines" for i, c in enumerate(cells)
            if c.cell_type == "code" and "parameters" not in _tags(c)
            and (n := len(c.source.rstrip().splitlines())) > MAX_CELL]


RULES = {"glue in a visible cell": glue_in_sight, "visible cell without a sentence before it": unintroduced,
         f"code line over {MAX_LINE} characters": long_lines, f"code cell over {MAX_CELL} lines": long_cells}


def _cases() -> list:
    pending = pytest.mark.xfail(strict=False, reason="pending: lead edits them this round")
    return [pytest.param(path, id=path.stem, marks=[pending] if path.stem in PENDING else []) for path in NOTEBOOKS]


def test_every_chapter_is_checked():
    assert {p.stem for p in NOTEBOOKS} >= {"01_papi_data", "02_alignment", "03_cost", "04_trait", "05_transfer"}


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("path", _cases())
def test_notebook_reads_as_prose(path, rule):
    cells = nbformat.read(path, as_version=4).cells
    problems = RULES[rule](cells)
    assert not problems, f"{path.name}: {rule}:\n" + "\n".join(problems)


def test_the_rules_catch_a_notebook_that_shows_its_plumbing():
    from nbformat.v4 import new_code_cell, new_markdown_cell

    hidden = {"tags": ["remove-input"]}
    cells = [
        new_code_cell("n = 3", metadata={"tags": ["parameters"]}),
        new_markdown_cell("## A heading alone"),
        new_code_cell("x = compute(n)\nglue_all({'x': x})"),                 # 0 sentence, glue in sight
        new_code_cell("glue('x', x, display=False)", metadata=hidden),       # fine: hidden
        new_code_cell("y = " + "1 + " * 40 + "1"),                             # no markdown before, long line
        new_markdown_cell("The table below shows y."),
        new_code_cell("\n".join(f"z{i} = {i}" for i in range(26))),          # 26 lines
        new_markdown_cell("(a-label)=\nThe figure shows z."),
        new_code_cell("from myst_nb import glue\nplot(z0)"),                 # an import is not a call
    ]
    assert glue_in_sight(cells) == ["cell 2: glue_all({'x': x})"]
    assert [p.split(":")[0] for p in unintroduced(cells)] == ["cell 2", "cell 4"]
    assert [p.split(":")[0] for p in long_lines(cells)] == ["cell 4"]
    assert long_cells(cells) == ["cell 6: 26 lines"]
    assert has_sentence("(trait-gate)=\n## Title\n\nA check runs first.") and not has_sentence("### Title")


def shadowed_parameters(cells) -> set[str]:
    """Parameters that a later import rebinds: the notebook would then read a module where it meant the value
    the runbook passed (04_trait imported ``scoring`` over its parameter of that name, and every run stopped)."""
    import ast

    params, imported = set(), set()
    for c in cells:
        if c.cell_type != "code":
            continue
        tree = ast.parse(c.source)
        if "parameters" in _tags(c):
            params |= {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                       if isinstance(t, ast.Name)}
        imported |= {(a.asname or a.name).split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}
    return params & imported


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_import_rebinds_a_parameter(path):
    assert not shadowed_parameters(nbformat.read(path, as_version=4).cells)


def test_a_rebound_parameter_is_found():
    from nbformat.v4 import new_code_cell

    cells = [new_code_cell('scoring = ["letter"]\nn = 2', metadata={"tags": ["parameters"]}),
             new_code_cell("import numpy as np\nfrom persona.trait import claims, scoring")]
    assert shadowed_parameters(cells) == {"scoring"}
