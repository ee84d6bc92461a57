"""edgecnn command line: a thin Click layer over the library (parse, call, render)."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # before anything imports TensorFlow

import click

from .core.errors import EdgecnnError
from .core.io import check_writable
from .limits import PORT_RANGE
from .native import filter_native_stderr


class _Group(click.Group):
    """Turns EdgecnnError (and Ctrl-C) into one line on stderr and an exit status."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgecnnError as e:
            click.echo(f"{e.label}: {e}", err=True)
            ctx.exit(e.exit_code)
        except OSError as e:       # disk full, permissions, a vanished folder: at an edge, one line
            where = f"{e.filename}: " if e.filename else ""
            click.echo(f"Error: {where}{e.strerror or e}", err=True)
            ctx.exit(2)
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
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Random seed of splits, augmentation and initialisation (0 to 4294967295).")
@click.option("--gradcam", type=click.IntRange(0, 100), default=0, help="Write Grad-CAM overlays for N misclassified test images.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing run directory whole (its export/ too); it is swapped only when training "
                   "ends. Only a folder edgecnn wrote as a run is replaced, never other files.")
@click.option("--workers", default=None, metavar="HOST:PORT,...",
              help="Train data-parallel with these workers (MultiWorkerMirroredStrategy; writes TF_CONFIG). "
                   "Start the same command on each, with its --worker-index; worker 0 writes the run. "
                   "Default: TF_CONFIG if set, else this machine alone.")
@click.option("--worker-index", type=click.IntRange(0), default=None, help="This worker's place in --workers.")
@click.option("--worker-timeout", type=click.FloatRange(1, 86400), default=300.0, show_default=True,
              metavar="SECONDS", help="How long to wait for the other workers to start, and for any one exchange "
                                      "with them, before the run ends with an error.")
@click.option("--keep-cache", is_flag=True,
              help="Keep phase 1's activation cache (the hidden folder .NAME.activations beside --out) after the run: "
                   "a re-run with the same data, recipe, seed and weights reads it instead of caching again.")
def train(recipe_name, data_dir, out_dir, weights, image_size, epochs, seed, gradcam, quiet, overwrite, workers,
          worker_index, worker_timeout, keep_cache):
    """Fine-tune MobileNetV2 on a recipe task and write a complete run directory."""
    from . import recipe as R
    from .distribute import Cluster
    from .train import TrainOptions

    if image_size is not None and image_size % 8:
        raise click.BadParameter("must be a multiple of 8", param_hint="--image-size")
    if (workers is None) != (worker_index is None):
        raise click.UsageError("--workers and --worker-index go together")
    cluster = Cluster.from_option(workers, worker_index) if workers else None
    _train_and_show(R.load(recipe_name), TrainOptions(
        data_dir, out_dir, weights, image_size, epochs, seed, gradcam, progress=not quiet, overwrite=overwrite,
        cluster=cluster, worker_timeout=worker_timeout, keep_cache=keep_cache))


def _train_and_show(rec, opts) -> None:
    """Train (train and demo alike) and print the run's summary; exit 130 after a Ctrl-C."""
    from .train import train as run_train

    m = run_train(rec, opts, log=_log)
    out_dir = opts.out_dir
    if m is None:
        click.echo("this worker's part is done; the chief (worker 0) wrote the run")
        return
    _refresh_page(Path(out_dir))
    t = m["timings_s"]
    acc = m["test_accuracy"] if m["test_accuracy"] is not None else m["val_accuracy"]
    click.echo(f"{m['evaluated_on']} accuracy {acc:.2%}  (macro F1 {m['macro_f1']:.3f})  "
               f"phase 1 {t['phase1_s']:.0f} s, phase 2 {t['phase2_s']:.0f} s, total {t['total_s']:.0f} s")
    click.echo(f"wrote {out_dir}/: model.keras recipe.json labels.txt contract.json history.json metrics.json report/")
    if m["interrupted"]:
        sys.exit(130)


# ------------------------------------------------------------------------------------ demo
DEMO_EPOCHS = 12
@main.command()
@click.option("--recipe", "recipe_name", default="crop_disease", show_default=True)
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="Default: the recipe's dataset in ../shared/data if present, else the bundled demo subset.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("runs/demo"),
              show_default=True)
