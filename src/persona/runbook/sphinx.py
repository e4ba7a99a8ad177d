"""The runner's Sphinx extension (``sphinx: extra_extensions: [persona.runbook]`` in ``_config.yml``).

An executed chapter's launch buttons (Binder, Colab) should open its source notebook, whose parameters
cell defaults to the smoke scale, not the generated copy the page was rendered from (not committed).
"""

from __future__ import annotations

from persona.paths import shown
from persona.runbook import layout


def point_launch_buttons_at_sources(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """``html-page-context`` handler run after sphinx-book-theme's: the theme builds Binder/Colab links to the
    page's own path (``book/generated/<stem>.ipynb``, which is not committed); rewrite them to the source
    notebook ``notebooks/<stem>.ipynb``, whose parameters cell defaults to the smoke scale."""
    prefix = layout.GENERATED_DOCS.rstrip("/") + "/"
    if not pagename.startswith(prefix):
        return
    name = pagename[len(prefix):] + ".ipynb"
    generated, source = f"{pagename}.ipynb", f"{shown(layout.NOTEBOOK_DIR)}/{name}"
    for group in context.get("header_buttons") or []:
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if "url" in button and generated in button["url"]:
                button["url"] = button["url"].replace(generated, source)
                button["tooltip"] = f"Open the source notebook {source} on {button.get('text', '')} (smoke-scale defaults)"


def setup(app) -> dict:
    """Sphinx entry point (``sphinx: extra_extensions: [persona.runbook]`` in ``_config.yml``)."""
    app.connect("html-page-context", point_launch_buttons_at_sources, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
