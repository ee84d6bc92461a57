"""edgecnn command line: a thin Click layer over the library (parse, call, render)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # before anything imports TensorFlow

import click

from .errors import EdgecnnError
from .native import filter_native_stderr


class _Group(click.Group):
    """Turns EdgecnnError (and Ctrl-C) into one line on stderr and an exit status."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgecnnError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("Aborted.", err=True)
            ctx.exit(130)


def _log(msg: str) -> None:
    click.echo(msg, err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgecnn")
def main():
    """Fine-tune, quantize and verify small image classifiers for phones and Jetsons.

    \b
    edgecnn train   --recipe crop_disease --data DIR --out runs/leaves
    edgecnn export  runs/leaves --int8
    edgecnn bench   runs/leaves --data DIR/test
    edgecnn bundle  runs/leaves --android android_demo
    """
    filter_native_stderr()


# ------------------------------------------------------------------------------------ recipes
@main.group(invoke_without_command=True)
@click.pass_context
def recipes(ctx):
    """List the built-in task recipes (or `recipes show NAME`)."""
    if ctx.invoked_subcommand is None:
        from . import recipe as R
        for name, path in R.available().items():
            r = R.load(path)
            click.echo(f"{name:<15} {r.image_size:>4}px  {r.description}")


@recipes.command("show")
@click.argument("name")
def recipes_show(name):
    """Print one recipe (a built-in NAME or a path to a YAML file), fully resolved."""
    from . import recipe as R
    click.echo(R.to_yaml(R.load(name)), nl=False)


# ------------------------------------------------------------------------------------ train
@main.command()
@click.option("--recipe", "recipe_name", required=True, help="Built-in recipe name or a recipe YAML file.")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="ImageFolder root: train/ (+ val/, test/) of class folders, or one folder of classes.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Run directory to write (model.keras, contract.json, metrics.json, report/).")
@click.option("--weights", default=None, metavar="PATH|none",
              help="Backbone weights file, or 'none'. Default: a local file if found, else Keras' download.")
@click.option("--image-size", type=click.IntRange(32, 512), default=None, help="Override the recipe's input size.")
@click.option("--epochs", type=click.IntRange(1, 1000), default=None, help="Cap the epochs of each phase.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--gradcam", type=click.IntRange(0, 100), default=0, help="Write Grad-CAM overlays for N misclassified test images.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train(recipe_name, data_dir, out_dir, weights, image_size, epochs, seed, gradcam, quiet):
    """Fine-tune MobileNetV2 on a recipe task and write a complete run directory."""
    from . import recipe as R
    from .train import TrainOptions, train as run_train

    if image_size is not None and image_size % 8:
        raise click.BadParameter("must be a multiple of 8", param_hint="--image-size")
    rec = R.load(recipe_name)
    m = run_train(rec, TrainOptions(data_dir, out_dir, weights, image_size, epochs, seed, gradcam,
                                    progress=not quiet), log=_log)
    t = m["timings_s"]
    acc = m["test_accuracy"] if m["test_accuracy"] is not None else m["val_accuracy"]
    click.echo(f"{m['evaluated_on']} accuracy {acc:.2%}  (macro F1 {m['macro_f1']:.3f})  "
               f"phase 1 {t['phase1_s']:.0f} s, phase 2 {t['phase2_s']:.0f} s, total {t['total_s']:.0f} s")
    click.echo(f"wrote {out_dir}/: model.keras labels.txt contract.json history.json metrics.json report/")
    if m["interrupted"]:
        sys.exit(130)


# ------------------------------------------------------------------------------------ export
@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--int8", is_flag=True, help="Full-integer INT8 TFLite (and Q/DQ ONNX with --onnx).")
@click.option("--fp16", is_flag=True, help="FP16 TFLite.")
@click.option("--float", "fp32", is_flag=True, help="Float32 TFLite (and ONNX with --onnx).")
@click.option("--onnx", is_flag=True, help="Also ONNX: float, and INT8 Q/DQ (symmetric, TensorRT-ready).")
@click.option("--tensorrt", is_flag=True, help="Build a TensorRT engine from the Q/DQ ONNX (needs TensorRT here).")
@click.option("--calibration", type=click.Path(path_type=Path), default=None,
              help="Calibration list (calibration/<recipe>.txt format) or a folder of images.")
@click.option("--calibration-size", type=click.IntRange(1, 10000), default=None, help="Default: the recipe's (200).")
@click.option("--max-drop", type=click.FloatRange(0, 100), default=None, metavar="PP",
              help="INT8 accuracy budget in percentage points (default: the recipe's).")
@click.option("--eval-data", type=click.Path(path_type=Path), default=None,
              help="Class folders to measure accuracy on (default: the run's test split).")
@click.option("--int8-input", type=click.Choice(["int8", "uint8"]), default="int8", show_default=True,
              help="Input/output type of the INT8 TFLite.")
@click.option("--json", "json_out", is_flag=True, help="Print the export report as JSON on stdout.")
def export(run_dir, int8, fp16, fp32, onnx, tensorrt, calibration, calibration_size, max_drop, eval_data,
           int8_input, json_out):
    """Convert a run's model to TFLite/ONNX (float, FP16, INT8) and measure each against float.

    With no format flag it exports float32 and INT8 TFLite. Artifacts and export_report.json go
    to RUN_DIR/export/. Exits 1 when INT8 cannot be brought within the accuracy budget.
    """
    import json as _json

    from .export import ExportOptions, check_budget, export as run_export
    from .render import export_table

    precisions = tuple(p for p, on in (("fp32", fp32), ("fp16", fp16), ("int8", int8)) if on) or ("fp32", "int8")
    opts = ExportOptions(run_dir, precisions, onnx, tensorrt, calibration, calibration_size, max_drop,
                         eval_data, int8_input)
    rep = run_export(opts, log=_log)
    click.echo(_json.dumps(rep, indent=2) if json_out else export_table(rep))
    check_budget(rep)


if __name__ == "__main__":
    main()
