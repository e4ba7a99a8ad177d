"""Likelihood scoring: next-token probability of each option label after the answer cue.

A label counts through every single vocabulary token the model could emit for it: the bare
letter, the space-prefixed one (which most tokenizers use after "Answer:"), and any token that
reads as the label once surrounding whitespace and punctuation are stripped ("(A", "A.").
TRAIT's official code looks up the bare token only, which misses most of the mass for
tokenizers that prefer " A". The label probabilities are renormalised over the options and the
mass that fell on them is reported, so a prompt the model does not answer with a label is
visible instead of silently renormalised.

Speed: prompts are grouped by ``system``; the common token prefix of a group (the few-shot
block, a shared header) is encoded once and its key/value cache is shared, read-only, by
every batch of that group. A batch's rows (the prompts' own tokens, sorted by length) are packed
into one sequence behind the prefix cache, with a block mask (each row sees the prefix and its own
earlier tokens) and position ids that continue the prefix in every row; only the logits at each
row's last token are computed. Prompts without a shared prefix are left-padded into a batch.
``score_naive`` is the reference: one prompt per forward, nothing shared; the tests hold the fast
path to it.
"""

from __future__ import annotations

import copy
import string
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from persona.engine.items import MCPrompt

STRIP_CHARS = string.whitespace + "()[]{}.,:;!?'\"*_`-"
MIN_SHARED_PREFIX = 8  # tokens; below this a shared cache costs more than it saves


@dataclass
class ScoreResult:
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


def common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for s in seqs[1:]:
        k = 0
        while k < n and s[k] == first[k]:
            k += 1
        n = k
    return n


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _copy_cache(cache):
    """A copy of a cache that a forward may extend without changing the original.

    ``DynamicLayer.update`` concatenates into new tensors, so the copies share the (read-only) prefix
    tensors; other layer kinds are deep-copied.
    """
    from transformers.cache_utils import DynamicLayer

    new = copy.copy(cache)
    new.layers = [copy.copy(layer) if isinstance(layer, DynamicLayer) else copy.deepcopy(layer)
                  for layer in cache.layers]
    return new


@torch.no_grad()
def _last_logits(model, ids: list[list[int]], pad_id: int) -> torch.Tensor:
    """Next-token logits (float32) after each row of ``ids``, left-padded into one batch."""
    device = _device(model)
    b, width = len(ids), max(len(s) for s in ids)
    input_ids = torch.full((b, width), pad_id, dtype=torch.long)
    mask = torch.zeros((b, width), dtype=torch.long)
    for r, seq in enumerate(ids):
        input_ids[r, width - len(seq) :] = torch.tensor(seq)
        mask[r, width - len(seq) :] = 1
    position_ids = (mask.cumsum(1) - 1).clamp(min=0)  # pads get any valid position
    out = model(input_ids=input_ids.to(device), attention_mask=mask.to(device), position_ids=position_ids.to(device),
                logits_to_keep=1, use_cache=False)
    return out.logits[:, -1, :].float()


def _layer_kinds(model, cache, prefix_len: int) -> dict[str, tuple[int | None, int]]:
    """Per attention kind of the model's layers: (sliding window or None, prefix keys its cache keeps).

    A sliding-window layer's cache keeps only the last ``window - 1`` keys of the prefix.
    """
    config = getattr(model.config, "text_config", None) or model.config
    types = list(getattr(config, "layer_types", None) or ["full_attention"])
    kinds = {}
    for kind in dict.fromkeys(types):
        if kind == "sliding_attention":
            layer = cache.layers[types.index(kind)]
            kinds[kind] = (getattr(config, "sliding_window", None), int(layer.keys.shape[-2]))
        else:
            kinds[kind] = (None, prefix_len)
    return kinds


def _packed_mask(q_pos: torch.Tensor, q_row: torch.Tensor, k_pos: torch.Tensor, k_row: torch.Tensor,
                 window: int | None, dtype: torch.dtype) -> torch.Tensor:
    """Additive (1, 1, Q, K) mask: a query sees keys of the shared prefix (row -1) and of its own row,
    at positions not after its own (and within ``window`` for sliding-window layers)."""
    allowed = ((k_row[None, :] == -1) | (k_row[None, :] == q_row[:, None])) & (k_pos[None, :] <= q_pos[:, None])
    if window is not None:
        allowed &= (q_pos[:, None] - k_pos[None, :]) < window
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)[None, None]


