"""Membership attacks on per-run scores phi, with every run serving once as the target.

Conventions: ``scores`` (M, N) phi of every pool example under each run's network; ``keep``
(M, N) bool membership. An attack maps (target scores (N,), shadow scores (R, N), shadow keep
(R, N)) to membership scores (N,), higher = more likely a member.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import scipy.stats

from dcjax import checks
from dcjax.mia import rmia as rmia_lib
from dcjax.mia.masks import equal_sides
from dcjax.mia.metrics import DEFAULT_FPRS, AttackResult, init_masks, stratified_metrics
from dcjax.mia.scores import logit_scaled_confidence

BASE_ATTACKS = ("loss", "lira_online", "lira_online_fixed", "lira_offline",
                "lira_offline_fixed", "lira_offline_two_sided")
# RMIA scores p(x|theta) against a population (dcjax.mia.rmia), not phi against shadows alone
RMIA_ATTACKS = ("rmia_online", "rmia_offline")
# "<attack>_per_view": the LiRA reference's treatment of query views (its plot.py): one
# Gaussian per view, the attack's per-view scores averaged; the plain names average phi over
# the views first
PER_VIEW = "_per_view"
ATTACKS = (BASE_ATTACKS + tuple(a + PER_VIEW for a in BASE_ATTACKS if a.startswith("lira"))
           + RMIA_ATTACKS)
MIN_OWN_SD = 4


def loss_threshold(target, shadow=None, shadow_keep=None) -> np.ndarray:
  """Yeom et al. (2018): one global threshold on phi (a confident true class means IN)."""
  del shadow, shadow_keep
  return np.asarray(target, np.float64)


def _side_stats(shadow, side_mask, fixed_variance: bool):
  """Per-example mean and sd of the shadow scores where ``side_mask``; NaN where empty."""
  count = side_mask.sum(0)
  total = np.where(side_mask, shadow, 0.0).sum(0)
  mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
  dev = np.where(side_mask, shadow - mean, 0.0)
  dof = int(count.sum()) - int((count > 0).sum())
  if dof > 0:
    pooled = np.sqrt((dev ** 2).sum() / dof)  # one sd for this side, pooled over examples
  else:  # one score per example: no within-example spread; use the spread over examples
    pooled = float(np.std(shadow[side_mask])) if side_mask.any() else 1.0
  if fixed_variance:
    sd = np.full(mean.shape, pooled)
  else:
    # An example with fewer than MIN_OWN_SD scores on this side gets the pooled sd: spreads
    # from 1-3 scores are so noisy that, since leave-one-out gives a member one IN shadow fewer
    # than a non-member, they turn that bookkeeping asymmetry into a spurious signal
    # (tests/test_mia.py::test_few_shadows_do_not_fake_a_signal).
    own = np.sqrt((dev ** 2).sum(0) / np.maximum(count - 1, 1))
    sd = np.where(count >= MIN_OWN_SD, own, pooled)
  return mean, np.maximum(sd, 1e-6)


def lira_online(target, shadow, shadow_keep, fixed_variance: bool = False) -> np.ndarray:
  """log N(phi; mu_in, sd_in) - log N(phi; mu_out, sd_out), per example."""
  shadow = np.asarray(shadow, np.float64)
  side_in, side_out = equal_sides(shadow_keep)
  mu_in, sd_in = _side_stats(shadow, side_in, fixed_variance)
  mu_out, sd_out = _side_stats(shadow, side_out, fixed_variance)
  target = np.asarray(target, np.float64)
  score = scipy.stats.norm.logpdf(target, mu_in, sd_in) - scipy.stats.norm.logpdf(
      target, mu_out, sd_out)
  return np.nan_to_num(score, nan=0.0)  # no IN or no OUT shadow for an example: no evidence


def lira_offline(target, shadow, shadow_keep, fixed_variance: bool = False,
                 two_sided: bool = False, balance: bool = True) -> np.ndarray:
  """OUT shadows only. One-sided (the paper): log Pr[Z <= phi], Z ~ N(mu_out, sd_out).

  ``two_sided=True`` scores by the negative OUT density instead (a known deviation, offered
  for comparison with code that uses it). ``balance``: cut each example's OUT side to its IN
  side's count (``equal_sides``; leave-one-out over all runs). ``False`` keeps every OUT
  shadow: for a random draw of a few shadows (the shadow-budget curve), where an example with
  no IN shadow would otherwise get no evidence.
  """
  shadow = np.asarray(shadow, np.float64)
  side_out = equal_sides(shadow_keep)[1] if balance else ~np.asarray(shadow_keep, bool)
  mu_out, sd_out = _side_stats(shadow, side_out, fixed_variance)
  target = np.asarray(target, np.float64)
  if two_sided:
    score = -scipy.stats.norm.logpdf(target, mu_out, sd_out)
    neutral = float(np.nanmedian(score)) if np.isfinite(score).any() else 0.0
  else:
    score = scipy.stats.norm.logcdf(target, mu_out, sd_out)
    neutral = np.log(0.5)  # phi at the OUT mean; 0 would be the strongest member evidence
  return np.nan_to_num(score, nan=neutral)  # no OUT shadow for an example: no evidence


def get_attack(name: str) -> Callable:
  table = {
      "loss": loss_threshold,
      "lira_online": lira_online,
      "lira_online_fixed": lambda t, s, k: lira_online(t, s, k, fixed_variance=True),
      "lira_offline": lira_offline,
      "lira_offline_fixed": lambda t, s, k: lira_offline(t, s, k, fixed_variance=True),
      "lira_offline_two_sided": lambda t, s, k: lira_offline(t, s, k, two_sided=True),
  }
  checks.one_of(name, table, "attack")
  return table[name]


def leave_one_out(scores, keep, attack: str | Callable, references=None) -> np.ndarray:
  """Each run in turn is the target, all others its shadows (or the runs ``references[t]``:
  the shadow-budget curve). Returns (M, N) membership scores."""
  scores, keep = np.asarray(scores, np.float64), np.asarray(keep, bool)
  if scores.shape != keep.shape or scores.ndim != 2:
    raise ValueError(f"scores and keep must both be (M, N), got {scores.shape} and "
                     f"{keep.shape}.")
  if scores.shape[0] < 2:
    raise ValueError(f"Leave-one-out needs >= 2 runs, got {scores.shape[0]}.")
  fn = get_attack(attack) if isinstance(attack, str) else attack
  out = np.empty_like(scores)
  for t in range(scores.shape[0]):
    others = (np.arange(scores.shape[0]) != t if references is None
              else np.asarray(references[t]))
    out[t] = fn(scores[t], scores[others], keep[others])
  return out


DEFAULT_ATTACKS = ("loss", "lira_online", "lira_online_fixed", "lira_offline",
                   "lira_offline_fixed", *RMIA_ATTACKS)


@dataclasses.dataclass(frozen=True)
class Population:
  """Examples that no run trained on, for RMIA's p(z|theta): (M, V, T, K) logits under the
  pool's query views and (T,) labels. ``name`` says which split it is, for the report."""

  view_logits: np.ndarray
  labels: np.ndarray
  name: str = "test split"


