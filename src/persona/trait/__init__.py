"""Study 2, TRAIT (Lee et al., NAACL 2025 Findings): scenario questions that measure an LLM's personality.

Data flows one way through the modules:

* ``items``        the 8,000 items in one typed form, the official option orders;
* ``prompts``      the official templates, persona prompts, and the grid of prompts a run asks (the task);
* ``selfreport``   the self-report proxy built from TRAIT's source statements (the project's stand-in
                   for BFI / SD-3, never called by their names);
* ``calibration``  content-free prompts and calibrated option probabilities;
* ``run``          one run of the experiment: every model, task and store (``TraitSettings``, ``run_trait``);
* ``scoring``      from option probabilities to item decisions, trait scores, model comparisons and the
                   persona measure (official rule and fixed);
* ``reliability``  refusal, prompt and option-order sensitivity and agreement (kappa), per item;
* ``claims``       the chapter's verdicts, each through ``persona.verdicts``;
* ``reported``     the numbers the paper reports, and the paper's effect for each claim;
* ``figures``      the chapter's figures.
"""
