"""persona: shared code of the LLM-personality reproduction book.

Data flows one way: ``data`` (fetch + checksums) -> ``papi``/``trait`` (typed items and answers)
-> ``engine`` (prompts, likelihood scoring) -> ``methods`` (alignment methods) -> ``metrics``
-> notebooks (tables, figures).
"""

__version__ = "0.1.0"