@torch.no_grad()
def _packed_last_logits(model, rows: list[list[int]], prefix_len: int, prefix_cache) -> torch.Tensor:
    """Next-token logits (float32) after each row, all rows continuing one shared prefix.

    The rows are packed into one sequence behind the prefix's key/value cache (batch 1, never copied per
    row): each token attends to the prefix and to the earlier tokens of its own row, and positions
    continue the prefix in every row. A left-padded batch would need the prefix cache expanded and
    concatenated for every row, which costs more than the rows themselves when the prefix is long.
    """
    device = _device(model)
    lengths = torch.tensor([len(r) for r in rows])
    q_row = torch.repeat_interleave(torch.arange(len(rows)), lengths)
    starts = torch.cumsum(lengths, 0) - lengths
    q_pos = prefix_len + torch.arange(int(lengths.sum())) - torch.repeat_interleave(starts, lengths)
    dtype = next(model.parameters()).dtype
    masks = {}
    for kind, (window, kept) in _layer_kinds(model, prefix_cache, prefix_len).items():
        k_pos = torch.cat([torch.arange(prefix_len - kept, prefix_len), q_pos])
        k_row = torch.cat([torch.full((kept,), -1), q_row])
        masks[kind] = _packed_mask(q_pos, q_row, k_pos, k_row, window, dtype).to(device)
    mask = masks["full_attention"] if set(masks) == {"full_attention"} else masks
    out = model(
        input_ids=torch.tensor([[t for r in rows for t in r]], device=device),
        attention_mask=mask,
        position_ids=q_pos[None].to(device),
        cache=_copy_cache(prefix_cache),
        use_cache=True,
        logits_to_keep=(torch.cumsum(lengths, 0) - 1).to(device),
    )
    return out.logits[0].float()


@torch.no_grad()
def _prefix_cache(model, prefix: list[int]):
    device = _device(model)
    ids = torch.tensor([prefix], device=device)
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True, logits_to_keep=1)
    return out.cache


def _label_probs(logits: torch.Tensor, label_ids: list[list[int]]) -> np.ndarray:
    probs = torch.softmax(logits, dim=-1)
    cols = [probs[:, ids].sum(dim=1) for ids in label_ids]
    return torch.stack(cols, dim=1).double().cpu().numpy()


def _to_result(raw_presented: np.ndarray, prompts: Sequence[MCPrompt]) -> ScoreResult:
    raw = np.empty_like(raw_presented)
    for i, prompt in enumerate(prompts):
        raw[i, list(prompt.identity_of_position)] = raw_presented[i]
    mass = raw.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        probs = raw / mass[:, None]
    return ScoreResult(probs=probs, mass=mass, raw=raw)


def _n_options(prompts: Sequence[MCPrompt]) -> int:
    sizes = {len(p.labels) for p in prompts}
    if not sizes:
        raise ValueError("No prompts to score")
    if len(sizes) != 1:
        raise ValueError(f"All prompts of one call must have the same number of options, got {sorted(sizes)}")
    return sizes.pop()


LabelIds = Callable[[tuple[str, ...]], list[list[int]]]


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
) -> ScoreResult:
    """The fast path (see module docstring); ``token_ids[i]`` is ``prompts[i]`` encoded."""
    n_opt = _n_options(prompts)
    raw = np.zeros((len(prompts), n_opt))
    groups: dict[str | None, list[int]] = defaultdict(list)
    for i, prompt in enumerate(prompts):
        groups[prompt.system if cache_prefix else None].append(i)
    plan = []  # (prefix, batch of prompt indices)
    for idx in groups.values():
        seqs = [token_ids[i] for i in idx]
        shared = common_prefix_len(seqs) if cache_prefix and len(idx) > 1 else 0
        shared = min(shared, min(len(s) for s in seqs) - 1)  # every row keeps >= 1 own token
        prefix = list(seqs[0][:shared]) if shared >= MIN_SHARED_PREFIX else []
        idx = sorted(idx, key=lambda i: len(token_ids[i]))
        plan.append((prefix, [idx[k : k + batch_size] for k in range(0, len(idx), batch_size)]))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(b) for _, b in plan), desc="scoring batches")
    for prefix, batches in plan:
        cache = _prefix_cache(model, prefix) if prefix else None
        for batch in batches:
            rows = [token_ids[i][len(prefix) :] for i in batch]
            logits = _packed_last_logits(model, rows, len(prefix), cache) if prefix else _last_logits(model, rows, pad_id)
            for r, i in enumerate(batch):
                raw[i] = _label_probs(logits[r : r + 1], label_ids(prompts[i].labels))[0]
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return _to_result(raw, prompts)


@torch.no_grad()
def score_naive(model, prompts: Sequence[MCPrompt], token_ids: Sequence[list[int]], label_ids: LabelIds) -> ScoreResult:
    """Reference path: one unpadded prompt per forward, full logits, no cache, no sharing."""
    n_opt = _n_options(prompts)
    raw = np.zeros((len(prompts), n_opt))
    device = _device(model)
    for i, (prompt, ids) in enumerate(zip(prompts, token_ids)):
        logits = model(input_ids=torch.tensor([ids], device=device), use_cache=False).logits[:, -1, :].float()
        raw[i] = _label_probs(logits, label_ids(prompt.labels))[0]
    return _to_result(raw, prompts)
