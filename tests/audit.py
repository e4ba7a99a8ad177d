"""Re-enactments of specific behaviours of the original code, so the book can verify its defects.

Test support, not part of the package: nothing here is used by our methods. Each function reproduces one
step of the upstream code exactly enough to show what it does; ``test_audit.py`` runs them, and the book's
defects page cites that test.
"""

from __future__ import annotations

import numpy as np

#: The chat template of Meta-Llama-3-8B-Instruct (public in its tokenizer_config.json).
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
LLAMA3_SPECIAL_TOKENS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


def palign_llama3_contrast_tokens(tokenizer, system: str, instruction: str, answer: str, cut: int) -> list[int]:
    """PAlign's ``prompt_to_tokens`` for Llama-3 with an assistant answer: the chat template's
    token ids with the last ``cut`` removed (``cut=5`` at the paper's commit, ``1`` after PR #9)."""
    conversation = [
        {"role": "system", "content": system},
        {"role": "user", "content": instruction},
        {"role": "assistant", "content": answer},
    ]
    ids = tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=False)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    return list(ids)[:-cut]


def palign_mass_mean_direction(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """The ITI/PAS direction as the upstream code computes it: difference of class means divided
    by its norm, with no guard, so identical classes give 0/0 = NaN."""
    diff = positive.mean(axis=0) - negative.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return diff / np.linalg.norm(diff)


def llama3_like_tokenizer(base_tokenizer):
    """A copy of ``base_tokenizer`` with Llama-3's special tokens and chat template, for offline checks
    of template arithmetic (token *ids* differ from Llama-3's; the token *structure* is the same)."""
    import copy

    tokenizer = copy.deepcopy(base_tokenizer)
    tokenizer.add_special_tokens({"additional_special_tokens": LLAMA3_SPECIAL_TOKENS})
    tokenizer.bos_token = "<|begin_of_text|>"
    tokenizer.chat_template = LLAMA3_CHAT_TEMPLATE
    return tokenizer
