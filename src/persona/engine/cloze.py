"""Option-text (cloze) scoring: the likelihood of each option's *text* as the answer, not of its label.

Small models are usually scored this way (lm-evaluation-harness's multiple-choice tasks; OLMES below
~1B parameters): a model that cannot yet map a question to a letter may still find one answer text more
likely than another. The prompt is the one label scoring uses (it may list the options); the continuation
of a prompt for option ``j`` is option ``j``'s text:

* the prompt is rendered up to the answer position (``rendering``) and its trailing whitespace moves into
  the continuation, as lm-evaluation-harness does: "...Answer: " + "Stay home" is read as the context
  "...Answer:" and the continuation " Stay home", which a byte-level BPE writes with the word token
  " Stay" instead of a lone " " and "Stay". A prompt that ends without whitespace gets one space;
* the continuation's tokens are the tokens of (context + continuation) after the context's own tokens,
  so a tokenizer that marks word starts (SentencePiece) reads them as it would in running text; where the
  context's tokens are not a prefix of the whole's (a token across the boundary), the continuation is
  tokenized on its own.

Per option (identity order), ``logprob`` is the sum of the continuation's token log-probabilities, and
the score is, by ``normalisation``:

* ``none``: ``logprob`` (favours short options);
* ``length``: ``logprob`` / the number of *characters* of the option text (lm-evaluation-harness's
  ``acc_norm``; characters rather than tokens, so the score does not depend on the tokenizer);
* ``token``: ``logprob`` / the number of continuation tokens;
* ``unconditional``: ``logprob`` minus the log-probability of the same continuation string after a fixed
  neutral context (default "Answer:", OLMES's PMI normalisation): how much the question, rather than the
  text's own frequency, makes the option likely. The neutral context is plain text (not chat-rendered):
  the option's prior as text.

``probs`` = softmax of the scores over the options. ``mass`` = the total probability of the options' full
texts after the prompt (sum of exp(logprob)): tiny for long texts, and not comparable to a label mass.
``raw`` = ``probs`` (a score is not a probability, its softmax is; any consumer that renormalises ``raw``
gets ``probs``).

Speed: prompts with the same ``system`` share their contexts' common token prefix (``packing.plan``),
encoded once; then ONE forward per prompt holds the rest of its context (tokens every row sees, like the
prefix) and one row per option (each row sees the context and itself, never another option), packed
behind that prefix. A row is the context's last token followed by the continuation minus its last token,
so its logits predict exactly the continuation. The unconditional log-probabilities depend only on the
continuation string: each distinct string of a call is scored once, packed behind the neutral context.
``option_logprobs_naive`` is the reference (one forward per prompt and option, nothing shared).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np
import torch

from persona.engine.packing import Packed, device_of, plan, prefix_cache
from persona.engine.scoring import OptionProbs

NORMALISATIONS = ("none", "length", "token", "unconditional")
NEUTRAL_CONTEXT = "Answer:"


def _check_normalisation(normalisation: str) -> None:
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"Unknown normalisation {normalisation!r}: use one of {list(NORMALISATIONS)}")


def normalise(logprob: np.ndarray, n_tokens: np.ndarray, n_chars: np.ndarray, unconditional: np.ndarray | None,
              normalisation: str) -> np.ndarray:
    """Option scores from their parts (arrays of one shape; see the module docstring)."""
    _check_normalisation(normalisation)
    logprob = np.asarray(logprob, float)
    if normalisation == "none":
        return logprob.copy()
    if normalisation == "length":
        return logprob / np.asarray(n_chars, float)
    if normalisation == "token":
        return logprob / np.asarray(n_tokens, float)
    if unconditional is None:
        raise ValueError("normalisation 'unconditional' needs the unconditional log-probabilities")
    return logprob - np.asarray(unconditional, float)


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax (rows with a NaN score stay NaN)."""
    scores = np.asarray(scores, float)
    shifted = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def log_total(logprob: np.ndarray) -> np.ndarray:
    """log of the summed probabilities of each row's options (log-sum-exp, stable)."""
    logprob = np.asarray(logprob, float)
    top = logprob.max(axis=1)
    return top + np.log(np.exp(logprob - top[:, None]).sum(axis=1))


