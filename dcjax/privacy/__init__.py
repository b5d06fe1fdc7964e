"""Privacy checks beyond attacks on trained models: visual privacy and the linear-DM theory."""

from dcjax.privacy.theory import (linear_dm_check, linear_dm_closed_form, m_over_n_rows,
                                  one_example_influence)
from dcjax.privacy.visual import distance_scores, nearest_real, released_set_privacy, ssim

__all__ = ["distance_scores", "linear_dm_check", "linear_dm_closed_form", "m_over_n_rows",
           "nearest_real", "one_example_influence", "released_set_privacy", "ssim"]
