"""Test-time augmentation: the mean of a network's outputs over flips and rotations of its input.

A self-ensemble (Lim et al., EDSR, 2017; the "x8" figures NAFNet and others report) runs the network on the
8 symmetries of the square (or the first ``n`` of them), undoes each on the output and averages: the errors
a network makes differently on a mirrored input partly cancel, at ``n`` times the compute. Blur has no
preferred direction, so every symmetry is as valid an input as the original.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["TTA_CHOICES", "SelfEnsemble", "check_tta", "with_tta"]

TTA_CHOICES = (1, 2, 4, 8)
# (transpose, flip left-right, flip up-down): the identity first, then a mirror, the other flips, the rotations
_SYMMETRIES = ((False, False, False), (False, True, False), (False, False, True), (False, True, True),
               (True, False, False), (True, True, False), (True, False, True), (True, True, True))


def check_tta(n: int) -> None:
    """Raise ``ValueError`` unless ``n`` is one of :data:`TTA_CHOICES`."""
    if n not in TTA_CHOICES:
        raise ValueError(f"tta must be one of {', '.join(map(str, TTA_CHOICES))} (passes per frame), got {n}")


def _apply(x: Tensor, symmetry: tuple[bool, bool, bool]) -> Tensor:
    transpose, lr, ud = symmetry
    x = x.transpose(-1, -2) if transpose else x
    dims = [d for d, on in ((-1, lr), (-2, ud)) if on]
    return x.flip(dims) if dims else x


def _undo(y: Tensor, symmetry: tuple[bool, bool, bool]) -> Tensor:
    transpose, lr, ud = symmetry
    dims = [d for d, on in ((-1, lr), (-2, ud)) if on]
    y = y.flip(dims) if dims else y
    return y.transpose(-1, -2) if transpose else y


class SelfEnsemble(nn.Module):
    """``model`` run on the first ``n`` symmetries of its input (see :data:`TTA_CHOICES`), outputs averaged.

    Attributes the wrapped network declares for inference (its stride, its CPU autocast preference) read
    through, so the wrapper is used wherever the network is.
    """

    def __init__(self, model: nn.Module, n: int) -> None:
        super().__init__()
        check_tta(n)
        self.model, self.n = model, n

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("model"), name)

    def forward(self, x: Tensor) -> Tensor:
        total = None
        for symmetry in _SYMMETRIES[: self.n]:
            y = _undo(self.model(_apply(x, symmetry)), symmetry).float()
            total = y if total is None else total.add_(y)
        return (total / self.n).to(x.dtype)


def with_tta(model: nn.Module, n: int) -> nn.Module:
    """``model`` itself for ``n`` = 1, else its :class:`SelfEnsemble` of ``n`` passes."""
    check_tta(n)
    return model if n == 1 else SelfEnsemble(model, n)

