"""The documents the harness tasks iterate over: the book's items and prompts, rendered as the engine renders them.

lm-eval hands a task's dataset function its ``--model_args`` and ``--metadata`` (one dict); from them the
builders here take the model's tokenizer (``tokenizer``, else ``pretrained``, else ``model``), the sample (the
chapters' own parameter names and sampling functions: ``per_trait``, ``seed``, ``n_subjects`` ...) and build
one document per question. A document carries its prompt in every option order it is asked in, as the text
the engine would tokenize (``persona.engine.rendering``: the chat template when the tokenizer has one, the
same system prompts and answer cues), so a harness run and an engine run read the same tokens.

**Which label tokens lm-eval can be asked for.** The engine counts a label through every single vocabulary
token that reads as the label (``persona.engine.scoring.label_token_ids``: "A", " A", ...). lm-eval takes text,
not token ids: it moves the context's trailing whitespace into the continuation, tokenizes context +
continuation as one string and scores the tokens after the context's own. So for each label token the builder
checks, with lm-eval's own tokenization rule (:func:`lm_encode`), that the text "prompt + that token's text" is
exactly the engine's prompt tokens followed by that one token; then ``log p(token | prompt)`` is the
difference of two lm-eval log-likelihoods: of that continuation, and of the trailing whitespace alone (the
*base*, asked only when the prompt ends in whitespace, as a chat template's "assistant\\n" does). Tokens for
which no text does that (after a prompt ending in a space, the bare "A" that the engine reads after the space
token: lm-eval's "Answer: A" becomes one " A" token) are listed in the document's ``missing`` and left out;
with a chat template none are missing for the tokenizers we checked (``book/harness.md``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping, Sequence

from persona.datafiles import DataError
from persona.engine import MCPrompt
from persona.engine.rendering import encode, has_chat_template, render_text
from persona.engine.scoring import decoded_vocab, label_token_ids


class TaskInputError(SystemExit):
    """A task cannot be built as asked: an unknown name, data that is not provisioned, no tokenizer.

    Raised while lm-eval loads the task. It is a ``SystemExit`` so that ``lm_eval`` ends with this message
    alone, not a traceback through its task loader; Python callers catch it as ``SystemExit``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(f"[persona.harness] {message}")


PROVISION_HINT = ("Provision the study's data first: `python -m persona.provision` (it reads PERSONA_DATA_MIRROR, a "
                  "folder holding the files named in data/manifest.json, or fetches them upstream; TRAIT is a gated "
                  "hub dataset: accept its terms and set HF_TOKEN).")


def provisioned(load: Callable[[], Any], what: str) -> Any:
    """``load()``, with a data file that cannot be had turned into the provisioning message."""
    try:
        return load()
    except DataError as exc:
        raise TaskInputError(f"{what} is not available here: {exc}\n{PROVISION_HINT}") from None


# --------------------------------------------------------------------------------------------------
# Parameters from lm-eval's metadata (model_args merged with --metadata)

def flag(value: Any, name: str) -> bool | None:
    """A yes/no parameter given as a bool or as text ("true", "false", "auto" = None)."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("auto", "none", ""):
        return None
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise TaskInputError(f"{name} must be true, false or auto, got {value!r}")


def as_list(value: Any) -> list:
    """A list parameter given as a list, a comma-separated string or one value."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [v.strip() for v in str(value).split(",") if v.strip()] if isinstance(value, str) else [value]


def count(meta: Mapping[str, Any], name: str) -> int | None:
    """An optional positive count (None: all)."""
    value = meta.get(name)
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "all", "")):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or isinstance(value, bool) or (isinstance(value, float) and value != number):
        raise TaskInputError(f"{name} must be a positive integer or null (all), got {value!r}")
    return number


def choose(values: Iterable[Any], valid: Mapping[str, Any], what: str, listing: str) -> list:
    """Each value looked up (case-insensitively) in ``valid``; an unknown one stops with the valid names."""
    out = []
    for value in values:
        key = str(value).strip().lower()
        if key not in valid:
            raise TaskInputError(f"unknown {what} {value!r}; valid: {listing}")
        if valid[key] not in out:
            out.append(valid[key])
    return out


