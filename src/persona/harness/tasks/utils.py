"""What the task files name: the harness's builders and scorers, imported from the persona package.

Nothing is defined here: every prompt is rendered and every answer scored by ``persona.harness`` through the
book's own code (``persona.engine``, ``persona.trait``, ``persona.papi``), so the tasks cannot drift from it.
"""

from persona.harness.papi_tasks import fewshot_docs, nochange_docs, score_corrected, score_paper
from persona.harness.papi_tasks import likelihood_results as papi_results
from persona.harness.results import nanmean
from persona.harness.task import PersonaTask
from persona.harness.trait_tasks import (
    generation_results,
    likelihood_results,
    selfreport_docs,
    selfreport_gen_docs,
    trait_docs,
    trait_gen_docs,
)

__all__ = ["PersonaTask", "fewshot_docs", "generation_results", "likelihood_results", "nanmean", "nochange_docs",
           "papi_results", "score_corrected", "score_paper", "selfreport_docs", "selfreport_gen_docs", "trait_docs",
           "trait_gen_docs"]
