"""Block attention: packed rows see the prefix and their own row only; the split computation (prefix once,
rows apart, merged by log-sum-exp) must equal SDPA with the dense block mask, and the engine must take it."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny_models import tiny_model, tiny_tokenizer

from persona.engine import Engine, MCItem, build_prompt
from persona.engine import block_attention
from persona.engine.block_attention import Rows, dense_only, split_attention
from persona.papi.data import OPTIONS as PAPI_OPTIONS
from persona.papi.prompts import TEMPLATE as PAPI_TEMPLATE


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (conftest)


def _block_mask(prefix: int, lengths) -> torch.Tensor:
    n = sum(lengths)
    allowed = torch.zeros(n, prefix + n, dtype=torch.bool)
    allowed[:, :prefix] = True
    start = 0
    for length in lengths:
        own = slice(start, start + length)
        allowed[own, prefix + start: prefix + start + length] = torch.ones(length, length, dtype=torch.bool).tril()
        start += length
    return allowed


def test_split_equals_sdpa_with_the_block_mask():
    gen = torch.Generator().manual_seed(0)
    heads, kv_heads, dim, prefix, lengths = 6, 2, 8, 13, (5, 1, 9, 3)
    n = sum(lengths)
    q = torch.randn(1, n, heads, dim, generator=gen).transpose(1, 2)  # strided, like a model's queries
    k = torch.randn(1, kv_heads, prefix + n, dim, generator=gen)
    v = torch.randn(1, kv_heads, prefix + n, dim, generator=gen)
    rep_k, rep_v = k.repeat_interleave(3, dim=1), v.repeat_interleave(3, dim=1)
    mask = _block_mask(prefix, lengths)
    want = F.scaled_dot_product_attention(q, rep_k, rep_v, attn_mask=mask, scale=0.3).transpose(1, 2)
    got = split_attention(q, k, v, Rows(prefix, lengths), 0.3)
    assert got.shape == (1, n, heads, dim)
    assert torch.allclose(got, want, atol=1e-5)
    # the mask matters: attending across rows (plain causal attention) gives a different answer
    causal = torch.ones(n, prefix + n, dtype=torch.bool).tril(prefix)
    leaky = F.scaled_dot_product_attention(q, rep_k, rep_v, attn_mask=causal, scale=0.3).transpose(1, 2)
    assert (leaky - want).abs().max() > 1e-2


def _prompts(system):
    items = [MCItem("worry about things" + " and make friends" * (2 * i), PAPI_OPTIONS) for i in range(7)]
    return [build_prompt(item, PAPI_TEMPLATE, system=system) for item in items]


def _count_splits(monkeypatch) -> list[int]:
    calls = []
    real = block_attention.split_attention

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(block_attention, "split_attention", counted)
    return calls


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2", "gemma3"])
def test_engine_takes_the_split_and_it_equals_the_dense_mask_and_the_naive_loop(family, monkeypatch):
    tok = tiny_tokenizer()
    model = tiny_model(family, tok, sliding_window=4096)  # a window that never binds: Gemma 3 splits too
    prompts = _prompts("You are a careful person who plans ahead. " * 3)
    engine = Engine(model, tok, batch_size=4)
    calls = _count_splits(monkeypatch)
    split = engine.label_probs(prompts)
    assert len(calls) > 0
    with dense_only():
        calls.clear()
        dense = engine.label_probs(prompts)
        assert calls == []
    naive = engine.label_probs_naive(prompts)
    assert np.abs(split.probs - dense.probs).max() < 1e-5
    assert np.abs(split.probs - naive.probs).max() < 1e-4
    assert naive.probs.std(axis=0).max() > 0.01  # the items get different answers: a row mix-up shows


def test_dense_mask_where_the_split_does_not_hold(monkeypatch):
    tok = tiny_tokenizer()
    prompts = _prompts("You are a careful person who plans ahead. " * 3)  # prefix longer than the window
    calls = _count_splits(monkeypatch)
    gemma = tiny_model("gemma3", tok, sliding_window=32)  # the cache no longer holds the whole prefix
    assert np.abs(Engine(gemma, tok, batch_size=4).label_probs(prompts).probs
                  - Engine(gemma, tok).label_probs_naive(prompts).probs).max() < 1e-4
    eager = tiny_model("llama", tok)
    eager.config._attn_implementation = "eager"  # only SDPA models are switched
    Engine(eager, tok, batch_size=4).label_probs(prompts)
    assert calls == [] and eager.config._attn_implementation == "eager"
