"""dcjax: auditing the privacy of dataset condensation, in JAX."""

__version__ = "0.1.0"
