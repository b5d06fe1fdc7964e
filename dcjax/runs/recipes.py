"""Recipes: what a run's network is trained on, given the IN examples of that run.

One frozen dataclass per kind, one registry, one syntax (the CLI, the audit's config, the keys of
results.json and the README all use it, and ``parse(str(recipe)) == recipe``):

    real                          all IN examples (trained on the pool under the keep mask)
    random_subset(ipc)            ipc random IN images per class (the naive baseline)
    init_only(ipc)                the real images condense(dm, ipc, real) would start from
    condense(method, ipc, init)   a condensed set by a registered condenser (init real|noise)
    condense(method, ipc, init, epsilon)   a differentially private condenser (ndpdc, ldpdc)
                                           at the target epsilon
    dpsgd(epsilon, clip, delta)   all IN examples, trained by DP-SGD at (epsilon, delta)

Arguments are positional or ``name=value``; ``parse(text, defaults)`` fills the ones left out
(the audit fills ``ipc`` from its config, so ``condense(dm,init=real)`` is a recipe there). A
condenser's config is not part of the text: None means its reference preset.
A new kind is a dataclass with ``KIND`` and ``build_training_set``, passed to
``register_recipe``; one that changes training, or proves a privacy guarantee, overrides
``plan`` (called once per recipe: its training config and its guarantee come from one place).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, ClassVar

import jax
import numpy as np

from dcjax.privacy import accounting, mechanisms
from dcjax.condense import condense, condense_many, get_condenser, random_subset
from dcjax.condense.common import effective_batch_real
from dcjax.condense.run_setup import dataset_preset, split_run_key
from dcjax.data.dataset import Dataset
from dcjax.train import TrainConfig


@dataclasses.dataclass(frozen=True)
class TrainingSet:
  """One run's training set. images (S, H, W, C), labels (S,), init_indices (S,) pool indices
  of the real images each one is or started from (-1: none). Empty (S = 0) for recipes that
  train on the pool itself under the run's keep mask."""

  images: np.ndarray
  labels: np.ndarray
  init_indices: np.ndarray

  def as_tree(self) -> dict[str, np.ndarray]:
    return {"images": self.images, "labels": self.labels, "init_indices": self.init_indices}

  @classmethod
  def from_tree(cls, tree: dict) -> TrainingSet:
    return cls(*(np.asarray(tree[k]) for k in ("images", "labels", "init_indices")))


