"""Sharded over 8 forced host devices against run by run; prints one JSON object.

    python benchmarks/sharding_check.py        # ~30 s on 2 CPU cores

Runs itself in a subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (the
device count is fixed when jax starts): 8 runs of DM at a tiny size through ``condense_many``,
once with the ``vmap`` strategy (the run axis sharded over a ``runs`` mesh, one run per device)
and once with ``loop`` (run by run on one device); 8 networks through ``train_many``, once with
the ``scan`` strategy (sharded the same way) and once with ``loop``. Exits non-zero when they differ beyond float tolerance (rtol 1e-2,
atol 2e-3), which is how a change that breaks sharding shows up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CHILD = """
import json, sys
import jax, numpy as np
sys.path.insert(0, {root!r})
from tests.test_condense_many import CFG, _inputs
from dcjax.condense import condense_many
from dcjax.sharding import run_mesh
pool, keys, masks = _inputs(8)
out = {{"devices": jax.device_count(), "mesh": run_mesh(8) is not None}}
for strategy in ("vmap", "loop"):
  many = condense_many(keys, pool, "dm", 2, "real", masks, CFG, strategy=strategy,
                       checkpoint_every=1)
  out["condense_" + strategy] = np.stack([np.asarray(s.images) for s in many]).tolist()
from dcjax.nets import get_net
from dcjax.train import TrainConfig, train_many
net = get_net("ConvNetD1", pool.num_classes, width=8)
for strategy in ("scan", "loop"):
  trained = train_many(keys, net, pool.images, pool.labels,
                       TrainConfig(epochs=2, batch_size=16, strategy=strategy), masks=masks)
  out["train_" + strategy + "_devices"] = len(jax.tree.leaves(trained)[0].sharding.device_set)
  out["train_" + strategy] = np.concatenate(
      [np.asarray(a).reshape(8, -1) for a in jax.tree.leaves(trained)], 1).tolist()
print(json.dumps(out))
"""


def main() -> dict:
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
         "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run([sys.executable, "-c", _CHILD.format(root=ROOT)], capture_output=True,
                        text=True, env=env, check=False, timeout=900)
  if proc.returncode:
    sys.stderr.write(proc.stderr[-3000:])
    raise SystemExit(proc.returncode)
  child = json.loads(proc.stdout.strip().splitlines()[-1])
  result = {"devices": child["devices"], "sharded_over_runs_mesh": child["mesh"],
            "train_many_scan_output_on_devices": child["train_scan_devices"]}
  for what, sharded, loop in (("condense_many", "condense_vmap", "condense_loop"),
                              ("train_many", "train_scan", "train_loop")):
    a, b = np.asarray(child[sharded]), np.asarray(child[loop])
    diff = np.abs(a - b)
    result[what] = {"values": int(diff.size),
                    "values_differing_over_1e-6": int((diff > 1e-6).sum()),
                    "max_abs_difference": float(diff.max()),
                    "within_tolerance": bool(np.allclose(a, b, rtol=1e-2, atol=2e-3))}
  print(json.dumps(result, indent=2))
  if not (result["condense_many"]["within_tolerance"] and result["train_many"][
      "within_tolerance"] and result["sharded_over_runs_mesh"] and result["devices"] == 8
          and result["train_many_scan_output_on_devices"] == 8):
    raise SystemExit(1)
  return result


if __name__ == "__main__":
  main()
