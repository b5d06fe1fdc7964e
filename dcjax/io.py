"""Small, atomic file writes for results (JSON) with the provenance every artefact carries."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import re
import subprocess
import tempfile
from typing import Any

import jax
import numpy as np

import dcjax


def code_version() -> str:
  """dcjax version plus the git commit of the source tree, when there is one."""
  try:
    here = os.path.dirname(os.path.abspath(dcjax.__file__))
    commit = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, timeout=5, check=False).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    commit = ""
  return f"{dcjax.__version__}+{commit}" if commit else dcjax.__version__


def machine() -> dict[str, Any]:
  return {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
          "cpu_count": os.cpu_count(), "platform": platform.platform(),
          "jax": jax.__version__, "xla_flags": os.environ.get("XLA_FLAGS", "")}


def to_jsonable(obj: Any) -> Any:
  if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
    return {k: to_jsonable(v) for k, v in dataclasses.asdict(obj).items()}
  if isinstance(obj, dict):
    return {str(k): to_jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [to_jsonable(v) for v in obj]
  if hasattr(obj, "tolist"):
    return obj.tolist()
  return obj


def canonical(payload: Any) -> Any:
  """``payload`` as it reads back from JSON, so stored and requested fingerprints compare
  equal."""
  return json.loads(json.dumps(to_jsonable(payload), sort_keys=True))


@contextlib.contextmanager
def atomic_path(path: str):
  """Yields a temporary path beside ``path`` (named ``.tmp-*``, which ``workdir`` sweeps after
  a kill); renames it into place when the block ends without error, else removes it."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-",
                             suffix=os.path.splitext(path)[1])
  os.close(fd)
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_text_atomic(path: str, text: str) -> None:
  with atomic_path(path) as tmp, open(tmp, "w") as f:
    f.write(text)


def write_json_atomic(path: str, payload: Any) -> None:
  """Writes JSON to a temporary file in the same directory, then renames it into place."""
  write_text_atomic(path, json.dumps(to_jsonable(payload), indent=2, sort_keys=True) + "\n")


def write_npz_atomic(path: str, arrays: dict) -> None:
  """``np.savez_compressed`` of ``arrays`` to a temporary file, then renamed into place."""
  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      np.savez_compressed(f, **arrays)


def slug(name: str) -> str:
  """A recipe name as a file-name part: 'condense(dm,10,real)' -> 'condense_dm_10_real'."""
  return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
