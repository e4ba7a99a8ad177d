"""Tiny, deterministic models and tokenizers built in memory, for fast tests of anything that
uses the engine (scoring, steering hooks, adapters) without downloading or loading weights.

``tiny_tokenizer()`` is a byte-level BPE trained in a fraction of a second on a generic
questionnaire-like corpus (no task's text), with a ChatML chat template (like SmolLM2's); ``tiny_model(family, tokenizer)``
builds a 2-layer causal LM of that family with a fixed seed. Weights are drawn with a large
``initializer_range`` so next-token distributions are sharp: a bug in padding, positions or
caching then moves probabilities by far more than the 1e-4 the tests allow.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache

import torch

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
NO_SYSTEM_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{{ '<start_of_turn>' + message['role'] + '\n' + message['content'] + '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>", "<start_of_turn>", "<end_of_turn>"]


#: A generic questionnaire-like corpus (no task's own text): enough for byte-level BPE merges of the
#: words, labels and punctuation that multiple-choice prompts use.
GENERIC_CORPUS: tuple[str, ...] = (
    "Please choose one of the following options to answer the question about you.",
    "Options: Very Accurate, Moderately Accurate, Neither, Moderately Inaccurate, Very Inaccurate.",
    "Strongly agree, Agree, Disagree, Strongly disagree. Describe a situation and give a suggestion.",
    "Question: what would you do? Answer: Response: Statement: the behavior of a person.",
    "Answer: A B C D E 1 2 3 4 5",
    "Option (C). D E",
    "1. 2. 3. 4. (A) (B) (C) (D) (E)",
    "I worry about things. I make friends easily. You are a helpful assistant.",
)


def _corpus() -> list[str]:
    lines = [*GENERIC_CORPUS, *GENERIC_CORPUS[4:7]] + ["A B C D E 1 2 3 4 5"] * 30 + [GENERIC_CORPUS[-1]] * 3
    return lines * 4


@lru_cache(maxsize=4)
def tiny_tokenizer(chat_template: str | None = CHATML_TEMPLATE, vocab_size: int = 400):
    """A small byte-level BPE tokenizer (``PreTrainedTokenizerFast``); ``chat_template=None`` for a base model."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_corpus(), vocab_size=vocab_size, min_frequency=2, show_progress=False,
                            special_tokens=SPECIAL_TOKENS)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        additional_special_tokens=SPECIAL_TOKENS[1:3] + SPECIAL_TOKENS[4:],
    )
    tok.chat_template = chat_template
    return tok


def tiny_model(family: str = "llama", tokenizer=None, *, seed: int = 0, init_range: float = 0.5):
    """A 2-layer causal LM (``llama``, ``qwen2``, ``gpt2`` or ``gemma3``) in fp32 eval mode."""
    from transformers import (
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    tokenizer = tokenizer if tokenizer is not None else tiny_tokenizer()
    vocab = len(tokenizer)
    common = dict(vocab_size=vocab, initializer_range=init_range, pad_token_id=tokenizer.pad_token_id,
                  eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    decoder = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, max_position_embeddings=2048, **common)
    torch.manual_seed(seed)
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(**decoder))
    elif family == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**decoder))
    elif family == "gemma3":
        model = Gemma3ForCausalLM(Gemma3TextConfig(head_dim=16, sliding_window=32, **decoder))
    elif family == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=2048, **common))
    else:
        raise ValueError(f"Unknown family '{family}'")
    return model.eval()


@contextmanager
def torch_threads(n: int = 1):
    """Run with ``n`` torch threads. Tiny models on a loaded machine run tens of times faster on
    one thread than on several contending ones (measured here: 0.1 s vs 3-6 s for one test)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
