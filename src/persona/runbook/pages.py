"""Publishing the rendered book on GitHub Pages: the ``gh-pages`` branch of a remote (``make publish``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from persona.paths import REPO_ROOT, shown
from persona.runbook.layout import say
from persona.runbook.provenance import code_version, version_label


def publish_pages(html: Path, remote: str = "origin", branch: str = "gh-pages", repo: Path | None = None) -> None:
    """Commit the rendered book ``html`` to ``branch`` (with ``.nojekyll``) with ghp-import, and push it to
    ``remote`` (a remote's name, a URL or a path). ``repo`` is the git checkout to work in (this one)."""
    repo = Path(repo or REPO_ROOT)
    html = Path(html).resolve()
    if not (html / "index.html").exists():
        raise SystemExit(f"{shown(html)} holds no index.html: render the book first (make book)")
    message = f"Publish the rendered book (checkout at {version_label(code_version(repo))})"
    # Best effort: know the remote's branch, so that ghp-import builds on it and the push is a fast-forward.
    subprocess.run(["git", "-C", str(repo), "fetch", "--quiet", remote, branch], capture_output=True)
    cmd = [sys.executable, "-m", "ghp_import", "--no-jekyll", "--push", "--remote", remote, "--branch", branch,
           "--message", message, str(html)]
    say(" ".join(cmd[1:]))
    subprocess.run(cmd, check=True, cwd=repo)
    say(f"{shown(html)} pushed to branch '{branch}' of '{remote}'; with GitHub Pages serving that branch, "
        f"the book is at https://<owner>.github.io/<repository>/")
