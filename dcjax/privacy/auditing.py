"""Empirical lower bounds on epsilon from canary trials, and the check of an attack against a
proven bound.

Two lower bounds, both at confidence 1 - alpha (default 95%):

* ``split_half_epsilon``: the canary trials of many runs (M, K), split by canary into two
  halves; the threshold (and the side of the test) is chosen on one half, the bound is computed
  on the other with Clopper-Pearson ends (Jagielski et al. 2020; Nasr et al. 2021):
  eps_lb = log((TPR_low - delta) / FPR_high), or the same with the roles of the members and the
  non-members swapped. Choosing the threshold on the trials of the bound would be optimistic.
* ``one_run_epsilon``: Steinke, Nasr & Jagielski (2023), one training run with K canaries: guess
  the top-scored canaries IN and the bottom-scored OUT; under pure eps-DP the number of correct
  guesses among r is dominated by Binomial(r, e^eps / (1 + e^eps)), so every eps whose binomial
  tail at the observed count is below alpha is rejected. This is the delta = 0 form of their
  theorem; with delta > 0 the bound it gives is slightly optimistic.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

from dcjax.mia.metrics import clopper_pearson

DEFAULT_LEVEL = 0.95
ONE_RUN_GUESS_FRACTION = 0.25  # of the canaries guessed IN, and as many guessed OUT


def epsilon_from_counts(tp: int, positives: int, fp: int, negatives: int, delta: float = 0.0,
                        level: float = DEFAULT_LEVEL) -> float:
  """The eps lower bound of one threshold test that flagged tp of ``positives`` members and fp of
  ``negatives`` non-members: max(0, log((TPR_low - delta) / FPR_high), log((TNR_low - delta) /
  FNR_high)), each end one-sided at (1 + level) / 2 so that both hold together at ``level``."""
  if positives < 1 or negatives < 1:
    raise ValueError(f"need members and non-members, got {positives} and {negatives}.")
  best = 0.0
  for hits, pos, false, neg in ((tp, positives, fp, negatives),
                                (negatives - fp, negatives, positives - tp, positives)):
    # the two-sided interval at ``level``: each end is one-sided at (1 + level) / 2
    low = clopper_pearson(hits, pos, level)[0]
    high = clopper_pearson(false, neg, level)[1]
    if low - delta > 0 and high > 0:
      best = max(best, math.log((low - delta) / high))
  return best


def _best_threshold(member: np.ndarray, nonmember: np.ndarray, delta: float, level: float
                    ) -> tuple[float, float]:
  """(threshold, eps) maximising ``epsilon_from_counts`` over the scores' own thresholds
  (a score >= threshold means IN)."""
  thresholds = np.unique(np.concatenate([member, nonmember]))
  best = (float(thresholds[0]), -1.0)
  m_sorted, n_sorted = np.sort(member), np.sort(nonmember)
  for t in thresholds:
    tp = len(m_sorted) - np.searchsorted(m_sorted, t, side="left")
    fp = len(n_sorted) - np.searchsorted(n_sorted, t, side="left")
    eps = epsilon_from_counts(int(tp), len(member), int(fp), len(nonmember), delta, level)
    if eps > best[1]:
      best = (float(t), eps)
  return best


def split_half_epsilon(scores: np.ndarray, keep: np.ndarray, delta: float = 0.0,
                       level: float = DEFAULT_LEVEL, seed: int = 0) -> dict:
  """The eps lower bound from canary trials: scores, keep (M, K) (run x canary; higher score =
  more likely IN). The canaries are split in two halves by a permutation from ``seed``; the
  threshold is chosen on the first, the bound computed on the second. Returns a JSON-ready dict
  with the bound, the threshold, the counts and the optimistic same-half figure (for contrast
  only; it is not a bound)."""
  scores, keep = np.asarray(scores, np.float64), np.asarray(keep, bool)
  if scores.shape != keep.shape or scores.ndim != 2 or scores.shape[1] < 2:
    raise ValueError(f"scores and keep must both be (M, K) with K >= 2 canaries, got "
                     f"{scores.shape} and {keep.shape}.")
  order = np.random.default_rng(seed).permutation(scores.shape[1])
  select, test = order[: len(order) // 2], order[len(order) // 2:]
  sel_s, sel_k = scores[:, select], keep[:, select]
  threshold, eps_select = _best_threshold(sel_s[sel_k], sel_s[~sel_k], delta, level)
  s, k = scores[:, test], keep[:, test]
  if not k.any() or k.all():
    raise ValueError("the held-out canary trials need both members and non-members.")
  tp, fp = int((s[k] >= threshold).sum()), int((s[~k] >= threshold).sum())
  eps = epsilon_from_counts(tp, int(k.sum()), fp, int((~k).sum()), delta, level)
  return {"epsilon_lb": eps, "threshold": threshold, "level": level, "delta": delta,
          "true_positives": tp, "positives": int(k.sum()), "false_positives": fp,
          "negatives": int((~k).sum()), "selection_half_epsilon": eps_select,
          "method": "split-half Clopper-Pearson"}


def one_run_epsilon(scores: np.ndarray, keep: np.ndarray, guesses: int | None = None,
                    alpha: float = 1 - DEFAULT_LEVEL) -> dict:
  """The one-run eps lower bound of Steinke et al. (2023) from one run's canaries: scores, keep
  (K,). The top ``guesses`` canaries are guessed IN and the bottom ``guesses`` OUT (default: a
  quarter of K each); ``correct`` of the 2 * guesses guesses are right. Returns a JSON-ready
  dict: the largest eps with P[Binomial(r, e^eps / (1 + e^eps)) >= correct] <= alpha (0 if
  none)."""
  scores, keep = np.asarray(scores, np.float64), np.asarray(keep, bool)
  if scores.shape != keep.shape or scores.ndim != 1:
    raise ValueError(f"scores and keep must both be (K,), got {scores.shape} and {keep.shape}.")
  guesses = guesses or max(1, int(len(scores) * ONE_RUN_GUESS_FRACTION))
  if not 1 <= 2 * guesses <= len(scores):
    raise ValueError(f"guesses must be in [1, K/2 = {len(scores) // 2}], got {guesses}.")
  order = np.argsort(-scores, kind="stable")
  correct = int(keep[order[:guesses]].sum() + (~keep[order[-guesses:]]).sum())
  r = 2 * guesses

  def tail(eps):  # P[Bin(r, p_eps) >= correct]
    p = 1.0 / (1.0 + math.exp(-eps))
    return float(stats.binom.sf(correct - 1, r, p))

  if tail(0.0) > alpha:
    eps = 0.0
  elif tail(50.0) <= alpha:
    eps = 50.0
  else:
    eps = float(optimize.brentq(lambda e: tail(e) - alpha, 0.0, 50.0, xtol=1e-9))
  return {"epsilon_lb": eps, "guesses": r, "correct": correct, "canaries": int(len(scores)),
          "alpha": alpha, "method": "one-run (Steinke et al. 2023, delta = 0)"}


def bound_violations(points: dict[str, dict], bound, tol: float = 1e-9) -> list[dict]:
  """Where an empirical TPR exceeds what the mechanism allows. points: {name: {fpr: (tpr,
  tpr_low, fpr_high)}}: a stratum's TPR at a nominal FPR, the lower end of its 95% interval and
  the upper end of the FPR that threshold may truly have (few non-members cannot pin a small
  FPR down); bound: fpr -> the largest TPR allowed there. A violation is a lower end above the
  bound at the FPR's upper end: with 95% confidence on both, the attack did better than any
  attack can, so the mechanism or its accounting is wrong."""
  out = []
  for name, per_fpr in points.items():
    for fpr, (tpr, low, fpr_high) in per_fpr.items():
      allowed = float(bound(fpr_high))
      if low > allowed + tol:
        out.append({"where": name, "fpr": fpr, "fpr_high": fpr_high, "tpr": tpr,
                    "tpr_low": low, "bound": allowed})
  return out


def fpr_upper(fpr: float, negatives: int, level: float = DEFAULT_LEVEL) -> float:
  """The Clopper-Pearson upper end of the FPR of a threshold that let through at most
  floor(fpr * negatives) of ``negatives`` non-members."""
  return clopper_pearson(int(math.floor(fpr * negatives + 1e-9)), negatives, level)[1]
