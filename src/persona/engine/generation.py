"""Greedy generation of a few tokens per prompt: the way PAlign's code asks its questions.

Prompts that share a long prefix (a few-shot block) are generated behind one encoding of it: the rows
are packed into one sequence (``persona.engine.packing``), prefilled together, and decoded together one
token per row per step, each row stopping at an end-of-sequence token. Other prompts are left-padded
into a batch for ``model.generate``. Both are plain greedy decoding (argmax, no other logits processor),
so they give the text that one-prompt-at-a-time ``model.generate`` gives (tested). The continuation (only
the new tokens) is returned as text. PAlign decodes with special tokens kept and reads a 12-character
window, so ``skip_special_tokens`` is a parameter: keep them (``False``) to reproduce its parser's
behaviour at an end-of-turn token.
"""

from __future__ import annotations

from typing import Sequence

import torch

from persona.engine.packing import Packed, device_of, left_padded, plan, prefix_cache, row_ends


def _eos_ids(model, tokenizer) -> set[int]:
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    return set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}


def _padded(model, rows: list[list[int]], pad_id: int, eos: set[int], max_new_tokens: int) -> list[list[int]]:
    """Left-padded ``model.generate`` for prompts without a shared prefix."""
    from transformers import GenerationConfig

    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, pad_token_id=pad_id,
                              eos_token_id=sorted(eos) or None)
    inputs = left_padded(rows, pad_id, device_of(model))
    width = inputs["input_ids"].shape[1]
    out = model.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                         generation_config=config)
    new = out[:, width:].cpu().tolist()
    return [_until_eos(seq, eos, pad_id) for seq in new]


def _until_eos(seq: list[int], eos: set[int], pad_id: int) -> list[int]:
    for k, token in enumerate(seq):
        if token in eos:
            return seq[: k + 1]
    return seq


def _packed(model, prefix: list[int], cache, rows: list[list[int]], eos: set[int], max_new_tokens: int) -> list[list[int]]:
    """Greedy decoding of ``rows`` behind a shared prefix, all rows in one packed sequence."""
    packed = Packed.start(model, prefix, cache)
    positions = [list(range(len(prefix), len(prefix) + len(r))) for r in rows]
    logits = packed.extend(rows, positions, row_ends(rows))
    alive = list(range(len(rows)))
    generated: list[list[int]] = [[] for _ in rows]
    for step in range(max_new_tokens):
        chosen = logits.argmax(dim=-1).tolist()
        still = []
        for row, token in zip(alive, chosen):
            generated[row].append(token)
            if token not in eos:
                still.append(row)
        alive = still
        if not alive or step == max_new_tokens - 1:
            break
        feed = [[generated[r][-1]] for r in alive]
        pos = [[len(prefix) + len(rows[r]) + step] for r in alive]
        logits = packed.extend(feed, pos, list(range(len(alive))), row_ids=alive)
    return generated


@torch.no_grad()
def generate_greedy(
    model,
    tokenizer,
    token_ids: Sequence[list[int]],
    *,
    pad_id: int,
    systems: Sequence[str | None] | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 15,
    skip_special_tokens: bool = True,
) -> list[str]:
    """Greedy continuations (new text only); prompts with the same ``systems`` entry share their prefix."""
    eos = _eos_ids(model, tokenizer)
    systems = list(systems) if systems is not None else [None] * len(token_ids)
    new: list[list[int]] = [[] for _ in token_ids]
    for prefix, batches in plan(systems, token_ids, batch_size):
        cache = prefix_cache(model, prefix) if prefix else None
        for batch in batches:
            if not prefix:
                outs = _padded(model, [list(token_ids[i]) for i in batch], pad_id, eos, max_new_tokens)
            else:
                packs = ([batch] if Packed.supports_rows(model, len(batch), max_new_tokens)
                         else [[i] for i in batch])  # sliding-window caches: one row per sequence
                outs = []
                for pack in packs:
                    outs += _packed(model, prefix, cache, [list(token_ids[i][len(prefix):]) for i in pack], eos,
                                    max_new_tokens)
            for i, out in zip(batch, outs):
                new[i] = out
    texts = tokenizer.batch_decode(new, skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False)
    return list(texts)
