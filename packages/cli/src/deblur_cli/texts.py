"""Help texts more than one command shows, kept here so they stay the same in each."""

from deblur_core.defaults import DEFAULT_MODEL

__all__ = ["BLUR_HELP", "MODEL_HELP", "TLC_HELP", "TTA_HELP", "WEIGHTS_HELP"]

# the blur kinds and mixes of deblur_core.blur, with their extents (docs/training.md lists them all)
BLUR_HELP = ("gaussian (sigma 1, 2 or 3 px: the original project's CIFAR-10 recipe) | motion (straight, 5-21 px) | "
             "shake (25 px kernel) | video (a pan to 15 px, 15 sub-frames in linear light) | long (curved pans and "
             "motion of 25-40 px) | nonuniform (a foreground moving 8-40 px over a background moving 1-20 px), or a "
             "mix: mix (the first four, a quarter each) | realistic (recipes of its own: defocus sigma 0.5-3.2, "
             "curved motion and sub-frame pans 3-40 px, shake to 31 px, non-uniform) | broad (half mix, half "
             "realistic); or none (no blur) | light (defocus sigma 0.3-0.8 or a 1-2 px shake)")

TTA_HELP = ("Test-time augmentation: average the network's output over N flips and rotations of each frame "
            "(1, 2, 4 or 8; N times the compute).")

TLC_HELP = ("nafnet models only: pool the channel attention over windows of 1.5 training crops around each pixel "
            "(TLC) instead of the whole frame. Off by default: on the held-out photos it scored lower (MODELS.md).")

MODEL_HELP = f"Model variant (see 'deblur-cli models'). Default: {DEFAULT_MODEL}, or the network of --weights."

WEIGHTS_HELP = ("A checkpoint: this project's .safetensors (default: the weights shipped for the model), or one "
                "published by a network's authors that spandrel recognises (.pth, .ckpt or .safetensors: NAFNet, "
                "FFTformer, Restormer, ...; needs the zoo extra). The network is read from the file: no --model.")
