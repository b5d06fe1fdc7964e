"""``TrainConfig``: the evaluation protocol of the DC papers as a frozen, hashable config."""

from __future__ import annotations

import dataclasses
import math

from dcjax import checks
from dcjax.augment import parse_strategy

STRATEGIES = ("auto", "loop", "scan")
COMPUTE_DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How a fresh network is trained on a (synthetic or real) training set.

  Defaults are the DC/DSA/DM evaluation protocol (REFERENCE section 5): SGD lr 0.01, momentum
  0.9, weight decay 5e-4 (on every parameter, as torch's SGD does), batch 256; epochs 1 ..
  ``epochs // 2 + 1`` (1-based) at lr, the rest at lr x 0.1 (the reference code decays once
  at that epoch and trains one extra epoch; here ``epochs`` is the total). The papers use 1000 epochs with DSA augmentation and 300
  without; accuracy is the FINAL model's, never a checkpoint picked on test data.

  augment: a DSA strategy string applied non-Siamese (per-sample parameters), or None.
  microbatch: split each batch into chunks of this size and sum their gradients (same maths
    for networks without BatchNorm; faster on CPU). 0 picks per backend; None disables.
  strategy: "loop" (Python-driven steps, models one after another: the fast path on CPU),
    "scan" (the whole run in lax.scan, vmapped over models: the fast path on GPU/TPU), or
    "auto" (by backend).
  models_per_chunk: models trained together under vmap by the "scan" strategy.
  compute_dtype: "float32", or "bfloat16" for mixed precision on GPU/TPU: the forward and
    backward passes in bfloat16, parameters, optimizer state, BatchNorm statistics and the loss
    in float32. On CPU bfloat16 is emulated and slower.
  """

  epochs: int = 300
  batch_size: int = 256
  lr: float = 0.01
  momentum: float = 0.9
  weight_decay: float = 5e-4
  decay_epoch: int | None = None
  augment: str | None = None
  microbatch: int | None = 0
  strategy: str = "auto"
  models_per_chunk: int = 16
  compute_dtype: str = "float32"

  def __post_init__(self):
    checks.positive_ints(self, "epochs", "batch_size", "models_per_chunk")
    checks.positive_finite(self, "lr")
    checks.in_unit_interval(self, "momentum")
    if not math.isfinite(self.weight_decay) or self.weight_decay < 0:
      raise ValueError(f"TrainConfig.weight_decay must be a finite number >= 0, got "
                       f"{self.weight_decay!r}.")
    if self.strategy not in STRATEGIES:
      raise ValueError(f"TrainConfig.strategy must be one of {STRATEGIES}, got "
                       f"{self.strategy!r}.")
    if self.compute_dtype not in COMPUTE_DTYPES:
      raise ValueError(f"TrainConfig.compute_dtype must be one of {COMPUTE_DTYPES}, got "
                       f"{self.compute_dtype!r}.")
    if self.microbatch is not None and (not isinstance(self.microbatch, int)
                                        or self.microbatch < 0):
      raise ValueError(f"TrainConfig.microbatch must be None or an int >= 0, got "
                       f"{self.microbatch!r}.")
    if self.augment is not None:
      parse_strategy(self.augment)

  @property
  def lr_decay_epoch(self) -> int:
    """First epoch (0-based) trained at lr x 0.1."""
    return self.epochs // 2 + 1 if self.decay_epoch is None else self.decay_epoch
