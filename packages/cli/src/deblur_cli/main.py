"""The ``deblur-cli`` command. Each command parses its options, calls one core function and presents the
result; the work itself lives in :mod:`deblur_core`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from deblur_core.defaults import DEFAULT_MODEL

from .batch_cmd import batch
from .eval_cmd import evaluate_cmd
from .train_cmd import train
from .texts import BLUR_HELP, MODEL_HELP, WEIGHTS_HELP
from .console import Bar, console, err_console, fail, note, show_log

app = typer.Typer(
    name="deblur-cli",
    help="Remove blur from images and video frames with deep networks.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", help="Also print, to stderr, the details that messages summarise (such as every tensor name of a weight file that does not fit its model). Goes before the command: deblur-cli --verbose batch ...")] = False,
) -> None:
    """Remove blur from images and video frames with deep networks."""
    if verbose:
        show_log(ctx)


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")] = False,
    weights: Annotated[list[Path] | None, typer.Option(help="Also describe these checkpoints (repeatable): the network detected in each, its size tags, size requirements, licence, parameters and GFLOPs per megapixel.", show_default=False)] = None,
) -> None:
    """List the model variants: parameters, GFLOPs per megapixel, and whether trained weights ship; then the
    published architectures that load with --weights, with their licences."""
    from deblur_core.catalog import describe_checkpoint, model_catalog, published_catalog
    from deblur_core.errors import DeblurError

    rows = model_catalog()
    try:
        files = [describe_checkpoint(w) for w in weights or []]
    except (ValueError, DeblurError) as e:
        fail(str(e), 2)
    if as_json:
        typer.echo(json.dumps({"models": rows, "published": published_catalog(), "weights": files}, indent=2)
                   if weights else json.dumps(rows, indent=2))
        return
    # the one-line descriptions need a wide terminal; below that they would squeeze every column into
    # word-per-line cells, so they are left to --json and MODELS.md
    describe = console.width >= 150
    table = Table(title="deblur models", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("model", style="bold", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("GFLOP/MP", justify="right", no_wrap=True)
    table.add_column("weights trained on", min_width=13)
    table.add_column("val dB (input)", justify="right", no_wrap=True)
    if describe:
        table.add_column("description")
    for r in rows:
        m = r["metrics"]
        psnr = f"{m['val_psnr']:.2f} ({m['input_psnr']:.2f})" if "val_psnr" in m and "input_psnr" in m else "-"
        cells = [
            r["name"],
            f"{r['params'] / 1e6:.2f}M",
            f"{r['gflops_per_mp']:.1f}",
            r["trained_on"] if r["weights"] else "untrained",
            psnr,
        ]
        table.add_row(*cells, *([r["summary"]] if describe else []))
    console.print(table)
    if any(r["weights"] for r in rows):
        console.print("val dB: PSNR on held-out validation crops of the data the weights were trained on, and the "
                      "blurred input's in parentheses; see MODELS.md")
    if not describe:
        console.print("descriptions: 'deblur-cli models --json', or a terminal 150 columns wide")
    console.print(_published_table())
    for f in files:
        console.print(_checkpoint_table(f))


def _published_table() -> Table:
    from deblur_core.published import PUBLISHED, ZOO_INSTALL

    table = Table(title=f"published architectures that deblur (--weights FILE; {escape(ZOO_INSTALL)})",
                  box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    for col in ("network", "licence of its code", "needs"):
        table.add_column(col)
    table.add_column("weights published at", overflow="fold")  # a URL cut short is no use
    for arch, p in PUBLISHED.items():
        table.add_row(arch, p.licence, "spandrel-extra-arches" if p.extra else "spandrel", p.source)
    return table


def _checkpoint_table(info: dict) -> Table:
    table = Table(title=escape(info["label"]), box=box.SIMPLE_HEAD, show_header=False, pad_edge=False)
    for key in ("architecture", "file", "kind", "licence", "size_requirements", "precisions", "params",
                "gflops_per_mp"):
        if key in info:
            table.add_row(key, escape(str(info[key])))
    return table


app.command()(train)
app.command("eval")(evaluate_cmd)


@app.command()
def blur(
    input: Annotated[str, typer.Argument(help="Folder of sharp images or frames (read recursively).")],
    out: Annotated[str, typer.Option(help="Output folder: OUT/blur/... and OUT/sharp/... mirror INPUT.")],
    kind: Annotated[str, typer.Option(help=BLUR_HELP + ".")] = "mix",
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same blur.")] = 0,
    noise: Annotated[float, typer.Option(help="Std of additive gaussian noise (0-1 scale).")] = 0.0,
    jpeg: Annotated[int, typer.Option(help="Save each blurred image through a JPEG of this quality (1-100) first; 0: none. 8-bit images only.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Write a paired blurred/sharp dataset from your own sharp footage (usable as --data pairs:OUT)."""
    from deblur_core.errors import DeblurError
    from deblur_core.data.make_pairs import make_blur_pairs

    try:
        with Bar("blurring", enabled=not quiet) as bar:
            report = make_blur_pairs(input, out, kind=kind, seed=seed, noise_sigma=noise, jpeg_quality=jpeg,
                                     progress=bar.update)
    except ValueError as e:
        fail(str(e), 2)
    except DeblurError as e:
        fail(str(e), 1)
    console.print(f"wrote {report.written} pairs to {out}")
    for path, reason in report.failed:
        err_console.print(f"[red]failed:[/] {path}: {reason}")
    if report.failed:
        raise typer.Exit(1)


