"""The audit as config-as-code: one flat frozen ``AuditConfig`` and named presets.

Every field is a command-line flag of ``experiments.audit`` (``--dm-iterations 500``); a preset
only fills the defaults. The condenser and training configs of every recipe are derived from
these fields by ``recipes`` and ``runs_config``, so the whole study is reproducible from the
config and its seed.
"""

from __future__ import annotations

import dataclasses

from dcjax import checks
from dcjax.augment import strategy_for
from dcjax.condense import dc as dc_lib
from dcjax.condense import dm as dm_lib
from dcjax.data import DATASET_NAMES
from dcjax.mia import ATTACKS, Recipe
from dcjax.mia.pipeline import RunsConfig
from dcjax.nets import NET_NAMES, default_net
from dcjax.train import TrainConfig

# recipe tokens of the audit; ipc comes from the config
RECIPE_TOKENS = ("real", "random_subset", "init_only", "dm:real", "dm:noise", "dsa:real",
                 "dsa:noise", "dc:real", "dc:noise")
DEFAULT_RECIPES = "real,random_subset,init_only,dm:real,dm:noise,dsa:real,dsa:noise"
DEFAULT_ATTACKS = "loss,lira_online,lira_online_fixed,lira_offline,lira_offline_fixed"
# (image shape, classes, training examples, test examples) of the loaders' splits, for the
# datasets of the presets: the theory table and the cost estimate need them without the data
DATASET_SIZES = {"digits": ((8, 8, 1), 10, 1497, 300),
                 "fashion_mnist": ((28, 28, 1), 10, 60_000, 10_000),
                 "cifar10": ((32, 32, 3), 10, 50_000, 10_000),
                 "celeba": ((32, 32, 3), 2, 162_770, 19_962)}


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
  attacks: str = DEFAULT_ATTACKS
  # The attack of the verdict and the summary figure. Offline, because a pool member of a
  # synthetic-size recipe is mostly NOT used by its run (ipc of ~N/(2C) members per class), so
  # online LiRA's IN distribution is diluted by unused members; fixed variance, because with
  # <= 64 runs per-example spreads are noisy (REFERENCE section 7). All attacks are reported.
  primary_attack: str = "lira_offline_fixed"
  net: str | None = None  # trained in every run (None: default_net of the image size)
  epochs: int = 300  # training epochs on synthetic-size sets (ipc per class)
  real_epochs: int = 50  # training epochs of the `real` recipe (all IN examples)
  batch_size: int = 256
  lr: float = 0.01
  train_augment: bool = False  # non-Siamese DSA while training each run's network
  cond_net: str | None = None  # network of DM/DSA (None: default_net of the image size)
  dm_iterations: int = 200
  dm_batch_real: int = 64
  dsa_iterations: int = 30
  dsa_outer_loop: int = 2
  dsa_inner_loop: int = 5
  dsa_batch_real: int = 64
  ssim_shortlist: int = 64  # SSIM nearest neighbours among this many L2-nearest images
  theory_iterations: int = 300

  def __post_init__(self):
    if self.dataset not in DATASET_NAMES:
      raise ValueError(f"Unknown dataset {self.dataset!r}; expected one of "
                       f"{list(DATASET_NAMES)}.")
    checks.positive_ints(self, "ipc", "epochs", "real_epochs", "batch_size", "dm_iterations",
                         "dm_batch_real", "dsa_iterations", "dsa_outer_loop", "dsa_inner_loop",
                         "dsa_batch_real", "ssim_shortlist", "theory_iterations")
    checks.positive_finite(self, "lr")
    if not isinstance(self.runs, int) or self.runs < 4 or self.runs % 2:
      raise ValueError(f"AuditConfig.runs must be an even int >= 4 (each example IN for half "
                       f"the runs; online LiRA needs IN and OUT shadows), got {self.runs!r}.")
    for name in ("net", "cond_net"):
      value = getattr(self, name)
      if value is not None and value not in NET_NAMES:
        raise ValueError(f"AuditConfig.{name}={value!r} is not a network; expected one of "
                         f"{list(NET_NAMES)}.")
    tokens = self.recipe_tokens
    unknown = [t for t in tokens if t not in RECIPE_TOKENS]
    if unknown or not tokens:
      raise ValueError(f"Unknown recipe(s) {unknown or [self.recipes]}; expected a "
                       f"comma-separated list of {list(RECIPE_TOKENS)}.")
    if "random_subset" not in tokens:
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
  def recipe_tokens(self) -> tuple[str, ...]:
    return tuple(t.strip() for t in self.recipes.split(",") if t.strip())

  @property
  def attack_names(self) -> tuple[str, ...]:
    return tuple(a.strip() for a in self.attacks.split(",") if a.strip())


