"""Benchmark the questionnaire engine against the naive ways of asking the same questions.

Measured side by side in one run, on one model (default: the embedded SmolLM2-135M-Instruct):

(a) PAPI: one subject's 180 held-out items with that subject's 120-answer few-shot system prompt.
    Engine (batched, shared-prefix cache) vs a naive loop (one prompt per forward, prefix
    recomputed every time), run on the first ``--n-naive`` items and compared per item; the
    largest absolute difference of option probabilities on those items.
(b) TRAIT: template-1 items scored by the engine vs generating 15 tokens per item with
    ``model.generate`` in batches of 10, the way PAlign's code asks its questions. Both pay for
    the prompt's forward pass; generation adds 15 decoding steps. Where the forward pass is
    compute-bound (a CPU) those steps are cheap next to it, so this ratio stays small there.
(c) Model FLOP utilisation: engine tokens/s x 2 x (non-embedding parameters) against the FLOP
    rate of a plain 2048^3 matmul (4096^3 on a GPU) in the model's dtype on the same device; and the
    same with the attention FLOPs counted too (PaLM's model FLOPs: 4 x layers x attention width x keys
    attended, per computed token), since a 1,400-token few-shot prefix makes attention a third of the work.
(a) and (b) also run with the engine's block attention switched off (``dense_only``: one dense mask over
    all packed rows, the way the engine ran before) to show what the split buys, side by side.

On CUDA the peak GPU memory of the run is printed too. The last line, ``RESULT key=value ...``, repeats the
figures for scripts (``benchmarks/device_check.sh``).

Usage: ``python benchmarks/bench_engine.py [--model NAME] [--device auto|cpu|cuda] [--dtype auto|float32|bfloat16]
[--n-items 180] [--n-naive 6] [--n-trait 40] [--rounds 2] [--threads N]`` (device and dtype "auto": cuda and bfloat16 when
a GPU is there, else cpu and float32)
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from persona.engine import Engine, MCItem, build_prompt
from persona.engine.block_attention import dense_only
from persona.engine.packing import plan
from persona.papi.data import OPTIONS as PAPI_OPTIONS
from persona.papi.prompts import TEMPLATE as PAPI_TEMPLATE
from persona.papi.prompts import fewshot_system
from persona.trait.prompts import TEMPLATES as TRAIT_TEMPLATES


def matmul_flops(n: int = 2048, repeats: int = 3, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = min(_timed(lambda: a @ b)[1] for _ in range(repeats))
    return 2 * n**3 / best


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _timed(fn):
    _sync()
    start = time.perf_counter()
    out = fn()
    _sync()
    return out, time.perf_counter() - start


class TokenCounter:
    """Counts tokens that go through the input embedding (what the model actually computes)."""

    def __init__(self, model):
        self.n = 0
        self.handle = model.get_input_embeddings().register_forward_hook(self)

    def __call__(self, module, inputs, output):
        self.n += inputs[0].numel()


def papi_prompts(n_items: int, subject_index: int):
    from persona.papi import items_by_number, load_item_key, load_split, load_subjects

    items = items_by_number(load_item_key())
    split = load_split()
    subject = load_subjects(limit=subject_index + 1)[subject_index]
    # the few-shot block exactly as PAlign builds it (stored values, 0 shown as "Unknown")
    system = fewshot_system((items[k].text, subject.answers[k]) for k in split.known)
    return [build_prompt(MCItem(items[k].text, PAPI_OPTIONS), PAPI_TEMPLATE, system=system)
            for k in split.heldout[:n_items]]


def trait_prompts(n_items: int):
    from persona.trait.items import load_trait_items, subsample

    items = load_trait_items()
    chosen = subsample(items, per_trait=max(1, -(-n_items // 8)), seed=0)[:n_items]
    return [build_prompt(it.mc_item(), TRAIT_TEMPLATES[0]) for it in chosen]


def attention_flops(model, systems: list[str | None], token_ids: list[list[int]], batch_size: int) -> float:
    """Attention FLOPs of the useful work of ``engine.label_probs``: QK^T and AV (2 x 2 x width per key) per layer
    for every computed token over the keys it may see (prefix tokens: causal; a row token: prefix + own row)."""
    config = getattr(model.config, "text_config", None) or model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    per_key = 4 * config.num_hidden_layers * config.num_attention_heads * head_dim
    keys = 0
    for prefix, batches in plan(systems, token_ids, batch_size):
        p = len(prefix)
        keys += p * (p + 1) // 2
        for batch in batches:
            for i in batch:
                n = len(token_ids[i]) - p
                keys += n * p + n * (n + 1) // 2
    return per_key * keys


def split_and_dense(engine: Engine, prompts, rounds: int, first=None):
    """``(result, best seconds)`` of the engine with block attention and with the dense mask, ``rounds`` times
    each, alternating which goes first (best of the rounds: a shared CPU whose speed drifts by 15-20% between
    identical runs favours neither)."""
    split, dense = [first] if first else [], []

    def run_dense():
        with dense_only():
            dense.append(_timed(lambda: engine.label_probs(prompts)))

    for k in range(rounds):
        if k % 2:
            run_dense()
        if len(split) < rounds:
            split.append(_timed(lambda: engine.label_probs(prompts)))
        if not k % 2:
            run_dense()
    return min(split, key=lambda r: r[1]), min(dense, key=lambda r: r[1])


def palign_style_generate(model, tokenizer, texts: list[str], batch_size: int = 10, max_new_tokens: int = 15):
    """``model.generate`` of 15 greedy tokens per prompt in batches of 10, prompts in given order."""
    tokenizer.padding_side = "left"
    out = []
    for k in range(0, len(texts), batch_size):
        enc = tokenizer(texts[k : k + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        enc = enc.to(model.device)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        out += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    parser.add_argument("--dtype", default="auto", help="auto (bfloat16 on cuda, float32 on cpu), float32, bfloat16")
    parser.add_argument("--n-items", type=int, default=180, help="PAPI held-out items scored by the engine")
    parser.add_argument("--n-naive", type=int, default=6, help="of those, items also run through the naive loop")
    parser.add_argument("--n-trait", type=int, default=40, help="TRAIT items for (b)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="alternate runs of the split and the dense mask")
    parser.add_argument("--subject", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from persona.models import load_model

    model, tok = load_model(args.model, device=args.device, dtype=args.dtype)
    device = model.device
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    engine = Engine(model, tok, batch_size=args.batch_size)
    n_params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n)
    where = torch.cuda.get_device_name(device) if cuda else f"{torch.get_num_threads()} threads, " \
        f"{platform.processor() or platform.machine()}"
    print(f"model {args.model}: {n_params / 1e6:.1f} M non-embedding parameters, {model.dtype} on {device}, "
          f"torch {torch.__version__}, {where}")

    # the matmul rate is taken before and after the runs, best of both: a machine whose speed drifts (shared
    # CPUs) then yields the lower, conservative utilisation
    size = 4096 if cuda else 2048
    peak_before = matmul_flops(size, repeats=5, device=device, dtype=model.dtype)

    # (a) PAPI few-shot scoring
    prompts = papi_prompts(args.n_items, args.subject)
    engine.label_probs(prompts[:2])  # warm-up (vocabulary scan for the labels, allocator)
    counter = TokenCounter(model)
    fast, t_fast = _timed(lambda: engine.label_probs(prompts))
    processed = counter.n
    counter.handle.remove()
    (fast, t_fast), (dense, t_dense) = split_and_dense(engine, prompts, args.rounds, first=(fast, t_fast))
    full_tokens = sum(len(engine.encode(p)) for p in prompts)
    naive_prompts = prompts[: args.n_naive]
    naive, t_naive = _timed(lambda: engine.label_probs_naive(naive_prompts))
    diff = np.abs(fast.probs[: args.n_naive] - naive.probs).max()
    per_fast, per_naive = t_fast / len(prompts), t_naive / len(naive_prompts)
    print(f"\n(a) PAPI, {len(prompts)} items, prompts of {full_tokens / len(prompts):.0f} tokens on average")
    print(f"    engine      {per_fast * 1e3:8.1f} ms/item   ({t_fast:.1f} s for {len(prompts)} items)")
    print(f"    naive loop  {per_naive * 1e3:8.1f} ms/item   ({t_naive:.1f} s for {len(naive_prompts)} items)")
    print(f"    speed-up    {per_naive / per_fast:8.1f} x    (goal >= 5)")
    print(f"    max |p_engine - p_naive| = {diff:.2e}  (goal <= 1e-4); mean label mass {fast.mass.mean():.3f}")
    print(f"    dense mask  {t_dense / len(prompts) * 1e3:8.1f} ms/item   (block attention off: "
          f"split is {t_dense / t_fast:.2f} x faster; max |dp| {np.abs(fast.probs - dense.probs).max():.1e})")

    # (b) TRAIT scoring vs generating 15 tokens
    trait = trait_prompts(args.n_trait)
    engine.label_probs(trait[:2])
    (_, t_score), (_, t_score_dense) = split_and_dense(engine, trait, args.rounds)
    texts = [engine.render(p) for p in trait]
    _, t_gen = _timed(lambda: palign_style_generate(model, tok, texts))
    print(f"\n(b) TRAIT template 1, {len(trait)} items")
    print(f"    engine scoring          {t_score / len(trait) * 1e3:8.1f} ms/item")
    print(f"    engine, dense mask      {t_score_dense / len(trait) * 1e3:8.1f} ms/item   "
          f"(split is {t_score_dense / t_score:.2f} x faster)")
    print(f"    generate 15 tokens (10) {t_gen / len(trait) * 1e3:8.1f} ms/item")
    print(f"    speed-up                {t_gen / t_score:8.1f} x    (goal >= 5)")

    # (c) model FLOP utilisation
    peak_mem = torch.cuda.max_memory_allocated(device) if cuda else None
    peak = max(peak_before, matmul_flops(size, repeats=5, device=device, dtype=model.dtype))
    tok_s = processed / t_fast
    mfu = tok_s * 2 * n_params / peak
    attn = attention_flops(model, [p.system for p in prompts], [engine.encode(p) for p in prompts],
                           args.batch_size)
    mfu_attn = (processed * 2 * n_params + attn) / t_fast / peak
    dtype_name = str(model.dtype).removeprefix("torch.")
    print("\n(c) utilisation during (a)")
    print(f"    {dtype_name} {size}^3 matmul   {peak / 1e9:8.1f} GFLOP/s (best before and after the runs)")
    print(f"    tokens computed          {tok_s:8.1f} tok/s  -> {tok_s * 2 * n_params / 1e9:.1f} GFLOP/s, "
          f"MFU {100 * mfu:.0f} %  (dense mask: {100 * mfu * t_fast / t_dense:.0f} %)")
    print(f"    counting attention too   {attn / t_fast / 1e9:8.1f} GFLOP/s of attention "
          f"({100 * attn / (attn + processed * 2 * n_params):.0f} % of the work), MFU {100 * mfu_attn:.0f} %")
    print(f"    prompt tokens answered   {full_tokens / t_fast:8.1f} tok/s  "
          f"({full_tokens / processed:.1f} x the computed tokens, thanks to the shared prefix)")
    if cuda:
        print(f"    peak GPU memory          {peak_mem / 2**20:8.0f} MiB allocated by torch (of "
              f"{torch.cuda.get_device_properties(device).total_memory / 2**30:.0f} GiB)")
    print(f"\nRESULT model={args.model} device={device.type} dtype={dtype_name} computed_tok_s={tok_s:.0f} "
          f"mfu={mfu:.3f} mfu_with_attention={mfu_attn:.3f} split_speedup={t_dense / t_fast:.2f} "
          f"prompt_tok_s={full_tokens / t_fast:.0f} ms_per_item={per_fast * 1e3:.1f} max_diff={diff:.2e} "
          f"peak_gpu_mib={peak_mem / 2**20 if cuda else float('nan'):.0f}")


if __name__ == "__main__":
    main()
