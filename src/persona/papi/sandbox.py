"""The sandbox model: a small model fine-tuned, by the book, until it can take the PAPI questionnaire.

The embedded SmolLM2-135M-Instruct answers the questionnaire by option letter, not by content (STUDY 9:
100% "Neither" once the two option orders are averaged), so no claim about aligning it to a person can be
tested on it. The sandbox is a *model organism*: the same model after a short fine-tune towards the
**population's** answers, asked exactly as the alignment methods ask (``ask_items`` with ``NoChange``: the
default system prompt, both option orders, the answer cue), so that it answers by the item's content.

The recipe (``Recipe``) is data: people, items, prompt, orders, loss, trained layers, schedule, seed.

* **People**: the subjects of ``Test-set.json`` minus ``excluded`` (the evaluation sample). The leak guard
  (``check_no_leak``) refuses a sandbox whose training people overlap the subjects a run evaluates, and a
  recipe that leaves fewer than ``min_people`` people to learn from.
* **Targets**: for each item, the distribution over the training people of what they *ticked* for the item
  text (``persona.papi.data.agreement``; missing answers dropped), optionally sharpened (``p ** (1/T)``,
  renormalised), then written in each order's letters (original: A = Very Accurate; reversed: A = Very
  Inaccurate). Training in both orders with content-defined targets means the letter cannot carry the
  answer; each batch holds both orders of its items (``paired``), so no step can lower the loss by a
  letter alone. No single person is a target.
* **Items**: all 300 (STUDY 9: items a fine-tune has not seen are not answered by content, and every
  method asks the sandbox about items of the IPIP-NEO-300).
* **Training**: the frozen lower layers run once (their last hidden states, masks and positions are
  cached); only the top ``trained_layers`` decoder layers and the final norm are trained (the tied LM head
  stays frozen), in float32, seeded, with AdamW and a cosine schedule. The loss is the KL divergence from
  the target to the model's next-token probabilities of the five letters (each letter read as the engine
  reads it: every single-token spelling), so mass off the letters counts against it. The top layer is
  computed at the last token only (its other positions feed nothing): exact, and almost free.

Why this recipe (measured on 200 training people, competence on 90 other training people, never on the
evaluation sample; the book's sandbox section has the table): training the top layer alone is so cheap
(about 3 s per epoch of 600 sequences) that 40 epochs fit the budget, and the frozen pass is the one
full-model cost. One epoch learns only the marginal (the issue's probe); after 10-20 epochs the model
escapes to content. Without paired batches the escape depended on the seed (one seed stuck with the two
orders disagreeing); sharper targets (T = 0.5) and higher learning rates (3e-3) learned more slowly or not
at all; the loss renormalised over the letters reached content too but let the letter mass fall to 8%.

``path(recipe)`` builds the sandbox once per model cache and returns its verified folder
(``<model dir>/<name>-<key>``, the key a hash of the recipe and the base model's file checksums): a changed
recipe or base model is a different folder (a new build), a changed byte in a built folder raises
``SandboxError`` naming the file and the folder to delete. The folder is a plain Hugging Face model, loaded
with ``persona.models.load_model(str(path))``; its ``persona_source.json`` records the recipe, the training
people, the base model's checksums, the training curve and time, and the checksum of every file.

``competence`` says how well a sandbox takes the test, before any comparison is made with it: the
correlation of its expected answer with the item norms of given people, the agreement of the two option
orders, its share of "Neither" answers and its letter mass, all through the methods' own ``ask_items``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from persona.datafiles import sha256_of
from persona.engine import Engine, order_permutation
from persona.models import SOURCE_FILE, file_records, load_model, model_path
from persona.papi import prompts as papi_prompts
from persona.papi.data import OPTIONS, Item, Subject, agreement, load_item_key, load_subjects
from persona.papi.methods.answering import OPTION_AGREEMENT, AnswerMode, ask_items
from persona.papi.prompts import DEFAULT_SYSTEM, ORDERS, answer_cue
from persona.paths import model_cache_dir

#: Bump when the training code changes what a recipe builds: every sandbox built before is then rebuilt.
TRAINING_VERSION = 1
#: The losses a recipe may train with (``kl_loss``).
LOSSES = ("kl-next-token", "kl-letters")
#: Torch threads while training. The trained path is small (a batch of last tokens through one layer, the
#: keys and values of one layer): on 2 cores shared with other work, one thread ran a step in 0.07 s and two
#: in 1.5 s (OpenMP threads waiting on each other), and one thread makes the result independent of the
#: machine's thread count. The frozen layers' pass (large matrices) keeps torch's setting.
TRAIN_THREADS = 1
#: Pre-declared competence a sandbox needs before comparisons made with it count (``passes``).
GATE = {"r_norms": 0.5, "r_orders": 0.5, "neither_share": 0.5}


class SandboxError(RuntimeError):
    """A sandbox cannot be built or used: a leak, no recipe, too few people, or a damaged folder."""


@dataclass(frozen=True)
class Recipe:
    """Everything a sandbox is built from; its ``key`` (with the base model's checksums) names its folder.

    ``excluded``: case numbers of the subjects the sandbox must never learn from (the evaluation sample).
    ``items``: item numbers trained on (None: all 300). ``sharpen``: target temperature T (1 = the people's
    distribution; below 1 sharper). ``trained_layers``: the top decoder layers trained (plus the final norm).
    ``lr`` peaks after ``warmup`` (share of steps) and decays along a cosine to 0 at the end of ``epochs``.
    ``paired``: each batch holds every order of its items (``batch_size`` sequences). ``loss``: see ``kl_loss``.
    """

    name: str = "smollm2-135m-papi"
    base: str = "smollm2-135m-instruct"
    excluded: tuple[int, ...] = ()
    items: tuple[int, ...] | None = None
    system: str = DEFAULT_SYSTEM
    orders: tuple[str, ...] = ORDERS
    sharpen: float = 1.0
    trained_layers: int = 1
    epochs: int = 40
    batch_size: int = 8
    lr: float = 1e-3
    warmup: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    paired: bool = True
    loss: str = "kl-next-token"
    seed: int = 0
    min_people: int = 50

    def __post_init__(self) -> None:
        object.__setattr__(self, "excluded", tuple(sorted({int(c) for c in self.excluded})))
        if self.items is not None:
            object.__setattr__(self, "items", tuple(int(i) for i in self.items))
        object.__setattr__(self, "orders", tuple(self.orders))
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if not self.orders or set(self.orders) - set(ORDERS):
            raise ValueError(f"orders must be a non-empty subset of {ORDERS}, got {self.orders!r}")
        if not self.sharpen > 0:
            raise ValueError(f"sharpen (target temperature) must be > 0, got {self.sharpen!r}")
        for name in ("trained_layers", "epochs", "batch_size", "min_people"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if not (self.lr > 0 and 0 <= self.warmup < 1 and self.weight_decay >= 0):
            raise ValueError("lr must be > 0, warmup in [0, 1), weight_decay >= 0")

    def record(self) -> dict:
        """The recipe as JSON-ready data (what ``persona_source.json`` stores and the key hashes)."""
        out = dataclasses.asdict(self)
        out["excluded"], out["orders"], out["betas"] = list(self.excluded), list(self.orders), list(self.betas)
        out["items"] = None if self.items is None else list(self.items)
        return out

    def key(self, base_fingerprint: str) -> str:
        """12 hex digits naming the build: the recipe, the training code's version and the base model."""
        text = json.dumps({"recipe": self.record(), "training_version": TRAINING_VERSION,
                           "base": base_fingerprint}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


#: The recipe of each sandbox the book builds, by base model (``recipe_for``). ``cpu``: the chosen recipe
#: (see the book's section on the sandbox for how it was found); ``smoke``: a plumbing check of seconds.
RECIPES: dict[str, dict[str, Recipe]] = {
    "smollm2-135m-instruct": {
        "cpu": Recipe(),
        "smoke": Recipe(name="smollm2-135m-papi-smoke", items=tuple(range(1, 11)), epochs=2),
    },
}


def recipe_for(base: str, scale: str = "cpu", *, excluded: Sequence[int] = ()) -> Recipe:
    """The book's recipe for a sandbox of ``base`` at ``scale``, excluding the evaluation subjects ``excluded``.

    A base model without a recipe is an error, never a silently reused or improvised model."""
    if base not in RECIPES:
        raise SandboxError(f"No sandbox recipe for model '{base}': recipes exist for {', '.join(RECIPES)}. "
                           f"Write one (persona.papi.sandbox.RECIPES) or use the model itself.")
    if scale not in RECIPES[base]:
        raise SandboxError(f"No '{scale}' sandbox recipe for '{base}': scales {', '.join(RECIPES[base])}.")
    return dataclasses.replace(RECIPES[base][scale], excluded=tuple(excluded))


# ----------------------------------------------------------------------------------- people and leak guard


def training_people(recipe: Recipe, everyone: Sequence[Subject] | None = None) -> list[Subject]:
    """The people a recipe learns from: everyone (``Test-set.json``) but the excluded evaluation subjects.

    Raises ``SandboxError`` when fewer than ``recipe.min_people`` remain."""
    everyone = list(everyone) if everyone is not None else load_subjects()
    excluded = set(recipe.excluded)
    people = [s for s in everyone if s.case not in excluded]
    if len(people) < recipe.min_people:
        raise SandboxError(f"The recipe leaves {len(people)} training people (of {len(everyone)}, "
                           f"{len(excluded)} excluded); at least {recipe.min_people} are needed for the "
                           f"population's answers.")
    return people


def _trained_cases(source: Recipe | dict | Path | str, everyone: Sequence[Subject] | None) -> tuple[set[int], str]:
    if isinstance(source, Recipe):
        return {s.case for s in training_people(source, everyone)}, f"recipe '{source.name}'"
    if isinstance(source, (str, Path)):
        folder = Path(source)
        source = json.loads((folder / SOURCE_FILE).read_text())
        if "people" not in source:
            raise SandboxError(f"{folder} is not a sandbox (its {SOURCE_FILE} lists no training people).")
    return {int(c) for c in source["people"]}, f"sandbox '{source.get('recipe', {}).get('name', '?')}'"


def check_no_leak(source: Recipe | dict | Path | str, subjects: Sequence[Subject], *,
                  everyone: Sequence[Subject] | None = None) -> None:
    """Raise ``SandboxError`` when any of ``subjects`` is among the people the sandbox learned from.

    ``source``: a recipe, a built sandbox's folder, or its ``persona_source.json`` as a dict. Call it with the
    subjects a run evaluates, at use time. ``everyone``: the pool a recipe's people are drawn from (default
    ``Test-set.json``)."""
    trained, what = _trained_cases(source, everyone)
    leaked = sorted(trained & {s.case for s in subjects})
    if leaked:
        raise SandboxError(f"Leak: {len(leaked)} of the {len(subjects)} evaluation subjects (cases "
                           f"{leaked[:5]}{' ...' if len(leaked) > 5 else ''}) are among the people {what} was "
                           f"trained on. Build the sandbox with excluded = the evaluation subjects' cases "
                           f"(recipe_for(base, excluded=[s.case for s in subjects])).")


# ----------------------------------------------------------------------------------- targets


def tick_distribution(people: Sequence[Subject], items: Sequence[Item]) -> np.ndarray:
    """(n_items, 5): per item, the share of people who ticked each option, in identity order (column k is
    agreement 5 - k: Very Accurate first, as ``Answers.probs``). Missing answers are dropped; an item nobody
    answered is an error."""
    counts = np.zeros((len(items), len(OPTIONS)))
    for row, item in enumerate(items):
        for person in people:
            tick = agreement(person, item)
            if tick is not None:
                counts[row, 5 - tick] += 1
    empty = [items[r].number for r in np.flatnonzero(counts.sum(axis=1) == 0)]
    if empty:
        raise SandboxError(f"No training person answered item(s) {empty}")
    return counts / counts.sum(axis=1, keepdims=True)


def sharpen(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``probs ** (1 / temperature)`` renormalised per row (1: unchanged; below 1: sharper, same mode)."""
    if temperature == 1:
        return probs
    powered = np.power(probs, 1.0 / temperature)
    return powered / powered.sum(axis=-1, keepdims=True)


def letter_targets(identity: np.ndarray, order: str) -> np.ndarray:
    """Identity-order targets written in the letters of ``order``: letter ``i`` shows option
    ``order_permutation(5, order)[i]``, so it gets that option's share (reversed: A = Very Inaccurate)."""
    return identity[:, list(order_permutation(identity.shape[1], order))]


def expected_agreement(identity: np.ndarray) -> np.ndarray:
    """Expected tick 1..5 of identity-order distributions (``Answers.expected``)."""
    return identity @ OPTION_AGREEMENT


# ----------------------------------------------------------------------------------- cached lower layers


@dataclass
class Sequences:
    """The training prompts, encoded, with their targets in presented-letter order."""

    ids: list[list[int]]
    targets: np.ndarray  # (n, 5) letter order
    label_ids: list[list[int]]  # the token ids of each letter (A..E), the engine's choice
    item: np.ndarray  # item number of each row
    order: list[str]


def training_sequences(engine: Engine, items: Sequence[Item], identity_targets: np.ndarray,
                       system: str, orders: Sequence[str]) -> Sequences:
    """Every item in every order as ``ask_items`` asks it (``NoChange``'s prompt, the engine's cue)."""
    cue = answer_cue(engine.tokenizer)
    ids, targets, item_numbers, order_names, labels = [], [], [], [], None
    for order in orders:
        asked = papi_prompts.prompts(items, system, order, cue)
        labels = labels or asked[0].labels
        if any(p.labels != labels for p in asked):
            raise SandboxError("all prompts must show the same option labels")
        ids += [engine.encode(p) for p in asked]
        targets.append(letter_targets(identity_targets, order))
        item_numbers += [i.number for i in items]
        order_names += [order] * len(items)
    return Sequences(ids, np.concatenate(targets), engine.label_token_ids(labels), np.array(item_numbers),
                     order_names)


@dataclass
class LowerStates:
    """Hidden states after the frozen lower layers, left-padded to one length (the last token of every row
    is at position -1), with each row's attention mask and position ids (0 at its first real token)."""

    hidden: torch.Tensor  # (n, T, D)
    mask: torch.Tensor  # (n, T) bool, True for real tokens
    positions: torch.Tensor  # (n, T) long


def _check_supported(model) -> None:
    base = getattr(model, "model", None)
    if not all(hasattr(base, a) for a in ("embed_tokens", "layers", "norm", "rotary_emb")) or \
            getattr(model.config, "model_type", "") not in ("llama", "qwen2", "mistral"):
        raise SandboxError(f"Sandbox training supports Llama-like decoders (llama, qwen2, mistral), got "
                           f"'{getattr(model.config, 'model_type', type(model).__name__)}'.")


def _additive_mask(mask: torch.Tensor, dtype: torch.dtype, last_only: bool = False) -> torch.Tensor:
    """(B, 1, Tq, T) additive mask: causal and no padded keys (a padded query row sees its own padding only,
    so it stays finite; nothing real reads it). ``last_only``: the last query row alone."""
    n, length = mask.shape
    causal = torch.ones(length, length, dtype=torch.bool, device=mask.device).tril()
    allowed = causal[None] & mask[:, None, :]
    allowed = allowed | torch.eye(length, dtype=torch.bool, device=mask.device)[None]
    if last_only:
        allowed = allowed[:, -1:, :]
    out = torch.zeros(allowed.shape, dtype=dtype, device=mask.device)
    return out.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


def _padded(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, length - len(row):] = torch.tensor(row, dtype=torch.long)
        mask[i, length - len(row):] = True
    positions = (mask.long().cumsum(dim=1) - 1).clamp(min=0)
    return ids, mask, positions


def _run_layers(model, layers, hidden: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``hidden`` through full decoder ``layers`` (every position), as the model's own forward does."""
    additive = _additive_mask(mask, hidden.dtype)
    embeddings = model.model.rotary_emb(hidden, positions)
    for layer in layers:
        out = layer(hidden, attention_mask=additive, position_embeddings=embeddings, position_ids=positions)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def _last_token_layer(model, layer, hidden: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The top decoder layer at the last position only (B, D): its other positions feed nothing, so this
    equals the full layer's last row (keys and values still come from every position)."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, repeat_kv

    attn = layer.self_attn
    n, length, _ = hidden.shape
    head = attn.head_dim
    normed = layer.input_layernorm(hidden)
    query = attn.q_proj(normed[:, -1:]).view(n, 1, -1, head).transpose(1, 2)
    key = attn.k_proj(normed).view(n, length, -1, head).transpose(1, 2)
    value = attn.v_proj(normed).view(n, length, -1, head).transpose(1, 2)
    cos, sin = model.model.rotary_emb(hidden, positions)
    query, _ = apply_rotary_pos_emb(query, query, cos[:, -1:], sin[:, -1:])
    _, key = apply_rotary_pos_emb(key, key, cos, sin)
    groups = query.shape[1] // key.shape[1]
    out = torch.nn.functional.scaled_dot_product_attention(
        query, repeat_kv(key, groups), repeat_kv(value, groups),
        attn_mask=_additive_mask(mask, hidden.dtype, last_only=True), scale=attn.scaling)
    last = hidden[:, -1] + attn.o_proj(out.transpose(1, 2).reshape(n, -1))
    return last + layer.mlp(layer.post_attention_layernorm(last))


def split_layers(model, trained_layers: int) -> int:
    """Index of the first trained decoder layer (the number of frozen ones)."""
    n = len(model.model.layers)
    if not 1 <= trained_layers <= n:
        raise SandboxError(f"trained_layers must be 1..{n} for this model, got {trained_layers}")
    return n - trained_layers


@torch.no_grad()
def cache_lower(model, ids: Sequence[Sequence[int]], frozen: int, pad_id: int, batch_size: int = 16) -> LowerStates:
    """Run the embeddings and the first ``frozen`` decoder layers once over every sequence."""
    _check_supported(model)
    all_ids, mask, positions = _padded(ids, pad_id)
    hidden = torch.empty((len(ids), all_ids.shape[1], model.config.hidden_size), dtype=torch.float32)
    device = model.model.embed_tokens.weight.device
    for start in range(0, len(ids), batch_size):
        part = slice(start, start + batch_size)
        h = model.model.embed_tokens(all_ids[part].to(device))
        h = _run_layers(model, model.model.layers[:frozen], h, mask[part].to(device), positions[part].to(device))
        hidden[part] = h.float().cpu()
    return LowerStates(hidden, mask, positions)


def top_letter_logprobs(model, states: LowerStates, rows, frozen: int, label_ids: list[list[int]]) -> torch.Tensor:
    """(B, 5) next-token log-probabilities of the letters (each summed over its spellings, not renormalised)
    from the cached states of ``rows``: the trained layers (the top one at the last token only), the final
    norm and the LM head."""
    device = model.model.embed_tokens.weight.device
    hidden = states.hidden[rows].to(device)
    mask, positions = states.mask[rows].to(device), states.positions[rows].to(device)
    layers = model.model.layers
    hidden = _run_layers(model, layers[frozen:-1], hidden, mask, positions)
    last = model.model.norm(_last_token_layer(model, layers[-1], hidden, mask, positions))
    logits = last @ model.get_output_embeddings().weight.T
    letters = torch.stack([torch.logsumexp(logits[:, ids], dim=1) for ids in label_ids], dim=1)
    return letters - torch.logsumexp(logits, dim=1, keepdim=True)


def kl_loss(letter_logprobs: torch.Tensor, targets: torch.Tensor, kind: str = "kl-next-token") -> torch.Tensor:
    """Mean over rows of KL(target || model) on the letters.

    ``kl-next-token``: against the model's next-token probabilities of the letters, so mass off the letters
    counts against it (0 only when the letters take all the mass, distributed as the target); ``kl-letters``:
    against the letters renormalised among themselves, as ``ask_items`` reads them (the letter mass may
    then drift away: measured 8% after 40 epochs on SmolLM2)."""
    if kind not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")
    if kind == "kl-letters":
        letter_logprobs = letter_logprobs - torch.logsumexp(letter_logprobs, dim=1, keepdim=True)
    entropy = torch.where(targets > 0, targets * torch.log(targets.clamp_min(1e-12)), torch.zeros_like(targets))
    return (entropy - targets * letter_logprobs).sum(dim=1).mean()


def _schedule(step: int, total: int, warmup: float) -> float:
    warm = max(1, int(round(total * warmup))) if warmup > 0 else 0
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return 0.5 * (1 + math.cos(math.pi * progress))


def _paired_batches(seqs: Sequences, batch_size: int):
    """Batches that hold every order of each of their items: each step sees the same statement with its
    letters permuted and the targets permuted alike, so no letter can lower the loss on its own."""
    groups: dict[int, list[int]] = {}
    for row, item in enumerate(seqs.item.tolist()):
        groups.setdefault(item, []).append(row)
    keys = list(groups)
    per_batch = max(1, batch_size // max(len(g) for g in groups.values()))

    def draw(generator: torch.Generator) -> list[torch.Tensor]:
        order = torch.randperm(len(keys), generator=generator).tolist()
        return [torch.tensor([r for k in order[b:b + per_batch] for r in groups[keys[k]]])
                for b in range(0, len(order), per_batch)]

    return draw


def train_top(model, states: LowerStates, seqs: Sequences, recipe: Recipe, *, on_epoch=None) -> list[dict]:
    """Train the top ``recipe.trained_layers`` layers and the final norm on the cached states (in place).

    Returns the curve: per epoch the mean training loss (KL, averaged over the epoch's batches), the
    learning rate at its end and the seconds of training so far. ``on_epoch(row, model)`` is called after
    each epoch with that epoch's row (e.g. to log or evaluate; its time is not counted)."""
    frozen = split_layers(model, recipe.trained_layers)
    for p in model.parameters():
        p.requires_grad_(False)
    trained = [p for layer in model.model.layers[frozen:] for p in layer.parameters()] + \
        list(model.model.norm.parameters())
    for p in trained:
        p.requires_grad_(True)
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    optimiser = torch.optim.AdamW(trained, lr=recipe.lr, betas=recipe.betas, weight_decay=recipe.weight_decay)
    n = len(seqs.ids)
    batches_of = _paired_batches(seqs, recipe.batch_size) if recipe.paired else None
    per_epoch = math.ceil(n / recipe.batch_size) if batches_of is None else len(batches_of(torch.Generator()))
    total = per_epoch * recipe.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: _schedule(s, total, recipe.warmup))
    targets = torch.tensor(seqs.targets, dtype=torch.float32)
    curve, clock, step = [], 0.0, 0
    threads = torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    model.train()
    try:
        for epoch in range(recipe.epochs):
            start, losses = time.perf_counter(), []
            if batches_of is None:
                order = torch.randperm(n, generator=generator)
                batches = [order[b * recipe.batch_size:(b + 1) * recipe.batch_size] for b in range(per_epoch)]
            else:
                batches = batches_of(generator)
            for rows in batches:
                logprobs = top_letter_logprobs(model, states, rows, frozen, seqs.label_ids)
                loss = kl_loss(logprobs, targets[rows].to(logprobs.device), recipe.loss)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                scheduler.step()
                step += 1
                losses.append(loss.item() * len(rows))
            clock += time.perf_counter() - start
            curve.append({"epoch": epoch + 1, "loss": sum(losses) / n, "lr": scheduler.get_last_lr()[0],
                          "seconds": clock})
            if on_epoch is not None:
                model.eval()
                on_epoch(curve[-1], model)
                model.train()
    finally:
        torch.set_num_threads(threads)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
    return curve


@torch.no_grad()
def letter_distributions(model, states: LowerStates, seqs: Sequences, frozen: int, batch_size: int = 32,
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Letter probabilities (n, 5; presented order, renormalised over the letters as ``ask_items``) of every
    cached sequence under the current weights, and each row's next-token mass on the letters (n,)."""
    probs, mass = [], []
    for start in range(0, len(seqs.ids), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(seqs.ids)))
        raw = top_letter_logprobs(model, states, rows, frozen, seqs.label_ids).exp().double().cpu().numpy()
        probs.append(raw / raw.sum(axis=1, keepdims=True))
        mass.append(raw.sum(axis=1))
    return np.concatenate(probs), np.concatenate(mass)


def identity_by_order(letter_probs: np.ndarray, seqs: Sequences) -> dict[str, np.ndarray]:
    """Letter-order probabilities back in identity order, per order (rows in the items' order)."""
    out = {}
    for order in dict.fromkeys(seqs.order):
        rows = [i for i, o in enumerate(seqs.order) if o == order]
        perm = list(order_permutation(letter_probs.shape[1], order))
        identity = np.empty((len(rows), letter_probs.shape[1]))
        identity[:, perm] = letter_probs[rows]
        out[order] = identity
    return out


# ----------------------------------------------------------------------------------- competence


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r; NaN (without a warning) when either side does not vary."""
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def competence_from(by_order: dict[str, np.ndarray], norms: np.ndarray) -> dict:
    """Competence from identity-order distributions per order and the item norms (mean tick of people)."""
    expected = {o: expected_agreement(p) for o, p in by_order.items()}
    both = np.mean([by_order[o] for o in by_order], axis=0)
    out = {"n_items": len(norms), "r_norms": _corr(expected_agreement(both), norms)}
    for order, values in expected.items():
        out[f"r_norms_{order}"] = _corr(values, norms)
    orders = list(expected)
    out["r_orders"] = _corr(expected[orders[0]], expected[orders[1]]) if len(orders) == 2 else float("nan")
    out["neither_share"] = float(np.mean(OPTION_AGREEMENT[both.argmax(axis=1)] == 3))
    out["expected_sd"] = float(np.std(expected_agreement(both)))
    return out


def item_norms(people: Sequence[Subject], items: Sequence[Item]) -> np.ndarray:
    """Mean tick (agreement 1..5) of ``people`` on each item, missing answers dropped."""
    return expected_agreement(tick_distribution(people, items))


def competence(engine: Engine, items: Sequence[Item], people: Sequence[Subject] | dict[str, Sequence[Subject]], *,
               system: str = DEFAULT_SYSTEM) -> dict:
    """How well the engine's model takes the test, through the methods' own scoring (``ask_items``,
    likelihood, both orders, no calibration): ``r_norms`` (its expected answer, both orders averaged, against
    ``people``'s item means), the same per order, ``r_orders`` (the two orders' expected answers),
    ``neither_share`` (items whose chosen option is "Neither"), ``expected_sd`` and ``label_mass`` (mean
    next-token mass on the option letters).

    ``people`` may be a dict of named groups: the model is asked once and the result is one such dict per group
    (``{name: measures}``)."""
    answers = ask_items(engine, items, system, AnswerMode(calibrate=False))
    groups = people if isinstance(people, dict) else {"": people}
    out = {}
    for name, group in groups.items():
        measured = competence_from(answers.by_order, item_norms(group, items))
        measured["label_mass"] = float(np.mean(answers.mass))
        measured["n_people"] = len(group)
        out[name] = measured
    return out if isinstance(people, dict) else out[""]


def passes(measured: dict, gate: dict = GATE) -> bool:
    """The pre-declared capability gate: r with the norms and between the orders at least ``gate``'s, and
    fewer "Neither" answers than ``gate['neither_share']``."""
    return (measured["r_norms"] >= gate["r_norms"] and measured["r_orders"] >= gate["r_orders"]
            and measured["neither_share"] < gate["neither_share"])


# ----------------------------------------------------------------------------------- build once, verify always


def base_fingerprint(base: str) -> str:
    """sha256 over the base model's file checksums (the converted folder's record, verified by
    ``persona.models.model_path``; a local folder's files computed here)."""
    folder = Path(model_path(base))
    record = folder / SOURCE_FILE
    files = json.loads(record.read_text()).get("files") if record.exists() else None
    files = files or file_records(folder)
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def folder_for(recipe: Recipe, fingerprint: str | None = None) -> Path:
    """Where the sandbox of ``recipe`` lives in the model cache."""
    return model_cache_dir() / f"{recipe.name}-{recipe.key(fingerprint or base_fingerprint(recipe.base))}"


def _damaged(folder: Path, what: str) -> SandboxError:
    return SandboxError(f"Sandbox at {folder} is damaged: {what}. It was not loaded. Delete the folder "
                        f"({folder}); the next call of persona.papi.sandbox.path builds it again.")


def verify(folder: Path, recipe: Recipe | None = None) -> dict:
    """Check a built sandbox against its record: every file's size and sha256, no extra file, and (when
    given) the recipe it was built from. Returns the record; raises ``SandboxError`` naming what differs."""
    record = folder / SOURCE_FILE
    try:
        source = json.loads(record.read_text())
        files = source["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise _damaged(folder, f"its record {SOURCE_FILE} is missing or unreadable") from None
    if recipe is not None and source.get("recipe") != recipe.record():
        raise _damaged(folder, "its record names another recipe")
    for rel, expected in sorted(files.items()):
        path = folder / rel
        if not path.is_file():
            raise _damaged(folder, f"file '{rel}' is missing")
        if path.stat().st_size != expected["size"]:
            raise _damaged(folder, f"file '{rel}' has {path.stat().st_size} bytes, expected {expected['size']}")
        digest = sha256_of(path)
        if digest != expected["sha256"]:
            raise _damaged(folder, f"file '{rel}' has sha256 {digest}, expected {expected['sha256']}")
    extra = sorted(set(file_records(folder)) - set(files))
    if extra:
        raise _damaged(folder, f"unexpected file '{extra[0]}'")
    return source


def build(recipe: Recipe, out: Path, *, fingerprint: str, model=None, tokenizer=None,
          everyone: Sequence[Subject] | None = None, item_key: Sequence[Item] | None = None,
          log=print) -> dict:
    """Train the sandbox of ``recipe`` and write it to ``out`` (through a ``.partial`` folder). ``model`` and
    ``tokenizer``: the base model already loaded (tests pass tiny ones); by default ``recipe.base`` is loaded."""
    started = time.perf_counter()
    threads = torch.get_num_threads()
    if model is None:
        model, tokenizer = load_model(recipe.base, device="cpu", dtype="float32")
    _check_supported(model)
    people = training_people(recipe, everyone)
    items = list(item_key if item_key is not None else load_item_key())
    if recipe.items is not None:
        by_number = {i.number: i for i in items}
        items = [by_number[n] for n in recipe.items]
    targets = sharpen(tick_distribution(people, items), recipe.sharpen)
    engine = Engine(model, tokenizer)
    seqs = training_sequences(engine, items, targets, recipe.system, recipe.orders)
    frozen = split_layers(model, recipe.trained_layers)
    t0 = time.perf_counter()
    states = cache_lower(model, seqs.ids, frozen, engine.pad_id)
    cache_seconds = time.perf_counter() - t0
    log(f"[sandbox] cached {len(seqs.ids)} sequences through {frozen} frozen layers in {cache_seconds:.0f} s")

    curve = train_top(model, states, seqs, recipe, on_epoch=lambda row, _model: log(
        f"[sandbox] epoch {row['epoch']}/{recipe.epochs}: loss {row['loss']:.4f} ({row['seconds']:.0f} s)"))
    letters, mass = letter_distributions(model, states, seqs, frozen)
    fit = competence_from(identity_by_order(letters, seqs), expected_agreement(tick_distribution(people, items)))
    fit["label_mass"] = float(mass.mean())
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    source = {
        "recipe": recipe.record(), "key": out.name.rsplit("-", 1)[-1], "training_version": TRAINING_VERSION,
        "base": recipe.base, "base_fingerprint": fingerprint, "people": sorted(s.case for s in people),
        "items": [i.number for i in items], "curve": curve, "fit_on_training_people": fit,
        "seconds": {"cache": cache_seconds, "train": curve[-1]["seconds"] if curve else 0.0,
                    "total": time.perf_counter() - started},
        "torch_threads": threads, "train_threads": TRAIN_THREADS, "load_average": os.getloadavg(),
        "torch": torch.__version__, "files": file_records(tmp),
    }
    (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    log(f"[sandbox] built {out.name} in {source['seconds']['total']:.0f} s")
    return source


def path(recipe: Recipe, *, everyone: Sequence[Subject] | None = None, item_key: Sequence[Item] | None = None,
         log=print) -> Path:
    """The verified folder of the sandbox of ``recipe``, built first when the cache lacks it.

    Load it with ``persona.models.load_model(str(path(recipe)))``. A damaged folder raises (never silently
    reused); a changed recipe or base model has another folder and is built anew; a folder whose recorded
    training people are not the recipe's (the data changed) raises. ``everyone``/``item_key``: the people
    and items (default: ``Test-set.json`` and the IPIP-NEO-300 key)."""
    fingerprint = base_fingerprint(recipe.base)
    out = folder_for(recipe, fingerprint)
    if not out.exists():
        build(recipe, out, fingerprint=fingerprint, everyone=everyone, item_key=item_key, log=log)
    source = verify(out, recipe)
    people = sorted(s.case for s in training_people(recipe, everyone))
    if source.get("people") != people or source.get("base_fingerprint") != fingerprint:
        raise _damaged(out, "its record names other training people or another base model than the recipe "
                            "gives now (stale)")
    return out


# ----------------------------------------------------------------------------------- by name, for a run


def by_name(name: str, *, excluded: Sequence[int]) -> Recipe:
    """The book's recipe called ``name`` (e.g. "smollm2-135m-papi"), excluding a run's evaluation subjects."""
    for scales in RECIPES.values():
        for recipe in scales.values():
            if recipe.name == name:
                return dataclasses.replace(recipe, excluded=tuple(excluded))
    names = sorted(r.name for scales in RECIPES.values() for r in scales.values())
    raise SandboxError(f"No sandbox recipe is called '{name}': the book builds {', '.join(names)}.")


def describe(record: dict) -> "pd.DataFrame":
    """A built sandbox's recipe and build as a short table (one row per setting) for the book."""
    import pandas as pd

    recipe = record["recipe"]
    rows = {"base model": recipe["base"], "training people": len(record["people"]),
            "excluded (the run's sample)": len(recipe["excluded"]), "items": len(record["items"]),
            "option orders": ", ".join(recipe["orders"]), "trained layers (top)": recipe["trained_layers"],
            "epochs": recipe["epochs"], "peak learning rate": recipe["lr"], "target temperature": recipe["sharpen"],
            "seed": recipe["seed"], "build time (s)": round(record["seconds"]["total"], 1), "folder key": record["key"]}
    return pd.Series(rows, name="sandbox").astype(str).to_frame()


__all__ = ["GATE", "LOSSES", "LowerStates", "RECIPES", "Recipe", "SandboxError", "Sequences", "TRAINING_VERSION",
           "build", "by_name", "cache_lower", "check_no_leak", "competence", "competence_from", "describe",
           "expected_agreement", "folder_for", "identity_by_order", "item_norms", "kl_loss", "letter_distributions",
           "letter_targets", "passes", "path", "recipe_for", "sharpen", "tick_distribution", "train_top",
           "training_people", "training_sequences", "verify"]