@click.option("--weights", default=None, metavar="PATH|none")
@click.option("--epochs", type=click.IntRange(1, 1000), default=DEMO_EPOCHS, show_default=True,
              help="Cap the epochs of each phase: the demo is a first look in under 4 minutes on 2 cores; "
                   "'edgecnn train' runs the recipe's whole schedule.")
@click.pass_context
def demo(ctx, recipe_name, data_dir, out_dir, weights, epochs):
    """The whole flow on a real dataset: train -> export (float + INT8) -> bench, one command.

    The run directory (--out) is replaced whole when training ends, if it is a previous demo's run.
    """
    from . import recipe as R
    from .data import UNLABELED
    from .paths import DEMO_DATA, shared_data
    from .train import TrainOptions

    if data_dir is None:
        shared = shared_data() / recipe_name
        data_dir = shared if shared.is_dir() else DEMO_DATA
        if data_dir == DEMO_DATA and recipe_name != "crop_disease":
            raise click.UsageError(f"no dataset for {recipe_name}: pass --data DIR")
    _log(f"demo: recipe {recipe_name} on {data_dir}")
    _train_and_show(R.load(recipe_name), TrainOptions(data_dir, out_dir, weights, epochs=epochs, gradcam=4,
                                                      command="demo"))
    from .bench import BenchOptions, bench as run_bench, render, write_outputs
    from .verdict import choose_deployable
    from .report import PAGE
    from .export import ExportOptions, export as run_export
    from .render import export_table

    test_dir = data_dir / "test" if (data_dir / "test").is_dir() else None
    unlabeled = data_dir / UNLABELED if (data_dir / UNLABELED).is_dir() else None
    click.echo(export_table(run_export(ExportOptions(out_dir, ("fp32", "int8"), unlabeled=unlabeled), log=_log)))
    doc = run_bench(BenchOptions(out_dir, data=test_dir, unlabeled=unlabeled), log=_log)
    _keep_in_run(doc)
    write_outputs(doc, out_dir / "bench.json", out_dir / "bench.md")
    click.echo(render(doc))
    choice = choose_deployable(doc.devices[0])
    click.echo("\n".join(choice.summary(out_dir)))
    click.echo(f"report:  {out_dir / PAGE}")
    ctx.exit(choice.exit_code)


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
@click.option("--unlabeled", type=click.Path(path_type=Path, file_okay=False), default=None, metavar="DIR",
              help="Photos of the deployment domain without labels (never calibration or training images): a "
                   "changed prediction is the only way to lose accuracy, so their changes bound the drop too.")
@click.option("--int8-input", type=click.Choice(["uint8", "int8"]), default="uint8", show_default=True,
              help="Input/output type of the INT8 TFLite (uint8: what MediaPipe and Google's hosted "
                   "quantized models use).")
@click.option("--int8-route", type=click.Choice(["auto", "ptq", "bias-correction"]), default="auto", show_default=True,
              help="How the INT8 TFLite is made: post-training quantization, or PTQ with empirical bias correction "
                   "(integer-only, same graph); auto keeps the correction when it helps on the run's held-out images.")
@click.option("--author", default=None, help="Author field of the models' standard metadata (default: edgecnn).")
@click.option("--license", "license_", default=None, help="License field of the models' standard metadata "
                                                          "(default: none stated).")
@click.option("--fallback-steps", type=click.IntRange(0, 20), default=6, show_default=True,
              help="Most re-exports with the most sensitive ops kept in float (1, 2, 4, ... ops).")
