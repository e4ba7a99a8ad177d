"""Alignment methods for PAPI: every method fits on one subject's known answers and answers items.

``base`` holds the interface every method implements (``Method``) and the optimisation log PAS and DPO share
(``FitTrace``); ``answering`` how LLM methods answer (``AnswerMode``, ``Answers``, ``ask_items``) and the
validation helpers they share; ``prompting`` the prompt methods (no change,
few-shot, P^2); ``pas_core`` + ``pas`` Personality Activation Search; ``dpo`` per-subject DPO with a LoRA
adapter.
"""
