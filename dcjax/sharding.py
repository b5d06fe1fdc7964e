"""The ``runs`` mesh axis: stacked per-run state spread over the local devices.

Training (``train_many``'s "scan" strategy) and condensation (``condense_many``'s "vmap"
strategy) keep M runs stacked on a leading axis. With several local devices that axis is
sharded over a 1-D ``runs`` mesh (``NamedSharding``), so each device computes its share of the
runs and XLA inserts no communication: runs are independent. On one device nothing changes.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def run_mesh(num_runs: int) -> Mesh | None:
  """A 1-D ``runs`` mesh over the local devices when there are several and they divide the
  runs; None otherwise (everything on the default device)."""
  devices = jax.local_devices()
  if len(devices) < 2 or num_runs % len(devices):
    return None
  return Mesh(np.asarray(devices), ("runs",))


def shard_runs(tree: Any, mesh: Mesh | None) -> Any:
  """Places every leaf's leading (run) axis across the mesh (no-op without one)."""
  if mesh is None:
    return tree
  sharding = NamedSharding(mesh, PartitionSpec("runs"))
  return jax.tree.map(lambda a: jax.device_put(a, sharding), tree)
