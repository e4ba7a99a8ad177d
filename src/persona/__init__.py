"""persona: shared code of the LLM-personality reproduction book.

Three rooms, and data flows one way through them (nothing imports upward, no cycles):

* ``persona.engine``  asks a model multiple-choice questions (likelihood of the option labels, or
  generated text and a parser); it knows no task.
* ``persona.papi``    study 1, personality alignment: the PAPI task (data, prompts, metric), the
  alignment methods (prompting, PAS, DPO), the experiment and its cost.
* ``persona.trait``   study 2, TRAIT: items, prompts, the self-report comparator, the run, scoring and
  reliability.

Shared plumbing at the top: ``datafiles`` (fetch by name and checksum), ``models`` (embedded, hub or local
models, and the checks before loading one), ``paths``, ``files`` (atomic writes, readable as the umask
allows), ``runs`` (verified resumable results), ``timing``, ``steering`` (hooks on attention heads),
``verdicts`` (the rule every finding follows), ``report`` (gluing numbers into the book), ``runbook`` and
``provision`` (the book's commands). Test support (tiny models, re-enactments of the originals' defects)
lives under ``tests/``.
"""

__version__ = "0.1.0"
