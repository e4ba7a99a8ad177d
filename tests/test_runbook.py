"""The book runner: profiles are complete and checked before work, fingerprints track what matters,
`--only` is safe, progress is printed. The runner's own tests use a fake book in a temporary folder
(papermill and the renderer stubbed out): nothing is executed."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import papermill
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from persona import runbook
from persona.paths import REPO_ROOT


def test_every_notebook_has_a_parameters_cell_and_a_section_in_every_profile():
    notebooks = runbook.notebooks()
    assert notebooks, "no notebooks found"
    for profile in ("smoke", "cpu", "gpu"):
        sections = runbook.load_profile(profile)
        assert sections["_book"]["profile"] == profile
        for nb in notebooks:
            assert nb.stem in sections, f"profiles/{profile}.yaml has no section for {nb.stem}"
    for nb in notebooks:
        cells = nbformat.read(nb, as_version=4).cells
        tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{nb.name} needs exactly one cell tagged 'parameters'"
        for name in runbook.load_profile("cpu")[nb.stem]:
            assert name in tagged[0].source, f"{nb.name}: cpu profile sets '{name}', not in its parameters cell"


def test_gpu_profile_uses_a_real_model():
    assert "/" in runbook.load_profile("gpu")["_book"]["model"]


def test_gpu_profile_runs_alignment_at_the_papers_scale():
    """The notebooks' defaults are the smoke scale, so the gpu profile must set every scale knob itself."""
    gpu = runbook.load_profile("gpu")
    for stem in ("02_alignment", "03_cost"):
        section = gpu[stem]
        assert section["alphas"] == [0, 1, 2, 4, 6, 8], stem
        assert section["n_test_per_domain"] is None and section["n_known_per_domain"] is None, stem
    assert gpu["02_alignment"]["n_subjects"] is None  # all 300


