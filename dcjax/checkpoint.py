"""The one stage mechanism: artefacts bound to the fingerprint of what produced them.

A **stage** (``Stage``) is one artefact in a directory: optional arrays (an Orbax tree) plus a
JSON marker holding its fingerprint, its code version and an optional JSON payload, written
last and atomically. A stage exists when its marker does; ``load`` returns it when the
fingerprint matches and refuses (or, for derived artefacts, discards) it when it does not. Every
artefact of dcjax goes through it: run stages, synthetic sets, the audit's recipe summaries.

A **step checkpoint directory** (``bind_directory`` + ``StepCheckpointer``) holds the steps of
one long computation (a condensation), bound to its fingerprint by ``dcjax.workdir.claim``:
    fingerprint.json   dcjax's marker with the config, seed and data identity of the run
    steps/<step>/      Orbax pytree checkpoints (Orbax finalises each one atomically)
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io as stdio
import os
import shutil
import sys
import time
from typing import Any

import flax.traverse_util
import jax
import numpy as np
import orbax.checkpoint as ocp

from dcjax import io, workdir
from dcjax.workdir import ConfigMismatchError, CorruptArtefactError

__all__ = ["ConfigMismatchError", "CorruptArtefactError", "Loaded", "Stage", "StepCheckpointer",
           "array_digest", "bind_directory", "key_digest", "load_tree", "save_tree"]


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
  a directory that dcjax did not write is refused; ``overwrite`` discards only its ``steps``
  and ``context`` (a condenser's per-run setup stage, such as MTT's expert trajectories)."""
  return workdir.claim(directory, fingerprint, owned=("steps", "context"), recompute=overwrite)


NPZ_TREE = "arrays.npz"  # a stage tree written by one of several processes


def _several_processes() -> bool:
  return jax.process_count() > 1


def _save_npz_tree(path: str, tree: Any) -> None:
  """Several processes (``dcjax.distributed``): each writes its own runs' stages alone, which
  Orbax's multi-host writer (one checkpoint coordinated across all processes) does not do; the
  stage tree (nested dicts of arrays) goes to ``path/arrays.npz`` instead, atomically."""
  flat = flax.traverse_util.flatten_dict(jax.device_get(tree), sep="/")
  with io.atomic_path(os.path.join(path, NPZ_TREE)) as tmp:
    np.savez(tmp, **{k: np.asarray(v) for k, v in flat.items()})


def _load_npz_tree(path: str) -> Any:
  with np.load(os.path.join(path, NPZ_TREE)) as data:
    return flax.traverse_util.unflatten_dict({k: data[k] for k in data.files}, sep="/")


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
  if _several_processes():
    _save_npz_tree(path, tree)
    return
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(path, tree, force=True)
    ckptr.wait_until_finished()


_FAILED_RESTORES: list = []
_CLOSED_LOOP = "RuntimeError: Event loop is closed"


def _drain_failed_reads(seconds: float = 0.5) -> None:
  """After a failed restore Orbax's event loop is gone while the reads of the other chunks of the
  damaged file are still in flight; as each completes, its callback prints a traceback ending in
  ``RuntimeError: Event loop is closed`` (through ``sys.stderr``, from a reader thread). Let them
  finish for ``seconds`` with stderr captured, drop those tracebacks and pass anything else on,
  so that the error the caller raises next is not followed by that noise."""
  captured = stdio.StringIO()
  with contextlib.redirect_stderr(captured):
    time.sleep(seconds)
  text = captured.getvalue()
  errors = [line for line in text.splitlines()
            if line and not line.startswith((" ", "Traceback"))]
  if any(line != _CLOSED_LOOP for line in errors):
    sys.stderr.write(text)


