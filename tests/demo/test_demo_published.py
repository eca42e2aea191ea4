"""Published checkpoints in the demo: ``build_app(checkpoints=...)`` (``deblur-demo --weights FILE``) offers
each file as a choice, labelled by its network and file name, and the API deblurs with it as spandrel's own
forward pass does, before/after slider included."""

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from deblur_core.io import to_array
from deblur_core.single import example_images

from helpers import require_zoo

pytestmark = pytest.mark.zoo
gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402


@pytest.fixture(scope="module")
def published(published_checkpoint):
    require_zoo("spandrel_extra_arches")
    return [published_checkpoint("nafnet-gopro-width64", ".pth"),
            published_checkpoint("restormer-motion", ".safetensors"),
            published_checkpoint("nafnet-reds-width64", ".safetensors"),
            published_checkpoint("fftformer-gopro", ".pth")]


@pytest.fixture(scope="module")
def client(serve, published) -> Client:
    from deblur_demo.app import build_app

    return Client(serve(build_app(device="cpu", precision="fp32", checkpoints=published)), verbose=False)


def test_each_file_is_a_choice_that_deblurs_as_spandrel_does(client, published, tmp_path):
    import spandrel
    import spandrel_extra_arches
    from safetensors.torch import load_file

    spandrel_extra_arches.install(ignore_duplicates=True)
    choices = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/deblur"]["parameters"][1]
    choices = choices["type"]["enum"]  # the dropdown's values, in order: the files first
    assert choices[:4] == ["NAFNet 64w (nafnet-gopro-width64.pth)", "Restormer 48dim (restormer-motion.safetensors)",
                           "NAFNet 64w (nafnet-reds-width64.safetensors)", "FFTformer 48dim (fftformer-gopro.pth)"]
    example = next(p for p in example_images() if p.name == "clock_motion.png")
    small = tmp_path / "small.png"
    with PILImage.open(example) as im:
        im.convert("RGB").crop((100, 80, 164, 128)).save(small)
    pixels = np.asarray(PILImage.open(small))
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
    for path, choice in zip(published, choices):
        (before, after), download, details = client.predict(handle_file(str(small)), choice, False, "motion", 0.5,
                                                            0, api_name="/deblur")
        state = load_file(str(path)) if path.suffix == ".safetensors" else torch.load(path, weights_only=True)
        want = to_array(spandrel.ModelLoader().load_from_state_dict(state).eval()(x.clone())[0], 8)
        got = np.asarray(PILImage.open(download))
        assert np.array_equal(got, want)
        assert np.array_equal(np.asarray(PILImage.open(before)), pixels)  # the slider's two sides
        assert np.array_equal(np.asarray(PILImage.open(after)), want)
        assert choice in details