@app.command()
def export(
    out: Annotated[str, typer.Option(help="The file to write (its folder is created).", show_default=False)],
    model: Annotated[str | None, typer.Option(help=MODEL_HELP, show_default=False)] = None,
    weights: Annotated[str | None, typer.Option(help=WEIGHTS_HELP + " Of published networks, NAFNet exports (through this project's NAFNet); others are refused.", show_default=False)] = None,
    fmt: Annotated[str, typer.Option("--format", help="onnx (the only format so far).")] = "onnx",
    opset: Annotated[int, typer.Option(help="ONNX opset, 18 or newer (srn's antialiased downscaling needs 18).")] = 18,
) -> None:
    """Export a model to ONNX for runtimes without PyTorch: input 'blurred', float32 (batch, C, height, width)
    in [0, 1], any batch, height and width; output 'sharp', the same shape, clamped to [0, 1]: what 'batch'
    computes for a frame before writing it (with --precision fp32).

    Needs the export extra (pip install 'deblur-toolkit\\[export]'); with onnxruntime installed the file is
    checked against batch's fp32 deblurring on a random input.
    """

    from deblur_core.errors import CheckpointError, DeblurError
    from deblur_core.export import export_model

    try:
        with err_console.status(f"exporting {model or weights or DEFAULT_MODEL} (about half a minute)"):
            result = export_model(model, out, weights=weights, format=fmt, opset=opset)
    except (ValueError, CheckpointError) as e:
        fail(str(e), 2)
    except DeblurError as e:
        fail(str(e), 1)
    size_mb = result.path.stat().st_size / 1e6
    weights_note = f"weights {result.weights.name}" if result.weights else "untrained"
    console.print(f"wrote {result.path} ({escape(result.model)}, {weights_note}, ONNX opset {result.opset}, {size_mb:.1f} MB)")
    if result.max_abs_diff is None:
        console.print("not checked: onnxruntime is not installed")
    else:
        console.print(f"onnxruntime matches batch's fp32 deblurring to {result.max_abs_diff:.1e} on a 67x93 input")
    if not result.weights:
        note(f"no trained weights for '{result.model}': the exported network is untrained and returns its input "
             "unchanged; pass --weights.")


@app.command()
def convert(
    src: Annotated[Path, typer.Argument(help="A checkpoint: .pth, .ckpt or .pt (a pickle, read as data) or .safetensors.", metavar="FILE", show_default=False)],
    out: Annotated[Path, typer.Argument(help="The .safetensors file to write.", metavar="OUT", show_default=False)],
) -> None:
    """Write a checkpoint's tensors as .safetensors, a format that holds nothing but tensors.

    Pickles are read by torch's restricted unpickler, which refuses anything but tensors and plain containers
    before running any of it; TorchScript archives are refused. With spandrel installed the network is
    detected too, and super-resolution or face models are refused as they would be by --weights.
    """
    from deblur_core.errors import DeblurError
    from deblur_core.published import convert_checkpoint

    try:
        path, info = convert_checkpoint(src, out)
    except (ValueError, DeblurError) as e:
        fail(str(e), 2)
    what = f"{info['architecture']} {' '.join(info['tags'])}".strip() if info else "network not checked: spandrel is not installed"
    console.print(f"wrote {path} ({what})")


app.command()(batch)
