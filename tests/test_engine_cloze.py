"""Option-text (cloze) scoring: the packed fast path equals a naive loop (one forward per prompt and option),
the naive loop equals the model's own loss on the continuation, a continuation shifted by one token is
caught, option order maps back to identities, and the normalisations give hand-computed answers."""

import math

import numpy as np
import pytest
import torch
from tiny_models import tiny_model

from persona.engine import Engine, MCItem, Template, build_prompt, order_permutation
from persona.engine import cloze
from persona.engine.cloze import ClozeInputs, normalise, softmax, split_answer_position

TOL = 1e-4

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (conftest)

LISTED = Template("listed", "Question: {stem}\n{options}Answer: ", "{label}: {text}", ("A", "B", "C", "D"))
UNLISTED = Template("unlisted", "Question: {stem}\nAnswer: ", "{label}: {text}", ("A", "B", "C", "D"))
OPTIONS = [("make friends", "worry about things and the question", "A B", "describe a situation to a person"),
           ("agree", "strongly disagree with you", "the behavior", "C D E"),
           ("you are a helpful assistant", "no", "choose one option", "please answer the question about you")]


def prompts_and_options(template=LISTED, systems=(None, "You are a helpful assistant. Describe a situation.")):
    """Three items (one stem long enough to pass gemma3's 32-token window), both orders, two system prompts
    (one group with a shared prefix, one without a system)."""
    prompts, options = [], []
    for system in systems:
        for k, opts in enumerate(OPTIONS):
            stem = "What would you do? " + "I worry about things and make friends. " * (3 * k)
            for order in ("original", "reversed"):
                prompts.append(build_prompt(MCItem(stem, opts), template, system=system,
                                            permutation=order_permutation(4, order)))
                options.append(opts)
    return prompts, options


def _inputs(engine, prompts, options):
    return ClozeInputs.prepare([engine.render(p) for p in prompts], options, engine.tokenizer,
                               not engine.use_chat_template, [4] * len(prompts))


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2", "gemma3"])
def test_fast_path_equals_naive_loop(tok, family):
    engine = Engine(tiny_model(family, tok), tok, batch_size=3)
    prompts, options = prompts_and_options()
    for normalisation in ("none", "length", "unconditional"):
        fast = engine.score_options(prompts, options, normalisation=normalisation)
        naive = engine.score_options(prompts, options, normalisation=normalisation, naive=True)
        assert np.abs(fast.probs - naive.probs).max() < TOL, normalisation
        assert np.abs(fast.logprob - naive.logprob).max() < TOL * np.abs(naive.logprob).max()
        if normalisation == "unconditional":
            assert np.abs(fast.unconditional - naive.unconditional).max() < TOL * np.abs(naive.unconditional).max()
    # the reference itself is sensitive: items and options get clearly different scores
    assert naive.probs.max(axis=1).mean() > 0.4 and naive.logprob.std() > 1.0
    without_cache = Engine(engine.model, tok, cache_prefix=False).score_options(prompts, options)
    assert np.abs(without_cache.probs - engine.score_options(prompts, options, naive=True).probs).max() < TOL


def test_base_model_rendering_equals_naive_loop(tok):
    engine = Engine(tiny_model("llama", tok), tok, use_chat_template=False)
    prompts, options = prompts_and_options()
    fast = engine.score_options(prompts, options, normalisation="token")
    naive = engine.score_options(prompts, options, normalisation="token", naive=True)
    assert np.abs(fast.probs - naive.probs).max() < TOL


def _loss_reference(model, context, continuation):
    """The model's own cross-entropy on the continuation tokens (HF shifts labels internally): -sum log p."""
    ids = torch.tensor([context + continuation])
    labels = torch.tensor([[-100] * len(context) + continuation])
    with torch.no_grad():
        return -float(model(input_ids=ids, labels=labels).loss) * len(continuation)


def _gap_to_loss(engine, prompts, options, naive):
    inputs = _inputs(engine, prompts, options)
    got = engine.score_options(prompts, options, normalisation="none", naive=naive).logprob
    want = np.array([[_loss_reference(engine.model, ctx, c) for c in conts]
                     for ctx, conts in zip(inputs.contexts, inputs.tokens)])
    return np.abs(got - want).max() / np.abs(want).max()


