"""Privacy checks beyond attacks on trained models: visual privacy and the linear-DM theory."""

from dcjax.privacy.theory import linear_dm_closed_form, one_example_influence
from dcjax.privacy.visual import distance_scores, nearest_real, ssim

__all__ = ["distance_scores", "linear_dm_closed_form", "nearest_real", "one_example_influence",
           "ssim"]
