"""Runs: typed recipes, one run and many runs (recipe -> training set -> network -> logits),
their resumable stages. Everything the attacks in ``dcjax.mia`` consume is produced here."""

from dcjax.runs.pipeline import (RunResults, RunsConfig, apply_view, merge_runs, query_views,
                                 run, run_keys, run_many, run_recipe, run_recipe_per_run)
from dcjax.runs.recipes import (DPSGD, Condense, InitOnly, RandomSubset, Real, Recipe,
                                TrainingSet, parse, recipe_kinds, register_recipe)

__all__ = ["DPSGD", "Condense", "InitOnly", "RandomSubset", "Real", "Recipe", "RunResults",
           "RunsConfig", "TrainingSet", "apply_view", "parse", "query_views", "recipe_kinds",
           "register_recipe", "run", "run_keys", "run_many", "run_recipe", "merge_runs",
           "run_recipe_per_run"]