def test_log_probabilities_are_the_models_loss_and_a_shifted_continuation_is_caught(tok, monkeypatch):
    engine = Engine(tiny_model("llama", tok), tok)
    prompts, options = prompts_and_options(systems=("You are a helpful assistant. Describe a situation.",))
    assert _gap_to_loss(engine, prompts, options, naive=True) < TOL
    assert _gap_to_loss(engine, prompts, options, naive=False) < TOL
    # mutation: each row fed one token late (the logits after token k scored against token k)
    monkeypatch.setattr(cloze, "_row", lambda context, continuation: (list(continuation), list(continuation)))
    assert _gap_to_loss(engine, prompts, options, naive=False) > 100 * TOL
    monkeypatch.undo()
    # mutation of the reference: logits read one position late
    monkeypatch.setattr(cloze, "_naive_one", lambda model, context, continuation: cloze._sum_logprobs(
        model(input_ids=torch.tensor([context + continuation])).logits[0, len(context):], continuation))
    assert _gap_to_loss(engine, prompts, options, naive=True) > 100 * TOL


def test_option_order_only_matters_through_the_listed_options(tok):
    engine = Engine(tiny_model("qwen2", tok), tok)
    item = MCItem("What would you do when you worry about things?", OPTIONS[0])
    perms = [order_permutation(4, "original"), order_permutation(4, "reversed"), (2, 0, 3, 1)]
    for template, same in ((UNLISTED, True), (LISTED, False)):
        result = engine.score_options([build_prompt(item, template, permutation=p) for p in perms],
                                      [item.options] * len(perms), normalisation="none")
        gaps = np.abs(result.logprob[1:] - result.logprob[0]).max(axis=1)
        if same:  # identical prompt text: identical scores per identity, whatever the presented order
            assert gaps.max() < 1e-6
        else:  # the prompt lists the options in another order: the scores move
            assert gaps.min() > 1e-3
    # the columns follow the identities of option_texts: reordering the texts reorders the columns
    prompt = build_prompt(item, UNLISTED)
    texts = OPTIONS[0]
    ident = engine.score_options([prompt], [texts]).logprob[0]
    swapped = engine.score_options([prompt], [(texts[3], texts[2], texts[1], texts[0])]).logprob[0]
    assert np.allclose(swapped, ident[::-1], atol=1e-6)


def test_normalisations_give_hand_computed_answers():
    logprob = np.array([[-6.0, -9.0]])
    n_chars, n_tokens, uncond = np.array([[3.0, 6.0]]), np.array([[2.0, 4.0]]), np.array([[-4.0, -8.5]])
    assert normalise(logprob, n_tokens, n_chars, None, "none").tolist() == [[-6.0, -9.0]]
    assert normalise(logprob, n_tokens, n_chars, None, "length").tolist() == [[-2.0, -1.5]]
    assert normalise(logprob, n_tokens, n_chars, None, "token").tolist() == [[-3.0, -2.25]]
    assert normalise(logprob, n_tokens, n_chars, uncond, "unconditional").tolist() == [[-2.0, -0.5]]
    # the long option loses on the sum and wins per character: p = 1 / (1 + e^-0.5)
    assert np.allclose(softmax(np.array([[-2.0, -1.5]])), [[1 / (1 + math.exp(0.5)), 1 / (1 + math.exp(-0.5))]])
    with pytest.raises(ValueError, match="unconditional"):
        normalise(logprob, n_tokens, n_chars, None, "unconditional")
    with pytest.raises(ValueError, match="normalisation"):
        normalise(logprob, n_tokens, n_chars, None, "bytes")


def test_a_uniform_model_gives_known_scores(tok):
    """Zero output weights: every next token has probability 1/V, so an option's log-probability is
    -n_tokens log V, its per-token score -log V (all options equal) and its per-character score known."""
    model = tiny_model("llama", tok)
    with torch.no_grad():
        model.lm_head.weight.zero_()
    engine = Engine(model, tok)
    item = MCItem("What would you do?", ("agree", "make friends easily", "no", "describe a situation to you"))
    prompts = [build_prompt(item, LISTED)]
    log_v = math.log(model.config.vocab_size)
    n_tok = np.array([len(tok("\n" + o, add_special_tokens=False)["input_ids"]) for o in item.options], float)
    n_chars = np.array([len(o) for o in item.options], float)
    result = engine.score_options(prompts, [item.options], normalisation="length")
    assert np.allclose(result.n_tokens[0], n_tok) and np.allclose(result.n_chars[0], n_chars)
    assert np.allclose(result.logprob[0], -n_tok * log_v, atol=1e-4)
    assert np.allclose(result.scores[0], -n_tok * log_v / n_chars, atol=1e-5)
    expected = np.exp(-n_tok * log_v / n_chars)
    assert np.allclose(result.probs[0], expected / expected.sum(), atol=1e-6)
    assert np.allclose(result.renormalised("token").probs, 0.25, atol=1e-6)
    assert np.allclose(result.mass, np.exp(-n_tok * log_v).sum(), rtol=1e-3)


