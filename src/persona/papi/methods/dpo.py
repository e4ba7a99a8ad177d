"""Per-subject DPO with a LoRA adapter, the paper's costliest baseline, trained to its validation plateau.

PAlign never released its DPO code, so this is our own, documented choice:

* **Pairs** from the subject's known answers (agreement scale, per ``convention``): the prompt is the
  item's PAPI question exactly as the engine renders it (PAlign's default system prompt, no few-shot
  block, the answer cue); *chosen* = the letter of the subject's option; *rejected* = the letter of the
  farthest option (an agreeing subject rejects "Very Inaccurate" and vice versa). A neutral answer (3)
  gives two pairs, "Neither" over each extreme; missing answers give none. Every pair is shown in both
  option orders, as the evaluation asks both.
* **Objective**: DPO's sigmoid loss (Rafailov et al. 2023),
  ``-log sigmoid(beta * [(log p(c|x) - log p_ref(c|x)) - (log p(r|x) - log p_ref(r|x))])``, on a LoRA
  adapter of the attention projections; the reference is the model with the adapter off, its
  log-probabilities computed once. The completions are single letters after the same prompt, so the
  chosen and the rejected log-probability are two entries of ONE next-token distribution: one forward of
  the prompt gives both. TRL's ``DPOTrainer`` forwards prompt+chosen and prompt+rejected as two sequences
  and the reference again at every step; measured on SmolLM2-135M on two CPU cores, that was 9.6 s per
  step of 4 pairs, against 3.3 s per step of 8 prompts here, so this loop is what makes DPO trainable to
  its plateau on CPU and what keeps the cost comparison fair to DPO. The loss is tested against a hand
  computation.
* **Learning rate and steps by validation**: a seeded, per-domain share of the known items is held out;
  for each rate of ``learning_rates`` a fresh adapter (same seed) trains on the other items' pairs with
  constant-rate AdamW, is validated at step 0 and every ``eval_every`` steps, and stops after ``patience``
  validations without an improvement of at least ``min_delta`` or at ``max_steps``. The (rate, step) with the lowest validation loss
  wins (ties: fewer steps, then the earlier rate). Test items are never seen.
* **Refit**: a fresh adapter trains on the pairs of ALL known items with the chosen rate and steps, as PAS
  is refit on all known items. When step 0 wins, DPO never beat the unchanged model on validation: no
  step is trained and the method answers as the unchanged model (``info["steps"] = 0``).
* ``trace`` records every validation (rate, step, validation Score, expected-answer loss, rank correlation,
  reward accuracy and margin on the last training batch, loss) with the optimisation time so far: the
  cost chapter's quality-against-time curve.
* The adapter is injected into the shared base model and removed again (``release``) after the subject,
  so every method sees the same weights. On CPU a bf16 model is trained in fp32 and cast back (bf16
  autograd on CPU is many times slower; bf16 -> fp32 -> bf16 is exact).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from scipy import stats

from persona.engine.packing import last_logits
from persona.papi import prompts
from persona.papi.data import Convention, Item, Subject, agreement
from persona.papi.methods.answering import (
    LIKELIHOOD, AnswerMode, Answers, label_values, ask_items, selection_loss, split_known,
)
from persona.papi.methods.base import FitTrace, Method
from persona.papi.prompts import DEFAULT_SYSTEM, ORDERS
from persona.timing import StageTimer, Stopwatch, maybe_stage


@dataclass
class DPOSettings:
    """Everything that defines a DPO run; recorded next to the results."""

    learning_rates: tuple[float, ...] = (1e-4, 5e-4)
    max_steps: int = 48
    eval_every: int = 8
    patience: int = 2  # validations without improvement before a rate stops
    min_delta: float = 0.01  # an improvement of the validation loss smaller than this does not count
    beta: float = 0.1
    batch_size: int = 8  # pairs per step
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    val_fraction: float = 0.2
    criterion: str = "expected"  # validation loss: "score" (the paper's) or "expected" (continuous)
    seed: int = 0

    def __post_init__(self) -> None:
        self.learning_rates = tuple(float(r) for r in self.learning_rates)
        if not self.learning_rates or min(self.learning_rates) <= 0:
            raise ValueError(f"learning_rates must be positive numbers, got {self.learning_rates!r}")
        for name in ("max_steps", "eval_every", "patience", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"dpo {name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.criterion not in ("score", "expected"):
            raise ValueError(f"criterion must be 'score' or 'expected', got {self.criterion!r}")


@dataclass(frozen=True)
class Pair:
    """One preference: prompt ``prompt`` (index into the prompt list), chosen and rejected letter tokens."""

    prompt: int
    chosen: int
    rejected: int


def preference_pairs(engine, subject: Subject, items: Sequence[Item], convention: Convention) -> list[dict]:
    """DPO pairs (``prompt``/``chosen``/``rejected`` texts) for the subject's known answers; see module doc."""
    values = label_values(subject, items, convention)
    cue = prompts.answer_cue(engine.tokenizer)
    pairs = []
    for order in ORDERS:
        asked = prompts.prompts(items, DEFAULT_SYSTEM, order, cue)
        for value, prompt in zip(values, asked):
            if value == 0:
                continue
            identity = 5 - int(value)  # option identity: 0 = Very Accurate ... 4 = Very Inaccurate
            rejected = [4] if value > 3 else [0] if value < 3 else [0, 4]
            position = {ident: pos for pos, ident in enumerate(prompt.identity_of_position)}
            text = engine.render(prompt)
            for rej in rejected:
                pairs.append({"prompt": text, "chosen": prompts.answer_completion(prompt.labels[position[identity]], cue),
                              "rejected": prompts.answer_completion(prompt.labels[position[rej]], cue)})
    return pairs


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO's sigmoid loss from log-probabilities; returns (mean loss, reward accuracy, mean reward margin)."""
    margin = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    loss = -torch.nn.functional.logsigmoid(margin).mean()
    return loss, (margin > 0).float().mean(), margin.mean()


