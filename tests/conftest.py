import os
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