@click.option("--point-estimate", is_flag=True, help="Judge the INT8 budget on the point estimate alone (no interval).")
@click.option("--json", "json_out", is_flag=True, help="Print the export report as JSON on stdout.")
def export(run_dir, int8, fp16, fp32, onnx, tensorrt, calibration, calibration_size, max_drop, eval_data, unlabeled,
           int8_input, int8_route, author, license_, fallback_steps, point_estimate, json_out):
    """Convert a run's model to TFLite/ONNX (float, FP16, INT8) and measure each against float.

    With no format flag it exports float32 and INT8 TFLite. Artifacts and export_report.json go
    to RUN_DIR/export/. Exit status: 0 when the INT8 budget holds (95% interval of the paired drop
    within it), 1 when it fails even with the float fallback, 3 when the images cannot decide it.
    """
    from .export import ExportOptions, export as run_export
    from .export.budget import check_budget
    from .render import export_table

    precisions = tuple(p for p, on in (("fp32", fp32), ("fp16", fp16), ("int8", int8)) if on) or ("fp32", "int8")
    opts = ExportOptions(run_dir, precisions, onnx, tensorrt, calibration, calibration_size, max_drop,
                         eval_data, unlabeled, int8_input, fallback_steps, int8_route=int8_route,
                         point_estimate=point_estimate, author=author, license=license_)
    rep = run_export(opts, log=_log)
    _refresh_page(Path(run_dir))
    click.echo(rep.to_json().rstrip("\n") if json_out else export_table(rep))
    check_budget(rep)


# ------------------------------------------------------------------------------------ bench
def _device_flags(command):
    """A bench flag for every device option, read off the devices' typed option classes (their one source)."""
    from .devices import option_table

    for spec, kinds in reversed(option_table()):
        lo, hi = spec.range or (None, None)
        kind = {bool: None, int: click.IntRange(lo, hi), float: click.FloatRange(lo, hi)}.get(
            spec.type, click.Path(path_type=Path, dir_okay=False) if spec.path else None)
        text = (f"{', '.join(kinds)}: " if kinds else "") + spec.help + (
            f" [default: {spec.default:g}]" if isinstance(spec.default, float) else "")
        command = click.option(spec.flag, spec.name, is_flag=spec.type is bool, type=kind, default=None,
                               multiple=spec.repeat, metavar=spec.metavar, help=text)(command)
    return command


@main.command()
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--device", "devices", multiple=True, metavar="KIND[:KEY=VALUE,...]",
              help="host (default), jetson (SSH), phone (adb) or phone-emulated (QEMU + latency estimate), with "
                   "its options, e.g. jetson:host=ubuntu@10.0.0.21,port=2222. Repeat it to bench on several devices "
                   "at once (one table, one verdict).")
@click.option("--fleet", "fleet_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="A YAML file listing devices (SSH boards, phones, emulated profiles, the host): bench on "
                   "every one at once; one row per device, the worst verdict wins.")
@click.option("--parallel", type=click.IntRange(1, 64), default=None,
              help="Fleet: devices benched at once (default: the fleet file's, else 4).")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="Class folders named like the model's labels, for accuracy (default: latency only).")
@click.option("--unlabeled", type=click.Path(path_type=Path, file_okay=False), default=None, metavar="DIR",
              help="Photos of the deployment domain without labels (never calibration or training images): a "
                   "changed prediction is the only way to lose accuracy, so their changes bound the drop too.")
@click.option("--reference", type=click.Path(path_type=Path), default=None,
              help="Float reference model (default: the run's model_fp32.tflite, else model.keras).")
@click.option("--engine", default=None, help="Runner to use (litert, onnxruntime, tensorrt); default by format.")
@click.option("--threads", type=click.IntRange(1, 256), default=None,
              help="Inference threads (default: all cores up to 4).")
@click.option("--cpus", default=None, metavar="LIST", help="Pin the agent to these CPU ids, e.g. 0,1.")
@click.option("--runs", type=click.IntRange(1, 100000), default=200, show_default=True, help="Timed inferences.")
@click.option("--warmup", type=click.IntRange(0, 10000), default=20, show_default=True)
@click.option("--min-seconds", type=click.FloatRange(0, 3600), default=2.0, show_default=True,
              help="Keep timing until at least this long has passed (steadier p50 on a busy machine).")
