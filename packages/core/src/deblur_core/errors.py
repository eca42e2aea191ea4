"""The project's exception types.

Everything that goes wrong because of user input (a file, a dataset, a weight file) raises a subclass of
:class:`DeblurError`, so the CLI and the demo can show one clear message instead of a stack trace.
"""

from __future__ import annotations

__all__ = ["DeblurError", "ImageReadError", "ImageWriteError", "CheckpointError", "DatasetError",
           "ImageTooLargeError"]


class DeblurError(Exception):
    """Base class of the errors this project raises on bad input."""


class ImageReadError(DeblurError):
    """An image or video file is missing, corrupt, truncated or in an unsupported format."""

    def __init__(self, path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image '{self.path}': {reason}")


class ImageWriteError(DeblurError):
    """An image could not be written (unsupported extension or mode, disk error)."""

    def __init__(self, path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot write image '{self.path}': {reason}")


class CheckpointError(DeblurError):
    """A weight file or its metadata is missing, malformed, or does not fit the model."""


class DatasetError(DeblurError):
    """A dataset on disk does not have the layout its format requires."""


class ImageTooLargeError(ImageReadError):
    """An image has more pixels than the limit allows (checked from its header, before decoding)."""
