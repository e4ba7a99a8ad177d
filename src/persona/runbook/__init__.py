"""The book's runner: ``python -m persona.runbook`` (see ``cli`` for the command line) and its Sphinx extension.

One module per job, in the order a build goes through them:

* ``layout``       where the notebooks, profiles, executed copies and rendered chapters lie
* ``parameters``   the profiles and ``--param`` settings, checked against the notebooks before any work
* ``model_check``  every model the notebooks will load, checked with ``persona.models.preflight`` first
* ``execution``    papermill, the stamps and fingerprints, and which executed copies can be trusted
* ``logs``         the kernels' output forwarded to the runner's log
* ``publishing``   the executed notebooks put into ``book/generated`` (swapped in whole), and rendering
* ``provenance``   what a build records about itself (code version, run times, packages, data)
* ``pages``        the rendered book published on the ``gh-pages`` branch
* ``sphinx``       the extension: launch buttons of an executed chapter open its source notebook
* ``cli``          the command line

The runner names no study and no notebook parameter beyond the book's ``profile``, ``model``/``models``
and ``dtype``: what a notebook's other parameters mean (how much it trains, say) is asked of the function
its study names in the notebook's metadata (``model_check.training_load``).
"""

from persona.runbook.cli import main
from persona.runbook.execution import execute, fingerprint, fingerprinted_sources, missing_notebooks, unusable
from persona.runbook.layout import NOTEBOOK_DIR, notebooks, profiles, stems
from persona.runbook.model_check import check_models, kernel_device, models_to_load, training_load
from persona.runbook.pages import publish_pages
from persona.runbook.parameters import (check_profile, load_profile, notebook_defaults, parameter_names,
                                      parameters_for, parse_param, with_params)
from persona.runbook.provenance import code_version, run_times_table
from persona.runbook.publishing import build, publish
from persona.runbook.sphinx import point_launch_buttons_at_sources, setup

__all__ = ["NOTEBOOK_DIR", "build", "check_models", "check_profile", "code_version", "execute", "fingerprint",
           "fingerprinted_sources", "kernel_device", "load_profile", "main", "missing_notebooks", "models_to_load",
           "notebook_defaults", "notebooks", "parameter_names", "parameters_for", "parse_param",
           "point_launch_buttons_at_sources", "profiles", "publish", "publish_pages", "run_times_table", "setup",
           "stems", "training_load", "unusable", "with_params"]