def load_tree(path: str, template: Any | None = None) -> Any:
  """Restores the pytree saved at ``path``; a missing or damaged tree raises
  CorruptArtefactError naming ``path``."""
  path = os.path.abspath(path)
  if os.path.exists(os.path.join(path, NPZ_TREE)):  # written by one of several processes
    return _load_npz_tree(path)
  ckptr = ocp.StandardCheckpointer()
  try:
    tree = ckptr.restore(path, template)
  except Exception as err:  # orbax raises several types for missing or damaged files
    # Not closed on failure, and kept referenced: closing (explicitly, or by the garbage
    # collector once the error is handled) stops Orbax's event loop while reads of the damaged
    # file are still pending, and their callbacks then print tracebacks from a thread.
    _FAILED_RESTORES.append(ckptr)
    _drain_failed_reads()
    raise CorruptArtefactError(
        f"{path} cannot be read back ({type(err).__name__}: {str(err)[:200]}). It is corrupt "
        "or truncated; rerun with --recompute (recompute=True) to discard it and start "
        "over.") from err
  ckptr.close()
  return tree


@dataclasses.dataclass(frozen=True)
class Loaded:
  """A stage read back: its arrays (None if it has none) and its JSON payload."""

  tree: Any
  payload: Any


class Stage:
  """One artefact under ``path``: ``path/<tree>`` (Orbax, optional) and ``path/<marker>``.

  fingerprint: what the artefact is a function of (configs, key, data digests); None only to
  read a stage whatever produced it. The marker is removed before an artefact is replaced and
  written after it, so a stage killed mid-save does not exist.
  """

  def __init__(self, path: str, fingerprint: Any = None, marker: str = "stage.json",
               tree: str | None = "tree"):
    self.path = os.path.abspath(path)
    self.fingerprint = None if fingerprint is None else io.canonical(fingerprint)
    self.marker = os.path.join(self.path, marker)
    self.tree_path = None if tree is None else os.path.join(self.path, tree)

  def exists(self) -> bool:
    return os.path.isfile(self.marker)

  def load(self, on_mismatch: str = "refuse") -> Loaded | None:
    """The stage if it exists and matches; None if it does not exist.

    on_mismatch: "refuse" raises ConfigMismatchError (an artefact of another configuration is
    never silently replaced); "redo" discards it and returns None (for artefacts derived from
    other stages, such as summaries).
    """
    if on_mismatch not in ("refuse", "redo"):
      raise ValueError(f"on_mismatch must be 'refuse' or 'redo', got {on_mismatch!r}.")
    if not self.exists():
      return None
    stored = workdir.read_json(self.marker, "the stage's marker",
                               keys=("fingerprint", "payload", "has_tree"))
    if self.fingerprint is not None and stored["fingerprint"] != self.fingerprint:
      if on_mismatch == "redo":
        self.discard()
        return None
      raise ConfigMismatchError(
          f"{self.path} was computed with another configuration; pass recompute=True "
          "(--recompute) to redo it, or use another directory.")
    tree = load_tree(self.tree_path) if stored["has_tree"] else None
    return Loaded(tree, stored["payload"])

  def save(self, tree: Any = None, payload: Any = None) -> Loaded:
    """Publishes the artefact: arrays first, then the marker (atomically)."""
    if tree is not None and self.tree_path is None:
      raise ValueError(f"The stage {self.marker} holds JSON only, not arrays.")
    self.discard()
    if tree is not None:
      save_tree(self.tree_path, tree)
    io.write_json_atomic(self.marker, {"fingerprint": self.fingerprint, "payload": payload,
                                       "has_tree": tree is not None,
                                       "code_version": io.code_version()})
    return Loaded(tree, io.canonical(payload))

  def discard(self) -> None:
    if os.path.exists(self.marker):
      os.remove(self.marker)
    if self.tree_path is not None and os.path.isdir(self.tree_path):
      shutil.rmtree(self.tree_path)

  def load_or_compute(self, compute, recompute: bool = False) -> Any:
    """The stage's tree if it matches, else ``compute()`` saved as this stage. ``recompute``
    replaces a stage of another configuration instead of refusing it."""
    loaded = self.load("redo" if recompute else "refuse")
    if loaded is not None:
      return loaded.tree
    return self.save(compute()).tree
