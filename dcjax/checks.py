"""Field checks shared by the frozen configs: one message shape for every bad value."""

from __future__ import annotations

import math
from typing import Any


def one_of(value: Any, choices, what: str) -> None:
  """``value`` must be one of ``choices``: "Unknown <what> 'v'; expected one of [...]"."""
  if value not in choices:
    raise ValueError(f"Unknown {what} {value!r}; expected one of {list(choices)}.")


def field_one_of(config: Any, name: str, choices) -> None:
  """The field ``name`` of ``config`` must be one of ``choices``."""
  value = getattr(config, name)
  if value not in choices:
    raise ValueError(f"{type(config).__name__}.{name} must be one of {list(choices)}, got "
                     f"{value!r}.")


def positive_ints(config: Any, *names: str) -> None:
  """Each named field must be an int >= 1."""
  for name in names:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"{type(config).__name__}.{name} must be a positive int, got "
                       f"{value!r}.")


def positive_finite(config: Any, *names: str) -> None:
  """Each named field must be a finite number > 0 (learning rates, scales)."""
  for name in names:
    value = getattr(config, name)
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
      raise ValueError(f"{type(config).__name__}.{name} must be a finite number > 0, got "
                       f"{value!r}.")


def in_unit_interval(config: Any, *names: str) -> None:
  """Each named field must lie in [0, 1) (momentum)."""
  for name in names:
    value = getattr(config, name)
    if not isinstance(value, (int, float)) or not 0 <= value < 1:
      raise ValueError(f"{type(config).__name__}.{name} must lie in [0, 1), got {value!r}.")