class Recipe:
  """The base of every recipe kind (a frozen dataclass with a class attribute ``KIND``)."""

  KIND: ClassVar[str]
  trains_on_pool: ClassVar[bool] = False  # True: the run trains on the pool under its mask
  has_init_images: ClassVar[bool] = False  # its set holds (or starts from) real pool images

  @property
  def name(self) -> str:
    return str(self)

  def __str__(self) -> str:
    values = [getattr(self, name) for name in self._syntax_fields()]
    while values and values[-1] is None:  # optional trailing arguments left out
      values.pop()
    args = [format(v, "g") if isinstance(v, float) else str(v) for v in values]
    return self.KIND if not args else f"{self.KIND}({','.join(args)})"

  @classmethod
  def _syntax_fields(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("syntax", True))

  def check_pool(self, pool: Dataset, keep: np.ndarray) -> None:
    """Raises, naming the run, when some run's IN examples cannot make this training set."""
    del pool, keep

  def with_fixed_shapes(self, pool: Dataset, keep: np.ndarray) -> Recipe:
    """The recipe with every shape the same for all runs of ``keep`` (one compilation)."""
    del pool, keep
    return self

  def training_set_size(self, pool: Dataset, keep: np.ndarray) -> int:
    raise NotImplementedError

  def build_training_set(self, key: jax.Array, pool: Dataset, keep: np.ndarray,
                         progress: bool = False) -> TrainingSet:
    raise NotImplementedError

  def build_training_sets(self, keys: jax.Array, pool: Dataset, keep: np.ndarray,
                          progress: bool = False, checkpoint_dir: str | None = None,
                          recompute: bool = False, writer=None) -> list[TrainingSet]:
    """The training sets of runs r with keys[r] and keep[r]; kinds with a faster form for
    many runs (``Condense``: ``condense_many``) override it. ``checkpoint_dir``: where such a
    form may keep its progress; ``writer``: a ``dcjax.logs.MetricsWriter`` for its losses."""
    del checkpoint_dir, recompute, writer
    return [self.build_training_set(k, pool, m, progress) for k, m in zip(keys, keep)]

  def plan(self, base: TrainConfig, pool: Dataset, keep: np.ndarray
           ) -> tuple[TrainConfig, accounting.Guarantee | None]:
    """How this recipe's networks are trained, given the study's ``base`` config, the pool and
    the runs' keep masks (M, N), and what it proves of every run: a
    ``dcjax.privacy.accounting.Guarantee`` (each run's training set and network are the output
    of, or post-processing of, its mechanism), or None for recipes without a guarantee."""
    del pool, keep
    return base, None

  def fill_from(self, settings: Any) -> Recipe:
    """The recipe with each field that the syntax leaves out and that is unset (None) taken
    from the attribute of the same name of ``settings`` (the audit's config: dpsgd's
    ``dp_epochs`` and ``dp_lr``)."""
    changes = {f.name: getattr(settings, f.name) for f in dataclasses.fields(self)
               if not f.metadata.get("syntax", True) and getattr(self, f.name) is None
               and hasattr(settings, f.name)}
    return dataclasses.replace(self, **changes) if changes else self


@dataclasses.dataclass(frozen=True)
class Real(Recipe):
  KIND: ClassVar[str] = "real"
  trains_on_pool: ClassVar[bool] = True

  def plan(self, base, pool, keep):
    """Shuffled epochs of the largest IN set of all runs (``dataset_size``), so that a run
    trained apart from the others (another host) takes the steps it takes with them."""
    del pool
    if base.sampling != "shuffle" or base.dataset_size is not None:
      return base, None
    largest = int(np.atleast_2d(np.asarray(keep, bool)).sum(1).max())
    return dataclasses.replace(base, dataset_size=largest), None

  def training_set_size(self, pool, keep):
    del pool
    return int(np.asarray(keep, bool).sum(1).mean())

  def build_training_set(self, key, pool, keep, progress=False):
    del key, keep, progress  # nothing to build: the run trains on the pool under its keep mask
    return TrainingSet(np.zeros((0, *pool.image_shape), np.float32), np.zeros((0,), np.int32),
                       np.zeros((0,), np.int32))


class _PerClass(Recipe):
  """Recipes of ipc images per class drawn from each run's IN examples."""

  def _check_ipc(self):
    if not isinstance(self.ipc, int) or isinstance(self.ipc, bool) or self.ipc < 1:
      raise ValueError(f"Recipe {self.KIND} needs a positive int ipc, got {self.ipc!r}.")

  def check_pool(self, pool, keep):
    for r, mask in enumerate(np.asarray(keep, bool)):
      counts = pool.class_counts(mask)
      if counts.min() < self.ipc:
        raise ValueError(f"Pool too small for {self}: run {r} has only {int(counts.min())} IN "
                         f"examples of class {int(counts.argmin())}, needs ipc={self.ipc}.")

  def training_set_size(self, pool, keep):
    del keep
    return self.ipc * pool.num_classes


@dataclasses.dataclass(frozen=True)
class _RealImages(_PerClass):
  """ipc real IN images per class, drawn from ``_draw_key(run key)``, unoptimised."""

  has_init_images: ClassVar[bool] = True
  ipc: int = None

  def __post_init__(self):
    self._check_ipc()

  def _draw_key(self, key: jax.Array) -> jax.Array:
    return key

  def build_training_set(self, key, pool, keep, progress=False):
    return _from_synset(random_subset(self._draw_key(key), pool, self.ipc,
                                      mask=np.asarray(keep, bool)))


