"""Several hosts, checked on one machine: a tiny audit run by two processes on jax.distributed
(coordinator on 127.0.0.1, gloo CPU collectives, two forced host devices each) against the same
study run by one process. Prints JSON; exits non-zero unless every metric is identical.

    python benchmarks/distributed_check.py        # ~1-2 min on 2 CPU cores (CI runs it)

Each process computes the runs r with r mod 2 == its index into per-run stages of one shared
output directory; process 0 merges them and writes results.json. Runs are independent and
their keys, shapes and training configs do not depend on which process computes them, so the
two studies must agree exactly on this machine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.golden import differences, metrics_view  # noqa: E402

# a study with every kind of run: the pool itself, a random subset, DM, DP-SGD (its public
# size and calibration over all runs), two forced devices per process
FLAGS = ["--runs", "4", "--pool-size", "120", "--ipc", "2", "--net", "ConvNetD1",
         "--cond-net", "ConvNetD1", "--recipes",
         "real,random_subset,condense(dm,init=real),dpsgd(4)", "--epochs", "2",
         "--real-epochs", "2", "--dp-epochs", "1", "--dm.iterations", "2",
         "--dm.batch_real", "4", "--attacks", "loss,lira_offline_fixed", "--primary-attack",
         "lira_offline_fixed", "--canaries", "4", "--theory-iterations", "20", "--quiet"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(extra: dict) -> dict:
  env = {k: v for k, v in os.environ.items() if not k.startswith("DCJAX_")}
  return {**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "PYTHONPATH": ROOT,
          **extra}


def main() -> int:
  work = tempfile.mkdtemp(prefix="dcjax-distributed-")
  cmd = [sys.executable, "-m", "experiments.audit", *FLAGS]
  start = time.time()
  port = _free_port()
  procs = [subprocess.Popen([*cmd, "--distributed", "--out", os.path.join(work, "two")],
                            cwd=ROOT, env=_env({"DCJAX_COORDINATOR": f"127.0.0.1:{port}",
                                                "DCJAX_NUM_PROCESSES": "2",
                                                "DCJAX_PROCESS_ID": str(i)}),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i in range(2)]
  outs = [p.communicate(timeout=900)[0] for p in procs]
  two_seconds = time.time() - start
  start = time.time()
  one = subprocess.run([*cmd, "--out", os.path.join(work, "one")], cwd=ROOT, env=_env({}),
                       capture_output=True, text=True, timeout=900, check=False)
  one_seconds = time.time() - start
  result = {"two_processes_rc": [p.returncode for p in procs], "one_process_rc": one.returncode,
            "two_processes_seconds": round(two_seconds, 1),
            "one_process_seconds": round(one_seconds, 1)}
  if any(p.returncode for p in procs) or one.returncode:
    result["logs"] = [o[-2000:] for o in outs] + [(one.stdout + one.stderr)[-2000:]]
    print(json.dumps(result, indent=2))
    return 1
  load = lambda d: json.load(open(os.path.join(work, d, "results.json")))
  diff = differences(metrics_view(load("two")), metrics_view(load("one")))
  per_run = sorted(n for n in os.listdir(os.path.join(work, "two", "stages", "real")))
  result.update({"identical": not diff, "differing_leaves": len(diff),
                 "first_differences": diff[:10], "per_run_stages_of_real": per_run})
  print(json.dumps(result, indent=2))
  return 0 if not diff else 1


if __name__ == "__main__":
  sys.exit(main())
