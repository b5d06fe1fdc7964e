"""Output directories that dcjax owns: bound to a fingerprint, never mixed with someone else's.

A directory is dcjax's only if it holds dcjax's marker, ``fingerprint.json`` with a ``"dcjax"``
key (the version that wrote it) and the fingerprint of what it holds. ``claim`` is the one gate
every ``--out`` and checkpoint directory goes through:

* a new or empty directory is created and marked;
* a marked directory with the same fingerprint is resumed (temporaries that a killed process
  left behind are swept first);
* a non-empty directory without the marker is refused, with or without ``recompute``, and
  nothing in it is touched;
* ``recompute`` removes only the entries the caller names as its own (``owned``), and never in
  ``/``, the home directory or the current working directory.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from typing import Any, Iterable

import dcjax
from dcjax.errors import RuntimeRefusal
from dcjax.io import canonical, write_json_atomic

MARKER = "fingerprint.json"
# what an atomic write or an Orbax save leaves behind when the process is killed mid-way
TEMPORARY_PATTERNS = (".tmp-*", "*.orbax-checkpoint-tmp*")


class ForeignDirectoryError(RuntimeRefusal):
  """The directory holds files that dcjax did not write."""


class ConfigMismatchError(RuntimeRefusal):
  """A directory or stage holds artefacts of a different configuration."""


class CorruptArtefactError(RuntimeRefusal):
  """A stored artefact cannot be read back."""


RECOMPUTE_HINT = "Rerun with --recompute (recompute=True) to discard it and start over."


def read_json(path: str, what: str, keys: tuple[str, ...] = (),
              remedy: str = RECOMPUTE_HINT) -> Any:
  """The JSON at ``path`` (a dict holding ``keys``); anything unreadable raises
  CorruptArtefactError naming the file, ``what`` it is and the remedy."""
  try:
    with open(path) as f:
      stored = json.load(f)
    missing = [k for k in keys if k not in stored]
  except (OSError, ValueError, TypeError) as err:
    raise CorruptArtefactError(f"{path} cannot be read ({type(err).__name__}: {err}); {what} "
                               f"is damaged. {remedy}") from err
  if missing:
    raise CorruptArtefactError(f"{path} lacks {missing}; {what} is damaged. {remedy}")
  return stored


def read_marker(directory: str) -> dict | None:
  """The marker's content, or None when ``directory`` holds no dcjax marker."""
  path = os.path.join(directory, MARKER)
  if not os.path.isfile(path):
    return None
  stored = read_json(path, "the directory's marker", remedy="Use another --out, or delete the "
                     "directory yourself.")
  if not isinstance(stored, dict) or "dcjax" not in stored or "fingerprint" not in stored:
    return None
  return stored


def _describe(entries: list[str]) -> str:
  shown = ", ".join(sorted(entries)[:5])
  return shown + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")


def _refuse_dangerous(directory: str) -> None:
  real = os.path.realpath(directory)
  for what, path in (("the filesystem root", os.path.sep), ("the home directory",
                                                             os.path.expanduser("~")),
                     ("the current working directory", os.getcwd())):
    if real == os.path.realpath(path):
      raise ForeignDirectoryError(
          f"Refusing to recompute in {directory}: it is {what}. Give --out a directory of "
          "its own.")


def _matches(name: str, patterns: Iterable[str]) -> bool:
  return any(fnmatch.fnmatch(name, p) for p in patterns)


def is_temporary(name: str) -> bool:
  """True for the name of what a killed atomic write or Orbax save leaves behind."""
  return _matches(name, TEMPORARY_PATTERNS)


def sweep_temporaries(directory: str) -> list[str]:
  """Removes what killed writers left under ``directory`` (a dcjax-owned tree); returns them."""
  removed = []
  for root, dirs, files in os.walk(directory):
    for name in list(dirs) + files:
      if is_temporary(name):
        path = os.path.join(root, name)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        removed.append(path)
        if name in dirs:
          dirs.remove(name)
  return removed


def claim(directory: str, fingerprint: dict[str, Any], owned: Iterable[str],
          recompute: bool = False) -> str:
  """Binds ``directory`` to ``fingerprint``; returns its absolute path.

  owned: the names (fnmatch patterns) of the entries the caller writes there; ``recompute``
  removes those and nothing else. Raises ForeignDirectoryError for a directory that is not
  dcjax's, ConfigMismatchError for one of another configuration (unless ``recompute``).
  """
  directory = os.path.abspath(directory)
  owned = (MARKER, *owned)
  if os.path.exists(directory) and not os.path.isdir(directory):
    raise ForeignDirectoryError(f"{directory} is a file; expected a directory for the output.")
  entries = os.listdir(directory) if os.path.isdir(directory) else []
  stored = read_marker(directory) if entries else None
  if entries and stored is None:
    raise ForeignDirectoryError(
        f"{directory} is not empty and is not a dcjax directory (no {MARKER} with a 'dcjax' "
        f"key); it holds {_describe(entries)}. Nothing was touched: choose a new or empty "
        "directory.")
  fingerprint = canonical(fingerprint)
  if stored is not None and stored["fingerprint"] == fingerprint and not recompute:
    sweep_temporaries(directory)
    return directory
  if stored is not None and not recompute:
    diff = sorted(k for k in set(stored["fingerprint"]) | set(fingerprint)
                  if stored["fingerprint"].get(k) != fingerprint.get(k))
    detail = "; ".join(f"{k}: stored {stored['fingerprint'].get(k)!r} vs requested "
                       f"{fingerprint.get(k)!r}" for k in diff[:4])
    raise ConfigMismatchError(
        f"{directory} holds a run with a different configuration ({detail}). Use another "
        "directory, or --recompute (recompute=True) to discard dcjax's files there.")
  if stored is not None:  # recompute: remove dcjax's own entries only
    _refuse_dangerous(directory)
    for name in entries:
      if _matches(name, owned) or is_temporary(name):
        path = os.path.join(directory, name)
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) \
            else os.remove(path)
  os.makedirs(directory, exist_ok=True)
  write_json_atomic(os.path.join(directory, MARKER),
                    {"dcjax": dcjax.__version__, "fingerprint": fingerprint})
  return directory
