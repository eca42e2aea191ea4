import os
import warnings
from pathlib import Path

# Tests run beside other work on a 2-core machine: keep torch from oversubscribing the cores.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture
def video_with_audio():
    """``make(path, frames, fps=25, size=(40, 48), audio="aac", rate=16000, video="libx264")`` writes a clip
    with random frames and one audio track (needs PyAV)."""
    return _write_video_with_audio


def _write_video_with_audio(path: Path, frames: int, fps: int = 25, size=(40, 48), audio: str = "aac",
                            rate: int = 16000, video: str = "libx264") -> None:
    """A clip with one audio track: a 440 Hz sine wave as long as the video, encoded with ``audio``."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(video, rate=fps)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        sound = container.add_stream(audio, rate=rate, layout="mono")
        rng = np.random.default_rng(0)
        for _ in range(frames):
            rgb = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        samples = rate * frames // fps
        wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / rate)).astype(np.float32)
        chunk = sound.codec_context.frame_size or 1024
        fmt = sound.codec_context.format.name
        for start in range(0, samples, chunk):
            part = wave[start : start + chunk]
            frame = av.AudioFrame.from_ndarray(
                (part * 32767).astype(np.int16)[None] if fmt.startswith("s16") else part[None], format=fmt,
                layout="mono")
            frame.sample_rate, frame.pts = rate, start
            container.mux(sound.encode(frame))
        for s in (stream, sound):
            container.mux(s.encode(None))


# Published checkpoints: random weights in spandrel's own classes at the sizes their authors publish (module,
# class, constructor arguments). NAFNet's GoPro and REDS models share one architecture; they differ in seed here.
PUBLISHED_SIZES = {
    "nafnet-gopro-width64": ("spandrel.architectures.NAFNet", "NAFNet",
                             {"width": 64, "enc_blk_nums": [1, 1, 1, 28], "middle_blk_num": 1,
                              "dec_blk_nums": [1, 1, 1, 1]}),
    "nafnet-reds-width64": ("spandrel.architectures.NAFNet", "NAFNet",
                            {"width": 64, "enc_blk_nums": [1, 1, 1, 28], "middle_blk_num": 1,
                             "dec_blk_nums": [1, 1, 1, 1]}),
    "fftformer-gopro": ("spandrel.architectures.FFTformer", "FFTformer", {}),
    "restormer-motion": ("spandrel_extra_arches.architectures.Restormer", "Restormer", {}),
}


@pytest.fixture(scope="session")
def published_checkpoint(tmp_path_factory):
    """``make(kind, suffix) -> Path``: a checkpoint of ``kind`` (a key of PUBLISHED_SIZES) saved as ``.pth``
    (torch.save of the state dict) or ``.safetensors``, built once per session.

    Weights: spandrel's initialisation with the parameters that start at zero randomised (NAFNet's residual
    scales), then every weight matrix and kernel halved. At their default scale these random networks are
    chaotic (FFTformer changes a frame by 0.27 on average and a change at a tile's border reaches every
    pixel); halved, they change a frame by about as much as a trained deblurrer does (0.02-0.03), so tiling
    means what it means for real weights."""
    import importlib

    from helpers import randomise, require_zoo

    folder = tmp_path_factory.mktemp("published")
    made: dict[tuple[str, str], Path] = {}

    def make(kind: str, suffix: str) -> Path:
        module, cls, kwargs = PUBLISHED_SIZES[kind]
        require_zoo(module.split(".")[0])
        if (kind, suffix) not in made:
            torch.manual_seed(sorted(PUBLISHED_SIZES).index(kind))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                net = getattr(importlib.import_module(module), cls)(**kwargs)
            randomise(net, seed=1, std=0.05)
            with torch.no_grad():
                for p in net.parameters():
                    if p.dim() > 1:
                        p.mul_(0.5)
            path = folder / f"{kind}{suffix}"
            state = {k: v.contiguous() for k, v in net.state_dict().items()}
            if suffix == ".safetensors":
                from safetensors.torch import save_file

                save_file(state, str(path))
            else:
                torch.save(state, path)
            made[kind, suffix] = path
        return made[kind, suffix]

    return make
