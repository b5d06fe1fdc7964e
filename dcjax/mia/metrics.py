"""ROC metrics of a membership attack, with exact binomial intervals and trial counts.

Results are the frozen dataclasses of ``dcjax.mia.results``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.stats

from dcjax.mia.results import STRATA, AttackResult, RocPoint, StratumMetrics, fpr_key

DEFAULT_FPRS = (1e-3, 1e-2)
VERY_LOW_FPR = 1e-5  # reported only with >= 1e5 non-member trials


def roc_curve(scores, is_member) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(fpr, tpr, thresholds) over all distinct thresholds, predicting IN when score >= t.

  Starts at (0, 0) with threshold +inf and ends at (1, 1).
  """
  scores = np.asarray(scores, np.float64).ravel()
  is_member = np.asarray(is_member, bool).ravel()
  if scores.shape != is_member.shape:
    raise ValueError(f"scores {scores.shape} and labels {is_member.shape} differ in shape.")
  pos, neg = int(is_member.sum()), int((~is_member).sum())
  if pos == 0 or neg == 0:
    raise ValueError(f"ROC needs both members and non-members, got {pos} and {neg}.")
  if np.isnan(scores).any():
    raise ValueError(f"{int(np.isnan(scores).sum())} membership scores are NaN.")
  order = np.argsort(-scores, kind="stable")
  s, y = scores[order], is_member[order]
  # last index of each tie group (``!=`` rather than a difference: +-inf scores tie correctly)
  distinct = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
  tps = np.cumsum(y)[distinct]
  fps = (distinct + 1) - tps
  tpr = np.r_[0.0, tps / pos]
  fpr = np.r_[0.0, fps / neg]
  return fpr, tpr, np.r_[np.inf, s[distinct]]


def roc_on_grid(fpr, tpr, points: int = 200, lowest: float = 1e-5
                ) -> tuple[np.ndarray, np.ndarray]:
  """The ROC step function read at log-spaced FPRs in [lowest, 1] (plus 0): the best TPR with
  FPR <= each grid value. A few hundred points draw a log-log ROC as well as 10^5 do."""
  fpr, tpr = np.asarray(fpr), np.asarray(tpr)
  grid = np.r_[0.0, np.logspace(np.log10(lowest), 0.0, points)]
  idx = np.searchsorted(fpr, grid, side="right") - 1
  return grid, np.maximum.accumulate(tpr)[np.maximum(idx, 0)]


def auc(fpr, tpr) -> float:
  return float(np.trapezoid(tpr, fpr))


def balanced_accuracy(fpr, tpr) -> float:
  """max over thresholds of 1 - (FPR + FNR) / 2."""
  return float(np.max(1.0 - (fpr + (1.0 - tpr)) / 2.0))


