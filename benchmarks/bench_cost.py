"""PAS vs DPO optimisation time, measured side by side (interleaved per subject) in one run.

    python benchmarks/bench_cost.py --subjects 3 --test-per-domain 2 --dpo-steps 24

Runs PAS (honest protocol) and DPO on the same subjects through ``persona.papi.experiment.run`` into a
temporary results folder, then prints the mean time per stage, and per subject the time PAS needs to reach
its chosen validation quality against the time DPO first reaches it (``persona.papi.cost``), with the
verdict rule's interval. Defaults are a CPU-sized run on the embedded SmolLM2; pass
``--model meta-llama/Meta-Llama-3-8B-Instruct`` on a GPU.
"""

from __future__ import annotations

import argparse
import tempfile

import pandas as pd
import torch

from persona.engine import Engine
from persona.models import load_model
from persona.papi import cost
from persona.papi import experiment as ex
from persona.runs import ResultStore
from persona.timing import StageTimer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--test-per-domain", type=int, default=2)
    parser.add_argument("--known-per-domain", type=int, default=None, help="default: all 120 known items")
    parser.add_argument("--dpo-steps", type=int, default=24)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0, 2, 4, 8])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pas, dpo = "pas[honest,corrected]", "dpo[corrected]"
    settings = ex.settings_from({
        "n_subjects": args.subjects, "n_test_per_domain": args.test_per_domain,
        "n_known_per_domain": args.known_per_domain, "methods": [pas], "dpo_method": dpo,
        "dpo_subjects": args.subjects, "dpo_max_steps": args.dpo_steps, "alphas": args.alphas, "seed": args.seed})
    setup = ex.papi_setup(settings)
    model, tokenizer = load_model(args.model)
    engine = Engine(model, tokenizer, batch_size=settings.batch_size)
    timer = StageTimer()
    activations = ex.Activations(engine, setup, timer)
    methods = {name: ex.make_method(name, engine, setup, settings, activations=activations, timer=timer)
               for name in (pas, dpo)}
    with tempfile.TemporaryDirectory() as folder:
        store = ResultStore(folder, {}, code="benchmark")
        ex.run(methods, setup, store, timer)
        times, traces = ex.records(store, [pas, dpo], "times"), ex.records(store, [pas, dpo], "trace")
    fits = cost.fit_times(times, {pas: settings.contrast}, len(setup.subjects))
    curves = cost.quality_curves(traces, times, pas, dpo, len(setup.subjects), settings.contrast)
    ttq = cost.time_to_quality(curves, pas, dpo, fits)
    pd.set_option("display.width", 160)
    print(cost.stage_table(times).round(2).to_string(index=False))
    print(ttq.round(3).to_string(index=False))
    print(cost.cost_verdict(ttq).evidence)


if __name__ == "__main__":
    main()