def test_every_profile_key_is_a_notebook_parameter():
    for profile in ("smoke", "gpu"):
        for nb in runbook.notebooks():
            cells = nbformat.read(nb, as_version=4).cells
            source = next(c.source for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
            for name in runbook.load_profile(profile)[nb.stem]:
                assert f"{name} = " in source, f"{nb.name}: {profile} profile sets '{name}', not a parameter"


def test_fingerprint_changes_with_notebook_and_parameters(tmp_path):
    nb = tmp_path / "01_x.ipynb"
    nb.write_text("{}")
    base = runbook.fingerprint(nb, {"n": 1})
    assert runbook.fingerprint(nb, {"n": 1}) == base
    assert runbook.fingerprint(nb, {"n": 2}) != base
    nb.write_text('{"cells": []}')
    assert runbook.fingerprint(nb, {"n": 1}) != base


def test_the_fingerprint_covers_the_package_but_not_the_runner():
    names = {p.relative_to(REPO_ROOT).as_posix() for p in runbook.fingerprinted_sources()}
    assert "src/persona/paths.py" in names and "src/persona/runbook.py" not in names


def test_book_wide_model_is_passed_unless_overridden():
    profile = {"_book": {"profile": "cpu", "model": "m1"}, "01_x": {"model": "m2"}, "02_y": {"k": 1}}

    missing = Path("/nonexistent")
    assert runbook.parameters_for(profile, missing / "01_x.ipynb")["model"] == "m2"
    assert runbook.parameters_for(profile, missing / "02_y.ipynb") == {"k": 1, "model": "m1", "profile": "cpu"}


def test_unknown_profile_is_refused():
    with pytest.raises(SystemExit, match="Unknown profile"):
        runbook.load_profile("nope")


# --------------------------------------------------------------------------------------------------
# The runner on a fake book: two tiny notebooks, a profile, papermill and the renderer stubbed out.

FAKE_PARAMETERS = {
    "01_alpha": "n = 1          # a comment\nseed = 0\n",
    "02_beta": 'profile = "smoke"\nmodel = "m"\nk = 2\nitems = [1,\n         2]\n',
}
FAKE_PROFILE = "_book:\n  profile: smoke\n  model: m\n01_alpha:\n  n: 3\n02_beta:\n  k: 5\n"


class FakeBook:
    def __init__(self, root: Path, monkeypatch):
        self.root = root
        self.notebooks, self.profiles = root / "notebooks", root / "profiles"
        self.generated, self.executed = root / "book" / "generated", root / "_build" / "executed"
        for folder in (self.notebooks, self.profiles, self.generated):
            folder.mkdir(parents=True)
        for stem, source in FAKE_PARAMETERS.items():
            nb = new_notebook(cells=[new_markdown_cell(f"# The {stem[3:]} chapter"),
                                     new_code_cell(source, metadata={"tags": ["parameters"]}),
                                     new_code_cell("print('hello')")])
            nbformat.write(nb, self.notebooks / f"{stem}.ipynb")
        self.write_profile(FAKE_PROFILE)
        self.executions: list[tuple[str, dict]] = []
        self.builds: list[tuple[Path, bool]] = []
        for name, value in (("NOTEBOOK_DIR", self.notebooks), ("PROFILE_DIR", self.profiles),
                            ("GENERATED_DIR", self.generated), ("EXECUTED_DIR", self.executed)):
            monkeypatch.setattr(runbook, name, value)
        monkeypatch.setattr(papermill, "execute_notebook", self._execute)
        monkeypatch.setattr(runbook, "build", lambda output, strict: self.builds.append((output, strict)))

    def write_profile(self, text: str, name: str = "smoke") -> None:
        (self.profiles / f"{name}.yaml").write_text(text)

    def _execute(self, input_path, output_path, parameters=None, stdout_file=None, stderr_file=None, **kwargs):
        self.executions.append((Path(input_path).stem, dict(parameters or {})))
        if stdout_file is not None:
            stdout_file.write(f"hello from {Path(input_path).stem}\npartial")
        if stderr_file is not None:
            stderr_file.write("a warning\n")
        shutil.copyfile(input_path, output_path)


@pytest.fixture
def book(tmp_path, monkeypatch):
    return FakeBook(tmp_path, monkeypatch)


def test_only_with_an_unknown_name_is_an_error_listing_the_notebooks(book, capsys):
    with pytest.raises(SystemExit) as stop:
        runbook.main(["--profile", "smoke", "--only", "02_bta"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "02_bta" in err and "did you mean '02_beta'" in err and "known: 01_alpha, 02_beta" in err
    assert book.executions == [] and book.builds == []


def test_help_lists_the_profiles_and_the_notebooks(book, capsys):
    book.write_profile(FAKE_PROFILE, "gpu")
    with pytest.raises(SystemExit) as stop:
        runbook.main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "gpu, smoke" in out and "01_alpha, 02_beta" in out


def test_only_executes_that_notebook_and_ends_cleanly_while_others_are_missing(book, capsys):
    (book.generated / "earlier.md").write_text("an earlier build")
    runbook.main(["--profile", "smoke", "--only", "02_beta"])  # returns: exit status 0
    assert book.executions == [("02_beta", {"k": 5, "profile": "smoke", "model": "m"})]
    assert (book.generated / "earlier.md").exists(), "book/generated was touched"
    assert book.builds == []
    out = capsys.readouterr().out
    assert "not rendering" in out and "01_alpha" in out
    assert "--only 01_alpha" in out and "--render-only" in out


def test_the_book_is_rendered_once_every_notebook_has_been_executed(book):
    runbook.main(["--profile", "smoke", "--only", "01_alpha"])
    assert book.builds == []
    runbook.main(["--profile", "smoke", "--only", "02_beta.ipynb"])  # a file name is accepted too
    assert [stem for stem, _ in book.executions] == ["01_alpha", "02_beta"]
    assert len(book.builds) == 1
    assert sorted(p.name for p in book.generated.iterdir()) == [
        "01_alpha.ipynb", "02_beta.ipynb", "provenance.json", "provenance.md", "summary.md"]


def test_unchanged_notebooks_are_not_executed_again(book, capsys):
    runbook.main(["--profile", "smoke", "--no-build"])
    runbook.main(["--profile", "smoke", "--no-build"])
    assert [stem for stem, _ in book.executions] == ["01_alpha", "02_beta"]
    assert "unchanged, not re-executed" in capsys.readouterr().out


def test_publish_checks_before_it_replaces_the_generated_folder(book):
    (book.generated / "earlier.md").write_text("an earlier build")
    with pytest.raises(SystemExit, match="Not executed for profile 'smoke': 01_alpha, 02_beta"):
        runbook.publish("smoke")
    assert (book.generated / "earlier.md").exists()


def test_an_interrupted_execution_does_not_count_as_executed(book):
    runbook.main(["--profile", "smoke", "--no-build"])
    (book.executed / "smoke" / "01_alpha.json").unlink()  # what a failed or interrupted run leaves
    assert runbook.missing_notebooks("smoke") == ["01_alpha"]


def test_render_only_renders_what_was_executed_with_placeholders(book, capsys):
    runbook.main(["--profile", "smoke", "--only", "01_alpha"])
    runbook.main(["--profile", "smoke", "--render-only"])
    assert [stem for stem, _ in book.executions] == ["01_alpha"]
    assert len(book.builds) == 1
    assert (book.generated / "01_alpha.ipynb").exists()
    placeholder = (book.generated / "02_beta.md").read_text()
    assert placeholder.startswith("# The beta chapter")
    assert "python -m persona.runbook --profile smoke --only 02_beta" in placeholder
    assert "02_beta.ipynb | not executed" in (book.generated / "provenance.md").read_text()
    assert "Not executed for this profile: 02_beta" in (book.generated / "summary.md").read_text()


def test_render_only_refuses_a_strict_build_of_an_incomplete_book(book):
    runbook.main(["--profile", "smoke", "--only", "01_alpha"])
    with pytest.raises(SystemExit, match="--strict"):
        runbook.main(["--profile", "smoke", "--render-only", "--strict"])
    assert book.builds == []


def test_render_only_takes_no_only(book, capsys):
    with pytest.raises(SystemExit):
        runbook.main(["--profile", "smoke", "--render-only", "--only", "01_alpha"])
    assert "--render-only executes nothing" in capsys.readouterr().err


# Parameters are checked before any work.

def _stops_before_any_notebook(book, *needles: str) -> None:
    with pytest.raises(SystemExit) as stop:
        runbook.main(["--profile", "smoke"])
    message = str(stop.value.code)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    assert book.executions == [] and book.builds == []


def test_a_section_that_names_no_notebook_stops_the_run(book):
    book.write_profile(FAKE_PROFILE + "02_betta:\n  k: 1\n")
    _stops_before_any_notebook(book, "smoke.yaml", "section '02_betta' matches no notebook",
                               "did you mean '02_beta'", "allowed sections: _book, 01_alpha, 02_beta")


def test_a_key_that_is_not_a_parameter_stops_the_run(book):
    book.write_profile(FAKE_PROFILE.replace("  n: 3\n", "  n: 3\n  n_boot: 10\n"))
    _stops_before_any_notebook(book, "smoke.yaml", "section '01_alpha': 'n_boot' is not a parameter of "
                               "notebooks/01_alpha.ipynb", "its parameters: n, seed")


def test_every_problem_is_named_at_once(book):
    book.write_profile(FAKE_PROFILE + "03_gamma: {}\n_book_extra: 1\n02_beta:\n  kk: 1\n")
    _stops_before_any_notebook(book, "3 problem(s)", "'03_gamma'", "'_book_extra'", "'kk'")


def test_the_runner_section_takes_only_its_own_keys(book):
    book.write_profile(FAKE_PROFILE.replace("  model: m\n", "  modle: m\n"))
    _stops_before_any_notebook(book, "section '_book': 'modle' is not a parameter", "did you mean 'model'",
                               "its parameters: profile, model")


def test_a_malformed_profile_stops_the_run(book):
    book.write_profile("01_alpha:\n  n: [3\n02_beta:\n  k: 5\n")
    _stops_before_any_notebook(book, "smoke.yaml is not valid YAML", "line")


def test_a_profile_that_is_not_a_mapping_stops_the_run(book):
    book.write_profile("- 01_alpha\n- 02_beta\n")
    _stops_before_any_notebook(book, "must map section names to parameters")


def test_parameter_names_are_the_assignments_of_the_parameters_cell(book):
    assert runbook.parameter_names(book.notebooks / "02_beta.ipynb") == ["profile", "model", "k", "items"]
    assert runbook.parameter_names(book.root / "missing.ipynb") == []


def test_the_real_profiles_pass_the_check():
    for name in runbook.profiles():
        assert runbook.check_profile(runbook.load_profile(name)) == []


# Progress a person can follow.

def _stamp(book, profile: str, stem: str, seconds: float, finished: str) -> None:
    folder = book.executed / profile
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps({"profile": profile, "seconds": seconds, "finished": finished}))


def test_the_estimate_comes_from_the_last_run_of_the_profile_else_of_any_profile(book):
    assert runbook.estimate("01_alpha", "gpu") == "no earlier run, no estimate"
    _stamp(book, "smoke", "01_alpha", 12, "2026-01-01T00:00:00+00:00")
    _stamp(book, "cpu", "01_alpha", 600, "2026-02-01T00:00:00+00:00")
    assert "on profile 'cpu'" in runbook.estimate("01_alpha", "gpu") and "10 min" in runbook.estimate("01_alpha", "gpu")
    _stamp(book, "gpu", "01_alpha", 5400, "2026-03-01T00:00:00+00:00")
    assert runbook.estimate("01_alpha", "gpu").startswith("about 1 h 30 min (the last run, 2026-03-01)")


def test_each_notebook_starts_with_an_estimate_and_its_output_reaches_the_log(book, capsys):
    _stamp(book, "cpu", "02_beta", 75, "2026-02-01T00:00:00+00:00")
    runbook.main(["--profile", "smoke", "--no-build"])
    captured = capsys.readouterr()
    assert "01_alpha: no earlier run" in captured.out
    assert "02_beta: no earlier run on 'smoke'; on profile 'cpu'" in captured.out and "75 s" in captured.out
    assert "01_alpha | hello from 01_alpha" in captured.err
    assert "02_beta | partial" in captured.err  # an unfinished last line is flushed at the end
    assert "02_beta | a warning" in captured.err


def test_kernel_output_keeps_what_a_terminal_would_show_of_a_progress_bar(capsys):
    runbook.configure_logging()
    out = runbook.KernelOutput("nb", every=3600)
    out.write(" 10%|#    | 1/10\r")       # the first state of a bar is shown at once
    out.write(" 50%|#####| 5/10\r")       # later states at most every `every` seconds
    out.write("100%|#####| 10/10\ndone\n")
    out.close()
    lines = [line.split(" ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    assert lines == ["  nb |  10%|#    | 1/10", "  nb | 100%|#####| 10/10", "  nb | done"]


def test_logging_is_configured_once_however_often_it_is_called():
    runbook.configure_logging()
    runbook.configure_logging(verbose=True)
    for name in ("persona.runbook", "papermill"):
        ours = [h for h in logging.getLogger(name).handlers if isinstance(h, runbook._StderrHandler)]
        assert len(ours) == 1, name
    assert logging.getLogger("papermill").level == logging.INFO
    runbook.configure_logging()
    assert logging.getLogger("papermill").level == logging.WARNING


def test_provenance_names_the_code_version_profile_and_date(book):
    runbook.main(["--profile", "smoke", "--no-build"])
    text = (book.generated / "provenance.md").read_text()
    assert "| profile | `smoke` |" in text
    assert re.search(r"\| code version \| (git commit `[0-9a-f]{40}`|unknown)", text)
    assert re.search(r"\| built \| \d{4}-\d\d-\d\d \d\d:\d\d UTC \|", text)
    stamp = json.loads((book.executed / "smoke" / "01_alpha.json").read_text())
    assert set(stamp["code"]) == {"commit", "dirty"}


def test_code_version_reports_dirty_checkouts(tmp_path):
    identity = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True,
                       env={**os.environ, **identity})

    assert runbook.code_version(tmp_path) == {"commit": None, "dirty": None}
    git("init", "-q")
    (tmp_path / "a.txt").write_text("a")
    git("add", "a.txt")
    git("commit", "-q", "-m", "a")
    clean = runbook.code_version(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{40}", clean["commit"]) and clean["dirty"] is False
    (tmp_path / "a.txt").write_text("b")
    assert runbook.code_version(tmp_path) == {"commit": clean["commit"], "dirty": True}