def runs_config(cfg: AuditConfig, image_shape, real: bool) -> RunsConfig:
  """How each run's network is trained: ``real_epochs`` for `real`, ``epochs`` otherwise."""
  train = TrainConfig(epochs=cfg.real_epochs if real else cfg.epochs,
                      batch_size=cfg.batch_size, lr=cfg.lr,
                      augment=strategy_for(cfg.dataset) if cfg.train_augment else None)
  return RunsConfig(net=cfg.net or default_net(image_shape), train=train)


def recipes(cfg: AuditConfig, image_shape) -> list[Recipe]:
  """The audit's recipes with the condenser configs its fields describe."""
  cond_net = cfg.cond_net or default_net(image_shape)
  strategy = strategy_for(cfg.dataset)
  out = []
  for token in cfg.recipe_tokens:
    if token == "real":
      out.append(Recipe("real"))
    elif token in ("random_subset", "init_only"):
      out.append(Recipe(token, cfg.ipc))
    else:
      method, init = token.split(":")
      if method == "dm":
        method_cfg = dataclasses.replace(dm_lib.preset(cfg.ipc), iterations=cfg.dm_iterations,
                                         batch_real=cfg.dm_batch_real, net=cond_net,
                                         dsa_strategy=strategy)
      else:
        method_cfg = dataclasses.replace(
            dc_lib.dsa_preset(cfg.ipc) if method == "dsa" else dc_lib.preset(cfg.ipc),
            iterations=cfg.dsa_iterations, outer_loop=cfg.dsa_outer_loop,
            inner_loop=cfg.dsa_inner_loop, batch_real=cfg.dsa_batch_real, net=cond_net)
        if method == "dsa":
          method_cfg = dataclasses.replace(method_cfg, dsa_strategy=strategy)
      out.append(Recipe("condense", cfg.ipc, method, init, method_cfg))
  return out


def _paper(dataset: str, ipc: int) -> AuditConfig:
  """Paper scale: the reference condenser hyperparameters (REFERENCE section 4) and 64 runs."""
  outer, inner = dc_lib.loops_for_ipc(ipc)
  return AuditConfig(dataset=dataset, ipc=ipc, runs=64, epochs=300, real_epochs=50,
                     dm_iterations=20_000, dm_batch_real=256, dsa_iterations=1000,
                     dsa_outer_loop=outer, dsa_inner_loop=inner, dsa_batch_real=256,
                     theory_iterations=3000)


PRESETS: dict[str, AuditConfig] = {
    # ~2 minutes on 2 CPU cores: a smoke run of the whole pipeline, not evidence
    "quick": AuditConfig(runs=4, pool_size=400, ipc=5, epochs=100, real_epochs=100,
                         dm_iterations=30, dsa_iterations=3, dsa_outer_loop=1,
                         dsa_inner_loop=1, theory_iterations=100),
    # under 20 minutes on 2 CPU cores, the README's main command
    "default": AuditConfig(),
    **{f"{d}_ipc{i}": _paper(d, i) for d in ("fashion_mnist", "cifar10", "celeba")
       for i in (10, 50)},
}


def get_preset(name: str) -> AuditConfig:
  if name not in PRESETS:
    raise ValueError(f"Unknown preset {name!r}; expected one of {list(PRESETS)}.")
  return PRESETS[name]
