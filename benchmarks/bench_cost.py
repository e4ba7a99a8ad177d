"""PAS vs DPO optimisation time, measured side by side (interleaved per subject) in one run.

    python benchmarks/bench_cost.py --subjects 3 --test-per-domain 4 --dpo-steps 40

Prints the per-stage times and the PAS/DPO ratio of per-subject optimisation time (PAS's one-off
activation extraction spread over the subjects) with a bootstrap CI over subjects. Defaults are a
CPU-sized run on the embedded SmolLM2; pass ``--model meta-llama/Meta-Llama-3-8B-Instruct`` on a GPU.
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from persona.engine import Engine
from persona.models import load_model
from persona.papi import cost
from persona.papi import experiment as ex
from persona.papi.methods.dpo import DPOSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--test-per-domain", type=int, default=4)
    parser.add_argument("--known-per-domain", type=int, default=None, help="default: all 120 known items")
    parser.add_argument("--dpo-steps", type=int, default=40)
    parser.add_argument("--dpo-eval-every", type=int, default=10)
    parser.add_argument("--pas", default="pas[honest,corrected]")
    parser.add_argument("--dpo", default="dpo[corrected]")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    setup = ex.papi_setup(args.subjects, args.test_per_domain, args.known_per_domain)
    model, tokenizer = load_model(args.model, dtype=getattr(torch, args.dtype))
    engine = Engine(model, tokenizer)
    settings = DPOSettings(max_steps=args.dpo_steps, eval_every=args.dpo_eval_every, seed=args.seed)
    times, _ = cost.cost_comparison(engine, setup, setup.subjects, pas_name=args.pas, dpo_name=args.dpo,
                                  dpo_settings=settings)
    with pd.option_context("display.width", 120, "display.precision", 2):
        stages = times[~times["total"]]
        print(stages.groupby("stage")[["wall_s", "cpu_s", "peak_rss_mb"]].agg(
            {"wall_s": "mean", "cpu_s": "mean", "peak_rss_mb": "max"}))
        for clock in ("wall_s", "cpu_s"):
            r = cost.cost_ratio(times, args.pas, args.dpo, clock=clock, seed=args.seed)
            print(f"PAS/DPO optimisation time ({clock}): {r['ratio']:.3f} "
                  f"[95% CI {r['ci_low']:.3f}, {r['ci_high']:.3f}] over {int(r['n_subjects'])} subjects "
                  f"(PAS {r['pas_s']:.1f} s, DPO {r['dpo_s']:.1f} s per subject; paper claims 0.2)")


if __name__ == "__main__":
    main()
