#!/usr/bin/env bash
# Issue 11's accelerator figures in one prepared call (budget: under 8 minutes on one H200).
#
#   OUT=/some/dir bash benchmarks/accelerator_check.sh
#
# Runs from the source tree (PYTHONPATH=.; the GPU image has jax, flax, optax, chex, orbax but
# no registry), each phase under its own timeout so that one slow phase cannot eat the rest,
# and writes one JSON per phase to $OUT plus phases.txt with each phase's exit code and wall
# seconds. Phases, cheapest evidence first:
#   condense_step_{dm,dsa}.json  compile_sec (ahead of time) and sec_per_iter at CIFAR shapes
#   train_throughput.json        train_many vs a loop over its own step (goal >= 1.0)
#   shadow_runs_dm.json          condense_many + train_many vs a loop, DM, 16 runs (goal >= 5x)
#   audit_quick.json             wall time of `experiments.audit --preset quick` (goal <= 45 s)
#   audit_cost.json              cifar10_ipc10 hours at the rates measured above (goal <= 4 h)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to a directory for the JSON files}
mkdir -p "$OUT"
export PYTHONPATH=.
phase() {  # phase NAME TIMEOUT_S COMMAND...
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.json" 2> "$OUT/$name.err"
  echo "$name rc=$? seconds=$((SECONDS - start))" | tee -a "$OUT/phases.txt"
}
phase condense_step_dm 60 python3 benchmarks/condense_step.py --method dm --repeats 5
phase condense_step_dsa 90 python3 benchmarks/condense_step.py --method dsa --repeats 3
phase train_throughput 60 python3 benchmarks/train_throughput.py --models 64 --steps 8
phase shadow_runs_dm 120 python3 benchmarks/shadow_runs.py --runs 16 --recipes dm \
  --epochs 300 --cond-iterations 200
start=$SECONDS
# The quick preset's DP recipes and canaries need dp-accounting and jax-privacy (the privacy
# extra), which the GPU image lacks unless they are carried (pure-Python wheels: unpack them
# into a folder named in `carry` and add it to PYTHONPATH); without them the phase runs the
# condensation recipes alone and says so in audit_quick.log.
QUICK=()
if ! python3 -c "import dp_accounting, jax_privacy" 2>/dev/null; then
  echo "no dp-accounting / jax-privacy: quick without its DP recipes and canaries" \
    > "$OUT/audit_quick.log"
  QUICK=(--recipes "real,random_subset,init_only,condense(dm,init=real),condense(dm,init=noise),condense(dsa,init=real),condense(dsa,init=noise)" --canaries 0)
fi
timeout 90 python3 -m experiments.audit --preset quick "${QUICK[@]}" --out "$OUT/audit_quick" \
  --quiet >> "$OUT/audit_quick.log" 2>&1
rc=$?
echo "{\"preset\": \"quick\", \"rc\": $rc, \"wall_sec\": $((SECONDS - start))}" \
  > "$OUT/audit_quick.json"
echo "audit_quick rc=$rc seconds=$((SECONDS - start))" | tee -a "$OUT/phases.txt"
rm -rf "$OUT/audit_quick/stages"  # keep results.json and report.md, not the arrays
phase audit_cost 60 python3 -m benchmarks.audit_cost --preset cifar10_ipc10 \
  --measured "$OUT/condense_step_dm.json" --measured "$OUT/condense_step_dsa.json" \
  --measured "$OUT/train_throughput.json" --peak-tflops 494  # H200 TF32 dense (data sheet):
# jax runs float32 matmuls and convolutions on GPU tensor cores as TF32 by default
