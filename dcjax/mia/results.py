"""Typed results of the attacks: frozen dataclasses that become JSON only at the edge.

``to_json`` gives the schema of results.json (docs/results-schema.md); ``from_json`` reads it
back. Nothing here computes a metric, so reports and plots can depend on it alone.
"""

from __future__ import annotations

import dataclasses

import numpy as np

STRATA = ("init_images", "other_members", "all_members")


def fpr_key(fpr: float) -> str:
  """The key of an FPR in ``StratumMetrics.tpr_at_fpr`` and in results.json: 0.01 -> '0.01'."""
  return f"{fpr:g}"


@dataclasses.dataclass(frozen=True)
class RocPoint:
  """The best TPR at FPR <= ``fpr``, with its 95% Clopper-Pearson interval, the trial counts,
  and (when trials are clustered) a cluster-bootstrap interval."""

  fpr: float
  tpr: float
  tpr_ci95: tuple[float, float]
  true_positives: int
  positives: int
  negatives: int
  min_measurable_fpr: float
  tpr_ci95_bootstrap: tuple[float, float] | None = None

  @property
  def interval(self) -> tuple[float, float]:
    """The interval for comparisons: the bootstrap one where there is one."""
    return self.tpr_ci95_bootstrap if self.tpr_ci95_bootstrap is not None else self.tpr_ci95

  def to_json(self) -> dict:
    out = dataclasses.asdict(self)
    out["tpr_ci95"] = list(self.tpr_ci95)
    if self.tpr_ci95_bootstrap is None:
      del out["tpr_ci95_bootstrap"]
    else:
      out["tpr_ci95_bootstrap"] = list(self.tpr_ci95_bootstrap)
    return out

  @classmethod
  def from_json(cls, d: dict) -> RocPoint:
    boot = d.get("tpr_ci95_bootstrap")
    return cls(**{**d, "tpr_ci95": tuple(d["tpr_ci95"]),
                  "tpr_ci95_bootstrap": None if boot is None else tuple(boot)})


@dataclasses.dataclass(frozen=True)
class StratumMetrics:
  """One membership score against one group of members and the non-members."""

  auc: float
  auc_ci95: tuple[float, float]
  auc_ci_method: str
  balanced_accuracy: float
  tpr_at_fpr: dict[str, RocPoint]  # by ``fpr_key``
  positives: int
  negatives: int

  def at(self, fpr: float) -> RocPoint:
    return self.tpr_at_fpr[fpr_key(fpr)]

  def to_json(self) -> dict:
    return {"auc": self.auc, "auc_ci95": list(self.auc_ci95),
            "auc_ci_method": self.auc_ci_method, "balanced_accuracy": self.balanced_accuracy,
            "tpr_at_fpr": {k: p.to_json() for k, p in self.tpr_at_fpr.items()},
            "positives": self.positives, "negatives": self.negatives}

  @classmethod
  def from_json(cls, d: dict) -> StratumMetrics:
    return cls(**{**d, "auc_ci95": tuple(d["auc_ci95"]),
                  "tpr_at_fpr": {k: RocPoint.from_json(p) for k, p in d["tpr_at_fpr"].items()}})


@dataclasses.dataclass(frozen=True)
class AttackResult:
  """One membership score of one recipe's runs, by stratum (``STRATA``; None: no trial).
  ``curves``: {stratum: (fpr, tpr)} for plotting; ``scores``: the (M, N) membership scores of
  every run and pool example; ``details``: what the attack chose (RMIA's a per target, its
  population); none of them is part of ``to_json``."""

  strata: dict[str, StratumMetrics | None]
  curves: dict[str, tuple[np.ndarray, np.ndarray]] = dataclasses.field(
      default_factory=dict, compare=False, repr=False)
  scores: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)
  details: dict | None = dataclasses.field(default=None, compare=False, repr=False)

  def __getitem__(self, stratum: str) -> StratumMetrics | None:
    return self.strata[stratum]

  def to_json(self) -> dict:
    return {s: None if m is None else m.to_json() for s, m in self.strata.items()}

  @classmethod
  def from_json(cls, d: dict) -> AttackResult:
    return cls({s: None if m is None else StratumMetrics.from_json(m) for s, m in d.items()})
