"""Facts about the named datasets that code needs without loading them.

``DIGIT_LIKE``: handwritten or printed digits, not mirror-symmetric (no flip in DSA, 1-px shifts
as query views). ``SPLIT_SIZES``: (image shape, classes, training examples, test examples) of the
loaders' splits, for the theory table and the cost estimate of a paper-scale audit.
"""

from __future__ import annotations

DIGIT_LIKE = ("digits", "mnist", "svhn")
SPLIT_SIZES = {"digits": ((8, 8, 1), 10, 1497, 300),
               "mnist": ((28, 28, 1), 10, 60_000, 10_000),
               "fashion_mnist": ((28, 28, 1), 10, 60_000, 10_000),
               "cifar10": ((32, 32, 3), 10, 50_000, 10_000),
               "cifar100": ((32, 32, 3), 100, 50_000, 10_000),
               "svhn": ((32, 32, 3), 10, 73_257, 26_032),
               "celeba": ((32, 32, 3), 2, 162_770, 19_962)}


def is_digit_like(dataset_name: str) -> bool:
  return dataset_name in DIGIT_LIKE
