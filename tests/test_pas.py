"""PAS: steering hooks act exactly where intended; the per-subject fit follows the paper's recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from persona.papi.methods.pas_core import (
    PASDirections,
    contrast_labels,
    fit_logistic_batched,
    fit_pas,
    mass_mean_directions,
    pair_activations,
    probe_accuracies,
    rank_heads,
)
from persona.steering import HeadShift, capture_last_token, find_head_layout, steer

N_LAYERS, N_HEADS, HEAD_DIM = 2, 4, 8


@pytest.fixture(scope="module")
def tiny_llama():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=50, hidden_size=N_HEADS * HEAD_DIM, intermediate_size=64, num_hidden_layers=N_LAYERS,
        num_attention_heads=N_HEADS, num_key_value_heads=2, max_position_embeddings=64,
    )
    return LlamaForCausalLM(config).eval()


def _capture_inputs(model, ids):
    """Record every o_proj input (all positions) during one forward."""
    layout = find_head_layout(model)
    seen = {}
    handles = [
        m.register_forward_pre_hook(lambda _m, a, i=i: seen.__setitem__(i, a[0].detach().clone()))
        for i, m in enumerate(layout.modules)
    ]
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    for h in handles:
        h.remove()
    return seen, logits


def test_layout_found_generically(tiny_llama):
    layout = find_head_layout(tiny_llama)
    assert layout.names == ("model.layers.0.self_attn.o_proj", "model.layers.1.self_attn.o_proj")
    assert (layout.n_heads, layout.head_dim) == (N_HEADS, HEAD_DIM)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=16, n_layer=3, n_head=2, n_positions=32))
    g = find_head_layout(gpt2)
    assert g.names == tuple(f"transformer.h.{i}.attn.c_proj" for i in range(3))  # never mlp.c_proj
    assert (g.n_heads, g.head_dim) == (2, 8)


def test_hook_shifts_only_the_chosen_head_slice(tiny_llama):
    ids = torch.tensor([[3, 7, 11, 5, 9]])
    base, base_logits = _capture_inputs(tiny_llama, ids)
    vec = np.arange(1, HEAD_DIM + 1, dtype=np.float32) / 10
    with steer(tiny_llama, [HeadShift(layer=1, head=2, vector=vec)]):
        shifted, logits = _capture_inputs(tiny_llama, ids)
    # layer 0 comes before the intervention: untouched
    torch.testing.assert_close(shifted[0], base[0], rtol=0, atol=0)
    diff = shifted[1] - base[1]  # the capture hook runs after steer's hook, so it sees the shifted input
    expected = torch.zeros_like(diff)
    expected[..., 2 * HEAD_DIM : 3 * HEAD_DIM] = torch.tensor(vec)
    torch.testing.assert_close(diff, expected, rtol=0, atol=1e-6)
    assert not torch.allclose(logits, base_logits)
    # removed on exit: the model is exactly as before
    _, after = _capture_inputs(tiny_llama, ids)
    torch.testing.assert_close(after, base_logits, rtol=0, atol=0)


def test_alpha_zero_equals_no_hook(tiny_llama):
    ids = torch.tensor([[1, 2, 3, 4]])
    _, base = _capture_inputs(tiny_llama, ids)
    directions = PASDirections(((0, 1),), np.ones((1, HEAD_DIM)) / np.sqrt(HEAD_DIM), np.array([2.0]),
                               np.zeros((N_LAYERS, N_HEADS, 2)))
    assert directions.shifts(0) == []
    with steer(tiny_llama, directions.shifts(0)):
        _, logits = _capture_inputs(tiny_llama, ids)
    torch.testing.assert_close(logits, base, rtol=0, atol=0)
    shift = directions.shifts(3)[0]
    np.testing.assert_allclose(shift.vector, 3 * 2.0 * np.ones(HEAD_DIM) / np.sqrt(HEAD_DIM))


def test_hook_equals_paper_bias_trick(tiny_llama):
    """PAlign bakes W @ d into the o_proj bias; the pre-hook must give the same logits."""
    ids = torch.tensor([[4, 8, 15, 16, 23]])
    vec = np.linspace(-1, 1, HEAD_DIM).astype(np.float32)
    with steer(tiny_llama, [HeadShift(0, 3, vec)]):
        _, hooked = _capture_inputs(tiny_llama, ids)
    o_proj = find_head_layout(tiny_llama).modules[0]
    delta = torch.zeros(N_HEADS * HEAD_DIM)
    delta[3 * HEAD_DIM :] = torch.tensor(vec)
    handle = o_proj.register_forward_hook(lambda _m, _a, out: out + o_proj.weight @ delta)
    try:
        _, biased = _capture_inputs(tiny_llama, ids)
    finally:
        handle.remove()
    torch.testing.assert_close(hooked, biased, rtol=1e-5, atol=1e-5)


def test_capture_last_token_ignores_left_padding(tiny_llama):
    seqs = [[5, 6, 7], [1, 2, 3, 4, 5, 6]]
    batched = capture_last_token(tiny_llama, seqs, batch_size=2)
    single = np.concatenate([capture_last_token(tiny_llama, [s], batch_size=1) for s in seqs])
    assert batched.shape == (2, N_LAYERS, N_HEADS, HEAD_DIM)
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_contrast_labels_drop_neutral_and_missing():
    kept, labels = contrast_labels(np.array([5, 3, 1, 0, 4, 2]))
    np.testing.assert_array_equal(kept, [0, 2, 4, 5])
    # [A, E] per kept item: agree -> A=1,E=0; disagree -> A=0,E=1
    np.testing.assert_array_equal(labels, [1, 0, 0, 1, 1, 0, 0, 1])
    acts = np.arange(6 * 2 * 1 * 1 * 1).reshape(6, 2, 1, 1, 1)
    np.testing.assert_array_equal(pair_activations(acts, kept).ravel(), [0, 1, 4, 5, 8, 9, 10, 11])


def _planted(n_items=40, seed=0, informative=((1, 2), (0, 0))):
    """Activations where only the ``informative`` heads encode 'the prompt matches the subject'."""
    rng = np.random.default_rng(seed)
    agreement = rng.choice([1, 2, 4, 5], size=n_items)
    acts = rng.normal(size=(n_items, 2, N_LAYERS, N_HEADS, HEAD_DIM))
    _, labels = contrast_labels(agreement)
    signal = labels.reshape(n_items, 2) * 2 - 1  # +1 matching, -1 not
    for layer, head in informative:
        acts[:, :, layer, head, 0] += 3.0 * signal
    return acts, agreement


def test_probes_rank_planted_heads_first_and_reproducibly():
    acts, agreement = _planted()
    a = fit_pas(acts, agreement, k=2, seed=7)
    b = fit_pas(acts, agreement, k=2, seed=7)
    assert set(a.heads) == {(1, 2), (0, 0)}
    assert a.heads == b.heads
    np.testing.assert_array_equal(a.accuracies, b.accuracies)
    # the mass-mean direction of a planted head points along the planted axis
    assert a.directions[0, 0] > 0.9


def test_rank_heads_is_stable_on_ties():
    accs = np.zeros((2, 3, 2))
    accs[1, 1] = [1.0, 1.0]
    accs[0, 2] = [1.0, 1.0]
    assert rank_heads(accs, 3) == [(0, 2), (1, 1), (0, 0)]


def test_mass_mean_direction_and_scale_by_hand():
    samples = np.zeros((4, 1, 1, 2))
    samples[:, 0, 0] = [[2, 0], [4, 0], [0, 1], [0, 3]]
    labels = np.array([1, 1, 0, 0])
    directions, stds = mass_mean_directions(samples, labels, [(0, 0)])
    diff = np.array([3, -2]) / np.sqrt(13)
    np.testing.assert_allclose(directions[0], diff)
    np.testing.assert_allclose(stds[0], np.std(samples[:, 0, 0] @ diff))


def _objective(w, b, x, y):
    z = x @ w + b
    return np.sum(np.logaddexp(0, z) - y * z) + 0.5 * w @ w


def test_batched_probes_reach_the_optimum_of_sklearns_default_logistic_regression():
    """Same objective as LogisticRegression(C=1): the exact optimum, which sklearn reaches at a tight tol."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 40, 6))
    x[3] *= 20  # nearly separable: large weights, where a loose solver stops early
    y = (x[0, :, 0] + rng.normal(scale=0.5, size=40) > 0).astype(int)
    weights, intercepts = fit_logistic_batched(x, y)
    for g in range(len(x)):
        ref = LogisticRegression(tol=1e-12, max_iter=100_000).fit(x[g], y)
        np.testing.assert_allclose(weights[g], ref.coef_[0], atol=1e-5)
        np.testing.assert_allclose(intercepts[g], ref.intercept_[0], atol=1e-5)
        assert _objective(weights[g], intercepts[g], x[g], y) <= _objective(ref.coef_[0], ref.intercept_[0], x[g], y) + 1e-9