@dataclass
class OptionScores(OptionProbs):
    """Cloze scores; ``probs``/``mass``/``raw`` as ``OptionProbs`` (see the module docstring), columns in
    identity order, plus the parts every normalisation is computed from."""

    scores: np.ndarray | None = None  # (n_items, n_options) normalised scores; probs = softmax(scores)
    logprob: np.ndarray | None = None  # sum of the continuation's token log-probabilities after the prompt
    n_tokens: np.ndarray | None = None  # continuation tokens (after the prompt)
    n_chars: np.ndarray | None = None  # characters of the option text (without the leading whitespace)
    unconditional: np.ndarray | None = None  # log-probability after the neutral context (NaN: not computed)
    normalisation: str = "length"

    @classmethod
    def build(cls, logprob, n_tokens, n_chars, unconditional, normalisation: str) -> "OptionScores":
        scores = normalise(logprob, n_tokens, n_chars, unconditional, normalisation)
        probs = softmax(scores)
        return cls(probs=probs, mass=np.exp(log_total(logprob)), raw=probs.copy(), scores=scores,
                   logprob=np.asarray(logprob, float), n_tokens=np.asarray(n_tokens, float),
                   n_chars=np.asarray(n_chars, float),
                   unconditional=None if unconditional is None else np.asarray(unconditional, float),
                   normalisation=normalisation)

    def renormalised(self, normalisation: str) -> "OptionScores":
        """The same log-probabilities under another normalisation (no model call)."""
        return OptionScores.build(self.logprob, self.n_tokens, self.n_chars, self.unconditional, normalisation)


# --- texts and tokens ------------------------------------------------------------------------------

def split_answer_position(text: str) -> tuple[str, str]:
    """(context, separator): the rendered prompt without its trailing whitespace, and that whitespace
    (one space when there is none), which starts every continuation."""
    context = text.rstrip()
    if not context:
        raise ValueError("A cloze prompt needs some text before the answer position")
    return context, text[len(context):] or " "


def _tokens(tokenizer, text: str, add_special_tokens: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])


def continuation_ids(tokenizer, context: str, context_ids: list[int], continuation: str,
                     add_special_tokens: bool) -> list[int]:
    """The continuation's tokens as they follow ``context`` (see the module docstring)."""
    whole = _tokens(tokenizer, context + continuation, add_special_tokens)
    n = len(context_ids)
    if len(whole) > n and whole[:n] == context_ids:
        return whole[n:]
    alone = _tokens(tokenizer, continuation, False)
    if not alone:
        raise ValueError(f"The continuation {continuation!r} has no tokens")
    return alone


@dataclass
class ClozeInputs:
    """What one call scores: per prompt its context tokens and, per identity option, the continuation."""

    contexts: list[list[int]]
    strings: list[list[str]]  # continuation strings (separator + option text)
    tokens: list[list[list[int]]]  # continuation tokens after the prompt's context
    n_chars: np.ndarray

    @classmethod
    def prepare(cls, rendered: Sequence[str], option_texts: Sequence[Sequence[str]], tokenizer,
                add_special_tokens: bool, n_options: Sequence[int]) -> "ClozeInputs":
        if len(option_texts) != len(rendered):
            raise ValueError(f"{len(rendered)} prompts but {len(option_texts)} lists of option texts")
        contexts, strings, tokens, chars = [], [], [], []
        for text, options, n in zip(rendered, option_texts, n_options):
            if len(options) != n:
                raise ValueError(f"A prompt with {n} options got {len(options)} option texts")
            if any(not o.strip() for o in options):
                raise ValueError(f"Option texts must not be empty, got {list(options)!r}")
            context, sep = split_answer_position(text)
            ids = _tokens(tokenizer, context, add_special_tokens)
            contexts.append(ids)
            strings.append([sep + o for o in options])
            tokens.append([continuation_ids(tokenizer, context, ids, sep + o, add_special_tokens) for o in options])
            chars.append([len(o) for o in options])
        return cls(contexts, strings, tokens, np.asarray(chars, float))


# --- model calls ----------------------------------------------------------------------------------

def _row(context: list[int], continuation: list[int]) -> tuple[list[int], list[int]]:
    """(tokens fed, tokens predicted): the context's last token and the continuation but its last token
    are fed, and the logits after each predict the next continuation token."""
    return [context[-1], *continuation[:-1]], list(continuation)


def _sum_logprobs(logits: torch.Tensor, targets: Sequence[int]) -> float:
    logp = torch.log_softmax(logits.float(), dim=-1)
    return float(logp[torch.arange(len(targets)), torch.tensor(list(targets), device=logp.device)].double().sum())


