"""The rendered book, opened in headless Chromium: every chapter loads, figures are images, no
execution error or traceback shows, glued numbers are filled in; a screenshot of the findings page
is saved with the build. Notebook chapters offer their executed .ipynb for download and launch their
source notebook on Binder and Colab; the provenance page names the commit, profile and date.

Runs after the book is built (``make test`` builds the smoke book first). The HTML folder is
``PERSONA_BOOK_HTML`` or ``_build/smoke/_build/html``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("PERSONA_BOOK_HTML", REPO_ROOT / "_build" / "smoke" / "_build" / "html"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=5000"]

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
    pytest.mark.skipif(not (HTML / "index.html").exists(), reason=f"no built book at {HTML}"),
]


def _toc_files() -> list[str]:
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def _chromium(*args: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    """The DOM of every chapter, as Chromium rendered it."""
    return {f: _chromium("--dump-dom", (HTML / f"{f}.html").as_uri()) for f in _toc_files()}


def test_every_chapter_loads(pages):
    for name, dom in pages.items():
        assert "<article" in dom or 'role="main"' in dom, f"{name} did not render"
        title = re.search(r"<h1[^>]*>(.*?)</h1>", dom, re.S)
        assert title, f"{name} has no title"


def test_no_execution_error_or_traceback(pages):
    for name, dom in pages.items():
        assert "Traceback (most recent call last)" not in dom, f"traceback on {name}"
        assert 'class="output traceback' not in dom and "cell_output error" not in dom, f"error output on {name}"


def test_notebook_chapters_show_figures_as_images(pages):
    for name, dom in pages.items():
        if name.startswith("book/generated/"):
            images = re.findall(r'<img[^>]+src="([^"]+\.(?:png|svg|jpg))"', dom)
            assert images, f"no figure on {name}"
            for src in images:
                assert (HTML / Path(name).parent / src).resolve().exists() or src.startswith("http"), src


def test_glued_numbers_are_filled_in(pages):
    pasted = 0
    for name, dom in pages.items():
        spans = re.findall(r'<span class="pasted-text">(.*?)</span>', dom, re.S)
        assert all(s.strip() for s in spans), f"empty glued value on {name}"
        pasted += len(spans)
    assert pasted > 0, "no glued number anywhere in the book"


def test_findings_verdicts_link_to_evidence_that_exists(pages):
    """Every claim with a computed verdict links to its evidence; every internal link lands on a real anchor."""
    dom = pages.get("book/findings")
    if dom is None:
        pytest.skip("the book has no findings page yet")
    rows = [r for r in re.findall(r"<tr[^>]*>(.*?)</tr>", dom, re.S) if "pasted-text" in r]
    assert len(rows) >= 8, "fewer glued verdict rows than claims"
    for row in rows:
        assert "reference internal" in row, f"a verdict without a link to its evidence: {re.sub('<[^>]+>', '', row)[:120]}"
    tags = [t for t in re.findall(r"<a\s[^>]*>", dom) if "reference internal" in t]
    for tag in tags:
        href = re.search(r'href="([^"]+)"', tag).group(1)
        path, _, anchor = href.partition("#")
        target = (HTML / "book" / path).resolve() if path else HTML / "book" / "findings.html"
        assert target.exists(), f"broken link {href}"
        if anchor:
            assert f'id="{anchor}"' in target.read_text(encoding="utf-8"), f"no anchor {anchor} in {path}"


def test_findings_screenshot_is_saved():
    findings = HTML / "book" / "findings.html"
    if not findings.exists():
        pytest.skip("the book has no findings page yet")
    shot = HTML / "findings.png"
    _chromium(f"--screenshot={shot}", "--window-size=1280,2400", findings.as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000


def _links(dom: str) -> list[tuple[str, str]]:
    """(class, href) of every link of a page."""
    links = []
    for tag in re.findall(r"<a\s[^>]*>", dom):
        href, classes = re.search(r'href="([^"]*)"', tag), re.search(r'class="([^"]*)"', tag)
        if href:
            links.append((classes.group(1) if classes else "", href.group(1).replace("&amp;", "&")))
    return links


def _notebook_chapters() -> list[str]:
    return [f for f in _toc_files() if f.startswith("book/generated/") and (HTML / "_sources" / f"{f}.ipynb").exists()]


def test_notebook_chapters_offer_the_executed_notebook_for_download(pages):
    chapters = _notebook_chapters()
    assert chapters, "no notebook chapter in the book"
    for name in chapters:
        downloads = [href for classes, href in _links(pages[name]) if "btn-download-source-button" in classes]
        assert downloads and downloads[0].endswith(".ipynb"), f"no .ipynb download on {name}"
        notebook = (HTML / Path(name).parent / downloads[0]).resolve()
        assert notebook.exists(), f"the download of {name} leads nowhere: {downloads[0]}"
        text = notebook.read_text(encoding="utf-8")
        assert '"outputs": [\n' in text and '"output_type"' in text, f"the download of {name} has no outputs"
        assert "injected-parameters" in text, f"the download of {name} is not the papermill-executed copy"


def test_notebook_chapters_launch_their_source_notebook_on_binder_and_colab(pages):
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    binder, colab = config["launch_buttons"]["binderhub_url"], config["launch_buttons"]["colab_url"]
    for name in _notebook_chapters():
        source = f"notebooks/{Path(name).name}.ipynb"
        assert (REPO_ROOT / source).exists(), source
        hrefs = [href for _, href in _links(pages[name])]
        on_binder = [h for h in hrefs if h.startswith(binder)]
        on_colab = [h for h in hrefs if h.startswith(colab)]
        assert on_binder and on_binder[0].endswith(f"tree/{source}"), f"Binder link of {name}: {on_binder}"
        assert on_colab and on_colab[0].endswith(f"/blob/{config['repository']['branch']}/{source}"), \
            f"Colab link of {name}: {on_colab}"
        assert any(h.startswith(config["repository"]["url"]) for h in hrefs), f"no repository link on {name}"


def test_the_provenance_page_names_commit_profile_and_date(pages):
    dom = pages.get("book/provenance")
    assert dom is not None, "no provenance page in _toc.yml"
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))
    assert re.search(r"code version git commit [0-9a-f]{40}", text) or "code version unknown (not a git checkout)" in text
    assert re.search(r"profile (smoke|cpu|gpu) ", text), "no profile"
    assert re.search(r"built \d{4}-\d\d-\d\d \d\d:\d\d UTC", text), "no build date"
    intro = re.sub(r"<[^>]+>", " ", pages["book/intro"])
    assert re.search(r"at commit\s+[0-9a-f]{7}", intro), "the intro does not name the commit"
    assert 'href="provenance.html"' in pages["book/intro"], "the intro does not link to the provenance page"
