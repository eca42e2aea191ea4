"""Training and validation data in every supported on-disk format.

A training batch is a pure function of ``(seed, step, rank)``: there is no iterator state, so a resumed
run sees exactly the batches the interrupted one would have, and each rank of a distributed run draws its
own. Validation sets are fixed: the same crops (and, for synthetic blur, the same kernels) on every call.

Specs (``--data SPEC``):

=================  ========================================================================================
``default``        photographs bundled in scikit-image's wheel, blurred on the fly (split below)
``cifar10:PATH``   the ``cifar-10-batches-py`` folder; train on ``data_batch_*``, validate on the first
                   ``val_count`` images of ``test_batch``; the ``gaussian`` kind (the original project's recipe) on whole
                   32x32 images
``reds:PATH``      REDS: ``train/train_blur/000/00000000.png`` + ``train/train_sharp/...``; ``val/val_blur``
                   + ``val/val_sharp`` for validation
``gopro:PATH``     GOPRO_Large: ``train/<clip>/blur/*.png`` + ``train/<clip>/sharp/*.png``; ``test/`` for
                   validation (``blur_gamma/`` is not used)
``pairs:PATH``     ``PATH/blur/...`` + ``PATH/sharp/...`` with the same relative paths; validation is
                   ``PATH/val/blur`` + ``PATH/val/sharp`` if present, else every 10th pair (natural order)
``folder:PATH``    a tree of sharp images, blurred on the fly; ``PATH/train`` + ``PATH/val`` if both exist
                   (whole photos held out), else every 10th image (natural order) validates
=================  ========================================================================================

Synthetic blur is applied to a crop with a margin of context that is cut away afterwards, so the
blur's border handling never reaches the pixels the model is trained or scored on. Validation crops are
spread over the validation images on an even grid per image (coverage, not a lucky draw). Paired data are read
lazily (REDS has 24,000 720p frames) through a small byte-bounded cache.

Modules: :mod:`.base` (:class:`Batch`, :class:`PairSource`, crop helpers), :mod:`.formats` (the on-disk
layouts and their splits), :mod:`.synthetic`, :mod:`.paired` and :mod:`.cifar` (the sources),
:mod:`.batches` (synthetic training batches made on the training device), :mod:`.cache` (the byte-bounded
image cache), :mod:`.pairs` (:func:`~.pairs.make_blur_pairs`: writes a blurred/sharp dataset that
``pairs:PATH`` reads back).
"""

from __future__ import annotations

from pathlib import Path

from ..blur import check_kind
from ..errors import DatasetError
from .base import Batch, PairSource
from .cifar import CifarSource, open_cifar
from .formats import DEFAULT_TRAIN, DEFAULT_VAL, PAIRED_FORMATS, default_split, folder_split
from .paired import PairedSource
from .synthetic import SyntheticSource

__all__ = [
    "Batch",
    "PairSource",
    "SyntheticSource",
    "CifarSource",
    "PairedSource",
    "open_dataset",
    "DATASET_SPECS",
    "DEFAULT_TRAIN",
    "DEFAULT_VAL",
]

DATASET_SPECS = ("default", "cifar10:PATH", "reds:PATH", "gopro:PATH", "pairs:PATH", "folder:PATH")


def open_dataset(spec: str, *, blur: str = "mix", val_patch: int = 128, val_count: int = 48, channels: int = 3,
                 for_eval: bool = False) -> SyntheticSource | CifarSource | PairedSource:
    """Open the dataset ``spec`` (see the module docstring for the forms and the splits).

    Everything that can be checked without decoding pixels is checked here, before training starts: the
    folders exist and hold images, every blurred image has a sharp twin of the same size, CIFAR batches
    are present and well-formed. Whether a training patch fits the images is checked by ``check_patch``
    (and by every ``train_batch``).

    Args:
        spec: ``default`` or ``FORMAT:PATH`` with FORMAT one of cifar10, reds, gopro, pairs, folder.
        blur: synthetic blur for ``default`` and ``folder`` (a kind of :func:`deblur_core.blur.synth_blur`);
            CIFAR-10 always uses ``gaussian`` (the original project's recipe) and paired formats carry their
            own blur.
        val_patch: side of the validation crops (cut to the smallest validation image if that is smaller;
            CIFAR-10 validates on whole 32x32 images).
        val_count: number of validation crops (CIFAR-10: images of ``test_batch``).
        channels: 3 (gray images are replicated) or 1 (RGB images are averaged).
        for_eval: open a test set rather than a training set: only the held-out split must exist
            (``reds:`` its ``val``, ``gopro:`` its ``test``), and ``pairs:PATH`` without a ``val`` folder
            holds out every pair (all of PATH is scored), not every 10th.

    Returns:
        A :class:`PairSource`.

    Raises:
        DatasetError: unknown spec, or a dataset that does not have its format's layout; the message names
            the offending folder or file.
        ValueError: an unknown blur kind or a non-positive size.
    """
    check_kind(blur)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if val_patch < 1 or val_count < 1:
        raise ValueError(f"val_patch and val_count must be positive, got {val_patch} and {val_count}")
    fmt, _, path = spec.partition(":")
    root = Path(path).expanduser()
    if spec == "default":
        train, val = default_split()
        return SyntheticSource("default", "default", train, val, blur=blur, val_patch=val_patch,
                               val_count=val_count, channels=channels, skip_small=True)
    if not path or fmt not in ("cifar10", "folder", *PAIRED_FORMATS):
        raise DatasetError(f"unknown dataset spec '{spec}'; expected one of: {', '.join(DATASET_SPECS)}")
    if fmt == "cifar10":
        return open_cifar(root, val_count=val_count, channels=channels)
    if fmt == "folder":
        train, val = folder_split(root)
        return SyntheticSource(f"folder:{root}", "folder", train, val, blur=blur, val_patch=val_patch,
                               val_count=val_count, channels=channels)
    train, val = PAIRED_FORMATS[fmt](root, for_eval)
    return PairedSource(f"{fmt}:{root}", fmt, train, val, val_patch=val_patch, val_count=val_count,
                        channels=channels)
