"""The Gradio web demo: upload a blurred photo (or pick a bundled one), choose a model, deblur.

All the work is done by :mod:`deblur_core.single`; this module lays out the page, turns the
results into widgets, and turns :class:`~deblur_core.errors.DeblurError` into ``gr.Error`` messages.

Safe defaults: the server binds to 127.0.0.1 and makes no public share link unless asked; uploads are
capped in bytes (``max_file_size``) and in pixels (checked from the header before decoding); requests
wait in a bounded queue and run one at a time.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read when gradio is imported

try:
    import gradio as gr
except ImportError as _err:  # a plain install: deblur-demo says which extra to install (see main)
    gr = None
    _GRADIO_MISSING = (f"deblur-demo needs gradio, which is not installed here ({_err}); install the demo extra: "
                       "pip install 'deblur-toolkit[demo]'")

from deblur_core.blur import BLUR_KINDS  # noqa: E402
from deblur_core.catalog import describe_checkpoint  # noqa: E402
from deblur_core.defaults import DEFAULT_MODEL  # noqa: E402
from deblur_core.errors import DeblurError, ImageReadError  # noqa: E402
from deblur_core.precision import PRECISIONS  # noqa: E402
from deblur_core.tta import TTA_CHOICES  # noqa: E402
from deblur_core.io import to_array, write_image  # noqa: E402
from deblur_core.single import (  # noqa: E402
    DEFAULT_MAX_PIXELS,
    DeblurResult,
    blur_then_deblur,
    deblur_image,
    example_images,
    model_choices,
)

__all__ = ["build_app", "launch", "main", "MAX_FILE_SIZE", "QUEUE_SIZE"]

MAX_FILE_SIZE = "25mb"  # per upload; the pixel limit guards against small files that decode huge
QUEUE_SIZE = 32  # requests waiting beyond this are refused instead of piling up
CONCURRENCY = 1  # one inference at a time: each already uses every core
_RESULT_TTL_S = 3600  # downloadable results older than this are deleted

_log = logging.getLogger("deblur_demo")

_INTRO = """# deblur
Upload a blurred photo or pick a bundled one, choose a model and press **Deblur**.
Drag the slider to compare before and after; download the full-resolution PNG below it.
Models without trained weights are the identity: their output equals their input."""


def _result_dir() -> Path:
    path = Path(tempfile.gettempdir()) / "deblur-demo"
    path.mkdir(exist_ok=True)
    now = time.time()
    for old in path.iterdir():
        if now - old.stat().st_mtime > _RESULT_TTL_S:
            shutil.rmtree(old, ignore_errors=True)
    return path


def _save_result(result: DeblurResult, stem: str) -> Path:
    folder = _result_dir() / uuid.uuid4().hex
    folder.mkdir()
    path = folder / f"{stem}-deblurred.png"
    write_image(path, result.output)  # full resolution, the input's bit depth and alpha
    return path


def _refuse(message: str) -> Exception:
    """The error a request is refused with: shown to the user, and one line in the server's log (gradio would
    print a traceback for every refused upload)."""
    _log.warning("request refused: %s", message)
    return gr.Error(message, print_exception=False)


def _summary(result: DeblurResult) -> str:
    h, w = result.output.height, result.output.width
    tiles = f", {result.tiles} tiles" if result.tiles > 1 else ""
    lines = [f"**{result.model}** on **{result.device}** ({result.precision}): {result.seconds:.2f} s for "
             f"{w}x{h} px{tiles}."]
    if math.isfinite(result.blur_effect_before):
        lines.append(f"\nBlur effect (no reference; 0 sharp .. 1 blurry): {result.blur_effect_before:.3f} before, "
                     f"{result.blur_effect_after:.3f} after.")
    if not result.trained:
        lines.append(
            f"\n*{result.model} has no trained weights yet: an untrained network is the identity, "
            "so the result equals its input.*"
        )
    if result.metrics:
        lines += ["", "| against the original | PSNR | SSIM |", "|---|---|---|"]
        for name, m in result.metrics.items():
            lines.append(f"| {name} | {m['psnr']:.2f} dB | {m['ssim']:.4f} |")
    return "\n".join(lines)


def build_app(
    weights: Mapping[str, str | Path] | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    device: str = "auto",
    precision: str = "auto",
    tta: int = 1,
    checkpoints: Sequence[str | Path] = (),
) -> gr.Blocks:
    """Build the demo (queue configured; launch it with :func:`launch`).

    Args:
        weights: checkpoints to use instead of the shipped weights, by model name (tests, local runs).
        checkpoints: more checkpoints, each a choice of its own, labelled by the network detected in it
            and its file name: this project's or published ones (see
            :func:`deblur_core.inference.load_deblurrer`). A file that cannot load raises a DeblurError.
        max_pixels: the largest image (width x height) accepted.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        precision: the networks' arithmetic, ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (see
            :func:`deblur_core.precision.inference_dtype`).
        tta: passes over flips and rotations of each image that every result averages (1, 2, 4 or 8).
    """
    if gr is None:
        raise ImportError(_GRADIO_MISSING)
    weights = dict(weights or {})
    files = {}  # choice -> checkpoint file, for the files given as choices of their own
    choices = []
    for path in checkpoints:
        info = describe_checkpoint(path)
        key = info["label"] if info["label"] not in files else f"{info['label']} #{len(files) + 1}"
        files[key] = Path(path)
        extra = f" · {info['licence']}" if info["kind"] == "published" else ""
        choices.append((f"{key} · {info['params'] / 1e6:.2f} M params · {info['gflops_per_mp']:.0f} GFLOP/MP{extra}",
                        key))
    choices += model_choices(weights)
    run = _handler(weights, {name for _, name in choices}, max_pixels=max_pixels, device=device,
                   precision=precision, tta=tta, files=files)
    with gr.Blocks(title="deblur", analytics_enabled=False, delete_cache=(_RESULT_TTL_S, _RESULT_TTL_S)) as demo:
        gr.Markdown(_INTRO)
        with gr.Row():
            # a checkpoint given on the command line is what its user came to try: open on the first
            inputs, run_button = _input_column(choices, next(iter(files), DEFAULT_MODEL))
            outputs = _output_column()
        # preprocess=False: gradio would otherwise open the upload with Pillow before run sees it, and a
        # corrupt file would end in gradio's generic error instead of a clear message
        run_button.click(run, inputs=inputs, outputs=outputs, api_name="deblur", preprocess=False)
    return demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)


def _handler(weights: dict[str, str | Path], names: set[str], *, max_pixels: int, device: str,
             precision: str, tta: int = 1, files: Mapping[str, Path] | None = None) -> Callable[..., tuple]:
    """The request handler: check the widgets' values, call core, present its result (before/after pair,
    download path, summary) or refuse with a message."""

    def run(
        upload: dict[str, Any] | None,
        model: str,
        blur_first: bool,
        kind: str,
        strength: float,
        seed: float,
        progress: gr.Progress = gr.Progress(),
    ):
        if not upload or not upload.get("path"):
            raise _refuse("Upload an image or pick an example first.")
        if model not in names:
            raise _refuse(f"Unknown model '{model}'.")
        if kind not in BLUR_KINDS:
            raise _refuse(f"Unknown blur kind '{kind}'; choose one of {', '.join(BLUR_KINDS)}.")

        def tiles_done(p) -> None:  # deblur_core.progress.Progress
            progress((p.done, p.total), desc="Deblurring", unit="tiles")

        files_ = files or {}
        common = {"weights": files_.get(model, weights.get(model)), "device": device, "precision": precision, "max_pixels": max_pixels,
                  "progress": tiles_done, "tta": tta}
        name = upload.get("orig_name") or Path(upload["path"]).name
        try:
            variant = None if model in files_ else model  # a file's network is read from the file
            if blur_first:
                result = blur_then_deblur(upload["path"], variant, kind, float(strength), int(seed), **common)
            else:
                result = deblur_image(upload["path"], variant, **common)
            saved = _save_result(result, Path(name).stem)
        except ImageReadError as err:  # name the upload, not the server's copy of it
            raise _refuse(f"Cannot read '{name}': {err.reason}") from None
        except DeblurError as err:
            raise _refuse(str(err)) from None
        except MemoryError:
            raise _refuse("Not enough memory for this image: try a smaller one.") from None
        before = to_array(result.input.data, 8, result.input.alpha)
        after = to_array(result.output.data, 8, result.output.alpha)
        return (before, after), str(saved), _summary(result)

    return run


def _input_column(choices: list[tuple[str, str]], first: str) -> tuple[list, gr.Button]:
    """The upload, model and blur widgets (in the order the handler takes them) and the run button."""
    with gr.Column():
        image = gr.Image(
            label="Blurred image",
            type="filepath",
            image_mode=None,
            format="png",
            sources=["upload"],
            elem_id="input-image",
        )
        gr.Examples([[str(p)] for p in example_images()], inputs=[image], label="Bundled blurred samples")
        names = [name for _, name in choices]
        model = gr.Dropdown(choices=choices, value=first if first in names else names[0],
                            label="Model")
        with gr.Accordion("Try it on a sharp photo", open=False):
            blur_first = gr.Checkbox(
                False, label="Blur the upload first, then score blurred and deblurred against it"
            )
            kind = gr.Radio(list(BLUR_KINDS), value="motion", label="Blur kind")
            strength = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Strength (mild to strong)")
            seed = gr.Number(0, precision=0, label="Seed (blur direction and path)")
        run_button = gr.Button("Deblur", variant="primary")
    return [image, model, blur_first, kind, strength, seed], run_button


def _output_column() -> list:
    """The before/after slider, the download and the summary (in the order the handler returns them)."""
    with gr.Column():
        slider = gr.ImageSlider(label="Before / after", format="png", elem_id="result-slider")
        download = gr.File(label="Full-resolution result (PNG)")
        info = gr.Markdown(label="Details")
    return [slider, download, info]


def launch(
    demo: gr.Blocks,
    *,
    host: str = "127.0.0.1",
    port: int | None = 7860,
    share: bool = False,
    block: bool = True,
) -> str:
    """Serve ``demo`` with the safe defaults (upload size cap, no share link unless asked, errors shown
    as messages only); returns the local URL. ``block=False`` returns at once (tests)."""
    _, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=MAX_FILE_SIZE,
        prevent_thread_lock=not block,
        show_error=False,
        quiet=not block,
    )
    return url


def main(argv: list[str] | None = None) -> None:
    """``deblur-demo [--host 127.0.0.1] [--port 7860] [--share]``"""
    if gr is None:  # a plain install, without the demo extra: say so, not a traceback
        print(f"error: {_GRADIO_MISSING}", file=sys.stderr)
        raise SystemExit(1)
    parser = argparse.ArgumentParser(prog="deblur-demo", description="Deblur images in the browser.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--share", action="store_true", help="also create a public gradio.live link")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where models run")
    parser.add_argument("--precision", default="auto", choices=list(PRECISIONS),
                        help="the networks' arithmetic (auto: bf16 on GPUs that have it, fp16 on older GPUs, "
                             "bf16 on CPUs with AMX but for the nafnet models, whose fp32 CPU path is faster, else fp32)")
    parser.add_argument("--tta", type=int, default=1, choices=list(TTA_CHOICES),
                        help="test-time augmentation: average each result over N flips and rotations of the image "
                             "(N times the compute)")
    parser.add_argument("--weights", action="append", default=[], metavar="FILE",
                        help="also offer this checkpoint as a choice (repeatable): this project's .safetensors or "
                             "one published by a network's authors that spandrel recognises (.pth, .ckpt, "
                             ".safetensors; needs the zoo extra), labelled by its network and file name")
    args = parser.parse_args(argv)
    try:
        demo = build_app(device=args.device, precision=args.precision, tta=args.tta, checkpoints=args.weights)
    except (DeblurError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    launch(demo, host=args.host, port=args.port, share=args.share)
