"""The XLA flags of the test suite, in one place for tests/conftest.py and the golden benchmark.

The suite's programs are tiny: compiling them costs more than running them. LLVM's backend
optimisation level 0 compiles them faster (measured on 2 CPU cores: the whole suite 269 s
against 321 s at the default level) and runs the same XLA program; the floats may differ in
the last bits from the default level's (fused multiply-adds, vectorised math), so the golden
metrics (tests/data/golden_tiny.json) are written under these flags and record them.
"""

import os

TEST_XLA_FLAGS = "--xla_force_host_platform_device_count=1 --xla_backend_optimization_level=0"


def use_test_xla_flags() -> None:
  """Sets XLA_FLAGS for this process unless the caller set them; call before jax starts."""
  os.environ.setdefault("XLA_FLAGS", TEST_XLA_FLAGS)
