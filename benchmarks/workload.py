"""How many tokens the alignment notebook pushes through the model per subject, for a profile.

    python benchmarks/workload.py --profile gpu --tokens-per-second 20000

Runs the real methods of ``02_alignment`` (prompt baselines and every PAS variant) for one subject, but
with an engine that counts tokens instead of computing: each ``score`` call is rendered and tokenised
exactly as the real engine would, the shared prefix of a system prompt is counted once per call (as the
real engine encodes it once), and every prompt's own suffix is counted. DPO is counted from its preference
pairs: per step ``batch`` pairs, chosen and rejected, forward + backward (~3 forward passes) plus the
reference forward. The count is exact for the given tokenizer; turning it into time needs a throughput,
which is an assumption you pass in (measure it on your GPU with ``benchmarks/bench_engine.py``).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
import yaml

from persona.engine import Engine
from persona.engine.packing import common_prefix_len
from persona.engine.scoring import ScoreResult
from persona.papi import experiment as ex
from persona.papi.methods.dpo import DPOSettings, preference_pairs
from persona.papi.methods.base import split_known
from persona.paths import REPO_ROOT


class CountingEngine(Engine):
    """An ``Engine`` whose ``score`` only counts the tokens the real one would encode (uniform answers)."""

    def __init__(self, model, tokenizer) -> None:
        super().__init__(model, tokenizer)
        self.tokens = 0

    def score(self, prompts, *, progress: bool = False) -> ScoreResult:
        groups: dict[object, list[list[int]]] = defaultdict(list)
        for prompt in prompts:
            groups[prompt.system].append(self.encode(prompt))
        for seqs in groups.values():
            shared = common_prefix_len(seqs) if len(seqs) > 1 else 0
            self.tokens += shared + sum(len(s) - shared for s in seqs)
        n = len(prompts)
        probs = np.full((n, len(prompts[0].labels) if n else 5), 1.0 / 5)
        return ScoreResult(probs=probs, mass=np.ones(n), raw=probs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="gpu")
    parser.add_argument("--tokenizer-model", default="smollm2-135m-instruct",
                        help="model whose tokenizer counts (offline: an embedded one as a proxy)")
    parser.add_argument("--tokens-per-second", type=float, default=None, help="assumed forward throughput")
    args = parser.parse_args()

    from persona.models import load_model

    params = yaml.safe_load((REPO_ROOT / "profiles" / f"{args.profile}.yaml").read_text())["02_alignment"]
    setup = ex.papi_setup(1, params.get("n_test_per_domain"), params.get("n_known_per_domain"))
    model, tokenizer = load_model(args.tokenizer_model)
    engine = CountingEngine(model, tokenizer)
    layout_heads = (model.config.num_hidden_layers, model.config.num_attention_heads,
                    model.config.hidden_size // model.config.num_attention_heads)
    activations = np.random.default_rng(0).normal(size=(len(setup.known), 2, *layout_heads)).astype(np.float32)
    names = ["no-change", "few-shot[paper]", "few-shot[corrected]", "p2", "pas[paper,paper]",
             "pas[paper,corrected]", "pas[honest,corrected]", "pas[honest,no-fs,corrected]"]
    subject = setup.subjects[0]
    rows = []
    for name in names:
        method = ex.make_method(name, engine, setup, activations=activations, alphas=params.get("alphas"))
        engine.tokens = 0
        method.fit(subject, setup.known)
        method.answer(setup.test)
        rows.append((name, engine.tokens))
    settings = DPOSettings(max_steps=params["dpo_max_steps"], eval_every=params["dpo_eval_every"],
                           batch_size=params["dpo_batch_size"])
    fit_items, val_items = split_known(setup.known, val_fraction=settings.val_fraction, seed=settings.seed)
    pairs = preference_pairs(engine, subject, fit_items, "corrected")
    pair_tokens = np.mean([len(tokenizer(p["prompt"], add_special_tokens=False)["input_ids"]) + 1 for p in pairs])
    train = settings.max_steps * settings.batch_size * 2 * pair_tokens * 4  # fwd+bwd (~3) + reference fwd
    engine.tokens = 0
    ex.make_method("no-change", engine, setup).answer(val_items)  # one validation Score
    validation = engine.tokens * ex.n_validations(settings.max_steps, settings.eval_every)
    rows.append(("dpo[corrected] (forward-equivalent)", int(train + validation)))

    n_subjects = params.get("n_subjects") or 300
    dpo_subjects = params.get("dpo_subjects", n_subjects)
    per_subject_prompt = sum(t for _, t in rows[:-1])
    total = per_subject_prompt * n_subjects + rows[-1][1] * dpo_subjects
    print(f"profile {args.profile}: {len(setup.known)} known, {len(setup.test)} test items; "
          f"tokenizer of {args.tokenizer_model}")
    for name, tokens in rows:
        print(f"  {name:40s} {tokens:>12,d} tokens per subject")
    print(f"  total for {n_subjects} subjects (DPO on {dpo_subjects}): {total:,.0f} forward-equivalent tokens")
    if args.tokens_per_second:
        print(f"  at an assumed {args.tokens_per_second:,.0f} tokens/s: {total / args.tokens_per_second / 3600:.1f} h")


if __name__ == "__main__":
    main()
