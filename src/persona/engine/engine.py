"""``Engine``: one object that asks a model multiple-choice questions, by likelihood (of the option labels or
of the option texts) or by generated text.

The engine only calls the model's ``forward`` and ``generate``, so forward hooks on the model
(PAS steering) and PEFT-wrapped models (DPO LoRA) work unchanged. Nothing is cached across
calls (a hook may change between them); within one ``label_probs`` call the shared prefix of prompts
with the same ``system`` is encoded once.
"""

from __future__ import annotations

from typing import Hashable, Sequence

import numpy as np

from persona.engine.cloze import (
    NEUTRAL_CONTEXT,
    _check_normalisation,
    ClozeInputs,
    OptionScores,
    option_logprobs,
    option_logprobs_naive,
    unconditional_logprobs,
)
from persona.engine.generation import generate_greedy
from persona.engine.items import MCPrompt
from persona.engine.parsing import GenerationResult, parse_answer
from persona.engine.rendering import encode, has_chat_template, render_text
from persona.engine.scoring import (
    LabelIds,
    OptionProbs,
    _n_options,
    decoded_vocab,
    label_token_ids,
    score_batched,
    label_probs_naive,
)


class Engine:
    def __init__(
        self,
        model,
        tokenizer,
        *,
        batch_size: int = 8,
        use_chat_template: bool | None = None,
        cache_prefix: bool = True,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.use_chat_template = has_chat_template(tokenizer) if use_chat_template is None else use_chat_template
        if self.use_chat_template and not has_chat_template(tokenizer):
            raise ValueError("use_chat_template=True but the tokenizer has no chat template")
        self.cache_prefix = cache_prefix
        self._vocab: list[str] | None = None
        self._label_ids: dict[tuple[str, ...], list[list[int]]] = {}

    # -- prompt -> tokens ---------------------------------------------------------------------
    def render(self, prompt: MCPrompt) -> str:
        """The exact text the model reads (useful to show in the book)."""
        return render_text(prompt, self.tokenizer, self.use_chat_template)

    def encode(self, prompt: MCPrompt) -> list[int]:
        return encode(prompt, self.tokenizer, self.use_chat_template)

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        for candidate in (tok.pad_token_id, tok.eos_token_id, 0):
            if candidate is not None:
                return int(candidate)
        return 0

    def label_token_ids(self, labels: tuple[str, ...]) -> list[list[int]]:
        """Token ids counted for each label (bare, space-prefixed, with punctuation, ...)."""
        if labels not in self._label_ids:
            if self._vocab is None:
                vocab_size = self.model.get_output_embeddings().weight.shape[0]
                self._vocab = decoded_vocab(self.tokenizer, vocab_size)
            special = set(self.tokenizer.all_special_ids)
            self._label_ids[labels] = label_token_ids(self._vocab, labels, special)
        return self._label_ids[labels]

    # -- likelihood ---------------------------------------------------------------------------
    def label_probs(self, prompts: Sequence[MCPrompt], *, progress: bool = False,
                    label_ids: LabelIds | None = None) -> OptionProbs:
        """Option probabilities (identity order) for each prompt; see ``scoring``.

        ``label_ids`` replaces the engine's choice of label tokens (every single-token spelling of a
        label), e.g. to reproduce a pipeline that reads the bare tokens only.
        """
        token_ids = [self.encode(p) for p in prompts]
        return score_batched(
            self.model,
            prompts,
            token_ids,
            label_ids or self.label_token_ids,
            pad_id=self.pad_id,
            batch_size=self.batch_size,
            cache_prefix=self.cache_prefix,
            progress=progress,
        )

    def label_probs_naive(self, prompts: Sequence[MCPrompt]) -> OptionProbs:
        """Reference: one prompt per forward, nothing shared (for tests and benchmarks)."""
        return label_probs_naive(self.model, prompts, [self.encode(p) for p in prompts], self.label_token_ids)

    # -- option texts (cloze) -----------------------------------------------------------------
    def score_options(self, prompts: Sequence[MCPrompt], option_texts: Sequence[Sequence[str]], *,
                      normalisation: str = "length", neutral: str = NEUTRAL_CONTEXT,
                      share: Sequence[Hashable] | None = None, progress: bool = False,
                      naive: bool = False) -> OptionScores:
        """The likelihood of each option's text as the answer to its prompt (``persona.engine.cloze``).

        ``option_texts[i]``: prompt i's option texts in IDENTITY order (the columns of the result; the
        prompt's permutation only changes the text it shows). ``normalisation``: "none", "length" (per
        character), "token" (per token) or "unconditional" (minus the log-probability after ``neutral``,
        computed only for this one); ``renormalised`` gives the others from the same log-probabilities.
        ``share[i]``: the group of prompt i, whose common token prefix is encoded once (default: its
        ``system``, as in ``label_probs``); e.g. one group per item when an item's orders share its stem. Any
        grouping gives the same numbers; each distinct continuation is scored once per call after
        ``neutral``. ``naive``: the reference path (one forward per prompt and option).
        """
        _check_normalisation(normalisation)
        n = _n_options(prompts)
        inputs = ClozeInputs.prepare([self.render(p) for p in prompts], option_texts, self.tokenizer,
                                     not self.use_chat_template, [n] * len(prompts))
        if naive:
            logprob = option_logprobs_naive(self.model, inputs)
        else:
            groups = list(share) if share is not None else [p.system for p in prompts]
            if len(groups) != len(prompts):
                raise ValueError(f"{len(prompts)} prompts but {len(groups)} share keys")
            logprob = option_logprobs(self.model, groups, inputs,
                                      cache_prefix=self.cache_prefix, progress=progress)
        unconditional = None
        if normalisation == "unconditional":
            unconditional = unconditional_logprobs(self.model, self.tokenizer, inputs.strings, neutral,
                                                   batch_size=self.batch_size, naive=naive)
        n_tokens = np.array([[len(t) for t in row] for row in inputs.tokens], float)
        return OptionScores.build(logprob, n_tokens, inputs.n_chars, unconditional, normalisation)

    # -- generation ---------------------------------------------------------------------------
    def generate(
        self, prompts: Sequence[MCPrompt], *, max_new_tokens: int = 15, skip_special_tokens: bool = True
    ) -> list[str]:
        """Greedy continuations (new text only) of each prompt; prompts with the same ``system`` share
        the encoding of their common prefix (as in ``label_probs``)."""
        return generate_greedy(
            self.model,
            self.tokenizer,
            [self.encode(p) for p in prompts],
            pad_id=self.pad_id,
            systems=[p.system for p in prompts] if self.cache_prefix else None,
            batch_size=self.batch_size,
            max_new_tokens=max_new_tokens,
            skip_special_tokens=skip_special_tokens,
        )

    def answer(
        self,
        prompts: Sequence[MCPrompt],
        *,
        max_new_tokens: int = 15,
        parser: str = "strict",
        option_texts: Sequence[Sequence[str]] | None = None,
        window_prefix: str = "",
    ) -> GenerationResult:
        """Generate, parse, and map each answer to its option identity.

        ``option_texts[i]``: prompt i's option texts in IDENTITY order (lets the strict parser
        recognise an answer given as text). The letter-window parser (PAlign's regex) sees special tokens, as PAlign's did.
        """
        texts = self.generate(prompts, max_new_tokens=max_new_tokens, skip_special_tokens=(parser != "letter-window"))
        outcome: list[int | str] = []
        for i, (prompt, text) in enumerate(zip(prompts, texts)):
            ident = prompt.identity_of_position
            shown = [option_texts[i][j] for j in ident] if option_texts is not None else ()
            parsed = parse_answer(text, prompt.labels, parser=parser, option_texts=shown, window_prefix=window_prefix)
            outcome.append(ident[parsed] if isinstance(parsed, int) else parsed)
        return GenerationResult(texts=texts, outcome=outcome)
