"""Likelihood scoring: the fast path (batches, left padding, shared-prefix cache) must equal the
one-prompt-per-forward reference, map option order back to identities exactly, and count every
tokenisation of a label."""

import numpy as np
import pytest
import torch
from tiny_models import NO_SYSTEM_TEMPLATE, tiny_model, tiny_tokenizer

from persona.engine import Engine, MCItem, MCPrompt, build_prompt, order_permutation
from persona.papi.data import OPTIONS as PAPI_OPTIONS
from persona.papi.prompts import TEMPLATE as PAPI_TEMPLATE
from persona.papi.prompts import fewshot_system
from persona.trait.prompts import TEMPLATES as TRAIT_TEMPLATES

TOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (conftest)


def papi_prompts(n_items=7, n_shots=6):
    """Items of very different lengths (padding), two few-shot subjects (two shared prefixes),
    prompts without a system prompt, and both option orders."""
    items = [MCItem("worry about things" + " and make friends" * (3 * i), PAPI_OPTIONS) for i in range(n_items)]
    subjects = [fewshot_system([(f"Make friends {k}", 5 if s else 0) for k in range(n_shots)]) for s in range(2)]
    prompts = []
    for s, system in enumerate(subjects):
        for i, item in enumerate(items):
            order = "reversed" if (i + s) % 2 else "original"
            prompts.append(build_prompt(item, PAPI_TEMPLATE, system=system, permutation=order_permutation(5, order)))
    prompts += [build_prompt(item, PAPI_TEMPLATE) for item in items[:3]]
    return prompts


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2", "gemma3"])
def test_fast_path_equals_naive_loop(tok, family):
    model = tiny_model(family, tok)
    prompts = papi_prompts()
    engine = Engine(model, tok, batch_size=3)
    fast, naive = engine.label_probs(prompts), engine.label_probs_naive(prompts)
    assert np.abs(fast.probs - naive.probs).max() < TOL
    assert np.allclose(fast.mass, naive.mass, rtol=1e-3, atol=1e-9)
    assert np.allclose(fast.probs.sum(axis=1), 1.0)
    no_cache = Engine(model, tok, batch_size=5, cache_prefix=False).label_probs(prompts)
    assert np.abs(no_cache.probs - naive.probs).max() < TOL
    # the reference itself is sensitive: these tiny models give sharp, item-dependent answers
    assert naive.probs.max(axis=1).mean() > 0.5 and naive.probs.std(axis=0).max() > 0.05


def test_shared_prefix_is_encoded_once(tok):
    model = tiny_model("llama", tok)
    prompts = papi_prompts(n_items=6, n_shots=20)
    engine = Engine(model, tok, batch_size=4)
    counted = []
    handle = model.get_input_embeddings().register_forward_hook(lambda m, i, o: counted.append(i[0].numel()))
    try:
        engine.label_probs(prompts[:6])  # one subject: one prefix, 6 suffixes
    finally:
        handle.remove()
    full = [engine.encode(p) for p in prompts[:6]]
    shared = next(k for k in range(len(full[0])) if any(f[k] != full[0][k] for f in full))
    assert shared > 150  # the few-shot block
    # prefix once, then each batch holds only (padded) suffixes
    suffix_tokens = sum(counted) - shared
    assert counted[0] == shared and suffix_tokens < sum(len(f) for f in full) - 5 * shared


def test_option_order_maps_back_to_identities(tok):
    """A model biased to emit "A" prefers whatever option sits at position A: identity 0 in the
    original order, identity 4 in the reversed one. The identity mapping is exact: the reversed
    prompt's result equals its presentation-order scores read backwards."""
    model = tiny_model("llama", tok)
    engine = Engine(model, tok, batch_size=4)
    items = [MCItem(f"worry about things {'often ' * i}", PAPI_OPTIONS) for i in range(4)]
    rev_prompts = [build_prompt(it, PAPI_TEMPLATE, permutation=order_permutation(5, "reversed")) for it in items]
    reversed_ = engine.label_probs(rev_prompts)
    as_presented = engine.label_probs([MCPrompt(p.system, p.user, p.labels, p.assistant_prefix) for p in rev_prompts])
    assert np.allclose(reversed_.probs, as_presented.probs[:, ::-1], atol=1e-12)
    assert np.allclose(reversed_.mass, as_presented.mass)
    assert not np.allclose(reversed_.probs, as_presented.probs, atol=1e-2)  # the mapping is not a no-op

    a_ids = engine.label_token_ids(("A", "B", "C", "D", "E"))[0]
    bias = torch.zeros(len(tok))
    bias[a_ids] = 30.0
    handle = model.get_output_embeddings().register_forward_hook(lambda m, i, o: o + bias)
    try:
        original = engine.label_probs([build_prompt(it, PAPI_TEMPLATE) for it in items])
        biased_rev = engine.label_probs(rev_prompts)
    finally:
        handle.remove()
    assert (original.choice() == 0).all() and (biased_rev.choice() == 4).all()