@click.option("--repeat", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Time each model in N fresh agent processes, interleaved; report the median and the spread.")
@click.option("--max-images", type=click.IntRange(1), default=None, help="Use at most N images of --data.")
@click.option("--budget-mb", type=click.FloatRange(0, min_open=True), default=None, help="Size budget (default: recipe's, 20).")
@click.option("--max-drop", type=click.FloatRange(0, 100), default=None, metavar="PP", help="Accuracy drop budget vs the reference.")
@click.option("--max-p90-ms", type=click.FloatRange(0, min_open=True), default=None, help="p90 latency budget.")
@click.option("--min-agreement", "min_agreement", type=click.FloatRange(0, 100), default=None, metavar="PCT",
              help="Budget: at least PCT% of images keep the reference's top-1 (judged on its 95% interval).")
@click.option("--point-estimate", is_flag=True,
              help="Judge accuracy budgets on point estimates alone (no INCONCLUSIVE; not recommended on small sets).")
@click.option("--baseline", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="MODEL",
              help="Time each model in turns with this one in the same process (host, jetson): the p50 ratio "
                   "holds on a busy machine where absolute times drift.")
@click.option("--max-slowdown", "max_slowdown", type=click.FloatRange(min=-100), default=None, metavar="PCT",
              help="Fail when p50 is more than PCT% above the baseline's (needs --baseline).")
@_device_flags
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the results as JSON (use - for stdout).")
@click.option("--markdown", "md_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write a Markdown table (e.g. for a PR comment).")
def bench(target, devices, fleet_path, parallel, data_dir, unlabeled, reference, engine, threads, cpus, runs, warmup,
          min_seconds, repeat, max_images, budget_mb, max_drop, max_p90_ms, min_agreement, point_estimate, baseline,
          max_slowdown, json_path, md_path, **device_flags):
    """Measure latency, accuracy drop, memory and size of a model (or every model of RUN_DIR/export).

    Budgets come from the run's recipe (recipe.json); options override them. Accuracy budgets are
    judged on 95% intervals of the paired drop and agreement. Exit status: 0 when every budget holds,
    1 when one fails, 3 when the images cannot decide one (INCONCLUSIVE), 2 for bad input or an
    unreachable device.
    """
    from .bench import BenchOptions, bench as run_bench, check, render, write_outputs

    if cpus is not None and not all(c.strip().isdigit() for c in cpus.split(",")):
        raise click.BadParameter("expected comma-separated CPU ids, e.g. 0,1", param_hint="--cpus")
    fleet, timeout = _fleet(devices, device_flags, fleet_path, parallel)
    o = BenchOptions(target, data_dir, unlabeled, reference, engine, threads,
                     tuple(int(c) for c in cpus.split(",")) if cpus else None, runs, warmup, min_seconds,
                     max_images, budget_mb, max_drop, max_p90_ms, repeat, baseline, max_slowdown, min_agreement,
                     point_estimate, timeout=timeout)
    for path in (json_path, md_path):
        if path is not None and str(path) != "-":
            check_writable(path)
    doc = run_bench(o, fleet, log=_log)
    _keep_in_run(doc)
    to_stdout = json_path is not None and str(json_path) == "-"
    write_outputs(doc, None if to_stdout else json_path, md_path)
    click.echo(doc.to_json().rstrip("\n") if to_stdout else render(doc))
    check(doc)


def _keep_in_run(doc) -> None:
    """A bench of a run's models: the run keeps its latest bench per device, and its page is rebuilt."""
    from .rundir import record_bench

    if doc.run is not None:
        record_bench(doc, Path(doc.run))
        _refresh_page(Path(doc.run))


def _refresh_page(run_dir: Path) -> None:
    """The run's report page rebuilt from what the run now holds, after a command has written it: the page
    only reads the run, and no step of the flow imports it."""
    from .report import refresh

    refresh(run_dir, _log)


def _fleet(specs: tuple[str, ...], flags: dict, fleet_path: Path | None, parallel: int | None):
    """(the fleet the options describe: a fleet file, or the --device specs with the device flags; the
    command's timeout, which a device's own options override)."""
    from . import fleet as F
    from .devices.base import DeviceOptions

    common = DeviceOptions.model_fields
    timeout = flags.get("timeout") or common["timeout"].default
    given = {k: str(v) if isinstance(v, Path) else v for k, v in flags.items()
             if k not in common and v not in (None, False, ())}
    if fleet_path is not None:
        if specs or given:
            raise click.UsageError("--fleet lists the devices and their options: drop --device/--host/... ")
        f = F.load(fleet_path)
        return (dataclasses.replace(f, parallel=parallel) if parallel else f), timeout
    return F.Fleet(F.from_command_line(specs or ("host",), given), parallel or F.DEFAULT_PARALLEL), timeout


# ------------------------------------------------------------------------------------ board
@main.group()
def board():
    """A stand-in Arm64 board on this machine, to try `bench --device jetson` without a Jetson.

    \b
    An Arm64 Debian (python3, LiteRT, ONNX Runtime) whose programs run under QEMU pinned to an Arm
    core, with its own sshd on 127.0.0.1. Built once (about 5 minutes, ~500 MB in the user's cache).
    Needs root (binfmt_misc, mounts, chroot). Its latencies are the emulation's, not a Jetson's.
    `edgecnn board stop` undoes everything start did.
    """


@board.command("start")
@click.option("--port", type=click.IntRange(*PORT_RANGE), default=2223, show_default=True,
              help="The board's SSH port on 127.0.0.1.")
@click.option("--core", default="cortex-a76", show_default=True,
              help="The emulated Arm core (cortex-a76, cortex-a72, cortex-a57, cortex-a53).")
def board_start(port, core):
    """Build (once) and start the board; print how to bench on it."""
    from .emulation.standin import start

    click.echo(start(port=port, core=core, log=_log).summary() + "\n  edgecnn board stop   # when done")


@board.command("stop")
def board_stop():
    """Stop the board: its processes ended, its mounts and binfmt_misc entry removed."""
    from .emulation.standin import stop

    left = stop(log=_log)
    if any(left.values()):
        raise EdgecnnError(f"the board could not be fully removed: {left}")
    click.echo("board stopped; nothing of it is left running or mounted")


@board.command("status")
def board_status():
    """Whether the board runs, and how to reach it (exit 1 when it does not run)."""
    from .emulation.standin import status

    s = status()
    if s is None:
        click.echo("no stand-in board is running")
        sys.exit(1)
    click.echo(s.summary())


@board.command("build")
def board_build():
    """Build the board's Arm64 root now (start builds it when needed); print the time it took."""
    import time

    from .emulation.standin import build

    t0 = time.perf_counter()
    root = build(log=_log)
    click.echo(f"board root ready in {time.perf_counter() - t0:.0f} s: {root}")


# ------------------------------------------------------------------------------------ report
@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
def report(run_dir):
    """(Re)build RUN_DIR/report.html: data, training, export and bench results on one static page."""
    from .report import build

    click.echo(f"wrote {build(run_dir)}")


# ------------------------------------------------------------------------------------ bundle
@main.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--android", "android_dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="The Android app project (e.g. android_demo).")
@click.option("--precision", type=click.Choice(["int8", "fp16", "fp32"]), default="int8", show_default=True,
              help="Which export of a RUN_DIR to bundle.")
@click.option("--budget-mb", type=click.FloatRange(0, min_open=True), default=None,
              help="Size budget (default: the recipe's, 20).")
def bundle(source, android_dir, precision, budget_mb):
    """Put a model (RUN_DIR's export, or a .tflite), its labels and contract into the app's assets."""
    from .bundle import bundle as run_bundle
    from .rundir import budgets_for

    budget_mb = budgets_for(source, size_mb=budget_mb).size_mb
    res = run_bundle(source, android_dir, precision, budget_mb=budget_mb, log=_log)
    for f in res["files"]:
        click.echo(f"  {f['name']:<16} {f['bytes'] / 1e6:8.3f} MB  sha256 {f['sha256'][:12]}")
    click.echo(f"bundled {res['model']} ({res['input_dtype']} {res['input_size'][0]}x{res['input_size'][1]}, "
               f"{res['num_classes']} classes) into {res['assets_dir']}: {res['total_bytes'] / 1e6:.2f} MB "
               f"of {res['budget_mb']} MB budget")


def run() -> None:
    """Console-script entry: the CLI with TensorFlow's native log lines filtered from stderr."""
    filter_native_stderr()
    main()


if __name__ == "__main__":
    run()
