"""The book runner: profiles are complete, fingerprints track what matters."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from persona import runbook


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


def test_book_wide_model_is_passed_unless_overridden():
    profile = {"_book": {"profile": "cpu", "model": "m1"}, "01_x": {"model": "m2"}, "02_y": {"k": 1}}

    missing = Path("/nonexistent")
    assert runbook.parameters_for(profile, missing / "01_x.ipynb")["model"] == "m2"
    assert runbook.parameters_for(profile, missing / "02_y.ipynb") == {"k": 1, "model": "m1", "profile": "cpu"}


def test_unknown_profile_is_refused():
    with pytest.raises(SystemExit, match="Unknown profile"):
        runbook.load_profile("nope")
