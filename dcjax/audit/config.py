"""The audit as config-as-code: one flat frozen ``AuditConfig`` and named presets.

Every field is a command-line flag of ``experiments.audit`` (``--runs 32``), and every field
of every registered condenser's config is one too (``--dm.iterations 500``, kept in the field
``condensers``: ``dcjax.condense.settings``); a preset only fills the defaults. The condenser
and training configs of every recipe are derived from these fields by ``recipes`` and
``runs_config``, so the whole study is reproducible from the config and its seed. Recipes use
the one recipe syntax of ``dcjax.runs.recipes``, with ``ipc`` filled from the config where
left out; a condenser's config is its preset for the recipe's ipc, fitted to the dataset (its
network and DSA strategy), with ``cond_net`` and the settings of ``condensers``.
"""

from __future__ import annotations

import dataclasses

from dcjax import checks
from dcjax.augment import strategy_for
from dcjax.condense import dataset_preset, get_condenser
from dcjax.condense import settings as settings_lib
from dcjax.condense.settings import settings as condenser_settings
from dcjax.data import check_dataset_name
from dcjax.data.canaries import CANARY_KINDS
from dcjax.mia import ATTACKS, DEFAULT_ATTACKS
from dcjax.nets import NET_NAMES, default_net
from dcjax.nets.layers import INITS
from dcjax.runs import Condense, RandomSubset, Recipe, RunsConfig
from dcjax.runs.recipes import parse_list
from dcjax.train import TrainConfig
from dcjax.train.config import COMPUTE_DTYPES

DEFAULT_RECIPES = ("real,random_subset,init_only,condense(dm,init=real),condense(dm,init=noise),"
                   "condense(dsa,init=real),condense(dsa,init=noise)")
# The condensers at the default size, shortened from the reference presets to fit 2 CPU cores:
# DM, DC, DSA and NDPDC 200 / 30 / 30 / 200 iterations of 64 real images per class; MTT: per
# run num_experts experts trained for max_start_epoch - 1 + expert_epochs epochs, then 100
# iterations of 10 unrolled student steps (the paper: 5,000 x 30 with 100 experts, CIFAR-10;
# on digits and 2 CPU cores an iteration of 10 steps takes about 3 s per run), the student's
# initial step size the paper's ipc-1 value; FRePo: LAMB's step is relative to the images'
# norm, and the reference's 3e-4 moves them little in the few hundred iterations a CPU affords.
DEFAULT_CONDENSERS = condenser_settings(
    dm=dict(iterations=200, batch_real=64),
    dsa=dict(iterations=30, outer_loop=2, inner_loop=5, batch_real=64),
    dc=dict(iterations=30, outer_loop=2, inner_loop=5, batch_real=64),
    ndpdc=dict(iterations=200),
    mtt=dict(iterations=100, syn_steps=10, expert_epochs=2, max_start_epoch=5, num_experts=2,
             lr_syn_init=0.01),
    frepo=dict(iterations=200, batch_real=64, lr_img=3e-3))
# the default preset adds the DP yardstick: DP-SGD at epsilon 1, 2, 4, 8 and NDPDC at 4
DP_RECIPES = "dpsgd(1),dpsgd(2),dpsgd(4),dpsgd(8),condense(ndpdc,epsilon=4)"


