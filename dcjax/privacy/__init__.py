"""Differential privacy in one home: accounting (dp-accounting), the mechanisms every DP method
in dcjax is built from (Poisson sampling with a capacity, per-example clipping, noisy sums), and
auditing (empirical lower bounds from canaries, the check of attacks against a proven bound).

Imports neither networks nor condensers: the training engine and the DP condensers call these
mechanisms; the audit calls the accounting and the bounds.
"""

from dcjax.privacy import accounting, auditing, mechanisms
from dcjax.privacy.accounting import DEFAULT_DELTA, Guarantee, SampledGaussian
from dcjax.privacy.mechanisms import clip_per_example, noisy_sum, poisson_sample

__all__ = ["DEFAULT_DELTA", "Guarantee", "SampledGaussian", "accounting", "auditing",
           "clip_per_example", "mechanisms", "noisy_sum", "poisson_sample"]