def _answer_token(engine, prompt_text: str, prompt_ids: list[int], completion: str) -> int:
    """The single token the model emits for ``completion`` (the answer letter, with "(" when the prompt has no
    cue) right after the prompt (checked, not assumed)."""
    ids = engine.tokenizer(prompt_text + completion, add_special_tokens=not engine.use_chat_template)["input_ids"]
    if len(ids) != len(prompt_ids) + 1 or list(ids[:-1]) != list(prompt_ids):
        raise ValueError(f"the answer {completion!r} does not follow the prompt as one token for this tokenizer; "
                         f"DPO here needs single-token answers")
    return int(ids[-1])


def _last_logprobs(model, rows: list[list[int]], pad_id: int) -> torch.Tensor:
    """Log-softmax (float32) of the next token after each row."""
    return torch.log_softmax(last_logits(model, rows, pad_id), dim=-1)


class DPO(Method):
    """One LoRA adapter per subject with the DPO loss; rate and steps chosen on validation, then refit."""

    def __init__(self, engine, *, convention: Convention = "corrected", settings: DPOSettings | None = None,
                 timer: StageTimer | None = None,
                 mode: AnswerMode = LIKELIHOOD) -> None:
        self.engine = engine
        self.convention = convention
        self.settings = settings or DPOSettings()
        self.timer = timer
        self.mode = mode
        self.name = f"dpo[{convention}]"
        self.trace: list[dict] = []
        self.choice: dict = {}

    # ---------------------------------------------------------------- data
    def _encode(self, subject: Subject, items: Sequence[Item]) -> tuple[list[list[int]], list[Pair]]:
        rows: list[list[int]] = []
        index: dict[str, int] = {}
        pairs = []
        for pair in preference_pairs(self.engine, subject, items, self.convention):
            text = pair["prompt"]
            if text not in index:
                index[text] = len(rows)
                ids = self.engine.tokenizer(text, add_special_tokens=not self.engine.use_chat_template)["input_ids"]
                rows.append(list(ids))
            k = index[text]
            pairs.append(Pair(k, _answer_token(self.engine, text, rows[k], pair["chosen"]),
                              _answer_token(self.engine, text, rows[k], pair["rejected"])))
        return rows, pairs

    @torch.no_grad()
    def _reference(self, rows: list[list[int]]) -> torch.Tensor:
        out = [_last_logprobs(self.engine.model, rows[k:k + 16], self.engine.pad_id)
               for k in range(0, len(rows), 16)]
        return torch.cat(out)

    # ---------------------------------------------------------------- training pieces
    def _validate(self, subject: Subject, val_items: Sequence[Item]) -> dict:
        model = self.engine.model
        was_training = model.training
        model.eval()
        with torch.no_grad():
            answers = ask_items(self.engine, val_items, DEFAULT_SYSTEM, self.mode)
        model.train(was_training)
        truth = np.array([agreement(subject, i) or np.nan for i in val_items], dtype=float)
        ok = np.isfinite(truth) & np.isfinite(answers.expected)
        rho = stats.spearmanr(answers.expected[ok], truth[ok]).statistic if ok.sum() > 2 else np.nan
        return {"val_loss": selection_loss(answers, subject, val_items, self.convention, self.settings.criterion),
                "val_score": selection_loss(answers, subject, val_items, self.convention, "score"),
                "val_rho": float(rho) if np.isfinite(rho) else np.nan}

    def _train(self, rows, pairs, reference, lr: float, steps: int, on_step=None) -> None:
        """Up to ``steps`` AdamW steps of the DPO loss from the adapter's initial state; after each step
        ``on_step(step, stats)`` may return True to stop."""
        s = self.settings
        self._reset_adapter()
        params = [p for p in self.engine.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        rng = np.random.default_rng(s.seed)
        order: list[int] = []
        self.engine.model.train()
        for step in range(1, steps + 1):
            if len(order) < s.batch_size:
                order += rng.permutation(len(pairs)).tolist()
            batch = [pairs[i] for i in order[: s.batch_size]]
            del order[: s.batch_size]
            prompts_in_batch = sorted({p.prompt for p in batch})
            where = {k: j for j, k in enumerate(prompts_in_batch)}
            logp = _last_logprobs(self.engine.model, [rows[k] for k in prompts_in_batch], self.engine.pad_id)
            j = torch.tensor([where[p.prompt] for p in batch])
            k = torch.tensor([p.prompt for p in batch])
            chosen, rejected = torch.tensor([p.chosen for p in batch]), torch.tensor([p.rejected for p in batch])
            loss, accuracy, margin = dpo_loss(logp[j, chosen], logp[j, rejected], reference[k, chosen],
                                              reference[k, rejected], s.beta)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            stats = {"loss": float(loss.detach()), "reward_acc": float(accuracy), "margin": float(margin.detach())}
            if on_step is not None and on_step(step, stats):
                break
        self.engine.model.eval()

    def _inject(self) -> None:
        from peft import LoraConfig, get_peft_model

        s = self.settings
        model = self.engine.model
        self._dtype = model.dtype
        if not torch.cuda.is_available() and model.dtype != torch.float32:
            model.float()  # bf16 autograd on CPU is many times slower; bf16 -> fp32 -> bf16 is exact
        torch.manual_seed(s.seed)
        config = LoraConfig(r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout,
                            target_modules=list(s.target_modules), task_type="CAUSAL_LM")
        self.peft_model = get_peft_model(model, config)
        self._initial = {k: v.detach().clone() for k, v in model.named_parameters() if "lora_" in k}

    def _reset_adapter(self) -> None:
        with torch.no_grad():
            params = dict(self.engine.model.named_parameters())
            for k, v in self._initial.items():
                params[k].copy_(v)

    def _record(self, **row) -> None:
        self._log.record(**row)

    def _search(self, lr: float, data: tuple, start: dict, subject: Subject, val_items: Sequence[Item]) -> dict:
        """Train at ``lr`` from the initial adapter, validating every ``eval_every`` steps; stop after
        ``patience`` validations without an improvement of ``min_delta``. Returns the best validation."""
        s = self.settings
        best = {"val_loss": start["val_loss"], "lr": lr, "step": 0}
        reference_loss, misses = start["val_loss"], 0
        self._record(phase="search", lr=lr, step=0, **start, loss=np.nan, reward_acc=np.nan, margin=np.nan)

        def check(step: int, batch: dict) -> bool:
            nonlocal reference_loss, misses
            if step % s.eval_every and step != s.max_steps:
                return False
            self._train_watch.pause()
            with self._val_watch:
                result = self._validate(subject, val_items)
            self._train_watch.resume()
            self._record(phase="search", lr=lr, step=step, **result, **batch)
            if result["val_loss"] < best["val_loss"] - 1e-12:
                best.update(val_loss=result["val_loss"], step=step)
            if result["val_loss"] < reference_loss - s.min_delta:
                reference_loss, misses = result["val_loss"], 0
            else:
                misses += 1
            return misses >= s.patience

        with self._train_watch:
            self._train(*data, lr, s.max_steps, check)
        return best

    # ---------------------------------------------------------------- Method interface
    def fit(self, subject: Subject, known: Sequence[Item]) -> None:
        self.release()  # a previous subject's adapter, if answer() was the last call
        s = self.settings
        self._log = FitTrace()
        self.trace, self._case = self._log.rows, subject.case
        self._train_watch, self._val_watch = Stopwatch(), Stopwatch()
        fit_items, val_items = split_known(known, val_fraction=s.val_fraction, seed=s.seed + subject.case)
        meta = {"method": self.name, "subject": subject.case}
        with self._stage("dpo/reference", meta):
            rows_all, pairs_all = self._encode(subject, known)
            rows_fit, pairs_fit = self._encode(subject, fit_items)
            reference_all = self._reference(rows_all)
            reference_fit = reference_all[[rows_all.index(r) for r in rows_fit]]
        with self._val_watch:
            start = self._validate(subject, val_items)  # step 0: the unchanged model, the same for every rate
        self._inject()
        bests = [self._search(lr, (rows_fit, pairs_fit, reference_fit), start, subject, val_items)
                 for lr in s.learning_rates]
        best = min(bests, key=lambda b: (b["val_loss"], b["step"]))  # ties: fewer steps, then the earlier rate
        self.choice = {"lr": best["lr"], "steps": best["step"], "val_loss": best["val_loss"],
                       "val_loss_step0": start["val_loss"], "n_pairs": len(pairs_all)}
        with self._stage("dpo/refit", meta):
            self._reset_adapter()  # step 0 wins: the adapter stays at its initial state, which changes nothing
            if best["step"] > 0:
                self._train(rows_all, pairs_all, reference_all, best["lr"], best["step"])
        self._record(phase="refit", lr=best["lr"], step=best["step"], val_loss=np.nan, val_score=np.nan,
                     val_rho=np.nan, loss=np.nan, reward_acc=np.nan, margin=np.nan)
        if self.timer is not None:
            self.timer.add("dpo/train", self._train_watch.wall_s, self._train_watch.cpu_s, **meta)
            self.timer.add("dpo/validate", self._val_watch.wall_s, self._val_watch.cpu_s, **meta)

    def _stage(self, name: str, meta: dict):
        return maybe_stage(self.timer, name, **meta)

    def answer(self, items: Sequence[Item]) -> Answers:
        if not hasattr(self, "peft_model"):
            raise RuntimeError("fit() first")
        with maybe_stage(self.timer, "dpo/answer", method=self.name, subject=self._case):
            answers = ask_items(self.engine, items, DEFAULT_SYSTEM, self.mode)
        answers.info = {"lr": self.choice["lr"], "steps": self.choice["steps"], "n_pairs": self.choice["n_pairs"]}
        return answers

    def release(self) -> None:
        """Remove this subject's adapter from the shared model (no merge): every method sees the same weights."""
        if hasattr(self, "peft_model"):
            base = self.peft_model.unload().to(self._dtype)
            base.eval()
            self.engine.model = base
            del self.peft_model
