"""Help texts more than one command shows, kept here so they stay the same in each."""

__all__ = ["BLUR_HELP", "TTA_HELP"]

# the blur kinds and mixes of deblur_core.blur, with their extents (docs/training.md lists them all)
BLUR_HELP = ("gaussian | motion (5-21 px) | shake (25 px kernel) | video (pans to 15 px) | long (pans and motion "
             "of 25-40 px) | nonuniform (a foreground moving 8-40 px over a background moving 1-20 px), or a mix: "
             "mix (the first four) | realistic (motion and pans 3-40 px, shake to 31 px, defocus, non-uniform); "
             "or none (no blur) | light (defocus sigma 0.3-0.8 or a 1-2 px shake)")

TTA_HELP = ("Test-time augmentation: average the network's output over N flips and rotations of each frame "
            "(1, 2, 4 or 8; N times the compute).")
