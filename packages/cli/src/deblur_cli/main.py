"""The ``deblur-cli`` command. Each command parses its options, calls one core function and presents the
result; the work itself lives in :mod:`deblur_core`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from deblur_core.defaults import DEFAULT_MODEL

from .batch_cmd import batch
from .eval_cmd import evaluate_cmd
from .train_cmd import train
from .texts import BLUR_HELP
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
) -> None:
    """List the model variants: parameters, GFLOPs per megapixel, and whether trained weights ship."""
    from deblur_core.catalog import model_catalog

    rows = model_catalog()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
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
    model: Annotated[str, typer.Option(help="Model variant to export (see 'deblur-cli models').")] = DEFAULT_MODEL,
    weights: Annotated[str | None, typer.Option(help="A .safetensors checkpoint (default: the weights shipped for the model, if any).", show_default=False)] = None,
    fmt: Annotated[str, typer.Option("--format", help="onnx (the only format so far).")] = "onnx",
    opset: Annotated[int, typer.Option(help="ONNX opset, 18 or newer (srn's antialiased downscaling needs 18).")] = 18,
) -> None:
    """Export a model to ONNX for runtimes without PyTorch: input 'blurred', float32 (batch, C, height, width)
    in [0, 1], any batch, height and width; output 'sharp', the same shape, clamped to [0, 1]: what 'batch'
    computes for a frame before writing it (with --precision fp32).

    Needs the export extra (pip install 'deblur-toolkit\\[export]'); with onnxruntime installed the file is
    checked against batch's fp32 deblurring on a random input.
    """
    from rich.markup import escape

    from deblur_core.errors import CheckpointError, DeblurError
    from deblur_core.export import export_model

    # messages may hold brackets ("pip install 'deblur-toolkit[export]'"), which rich would take for markup
    try:
        with err_console.status(f"exporting {model} (about half a minute)"):
            result = export_model(model, out, weights=weights, format=fmt, opset=opset)
    except (ValueError, CheckpointError) as e:
        fail(escape(str(e)), 2)
    except DeblurError as e:
        fail(escape(str(e)), 1)
    size_mb = result.path.stat().st_size / 1e6
    weights_note = f"weights {result.weights.name}" if result.weights else "untrained"
    console.print(f"wrote {result.path} ({model}, {weights_note}, ONNX opset {result.opset}, {size_mb:.1f} MB)")
    if result.max_abs_diff is None:
        console.print("not checked: onnxruntime is not installed")
    else:
        console.print(f"onnxruntime matches batch's fp32 deblurring to {result.max_abs_diff:.1e} on a 67x93 input")
    if not result.weights:
        note(f"no trained weights for '{model}': the exported network is untrained and returns its input "
             "unchanged; pass --weights.")


app.command()(batch)
