"""SRN-DeblurNet: the scale-recurrent network of Tao et al. (CVPR 2018).

The same encoder-decoder runs coarse to fine over ``scales`` scales (factor 0.5). At each scale its input
is the blurred image at that scale concatenated with the previous scale's estimate, upsampled; a ConvLSTM
at the bottleneck carries a hidden state from scale to scale, resized between them. Weights are shared
across scales. The encoder has three stages (a conv, stride 1 then 2 then 2, followed by ResBlocks), the
decoder mirrors it with ResBlocks and 4x4 transposed convolutions, and encoder features are *added* to
the decoder's (not concatenated).

Beyond the paper: each scale's output is the blurred input at that scale plus the network's residual,
with the last layer zero-initialised, so an untrained network is the identity and training from scratch
on a CPU budget starts from the blurred image instead of noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import DeblurModel
from .blocks import ConvLSTMCell, ResBlock, zero_init
from .registry import register_model

__all__ = ["SRN", "srn", "srn_small", "srn_paper", "srn_nolstm"]


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


class SRN(DeblurModel):
    """Scale-recurrent encoder-decoder.

    Args:
        in_channels: 1 or 3.
        channels: widths of the three encoder stages.
        kernel_size: kernel of every convolution but the ConvLSTM's and the transposed ones (4x4).
        blocks: ResBlocks per encoder stage and per decoder stage.
        scales: number of scales, coarse to fine, factor 0.5 between them.
        lstm: use the ConvLSTM at the bottleneck (``False`` drops the recurrent cell).
        lstm_kernel: kernel of the ConvLSTM's gate convolution.

    Returns:
        In eval mode the finest scale's estimate, (B, C, H, W). In training mode the list of every scale's
        estimate, coarsest first, for the multi-scale loss.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        channels: tuple[int, int, int] = (16, 32, 64),
        kernel_size: int = 3,
        blocks: int = 2,
        scales: int = 3,
        lstm: bool = True,
        lstm_kernel: int = 3,
    ) -> None:
        super().__init__(in_channels=in_channels)
        if scales < 1:
            raise ValueError(f"scales must be >= 1, got {scales}")
        c1, c2, c3 = channels
        k = kernel_size
        self.scales = scales
        self.stride = 4 * 2 ** (scales - 1)

        def stage(first: nn.Module, width: int) -> nn.Sequential:
            return nn.Sequential(first, nn.ReLU(inplace=True), *[ResBlock(width, k) for _ in range(blocks)])

        self.enc1 = stage(_conv(2 * in_channels, c1, k), c1)
        self.enc2 = stage(_conv(c1, c2, k, 2), c2)
        self.enc3 = stage(_conv(c2, c3, k, 2), c3)
        self.lstm = ConvLSTMCell(c3, c3, lstm_kernel) if lstm else None
        self.dec3 = nn.Sequential(*[ResBlock(c3, k) for _ in range(blocks)])
        self.up2 = nn.Sequential(nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1), nn.ReLU(inplace=True))
        self.dec2 = nn.Sequential(*[ResBlock(c2, k) for _ in range(blocks)])
        self.up1 = nn.Sequential(nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(inplace=True))
        self.dec1 = nn.Sequential(*[ResBlock(c1, k) for _ in range(blocks)])
        self.out = zero_init(_conv(c1, in_channels, k))

    def _step(self, blur: Tensor, prev: Tensor, state):
        e1 = self.enc1(torch.cat([blur, prev], dim=1))
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        if self.lstm is not None:
            state = self.lstm(e3, state)
            e3 = state[0]
        d2 = self.dec2(self.up2(self.dec3(e3)) + e2)
        d1 = self.dec1(self.up1(d2) + e1)
        return blur + self.out(d1), state

    def _forward(self, x: Tensor) -> Tensor | list[Tensor]:
        h, w = x.shape[-2:]
        outputs = []
        pred, state = None, None
        for s in reversed(range(self.scales)):
            size = (h // 2**s, w // 2**s)
            blur = x if s == 0 else F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
            if pred is None:
                pred = blur  # the coarsest scale starts from the blurred image itself, as in the paper
            else:
                pred = F.interpolate(pred, size=size, mode="bilinear", align_corners=False)
                if state is not None:
                    state = tuple(F.interpolate(t, size=(size[0] // 4, size[1] // 4), mode="bilinear", align_corners=False) for t in state)
            pred, state = self._step(blur, pred, state)
            outputs.append(pred)
        return outputs if self.training else outputs[-1]


@register_model("srn")
def srn(**kwargs) -> SRN:
    """The project's SRN, best on gaussian, linear motion and video blur (on a CPU ``nafnet-cpu`` is several
    times faster): 32/64/128 channels, 3x3 kernels, 2 ResBlocks per stage, 3 scales, 3x3 ConvLSTM.

    Sized to train well in minutes on one GPU while a 720p frame costs a CPU at most 3x ``srn-small``.
    """
    return SRN(**{"channels": (32, 64, 128), **kwargs})


@register_model("srn-small")
def srn_small(**kwargs) -> SRN:
    """A lighter SRN for CPUs: 16/32/64 channels, 3x3 kernels, 2 ResBlocks per stage, 3 scales, 3x3 ConvLSTM."""
    return SRN(**kwargs)


@register_model("srn-nolstm")
def srn_nolstm(**kwargs) -> SRN:
    """``srn-small`` without the recurrent cell (the original project's "without LSTM" variant)."""
    return SRN(**{"lstm": False, **kwargs})


@register_model("srn-paper")
def srn_paper(**kwargs) -> SRN:
    """The paper's configuration: 32/64/128 channels, 5x5 kernels, 3 ResBlocks, 3x3 ConvLSTM of 128 channels."""
    return SRN(**{"channels": (32, 64, 128), "kernel_size": 5, "blocks": 3, "lstm_kernel": 3, **kwargs})
