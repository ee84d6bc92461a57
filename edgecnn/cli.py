"""edgecnn command line: a thin Click layer over the library (parse, call, render)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # before anything imports TensorFlow

import click

from .errors import EdgecnnError


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


if __name__ == "__main__":
    main()