def test_probe_accuracies_match_per_head_sklearn_probes():
    from sklearn.linear_model import LogisticRegression

    acts, agreement = _planted(seed=2)
    kept, labels = contrast_labels(agreement)
    samples = pair_activations(acts, kept)
    accs = probe_accuracies(samples, labels, seed=5)
    n = len(samples)
    train = np.random.default_rng(5).choice(n, size=int(n * 0.6), replace=False)
    val = np.setdiff1d(np.arange(n), train)
    for layer in range(samples.shape[1]):
        for head in range(samples.shape[2]):
            clf = LogisticRegression(tol=1e-12, max_iter=100_000).fit(samples[train, layer, head], labels[train])
            assert accs[layer, head, 1] == np.mean(clf.predict(samples[train, layer, head]) == labels[train])
            assert accs[layer, head, 0] == np.mean(clf.predict(samples[val, layer, head]) == labels[val])


def test_probe_split_is_seeded():
    acts, agreement = _planted(seed=1)
    kept, labels = contrast_labels(agreement)
    samples = pair_activations(acts, kept)
    np.testing.assert_array_equal(probe_accuracies(samples, labels, seed=3), probe_accuracies(samples, labels, seed=3))


def test_all_agree_and_all_disagree_subjects_get_opposite_directions():
    """Every kept item gives one A- and one E-sample, so labels flip with the answer's side."""
    acts, _ = _planted()
    agree = fit_pas(acts, np.full(40, 5), k=3, seed=0)
    disagree = fit_pas(acts, np.full(40, 1), k=3, seed=0)
    assert agree.heads == disagree.heads  # probe accuracy does not depend on which class is "1"
    np.testing.assert_allclose(agree.directions, -disagree.directions, atol=1e-12)
    np.testing.assert_allclose(agree.stds, disagree.stds)


