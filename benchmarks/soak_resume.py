"""Kill anywhere, resume identically: SIGKILL a run at random moments, rerun, compare.

    python benchmarks/soak_resume.py                      # audit (10 trials) + condense (5)
    python benchmarks/soak_resume.py --target audit --trials 3

For each target: one uninterrupted reference run; then ``trials`` times a fresh directory, a
SIGKILL at a moment drawn uniformly over the reference's wall time (seeded), and the same command
rerun until it completes; its results.json is compared with the reference's (every number;
timings excluded). Then targeted kills: SIGKILL from inside the process right before an Orbax
checkpoint is finalised (its temporary directory renamed into place) and right before an atomic
write's rename. After every final completion the directory is searched for temporary or partial
files. Prints one JSON object: per target ``trials``, ``identical``, ``kill_points`` (seconds
and the stage that was running), ``stray_files``, and the targeted kills.

Targets (small, so that a soak runs in minutes on 2 CPU cores):
  audit     python -m experiments.audit --preset quick
  condense  python -m experiments.condense --method dm --ipc 5 --dm.iterations 60
            --checkpoint-every 10 --models 2 --epochs 30
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dcjax.workdir import is_temporary  # noqa: E402  pylint: disable=wrong-import-position

TARGETS = {
    "audit": ["experiments.audit", "--preset", "quick", "--quiet"],
    "condense": ["experiments.condense", "--method", "dm", "--ipc", "5", "--dm.iterations", "60",
                 "--checkpoint-every", "10", "--models", "2", "--epochs", "30"],
}
# timings, and provenance that is not a result (the code version names the git commit)
TIMING_KEYS = {"seconds", "wall_seconds", "stage_seconds", "resumed_recipes", "machine",
               "condense_seconds", "eval_seconds", "code_version"}
# A driver that SIGKILLs its own process at the n-th matching rename: a kill at a known point
# inside a write, which a timer rarely hits.
_DRIVER = """
import importlib, os, signal, sys
point, nth = os.environ["SOAK_KILL_AT"].split(":")
nth, seen, original = int(nth), [0], os.rename if point == "orbax" else os.replace
def hooked(src, dst, *args, **kwargs):
  hit = ("orbax-checkpoint-tmp" in str(src)) if point == "orbax" else \\
      os.path.basename(str(src)).startswith(".tmp-")
  if hit:
    seen[0] += 1
    if seen[0] == nth:
      os.kill(os.getpid(), signal.SIGKILL)
  return original(src, dst, *args, **kwargs)