def test_label_tokens_cover_bare_and_space_prefixed_forms(tok):
    model = tiny_model("llama", tok)
    engine = Engine(model, tok)
    ids = engine.label_token_ids(("A", "B", "C", "D"))
    texts = [{tok.decode([i]) for i in group} for group in ids]
    assert {"A", " A"} <= texts[0] and all("a" not in t for t in texts[0])
    assert {"B", " B"} <= texts[1]
    with pytest.raises(ValueError):
        engine.label_token_ids(("A", "Zebra-crossing"))


def test_raw_is_the_softmax_mass_of_all_label_tokens(tok):
    """Hand computation from the model's full logits."""
    model = tiny_model("qwen2", tok)
    engine = Engine(model, tok)
    prompt = build_prompt(MCItem("Question?", ("yes", "no", "maybe", "never")), TRAIT_TEMPLATES[2])
    result = engine.label_probs([prompt])
    with torch.no_grad():
        logits = model(torch.tensor([engine.encode(prompt)])).logits[0, -1].double()
    p = torch.softmax(logits, -1)
    for k, group in enumerate(engine.label_token_ids(prompt.labels)):
        assert result.raw[0, k] == pytest.approx(p[group].sum().item(), rel=1e-4)
    total = sum(p[g].sum().item() for g in engine.label_token_ids(prompt.labels))
    assert result.mass[0] == pytest.approx(total, rel=1e-4)


def test_rendering_chat_system_fallback_and_base(tok):
    model = tiny_model("llama", tok)
    prompt = MCPrompt(system="SYS", user="USER", labels=("A", "B"), assistant_prefix="Answer:")
    chat = Engine(model, tok).render(prompt)
    assert chat == "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nUSER<|im_end|>\n<|im_start|>assistant\nAnswer:"
    no_system = tiny_tokenizer(chat_template=NO_SYSTEM_TEMPLATE)
    merged = Engine(model, no_system).render(prompt)
    assert merged == "<start_of_turn>user\nSYS\n\nUSER<end_of_turn>\n<start_of_turn>model\nAnswer:"
    base = Engine(model, tok, use_chat_template=False)
    assert base.render(prompt) == "SYS\n\nUSER" + "Answer:"
    assert Engine(model, tiny_tokenizer(chat_template=None)).use_chat_template is False


def test_hooks_and_peft_adapters_pass_through(tok):
    from peft import LoraConfig, get_peft_model

    model = tiny_model("llama", tok)
    prompts = papi_prompts(n_items=3, n_shots=3)
    base = Engine(model, tok).label_probs(prompts)
    # a steering-like pre-hook on an attention output projection changes the answers
    o_proj = model.model.layers[1].self_attn.o_proj
    handle = o_proj.register_forward_pre_hook(lambda m, args: (args[0] + 3.0,))
    try:
        steered = Engine(model, tok, batch_size=2)
        assert np.abs(steered.label_probs(prompts).probs - steered.label_probs_naive(prompts).probs).max() < TOL
        assert np.abs(steered.label_probs(prompts).probs - base.probs).max() > 1e-2
    finally:
        handle.remove()
    lora = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))  # B=0: same function
    assert np.abs(Engine(lora, tok).label_probs(prompts).probs - base.probs).max() < TOL


def test_scoring_is_deterministic_and_rejects_mixed_option_counts(tok):
    model = tiny_model("gpt2", tok)
    engine = Engine(model, tok, batch_size=4)
    prompts = papi_prompts(n_items=4, n_shots=2)
    assert np.array_equal(engine.label_probs(prompts).probs, engine.label_probs(prompts).probs)
    mixed = [prompts[0], build_prompt(MCItem("q", ("a", "b", "c", "d")), TRAIT_TEMPLATES[0])]
    with pytest.raises(ValueError):
        engine.label_probs(mixed)