def test_probes_converge_on_wide_large_valued_separable_heads_like_gemma():
    """Gemma-3-270M's heads: 256 wide, values up to |46|, more dimensions than samples (separable data)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    x = np.clip(rng.standard_t(3, size=(3, 120, 256)) * 6, -46, 46)
    x[1, :, :40] = x[1, :1, :40]  # constant columns
    x[2, 60:] = x[2, :60]  # duplicated samples
    y = rng.integers(0, 2, 120)
    weights, intercepts = fit_logistic_batched(x, y)
    for g in range(3):
        ref = LogisticRegression(tol=1e-12, max_iter=100_000).fit(x[g], y)
        assert np.isfinite(weights[g]).all()
        assert _objective(weights[g], intercepts[g], x[g], y) <= _objective(ref.coef_[0], ref.intercept_[0], x[g], y) + 1e-6


def test_an_unfactorisable_newton_system_is_damped_not_fatal(monkeypatch):
    """If a Hessian cannot be factorised, the step is damped and the fit still reaches the optimum."""
    import torch

    real = torch.linalg.cholesky_ex
    calls = {"n": 0}

    def flaky(a):
        calls["n"] += 1
        factor, info = real(a)
        if calls["n"] == 1:  # the first system "fails"
            return torch.full_like(factor, float("nan")), torch.ones_like(info)
        return factor, info

    monkeypatch.setattr(torch.linalg, "cholesky_ex", flaky)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 40, 6))
    y = (x[0, :, 0] > 0).astype(int)
    weights, intercepts = fit_logistic_batched(x, y)
    monkeypatch.undo()
    expected_w, expected_b = fit_logistic_batched(x, y)
    np.testing.assert_allclose(weights, expected_w, atol=1e-6)
    assert calls["n"] > 1


def test_probes_fit_after_a_bfloat16_model_was_loaded_in_the_same_process(tmp_path):
    """Regression: after loading a bfloat16 model, MKL's batched LU raised on this finite, solvable batch
    (``Pivots given to lu_solve must all be greater or equal to 1``); the Cholesky solver does not."""
    from tiny_models import save_tiny_llama, tiny_tokenizer, torch_threads

    from persona.models import load_model

    folder = save_tiny_llama(tmp_path / "tiny", tiny_tokenizer(), eos_tokens=("<|im_end|>",))
    with torch_threads(1):
        load_model(str(folder), device="cpu", dtype="bfloat16")
    rng = np.random.default_rng(3)
    x = np.clip(rng.standard_t(3, size=(3, 120, 256)) * 6, -46, 46)
    x[1, :, :40] = x[1, :1, :40]
    x[2, 60:] = x[2, :60]
    y = rng.integers(0, 2, 120)
    weights, intercepts = fit_logistic_batched(x, y)
    assert np.isfinite(weights).all() and np.isfinite(intercepts).all()


def test_content_labels_follow_the_answered_option_not_the_letter():
    # variants: (orig agree, orig disagree, rev agree, rev disagree); a subject who agrees with item 0 and
    # disagrees with item 1
    kept, labels = contrast_labels(np.array([5, 1]), (True, False, True, False))
    np.testing.assert_array_equal(labels, [1, 0, 1, 0, 0, 1, 0, 1])
