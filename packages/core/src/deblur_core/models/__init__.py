"""Deblurring networks behind one registry: ``list_models()``, ``get_model(name, **kwargs)``.

Importing the family modules registers their variants; the list is explicit, nothing scans files.
"""

from . import caessc, eddensenet, nafnet, resunet, srn  # noqa: F401  (imported to register)
from .base import DeblurModel, pad_to_multiple
from .profile import ModelProfile, activation_bytes_per_pixel, count_parameters, gflops_per_megapixel, profile_model
from .registry import get_model, list_models, register_model

__all__ = [
    "DeblurModel",
    "ModelProfile",
    "activation_bytes_per_pixel",
    "count_parameters",
    "get_model",
    "gflops_per_megapixel",
    "list_models",
    "pad_to_multiple",
    "profile_model",
    "register_model",
]
