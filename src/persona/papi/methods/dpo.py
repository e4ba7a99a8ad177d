"""Per-subject DPO with a LoRA adapter (TRL ``DPOTrainer``), the paper's costliest baseline.

PAlign never released its DPO code, so this is our own, documented choice:

* **Pairs** from the subject's known answers (agreement scale, per ``convention``): the prompt is the
  item's PAPI question exactly as the engine renders it (PAlign's default system prompt, no few-shot
  block); *chosen* = the letter of the subject's option; *rejected* = the letter of the farthest
  option (an agreeing subject rejects "Very Inaccurate" and vice versa). A neutral answer (3) gives
  two pairs, "Neither" over each extreme, so neutrality is learned rather than dropped; missing
  answers give none. Each pair is shown in both option orders, as the evaluation asks both.
* **Step count** by validation: a seeded, per-domain share of the known items is held out of
  training; every ``eval_every`` steps (and at step 0) the validation Score (sum of domain MAEs) is
  computed, and the adapter weights of the best step are restored at the end. Test items are never
  seen.
* **Reference model**: with a PEFT adapter TRL uses the base model with the adapter disabled, so no
  second copy is held (``ref_model=None``).
* The adapter is injected into the shared base model and removed again (``unload``) after the
  subject, so every method sees the same weights; pass ``save_dir`` to keep each adapter.
* On CPU a bf16 model is trained (and answers) in fp32 and cast back afterwards: bf16 autograd on
  CPU is many times slower, and bf16 -> fp32 -> bf16 is exact, so the shared weights are unchanged.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from persona.papi import prompts
from persona.papi.data import Convention, Item, Subject
from persona.papi.methods.base import (
    LIKELIHOOD,
    AnswerMode,
    Answers,
    label_values,
    score_items,
    selection_score,
    split_known,
)
from persona.papi.prompts import DEFAULT_SYSTEM, ORDERS
from persona.timing import StageTimer, maybe_stage

LETTERS = ("A", "B", "C", "D", "E")


@dataclass
class DPOSettings:
    """Everything that defines a DPO run; recorded next to the results."""

    max_steps: int = 40
    eval_every: int = 10
    learning_rate: float = 5e-5
    beta: float = 0.1
    batch_size: int = 4  # SmolLM2 peaks ~5.6 GB RSS at 8 (fp32, CPU); 4 keeps it near 3-4 GB
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    val_fraction: float = 0.2
    seed: int = 0
    extra: dict = field(default_factory=dict)


def validation_steps(max_steps: int, eval_every: int) -> set[int]:
    """The steps at which a fit computes its validation Score: 0, every ``eval_every`` steps, and the last."""
    marks = set(range(eval_every, max_steps + 1, eval_every)) if eval_every > 0 else set()
    return {0, max_steps} | marks


def preference_pairs(engine, subject: Subject, items: Sequence[Item], convention: Convention) -> list[dict]:
    """DPO pairs (``prompt``/``chosen``/``rejected`` texts) for the subject's known answers; see module doc."""
    values = label_values(subject, items, convention)
    pairs = []
    for order in ORDERS:
        asked = prompts.prompts(items, DEFAULT_SYSTEM, order)
        for item, value, prompt in zip(items, values, asked):
            if value == 0:
                continue
            identity = 5 - int(value)  # option identity: 0 = Very Accurate ... 4 = Very Inaccurate
            rejected = [4] if value > 3 else [0] if value < 3 else [0, 4]
            position = {ident: pos for pos, ident in enumerate(prompt.identity_of_position)}
            text = engine.render(prompt)
            for rej in rejected:
                pairs.append({
                    "prompt": text,
                    "chosen": prompt.labels[position[identity]],
                    "rejected": prompt.labels[position[rej]],
                })
    return pairs


