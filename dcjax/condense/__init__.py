"""Dataset condensation: DM, DC, DSA, MTT, FRePo and the DP condensers NDPDC and LDPDC,
behind one registry and one resumable, mask-aware runner."""

from dcjax.condense.dc import DCConfig, match_distance
from dcjax.condense.dm import DMConfig
from dcjax.condense.evaluate import evaluate, protocol_config, reference_eval_config
from dcjax.condense.contract import Condenser, Pool, Spec
from dcjax.condense.registry import condenser_names, get_condenser, register_condenser
from dcjax.condense.run_setup import check_members, dataset_preset, random_subset, validate
from dcjax.condense.runner import condense, condense_many
from dcjax.condense.synthetic_set import (SyntheticSet, load_synthetic_set, save_synthetic_set,
                                         synset_complete)

__all__ = ["Condenser", "Pool", "Spec", "DCConfig", "DMConfig", "SyntheticSet", "check_members", "condense",
           "condense_many", "condenser_names", "dataset_preset", "evaluate", "get_condenser",
           "load_synthetic_set", "match_distance", "protocol_config", "random_subset",
           "reference_eval_config", "register_condenser", "save_synthetic_set",
           "synset_complete", "validate"]
