"""Block attention for packed rows: the shared prefix once for all rows, each row's own tokens apart.

A packed forward (``persona.engine.packing.Packed``) feeds several rows behind one cached prefix as a
single sequence ``[prefix][row 0][row 1]...``. With one dense additive mask, SDPA computes every query
against every key and throws the cross-row part away: for 8 PAPI rows of ~75 tokens behind a 1,400-token
prefix that is 28% of the attention work, and for 8 TRAIT rows of ~170 tokens behind a 29-token prefix it
is 90% of it. Here the attention is split exactly (softmax over a union of key sets):

- every query against the prefix keys, one unmasked SDPA call (nothing is masked there);
- each row's queries against its own keys, causal, the rows as a batch (right-padded; causal attention
  never lets a real query see the padding behind it);
- the two merged by their log-sum-exps: ``out = (e^{l_p} o_p + e^{l_r} o_r) / (e^{l_p} + e^{l_r})``.

The prefix call folds the query heads that share a key/value head into its query axis (no mask, so the
queries are independent), which avoids copying the prefix keys per query head.

The log-sum-exps come from ATen's CPU flash-attention kernel
(``aten::_scaled_dot_product_flash_attention_for_cpu``), the kernel SDPA itself runs on CPU. Elsewhere
(CUDA), for a kind of layer whose cache no longer holds the whole prefix (sliding windows), and for
generation steps, the dense mask is used as before. ``use_blocks(model, layout)`` switches the model's
attention to ``block_sdpa`` (registered with transformers' ``AttentionInterface``) for one forward.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

NAME = "persona_block_sdpa"


@dataclass(frozen=True)
class Rows:
    """Keys are ``[prefix][rows]`` and queries are ``[rows]``, the rows contiguous and in the same order."""

    prefix: int
    lengths: tuple[int, ...]


Layout = dict[str, Rows]  # per attention kind ("full_attention", "sliding_attention")

_LAYOUT: ContextVar[Layout | None] = ContextVar("persona_block_layout", default=None)
_ENABLED: ContextVar[bool] = ContextVar("persona_block_enabled", default=True)


@contextmanager
def dense_only() -> Iterator[None]:
    """Within: every packed forward uses the dense mask (the reference the split is tested and timed against)."""
    token = _ENABLED.set(False)
    try:
        yield
    finally:
        _ENABLED.reset(token)


def available(device: torch.device) -> bool:
    return device.type == "cpu" and hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu")


def _flash(q, k, v, causal: bool, scale: float | None):
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, causal, scale=scale)


def _index(lengths: Sequence[int], width: int) -> torch.Tensor:
    """Flat position of each row's tokens in a (rows, width) right-padded grid."""
    return torch.cat([torch.arange(n) + r * width for r, n in enumerate(lengths)])


def split_attention(query, key, value, rows: Rows, scale: float | None) -> torch.Tensor:
    """Attention of packed rows behind a prefix, ``query`` (1, H, Q, D), ``key``/``value`` (1, H_kv, P+Q, D);
    returns (1, Q, H, D). Equal to SDPA with the block mask (prefix: all; own row: causal; else: none)."""
    _, heads, n_q, dim = query.shape
    kv_heads, group = key.shape[1], heads // key.shape[1]
    p = rows.prefix
    # every query against the prefix: heads sharing a kv head folded into the query axis
    q_fold = query.reshape(1, kv_heads, group * n_q, dim)
    out_p, lse_p = _flash(q_fold, key[:, :, :p], value[:, :, :p], False, scale)
    out_p, lse_p = out_p.reshape(1, heads, n_q, dim), lse_p.reshape(1, heads, n_q)
    # each row against its own keys: rows as a right-padded batch, causal
    width, n_rows = max(rows.lengths), len(rows.lengths)
    index = _index(rows.lengths, width).to(query.device)

    def grid(x: torch.Tensor) -> torch.Tensor:  # (1, h, Q, D) -> (rows, h, width, D)
        out = x.new_zeros(x.shape[1], n_rows * width, dim)
        out[:, index] = x[0]
        return out.reshape(x.shape[1], n_rows, width, dim).transpose(0, 1)

    own_k, own_v = key[:, :, p:], value[:, :, p:]
    if group > 1:
        own_k, own_v = own_k.repeat_interleave(group, dim=1), own_v.repeat_interleave(group, dim=1)
    out_r, lse_r = _flash(grid(query), grid(own_k), grid(own_v), True, scale)
    out_r = out_r.transpose(0, 1).reshape(heads, n_rows * width, dim)[:, index][None]
    lse_r = lse_r.transpose(0, 1).reshape(heads, n_rows * width)[:, index][None]
    lse = torch.logaddexp(lse_p, lse_r)
    out = out_p * torch.exp(lse_p - lse)[..., None] + out_r * torch.exp(lse_r - lse)[..., None]
    return out.transpose(1, 2).contiguous().to(query.dtype)


def _layer_kind(module) -> str:
    config = getattr(module.config, "text_config", None) or module.config
    types = getattr(config, "layer_types", None)
    return types[module.layer_idx] if types else "full_attention"


def block_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """Attention function (transformers' interface): the split where a layout is set, dense SDPA otherwise.
    Returns ``(B, Q, heads, head_dim)`` like ``sdpa_attention_forward``."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    layout = _LAYOUT.get()
    rows = layout.get(_layer_kind(module)) if layout else None
    if rows is None or (module.training and dropout > 0) or kwargs.get("softcap") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    return split_attention(query, key, value, rows, scaling), None


def _register() -> None:
    from transformers import AttentionInterface

    if NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(NAME, block_sdpa)


@contextmanager
def use_blocks(model, layout: Layout | None) -> Iterator[bool]:
    """Run the forwards inside with ``layout``; yields whether block attention is in use."""
    config = getattr(model.config, "text_config", None) or model.config  # the one the decoder layers read
    if not layout or not _ENABLED.get() or config._attn_implementation != "sdpa":
        yield False
        return
    _register()
    token = _LAYOUT.set(layout)
    config._attn_implementation_internal = NAME  # this config only (the setter would recurse into sub-configs)
    try:
        yield True
    finally:
        config._attn_implementation_internal = "sdpa"
        _LAYOUT.reset(token)
