"""RMIA (Zarifzadeh, Liu & Shokri, "Low-Cost High-Power Membership Inference Attacks", ICML
2024): a pairwise likelihood-ratio test of x against population examples z.

    LR(x, z) = [p(x|theta) / p(x)] / [p(z|theta) / p(z)],  score(x) = Pr_z[LR(x, z) >= gamma]

p(.|theta) is the target network's probability of the true class; p(x) its mean over reference
runs. Online: the mean over IN and OUT references (equal numbers of each per example, as dcjax's
LiRA). Offline: every OUT reference, p(x) = ((1 + a) p_OUT(x) + (1 - a)) / 2 (the paper's
linear approximation of the missing IN side; a = 1: p(x) = p_OUT(x); a = 0: p_IN taken as 1).
The population z has no member in any run: dcjax uses the test split, every example of it,
queried with the same views as the pool. Its p(z) is the mean over all references (all OUT),
through the same formula.

Choices, written down (docs/attacks.md has the long form):
  * signal: softmax at ``temperature`` (default 1) of each query view's logits, the true
    class's probability averaged over the views (the paper averages augmented queries);
  * gamma = 1 by default (ML Privacy Meter's), a field of ``RMIAConfig``;
  * a is tuned per target as the paper does, on a pair of reference runs: attack the second
    with the first as the only reference, over the examples OUT of the first (where p_OUT is
    observed), on the grid 0, 0.1, ..., 1; the first maximum of the AUC wins. With one
    reference the pair is that reference and the next run that is neither target nor reference
    (one extra run, which a shadow budget of 1 does not count; said where it is reported);
  * an example without the references the estimate needs (no OUT reference offline; no IN or
    no OUT online) gets the score 0.5: no evidence either way.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dcjax import checks
from dcjax.mia.masks import equal_sides
from dcjax.mia.metrics import auc, roc_curve

NO_EVIDENCE = 0.5
A_GRID = tuple(round(0.1 * i, 1) for i in range(11))


@dataclasses.dataclass(frozen=True)
class RMIAConfig:
  """gamma: the pairwise test's threshold on LR(x, z). temperature: of the softmax that turns
  logits into p(x|theta). offline_a: None tunes a per target (module docstring), a number
  fixes it."""

  gamma: float = 1.0
  temperature: float = 1.0
  offline_a: float | None = None

  def __post_init__(self):
    checks.positive_finite(self, "gamma", "temperature")
    if self.offline_a is not None and not 0.0 <= self.offline_a <= 1.0:
      raise ValueError(f"RMIAConfig.offline_a must be None (tuned) or in [0, 1], got "
                       f"{self.offline_a!r}.")


def true_class_probability(view_logits, labels, temperature: float = 1.0) -> np.ndarray:
  """(..., V, N, K) logits under V views, labels (N,) -> (..., N) float64: the softmax (at
  ``temperature``) probability of the true class, averaged over the views."""
  z = np.asarray(view_logits, np.float64) / temperature
  labels = np.asarray(labels)
  if z.shape[-2] != labels.shape[0]:
    raise ValueError(f"logits have {z.shape[-2]} examples but labels {labels.shape[0]}.")
  z = z - z.max(axis=-1, keepdims=True)
  log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
  p_y = np.exp(np.take_along_axis(
      log_p, np.broadcast_to(labels[:, None], log_p.shape[:-1] + (1,)), axis=-1)[..., 0])
  return p_y.mean(axis=-2)


def offline_prior(p_out_mean, a: float) -> np.ndarray:
  """p(x) = ((1 + a) p_OUT(x) + (1 - a)) / 2."""
  return ((1.0 + a) * np.asarray(p_out_mean, np.float64) + (1.0 - a)) / 2.0


def _masked_mean(values, mask) -> np.ndarray:
  count = mask.sum(0)
  total = np.where(mask, values, 0.0).sum(0)
  return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def rmia_scores(target, target_pop, refs, refs_keep, refs_pop, online: bool,
                a: float = 1.0, gamma: float = 1.0) -> np.ndarray:
  """One target's RMIA scores (N,) in [0, 1].

  target (N,), target_pop (T,): the target's p(.|theta) on the pool and the population;
  refs (R, N), refs_keep (R, N), refs_pop (R, T): the reference runs' probabilities and
  membership. ``a`` is used offline only.
  """
  refs, refs_pop = np.asarray(refs, np.float64), np.asarray(refs_pop, np.float64)
  if online:  # IN and OUT weigh equally: equal numbers of each per example
    side_in, side_out = equal_sides(refs_keep)
    p_x = _masked_mean(refs, side_in | side_out)
    p_z = refs_pop.mean(0)
  else:  # every OUT reference: a mean's expectation does not depend on how many it averages
    p_x = offline_prior(_masked_mean(refs, ~np.asarray(refs_keep, bool)), a)
    p_z = offline_prior(refs_pop.mean(0), a)
  ratio_x = np.asarray(target, np.float64) / p_x
  ratio_z = np.sort(np.asarray(target_pop, np.float64) / p_z)
  # LR(x, z) >= gamma  <=>  ratio_z <= ratio_x / gamma (every ratio is positive)
  counts = np.searchsorted(ratio_z, np.nan_to_num(ratio_x / gamma, nan=0.0), side="right")
  return np.where(np.isnan(ratio_x), NO_EVIDENCE, counts / len(ratio_z))


def tune_offline_a(probe, probe_keep, ref, ref_keep, probe_pop, ref_pop,
                   gamma: float = 1.0) -> float:
  """The paper's tuning of a on a pair of reference runs: attack ``probe`` with ``ref`` as the
  only reference over the examples OUT of ``ref``; the a of the grid with the highest AUC."""
  out = ~np.asarray(ref_keep, bool)
  members = np.asarray(probe_keep, bool)[out]
  if members.all() or not members.any():
    return 1.0  # nothing to tell members from non-members with: a = 1 assumes nothing
  best, best_auc = A_GRID[0], -1.0
  for a in A_GRID:
    s = rmia_scores(np.asarray(probe)[out], probe_pop, np.asarray(ref)[None, out],
                    np.zeros((1, out.sum()), bool), np.asarray(ref_pop)[None], online=False,
                    a=a, gamma=gamma)
    fpr, tpr, _ = roc_curve(s, members)
    value = auc(fpr, tpr)
    if value > best_auc:
      best, best_auc = a, value
  return best


def tuning_pair(target: int, references, num_runs: int) -> tuple[int, int]:
  """The pair of runs that tunes a for ``target``: its first two references, or with a single
  reference that one and the next run that is neither target nor reference."""
  references = list(references)
  if len(references) >= 2:
    return references[0], references[1]
  extra = next(r for r in range(num_runs) if r != target and r not in references)
  return references[0], extra


def leave_one_out_rmia(signals, keep, pop_signals, online: bool,
                       cfg: RMIAConfig = RMIAConfig(),
                       references=None) -> tuple[np.ndarray, list[float] | None]:
  """Every run in turn the target, its references all other runs (or ``references[t]``).

  signals (M, N) p(x|theta) of every run; keep (M, N); pop_signals (M, T). Returns the (M, N)
  scores and, offline, the a used for each target (None online).
  """
  signals, keep = np.asarray(signals, np.float64), np.asarray(keep, bool)
  pop_signals = np.asarray(pop_signals, np.float64)
  num_runs = signals.shape[0]
  if pop_signals.ndim != 2 or pop_signals.shape[0] != num_runs or pop_signals.shape[1] < 1:
    raise ValueError(f"RMIA needs population signals (M={num_runs}, T>=1), got "
                     f"{pop_signals.shape}.")
  out, a_used = np.empty_like(signals), []
  for t in range(num_runs):
    refs = (np.array([r for r in range(num_runs) if r != t]) if references is None
            else np.asarray(references[t]))
    a = 1.0
    if not online:
      a = cfg.offline_a
      if a is None:
        first, second = tuning_pair(t, refs, num_runs)
        a = tune_offline_a(signals[second], keep[second], signals[first], keep[first],
                           pop_signals[second], pop_signals[first], cfg.gamma)
      a_used.append(float(a))
    out[t] = rmia_scores(signals[t], pop_signals[t], signals[refs], keep[refs],
                         pop_signals[refs], online, a, cfg.gamma)
  return out, (None if online else a_used)
