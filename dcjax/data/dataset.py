"""The ``Dataset`` pytree and its validating constructor."""

from __future__ import annotations

import flax.struct
import jax
import numpy as np

from dcjax.data.preprocessing import Preprocessing, channel_stats, fit_zca


@flax.struct.dataclass
class Dataset:
  """A labelled image set, ready for a model.

  images: (N, H, W, C) float32, already normalised by ``preprocessing``.
  labels: (N,) int32 in [0, num_classes).
  """

  images: jax.Array
  labels: jax.Array
  preprocessing: Preprocessing
  num_classes: int = flax.struct.field(pytree_node=False)
  name: str = flax.struct.field(pytree_node=False, default="custom")

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.images.shape[1:])

  def __len__(self) -> int:
    return int(self.labels.shape[0])

  def subset(self, indices) -> "Dataset":
    """The examples at ``indices`` (host-side, any length)."""
    indices = np.asarray(indices)
    return self.replace(images=self.images[indices], labels=self.labels[indices])

  def check_compatible(self, other: "Dataset", what: str = "test set") -> None:
    """Raises unless ``other`` has this set's image shape, classes and preprocessing (a test
    split must be normalised with the training split's statistics)."""
    if other.image_shape != self.image_shape:
      raise ValueError(f"The {what} has images of shape {other.image_shape}; expected "
                       f"{self.image_shape}, as the pool's.")
    if other.num_classes != self.num_classes:
      raise ValueError(f"The {what} has {other.num_classes} classes; expected "
                       f"{self.num_classes}, as the pool's.")
    if other.preprocessing.to_json() != self.preprocessing.to_json():
      raise ValueError(f"The {what} is normalised differently from the pool (mean/std "
                       f"{other.preprocessing.mean}/{other.preprocessing.std} vs "
                       f"{self.preprocessing.mean}/{self.preprocessing.std}); build it with "
                       "from_arrays(..., preprocessing=pool.preprocessing).")

  def class_counts(self, mask=None) -> np.ndarray:
    """(num_classes,) number of examples per class, counting only ``mask`` if given."""
    labels = np.asarray(self.labels)
    if mask is not None:
      labels = labels[np.asarray(mask, bool)]
    return np.bincount(labels, minlength=self.num_classes)


def validate_arrays(images, labels, num_classes: int | None = None,
                    what: str = "images") -> tuple[np.ndarray, np.ndarray, int]:
  """Checks shapes, dtypes, label range and finiteness; returns numpy copies."""
  images = np.asarray(images)
  labels = np.asarray(labels)
  if images.ndim != 4:
    raise ValueError(f"{what} must have rank 4 (N, H, W, C), got shape {images.shape}.")
  if not np.issubdtype(images.dtype, np.floating):
    raise TypeError(f"{what} must be floating point (float32 pixels in [0, 1] or normalised), "
                    f"got dtype {images.dtype}; convert uint8 with images / 255.")
  if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
    raise ValueError(f"labels must have shape ({images.shape[0]},) to match {what}, "
                     f"got {labels.shape}.")
  if not np.issubdtype(labels.dtype, np.integer):
    raise TypeError(f"labels must be integers, got dtype {labels.dtype}.")
  if not np.all(np.isfinite(images)):
    bad = int(np.sum(~np.isfinite(images)))
    raise ValueError(f"{what} contain {bad} NaN or infinite values; expected finite pixels.")
  if num_classes is None:
    num_classes = int(labels.max()) + 1 if labels.size else 0
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"labels must lie in [0, {num_classes}), got range "
                     f"[{labels.min()}, {labels.max()}].")
  if num_classes < 2:
    raise ValueError(f"A classification dataset needs >= 2 classes, got {num_classes}.")
  return images.astype(np.float32), labels.astype(np.int32), int(num_classes)


def from_arrays(pixels, labels, num_classes: int | None = None, name: str = "custom",
                mean=None, std=None, zca: bool = False,
                preprocessing: Preprocessing | None = None) -> Dataset:
  """Builds a ``Dataset`` from (N, H, W, C) float pixels in [0, 1] and (N,) integer labels.

  The normalisation is ``preprocessing`` if given (use the training split's for a test split),
  else (mean, std) if given, else the per-channel statistics of ``pixels``. ``zca=True`` fits
  ZCA whitening on the normalised images.
  """
  pixels, labels, num_classes = validate_arrays(pixels, labels, num_classes, "pixels")
  if pixels.size and (pixels.min() < 0.0 or pixels.max() > 1.0):
    raise ValueError(f"pixels must lie in [0, 1], got range [{pixels.min():g}, "
                     f"{pixels.max():g}]" + ("; divide 0-255 images by 255." if
                                             pixels.max() > 1.5 else "."))
  if preprocessing is None:
    if mean is None or std is None:
      mean, std = channel_stats(pixels)
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    channels = pixels.shape[-1]
    if len(mean) != channels or len(std) != channels:
      raise ValueError(f"mean and std need {channels} entries (one per channel), got "
                       f"{len(mean)} and {len(std)}.")
    preprocessing = Preprocessing(mean=mean, std=std)
    if zca:
      z, zi = fit_zca(np.asarray(preprocessing.apply(pixels)))
      preprocessing = preprocessing.replace(zca=z, zca_inverse=zi)
  images = np.asarray(preprocessing.apply(pixels), np.float32)
  return Dataset(images=images, labels=labels, preprocessing=preprocessing,
                 num_classes=num_classes, name=name)