@dataclasses.dataclass(frozen=True)
class AuditConfig:
  """What the audit runs. Sizes: ``runs`` runs per recipe over a pool of ``pool_size`` examples
  (None: the whole training split), each example IN for exactly half of the runs."""

  dataset: str = "digits"
  ipc: int = 10
  runs: int = 16
  pool_size: int | None = None
  seed: int = 0
  recipes: str = DEFAULT_RECIPES
  # all by default, and the primary attack's per-view variant (the LiRA reference's view
  # handling) beside it
  attacks: str = ",".join((*DEFAULT_ATTACKS, "lira_offline_fixed_per_view"))
  # The attack of the verdict and the summary figure. Offline, because a pool member of a
  # synthetic-size recipe is mostly NOT used by its run (ipc of ~N/(2C) members per class), so
  # online LiRA's IN distribution is diluted by unused members; fixed variance, because with
  # <= 64 runs per-example spreads are noisy (Carlini et al., "Membership Inference Attacks From First Principles", S&P
  # 2022: with few shadow models the fixed-variance test is stronger). All attacks are reported.
  primary_attack: str = "lira_offline_fixed"
  net: str | None = None  # trained in every run (None: default_net of the image size)
  init_scheme: str = "torch"  # of every run's network: the reference's PyTorch init, or "flax"
  epochs: int = 300  # training epochs on synthetic-size sets (ipc per class)
  real_epochs: int = 50  # training epochs of the `real` recipe (all IN examples)
  # training epochs of DP-SGD recipes (dpsgd(epsilon)): per-example gradients cost ~2.7x a
  # plain step on CPU (docs/dp-yardstick.md), and fewer epochs also mean fewer
  # compositions, so less noise at the same epsilon
  dp_epochs: int = 15
  # DP-SGD's learning rate: clipped gradients (norm <= 1 each, averaged) are small, so DP-SGD
  # is tuned with larger steps; measured on digits, dpsgd(4), 15 epochs, 2 runs: test accuracy
  # 78% at lr 0.05, 83% at 0.2, 91% at 0.5
  dp_lr: float = 0.5
  dp_batch_size: int | None = None  # DP-SGD's expected Poisson batch (None: batch_size)
  batch_size: int = 256
  lr: float = 0.01
  # non-Siamese DSA (the dataset's strategy) while training each run's network: on
  # synthetic-size training sets (every recipe but `real`), and on `real`'s
  train_augment: bool = False
  real_augment: bool = False
  train_compute_dtype: str = "float32"  # "bfloat16": mixed-precision training (GPU/TPU)
  cond_net: str | None = None  # network of DM/DSA (None: default_net of the image size)
  # each condenser's settings over its preset (``dcjax.condense.settings``; flags
  # --<method>.<field>): the default audit shortens the condensers to fit 2 CPU cores
  condensers: tuple = DEFAULT_CONDENSERS
  ssim_shortlist: int = 64  # SSIM nearest neighbours among this many L2-nearest images
  # worst-case examples planted in the pool (dcjax.data.canaries), IN for half of the runs
  # like every example; the strata of the attacks leave them out, the canary analysis
  # (empirical epsilon lower bounds) uses them alone
  canaries: int = 0
  canary_kind: str = "mislabeled"
  theory_iterations: int = 300

  def __post_init__(self):
    check_dataset_name(self.dataset)
    checks.positive_ints(self, "ipc", "epochs", "real_epochs", "dp_epochs", "batch_size",
                         "ssim_shortlist", "theory_iterations")
    checks.positive_finite(self, "lr", "dp_lr")
    settings_lib.check(self.condensers, "AuditConfig.condensers")
    if self.dp_batch_size is not None:
      checks.positive_ints(self, "dp_batch_size")
    checks.field_one_of(self, "canary_kind", CANARY_KINDS)
    if not isinstance(self.canaries, int) or isinstance(self.canaries, bool) or self.canaries < 0:
      raise ValueError(f"AuditConfig.canaries must be an int >= 0, got {self.canaries!r}.")
    if self.canaries == 1:
      raise ValueError("AuditConfig.canaries=1: the canary bound splits the canaries in two "
                       "halves; use 0 or at least 2 (16 or more for a useful bound).")
    checks.field_one_of(self, "init_scheme", INITS)
    checks.field_one_of(self, "train_compute_dtype", COMPUTE_DTYPES)
    if not isinstance(self.runs, int) or self.runs < 4 or self.runs % 2:
      raise ValueError(f"AuditConfig.runs must be an even int >= 4 (each example IN for half "
                       f"the runs; online LiRA needs IN and OUT shadows), got {self.runs!r}.")
    for name in ("net", "cond_net"):
      value = getattr(self, name)
      if value is not None and value not in NET_NAMES:
        raise ValueError(f"AuditConfig.{name}={value!r} is not a network; expected one of "
                         f"{list(NET_NAMES)}.")
    recipe_list = self.recipe_list
    if not recipe_list:
      raise ValueError(f"AuditConfig.recipes={self.recipes!r} names no recipe.")
    if len({str(r) for r in recipe_list}) < len(recipe_list):
      raise ValueError(f"AuditConfig.recipes={self.recipes!r} names a recipe twice.")
    if not any(isinstance(r, RandomSubset) for r in recipe_list):
      raise ValueError("The audit compares every recipe with the random_subset baseline; "
                       f"add 'random_subset' to recipes={self.recipes!r}.")
    bad = [a for a in self.attack_names if a not in ATTACKS]
    if bad or not self.attack_names:
      raise ValueError(f"Unknown attack(s) {bad or [self.attacks]}; expected a comma-separated "
                       f"list of {list(ATTACKS)}.")
    if self.primary_attack not in self.attack_names:
      raise ValueError(f"primary_attack {self.primary_attack!r} is not among attacks "
                       f"{list(self.attack_names)}.")

  @property
  def recipe_list(self) -> list[Recipe]:
    """The recipes as written (ipc from the config where left out; presets for condensers)."""
    return parse_list(self.recipes, {"ipc": self.ipc})

  @property
  def attack_names(self) -> tuple[str, ...]:
    return tuple(a.strip() for a in self.attacks.split(",") if a.strip())


