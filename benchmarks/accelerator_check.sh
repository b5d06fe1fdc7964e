#!/usr/bin/env bash
# Issue 11's accelerator figures in one prepared call (budget: under 8 minutes on one H200).
#
#   OUT=benchmarks/results/<date>-<device> bash benchmarks/accelerator_check.sh   # a device
#   OUT=$(mktemp -d) CHECK_SIZE=tiny bash benchmarks/accelerator_check.sh           # CI (CPU)
#
# Runs from the source tree (PYTHONPATH=.; the GPU image has jax, flax, optax, chex, orbax but
# no registry), each phase under its own timeout so that one slow phase cannot eat the rest,
# and writes one JSON per phase to $OUT plus phases.txt with each phase's exit code and wall
# seconds. Phases, cheapest evidence first:
#   condense_step_{dm,dsa}.json  compile_sec (ahead of time) and sec_per_iter at CIFAR shapes
#   train_throughput.json        train_many vs a loop over its own step (goal >= 1.0)
#   shadow_runs_dm.json          condense_many + train_many vs a loop, DM, 16 runs (goal >= 5x)
#   released_set.json            the released-set analysis per run, hours per paper-scale recipe
#   audit_quick.json             wall time of `experiments.audit --preset quick` (goal <= 45 s)
#   audit_slice.json             every recipe kind at CIFAR shapes (npz:), seconds per stage
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
# CHECK_SIZE=tiny: the CPU form that CI runs (every phase at a tiny size, generous timeouts)
# so that the script cannot rot between the sessions that have an accelerator.
if [ "${CHECK_SIZE:-full}" = tiny ]; then
  T=300
  DM=(--ipc 1 --batch-real 4 --repeats 1); DSA=(--ipc 1 --batch-real 4 --repeats 1)
  TRAIN=(--models 2 --steps 1 --batch-size 32)
  SHADOW=(--runs 2 --recipes dm --epochs 2 --cond-iterations 2)
  QUICK_SIZE=(--epochs 5 --real-epochs 5 --dp-epochs 1 --dm.iterations 5 --ndpdc.iterations 5)
  RELEASED=(--pool 64 --size 8 --ipc 2 --paths numpy,device)
else
  T=0  # each phase's own limit below
  DM=(--repeats 5); DSA=(--repeats 3); TRAIN=(--models 64 --steps 8)
  SHADOW=(--runs 16 --recipes dm --epochs 300 --cond-iterations 200)
  QUICK_SIZE=()
  RELEASED=(--pool 2000 --paths device)
fi
limit() { if [ "$T" -gt 0 ]; then echo "$T"; else echo "$1"; fi; }
phase condense_step_dm "$(limit 60)" python3 benchmarks/condense_step.py --method dm "${DM[@]}"
phase condense_step_dsa "$(limit 90)" python3 benchmarks/condense_step.py --method dsa "${DSA[@]}"
phase train_throughput "$(limit 60)" python3 benchmarks/train_throughput.py "${TRAIN[@]}"
phase shadow_runs_dm "$(limit 120)" python3 benchmarks/shadow_runs.py "${SHADOW[@]}"
# the released-set analysis' SSIM: the jitted device path (numpy too in the CPU form)
phase released_set "$(limit 90)" python3 benchmarks/released_set.py "${RELEASED[@]}"
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
timeout "$(limit 90)" python3 -m experiments.audit --preset quick "${QUICK[@]}" \
  "${QUICK_SIZE[@]}" --out "$OUT/audit_quick" --quiet >> "$OUT/audit_quick.log" 2>&1
rc=$?
echo "{\"preset\": \"quick\", \"rc\": $rc, \"wall_sec\": $((SECONDS - start))}" \
  > "$OUT/audit_quick.json"
