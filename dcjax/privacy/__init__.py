"""Privacy checks beyond attacks on trained models: visual privacy of released sets."""

from dcjax.privacy.visual import distance_scores, nearest_real, ssim

__all__ = ["distance_scores", "nearest_real", "ssim"]