def membership_scores(name: str, view_logits, labels, keep, population: Population | None = None,
                      rmia: rmia_lib.RMIAConfig = rmia_lib.RMIAConfig(),
                      references=None) -> tuple[np.ndarray, dict | None]:
  """One attack's leave-one-out (M, N) membership scores from (M, V, N, K) logits, and what it
  chose on the way (RMIA: its settings and the a of each target; None for the others).
  ``references``: per target, the runs it may use (default: all others)."""
  checks.one_of(name, ATTACKS, "attack")
  if name in RMIA_ATTACKS:
    if population is None:
      raise ValueError(f"{name} needs population examples that no run trained on (the test "
                       "split's logits); none were given.")
    p = rmia_lib.true_class_probability(view_logits, labels, rmia.temperature)
    p_pop = rmia_lib.true_class_probability(population.view_logits, population.labels,
                                            rmia.temperature)
    online = name == "rmia_online"
    scores, a_used = rmia_lib.leave_one_out_rmia(p, keep, p_pop, online, rmia, references)
    details = {"population": population.name, "population_size": int(p_pop.shape[1]),
               "gamma": rmia.gamma, "temperature": rmia.temperature}
    if not online:
      details["offline_a"] = {"tuned": rmia.offline_a is None, "per_target": a_used,
                              "median": float(np.median(a_used))}
    return scores, details
  phi_views = logit_scaled_confidence(view_logits, labels)  # (M, V, N)
  if name.endswith(PER_VIEW):
    base = name[:-len(PER_VIEW)]
    return np.mean([leave_one_out(phi_views[:, v], keep, base, references)
                    for v in range(phi_views.shape[1])], axis=0), None
  attack: str | Callable = name
  if references is not None and name in OFFLINE_FNS and any(
      len(r) < keep.shape[0] - 1 for r in references):
    attack = OFFLINE_FNS[name]  # a draw of fewer runs: every OUT reference counts
  return leave_one_out(phi_views.mean(axis=1), keep, attack, references), None


# offline LiRA over a random draw of references (``lira_offline``'s ``balance=False``)
OFFLINE_FNS = {
    "lira_offline": lambda t, s, k: lira_offline(t, s, k, balance=False),
    "lira_offline_fixed": lambda t, s, k: lira_offline(t, s, k, fixed_variance=True,
                                                       balance=False),
}


def attack_runs(view_logits, labels, keep, init_indices, attacks=DEFAULT_ATTACKS,
                fprs=DEFAULT_FPRS, exclude=None, population: Population | None = None,
                rmia: rmia_lib.RMIAConfig = rmia_lib.RMIAConfig()) -> dict[str, AttackResult]:
  """Scores, leave-one-out attacks and stratified metrics of one recipe's runs.

  view_logits: (M, V, N, K) logits of every pool example under V query views; labels (N,);
  keep (M, N) bool; init_indices (M, n) pool indices of each run's init images (-1: none).
  Returns {attack: AttackResult} (each with its (M, N) membership scores and, for RMIA, its
  ``details``). Attacks named ``<attack>_per_view`` score each view with its own Gaussians and
  average the per-view scores (the LiRA reference); the other LiRA variants score phi averaged
  over the views; RMIA (``dcjax.mia.rmia``) needs ``population``. ``exclude`` (N,) bool:
  examples scored but left out of the strata (canaries, analysed on their own).
  """
  keep = np.asarray(keep, bool)
  is_init = init_masks(init_indices, keep.shape[1])
  unknown = [a for a in attacks if a not in ATTACKS]
  if unknown:
    raise ValueError(f"Unknown attack(s) {unknown}; expected some of {list(ATTACKS)}.")
  out = {}
  for name in attacks:
    membership, details = membership_scores(name, view_logits, labels, keep, population, rmia)
    kept = slice(None) if exclude is None else ~np.asarray(exclude, bool)
    result = stratified_metrics(membership[:, kept], keep[:, kept], is_init[:, kept], fprs)
    out[name] = dataclasses.replace(result, scores=membership, details=details)
  return out
