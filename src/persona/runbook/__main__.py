"""``python -m persona.runbook``: the book's command line (``persona.runbook.cli``)."""

from persona.runbook.cli import main

main()
