"""Alignment methods for PAPI: every method fits on one subject's known answers and answers items.

``base`` holds the shared interface, the two-order likelihood evaluation and the adapter for the
no-LLM reference predictors; ``prompting`` the prompt methods (no change, few-shot, P^2);
``pas_core`` + ``pas`` Personality Activation Search; ``dpo`` per-subject DPO with a LoRA adapter;
``experiment`` the loop and tables the notebooks and the cost benchmark share.
"""
