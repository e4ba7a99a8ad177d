"""The book runner: profiles are complete and checked before work, fingerprints track what matters,
`--only` is safe, a damaged executed copy is never trusted, the rendered chapters are replaced only by
complete ones, progress is printed. The runner's own tests use a fake book in a temporary folder
(papermill and the renderer stubbed out): nothing is executed. The model check: test_runbook_models.py."""

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
from persona.runbook import execution, layout, logs, model_check, publishing


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
    assert {"src/persona/paths.py", "src/persona/papi/experiment.py"} <= names
    assert not [n for n in names if n.startswith("src/persona/runbook")]


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
            monkeypatch.setattr(layout, name, value)
        monkeypatch.setattr(papermill, "execute_notebook", self._execute)
        monkeypatch.setattr(publishing, "build", lambda output, strict: self.builds.append((output, strict)))
        self.checked: list[list[tuple[str, dict]]] = []  # the models' preflight: recorded, passes (tested below)
        monkeypatch.setattr(model_check, "check_models", lambda runs, device=None: self.checked.append(
            [(nb.stem, dict(params)) for nb, params in runs]) or [])

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
        "01_alpha.ipynb", "02_beta.ipynb", "provenance.json", "provenance.md", "run_times.md", "summary.md"]


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


# A damaged executed copy is never trusted, and the rendered chapters are replaced only by complete ones
# (issue #28: a notebook cut in half was reported 'unchanged', then --render-only deleted book/generated and
# failed with a NotJSONError that named no file).

def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_cut_executed_notebook_is_executed_again_not_reported_unchanged(book, capsys):
    runbook.main(["--profile", "smoke", "--no-build"])
    capsys.readouterr()
    _cut(book.executed / "smoke" / "01_alpha.ipynb")
    runbook.main(["--profile", "smoke", "--no-build"])
    assert [stem for stem, _ in book.executions] == ["01_alpha", "02_beta", "01_alpha"]
    out = capsys.readouterr().out
    assert f"{book.executed / 'smoke' / '01_alpha.ipynb'} is damaged" in out and "executing it again" in out
    assert "01_alpha.ipynb: unchanged" not in out and "02_beta.ipynb: unchanged" in out
    assert book.checked[-1] == [("01_alpha", {"n": 3})]  # its models are checked like any notebook to run
    nbformat.read(book.generated / "01_alpha.ipynb", as_version=4)  # the book got the new, whole copy


def test_a_copy_from_before_checksums_is_still_checked_as_a_notebook(book, capsys):
    runbook.main(["--profile", "smoke", "--no-build"])
    stamp = book.executed / "smoke" / "01_alpha.json"
    stamp.write_text(json.dumps({k: v for k, v in json.loads(stamp.read_text()).items() if k != "sha256"}))
    assert runbook.unusable("smoke") == {}
    _cut(book.executed / "smoke" / "01_alpha.ipynb")
    assert "does not read as a notebook (NotJSONError)" in runbook.unusable("smoke")["01_alpha"]
    runbook.main(["--profile", "smoke", "--no-build"])
    assert [stem for stem, _ in book.executions] == ["01_alpha", "02_beta", "01_alpha"]


