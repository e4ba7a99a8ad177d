"""Study 2, TRAIT (Lee et al., NAACL 2025 Findings): scenario questions that measure an LLM's personality.

Data flows one way through the modules:

* ``items``        the 8,000 items in one typed form, the official option orders;
* ``prompts``      the official templates, persona prompts, and the grid of prompts a run asks (the task);
* ``selfreport``   the self-report comparator built from TRAIT's source statements (the project's proxy
                   for BFI / SD-3);
* ``run``          one run of the experiment: every model, task and store (``TraitSettings``, ``run_trait``);
* ``scoring``      from option probabilities to item decisions and trait scores (official rule and fixed);
* ``reliability``  refusal, prompt and option-order sensitivity, agreement, persona effects;
* ``reported``     the numbers the paper reports, for side-by-side tables.
"""
