"""Empirical lower bounds on epsilon from canary trials, and the check of an attack against a
proven bound.

* ``one_run_epsilon`` / ``runs_one_run_epsilon``: the headline bound, valid under the dependence
  the audit has. Each run is audited on its own canaries by the one-run test of Steinke, Nasr &
  Jagielski (NeurIPS 2023, with delta), computed by ``jax_privacy.auditing`` (the ``privacy``
  extra); the runs are combined by a union (Bonferroni) bound: run r at level alpha / M, and
  the largest of the M bounds holds with confidence 1 - alpha whatever the dependence between
  runs. The argument, and why the scores must come from the run's own network alone, is in
  docs/privacy.md.
* ``split_half_epsilon``: a heuristic kept for comparison with earlier reports: the canary
  trials of all runs (M, K) split by canary into two halves, the threshold chosen on one, the
  bound computed on the other with Clopper-Pearson ends (Jagielski et al. 2020; Nasr et al.
  2021). Its 95% treats every trial as independent, but trials of one run share a network and
  trials of one canary share its shadow statistics, so the stated confidence is approximate.
"""

from __future__ import annotations

import math

import numpy as np

from dcjax.mia.metrics import clopper_pearson

DEFAULT_LEVEL = 0.95


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
          "method": "split-half Clopper-Pearson (heuristic: trials treated as independent)"}


def _auditor(scores, keep):
  try:
    from jax_privacy import auditing as jp_auditing  # pylint: disable=import-outside-toplevel
  except ImportError as e:  # pragma: no cover - the test extra installs it
    raise ImportError("the one-run canary bound needs jax-privacy: pip install "
                      "'dcjax[privacy]'") from e
  return jp_auditing.CanaryScoreAuditor(scores[keep], scores[~keep])


def require_auditor() -> None:
  """Raises ImportError now (before hours of runs) when the one-run bound cannot be computed."""
  _auditor(np.array([1.0, 0.0]), np.array([True, False]))


def one_run_epsilon(scores: np.ndarray, keep: np.ndarray, delta: float,
                    alpha: float = 1 - DEFAULT_LEVEL) -> float:
  """The one-run eps lower bound of Steinke, Nasr & Jagielski (2023) from ONE run's K canaries,
  each IN independently with probability 1/2: scores, keep (K,) (higher = guessed IN). Guesses
  are the canaries above a threshold (IN guesses only), every threshold tried with a Bonferroni
  correction; (eps, delta)-DP is rejected at significance ``alpha`` for every eps below the
  result (0: none rejected). Computed by ``jax_privacy.auditing.CanaryScoreAuditor``."""
  scores, keep = np.asarray(scores, np.float64), np.asarray(keep, bool)
  if scores.shape != keep.shape or scores.ndim != 1:
    raise ValueError(f"scores and keep must both be (K,), got {scores.shape} and {keep.shape}.")
  if keep.all() or not keep.any():
    raise ValueError(f"the run's canaries need both IN and OUT ones, got {int(keep.sum())} IN "
                     f"of {keep.size}.")
  return float(_auditor(scores, keep).epsilon_one_run(significance=alpha, delta=delta))


def runs_one_run_epsilon(scores: np.ndarray, keep: np.ndarray, delta: float,
                         alpha: float = 1 - DEFAULT_LEVEL) -> dict:
  """The headline canary bound of M runs: scores, keep (M, K) (run x canary, each scored by
  that run's network alone). Run r's one-run bound at significance alpha / M; the largest
  holds with confidence 1 - alpha (union bound over runs). Returns a JSON-ready dict."""
  scores, keep = np.asarray(scores, np.float64), np.asarray(keep, bool)
  if scores.shape != keep.shape or scores.ndim != 2 or scores.shape[1] < 2:
    raise ValueError(f"scores and keep must both be (M, K) with K >= 2 canaries, got "
                     f"{scores.shape} and {keep.shape}.")
  runs = scores.shape[0]
  per_run = [one_run_epsilon(s, k, delta, alpha / runs) if k.any() and not k.all() else 0.0
             for s, k in zip(scores, keep)]
  best = int(np.argmax(per_run))
  return {"epsilon_lb": per_run[best], "run": best, "per_run": per_run, "alpha": alpha,
          "delta": delta, "canaries": int(scores.shape[1]),
          "method": "one-run (Steinke, Nasr & Jagielski 2023) per run, Bonferroni over runs"}


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
