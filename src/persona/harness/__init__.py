"""The book's instruments as lm-evaluation-harness tasks: TRAIT, the self-report proxy and the PAPI prompt
baselines for any model and backend lm-eval drives (``pip install -e .[harness]``).

lm-eval loads the tasks from ``persona/harness/tasks`` (``--include_path``, see :func:`include_path`); the
YAML files there only name functions of this package, so every prompt is rendered, and every answer scored,
by the same code the chapters use:

* ``docs``      the documents lm-eval iterates over: the book's items and prompts rendered through the engine
                (chat template when the tokenizer has one), with the label tokens lm-eval can be asked for;
* ``results``   from lm-eval's log-likelihoods and generations to the engine's option probabilities, item
                decisions (official and fixed rule) and per-trait scores, and the lm-eval metrics built on them;
* ``task``      the lm-eval ``Task`` class of the tasks (it needs lm-eval; nothing else here imports it);
* ``report``    ``python -m persona.harness.report <lm-eval output>``: the chapters' tables from
                ``--log_samples`` output.

PAS and DPO are not here: they need the model's weights (forward hooks on attention heads, a LoRA adapter
trained per subject), which an evaluation harness does not expose. They stay in ``persona.papi.methods``.
"""

from __future__ import annotations

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent / "tasks"


def include_path() -> str:
    """The folder to give lm-eval as ``--include_path`` (``python -m persona.harness`` prints it)."""
    return str(TASKS_DIR)