echo "audit_quick rc=$rc seconds=$((SECONDS - start))" | tee -a "$OUT/phases.txt"
rm -rf "$OUT/audit_quick/stages"  # keep results.json and report.md, not the arrays
# The paper-scale slice: every recipe kind (DM, DSA, MTT, FRePo, DP-SGD, NDPDC, the baselines)
# on CIFAR-shaped arrays (random uint8 32x32x3, 10 classes, through --dataset npz:PATH),
# 4 runs, shortened iterations and epochs; audit_slice.json holds each recipe stage's seconds
# split into compile (jax.monitoring's compile events) and steady state, from its results.json.
# CPU form: the same 32x32x3 shape (the quick preset on a CIFAR-shaped npz, end to end), a
# 200-image pool and fewer iterations.
if [ "${CHECK_SIZE:-full}" = tiny ]; then
  SLICE_SHAPE=32; SLICE=(--pool-size 200 --epochs 3 --real-epochs 2 --dp-epochs 1
    --dm.iterations 2 --dsa.iterations 1 --dsa.outer_loop 1 --dsa.inner_loop 1
    --mtt.iterations 2 --mtt.syn_steps 2 --mtt.max_start_epoch 1 --mtt.num_experts 1
    --frepo.iterations 2 --ndpdc.iterations 2 --net ConvNetD1 --cond-net ConvNetD1
    --ssim-shortlist 4)  # numpy SSIM at 32x32x3: ~50 s per released set with 64 on 2 cores
else
  SLICE_SHAPE=32; SLICE=(--pool-size 1000 --epochs 50 --real-epochs 5 --dp-epochs 2
    --dm.iterations 50 --dsa.iterations 2 --mtt.iterations 10 --mtt.num_experts 1
    --frepo.iterations 50 --ndpdc.iterations 50)
fi
SLICE_RECIPES="real,random_subset,init_only,condense(dm,init=real),condense(dsa,init=real),condense(mtt,init=real),condense(frepo,init=real)"
if python3 -c "import dp_accounting, jax_privacy" 2>/dev/null; then
  SLICE_RECIPES="$SLICE_RECIPES,dpsgd(4),condense(ndpdc,epsilon=4)"; SLICE_CANARIES=8
else
  SLICE_CANARIES=0
fi
python3 -c "
import numpy as np
rng = np.random.default_rng(0)
s = $SLICE_SHAPE
x = rng.integers(0, 256, (1200, s, s, 3), dtype=np.uint8); y = np.arange(1200) % 10
np.savez('$OUT/cifar_like.npz', x_train=x[:1000], y_train=y[:1000], x_test=x[1000:], y_test=y[1000:])"
start=$SECONDS
SLICE_LIMIT=300; [ "$T" -gt 0 ] && SLICE_LIMIT=900  # CPU form: ~4 min here, 2.4x on slow CPUs
timeout "$SLICE_LIMIT" python3 -m experiments.audit --preset quick --dataset "npz:$OUT/cifar_like.npz" \
  --runs 4 --ipc 2 --recipes "$SLICE_RECIPES" --canaries "$SLICE_CANARIES" "${SLICE[@]}" \
  --out "$OUT/audit_slice" --quiet > "$OUT/audit_slice.log" 2>&1
rc=$?
python3 -c "
import json
r = json.load(open('$OUT/audit_slice/results.json'))
total, compiled = r['stage_seconds'], r['compile_seconds']
steady = {k: round(v - compiled[k], 1) for k, v in total.items() if compiled.get(k) is not None}
print(json.dumps({'rc': $rc, 'wall_sec': $((SECONDS - start)), 'shape': [$SLICE_SHAPE] * 2 + [3],
                  'stage_seconds': total, 'compile_seconds': compiled,
                  'steady_seconds': steady, 'runs': r['runs']}, indent=2))" \
  > "$OUT/audit_slice.json" 2>> "$OUT/audit_slice.log" || rc=1
echo "audit_slice rc=$rc seconds=$((SECONDS - start))" | tee -a "$OUT/phases.txt"
rm -rf "$OUT/audit_slice/stages" "$OUT/cifar_like.npz"
phase audit_cost "$(limit 60)" python3 -m benchmarks.audit_cost --preset cifar10_ipc10 \
  --measured "$OUT/condense_step_dm.json" --measured "$OUT/condense_step_dsa.json" \
  --measured "$OUT/train_throughput.json" --peak-tflops 494  # H200 TF32 dense (data sheet):
# jax runs float32 matmuls and convolutions on GPU tensor cores as TF32 by default
