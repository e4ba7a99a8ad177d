"""environment.yml must install the same pinned set as pyproject.toml."""

from __future__ import annotations

import tomllib
import yaml
from conftest import REPO_ROOT


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for req in requirements:
        if req.startswith("-e"):
            continue
        name, _, version = req.partition("==")
        assert version, f"unpinned requirement: {req}"
        pins[name.strip().lower()] = version.strip()
    return pins


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert _pins(pip_section) == _pins(project["dependencies"] + project["optional-dependencies"]["harness"])


def test_torch_is_pinned_to_the_cpu_wheel_version():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert "torch==2.13.0" in project["dependencies"]
