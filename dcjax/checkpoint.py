"""Orbax checkpoints that refuse to mix runs: each directory is bound to one config fingerprint.

Layout of a checkpoint directory:
    fingerprint.json   the config, seed and data identity of the run (written first, atomically)
    steps/<step>/      Orbax pytree checkpoints (Orbax finalises each one atomically)
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from dcjax.io import to_jsonable, write_json_atomic


class ConfigMismatchError(ValueError):
  """A directory holds artefacts of a different configuration."""


def array_digest(*arrays) -> str:
  """A short sha256 of the bytes, shapes and dtypes of host arrays."""
  h = hashlib.sha256()
  for a in arrays:
    if a is None:
      h.update(b"none")
      continue
    a = np.ascontiguousarray(np.asarray(a))
    h.update(str((a.shape, a.dtype.str)).encode())
    h.update(a.tobytes())
  return h.hexdigest()[:16]


def key_digest(key: jax.Array) -> list[int]:
  return np.asarray(jax.random.key_data(key)).ravel().tolist()


def canonical(fingerprint: dict[str, Any]) -> dict[str, Any]:
  """The fingerprint as it reads back from JSON, so stored and requested ones compare equal."""
  return json.loads(json.dumps(to_jsonable(fingerprint), sort_keys=True))


def bind_directory(directory: str, fingerprint: dict[str, Any], overwrite: bool = False) -> None:
  """Creates ``directory`` for ``fingerprint`` or checks that it already holds the same one."""
  directory = os.path.abspath(directory)
  path = os.path.join(directory, "fingerprint.json")
  fingerprint = canonical(fingerprint)
  if os.path.exists(path) and not overwrite:
    with open(path) as f:
      existing = json.load(f)
    if existing != fingerprint:
      diff = sorted(k for k in set(existing) | set(fingerprint)
                    if existing.get(k) != fingerprint.get(k))
      detail = "; ".join(f"{k}: stored {existing.get(k)!r} vs requested {fingerprint.get(k)!r}"
                         for k in diff[:6])
      raise ConfigMismatchError(
          f"{directory} holds a run with a different configuration ({detail}). Use another "
          "directory, or ask to recompute (overwrite) to discard it.")
    return
  if overwrite and os.path.isdir(directory):
    import shutil  # pylint: disable=import-outside-toplevel
    shutil.rmtree(directory)
  os.makedirs(directory, exist_ok=True)
  write_json_atomic(path, fingerprint)


class StepCheckpointer:
  """Saves and restores pytrees by step under ``directory/steps`` (keeps the last ``keep``)."""

  def __init__(self, directory: str, keep: int = 2):
    self.directory = os.path.join(os.path.abspath(directory), "steps")
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, tree: Any) -> None:
    self._manager.save(step, args=ocp.args.StandardSave(tree))
    self._manager.wait_until_finished()

  def restore(self, step: int, template: Any) -> Any:
    try:
      return self._manager.restore(step, args=ocp.args.StandardRestore(template))
    except Exception as err:  # orbax raises several types for corrupt or mismatched trees
      raise ConfigMismatchError(
          f"Checkpoint {self.directory}/{step} does not match the expected structure or is "
          f"corrupt ({type(err).__name__}: {err}).") from err

  def close(self) -> None:
    self._manager.close()


def save_tree(path: str, tree: Any) -> None:
  """Saves one pytree at ``path`` (absolute, atomic), replacing what was there."""
  path = os.path.abspath(path)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(path, tree, force=True)
    ckptr.wait_until_finished()


def load_tree(path: str, template: Any | None = None) -> Any:
  with ocp.StandardCheckpointer() as ckptr:
    return ckptr.restore(os.path.abspath(path), template)
