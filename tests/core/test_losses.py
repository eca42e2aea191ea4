"""Training losses (deblur_core.losses)."""

import pytest
import torch

from deblur_core.losses import multiscale_loss


def test_multiscale_loss_compares_each_scale_with_resized_target():
    sharp = torch.rand(2, 3, 32, 32)
    outs = [torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, 32, 32)]
    loss = multiscale_loss(outs, sharp, "l1")
    assert loss.item() == pytest.approx(3 * sharp.mean().item(), rel=0.05)
    assert multiscale_loss(sharp, sharp, "mse").item() == 0
