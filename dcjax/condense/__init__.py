"""Dataset condensation: DM, DC and DSA behind one resumable, mask-aware runner."""

from dcjax.condense.dc import DCConfig, match_distance
from dcjax.condense.dm import DMConfig
from dcjax.condense.evaluate import evaluate, protocol_config
from dcjax.condense.runner import METHODS, condense, get_method, random_subset, validate
from dcjax.condense.synthetic_set import (SyntheticSet, load_synthetic_set, save_synthetic_set,
                                         synset_complete)

__all__ = ["DCConfig", "DMConfig", "METHODS", "SyntheticSet", "condense", "evaluate",
           "get_method", "load_synthetic_set", "match_distance", "protocol_config",
           "random_subset", "save_synthetic_set", "synset_complete", "validate"]
