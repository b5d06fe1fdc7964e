"""The condensers by name. A new condenser is one module (its config, preset, state and step)
plus one entry here, or one ``register_condenser`` call from anywhere (a notebook, a test).

A condenser's config is a frozen dataclass with at least ``iterations``, ``batch_real`` (real
images per class per iteration), ``net`` and ``init_scheme``; its ``step`` is

    step(net, cfg, num_classes, batch_real, images, opt_state, key, pool_x, pool_y, mask)
        -> (images, opt_state, loss)

on images (num_classes * ipc, H, W, C), drawing every random number from ``key``.

A condenser with ``setup`` (MTT: expert trajectories) computes a per-run context once, before
the first iteration, as a stage of the run, and its ``step`` takes it as an eleventh argument:

    setup(keys (M,), net, cfg, pool_x, pool_y, masks (M, N), progress) -> context, leading M axis

A condenser with ``labels`` learns its labels (FRePo): ``labels(cfg, opt_state)`` gives the
released set's soft labels (num_classes * ipc, num_classes), and ``train_loss`` is the loss a
network is trained with on its sets ("mse" for FRePo's regression targets).

A differentially private condenser also has ``prepare(config, labels, num_classes, masks)``,
which fits its config to the IN examples of the runs (sampling, static shapes, the noise
calibrated to the config's epsilon), and its prepared config has ``guarantee()``, what every
run provably is (``dcjax.privacy.accounting.Guarantee``: the accounted mechanism and delta).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from dcjax import checks
from dcjax.condense import common, dc, dm, dpdc, frepo, mtt


@dataclasses.dataclass(frozen=True)
class Condenser:
  name: str
  config_class: type
  preset: Callable[[int], Any]  # ipc -> the reference config
  init_state: Callable[[Any, Any], Any]  # (config, images) -> optimiser state
  step: Callable
  default_init: str = "real"
  inits: tuple[str, ...] = common.INITS
  # True: ``pure_step`` (or ``step`` itself) is one pure jittable function, so
  # ``condense_many`` can vmap it over runs and scan it over iterations; False: runs go one
  # after another (loop strategy)
  vectorised: bool = False
  summary: str = ""
  # the same iteration as ``step`` as one traceable function, for condensers whose ``step`` is
  # driven from Python (DC/DSA: the CPU path); None: ``step`` is already pure
  pure_step: Callable | None = None
  # differentially private condensers: (config, labels (N,), num_classes, masks (M, N) or
  # None) -> the config fitted to those runs' IN examples, with its noise calibrated
  prepare: Callable | None = None
  # per-run context computed once before the iterations (see the module docstring)
  setup: Callable | None = None
  # learned labels: (config, opt_state) -> (num_classes * ipc, num_classes); None: one-hot
  labels: Callable | None = None
  train_loss: str = "xent"  # TrainConfig.loss for networks trained on this condenser's sets
  # True: init_state(config, images, key, net, num_classes), for condensers whose state holds
  # networks of their own (FRePo's online pool); False: init_state(config, images)
  init_with_net: bool = False

  def initial_state(self, cfg, images, key, net, num_classes: int):
    """The optimisation state of a run that starts from ``images``."""
    if self.init_with_net:
      return self.init_state(cfg, images, key, net, num_classes)
    return self.init_state(cfg, images)

  @property
  def private(self) -> bool:
    return self.prepare is not None

  def prepared(self, cfg, labels, num_classes: int, masks=None):
    """``cfg`` ready for runs with IN examples ``masks`` (unchanged for non-private ones)."""
    return cfg if self.prepare is None else self.prepare(cfg, labels, num_classes, masks)

  @property
  def traceable_step(self) -> Callable:
    return self.pure_step or self.step


_CONDENSERS: dict[str, Condenser] = {}


def register_condenser(condenser: Condenser, replace: bool = False) -> Condenser:
  if condenser.name in _CONDENSERS and not replace:
    raise ValueError(f"A condenser named {condenser.name!r} is already registered.")
  unknown = set(condenser.inits) - set(common.INITS)
  if unknown or condenser.default_init not in condenser.inits:
    raise ValueError(f"Condenser {condenser.name!r}: inits {condenser.inits} and default "
                     f"{condenser.default_init!r} must come from {list(common.INITS)}.")
  _CONDENSERS[condenser.name] = condenser
  return condenser


def get_condenser(name: str) -> Condenser:
  checks.one_of(name, condenser_names(), "condensation method")
  return _CONDENSERS[name]


def condenser_names() -> list[str]:
  return sorted(_CONDENSERS)


register_condenser(Condenser(
    "dm", dm.DMConfig, dm.preset, dm.init_state, dm.step, "real", vectorised=True,
    summary="distribution matching (Zhao & Bilen 2023)"))
register_condenser(Condenser(
    "dc", dc.DCConfig, dc.preset, dc.init_state, dc.step, "noise", vectorised=True,
    summary="gradient matching (Zhao et al. 2021)", pure_step=dc.pure_step))
register_condenser(Condenser(
    "dsa", dc.DCConfig, dc.dsa_preset, dc.init_state, dc.step, "real", vectorised=True,
    summary="gradient matching with Siamese augmentation (Zhao & Bilen 2021)",
    pure_step=dc.pure_step))
register_condenser(Condenser(
    "mtt", mtt.MTTConfig, mtt.preset, mtt.init_state, mtt.step, "real", vectorised=True,
    setup=mtt.setup, summary="matching training trajectories (Cazenavette et al. 2022)"))
register_condenser(Condenser(
    "frepo", frepo.FRePoConfig, frepo.preset, frepo.init_state, frepo.step, "real",
    vectorised=True, labels=frepo.released_labels, train_loss="mse", init_with_net=True,
    summary="neural feature regression with learned labels (Zhou et al. 2022)"))
register_condenser(Condenser(
    "ndpdc", dpdc.NDPDCConfig, dpdc.ndpdc_preset, common.init_state, dpdc.ndpdc_step, "noise",
    inits=("noise",), vectorised=True, prepare=dpdc.prepare,
    summary="DP distribution matching: noisy clipped class embeddings (Zheng & Li)"))
register_condenser(Condenser(
    "ldpdc", dpdc.LDPDCConfig, dpdc.ldpdc_preset, dpdc.ldpdc_init_state, dpdc.ldpdc_step,
    "noise", inits=("noise",), vectorised=True, prepare=dpdc.prepare,
    summary="DP noisy means of Poisson samples per class (Zheng & Li)"))