def runs_config(cfg: AuditConfig, image_shape, recipe: Recipe) -> RunsConfig:
  """How each run's network is trained: ``real_epochs`` for recipes that train on the pool
  (all IN examples), ``epochs`` for synthetic-size sets."""
  augment = cfg.real_augment if recipe.trains_on_pool else cfg.train_augment
  epochs = cfg.real_epochs if recipe.trains_on_pool else cfg.epochs
  train = TrainConfig(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                      augment=strategy_for(cfg.dataset) if augment else None,
                      compute_dtype=cfg.train_compute_dtype)
  return RunsConfig(net=cfg.net or default_net(image_shape), train=train,
                    init_scheme=cfg.init_scheme)


def condenser_config(cfg: AuditConfig, method: str, image_shape, ipc: int):
  """The condenser's preset for the recipe's ``ipc`` fitted to the dataset (``dataset_preset``:
  its network and DSA strategy), with ``cond_net`` and the audit's settings for ``method``
  (``cfg.condensers``)."""
  preset = dataset_preset(get_condenser(method), ipc, cfg.dataset, image_shape)
  if cfg.cond_net and "net" in {f.name for f in dataclasses.fields(preset)}:
    preset = dataclasses.replace(preset, net=cfg.cond_net)
  return settings_lib.apply(preset, method, cfg.condensers)


def recipes(cfg: AuditConfig, image_shape) -> list[Recipe]:
  """The audit's recipes with the condenser configs its fields describe (each for the recipe's
  own ipc) and the training settings they take from it (dpsgd: ``dp_epochs``, ``dp_lr``)."""
  out = []
  for r in cfg.recipe_list:
    if isinstance(r, Condense) and r.config is None:
      r = dataclasses.replace(r, config=condenser_config(cfg, r.method, image_shape, r.ipc))
    out.append(r.fill_from(cfg))
  return out


# The DP yardstick at paper scale (the critique's central comparison): DP-SGD at epsilon 1, 2,
# 4, 8 and NDPDC at 1 and 10 (Zheng & Li's reference: 10,000 iterations, group size 50).
PAPER_DP_RECIPES = ("dpsgd(1),dpsgd(2),dpsgd(4),dpsgd(8),condense(ndpdc,epsilon=1),"
                    "condense(ndpdc,epsilon=10)")
