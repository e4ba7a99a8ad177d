"""Alignment methods for PAPI: every method fits on one subject's known answers and answers items.

``base`` holds the shared interface (``Method``, ``Answers``), how LLM methods answer (``AnswerMode``,
``score_items``) and the validation helpers they share; ``prompting`` the prompt methods (no change,
few-shot, P^2); ``pas_core`` + ``pas`` Personality Activation Search; ``dpo`` per-subject DPO with a LoRA
adapter.
"""
