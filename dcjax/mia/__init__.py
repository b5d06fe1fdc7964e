"""Membership inference over arrays: balanced runs, stable scores, LiRA and the loss attack,
metrics with intervals. It knows nothing of how the scores were produced (``dcjax.runs`` does)
and imports neither flax, optax nor orbax."""

from dcjax.mia.attacks import (ATTACKS, DEFAULT_ATTACKS, RMIA_ATTACKS, Population, attack_runs,
                               get_attack, leave_one_out, lira_offline, lira_online,
                               membership_scores)
from dcjax.mia.rmia import RMIAConfig
from dcjax.mia.masks import balanced_keep_masks
from dcjax.mia.metrics import (attack_metrics, clopper_pearson, init_masks, roc_curve,
                               stratified_metrics)
from dcjax.mia.results import STRATA, AttackResult, RocPoint, StratumMetrics, fpr_key
from dcjax.mia.scores import logit_scaled_confidence, view_averaged_scores

__all__ = ["ATTACKS", "AttackResult", "DEFAULT_ATTACKS", "Population", "RMIAConfig",
           "RMIA_ATTACKS", "membership_scores", "RocPoint", "STRATA", "StratumMetrics",
           "attack_metrics", "attack_runs", "balanced_keep_masks", "clopper_pearson", "fpr_key",
           "get_attack", "init_masks", "leave_one_out", "lira_offline", "lira_online",
           "logit_scaled_confidence", "roc_curve", "stratified_metrics", "view_averaged_scores"]
