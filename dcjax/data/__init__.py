"""Datasets, their preprocessing, and class-balanced sampling."""

from dcjax.data.dataset import Dataset, from_arrays, validate_arrays
from dcjax.data.facts import DIGIT_LIKE, SPLIT_SIZES, is_digit_like
from dcjax.data.loaders import DATASET_NAMES, check_dataset_name, load_dataset, synthetic_pixels
from dcjax.data.preprocessing import NORMALISATION, Preprocessing, fit_zca
from dcjax.data.sampling import check_per_class, sample_per_class

__all__ = ["Dataset", "from_arrays", "validate_arrays", "DATASET_NAMES", "check_dataset_name",
           "load_dataset",
           "synthetic_pixels", "NORMALISATION", "Preprocessing", "fit_zca", "check_per_class",
           "sample_per_class", "DIGIT_LIKE", "SPLIT_SIZES", "is_digit_like"]
