"""Mixed-precision training (bfloat16 compute) against float32 on the same keys; prints JSON.

    python benchmarks/mixed_precision.py [--seeds 3] [--epochs 300]
    python benchmarks/mixed_precision.py --audit-preset quick    # also the audit, both ways

Part 1: ``default_net`` on the whole digits training split, the evaluation protocol, float32
and ``compute_dtype="bfloat16"`` from the same key per seed: test accuracy (mean, std, per
seed) and seconds. Part 2 (``--audit-preset``): the audit preset run twice, float32 and
``train_compute_dtype="bfloat16"`` (everything else equal, same seed), with every recipe's test
accuracy and primary-attack AUC per stratum, and whether each verdict against the baseline is
the same. ``--float32-dir`` reuses a finished float32 audit of that preset instead of rerunning
it. On CPU bfloat16 is emulated, so the seconds say nothing about an accelerator.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dcjax import io  # noqa: E402
from dcjax.audit import get_preset, run_audit  # noqa: E402
from dcjax.data import load_dataset  # noqa: E402
from dcjax.nets import default_net, get_net  # noqa: E402
from dcjax.train import TrainConfig, accuracy, predict, train  # noqa: E402


def accuracy_part(seeds: int, epochs: int) -> dict:
  pool, test = load_dataset("digits")
  net = get_net(default_net(pool.image_shape), pool.num_classes)
  out = {"net": net.__class__.__name__, "epochs": epochs, "train_size": len(pool),
         "test_size": len(test)}
  for dtype in ("float32", "bfloat16"):
    cfg = TrainConfig(epochs=epochs, compute_dtype=dtype)
    accs, start = [], time.perf_counter()
    for seed in range(seeds):
      params = train(jax.random.key(seed), net, pool.images, pool.labels, cfg)
      accs.append(float(accuracy(predict(net, params, test.images), test.labels)))
    out[dtype] = {"test_accuracy": accs, "mean": statistics.mean(accs),
                  "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                  "seconds": round(time.perf_counter() - start, 1)}
    print(f"{dtype}: {out[dtype]['mean']:.4f} in {out[dtype]['seconds']} s", file=sys.stderr,
          flush=True)
  out["accuracy_difference"] = out["bfloat16"]["mean"] - out["float32"]["mean"]
  return out


def _summary(results: dict) -> dict:
  primary = results["config"]["primary_attack"]
  rows = {}
  for name, r in results["recipes"].items():
    rows[name] = {"test_accuracy": r["test_accuracy"]["mean"],
                  "auc": {s: m["auc"] for s, m in r["attacks"][primary].items()
                          if isinstance(m, dict) and "auc" in m}}
  verdicts = {f"{row['recipe']}/{row['stratum']}": row["verdict"]
              for row in results["comparison"]}
  return {"recipes": rows, "verdicts": verdicts, "primary_attack": primary}


def audit_part(preset: str, float32_dir: str | None) -> dict:
  cfg = get_preset(preset)
  runs = {}
  with tempfile.TemporaryDirectory() as tmp:
    for dtype in ("float32", "bfloat16"):
      if dtype == "float32" and float32_dir:
        with open(os.path.join(float32_dir, "results.json")) as f:
          results = json.load(f)
        # an audit written before train_compute_dtype existed ran float32
        got = {"train_compute_dtype": "float32", **results["config"]}
        if got != dataclasses.asdict(cfg):
          raise SystemExit(f"--float32-dir {float32_dir} is not an audit of preset {preset!r}.")
      else:
        start = time.perf_counter()
        results = run_audit(dataclasses.replace(cfg, train_compute_dtype=dtype),
                            os.path.join(tmp, dtype), progress=False, preset=preset,
                            log=lambda *_: None)
        print(f"audit {preset} {dtype}: {time.perf_counter() - start:.0f} s", file=sys.stderr,
              flush=True)
      runs[dtype] = _summary(results)
  same = runs["float32"]["verdicts"] == runs["bfloat16"]["verdicts"]
  diffs = [abs(a - b) for name in runs["float32"]["recipes"]
           for a, b in zip(runs["float32"]["recipes"][name]["auc"].values(),
                           runs["bfloat16"]["recipes"][name]["auc"].values())]
  return {"preset": preset, "float32": runs["float32"], "bfloat16": runs["bfloat16"],
          "same_verdicts": same, "max_auc_difference": max(diffs, default=0.0)}


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--seeds", type=int, default=3)
  p.add_argument("--epochs", type=int, default=300)
  p.add_argument("--audit-preset", default=None, help="also run this audit preset both ways")
  p.add_argument("--float32-dir", default=None,
                 help="a finished float32 audit of --audit-preset to reuse")
  p.add_argument("--skip-accuracy", action="store_true", help="only the audit part")
  args = p.parse_args(argv)
  result = {"backend": jax.default_backend()}
  if not args.skip_accuracy:
    result["digits_accuracy"] = accuracy_part(args.seeds, args.epochs)
  if args.audit_preset:
    result["audit"] = audit_part(args.audit_preset, args.float32_dir)
  result["machine"] = io.machine()
  print(json.dumps(result, indent=2))
  return result


if __name__ == "__main__":
  main()
