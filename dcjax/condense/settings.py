"""Condenser settings: each condenser's config class is the single source of its fields.

A study changes a condenser's preset by nested overrides, ``{method: {field: value}}``, held
in a hashable, normalised form (``Settings``: sorted tuples) so that frozen configs can carry
them. The command lines expose every simple field of every registered condenser's config as
``--<method>.<field>`` (``--dm.iterations 500``, ``--mtt.syn_steps 20``; ``dcjax.cli``), typed
from the dataclass, and a value is checked by the config's own ``__post_init__``. A new
condenser's flags appear with its registration; no list of fields is kept anywhere else.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from dcjax.condense.registry import get_condenser

Settings = tuple  # ((method, ((field, value), ...)), ...), both levels sorted


def settings(per_method: Mapping[str, Mapping[str, Any]] | None = None,
             **more: Mapping[str, Any]) -> Settings:
  """{method: {field: value}} (a mapping, or keywords) in the normalised, hashable form."""
  merged = {**(per_method or {}), **more}
  return tuple(sorted((m, tuple(sorted(dict(f).items()))) for m, f in merged.items() if f))


def as_dict(s: Settings) -> dict[str, dict[str, Any]]:
  return {method: dict(fields) for method, fields in s}


def merge(base: Settings, more: Settings) -> Settings:
  """``base`` with ``more``'s fields set on top (field by field)."""
  out = as_dict(base)
  for method, fields in as_dict(more).items():
    out[method] = {**out.get(method, {}), **fields}
  return settings(out)


def check(s: Settings, where: str = "condensers") -> None:
  """Every method registered, every field one of its config's, every value accepted by the
  config's checks (on its preset)."""
  if not isinstance(s, tuple):
    raise ValueError(f"{where} must be dcjax.condense.settings(...) (a tuple), got {s!r}.")
  for method, fields in as_dict(s).items():
    condenser = get_condenser(method)
    known = {f.name for f in dataclasses.fields(condenser.config_class)}
    unknown = sorted(set(fields) - known)
    if unknown:
      raise ValueError(f"{where}: {condenser.config_class.__name__} has no field(s) {unknown}; "
                       f"its fields are {sorted(known)}.")
    dataclasses.replace(condenser.preset(10), **fields)  # the config's own checks


def apply(cfg, method: str, s: Settings):
  """``cfg`` (a config of ``method``) with the overrides ``s`` holds for ``method``."""
  fields = as_dict(s).get(method)
  return dataclasses.replace(cfg, **fields) if fields else cfg