def _packed_rows(model, prefix: list[int], cache, rest: list[int], rows: list[tuple[list[int], list[int]]]
                 ) -> list[float]:
    """One forward: ``rest`` (seen by every row, like the prefix) and the rows behind ``prefix``; returns
    each row's summed log-probability of its targets."""
    packed = Packed.start(model, prefix, cache)
    fed = ([rest] if rest else []) + [r for r, _ in rows]
    row_ids = ([-1] if rest else []) + list(range(len(rows)))
    start = len(prefix) + len(rest)
    positions = ([list(range(len(prefix), start))] if rest else []) + [list(range(start, start + len(r)))
                                                                     for r, _ in rows]
    keep, offset = [], len(rest)
    for r, _ in rows:
        keep += range(offset, offset + len(r))
        offset += len(r)
    logits = packed.extend(fed, positions, keep, row_ids=row_ids)
    out, at = [], 0
    for r, targets in rows:
        out.append(_sum_logprobs(logits[at: at + len(r)], targets))
        at += len(r)
    return out


def _naive_one(model, context: list[int], continuation: list[int]) -> float:
    ids = torch.tensor([context + continuation], device=device_of(model))
    logits = model(input_ids=ids, use_cache=False).logits[0, len(context) - 1: -1]
    return _sum_logprobs(logits, continuation)


@torch.no_grad()
def option_logprobs(model, systems: Sequence[Hashable], inputs: ClozeInputs, *, cache_prefix: bool = True,
                    progress: bool = False) -> np.ndarray:
    """(n_prompts, n_options) summed log-probabilities of each continuation after its prompt (fast path);
    prompts with the same ``systems`` entry share the encoding of their common token prefix."""
    out = np.full(inputs.n_chars.shape, np.nan)
    contexts = inputs.contexts
    groups = plan(systems, contexts, max(1, len(contexts)), cache_prefix)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(contexts), desc="cloze prompts")
    for prefix, batches in groups:
        cache = prefix_cache(model, prefix) if prefix else None
        for i in (i for batch in batches for i in batch):
            ctx = contexts[i]
            rows = [_row(ctx, cont) for cont in inputs.tokens[i]]
            if prefix:
                out[i] = _packed_rows(model, prefix, cache, ctx[len(prefix):-1], rows)
            elif len(ctx) >= 2:  # the prompt's own context as the prefix
                out[i] = _packed_rows(model, ctx[:-1], None, [], rows)
            else:
                out[i] = [_naive_one(model, ctx, cont) for cont in inputs.tokens[i]]
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return out


@torch.no_grad()
def option_logprobs_naive(model, inputs: ClozeInputs) -> np.ndarray:
    """Reference: one unpadded forward per (prompt, option), full logits, nothing shared."""
    out = np.full(inputs.n_chars.shape, np.nan)
    for i, (ctx, conts) in enumerate(zip(inputs.contexts, inputs.tokens)):
        out[i] = [_naive_one(model, ctx, cont) for cont in conts]
    return out


def neutral_ids(tokenizer, neutral: str) -> list[int]:
    ids = _tokens(tokenizer, neutral, True)
    if not ids:
        raise ValueError(f"The neutral context {neutral!r} encodes to no token")
    return ids


@torch.no_grad()
def unconditional_logprobs(model, tokenizer, strings: Sequence[Sequence[str]], neutral: str = NEUTRAL_CONTEXT, *,
                           batch_size: int = 8, naive: bool = False) -> np.ndarray:
    """log p(continuation | ``neutral``) for each continuation string; each distinct string is scored once,
    ``batch_size`` of them packed behind one encoding of the neutral context (``naive``: one forward each)."""
    context = neutral_ids(tokenizer, neutral)
    unique = list(dict.fromkeys(s for row in strings for s in row))
    conts = [continuation_ids(tokenizer, neutral, context, s, True) for s in unique]
    values: list[float] = []
    if naive or len(context) < 2:
        values = [_naive_one(model, context, c) for c in conts]
    else:
        prefix = context[:-1]
        cache = prefix_cache(model, prefix)
        for k in range(0, len(conts), batch_size):
            values += _packed_rows(model, prefix, cache, [], [_row(context, c) for c in conts[k: k + batch_size]])
    found = dict(zip(unique, values))
    return np.array([[found[s] for s in row] for row in strings], float)
