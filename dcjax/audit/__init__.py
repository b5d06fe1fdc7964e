"""The privacy audit of dataset condensation: config, presets, the study, its report."""

from dcjax.audit.config import (AuditConfig, PRESETS, RECIPE_TOKENS, get_preset, recipes,
                                runs_config)
from dcjax.audit.study import compare_with_baseline, prepare, run_audit, theory

__all__ = ["AuditConfig", "PRESETS", "RECIPE_TOKENS", "compare_with_baseline", "get_preset",
           "prepare", "recipes", "run_audit", "runs_config", "theory"]
