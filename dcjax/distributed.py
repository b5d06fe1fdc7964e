"""Several hosts on ``jax.distributed``: one process per host, the runs of a study split among
them, each run's stages written by the process that owns it on a filesystem every host sees,
and process 0 merging them into the report.

    python -m experiments.audit --distributed ...          # on every host (one process each)

``initialize`` wraps ``jax.distributed.initialize``: with no arguments JAX finds the cluster
where the environment announces one (Cloud TPU pods, SLURM, Open MPI); elsewhere the
coordinator, the number of processes and this process's index come from the environment
variables ``DCJAX_COORDINATOR`` (host:port of process 0), ``DCJAX_NUM_PROCESSES`` and
``DCJAX_PROCESS_ID``. On CPU the processes talk through gloo. Runs are independent, so no
array crosses hosts: run r belongs to process r mod P (``owned_runs``), each process spreads
its runs over its own devices (``dcjax.sharding``), and the processes meet at barriers only.
"""

from __future__ import annotations

import os

import jax

ENV_COORDINATOR = "DCJAX_COORDINATOR"
ENV_NUM_PROCESSES = "DCJAX_NUM_PROCESSES"
ENV_PROCESS_ID = "DCJAX_PROCESS_ID"


def initialize() -> None:
  """Joins the cluster (call before any JAX computation)."""
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  coordinator = os.environ.get(ENV_COORDINATOR)
  if coordinator is None:
    jax.distributed.initialize()  # the cluster's own announcement (TPU pod, SLURM, MPI)
    return
  try:
    num, pid = int(os.environ[ENV_NUM_PROCESSES]), int(os.environ[ENV_PROCESS_ID])
  except (KeyError, ValueError) as err:
    raise ValueError(f"{ENV_COORDINATOR}={coordinator!r} needs {ENV_NUM_PROCESSES} and "
                     f"{ENV_PROCESS_ID} (ints) as well.") from err
  if not 0 <= pid < num:
    raise ValueError(f"{ENV_PROCESS_ID}={pid} must be in [0, {ENV_NUM_PROCESSES}={num}).")
  jax.distributed.initialize(coordinator, num, pid)


def process_index() -> int:
  return jax.process_index()


def process_count() -> int:
  return jax.process_count()


def owned_runs(num_runs: int, process: int | None = None, count: int | None = None
               ) -> list[int]:
  """The runs of ``process`` (default: this one): r with r mod P == process."""
  process = process_index() if process is None else process
  count = process_count() if count is None else count
  return [r for r in range(num_runs) if r % count == process]


def barrier(name: str) -> None:
  """Every process waits here until all have arrived (no-op with one process)."""
  if process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices(name)