@dataclasses.dataclass(frozen=True)
class RandomSubset(_RealImages):
  """The naive baseline: ipc random IN images per class."""

  KIND: ClassVar[str] = "random_subset"


@dataclasses.dataclass(frozen=True)
class InitOnly(_RealImages):
  """The very images ``condense`` would start from with the same run key, unoptimised."""

  KIND: ClassVar[str] = "init_only"

  def _draw_key(self, key):
    return split_run_key(key)[0]


@dataclasses.dataclass(frozen=True)
class Condense(_PerClass):
  """A set condensed by the registered condenser ``method`` (config None: its preset)."""

  KIND: ClassVar[str] = "condense"
  method: str = None
  ipc: int = None
  init: str | None = None
  config: Any = dataclasses.field(default=None, metadata={"syntax": False})
  # differentially private condensers only: the target epsilon (None: the config's); last,
  # so that Condense(method, ipc, init, config) keeps its meaning
  epsilon: float | None = None

  def __post_init__(self):
    condenser = get_condenser(self.method)
    self._check_ipc()
    if self.epsilon is not None:
      if not condenser.private:
        raise ValueError(f"Recipe {self.KIND}({self.method},...) takes no epsilon: "
                         f"{self.method} is not a differentially private condenser.")
      if not 0 < self.epsilon < float("inf"):
        raise ValueError(f"Recipe {self.KIND}({self.method},...) needs epsilon > 0 and finite, "
                         f"got {self.epsilon!r}.")
      if self.config is not None and self.config.epsilon != self.epsilon:
        object.__setattr__(self, "config", dataclasses.replace(
            self.config, epsilon=float(self.epsilon), noise_multiplier=None))
    if self.init is None:
      object.__setattr__(self, "init", condenser.default_init)
    if self.init not in condenser.inits:
      raise ValueError(f"Recipe {self.KIND}({self.method},...) needs init in "
                       f"{list(condenser.inits)}, got {self.init!r}.")
    if self.config is not None and not isinstance(self.config, condenser.config_class):
      raise ValueError(f"The config of {self.method} must be a "
                       f"{condenser.config_class.__name__}, got {type(self.config).__name__}.")

  @property
  def has_init_images(self) -> bool:  # type: ignore[override]
    return self.init == "real"

  def _config(self, pool: Dataset):
    """The condenser's config: ``config``, or its preset for the pool with ``epsilon``."""
    if self.config is not None:
      return self.config
    condenser = get_condenser(self.method)
    cfg = dataset_preset(condenser, self.ipc, pool.name, pool.image_shape)
    return cfg if self.epsilon is None else dataclasses.replace(cfg, epsilon=self.epsilon)

  def with_fixed_shapes(self, pool, keep):
    """Caps the real batch per class by the smallest class of ANY run, so that every run has
    the same static shapes (one compilation instead of one per run); a private condenser's
    config is prepared for all runs at once (one sampling rate and noise for every run)."""
    condenser = get_condenser(self.method)
    if condenser.private:
      return dataclasses.replace(self, config=condenser.prepare(
          self._config(pool), pool.labels, pool.num_classes, np.asarray(keep, bool)))
    if self.config is None:
      return self
    batch = min(effective_batch_real(self.config.batch_real, pool.labels, pool.num_classes, k)
                for k in np.asarray(keep, bool))
    return dataclasses.replace(self, config=dataclasses.replace(self.config, batch_real=batch))

  def plan(self, base, pool, keep):
    """The condenser's loss for networks trained on its sets (FRePo's learned labels: MSE);
    a private condenser's guarantee (its config prepared for these runs)."""
    condenser = get_condenser(self.method)
    train = base if base.loss == condenser.train_loss else dataclasses.replace(
        base, loss=condenser.train_loss)
    if not condenser.private:
      return train, None
    return train, condenser.prepare(self._config(pool), pool.labels, pool.num_classes,
                                     np.asarray(keep, bool)).guarantee()

  def build_training_set(self, key, pool, keep, progress=False):
    return _from_synset(condense(key, pool, self.method, self.ipc, self.init,
                                 mask=np.asarray(keep, bool), config=self._config(pool),
                                 progress=progress))

  def build_training_sets(self, keys, pool, keep, progress=False, checkpoint_dir=None,
                          recompute=False, writer=None):
    """All runs at once (``condense_many``), checkpointed per block in ``checkpoint_dir``."""
    return [_from_synset(s) for s in condense_many(
        keys, pool, self.method, self.ipc, self.init, np.asarray(keep, bool),
        self._config(pool), checkpoint_dir=checkpoint_dir, recompute=recompute,
        progress=progress, writer=writer, tag=f"{self}/condense")]



