"""Training fresh networks by the DC evaluation protocol, one or many at once."""

from dcjax.train.config import TrainConfig
from dcjax.train.engine import (accuracy, init_variables, make_optimizer, predict, predict_many,
                                resolve_strategy, train, train_many)

__all__ = ["TrainConfig", "accuracy", "init_variables", "make_optimizer", "predict",
           "predict_many", "resolve_strategy", "train", "train_many"]
