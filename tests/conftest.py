"""Shared fixtures: tiny data so the whole suite stays fast on 2 CPU cores.

The rule for every accuracy or statistical assertion here: the same seed gives slightly different
floats on another CPU model or XLA version, so no threshold may sit near the measured value.
Assert against a baseline with a clear gap (chance, another recipe), or against a threshold that
the measured value clears by at least 5x its spread across seeds; write the measured range in a
comment beside the assertion. Exact equalities are for what is exact: counts, shapes, bit-identical
reruns of the same program, closed forms.
"""

import os
import shutil
import tempfile

from tests.xla_flags import use_test_xla_flags

# One host device and fast compilation (tests/xla_flags.py); before jax initialises.
use_test_xla_flags()
# One XLA compilation cache for this pytest run, shared by the pytest-xdist workers (they inherit
# the controller's environment): many tests build the same programs, and compiling dominates a
# tiny test on CPU. A fresh directory per run, so the suite's time is that of a fresh clone.
if "DCJAX_TEST_JAX_CACHE" not in os.environ:
  os.environ["DCJAX_TEST_JAX_CACHE"] = tempfile.mkdtemp(prefix="dcjax-test-xla-cache-")
  os.environ["DCJAX_TEST_JAX_CACHE_OWNER"] = str(os.getpid())
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.environ["DCJAX_TEST_JAX_CACHE"])
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

import pytest  # noqa: E402

from dcjax.data import load_dataset  # noqa: E402


def pytest_sessionfinish(session):
  del session
  if os.environ.get("DCJAX_TEST_JAX_CACHE_OWNER") == str(os.getpid()):
    shutil.rmtree(os.environ["DCJAX_TEST_JAX_CACHE"], ignore_errors=True)


@pytest.fixture(scope="session")
def digits():
  return load_dataset("digits")


@pytest.fixture(scope="session")
def tiny_rgb():
  """4 classes x 12 train / 4 test images of 8x8x3 (train, test)."""
  return load_dataset("synthetic", num_classes=4, train_per_class=12, test_per_class=4,
                      image_shape=(8, 8, 3), seed=1)
