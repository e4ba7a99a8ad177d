"""How many tokens the alignment notebook pushes through the model, for a profile.

    python benchmarks/workload.py --profile gpu --tokens-per-second 20000

Runs the real methods of ``02_alignment`` (prompt baselines, every PAS variant, in both pipelines) for one
subject of the profile's sample, with an engine that counts tokens instead of computing: each ``label_probs`` or
``answer`` call is rendered and tokenised exactly as the real engine would, a group's shared prefix is
counted once per call (as the real engine encodes it once), every prompt's own tokens are counted, and a
generated answer adds ``max_new_tokens`` decoding steps. DPO is counted from its settings: per step
``batch_size`` prompts forward and backward (about three forward passes), the reference once per prompt,
and a validation of the held-out known items every ``eval_every`` steps, for every learning rate. The
count is exact for the given tokenizer; turning it into time needs a throughput, an assumption you pass in
(measure it on your GPU with ``benchmarks/bench_engine.py``).
"""

from __future__ import annotations

import argparse

import numpy as np

from persona.engine import Engine
from persona.engine.packing import plan
from persona.engine.parsing import GenerationResult
from persona.engine.scoring import OptionProbs
from persona.papi import experiment as ex
from persona.papi.methods.answering import split_known
from persona.papi.methods.dpo import preference_pairs
from persona.runbook import load_profile
from persona.timing import StageTimer


class CountingEngine(Engine):
    """An ``Engine`` that only counts the tokens the real one would encode (uniform answers)."""

    def __init__(self, model, tokenizer) -> None:
        super().__init__(model, tokenizer)
        self.tokens = 0

    def _count(self, prompts) -> None:
        ids = [self.encode(p) for p in prompts]
        for prefix, batches in plan([p.system for p in prompts], ids, self.batch_size):
            self.tokens += len(prefix) + sum(len(ids[i]) - len(prefix) for batch in batches for i in batch)

    def label_probs(self, prompts, *, progress: bool = False, label_ids=None) -> OptionProbs:
        self._count(prompts)
        n = len(prompts)
        probs = np.full((n, len(prompts[0].labels) if n else 5), 1.0 / 5)
        return OptionProbs(probs=probs, mass=np.ones(n), raw=probs)

    def answer(self, prompts, *, max_new_tokens: int = 15, **kwargs) -> GenerationResult:
        self._count(prompts)
        self.tokens += max_new_tokens * len(prompts)
        return GenerationResult(texts=["C"] * len(prompts), outcome=[2] * len(prompts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="gpu")
    parser.add_argument("--tokenizer-model", default="smollm2-135m-instruct",
                        help="model whose tokenizer counts (offline: an embedded one as a proxy)")
    parser.add_argument("--tokens-per-second", type=float, default=None, help="assumed forward throughput")
    args = parser.parse_args()

    from persona.models import load_model

    params = load_profile(args.profile)["02_alignment"]
    settings = ex.settings_from({"dpo_method": "dpo[corrected]", **params})  # the notebook's default DPO method
    setup = ex.papi_setup(ex.AlignmentSettings(**{**settings.__dict__, "n_subjects": 1, "dpo_subjects": 1,
                                                  "palign_subjects": None}))
    model, tokenizer = load_model(args.tokenizer_model)
    engine = CountingEngine(model, tokenizer)
    shape = (model.config.num_hidden_layers, model.config.num_attention_heads,
             model.config.hidden_size // model.config.num_attention_heads)
    fake = np.random.default_rng(0).normal(size=(len(setup.known), 4, *shape)).astype(np.float32)
    activations = ex.Activations(engine, setup, StageTimer())
    activations._done = {"content": fake, "palign": fake[:, :2]}
    subject = setup.subjects[0]
    rows = []
    names = [*settings.methods, *(f"{m}@palign" for m in settings.palign_methods)]
    for name in names:
        method = ex.make_method(name, engine, setup, settings, activations=activations)
        engine.tokens = 0
        method.fit(subject, setup.known)
        method.answer(setup.test)
        rows.append((name, engine.tokens))
    dpo = settings.dpo
    fit_items, val_items = split_known(setup.known, val_fraction=dpo.val_fraction, seed=dpo.seed)
    pairs = preference_pairs(engine, subject, setup.known, "corrected")
    prompt_tokens = np.mean([len(tokenizer(p["prompt"], add_special_tokens=False)["input_ids"]) for p in pairs])
    engine.tokens = 0
    ex.make_method("no-change", engine, setup, settings).answer(val_items)
    per_validation = engine.tokens
    steps = dpo.max_steps * len(dpo.learning_rates) + dpo.max_steps  # search at most, then the refit
    validations = (dpo.max_steps // dpo.eval_every + 1) * len(dpo.learning_rates)
    dpo_tokens = int(steps * dpo.batch_size * prompt_tokens * 3 + len(pairs) * prompt_tokens
                     + validations * per_validation)
    rows.append((f"{settings.dpo_method} (forward-equivalent, at most)", dpo_tokens))

    n_subjects = settings.n_subjects or 300
    palign_subjects = settings.palign_subjects or n_subjects
    per_subject = sum(t for name, t in rows[:-1] if "@palign" not in name)
    palign = sum(t for name, t in rows[:-1] if "@palign" in name)
    total = per_subject * n_subjects + palign * palign_subjects + dpo_tokens * settings.dpo_subjects
    print(f"profile {args.profile}: {len(setup.known)} known, {len(setup.test)} test items; "
          f"tokenizer of {args.tokenizer_model}")
    for name, tokens in rows:
        print(f"  {name:48s} {tokens:>12,d} tokens per subject")
    print(f"  total for {n_subjects} subjects (PAlign pipeline on {palign_subjects}, DPO on "
          f"{settings.dpo_subjects}): {total:,.0f} forward-equivalent tokens")
    if args.tokens_per_second:
        print(f"  at an assumed {args.tokens_per_second:,.0f} tokens/s: {total / args.tokens_per_second / 3600:.1f} h")


if __name__ == "__main__":
    main()
