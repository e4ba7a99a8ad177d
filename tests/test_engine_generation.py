"""Generation mode: batching does not change greedy text, and generated answers are mapped to
option identities or classified as refused / unparseable, never silently to an option."""

import pytest
from tiny_models import tiny_model

from persona.engine import REFUSED, UNPARSEABLE, Engine, MCItem, build_prompt, order_permutation
from persona.papi.data import OPTIONS as PAPI_OPTIONS
from persona.papi.prompts import TEMPLATE as PAPI_TEMPLATE


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (conftest)


def prompts(n=5, permutation=()):
    return [build_prompt(MCItem("worry about things" + " and friends" * (2 * i), PAPI_OPTIONS), PAPI_TEMPLATE,
                         permutation=permutation) for i in range(n)]


def _reference_generate(model, tok, engine, ps, max_new_tokens):
    """One prompt at a time through ``model.generate``: nothing shared, nothing padded."""
    import torch
    from transformers import GenerationConfig

    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                              pad_token_id=engine.pad_id, eos_token_id=tok.eos_token_id)
    out = []
    for p in ps:
        ids = torch.tensor([engine.encode(p)])
        new = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)[0, ids.shape[1]:]
        out.append(tok.decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False))
    return out


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma3", "qwen2"])
def test_packed_and_padded_generation_equal_one_prompt_at_a_time(tok, family):
    model = tiny_model(family, tok)
    system = "You are a helpful assistant. " * 12  # a long shared prefix (longer than gemma3's sliding window)
    shared = [build_prompt(MCItem("worry about things" + " and friends" * (2 * i), PAPI_OPTIONS), PAPI_TEMPLATE,
                           system=system) for i in range(5)]
    ps = prompts() + shared  # a group behind the chat-template prefix and a group behind the system prompt
    reference = _reference_generate(model, tok, Engine(model, tok), ps, 6)
    batched = Engine(model, tok, batch_size=5).generate(ps, max_new_tokens=6)
    unshared = Engine(model, tok, batch_size=5, cache_prefix=False).generate(ps, max_new_tokens=6)
    assert batched == reference and unshared == reference
    if family != "gemma3":  # the tiny random Gemma 3 emits newlines whatever it reads (see the packing test)
        assert len(set(reference)) > 1  # the continuations depend on the item


class Force:
    """A forward hook on the LM head that makes greedy decoding emit ``text`` then end-of-turn."""

    def __init__(self, tok, text):
        self.ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        self.step = 0

    def __call__(self, module, inputs, output):
        target = self.ids[min(self.step, len(self.ids) - 1)]
        self.step += 1
        out = output.clone()
        out[..., target] += 1e4
        return out


@pytest.mark.parametrize(
    "text,parser,original,reversed_",
    [
        ("(B).", "strict", 1, 3),
        # label and text must agree: in the reversed order B shows "Moderately Inaccurate"
        ("(B). Moderately Accurate", "strict", 1, UNPARSEABLE),
        ("(B). Moderately Inaccurate", "strict", UNPARSEABLE, 3),
        ("I would say Very Inaccurate", "strict", 4, 4),
        ("A", "strict", 0, 4),
        ("A", "letter-window", 0, 4),  # the letter-window parser sees the end-of-turn token after "A"
        ("I'm sorry, but I cannot answer that.", "strict", REFUSED, REFUSED),
        ("qzx ## 42 ~~", "strict", UNPARSEABLE, UNPARSEABLE),
    ],
)
def test_generated_answers_map_to_identities_or_are_classified(tok, text, parser, original, reversed_):
    model = tiny_model("llama", tok)
    engine = Engine(model, tok, batch_size=1)  # one prompt per generate call: the hook's step counter restarts
    outcomes = []
    for permutation in [(), order_permutation(5, "reversed")]:
        ps = prompts(2, permutation)
        results = []
        for p in ps:
            handle = model.get_output_embeddings().register_forward_hook(Force(tok, text))
            try:
                results.append(engine.answer([p], parser=parser, option_texts=[PAPI_OPTIONS], max_new_tokens=40))
            finally:
                handle.remove()
        assert all(r.texts[0].startswith(text) for r in results), [r.texts for r in results]
        outcomes.append({r.outcome[0] for r in results})
    assert outcomes == [{original}, {reversed_}]


def test_rates(tok):
    from persona.engine import GenerationResult

    r = GenerationResult(texts=["a", "b", "c", "d"], outcome=[0, REFUSED, UNPARSEABLE, 2])
    assert (r.refusal_rate, r.unparseable_rate, r.answered_rate) == (0.25, 0.25, 0.5)
    assert r.choice == [0, -1, -1, 2]