# 500 mislabeled canaries, IN for half of the runs like every pool example. What the one-run
# bound can certify at that count (a perfect attack, delta 1e-5, 95%, Bonferroni over the runs;
# measured with dcjax.privacy.auditing): eps 2.05 with 64 runs, 1.11 with 128 (the delta term,
# 2 * 500 * delta, weighs more against the smaller per-run significance). docs/privacy.md.
PAPER_CANARIES = 500


def _paper(dataset: str, ipc: int) -> AuditConfig:
  """Paper scale: every condenser at its reference preset for the recipe's ipc (Zhao et al.
  2021, Zhao & Bilen 2021/2023, Cazenavette et al. 2022, Zhou et al. 2022, Zheng & Li), 64
  runs, and the reference evaluation of synthetic-size sets (1000 epochs with non-Siamese DSA,
  which the published accuracies assume); `real` trains 50 epochs without augmentation.
  DP-SGD trains 30 epochs with expected batches of 1024 at lr 2.0 (momentum 0.9): the
  digits-measured lr 0.5 at batch 256 scaled linearly with the batch, and the tens of epochs
  of large batches that DP-SGD baselines on CIFAR-10 CNNs use (Tramer & Boneh 2021); a
  starting point, untuned at this scale."""
  return AuditConfig(dataset=dataset, ipc=ipc, runs=64, epochs=1000, train_augment=True,
                     recipes=f"{DEFAULT_RECIPES},{PAPER_DP_RECIPES}", canaries=PAPER_CANARIES,
                     dp_epochs=30, dp_lr=2.0, dp_batch_size=1024, condensers=(),
                     real_epochs=50, real_augment=False, theory_iterations=3000)


PRESETS: dict[str, AuditConfig] = {
    # ~2 minutes on 2 CPU cores: a smoke run of the whole pipeline, not evidence: every kind
    # of recipe once (the condensers, one DP-SGD, one NDPDC) and a handful of canaries
    "quick": AuditConfig(runs=4, pool_size=400, ipc=5, epochs=100, real_epochs=100,
                         recipes=f"{DEFAULT_RECIPES},dpsgd(4),condense(ndpdc,epsilon=4)",
                         canaries=8, dp_epochs=5, theory_iterations=100,
                         condensers=settings_lib.merge(DEFAULT_CONDENSERS, condenser_settings(
                             dm=dict(iterations=30), ndpdc=dict(iterations=30),
                             dsa=dict(iterations=3, outer_loop=1, inner_loop=1),
                             dc=dict(iterations=3, outer_loop=1, inner_loop=1),
                             mtt=dict(iterations=5, syn_steps=5, max_start_epoch=2,
                                      num_experts=1),
                             frepo=dict(iterations=20)))),
    # the README's main command: the 7 condensation recipes, the DP yardstick (4 x DP-SGD,
    # NDPDC) and 32 canaries on the bundled digits
    "default": AuditConfig(recipes=f"{DEFAULT_RECIPES},{DP_RECIPES}", canaries=32),
    **{f"{d}_ipc{i}": _paper(d, i) for d in ("fashion_mnist", "cifar10", "celeba")
       for i in (10, 50)},
}

# One line per preset for --help: what it runs and what it is for.
PRESET_SUMMARIES = {
    "quick": ("smoke run of the whole pipeline on 400 digits, 4 runs: every condenser recipe, "
              "dpsgd(4), condense(ndpdc,epsilon=4), 8 canaries (not evidence)"),
    "default": ("the bundled digits, 16 runs: 7 condensation recipes, DP-SGD at eps 1-8, NDPDC "
                "at 4, 32 canaries"),
    **{f"{d}_ipc{i}": (f"paper scale, {d} ipc {i}, 64 runs (accelerator): reference "
                       "hyperparameters, DP-SGD at eps 1-8, NDPDC at 1 and 10, 500 canaries")
       for d in ("fashion_mnist", "cifar10", "celeba") for i in (10, 50)},
}


def get_preset(name: str) -> AuditConfig:
  checks.one_of(name, PRESETS, "preset")
  return PRESETS[name]