def test_continuation_starts_with_the_prompts_trailing_whitespace(tok):
    assert split_answer_position("Question: x\nAnswer: ") == ("Question: x\nAnswer:", " ")
    assert split_answer_position("Answer: \n") == ("Answer:", " \n")
    assert split_answer_position("Answer:") == ("Answer:", " ")
    base = Engine(tiny_model("llama", tok), tok, use_chat_template=False)
    prompt = build_prompt(MCItem("What would you do?", OPTIONS[1]), LISTED)
    inputs = _inputs(base, [prompt], [OPTIONS[1]])
    assert inputs.strings[0][0] == " agree" and inputs.n_chars[0].tolist() == [len(o) for o in OPTIONS[1]]
    assert tok.decode(inputs.contexts[0]).endswith("Answer:")
    assert tok.decode(inputs.contexts[0] + inputs.tokens[0][0]) == tok.decode(
        tok(base.render(prompt) + "agree")["input_ids"])
    chat = Engine(base.model, tok)  # the chat template ends its assistant header with a newline
    assert _inputs(chat, [prompt], [OPTIONS[1]]).strings[0][0] == "\nagree"


def test_shared_prefix_is_encoded_once_and_each_context_once(tok):
    engine = Engine(tiny_model("llama", tok), tok)
    prompts, options = prompts_and_options(systems=("You are a helpful assistant. Describe a situation.",))
    counted = []
    handle = engine.model.get_input_embeddings().register_forward_hook(lambda m, i, o: counted.append(i[0].numel()))
    try:
        engine.score_options(prompts, options, normalisation="none")
    finally:
        handle.remove()
    inputs = _inputs(engine, prompts, options)
    naive_tokens = sum(len(ctx) + len(c) for ctx, conts in zip(inputs.contexts, inputs.tokens) for c in conts)
    own = sum(len(ctx) + sum(len(c) for c in conts) for ctx, conts in zip(inputs.contexts, inputs.tokens))
    assert len(counted) == 1 + len(prompts)  # the shared prefix, then one forward per prompt
    assert sum(counted) < own  # each context once (the shared part once for all), then the options
    assert sum(counted) < naive_tokens / 3


def test_bad_inputs_are_refused(tok):
    engine = Engine(tiny_model("llama", tok), tok)
    prompts, options = prompts_and_options(systems=(None,))
    with pytest.raises(ValueError, match="option texts"):
        engine.score_options(prompts, [o[:3] for o in options])
    with pytest.raises(ValueError, match="prompts"):
        engine.score_options(prompts, options[:-1])
    with pytest.raises(ValueError, match="normalisation"):
        engine.score_options(prompts, options, normalisation="bytes")
    with pytest.raises(ValueError, match="empty"):
        engine.score_options(prompts[:1], [("a", "", "b", "c")])


def test_any_grouping_gives_the_same_numbers_and_each_text_is_scored_once_unconditionally(tok):
    engine = Engine(tiny_model("llama", tok), tok, batch_size=64)
    prompts, options = prompts_and_options()
    default = engine.score_options(prompts, options, normalisation="unconditional")
    per_item = [k // 2 for k in range(len(prompts))]  # an item's two orders share their stem
    counted = []
    handle = engine.model.get_input_embeddings().register_forward_hook(lambda m, i, o: counted.append(i[0].numel()))
    try:
        grouped = engine.score_options(prompts, options, normalisation="unconditional", share=per_item)
    finally:
        handle.remove()
    assert np.abs(grouped.logprob - default.logprob).max() < TOL * np.abs(default.logprob).max()
    np.testing.assert_allclose(grouped.unconditional, default.unconditional, rtol=1e-5)
    # forwards: per item its shared prefix and its two prompts; then the neutral prefix and ONE packed
    # forward of the 12 distinct texts (each text recurs in 2 orders x 2 system prompts)
    assert len(counted) == 3 * len(prompts) // 2 + 2
    assert len({s for row in _inputs(engine, prompts, options).strings for s in row}) == 12
    with pytest.raises(ValueError, match="share"):
        engine.score_options(prompts, options, share=per_item[:-1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/device_check.sh runs it)")
@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_fast_path_equals_naive_loop_on_cuda(tok, family):
    """On CUDA the packed rows go through the dense mask (no block attention): float32 to 1e-4, bfloat16 to
    its rounding."""
    prompts, options = prompts_and_options()
    for dtype, tolerance in ((torch.float32, TOL), (torch.bfloat16, 0.05)):
        engine = Engine(tiny_model(family, tok).to("cuda", dtype), tok, batch_size=3)
        fast = engine.score_options(prompts, options, normalisation="unconditional")
        naive = engine.score_options(prompts, options, normalisation="unconditional", naive=True)
        assert np.abs(fast.probs - naive.probs).max() < tolerance, (family, dtype)
