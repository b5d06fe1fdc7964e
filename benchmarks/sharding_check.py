"""condense_many sharded over 8 forced host devices against run by run; prints one JSON object.

    python benchmarks/sharding_check.py        # ~30 s on 2 CPU cores

Runs itself in a subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (the
device count is fixed when jax starts): 8 runs of DM at a tiny size, once with the ``vmap``
strategy (the run axis sharded over a ``runs`` mesh, one run per device) and once with ``loop``
(run by run on one device). Exits non-zero when they differ beyond float tolerance (rtol 1e-2,
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
from dcjax.condense.many import run_mesh
pool, keys, masks = _inputs(8)
out = {{"devices": jax.device_count(), "mesh": run_mesh(8) is not None}}
for strategy in ("vmap", "loop"):
  many = condense_many(keys, pool, "dm", 2, "real", masks, CFG, strategy=strategy,
                       checkpoint_every=1)
  out[strategy] = np.stack([np.asarray(s.images) for s in many]).tolist()
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
  sharded, loop = np.asarray(child["vmap"]), np.asarray(child["loop"])
  diff = np.abs(sharded - loop)
  result = {"devices": child["devices"], "sharded_over_runs_mesh": child["mesh"],
            "values": int(diff.size), "values_differing_over_1e-6": int((diff > 1e-6).sum()),
            "max_abs_difference": float(diff.max()),
            "within_tolerance": bool(np.allclose(sharded, loop, rtol=1e-2, atol=2e-3))}
  print(json.dumps(result, indent=2))
  if not (result["within_tolerance"] and result["sharded_over_runs_mesh"]
          and result["devices"] == 8):
    raise SystemExit(1)
  return result


if __name__ == "__main__":
  main()
