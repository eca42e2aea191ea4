"""deblur core: models, blur synthesis, metrics, image IO, checkpoints.

Inside core, images are (B, C, H, W) float tensors in [0, 1]; conversion from and to 8- and 16-bit arrays
happens only in :mod:`deblur_core.io`.
"""

__version__ = "0.1.0"
