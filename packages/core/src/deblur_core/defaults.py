"""The model a user gets without naming one: ``deblur-cli batch``, ``eval`` and ``export`` without ``--model``,
and the demo's first choice.

The rule: among the shipped models that leave sharp frames alone (``deblur-cli eval --blur none``: at least
40 dB PSNR against the sharp photo) and run a 1280x720 frame in at most 1 s on the project's 2-core CPUs, the
one with the highest mean gain over the blur kinds of the model card (MODELS.md). README's model table says
which model that is and why. This module imports nothing, so the CLI's ``--help`` stays fast.
"""

__all__ = ["DEFAULT_MODEL"]

DEFAULT_MODEL = "nafnet-cpu"
