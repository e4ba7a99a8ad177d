"""Per-head activation capture and steering at the input of the attention output projection.

The input of a layer's attention output projection (``o_proj`` in Llama/Qwen/Mistral/Gemma,
``attn.c_proj`` in GPT-2) is the concatenation of the per-head attention outputs, so a head's
contribution is a contiguous slice of it. PAS (Zhu et al., 2025) reads that input at the last token
and later adds ``alpha * std * direction`` to chosen heads' slices at every position. The original
code bakes the shift into an ``o_proj`` bias inside patched model files; a forward *pre*-hook that
adds the same vector to the input is mathematically identical (``W(x + d) = Wx + Wd``), works for
any architecture, and is removed without touching the weights.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

# parent attention module name . projection name; the parent constraint keeps GPT-2's mlp.c_proj out.
_OPROJ_PATTERN = re.compile(
    r"(?:^|\.)(?P<layer>\d+)\.(?:self_attn|attn|attention|self_attention)\.(?:o_proj|c_proj|out_proj|dense)$"
)


@dataclass(frozen=True)
class HeadLayout:
    """Where each layer's per-head outputs live: ``modules[l]`` input is ``n_heads * head_dim`` wide."""

    names: tuple[str, ...]
    modules: tuple[nn.Module, ...]
    n_heads: int
    head_dim: int

    @property
    def n_layers(self) -> int:
        return len(self.modules)

    @property
    def width(self) -> int:
        return self.n_heads * self.head_dim


def _in_features(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return module.in_features
    weight = getattr(module, "weight", None)
    if weight is not None and weight.dim() == 2:  # transformers' Conv1D stores (in, out)
        return int(weight.shape[0])
    raise TypeError(f"Cannot tell the input width of {type(module).__name__}")


def _n_heads(config) -> int:
    cfg = getattr(config, "text_config", None) or config
    for key in ("num_attention_heads", "n_head", "num_heads"):
        value = getattr(cfg, key, None)
        if value:
            return int(value)
    raise ValueError("The model config names no number of attention heads")


def find_head_layout(model: nn.Module) -> HeadLayout:
    """Locate every layer's attention output projection, in layer order, for any common architecture.

    Works through PEFT wrappers too (their module names carry a prefix but keep the same tail).
    """
    found: dict[int, tuple[str, nn.Module]] = {}
    for name, module in model.named_modules():
        match = _OPROJ_PATTERN.search(name)
        if match is None or "lora_" in name or "base_layer" in name:
            continue
        layer = int(match.group("layer"))
        found.setdefault(layer, (name, module))
    if not found:
        raise ValueError("No attention output projection found (looked for *.self_attn.o_proj, *.attn.c_proj, ...)")
    layers = sorted(found)
    if layers != list(range(len(layers))):
        raise ValueError(f"Attention output projections found for layers {layers}, expected 0..{len(layers) - 1}")
    names, modules = zip(*(found[i] for i in layers))
    n_heads = _n_heads(model.config)
    width = _in_features(modules[0])
    if width % n_heads:
        raise ValueError(f"o_proj input width {width} is not a multiple of {n_heads} heads")
    return HeadLayout(names=tuple(names), modules=tuple(modules), n_heads=n_heads, head_dim=width // n_heads)


@torch.no_grad()
def capture_last_token(
    model: nn.Module,
    sequences: Sequence[Sequence[int]],
    *,
    pad_id: int = 0,
    batch_size: int = 8,
    layout: HeadLayout | None = None,
) -> np.ndarray:
    """Return the o_proj inputs at each sequence's last token, ``(n, n_layers, n_heads, head_dim)``.

    ``sequences`` are token ids exactly as the model should see them; they are left-padded (with an
    attention mask) so that position -1 is every sequence's last real token.
    """
    layout = layout or find_head_layout(model)
    device = next(model.parameters()).device
    captured: list[torch.Tensor] = [None] * layout.n_layers  # type: ignore[list-item]

    def make_hook(index: int):
        def hook(_module, args):
            captured[index] = args[0][:, -1, :].detach().float().cpu()

        return hook

    handles = [m.register_forward_pre_hook(make_hook(i)) for i, m in enumerate(layout.modules)]
    out = np.empty((len(sequences), layout.n_layers, layout.n_heads, layout.head_dim), dtype=np.float32)
    try:
        for start in range(0, len(sequences), batch_size):
            chunk = [list(s) for s in sequences[start : start + batch_size]]
            width = max(len(s) for s in chunk)
            ids = torch.tensor([[pad_id] * (width - len(s)) + s for s in chunk], device=device)
            mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in chunk], device=device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)  # padding must not shift real positions
            model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=1)
            stacked = torch.stack(captured, dim=1)  # (batch, layers, width)
            out[start : start + len(chunk)] = stacked.reshape(len(chunk), layout.n_layers, layout.n_heads, -1).numpy()
    finally:
        for handle in handles:
            handle.remove()
    return out


@dataclass(frozen=True)
class HeadShift:
    """Add ``vector`` (length ``head_dim``) to head ``head`` of layer ``layer`` at every position."""

    layer: int
    head: int
    vector: np.ndarray


def layer_deltas(shifts: Sequence[HeadShift], layout: HeadLayout) -> dict[int, torch.Tensor]:
    """Combine head shifts into one o_proj-input offset per touched layer (zeros outside the heads)."""
    deltas: dict[int, torch.Tensor] = {}
    for shift in shifts:
        if len(shift.vector) != layout.head_dim:
            raise ValueError(f"shift vector has {len(shift.vector)} entries, head_dim is {layout.head_dim}")
        delta = deltas.setdefault(shift.layer, torch.zeros(layout.width, dtype=torch.float32))
        lo = shift.head * layout.head_dim
        delta[lo : lo + layout.head_dim] += torch.as_tensor(shift.vector, dtype=torch.float32)
    return deltas


@contextmanager
def steer(model: nn.Module, shifts: Sequence[HeadShift], *, layout: HeadLayout | None = None) -> Iterator[None]:
    """Within the block, every forward pass adds the head shifts to the o_proj inputs.

    The hooks are removed on exit, even after an exception, so the model is left exactly as it was.
    An empty ``shifts`` installs nothing (alpha = 0 is bit-identical to no hook).
    """
    layout = layout or find_head_layout(model)
    handles = []

    def make_hook(delta: torch.Tensor):
        cache: dict[tuple, torch.Tensor] = {}

        def hook(_module, args):
            x = args[0]
            key = (x.device, x.dtype)
            if key not in cache:
                cache[key] = delta.to(device=x.device, dtype=x.dtype)
            return (x + cache[key],) + tuple(args[1:])

        return hook

    try:
        for layer, delta in layer_deltas(shifts, layout).items():
            if torch.count_nonzero(delta) == 0:
                continue
            handles.append(layout.modules[layer].register_forward_pre_hook(make_hook(delta)))
        yield
    finally:
        for handle in handles:
            handle.remove()
