"""``SyntheticSet``: a condensed training set that carries everything needed to reuse it."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import numpy as np

from dcjax import checkpoint, io
from dcjax.data.preprocessing import Preprocessing


@flax.struct.dataclass
class SyntheticSet:
  """images: (num_classes * ipc, H, W, C) float32 in the source dataset's normalised space,
  class-major (class c holds rows c*ipc .. c*ipc+ipc-1). labels: (num_classes * ipc,) int32,
  or (num_classes * ipc, num_classes) float32 soft labels for condensers that learn them
  (FRePo: regression targets, trained on with the MSE loss).
  init_indices: (num_classes * ipc,) int32 pool indices of the real images each synthetic
  image started from (-1 for noise init). ``config`` is the method's frozen config.
  """

  images: jax.Array
  labels: jax.Array
  init_indices: jax.Array
  preprocessing: Preprocessing
  num_classes: int = flax.struct.field(pytree_node=False)
  ipc: int = flax.struct.field(pytree_node=False)
  method: str = flax.struct.field(pytree_node=False)
  init: str = flax.struct.field(pytree_node=False)
  config: Any = flax.struct.field(pytree_node=False, default=None)
  seed: int | None = flax.struct.field(pytree_node=False, default=None)
  source: str = flax.struct.field(pytree_node=False, default="")

  def hard_labels(self) -> np.ndarray:
    """(num_classes * ipc,) int labels: the labels, or the argmax of soft ones."""
    labels = np.asarray(self.labels)
    return labels.argmax(-1).astype(np.int32) if labels.ndim == 2 else labels

  def pixels(self) -> np.ndarray:
    """The images mapped back to pixel space (not clipped)."""
    return np.asarray(self.preprocessing.invert(self.images))

  def privacy(self) -> dict | None:
    """The set's (epsilon, delta)-DP guarantee, for sets of a differentially private condenser
    (configs with ``guarantee()``): the PLD accountant's epsilon at the config's delta and the
    accounted mechanism; None for the others (and for configs loaded back as dicts)."""
    if not hasattr(self.config, "guarantee"):
      return None
    return self.config.guarantee().to_json()

  def metadata(self) -> dict:
    return {"num_classes": self.num_classes, "ipc": self.ipc, "method": self.method,
            "init": self.init, "config": io.to_jsonable(self.config), "seed": self.seed,
            "source": self.source, "preprocessing": self.preprocessing.to_json(),
            "privacy": self.privacy()}


def class_major_labels(num_classes: int, ipc: int) -> np.ndarray:
  return np.repeat(np.arange(num_classes, dtype=np.int32), ipc)


def _stage(path: str) -> checkpoint.Stage:
  """A synthetic set is a stage: ``path/arrays`` (Orbax) then ``path/metadata.json`` (its
  payload is the metadata), read back whatever produced it."""
  return checkpoint.Stage(path, marker="metadata.json", tree="arrays")


def synset_complete(path: str) -> bool:
  """True when ``path`` holds a set whose save finished (its metadata.json is written last)."""
  return _stage(path).exists()


def save_synthetic_set(path: str, synset: SyntheticSet) -> None:
  """Writes ``path/arrays`` (Orbax) then ``path/metadata.json``; the JSON marks completeness."""
  arrays = {"images": np.asarray(synset.images), "labels": np.asarray(synset.labels),
            "init_indices": np.asarray(synset.init_indices)}
  if synset.preprocessing.zca is not None:
    arrays["zca"] = np.asarray(synset.preprocessing.zca)
    arrays["zca_inverse"] = np.asarray(synset.preprocessing.zca_inverse)
  _stage(path).save(arrays, synset.metadata())


def load_synthetic_set(path: str) -> SyntheticSet:
  """Loads a set written by ``save_synthetic_set`` (config comes back as a plain dict)."""
  stage = _stage(path)
  loaded = stage.load()
  if loaded is None:
    raise FileNotFoundError(f"{stage.path} holds no complete synthetic set (no metadata.json); "
                            "it may be missing or half-written.")
  meta, arrays = loaded.payload, loaded.tree
  missing = [k for k in ("preprocessing", "num_classes", "ipc", "method", "init", "config",
                         "seed", "source") if not isinstance(meta, dict) or k not in meta]
  if missing:
    raise checkpoint.CorruptArtefactError(
        f"{stage.marker} lacks {missing}: it is not a synthetic set's metadata.")
  pre = meta["preprocessing"]
  preprocessing = Preprocessing(mean=tuple(pre["mean"]), std=tuple(pre["std"]),
                                zca=arrays.get("zca"), zca_inverse=arrays.get("zca_inverse"))
  return SyntheticSet(images=arrays["images"], labels=arrays["labels"],
                      init_indices=arrays["init_indices"], preprocessing=preprocessing,
                      num_classes=meta["num_classes"], ipc=meta["ipc"], method=meta["method"],
                      init=meta["init"], config=meta["config"], seed=meta["seed"],
                      source=meta["source"])
