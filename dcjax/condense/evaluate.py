"""Evaluating a synthetic set by the DC protocol: fresh networks trained on it, final accuracy."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from dcjax import key_tree
from dcjax.augment import strategy_for
from dcjax.condense.registry import condenser_names, get_condenser
from dcjax.condense.synthetic_set import SyntheticSet
from dcjax.data.dataset import Dataset
from dcjax.nets import default_net, get_net
from dcjax.train import TrainConfig, accuracy, predict_many, train_many


def protocol_config(dataset_name: str, dsa: bool = True, epochs: int | None = None,
                    **overrides) -> TrainConfig:
  """The reference evaluation: 1000 epochs with (non-Siamese) DSA, 300 without."""
  epochs = epochs or (1000 if dsa else 300)
  augment = strategy_for(dataset_name) if dsa else None
  return TrainConfig(epochs=epochs, augment=augment, **overrides)


# DC's reference evaluates without augmentation (300 epochs), except on MNIST, where it trains
# 1000 epochs with its own crop_scale_rotate; DSA and DM evaluate with their DSA strategy.
DC_MNIST_AUGMENT = "crop_scale_rotate"


def reference_eval_config(method: str, dataset_name: str, epochs: int | None = None,
                          dsa: bool | None = None, **overrides) -> TrainConfig:
  """How the reference evaluates a set condensed by ``method``. ``dsa`` (None: by method)
  overrides whether evaluation networks train with non-Siamese DSA. Condensers that learn
  their labels set the loss (FRePo: MSE to the learned rows)."""
  if method in condenser_names() and "loss" not in overrides:
    overrides["loss"] = get_condenser(method).train_loss
  if dsa is None and method == "dc":
    if dataset_name == "mnist":
      return TrainConfig(epochs=epochs or 1000, augment=DC_MNIST_AUGMENT, **overrides)
    dsa = False
  return protocol_config(dataset_name, dsa=True if dsa is None else dsa, epochs=epochs,
                         **overrides)


def evaluate(key: jax.Array, train_set: SyntheticSet | Dataset, test_set: Dataset,
             nets: tuple[str, ...] | None = None, num_models: int = 5,
             train_cfg: TrainConfig | None = None, progress: bool = False,
             init_scheme: str = "torch") -> dict:
  """Trains ``num_models`` fresh networks of each architecture (default: ``default_net``),
  initialised as the reference's PyTorch networks (``init_scheme="torch"``) or by Flax.

  Returns {net: {"accuracies": [...], "mean": m, "std": s}} of the FINAL test accuracy.
  """
  if num_models < 1:
    raise ValueError(f"num_models must be >= 1, got {num_models}.")
  cfg = train_cfg or protocol_config(test_set.name)
  nets = nets or (default_net(test_set.image_shape),)
  results = {}
  for i, name in enumerate(nets):
    net = get_net(name, test_set.num_classes, init_scheme=init_scheme)
    keys = jax.random.split(key_tree.step(key, i), num_models)
    stacked = train_many(keys, net, train_set.images, train_set.labels, cfg, progress=progress)
    accs = np.asarray(accuracy(predict_many(net, stacked, test_set.images), test_set.labels))
    results[name] = {"accuracies": accs.tolist(), "mean": float(accs.mean()),
                     "std": float(accs.std()), "train_config": dataclasses.asdict(cfg),
                     "init_scheme": init_scheme}
  return results
