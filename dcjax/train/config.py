"""``TrainConfig``: the evaluation protocol of the DC papers as a frozen, hashable config."""

from __future__ import annotations

import dataclasses
import math

from dcjax import checks
from dcjax.augment import parse_strategy

STRATEGIES = ("auto", "loop", "scan")
COMPUTE_DTYPES = ("float32", "bfloat16")
SAMPLINGS = ("shuffle", "poisson")
LOSSES = ("xent", "mse")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How a fresh network is trained on a (synthetic or real) training set.

  Defaults are the DC/DSA/DM evaluation protocol (evaluate_synset in
  VICO-UoE/DatasetCondensation's utils.py): SGD lr 0.01, momentum
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
  sampling: "shuffle" (each epoch a random permutation of the IN examples cut into batches;
    the loss is the mean over the batch), or "poisson" (each step takes every IN example
    independently with rate q = min(1, batch_size / dataset_size), up to
    ``dcjax.privacy.mechanisms.poisson_capacity(q * dataset_size, ...)`` of them, a uniformly
    random subset when more are drawn; the loss is the sum over the batch divided by the
    constant q * dataset_size; ceil(dataset_size / batch_size) steps per epoch; every step
    updates, an empty batch too). Poisson sampling is what DP accounting assumes.
  dataset_size: the public training-set size n that fixes Poisson sampling's rate, normaliser
    and steps. It must not be computed from a run's own members (under add/remove adjacency
    that number is private, and the accountant assumes one q for neighbouring sets): the
    dpsgd recipe sets it from the pool and the keep-mask design. None: the largest training
    set of the job (without DP only). With shuffled batches it fixes the steps per epoch,
    ceil(dataset_size / batch_size) (None: the job's largest set), so that runs trained in
    separate jobs (several hosts) take the steps they would take together.
  loss: "xent" (softmax cross-entropy; with soft labels (N, C) against those rows) or "mse"
    (0.5 * the squared error of the logits to the label rows, integer labels as centred one-hot
    rows 1 - 1/C and -1/C: the loss FRePo trains and evaluates with on its learned labels).
  dp_clip: DP-SGD when set: every example's gradient is clipped to this L2 norm (inf: not
    clipped) before the batch's gradients are summed; ``dp_noise`` (the noise multiplier
    sigma) adds Gaussian noise of std sigma * dp_clip to the sum. Per-example gradients need
    networks without BatchNorm. The privacy of a run: ``dcjax.privacy.accounting``.
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
  sampling: str = "shuffle"
  dataset_size: int | None = None
  dp_clip: float | None = None
  dp_noise: float = 0.0
  loss: str = "xent"

  def __post_init__(self):
    checks.positive_ints(self, "epochs", "batch_size", "models_per_chunk")
    checks.positive_finite(self, "lr")
    checks.in_unit_interval(self, "momentum")
    if not math.isfinite(self.weight_decay) or self.weight_decay < 0:
      raise ValueError(f"TrainConfig.weight_decay must be a finite number >= 0, got "
                       f"{self.weight_decay!r}.")
    checks.field_one_of(self, "strategy", STRATEGIES)
    checks.field_one_of(self, "compute_dtype", COMPUTE_DTYPES)
    if self.microbatch is not None and (not isinstance(self.microbatch, int)
                                        or self.microbatch < 0):
      raise ValueError(f"TrainConfig.microbatch must be None or an int >= 0, got "
                       f"{self.microbatch!r}.")
    if self.augment is not None:
      parse_strategy(self.augment)
    checks.field_one_of(self, "loss", LOSSES)
    checks.field_one_of(self, "sampling", SAMPLINGS)
    if self.dp_clip is not None and not (isinstance(self.dp_clip, (int, float))
                                         and self.dp_clip > 0):
      raise ValueError(f"TrainConfig.dp_clip must be None or a number > 0 (inf: no "
                       f"clipping), got {self.dp_clip!r}.")
    if not (isinstance(self.dp_noise, (int, float)) and math.isfinite(self.dp_noise)
            and self.dp_noise >= 0):
      raise ValueError(f"TrainConfig.dp_noise must be a finite number >= 0, got "
                       f"{self.dp_noise!r}.")
    if self.dataset_size is not None:
      checks.positive_ints(self, "dataset_size")
    if self.is_dp and self.sampling == "poisson" and self.dataset_size is None:
      raise ValueError("TrainConfig: DP-SGD with Poisson sampling needs a public dataset_size "
                       "(the rate q = batch_size / dataset_size must not depend on a run's own "
                       "members); got dataset_size=None.")
    if self.dp_noise > 0 and (self.dp_clip is None or not math.isfinite(self.dp_clip)):
      raise ValueError(f"TrainConfig.dp_noise={self.dp_noise} needs a finite dp_clip (the "
                       f"noise std is dp_noise * dp_clip), got dp_clip={self.dp_clip!r}.")

  @property
  def is_dp(self) -> bool:
    return self.dp_clip is not None

  @property
  def poisson_rate(self) -> float:
    """q = min(1, batch_size / dataset_size) (Poisson sampling with a public size)."""
    if self.dataset_size is None:
      raise ValueError("TrainConfig.poisson_rate needs dataset_size.")
    return min(1.0, self.batch_size / self.dataset_size)

  def steps_per_epoch(self, largest_set: int) -> int:
    """ceil(n / batch_size) for n = dataset_size where declared, else the job's largest
    training set."""
    return math.ceil((self.dataset_size or largest_set) / self.batch_size)

  @property
  def lr_decay_epoch(self) -> int:
    """First epoch (0-based) trained at lr x 0.1."""
    return self.epochs // 2 + 1 if self.decay_epoch is None else self.decay_epoch
