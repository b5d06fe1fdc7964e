"""The privacy audit of dataset condensation: config, presets, the study, its report."""

from dcjax.audit.analysis import compare_with_baseline, theory
from dcjax.audit.config import AuditConfig, PRESETS, get_preset, recipes, runs_config
from dcjax.audit.study import prepare, run_audit

__all__ = ["AuditConfig", "PRESETS", "compare_with_baseline", "get_preset", "prepare", "recipes",
           "run_audit", "runs_config", "theory"]
