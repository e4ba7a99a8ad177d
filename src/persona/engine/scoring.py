"""Likelihood scoring: next-token probability of each option label after the answer cue.

A label counts through every single vocabulary token the model could emit for it: the bare
letter, the space-prefixed one (which most tokenizers use after "Answer:"), and any token that
reads as the label once surrounding whitespace and punctuation are stripped ("(A", "A.").
TRAIT's official code looks up the bare token only, which misses most of the mass for
tokenizers that prefer " A". The label probabilities are renormalised over the options and the
mass that fell on them is reported, so a prompt the model does not answer with a label is
visible instead of silently renormalised.

Speed: prompts are grouped by ``system``; the common token prefix of a group (the few-shot
block, a shared header) is encoded once and a batch's rows are packed behind it
(``persona.engine.packing``); only the logits at each row's last token are computed. Prompts
without a shared prefix are left-padded into a batch.
``label_probs_naive`` is the reference: one prompt per forward, nothing shared; the tests hold the fast
path to it.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from persona.engine.items import MCPrompt
from persona.engine.packing import Packed, device_of, last_logits, plan, prefix_cache, row_ends

STRIP_CHARS = string.whitespace + "()[]{}.,:;!?'\"*_`-"


@dataclass
class OptionProbs:
    """Option probabilities, columns in IDENTITY order (``permutation`` already undone)."""

    probs: np.ndarray  # (n_items, n_options), rows sum to 1
    mass: np.ndarray  # (n_items,) next-token mass on any tokenisation of the labels
    raw: np.ndarray  # (n_items, n_options) un-normalised label probabilities

    def __len__(self) -> int:
        return len(self.mass)

    def choice(self) -> np.ndarray:
        """Index (identity order) of the most probable option per item."""
        return self.probs.argmax(axis=1)


def decoded_vocab(tokenizer, vocab_size: int) -> list[str]:
    """Every token id decoded on its own (ids past the tokenizer's range decode to '')."""
    n = min(vocab_size, len(tokenizer))
    texts = tokenizer.batch_decode([[i] for i in range(n)], clean_up_tokenization_spaces=False)
    return list(texts) + [""] * (vocab_size - n)


def label_token_ids(vocab: Sequence[str], labels: Sequence[str], special_ids: set[int]) -> list[list[int]]:
    """For each label, the token ids whose stripped text equals it (case-sensitive)."""
    wanted = {lab: i for i, lab in enumerate(labels)}
    out: list[list[int]] = [[] for _ in labels]
    for token_id, text in enumerate(vocab):
        if token_id in special_ids:
            continue
        k = wanted.get(text.strip(STRIP_CHARS))
        if k is not None:
            out[k].append(token_id)
    empty = [lab for lab, ids in zip(labels, out) if not ids]
    if empty:
        raise ValueError(f"No single vocabulary token reads as label(s) {empty}")
    return out


def _label_probs(logits: torch.Tensor, label_ids: list[list[int]]) -> np.ndarray:
    probs = torch.softmax(logits, dim=-1)
    cols = [probs[:, ids].sum(dim=1) for ids in label_ids]
    return torch.stack(cols, dim=1).double().cpu().numpy()


def _to_result(raw_presented: np.ndarray, prompts: Sequence[MCPrompt]) -> OptionProbs:
    raw = np.empty_like(raw_presented)
    for i, prompt in enumerate(prompts):
        raw[i, list(prompt.identity_of_position)] = raw_presented[i]
    mass = raw.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        probs = raw / mass[:, None]
    return OptionProbs(probs=probs, mass=mass, raw=raw)


def _n_options(prompts: Sequence[MCPrompt]) -> int:
    sizes = {len(p.labels) for p in prompts}
    if not sizes:
        raise ValueError("No prompts to score")
    if len(sizes) != 1:
        raise ValueError(f"All prompts of one call must have the same number of options, got {sorted(sizes)}")
    return sizes.pop()


LabelIds = Callable[[tuple[str, ...]], list[list[int]]]


@torch.no_grad()
def score_batched(
    model,
    prompts: Sequence[MCPrompt],
    token_ids: Sequence[list[int]],
    label_ids: LabelIds,
    *,
    pad_id: int,
    batch_size: int = 8,
    cache_prefix: bool = True,
    progress: bool = False,
) -> OptionProbs:
    """The fast path (see module docstring); ``token_ids[i]`` is ``prompts[i]`` encoded."""
    n_opt = _n_options(prompts)
    raw = np.zeros((len(prompts), n_opt))
    groups = plan([p.system for p in prompts], token_ids, batch_size, cache_prefix)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(b) for _, b in groups), desc="scoring batches")
    for prefix, batches in groups:
        cache = prefix_cache(model, prefix) if prefix else None
        for batch in batches:
            rows = [token_ids[i][len(prefix) :] for i in batch]
            if prefix:
                positions = [list(range(len(prefix), len(prefix) + len(r))) for r in rows]
                logits = Packed.start(model, prefix, cache).extend(rows, positions, row_ends(rows))
            else:
                logits = last_logits(model, rows, pad_id)
            for r, i in enumerate(batch):
                raw[i] = _label_probs(logits[r : r + 1], label_ids(prompts[i].labels))[0]
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return _to_result(raw, prompts)


@torch.no_grad()
def label_probs_naive(model, prompts: Sequence[MCPrompt], token_ids: Sequence[list[int]], label_ids: LabelIds) -> OptionProbs:
    """Reference path: one unpadded prompt per forward, full logits, no cache, no sharing."""
    n_opt = _n_options(prompts)
    raw = np.zeros((len(prompts), n_opt))
    device = device_of(model)
    for i, (prompt, ids) in enumerate(zip(prompts, token_ids)):
        logits = model(input_ids=torch.tensor([ids], device=device), use_cache=False).logits[:, -1, :].float()
        raw[i] = _label_probs(logits, label_ids(prompt.labels))[0]
    return _to_result(raw, prompts)
