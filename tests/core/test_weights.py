"""The weights that ship inside the package: each loads into its registered variant, and `srn` deblurs.

A fast regression check of the shipped weights themselves, on the bundled example clip (a camera pan over
scikit-image's left motorcycle photograph, which no training set here contains).
"""

from importlib import resources
from pathlib import Path

import pytest
import torch

from deblur_core.checkpoint import pretrained_path, read_metadata
from deblur_core.inference import load_deblurrer
from deblur_core.io import read_image
from deblur_core.metrics import psnr
from deblur_core.models import get_model, list_models

WEIGHTS = Path(str(resources.files("deblur_core") / "weights"))
SHIPPED = sorted(p.stem for p in WEIGHTS.glob("*.safetensors"))
CLIP = Path(__file__).resolve().parents[2] / "examples" / "reds" / "val"


def test_the_default_model_ships_weights_and_every_file_is_a_registered_variant():
    assert "srn" in SHIPPED
    assert set(SHIPPED) <= set(list_models())
    # the package stays small enough to install anywhere
    assert sum(p.stat().st_size for p in WEIGHTS.glob("*.safetensors")) < 40e6


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_load_into_their_variant(name):
    meta = read_metadata(pretrained_path(name))
    assert meta["model"] == name
    deb = load_deblurrer(name, device="cpu")
    assert deb.trained and deb.weights == pretrained_path(name)
    fresh = get_model(name, **meta.get("kwargs", {}))
    assert {k: v.shape for k, v in deb.model.state_dict().items()} == {k: v.shape for k, v in fresh.state_dict().items()}
    # trained: the output layer is no longer the zero-initialised identity of an untrained network
    x = torch.rand(1, 3, 48, 40)
    with torch.inference_mode():
        y = deb.model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert (y - x).abs().mean() > 1e-3
    # the card's facts travel with the weights
    assert meta["metrics"]["val_psnr"] > meta["metrics"]["input_psnr"]
    assert meta["metrics"]["train_seconds"] > 0 and meta["config"]["steps"] > 0


def test_srn_raises_psnr_on_the_bundled_example_pair():
    deb = load_deblurrer("srn", device="cpu")
    frames = ["00000001.png", "00000004.png"]
    blur = torch.stack([read_image(CLIP / "val_blur" / "000" / f).data for f in frames])
    sharp = torch.stack([read_image(CLIP / "val_sharp" / "000" / f).data for f in frames])
    out = deb(blur)
    before, after = psnr(blur, sharp), psnr(out, sharp)
    assert (after > before + 3.0).all(), (before, after)  # measured: +4.7 and +4.8 dB (MODELS.md)