setattr(os, "rename" if point == "orbax" else "replace", hooked)
from dcjax import cli
module = importlib.import_module(sys.argv[1])
cli.run_main(module.main, sys.argv[2:])
"""


def _command(target: str, out: str) -> list[str]:
  module, *flags = TARGETS[target]
  return [sys.executable, "-m", module, *flags, "--out", out]


def _run(cmd: list[str], kill_after: float | None = None, env=None) -> tuple[int, str, float]:
  """Runs cmd; SIGKILLs its process group after ``kill_after`` s. (returncode, output, s)."""
  start = time.time()
  with tempfile.TemporaryFile("w+") as log:
    env = {**(env or os.environ), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env=env)
    try:
      proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()
    log.seek(0)
    return proc.returncode, log.read(), time.time() - start


def _until_complete(cmd: list[str], attempts: int = 5) -> str:
  for _ in range(attempts):
    code, output, _ = _run(cmd)
    if code == 0:
      return output
  raise RuntimeError(f"{' '.join(cmd)} did not complete in {attempts} attempts:\n{output}")


def _stage(output: str) -> str:
  """What the run was doing when it was killed: its last line of output (progress bars too)."""
  lines = [line.strip() for line in re.split(r"[\r\n]", output) if line.strip()]
  return lines[-1][:80] if lines else "start-up (imports, data)"


def _strip(obj):
  if isinstance(obj, dict):
    return {k: _strip(v) for k, v in obj.items() if k not in TIMING_KEYS}
  if isinstance(obj, list):
    return [_strip(v) for v in obj]
  return obj


def _differences(a, b, path="") -> list[str]:
  """Paths (e.g. /recipes/real/attacks/loss/...) whose values differ between a and b."""
  if isinstance(a, dict) and isinstance(b, dict):
    return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k), b.get(k),
                                                                      f"{path}/{k}")]
  if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
    return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}[{i}]")]
  return [] if a == b else [path]


def _results(out: str) -> dict:
  with open(os.path.join(out, "results.json")) as f:
    return _strip(json.load(f))


def _strays(out: str) -> list[str]:
  found = []
  for root, dirs, files in os.walk(out):
    for name in dirs + files:
      if is_temporary(name) or name.endswith((".tmp", ".partial")):
        found.append(os.path.relpath(os.path.join(root, name), out))
  return found


def soak(target: str, trials: int, seed: int, workdir: str, log) -> dict:
  ref = os.path.join(workdir, f"{target}-reference")
  code, output, wall = _run(_command(target, ref))
  if code != 0:
    raise RuntimeError(f"the reference run failed:\n{output}")
  reference = _results(ref)
  log(f"{target}: reference run {wall:.0f} s")
  rng = np.random.default_rng(seed)
  result = {"command": " ".join(_command(target, "DIR")[1:]), "reference_seconds": round(wall, 1),
            "trials": trials, "identical": 0, "kill_points": [], "stray_files": 0,
            "mismatches": [], "targeted": []}
  for t in range(trials):
    out = os.path.join(workdir, f"{target}-trial{t}")
    at = float(rng.uniform(0.0, wall))
    code, output, _ = _run(_command(target, out), kill_after=at)
    killed = code == -signal.SIGKILL
    left = len(_strays(out)) if os.path.isdir(out) else 0
    _until_complete(_command(target, out))
    same = _results(out) == reference
    strays = _strays(out)
    result["identical"] += int(same)
    result["stray_files"] += len(strays)
    result["kill_points"].append({"seconds": round(at, 1), "killed": killed,
                                  "stage": _stage(output) if killed else "(finished first)",
                                  "temporaries_left_by_the_kill": left})
    if not same or strays:
      result["mismatches"].append({"trial": t, "stray": strays,
                                   "differing": _differences(_results(out), reference)[:10]})
    log(f"{target}: trial {t + 1}/{trials} killed at {at:.0f} s "
        f"({result['kill_points'][-1]['stage']}): identical {same}, strays {len(strays)}")
  for point, nth in (("orbax", 2), ("atomic", 3)):
    out = os.path.join(workdir, f"{target}-{point}")
    env = {**os.environ, "SOAK_KILL_AT": f"{point}:{nth}",
           "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    module, *flags = TARGETS[target]
    code, _, _ = _run([sys.executable, "-c", _DRIVER, module, *flags, "--out", out], env=env)
    left = _strays(out)
    _until_complete(_command(target, out))
    same, strays = _results(out) == reference, _strays(out)
    result["targeted"].append({"kill": f"before the rename that finalises {point} write #{nth}",
                               "killed": code == -signal.SIGKILL, "identical": same,
                               "temporaries_left_by_the_kill": left,
                               "stray_files": len(strays)})
    log(f"{target}: targeted kill ({point} #{nth}): killed {code == -signal.SIGKILL}, "
        f"identical {same}, strays {len(strays)}")
  return result


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--target", choices=["audit", "condense", "both"], default="both")
  p.add_argument("--trials", type=int, default=10, help="random kills of the audit")
  p.add_argument("--condense-trials", type=int, default=5, help="random kills of condense")
  p.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
  p.add_argument("--workdir", default=None, help="where the runs go (default: a temp dir)")
  args = p.parse_args(argv)
  workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="dcjax-soak-"))
  log = lambda msg: print(msg, file=sys.stderr, flush=True)
  result = {"workdir": workdir}
  if args.target in ("audit", "both"):
    result["audit"] = soak("audit", args.trials, args.seed, workdir, log)
  if args.target in ("condense", "both"):
    result["condense"] = soak("condense", args.condense_trials, args.seed + 1, workdir, log)
  print(json.dumps(result, indent=2))
  return result


if __name__ == "__main__":
  main()