class DPO:
    """One LoRA adapter per subject, trained with TRL's DPOTrainer; step count chosen on validation."""

    def __init__(self, engine, *, convention: Convention = "corrected", settings: DPOSettings | None = None,
                 save_dir: str | Path | None = None, timer: StageTimer | None = None,
                 mode: AnswerMode = LIKELIHOOD) -> None:
        self.engine = engine
        self.convention = convention
        self.settings = settings or DPOSettings()
        self.save_dir = Path(save_dir) if save_dir else None
        self.name = f"dpo[{convention}]"
        self.adapter_state: dict[str, torch.Tensor] | None = None
        self.history: list[dict] = []
        self.best_step: int | None = None
        self.timer = timer
        self.mode = mode

    # ---------------------------------------------------------------- training
    def fit(self, subject: Subject, known: Sequence[Item]) -> None:
        from datasets import Dataset
        from datasets.utils.logging import disable_progress_bar, enable_progress_bar
        from peft import LoraConfig
        from transformers import PrinterCallback, TrainerCallback
        from trl import DPOConfig, DPOTrainer

        self.release()  # a previous subject's adapter, if answer() was the last call
        s = self.settings
        fit_items, val_items = split_known(known, val_fraction=s.val_fraction, seed=s.seed + subject.case)
        pairs = preference_pairs(self.engine, subject, fit_items, self.convention)
        model, tokenizer = self.engine.model, self.engine.tokenizer
        self.history, self.best_step, self.adapter_state = [], 0, None

        spent = {"wall_s": 0.0, "cpu_s": 0.0}  # validation time, reported apart from training

        def validate(step: int) -> None:
            wall0, cpu0 = time.perf_counter(), time.process_time()
            was_training = model.training
            model.eval()
            with torch.no_grad():
                score = selection_score(score_items(self.engine, val_items, DEFAULT_SYSTEM, self.mode), subject, val_items,
                                        self.convention)
            model.train(was_training)
            self.history.append({"step": step, "val_score": score})
            if score < min((h["val_score"] for h in self.history[:-1]), default=np.inf):
                self.best_step = step
                self.adapter_state = {k: v.detach().clone() for k, v in model.named_parameters() if "lora_" in k}
            spent["wall_s"] += time.perf_counter() - wall0
            spent["cpu_s"] += time.process_time() - cpu0

        schedule = validation_steps(s.max_steps, s.eval_every)  # step 0 is validated before training

        class EveryN(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step in schedule:
                    validate(state.global_step)

        config = DPOConfig(
            output_dir=tempfile.mkdtemp(prefix="persona-dpo-"),
            max_steps=s.max_steps,
            per_device_train_batch_size=s.batch_size,
            learning_rate=s.learning_rate,
            beta=s.beta,
            logging_steps=max(1, s.eval_every),
            save_strategy="no",
            report_to=[],
            seed=s.seed,
            data_seed=s.seed,
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
            bf16=torch.cuda.is_available() and model.dtype == torch.bfloat16,
            max_length=1024,
            activation_checkpointing=False,  # small models: memory is not the constraint, time is
        )
        lora = LoraConfig(r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout,
                          target_modules=list(s.target_modules), task_type="CAUSAL_LM")
        self._dtype = model.dtype
        if not torch.cuda.is_available() and model.dtype != torch.float32:
            model.float()  # bf16 autograd on CPU is many times slower; bf16 -> fp32 -> bf16 is exact
        had_forward = "forward" in model.__dict__
        old_forward = model.__dict__.get("forward")
        meta = {"method": self.name, "subject": subject.case}
        self._case = subject.case
        disable_progress_bar()
        try:
            with maybe_stage(self.timer, "dpo/setup", **meta), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                trainer = DPOTrainer(model=model, ref_model=None, args=config, train_dataset=Dataset.from_list(pairs),
                                     processing_class=tokenizer, peft_config=lora, callbacks=[EveryN()])
        finally:
            enable_progress_bar()
        trainer.remove_callback(PrinterCallback)
        peft_model = trainer.model
        try:
            with maybe_stage(self.timer, "dpo/train+validate", **meta), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # transformers 5 renames inside TRL, not ours
                validate(0)  # step 0 = the model without the adapter's effect (LoRA B starts at 0)
                trainer.train()
            if self.timer is not None:  # split the stage: pure training vs the validation callbacks
                total = self.timer.records.pop()
                self.timer.add("dpo/train", total.wall_s - spent["wall_s"], total.cpu_s - spent["cpu_s"],
                               total.peak_rss_mb, **meta)
                self.timer.add("dpo/validate", spent["wall_s"], spent["cpu_s"], total.peak_rss_mb, **meta)
            if self.adapter_state is not None:
                with torch.no_grad():
                    params = dict(model.named_parameters())  # same names as when the state was taken
                    for k, v in self.adapter_state.items():
                        params[k].copy_(v)
            if self.save_dir is not None:
                peft_model.save_pretrained(self.save_dir / f"subject-{subject.case}")
            peft_model.eval()
            self.peft_model = peft_model
            self.n_pairs = len(pairs)
        except BaseException:
            self._unload(peft_model, had_forward, old_forward)
            raise
        self._restore = (had_forward, old_forward)

    def _unload(self, peft_model, had_forward: bool, old_forward) -> None:
        """Remove the LoRA layers (no merge) and TRL's forward patch: the shared model is as before."""
        base = peft_model.unload().to(self._dtype)
        if had_forward:
            base.forward = old_forward
        else:
            base.__dict__.pop("forward", None)
        base.eval()
        self.engine.model = base

    # ---------------------------------------------------------------- answering
    def answer(self, items: Sequence[Item]) -> Answers:
        if not hasattr(self, "peft_model"):
            raise RuntimeError("fit() first")
        with maybe_stage(self.timer, "dpo/answer", method=self.name, subject=self._case):
            answers = score_items(self.engine, items, DEFAULT_SYSTEM, self.mode)
        answers.info = {"best_step": self.best_step, "n_pairs": self.n_pairs}
        return answers

    def release(self) -> None:
        """Drop this subject's adapter from the shared model (call after ``answer``)."""
        if hasattr(self, "peft_model"):
            self._unload(self.peft_model, *self._restore)
            del self.peft_model

    def record(self) -> dict:
        return {**asdict(self.settings), "convention": self.convention}