@dataclasses.dataclass(frozen=True)
class DPSGD(Real):
  """Every IN example, trained by DP-SGD (Poisson batches of expected size batch_size,
  per-example gradients clipped to ``clip``, Gaussian noise), the noise multiplier calibrated
  by the PLD accountant so that every run is (epsilon, delta)-DP.

  One mechanism for every run: the rate q = batch_size / n, the steps and the gradient's
  normaliser q * n come from the public size ``n``, never from a run's own members (their
  number is private under add/remove adjacency). n: declared, or the expected IN examples of
  a run under the keep-mask design (half the pool for dcjax's balanced masks).
  ``dp_epochs``, ``dp_lr`` and ``dp_batch_size`` (None: the base config's) are set by the
  audit, not the syntax.
  """

  KIND: ClassVar[str] = "dpsgd"
  epsilon: float = 1.0
  clip: float = 1.0
  delta: float = 1e-5
  n: int | None = None
  dp_epochs: int | None = dataclasses.field(default=None, metadata={"syntax": False})
  dp_lr: float | None = dataclasses.field(default=None, metadata={"syntax": False})
  dp_batch_size: int | None = dataclasses.field(default=None, metadata={"syntax": False})

  def __post_init__(self):
    for name, ok, expected in (
        ("epsilon", 0 < self.epsilon < float("inf"), "> 0 and finite"),
        ("clip", 0 < self.clip < float("inf"), "> 0 and finite"),
        ("delta", 0 < self.delta < 1, "in (0, 1)"),
        ("n", self.n is None or (isinstance(self.n, int) and self.n >= 1), "a positive int")):
      if not ok:
        raise ValueError(f"Recipe dpsgd needs {name} {expected}, got {getattr(self, name)!r}.")

  def public_size(self, keep: np.ndarray) -> int:
    """n: declared, or half the pool when every example is IN for exactly half of the runs."""
    if self.n is not None:
      return self.n
    fraction = mechanisms.design_in_probability(
        keep, "dpsgd: the public training-set size",
        "Declare it: dpsgd(epsilon, clip, delta, n).")
    return max(1, int(np.shape(keep)[-1] * fraction))

  def plan(self, base, pool, keep):
    del pool
    keep = np.atleast_2d(np.asarray(keep, bool))
    cfg = dataclasses.replace(
        base, sampling="poisson", dp_clip=float(self.clip), dp_noise=0.0, microbatch=None,
        dataset_size=self.public_size(keep), epochs=self.dp_epochs or base.epochs,
        lr=self.dp_lr or base.lr, batch_size=self.dp_batch_size or base.batch_size)
    # the truncation of the batches is accounted at the largest IN set, where it is likeliest
    largest = int(keep.sum(1).max())
    mech = accounting.dpsgd_mechanism(cfg, largest)
    sigma = accounting.calibrate_noise(self.epsilon, mech.sample_rate, mech.steps, self.delta,
                                       dataset_size=mech.dataset_size, capacity=mech.capacity)
    cfg = dataclasses.replace(cfg, dp_noise=sigma)
    return cfg, accounting.Guarantee(accounting.dpsgd_mechanism(cfg, largest), self.delta)


