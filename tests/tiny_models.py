"""Tiny, deterministic models and tokenizers built in memory, for fast tests of anything that
uses the engine (scoring, steering hooks, adapters) without downloading or loading weights.

Test support, not part of the package (pytest puts ``tests/`` on the path: ``from tiny_models import ...``).
``tiny_tokenizer()`` is a byte-level BPE trained in a fraction of a second on a generic
questionnaire-like corpus (common answer-scale words, no task's item text), with a ChatML chat template (like SmolLM2's); ``tiny_model(family, tokenizer)``
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


def tiny_model(family: str = "llama", tokenizer=None, *, seed: int = 0, init_range: float = 0.5,
               sliding_window: int = 32):
    """A 2-layer causal LM (``llama``, ``qwen2``, ``gpt2`` or ``gemma3``, whose layers all slide over
    ``sliding_window`` tokens) in fp32 eval mode."""
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
        model = Gemma3ForCausalLM(Gemma3TextConfig(head_dim=16, sliding_window=sliding_window, **decoder))
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


# --------------------------------------------------------------------------------------------------
# Tiny models saved to a folder, shaped like a real hub model (for end-to-end rehearsals: a folder is
# a valid ``model`` everywhere, and ``persona.models.load_model`` loads it like any checkpoint)

#: The pre-tokenizer split of Llama-3 (tiktoken's cl100k pattern, public in its tokenizer.json). Unlike
#: GPT-2's, it attaches one leading punctuation character to a word: "(A" is one piece, and it is one
#: token of Llama-3's vocabulary.
CL100K_PRETOKENIZER = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                       r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def tiny_bpe_tokenizer(*, chat_template: str | None, special_tokens: list[str], bos_token: str, eos_token: str,
                       pad_token: str | None = None, pre_tokenizer_regex: str | None = None,
                       extra_corpus: tuple[str, ...] = (), vocab_size: int = 512):
    """A byte-level BPE tokenizer like a real model's: its own special tokens, BOS/EOS (and no pad token
    when ``pad_token`` is None, as Llama-3), optionally a regex pre-tokenizer split (``CL100K_PRETOKENIZER``
    for Llama-3), trained on the generic corpus plus ``extra_corpus`` (lines whose pieces should become
    tokens, e.g. a task's option lines)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=pre_tokenizer_regex is None)
    bpe.pre_tokenizer = (byte_level if pre_tokenizer_regex is None else pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(pre_tokenizer_regex), behavior="isolated"), byte_level]))
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=list(special_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(_corpus() + list(extra_corpus) * 8, trainer)
    named = {bos_token, eos_token, pad_token} - {None}
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=bos_token, eos_token=eos_token, pad_token=pad_token,
                                  additional_special_tokens=[t for t in special_tokens if t not in named])
    tok.chat_template = chat_template
    return tok


def favour_tokens(model, tokenizer, texts, *, level: float = 3.0, weight: float = 200.0) -> None:
    """Make a random Llama-like model answer mostly with the tokens whose stripped text is in ``texts`` (an
    instruct model answers with option labels): residual channel 0 becomes a private bias channel (every
    embedding holds ``level`` there; no layer reads or writes it) and only those tokens' output rows read it,
    with ``weight``. The boost shrinks as the residual stream grows, so it still depends on the input."""
    wanted = set(texts)
    ids = [i for token, i in tokenizer.get_vocab().items() if tokenizer.convert_tokens_to_string([token]).strip() in wanted]
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = level
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0, :] = 0
            layer.mlp.down_proj.weight[0, :] = 0
            for reader in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, layer.mlp.gate_proj,
                           layer.mlp.up_proj):
                reader.weight[:, 0] = 0
        model.lm_head.weight[:, 0] = 0
        model.lm_head.weight[ids, 0] = weight


def save_tiny_llama(folder, tokenizer, *, seed: int = 0, layers: int = 2, eos_tokens: tuple[str, ...] = (),
                    init_range: float = 0.5, favour: tuple[str, ...] = (), **config):
    """Save a random ``LlamaForCausalLM`` (hidden 64, 4 query heads sharing 2 key/value heads: grouped-query
    attention, untied embeddings, RoPE theta 500,000 as Llama-3) with ``tokenizer`` and a generation config
    that stops at every token of ``eos_tokens`` (Llama-3-Instruct stops at <|end_of_text|> and <|eot_id|>)
    into ``folder``, in float32, as ``save_pretrained`` writes a hub checkpoint. ``favour``: texts of tokens
    it mostly answers with (``favour_tokens``). Returns the folder."""
    from pathlib import Path

    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    eos_ids = [tokenizer.convert_tokens_to_ids(t) for t in eos_tokens] or [tokenizer.eos_token_id]
    settings = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192, rope_theta=500000.0,
                    rms_norm_eps=1e-5, tie_word_embeddings=False, initializer_range=init_range,
                    bos_token_id=tokenizer.bos_token_id, eos_token_id=eos_ids, pad_token_id=tokenizer.pad_token_id)
    settings.update(config)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**settings)).eval()
    if favour:
        favour_tokens(model, tokenizer, favour)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos_ids,
                                               do_sample=False)
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
