"""The audit as config-as-code: one flat frozen ``AuditConfig`` and named presets.

Every field is a command-line flag of ``experiments.audit`` (``--dm-iterations 500``); a preset
only fills the defaults. The condenser and training configs of every recipe are derived from
these fields by ``recipes`` and ``runs_config``, so the whole study is reproducible from the
config and its seed. Recipes use the one recipe syntax of ``dcjax.runs.recipes``, with ``ipc``
filled from the config where left out; a condenser's config is its preset with the fields
``<method>_<field>`` of this config (``dm_iterations`` -> ``iterations``), ``cond_net`` and the
dataset's DSA strategy.
"""

from __future__ import annotations

import dataclasses

from dcjax import checks
from dcjax.augment import strategy_for
from dcjax.condense import dc as dc_lib
from dcjax.condense import frepo as frepo_lib
from dcjax.condense import mtt as mtt_lib
from dcjax.condense import dataset_preset, get_condenser
from dcjax.data import DATASET_NAMES
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
  # plain step on CPU (README, "Differential privacy"), and fewer epochs also mean fewer
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
  dm_iterations: int = 200
  dm_batch_real: int = 64
  dsa_iterations: int = 30
  dsa_outer_loop: int = 2
  dsa_inner_loop: int = 5
  dsa_batch_real: int = 64
  dc_iterations: int = 30
  dc_outer_loop: int = 2
  dc_inner_loop: int = 5
  dc_batch_real: int = 64
  # NDPDC (differentially private DM; recipe condense(ndpdc,epsilon=E)): iterations as DM's,
  # each one a composition of its accounted mechanism
  ndpdc_iterations: int = 200
  # MTT (recipe condense(mtt,...)): per run, mtt_num_experts experts trained for
  # mtt_max_start_epoch - 1 + mtt_expert_epochs epochs, then mtt_iterations iterations of
  # mtt_syn_steps unrolled student steps (the paper: 5,000 x 30 with 100 experts, CIFAR-10);
  # on digits and 2 CPU cores an iteration of 10 steps takes about 3 s per run (README)
  mtt_iterations: int = 100
  mtt_syn_steps: int = 10
  mtt_expert_epochs: int = 2
  mtt_max_start_epoch: int = 5
  mtt_num_experts: int = 2
  mtt_lr_syn_init: float = 0.01  # the student's initial step size (the paper's ipc 1 value)
  # FRePo (recipe condense(frepo,...)): iterations, real images per class per iteration
  frepo_iterations: int = 200
  frepo_batch_real: int = 64
  # LAMB's step is relative to the images' norm: the reference's 3e-4 moves them little in
  # the few hundred iterations a CPU affords
  frepo_lr_img: float = 3e-3
  ssim_shortlist: int = 64  # SSIM nearest neighbours among this many L2-nearest images
  # worst-case examples planted in the pool (dcjax.data.canaries), IN for half of the runs
  # like every example; the strata of the attacks leave them out, the canary analysis
  # (empirical epsilon lower bounds) uses them alone
  canaries: int = 0
  canary_kind: str = "mislabeled"
  theory_iterations: int = 300

  def __post_init__(self):
    checks.one_of(self.dataset, DATASET_NAMES, "dataset")
    checks.positive_ints(self, "ipc", "epochs", "real_epochs", "dp_epochs", "batch_size",
                         "dm_iterations", "dm_batch_real", "dsa_iterations", "dsa_outer_loop",
                         "dsa_inner_loop", "dsa_batch_real", "dc_iterations", "dc_outer_loop", "dc_inner_loop",
                         "dc_batch_real", "ndpdc_iterations", "mtt_iterations",
                         "mtt_syn_steps", "mtt_expert_epochs", "mtt_max_start_epoch",
                         "mtt_num_experts", "frepo_iterations", "frepo_batch_real",
                         "ssim_shortlist", "theory_iterations")
    checks.positive_finite(self, "lr", "dp_lr", "mtt_lr_syn_init", "frepo_lr_img")
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
  its network and DSA strategy), with the audit's fields ``<method>_<field>`` and
  ``cond_net``."""
  preset = dataset_preset(get_condenser(method), ipc, cfg.dataset, image_shape)
  fields = {f.name for f in dataclasses.fields(preset)}
  prefix = method + "_"
  changes = {f.name[len(prefix):]: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
             if f.name.startswith(prefix) and f.name[len(prefix):] in fields}
  if "net" in fields and cfg.cond_net:
    changes["net"] = cfg.cond_net
  return dataclasses.replace(preset, **changes)


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
  """Paper scale: the reference condenser hyperparameters (Zhao et al. 2021, Zhao & Bilen
  2021/2023, Cazenavette et al. 2022, Zhou et al. 2022), 64 runs, and the reference evaluation
  of synthetic-size sets (1000 epochs with non-Siamese DSA, which the published accuracies
  assume); `real` trains 50 epochs without augmentation. DP-SGD trains 30 epochs with expected
  batches of 1024 at lr 2.0 (momentum 0.9): the digits-measured lr 0.5 at batch 256 scaled
  linearly with the batch, and the tens of epochs of large batches that DP-SGD baselines on
  CIFAR-10 CNNs use (Tramer & Boneh 2021); a starting point, untuned at this scale."""
  outer, inner = dc_lib.loops_for_ipc(ipc)
  mtt_cfg, frepo_cfg = mtt_lib.preset(ipc), frepo_lib.preset(ipc)
  return AuditConfig(dataset=dataset, ipc=ipc, runs=64, epochs=1000, train_augment=True,
                     recipes=f"{DEFAULT_RECIPES},{PAPER_DP_RECIPES}", canaries=PAPER_CANARIES,
                     dp_epochs=30, dp_lr=2.0, dp_batch_size=1024, ndpdc_iterations=10_000,
                     mtt_iterations=mtt_cfg.iterations, mtt_syn_steps=mtt_cfg.syn_steps,
                     mtt_expert_epochs=mtt_cfg.expert_epochs,
                     mtt_max_start_epoch=mtt_cfg.max_start_epoch,
                     mtt_num_experts=mtt_cfg.num_experts, mtt_lr_syn_init=mtt_cfg.lr_syn_init,
                     frepo_lr_img=frepo_cfg.lr_img,
                     frepo_iterations=frepo_cfg.iterations,
                     frepo_batch_real=frepo_cfg.batch_real,
                     real_epochs=50, real_augment=False,
                     dm_iterations=20_000, dm_batch_real=256, dsa_iterations=1000,
                     dsa_outer_loop=outer, dsa_inner_loop=inner, dsa_batch_real=256,
                     dc_iterations=1000, dc_outer_loop=outer, dc_inner_loop=inner,
                     dc_batch_real=256, theory_iterations=3000)


PRESETS: dict[str, AuditConfig] = {
    # ~2 minutes on 2 CPU cores: a smoke run of the whole pipeline, not evidence: every kind
    # of recipe once (the condensers, one DP-SGD, one NDPDC) and a handful of canaries
    "quick": AuditConfig(runs=4, pool_size=400, ipc=5, epochs=100, real_epochs=100,
                         recipes=f"{DEFAULT_RECIPES},dpsgd(4),condense(ndpdc,epsilon=4)",
                         canaries=8, dp_epochs=5, ndpdc_iterations=30,
                         dm_iterations=30, dsa_iterations=3, dsa_outer_loop=1,
                         dsa_inner_loop=1, dc_iterations=3, dc_outer_loop=1, dc_inner_loop=1,
                         theory_iterations=100, mtt_iterations=5, mtt_syn_steps=5,
                         mtt_max_start_epoch=2, mtt_num_experts=1, frepo_iterations=20),
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