def test_render_only_names_a_cut_notebook_and_keeps_the_old_chapters_until_the_new_are_ready(book, capsys, monkeypatch):
    runbook.main(["--profile", "smoke", "--no-build"])
    before = _contents(book.generated)
    assert len(before) == 6
    _cut(book.executed / "smoke" / "01_alpha.ipynb")
    with pytest.raises(SystemExit, match=r"Not executed for profile 'smoke': 01_alpha \(.*01_alpha.ipynb is damaged"):
        runbook.publish("smoke")
    assert _contents(book.generated) == before
    # writing the new chapters fails half-way: the old ones stay, whole, and nothing is left beside them
    with monkeypatch.context() as mp:
        mp.setattr(publishing, "write_provenance", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
        with pytest.raises(OSError, match="disk full"):
            runbook.main(["--profile", "smoke", "--render-only"])
    assert _contents(book.generated) == before
    assert sorted(p.name for p in book.generated.parent.iterdir()) == ["generated"]
    capsys.readouterr()
    runbook.main(["--profile", "smoke", "--render-only"])  # no NotJSONError: a placeholder, and the file named
    out = capsys.readouterr().out
    assert f"placeholder page for 01_alpha ({book.executed / 'smoke' / '01_alpha.ipynb'} is damaged" in out
    assert sorted(_contents(book.generated)) == ["01_alpha.md", "02_beta.ipynb", "provenance.json", "provenance.md",
                                                 "run_times.md", "summary.md"]
    assert len(book.builds) == 1 and len(book.executions) == 2


def test_a_copy_that_is_not_a_notebook_is_named(tmp_path):
    (tmp_path / "01_x.ipynb").write_text('{"cells": [')
    with pytest.raises(SystemExit, match=r"01_x.ipynb does not read as a notebook \(NotJSONError\)"):
        publishing.copy_for_readers(tmp_path / "01_x.ipynb", tmp_path / "out.ipynb")
    assert not (tmp_path / "out.ipynb").exists()


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
    assert execution.estimate("01_alpha", "gpu") == "no earlier run, no estimate"
    _stamp(book, "smoke", "01_alpha", 12, "2026-01-01T00:00:00+00:00")
    _stamp(book, "cpu", "01_alpha", 600, "2026-02-01T00:00:00+00:00")
    assert "on profile 'cpu'" in execution.estimate("01_alpha", "gpu") and "10 min" in execution.estimate("01_alpha", "gpu")
    _stamp(book, "gpu", "01_alpha", 5400, "2026-03-01T00:00:00+00:00")
    assert execution.estimate("01_alpha", "gpu").startswith("about 1 h 30 min (the last run, 2026-03-01)")


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
    logs.configure_logging()
    out = logs.KernelOutput("nb", every=3600)
    out.write(" 10%|#    | 1/10\r")       # the first state of a bar is shown at once
    out.write(" 50%|#####| 5/10\r")       # later states at most every `every` seconds
    out.write("100%|#####| 10/10\ndone\n")
    out.close()
    lines = [line.split(" ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    assert lines == ["  nb |  10%|#    | 1/10", "  nb | 100%|#####| 10/10", "  nb | done"]


def test_logging_is_configured_once_however_often_it_is_called():
    logs.configure_logging()
    logs.configure_logging(verbose=True)
    for name in ("persona.runbook", "papermill"):
        ours = [h for h in logging.getLogger(name).handlers if isinstance(h, logs._StderrHandler)]
        assert len(ours) == 1, name
    assert logging.getLogger("papermill").level == logging.INFO
    logs.configure_logging()
    assert logging.getLogger("papermill").level == logging.WARNING


def test_provenance_names_the_code_version_profile_and_date(book):
    runbook.main(["--profile", "smoke", "--no-build"])
    text = (book.generated / "provenance.md").read_text()
    assert "| profile | `smoke` |" in text
    assert re.search(r"\| code version \| (git commit `[0-9a-f]{40}`|unknown)", text)
    assert re.search(r"\| built \| \d{4}-\d\d-\d\d \d\d:\d\d UTC \|", text)
    stamp = json.loads((book.executed / "smoke" / "01_alpha.json").read_text())
    assert set(stamp["code"]) == {"commit", "dirty"}


def test_run_times_table_sums_the_measured_seconds_in_minutes():
    records = [{"notebook": "01_alpha.ipynb", "seconds": 90.0, "code": {"commit": "a" * 40, "dirty": False}},
               {"notebook": "02_beta.ipynb", "seconds": 1710.0, "code": {"commit": "b" * 40, "dirty": False}}]
    table = runbook.run_times_table("cpu", records, ["03_gamma"])
    assert "| 01_alpha.ipynb | 1.5 min |" in table
    assert "| 02_beta.ipynb | 28.5 min |" in table
    assert "| 03_gamma.ipynb | not executed |" in table
    assert "| **all notebooks** | **30.0 min** |" in table
    assert "profile `cpu`" in table


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


# --------------------------------------------------------------------------------------------------
# --param: a parameter on top of the profile (issue #17: shards, local model folders, the rehearsal)

def test_param_values_are_yaml_and_names_are_checked():
    assert runbook.parse_param("shard=3/8") == (None, "shard", "3/8")
    assert runbook.parse_param("02_alignment.n_subjects=null") == ("02_alignment", "n_subjects", None)
    assert runbook.parse_param("04_trait.models=[a, /m/b]") == ("04_trait", "models", ["a", "/m/b"])
    assert runbook.parse_param("model=/models/Meta-Llama-3-8B-Instruct") == (None, "model", "/models/Meta-Llama-3-8B-Instruct")
    assert runbook.parse_param("batch_size=8") == (None, "batch_size", 8)
    assert runbook.parse_param("results_dir=") == (None, "results_dir", None)
    for bad in ("shard", "=3", "a.b.c=1", "x=[1"):
        with pytest.raises(ValueError, match="--param"):
            runbook.parse_param(bad)


def test_a_param_sets_the_parameter_of_every_notebook_that_takes_it_or_of_one(book):
    runbook.main(["--profile", "smoke", "--no-build", "--param", "k=9", "--param", "01_alpha.n=4",
                  "--param", "02_beta.items=[3, 4]"])
    assert book.executions == [("01_alpha", {"n": 4}), ("02_beta", {"k": 9, "items": [3, 4], "profile": "smoke",
                                                                   "model": "m"})]
    stamp = json.loads((book.executed / "smoke" / "02_beta.json").read_text())
    assert stamp["parameters"]["k"] == 9  # recorded like any parameter (provenance)


def test_a_param_changes_the_fingerprint_and_a_shard_stays_a_string(book):
    runbook.main(["--profile", "smoke", "--no-build", "--only", "02_beta"])
    runbook.main(["--profile", "smoke", "--no-build", "--only", "02_beta", "--param", "k=0/4"])
    runbook.main(["--profile", "smoke", "--no-build", "--only", "02_beta", "--param", "k=0/4"])  # unchanged now
    assert [params["k"] for _, params in book.executions] == [5, "0/4"]


def test_a_param_for_a_notebook_not_executed_is_checked_and_left_out(book):
    runbook.main(["--profile", "smoke", "--no-build", "--only", "02_beta", "--param", "01_alpha.n=4"])
    assert book.executions == [("02_beta", {"k": 5, "profile": "smoke", "model": "m"})]
    with pytest.raises(SystemExit, match="'01_alpah' matches no notebook .*did you mean '01_alpha'"):
        runbook.main(["--profile", "smoke", "--no-build", "--only", "02_beta", "--param", "01_alpah.n=4"])


@pytest.mark.parametrize("param, needles", [
    ("kk=1", ["no notebook being executed (01_alpha, 02_beta) has a parameter 'kk'", "did you mean 'k'"]),
    ("01_alpha.k=1", ["'k' is not a parameter of notebooks/01_alpha.ipynb"]),
    ("k", ["write NAME=VALUE or NOTEBOOK.NAME=VALUE"]),
])
def test_a_param_that_fits_no_notebook_stops_the_run_before_any_work(book, param, needles):
    with pytest.raises(SystemExit) as stop:
        runbook.main(["--profile", "smoke", "--param", param])
    for needle in needles:
        assert needle in str(stop.value.code)
    assert book.executions == [] and book.checked == []


def test_render_only_takes_no_param(book, capsys):
    with pytest.raises(SystemExit):
        runbook.main(["--profile", "smoke", "--render-only", "--param", "k=1"])
    assert "--render-only executes nothing" in capsys.readouterr().err


def test_the_models_of_the_notebooks_to_run_are_checked_first(book):
    runbook.main(["--profile", "smoke", "--no-build", "--only", "02_beta"])
    runbook.main(["--profile", "smoke", "--no-build"])  # 02_beta unchanged: only 01_alpha is checked
    assert book.checked == [[("02_beta", {"k": 5, "profile": "smoke", "model": "m"})], [("01_alpha", {"n": 3})]]


def test_a_failed_model_check_stops_the_run_before_any_notebook(book, monkeypatch):
    monkeypatch.setattr(model_check, "check_models", lambda runs, device=None: ["02_beta: Model 'm' cannot be loaded: ..."])
    with pytest.raises(SystemExit, match=r"The models cannot be run as asked: 1 problem\(s\); nothing was run.\n"
                                         r"  02_beta: Model 'm' cannot be loaded"):
        runbook.main(["--profile", "smoke"])
    assert book.executions == []


def test_readers_get_no_stderr_of_cells_whose_page_hides_it(tmp_path):
    nb = nbformat.v4.new_notebook()
    hidden = nbformat.v4.new_code_cell("x", metadata={"tags": ["remove-stderr"]})
    hidden.outputs = [nbformat.v4.new_output("stream", name="stderr", text="/some/machine/path: warning\n"),
                      nbformat.v4.new_output("stream", name="stdout", text="kept\n")]
    shown = nbformat.v4.new_code_cell("y")
    shown.outputs = [nbformat.v4.new_output("stream", name="stderr", text="shown on the page\n")]
    nb.cells = [hidden, shown]
    nbformat.write(nb, tmp_path / "in.ipynb")
    publishing.copy_for_readers(tmp_path / "in.ipynb", tmp_path / "out.ipynb")
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert [o["name"] for o in out.cells[0].outputs] == ["stdout"]
    assert [o["name"] for o in out.cells[1].outputs] == ["stderr"]


def test_readers_see_the_injected_parameters_as_a_collapsed_cell(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("n = 1", metadata={"tags": ["parameters", "hide-cell"]}),
                nbformat.v4.new_code_cell("n = 10", metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell("print(n)")]
    nbformat.write(nb, tmp_path / "in.ipynb")
    publishing.copy_for_readers(tmp_path / "in.ipynb", tmp_path / "out.ipynb")
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert out.cells[1].metadata["tags"] == ["injected-parameters", "hide-cell"]
    assert "hide-cell" not in out.cells[2].metadata.get("tags", [])