def _from_synset(syn) -> TrainingSet:
  return TrainingSet(np.asarray(syn.images), np.asarray(syn.labels),
                     np.asarray(syn.init_indices))


_RECIPES: dict[str, type] = {}


def register_recipe(cls: type, replace: bool = False) -> type:
  """Adds a recipe kind (a frozen dataclass subclassing ``Recipe`` with ``KIND``)."""
  if not (isinstance(cls, type) and issubclass(cls, Recipe) and dataclasses.is_dataclass(cls)):
    raise TypeError(f"{cls!r} is not a dataclass subclassing Recipe.")
  if cls.KIND in _RECIPES and not replace:
    raise ValueError(f"A recipe kind named {cls.KIND!r} is already registered.")
  _RECIPES[cls.KIND] = cls
  return cls


def recipe_kinds() -> list[str]:
  return list(_RECIPES)


for _cls in (Real, RandomSubset, InitOnly, Condense, DPSGD):
  register_recipe(_cls)

_PATTERN = re.compile(r"^\s*(\w+)\s*(?:\((.*)\))?\s*$")
EXAMPLES = ("'real', 'random_subset(10)', 'init_only(10)', 'condense(dm,10,real)', "
            "'condense(ndpdc,epsilon=4)' or 'dpsgd(4)'")


def parse(text: str, defaults: dict[str, Any] | None = None) -> Recipe:
  """'condense(dm,10,real)' -> Condense("dm", 10, "real"). ``defaults`` fill arguments that the
  text leaves out (by name, for the kinds that have them)."""
  match = _PATTERN.match(text) if isinstance(text, str) else None
  if not match:
    raise ValueError(f"Cannot parse recipe {text!r}; expected e.g. {EXAMPLES}.")
  kind, body = match.group(1), match.group(2)
  if kind not in _RECIPES:
    raise ValueError(f"Unknown recipe {kind!r} in {text!r}; expected one of {recipe_kinds()}.")
  cls = _RECIPES[kind]
  names = cls._syntax_fields()  # pylint: disable=protected-access
  args = [a.strip() for a in (body or "").split(",") if a.strip()]
  values: dict[str, Any] = {}
  keywords = False
  try:
    for i, arg in enumerate(args):
      if "=" in arg:
        name, value = (p.strip() for p in arg.split("=", 1))
        keywords = True
      elif keywords or i >= len(names):
        raise ValueError(f"positional argument {arg!r} after keywords or beyond {list(names)}")
      else:
        name, value = names[i], arg
      if name not in names:
        raise ValueError(f"{kind} has no argument {name!r}; it takes {list(names)}")
      if name in values:
        raise ValueError(f"argument {name!r} given twice")
      values[name] = _value(cls, name, value)
    for name, value in (defaults or {}).items():
      if name in names and name not in values:
        values[name] = value
    return cls(**values)
  except (TypeError, ValueError) as err:
    raise ValueError(f"Bad recipe {text!r}: {str(err).rstrip('.')}. Expected e.g. "
                     f"{EXAMPLES}.") from err


def split_list(text: str) -> list[str]:
  """'real,condense(dm,10,real)' -> ['real', 'condense(dm,10,real)'] (commas inside
  parentheses belong to their recipe)."""
  parts, depth, current = [], 0, ""
  for ch in text:
    depth += {"(": 1, ")": -1}.get(ch, 0)
    if ch == "," and depth == 0:
      parts.append(current.strip())
      current = ""
    else:
      current += ch
  parts.append(current.strip())
  return [p for p in parts if p]


def parse_list(text: str, defaults: dict[str, Any] | None = None) -> list[Recipe]:
  """A comma-separated list of recipes (see ``parse``)."""
  return [parse(part, defaults) for part in split_list(text)]


def _value(cls: type, name: str, text: str) -> Any:
  field = next(f for f in dataclasses.fields(cls) if f.name == name)
  if field.type in ("int", int, "int | None"):
    return int(text)
  if field.type in ("float", float, "float | None"):
    return float(text)
  return text
