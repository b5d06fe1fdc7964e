"""Orbax checkpoints that refuse to mix runs: each directory is bound to one config fingerprint.

Layout of a checkpoint directory:
    fingerprint.json   dcjax's marker with the config, seed and data identity of the run
    steps/<step>/      Orbax pytree checkpoints (Orbax finalises each one atomically)
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from dcjax import workdir
from dcjax.io import canonical  # noqa: F401  (re-exported: fingerprints compare in JSON form)
from dcjax.workdir import ConfigMismatchError, CorruptArtefactError  # noqa: F401


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


def bind_directory(directory: str, fingerprint: dict[str, Any], overwrite: bool = False) -> str:
  """Claims ``directory`` for the step checkpoints of ``fingerprint`` (see ``dcjax.workdir``):
  a directory that dcjax did not write is refused; ``overwrite`` discards only its ``steps``."""
  return workdir.claim(directory, fingerprint, owned=("steps",), recompute=overwrite)


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
      raise CorruptArtefactError(
          f"Checkpoint {self.directory}/{step} does not match the expected structure or is "
          f"corrupt ({type(err).__name__}: {err}). Nothing was overwritten; use --recompute "
          "(overwrite=True) to discard the checkpoints and start over.") from err

  def close(self) -> None:
    self._manager.close()


def save_tree(path: str, tree: Any) -> None:
  """Saves one pytree at ``path`` (absolute, atomic), replacing what was there."""
  path = os.path.abspath(path)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(path, tree, force=True)
    ckptr.wait_until_finished()


def load_tree(path: str, template: Any | None = None) -> Any:
  """Restores the pytree saved at ``path``; a missing or damaged tree raises
  CorruptArtefactError naming ``path``."""
  path = os.path.abspath(path)
  ckptr = ocp.StandardCheckpointer()
  try:
    tree = ckptr.restore(path, template)
  except Exception as err:  # orbax raises several types for missing or damaged files
    # Not closed on failure: closing stops Orbax's event loop while reads of the damaged
    # file are still pending, and their callbacks then print tracebacks from a thread.
    raise CorruptArtefactError(
        f"{path} cannot be read back ({type(err).__name__}: {str(err)[:200]}). It is corrupt "
        "or truncated; rerun with --recompute (recompute=True) to discard it and start "
        "over.") from err
  ckptr.close()
  return tree
