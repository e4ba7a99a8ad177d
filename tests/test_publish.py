"""Publishing the book: `make publish` (ghp-import onto a gh-pages branch), the GitHub Pages workflow,
and the reader features of `_config.yml` (repository, issue, download and launch buttons). Offline: the
remote is a bare repository in a temporary folder."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT

from persona import runbook

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "book.yml"
CHAPTERS = ["book/intro.html", "book/generated/01_papi_data.html", "book/generated/02_alignment.html"]
IDENTITY = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.org",
            "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.org"}


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def site(tmp_path, monkeypatch) -> tuple[Path, Path, Path]:
    """A checkout (an empty repository), a tiny rendered book and a bare repository as the remote."""
    for name, value in IDENTITY.items():
        monkeypatch.setenv(name, value)
    checkout, html, remote = tmp_path / "checkout", tmp_path / "_build" / "html", tmp_path / "remote.git"
    checkout.mkdir()
    _git("init", "-q", cwd=checkout)
    _git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    (html / "_static").mkdir(parents=True)
    (html / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/intro.html" />')
    (html / "_static" / "style.css").write_text("body {}")
    for chapter in CHAPTERS:
        (html / chapter).parent.mkdir(parents=True, exist_ok=True)
        (html / chapter).write_text(f"<html><h1>{chapter}</h1></html>")
    return checkout, html, remote


def test_publish_pages_puts_the_book_on_the_gh_pages_branch_of_the_remote(site):
    checkout, html, remote = site
    runbook.publish_pages(html, remote=str(remote), repo=checkout)
    files = _git("ls-tree", "-r", "--name-only", "gh-pages", cwd=remote).split()
    assert "index.html" in files and ".nojekyll" in files and "_static/style.css" in files
    for chapter in CHAPTERS:
        assert chapter in files
    assert _git("show", "gh-pages:book/generated/02_alignment.html", cwd=remote) == \
        "<html><h1>book/generated/02_alignment.html</h1></html>"


def test_publishing_again_adds_a_commit_on_top(site):
    checkout, html, remote = site
    runbook.publish_pages(html, remote=str(remote), repo=checkout)
    (html / "book" / "generated" / "03_cost.html").write_text("<html>cost</html>")
    runbook.publish_pages(html, remote=str(remote), repo=checkout)
    assert "book/generated/03_cost.html" in _git("ls-tree", "-r", "--name-only", "gh-pages", cwd=remote).split()
    assert len(_git("rev-list", "gh-pages", cwd=remote).split()) == 2


def test_publish_pages_refuses_a_folder_without_a_book(tmp_path):
    with pytest.raises(SystemExit, match="no index.html"):
        runbook.publish_pages(tmp_path, remote=str(tmp_path / "nowhere.git"), repo=tmp_path)


def test_make_publish_runs_the_same_command():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^REMOTE \?= origin$", makefile, re.M)
    recipe = re.search(r"^publish:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, "no publish target"
    assert "-m persona.runbook publish-pages --html _build/html --remote $(REMOTE)" in recipe.group(1)
    assert re.search(r"^\.PHONY:.*\bpublish\b", makefile, re.M)


def test_ghp_import_is_pinned_in_both_environment_files():
    assert '"ghp-import==' in (REPO_ROOT / "pyproject.toml").read_text()
    assert "- ghp-import==" in (REPO_ROOT / "environment.yml").read_text()


# The GitHub Pages workflow.

@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_the_workflow_is_well_formed(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as true
    assert triggers and triggers["push"]["branches"] == ["main"]
    assert workflow["jobs"]
    for name, job in workflow["jobs"].items():
        assert job.get("runs-on"), f"job {name} has no runs-on"
        assert job.get("steps"), f"job {name} has no steps"
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), f"job {name}: a step needs exactly one of uses/run: {step}"


def test_the_workflow_renders_the_cpu_book_and_deploys_it_to_pages(workflow):
    steps = _steps(workflow)
    assert any(step.get("run", "").strip() == "make book" for step in steps)
    uses = [step.get("uses", "") for step in steps]
    for action in ("actions/checkout@", "actions/setup-python@", "actions/upload-pages-artifact@",
                   "actions/deploy-pages@"):
        assert any(u.startswith(action) for u in uses), action
    python = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert str(python["with"]["python-version"]) == "3.11"
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"
    assert workflow["permissions"]["pages"] == "write" and workflow["permissions"]["id-token"] == "write"


def test_the_workflow_caches_the_environment_and_the_models_and_has_the_data_token(workflow):
    caches = {s["with"]["path"]: s["with"]["key"] for s in _steps(workflow) if s.get("uses", "").startswith("actions/cache@")}
    assert "hashFiles('pyproject.toml')" in caches[".venv"]
    build = workflow["jobs"]["build"]
    cache_dir = build["env"]["PERSONA_CACHE_DIR"]
    assert os.path.relpath(cache_dir.replace("${{ github.workspace }}", "/ws"), "/ws") in caches
    assert build["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"


# Reader features of the rendered book.

@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((REPO_ROOT / "_config.yml").read_text())


def test_the_config_asks_for_repository_issue_and_launch_buttons(config):
    assert config["repository"]["url"].startswith("https://github.com/")
    assert config["repository"]["branch"] == "main"
    assert config["html"]["use_repository_button"] and config["html"]["use_issues_button"]
    assert config["html"].get("use_download_button", True)  # sphinx-book-theme's default
    launch = config["launch_buttons"]
    assert launch["binderhub_url"].startswith("https://") and launch["colab_url"].startswith("https://")
    assert "persona.runbook" in config["sphinx"]["extra_extensions"]


def _header_buttons(pagename: str) -> list[dict]:
    """The launch group as sphinx-book-theme builds it for a chapter (path_to_docs "", branch main)."""
    path = f"{pagename}.ipynb"
    return [
        {"type": "group", "label": "download-buttons", "buttons": [{"type": "link", "url": f"../../_sources/{path}"}]},
        {"type": "group", "label": "launch-buttons", "buttons": [
            {"type": "link", "text": "Binder", "url": f"https://binder.example/v2/gh/o/r/main?urlpath=lab/tree/{path}"},
            {"type": "link", "text": "Colab", "url": f"https://colab.example/github/o/r/blob/main/{path}"},
        ]},
    ]


def test_launch_buttons_of_a_chapter_open_its_source_notebook():
    context = {"header_buttons": _header_buttons("book/generated/02_alignment")}
    runbook.point_launch_buttons_at_sources(None, "book/generated/02_alignment", "page.html", context, None)
    download, launch = context["header_buttons"]
    urls = [b["url"] for b in launch["buttons"]]
    assert urls == ["https://binder.example/v2/gh/o/r/main?urlpath=lab/tree/notebooks/02_alignment.ipynb",
                    "https://colab.example/github/o/r/blob/main/notebooks/02_alignment.ipynb"]
    assert (REPO_ROOT / "notebooks" / "02_alignment.ipynb").exists()
    assert download["buttons"][0]["url"] == "../../_sources/book/generated/02_alignment.ipynb"  # the executed copy


def test_launch_buttons_of_other_pages_are_left_alone():
    context = {"header_buttons": _header_buttons("book/findings")}
    runbook.point_launch_buttons_at_sources(None, "book/findings", "page.html", context, None)
    assert context["header_buttons"] == _header_buttons("book/findings")
