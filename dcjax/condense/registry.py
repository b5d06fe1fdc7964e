"""The condensers by name. A new condenser is one module (its config and a ``Condenser``
subclass: ``dcjax.condense.contract``) plus one ``register_condenser`` call: an entry here for
the built-in ones, or the same call from anywhere (a notebook, a test). Everything else (the
recipe syntax, both command lines' ``--method`` and ``--<method>.<field>`` flags, the audit)
reads this registry.
"""

from __future__ import annotations

from dcjax import checks
from dcjax.condense import common, dc, dm, dpdc, frepo, mtt
from dcjax.condense.contract import Condenser

_CONDENSERS: dict[str, Condenser] = {}


def register_condenser(condenser: Condenser, replace: bool = False) -> Condenser:
  """Adds ``condenser`` (an instance of a ``Condenser`` subclass) under its name."""
  if not isinstance(condenser, Condenser):
    raise TypeError(f"{condenser!r} is not an instance of dcjax.condense.Condenser.")
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


for _condenser in (dm.DM(), dc.DC(), dc.DSA(), mtt.MTT(), frepo.FRePo(), dpdc.NDPDC(),
                   dpdc.LDPDC()):
  register_condenser(_condenser)
