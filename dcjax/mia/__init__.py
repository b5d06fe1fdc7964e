"""Membership inference: balanced runs, recipes, stable scores, LiRA and the loss attack, metrics."""

from dcjax.mia.attacks import ATTACKS, get_attack, leave_one_out, lira_offline, lira_online
from dcjax.mia.masks import balanced_keep_masks
from dcjax.mia.metrics import (STRATA, attack_metrics, clopper_pearson, init_masks, roc_curve,
                               stratified_metrics)
from dcjax.mia.pipeline import RunsConfig, query_views, run_recipe
from dcjax.mia.recipes import Recipe, parse_recipe
from dcjax.mia.scores import logit_scaled_confidence, view_averaged_scores

__all__ = ["ATTACKS", "RunsConfig", "Recipe", "STRATA", "attack_metrics", "balanced_keep_masks",
           "clopper_pearson", "get_attack", "init_masks", "leave_one_out", "lira_offline",
           "lira_online", "logit_scaled_confidence", "parse_recipe", "query_views", "roc_curve",
           "run_recipe", "stratified_metrics", "view_averaged_scores"]
