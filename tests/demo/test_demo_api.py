"""The demo's API, driven for real through gradio_client against a server on a loopback port.

"The result differs from the input" is checked with a randomised checkpoint of ``nafnet`` passed to
``build_app(weights=...)``, so the check does not hang on what the shipped weights happen to do, nor pass
because a network that did not run handed the image back. A variant without weights and its "untrained"
notice are checked too, as is blur-then-deblur, where the "before" image is the blurred upload.
"""

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from deblur_core.checkpoint import save_checkpoint
from deblur_core.models import get_model
from deblur_core.single import example_images

from helpers import randomise

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> Path:
    model = randomise(get_model("nafnet"))
    path = tmp_path_factory.mktemp("weights") / "nafnet-random.safetensors"
    return save_checkpoint(path, model, name="nafnet", metrics={"val_psnr": 12.34})


@pytest.fixture(scope="module")
def url(serve, random_weights) -> str:
    from deblur_demo.app import build_app

    return serve(build_app(weights={"nafnet": random_weights}, device="cpu"))


@pytest.fixture(scope="module")
def client(url) -> Client:
    return Client(url, verbose=False)


@pytest.fixture(scope="module")
def example() -> Path:
    return next(p for p in example_images() if p.name == "clock_motion.png")


def _deblur(client: Client, path: Path, model: str = "nafnet", blur_first: bool = False):
    return client.predict(handle_file(str(path)), model, blur_first, "motion", 0.5, 0, api_name="/deblur")


def _pixels(path: str) -> np.ndarray:
    assert Path(path).read_bytes()[:8] == PNG_MAGIC, f"{path} is not a PNG file"
    with PILImage.open(path) as im:
        return np.asarray(im)


def test_examples_are_bundled():
    names = {p.name for p in example_images()}
    assert "clock_motion.png" in names and len(names) >= 3


def test_deblur_example(client, example):
    (before, after), download, details = _deblur(client, example)
    original = _pixels(str(example))
    shown_before, shown_after, full = _pixels(before), _pixels(after), _pixels(download)
    for img in (shown_before, shown_after, full):
        assert img.shape[:2] == original.shape[:2]
    np.testing.assert_array_equal(shown_before.reshape(original.shape), original)
    assert np.abs(full.astype(int).reshape(original.shape) - original).mean() > 1.0  # the network did work
    assert Path(download).name == "clock_motion-deblurred.png"
    assert "nafnet" in details and "cpu" in details and " s for 400x300 px" in details
    assert "untrained" not in details
    assert "Blur effect (no reference; 0 sharp .. 1 blurry): 0." in details and " after." in details


def test_untrained_model_is_reported(client, example):
    (before, after), _, details = _deblur(client, example, model="srn-nolstm")
    assert "no trained weights" in details
    assert _pixels(after).shape == _pixels(before).shape


def test_blur_then_deblur_scores_against_the_upload(client, example):
    (before, _), download, details = _deblur(client, example, blur_first=True)
    original = _pixels(str(example))
    blurred = _pixels(before).reshape(original.shape)
    assert blurred.shape == original.shape
    assert np.abs(blurred.astype(int) - original).mean() > 0.5  # "before" is the blurred upload
    assert "PSNR" in details and "blurred" in details and "deblurred" in details


def test_corrupt_upload_is_a_clear_error_and_the_server_keeps_serving(client, example, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20)
    with pytest.raises(AppError) as info:
        _deblur(client, bad)
    message = str(info.value)
    assert "Cannot read 'broken.png'" in message
    assert "Traceback" not in message and "/tmp/" not in message
    (before, after), _, _ = _deblur(client, example)
    assert _pixels(after).shape[:2] == _pixels(str(example)).shape[:2]


def test_a_refused_upload_is_one_line_in_the_log_not_a_traceback(client, tmp_path, capfd, caplog):
    bad = tmp_path / "refused.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20)
    capfd.readouterr()
    with pytest.raises(AppError):
        _deblur(client, bad)
    time.sleep(0.5)  # the server writes from its own thread
    assert "Traceback" not in capfd.readouterr().err
    lines = [r.getMessage() for r in caplog.records if "refused.png" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0], lines


def test_eight_concurrent_clients_are_all_served(url, example):
    def one(_):
        return _deblur(Client(url, verbose=False), example)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(8)))
    assert len(results) == 8
    for (before, after), download, _ in results:
        assert _pixels(download).shape[:2] == (300, 400)


def test_demo_tta_flag_takes_the_allowed_counts_only(capsys):
    from deblur_demo.app import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--tta", "3"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err
