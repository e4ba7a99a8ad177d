"""Greedy generation of a few tokens per prompt: the way PAlign's code asks its questions.

Batches are left-padded; the continuation (only the new tokens) is returned as text. PAlign
decodes with special tokens kept and reads a 12-character window, so ``skip_special_tokens`` is
a parameter: keep them (``False``) to reproduce its parser's behaviour at an end-of-turn token.
"""

from __future__ import annotations

from typing import Sequence

import torch


@torch.no_grad()
def generate_greedy(
    model,
    tokenizer,
    token_ids: Sequence[list[int]],
    *,
    pad_id: int,
    batch_size: int = 8,
    max_new_tokens: int = 15,
    skip_special_tokens: bool = True,
) -> list[str]:
    from transformers import GenerationConfig

    device = next(model.parameters()).device
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, pad_token_id=pad_id, eos_token_id=eos
    )
    texts: list[str] = [""] * len(token_ids)
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    for k in range(0, len(order), batch_size):
        batch = order[k : k + batch_size]
        width = max(len(token_ids[i]) for i in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, i in enumerate(batch):
            seq = token_ids[i]
            input_ids[r, width - len(seq) :] = torch.tensor(seq)
            mask[r, width - len(seq) :] = 1
        out = model.generate(
            input_ids=input_ids.to(device), attention_mask=mask.to(device), generation_config=config
        )
        new = out[:, width:].cpu()
        decoded = tokenizer.batch_decode(
            new, skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False
        )
        for i, text in zip(batch, decoded):
            texts[i] = text
    return texts