# --------------------------------------------------------------------------------------------------
# The tokenizer and how lm-eval turns text into tokens

TOKENIZER_KEYS = ("tokenizer", "pretrained", "model")


@lru_cache(maxsize=4)
def _load_tokenizer(name: str, revision: str | None, trust_remote_code: bool):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code)


def model_tokenizer(meta: Mapping[str, Any], *, required: bool, task: str):
    """The model's Hugging Face tokenizer named by the metadata (an object passed in Python is used as is).

    ``required``: the likelihood tasks need it (chat template, label tokens); generation tasks can do without
    (plain text, or lm-eval's own ``--apply_chat_template``).
    """
    tried = []
    for key in TOKENIZER_KEYS:
        value = meta.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            if hasattr(value, "apply_chat_template") or hasattr(value, "convert_ids_to_tokens"):
                return value
            continue
        try:
            return _load_tokenizer(value, meta.get("revision"), bool(flag(meta.get("trust_remote_code"),
                                                                           "trust_remote_code")))
        except Exception as exc:  # noqa: BLE001 - any loading failure means "no tokenizer by this name"
            tried.append(f"{key}={value!r} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
    if not required:
        return None
    detail = "; ".join(tried) if tried else "none of tokenizer=, pretrained=, model= was given"
    raise TaskInputError(
        f"the task '{task}' renders each prompt with the model's chat template and reads its label tokens, so it "
        f"needs the model's Hugging Face tokenizer (a hub id in the local cache, or a folder). Tried: {detail}. "
        f"Name it in --model_args (tokenizer=<id or folder>) or --metadata '{{\"tokenizer\": \"<id or folder>\"}}'.")


def prefix_text(tokenizer) -> str | None:
    """The text lm-eval's HF backend checks a prompt's start against (BOS, else EOS: its ``prefix_token_id``)."""
    token_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    return None if token_id is None else tokenizer.decode([token_id])


def lm_encode(tokenizer, text: str, add_bos_token: bool | None = None) -> list[int]:
    """Token ids of ``text`` as lm-eval's HF and vLLM backends encode a context (``tok_encode``): no special
    tokens when the text already starts with the BOS text, else as ``add_bos_token`` says (default: the
    tokenizer's own, i.e. added)."""
    start = prefix_text(tokenizer)
    if start and text.startswith(start):
        special = False
    else:
        special = True if add_bos_token is None else add_bos_token
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


@lru_cache(maxsize=4)
def _vocab(tokenizer) -> list[str]:
    """Every token id decoded on its own, as the engine decodes them (once per tokenizer)."""
    return decoded_vocab(tokenizer, len(tokenizer))


@dataclass(frozen=True)
class Asked:
    """What lm-eval is asked for one prompt: the context text, each label's continuation texts, and whether
    the base (the trailing whitespace alone) is asked too; ``missing``: label tokens no text can reach."""

    context: str
    continuations: tuple[tuple[str, ...], ...]
    base: bool
    missing: tuple[str, ...]


@dataclass
class Renderer:
    """Renders prompts as the engine does and finds the label texts lm-eval can score exactly."""

    tokenizer: Any
    chat: bool
    add_bos_token: bool | None = None
    start: str | None = field(init=False, default=None, repr=False)  # lm-eval's BOS check (``prefix_text``)
    _labels: dict = field(default_factory=dict, repr=False)
    _checked: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.start = prefix_text(self.tokenizer) if self.tokenizer is not None else None

    @classmethod
    def for_meta(cls, tokenizer, meta: Mapping[str, Any]) -> "Renderer":
        """The engine's rule (chat template when the tokenizer has one) unless ``chat_template`` says otherwise."""
        wanted = flag(meta.get("chat_template"), "chat_template")
        has = tokenizer is not None and has_chat_template(tokenizer)
        if wanted and not has:
            raise TaskInputError("chat_template=true but the tokenizer has no chat template")
        return cls(tokenizer, has if wanted is None else wanted, flag(meta.get("add_bos_token"), "add_bos_token"))

    def text(self, prompt: MCPrompt) -> str:
        """The prompt as lm-eval should send it: the engine's text; in plain text, with the BOS text in front
        when the tokenizer adds one (the engine encodes plain text with special tokens, lm-eval does not)."""
        text = render_text(prompt, self.tokenizer, self.chat and self.tokenizer is not None)
        if self.chat or self.tokenizer is None:
            return text
        with_special = self.tokenizer(text, add_special_tokens=True)["input_ids"]
        without = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        bos = self.tokenizer.bos_token_id
        if bos is not None and len(with_special) == len(without) + 1 and with_special[0] == bos:
            return self.tokenizer.bos_token + text
        return text

    def label_ids(self, labels: tuple[str, ...]) -> list[list[int]]:
        """The engine's label tokens (every single-token spelling of each label)."""
        if labels not in self._labels:
            self._labels[labels] = label_token_ids(self.vocab, labels, set(self.tokenizer.all_special_ids))
        return self._labels[labels]

    @property
    def vocab(self) -> list[str]:
        return _vocab(self.tokenizer)


    def _tail_key(self, text: str) -> str | None:
        """The text after its last special token: tokenization never crosses a special token, so prompts with
        the same tail get the same answer from :meth:`_check` (chat prompts all end alike). None: no such token."""
        cut = max((text.rfind(s) + len(s) for s in self.tokenizer.all_special_tokens if s and s in text), default=-1)
        return None if cut < 0 else text[cut:]

    def asked(self, prompt: MCPrompt) -> Asked:
        text = self.text(prompt)
        key = self._tail_key(text)
        cache_key = None if key is None else (key, prompt.labels, bool(self.start and text.startswith(self.start)))
        if cache_key is None or cache_key not in self._checked:
            found = self._check(text, encode(prompt, self.tokenizer, self.chat), prompt.labels)
            if cache_key is None:
                return Asked(text, *found)
            self._checked[cache_key] = found
        return Asked(text, *self._checked[cache_key])

    def _check(self, text: str, ids: list[int], labels: tuple[str, ...]):
        context = text.rstrip()
        space = text[len(context):]
        context_ids = lm_encode(self.tokenizer, context, self.add_bos_token)
        prefix_ok = ids[: len(context_ids)] == context_ids and lm_encode(self.tokenizer, text, self.add_bos_token) == ids
        conts, missing = [], []
        for token_ids in self.label_ids(labels):
            mine = []
            for token in token_ids:
                piece = self.vocab[token]
                whole = lm_encode(self.tokenizer, context + space + piece, self.add_bos_token)
                if prefix_ok and whole == ids + [token] and piece not in mine:
                    mine.append(piece)
                else:
                    missing.append(piece)
            conts.append(tuple(mine))
        return tuple(conts), bool(space), tuple(missing)


def prompt_fields(prompts: Sequence[MCPrompt], orders: Sequence[str], renderer: Renderer, *,
                  likelihood: bool = True) -> dict:
    """The fields every document carries for its prompts (one per order, the same item). A generation document
    (``likelihood=False``) asks no label tokens and keeps its system and user messages apart too, for a chat API
    (``--apply_chat_template``); a likelihood document sends only the rendered text."""
    asked = [renderer.asked(p) if renderer.tokenizer is not None and likelihood else None for p in prompts]
    messages = {} if likelihood else {"systems": [p.system or "" for p in prompts], "users": [p.user for p in prompts]}
    return {
        "orders": list(orders),
        "labels": list(prompts[0].labels),
        "permutations": [list(p.identity_of_position) for p in prompts],
        **messages,
        "prefix": prompts[0].assistant_prefix,
        "chat": renderer.chat,
        "contexts": [a.context if a else renderer.text(p) for a, p in zip(asked, prompts)],
        "continuations": [[list(c) for c in a.continuations] if a else [] for a in asked],
        "base": [bool(a and a.base) for a in asked],
        "missing": [list(a.missing) if a else [] for a in asked],
    }


def sample_record(values: Mapping[str, Any]) -> str:
    """The sample's parameters as JSON (stored with every document, read back by the report)."""
    return json.dumps(dict(values), sort_keys=True)
