"""Test-time augmentation (deblur_core.tta): the self-ensemble undoes every symmetry it applies."""

import pytest
import torch
from torch import nn

from deblur_core.models import get_model
from deblur_core.tta import TTA_CHOICES, SelfEnsemble, check_tta, with_tta
from helpers import randomise


class _Probe(nn.Module):
    """Adds a ramp that depends on where a pixel sits: any symmetry left undone shows in the output."""

    def forward(self, x):
        ramp = torch.arange(x.shape[-1], dtype=x.dtype).expand_as(x) / 100
        return x + ramp


@pytest.mark.parametrize("n", TTA_CHOICES)
def test_each_symmetry_is_undone(n):
    x = torch.rand(2, 3, 5, 7)
    out = with_tta(_Probe(), n)(x)
    assert out.shape == x.shape
    # the identity sees the ramp along the width; the mirrors and rotations see it mirrored or along the height
    ramp_w = torch.arange(7.0).expand_as(x) / 100
    if n == 1:
        torch.testing.assert_close(out, x + ramp_w)
    if n in (2, 4):  # the ramp (0 to 0.06) and its mirror average to a constant
        torch.testing.assert_close(out, x + 0.03)
    if n == 8:  # the transposed passes see the ramp along the height (0 to 0.04), mirrored too
        torch.testing.assert_close(out, x + (0.03 + 0.02) / 2)


def test_a_real_network_differs_from_one_pass_and_is_symmetric():
    torch.manual_seed(0)
    net = randomise(get_model("nafnet")).eval()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        one, eight = net(x), with_tta(net, 8)(x)
        mirrored = with_tta(net, 8)(x.flip(-1)).flip(-1)
    assert not torch.allclose(one, eight, atol=1e-4)  # the ensemble really ran other passes
    torch.testing.assert_close(eight, mirrored, atol=1e-5, rtol=1e-5)  # a mirror-symmetric estimator


def test_wrapper_reads_the_networks_attributes_and_bad_counts_are_refused():
    net = get_model("nafnet-cpu")
    wrapped = SelfEnsemble(net, 4)
    assert wrapped.cpu_autocast is net.cpu_autocast
    assert with_tta(net, 1) is net
    for bad in (0, 3, 16):
        with pytest.raises(ValueError, match="tta must be one of 1, 2, 4, 8"):
            check_tta(bad)