def clopper_pearson(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
  """Exact two-sided binomial interval for successes / trials."""
  if trials <= 0:
    return (0.0, 1.0)
  alpha = 1.0 - level
  lo = 0.0 if successes == 0 else scipy.stats.beta.ppf(alpha / 2, successes,
                                                       trials - successes + 1)
  hi = 1.0 if successes == trials else scipy.stats.beta.ppf(1 - alpha / 2, successes + 1,
                                                            trials - successes)
  return float(lo), float(hi)


def tpr_at_fpr(fpr, tpr, target: float, positives: int, negatives: int) -> RocPoint:
  """The best TPR with FPR <= target, its 95% Clopper-Pearson interval and the counts."""
  ok = fpr <= target + 1e-12
  best = float(np.max(tpr[ok])) if np.any(ok) else 0.0
  hits = int(round(best * positives))
  return RocPoint(fpr=target, tpr=best, tpr_ci95=clopper_pearson(hits, positives),
                  true_positives=hits, positives=positives, negatives=negatives,
                  min_measurable_fpr=1.0 / negatives)


def cluster_bootstrap(scores, is_member, clusters, fprs=DEFAULT_FPRS, reps: int = 200,
                      seed: int = 0, level: float = 0.95
                      ) -> tuple[tuple[float, float], dict[float, tuple[float, float]]]:
  """Percentile intervals of the AUC and of the TPR at each FPR, resampling whole clusters.

  Leave-one-out trials share examples (each example is a trial in every run) and shadows, so
  they are not independent; resampling examples (clusters) with all their trials keeps that
  correlation, which Hanley-McNeil and Clopper-Pearson ignore. Each replicate is a weighted
  ROC from one sort (ties count one half in the AUC; a tie group is one threshold). Replicates
  are processed in chunks so that memory stays bounded at paper scale.
  Returns (auc interval, {fpr: tpr interval}).
  """
  scores = np.asarray(scores, np.float64).ravel()
  y = np.asarray(is_member, bool).ravel()
  _, cluster_idx = np.unique(np.asarray(clusters).ravel(), return_inverse=True)
  num_clusters = int(cluster_idx.max()) + 1
  order = np.argsort(scores, kind="stable")
  s, y, cluster_idx = scores[order], y[order], cluster_idx[order]
  starts = np.r_[0, np.flatnonzero(s[1:] != s[:-1]) + 1]  # first index of each tie group
  rng = np.random.default_rng(seed)
  draws = rng.integers(0, num_clusters, (reps, num_clusters))
  auc_b, tpr_b = [], {t: [] for t in fprs}
  chunk = max(1, int(2e7 // max(len(s), 1)))
  for lo in range(0, reps, chunk):
    d = draws[lo:lo + chunk]
    counts = np.zeros((len(d), num_clusters))
    np.add.at(counts, (np.arange(len(d))[:, None], d), 1.0)
    w = counts[:, cluster_idx]  # (chunk, trials)
    pos = np.add.reduceat(w * y, starts, axis=1)  # per tie group, ascending score
    neg = np.add.reduceat(w * ~y, starts, axis=1)
    total_pos = np.maximum(pos.sum(1), 1e-300)
    total_neg = np.maximum(neg.sum(1), 1e-300)
    below = np.cumsum(neg, axis=1) - neg
    auc_b.append((pos * (below + 0.5 * neg)).sum(1) / (total_pos * total_neg))
    # predicting IN at score >= a group's score: cumulative sums from the top
    tpr = np.cumsum(pos[:, ::-1], axis=1) / total_pos[:, None]
    fpr = np.cumsum(neg[:, ::-1], axis=1) / total_neg[:, None]
    for t in fprs:
      tpr_b[t].append(np.where(fpr <= t + 1e-12, tpr, 0.0).max(axis=1))
  alpha = (1 - level) / 2

  def interval(values):
    v = np.concatenate(values)
    return float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha))

  return interval(auc_b), {t: interval(v) for t, v in tpr_b.items()}


def cluster_bootstrap_auc(scores, is_member, clusters, reps: int = 200, seed: int = 0,
                          level: float = 0.95) -> tuple[float, float]:
  """The AUC interval of ``cluster_bootstrap``."""
  return cluster_bootstrap(scores, is_member, clusters, (), reps, seed, level)[0]


def attack_metrics(scores, is_member, fprs=DEFAULT_FPRS, clusters=None) -> StratumMetrics:
  """AUC with a 95% interval, balanced accuracy, TPR at each FPR with Clopper-Pearson intervals
  (and, with ``clusters``, a cluster-bootstrap interval ``tpr_ci95_bootstrap`` that accounts for
  correlated trials).

  The AUC interval is a cluster bootstrap over ``clusters`` (the pool example of each trial)
  when given, else Hanley & McNeil's, which assumes independent trials.
  """
  scores = np.asarray(scores, np.float64).ravel()
  is_member = np.asarray(is_member, bool).ravel()
  fpr, tpr, _ = roc_curve(scores, is_member)
  pos, neg = int(is_member.sum()), int((~is_member).sum())
  targets = list(fprs)
  if neg >= 1e5 and VERY_LOW_FPR not in targets:
    targets = [VERY_LOW_FPR, *targets]
  a = auc(fpr, tpr)
  tprs = {fpr_key(t): tpr_at_fpr(fpr, tpr, t, pos, neg) for t in targets}
  if clusters is None:
    interval, method = _auc_interval(a, pos, neg), "hanley_mcneil"
  else:
    interval, tpr_intervals = cluster_bootstrap(scores, is_member, clusters, targets)
    interval = (min(interval[0], a), max(interval[1], a))
    method = "cluster_bootstrap"
    # Resampling clusters biases TPR at a low FPR (duplicated examples), so a percentile
    # interval can miss the point estimate; it is widened to contain it (conservative).
    for t in targets:
      entry = tprs[fpr_key(t)]
      lo, hi = tpr_intervals[t]
      tprs[fpr_key(t)] = dataclasses.replace(
          entry, tpr_ci95_bootstrap=(min(lo, entry.tpr), max(hi, entry.tpr)))
  return StratumMetrics(auc=a, auc_ci95=tuple(interval), auc_ci_method=method,
                        balanced_accuracy=balanced_accuracy(fpr, tpr), tpr_at_fpr=tprs,
                        positives=pos, negatives=neg)


def _auc_interval(a: float, pos: int, neg: int, level: float = 0.95) -> tuple[float, float]:
  """Hanley & McNeil (1982) standard error of the AUC, normal interval clipped to [0, 1]."""
  q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
  var = (a * (1 - a) + (pos - 1) * (q1 - a * a) + (neg - 1) * (q2 - a * a)) / (pos * neg)
  z = scipy.stats.norm.ppf(0.5 + level / 2)
  half = z * np.sqrt(max(var, 0.0))
  return max(0.0, a - half), min(1.0, a + half)


def init_masks(init_indices: np.ndarray, num_examples: int) -> np.ndarray:
  """(M, n) pool indices (-1 = none) -> (M, N) bool: example i was an init image of run m."""
  init_indices = np.asarray(init_indices)
  out = np.zeros((init_indices.shape[0], num_examples), bool)
  for m, idx in enumerate(init_indices):
    idx = idx[idx >= 0]
    out[m, idx] = True
  return out


def stratified_metrics(membership, keep, is_init, fprs=DEFAULT_FPRS) -> AttackResult:
  """Metrics pooled over all targets, for each member group against the same non-members.

  membership, keep, is_init: (M, N). Groups: the target run's init images; its other members;
  all its members. A group with no trial gives ``None``.
  """
  membership = np.asarray(membership, np.float64)
  keep, is_init = np.asarray(keep, bool), np.asarray(is_init, bool)
  if np.any(is_init & ~keep):
    raise ValueError("An init image must be a member of its run (is_init implies keep).")
  groups = {"init_images": keep & is_init, "other_members": keep & ~is_init,
            "all_members": keep}
  strata, curves = {}, {}
  for name, positive in groups.items():
    select = positive | ~keep
    if not positive.any():
      strata[name] = None
      continue
    example = np.broadcast_to(np.arange(keep.shape[1]), keep.shape)
    strata[name] = attack_metrics(membership[select], positive[select], fprs,
                                  clusters=example[select])
    curves[name] = roc_curve(membership[select], positive[select])[:2]
  return AttackResult(strata, curves)
