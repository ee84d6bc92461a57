"""Android assets: put a model, with its labels and its preprocessing contract, into the demo app.

``bundle(RUN_DIR or MODEL.tflite, android_demo/)`` writes ``model.tflite`` into
``android_demo/app/src/main/assets/``: the exported model, byte for byte, when the contract it
carries is already the one the agent applies; otherwise (a model whose contract came from a
sidecar, or was stamped with other I/O types) the same flatbuffer re-stamped with that contract as
standard TFLite metadata. The app reads ``contract.json`` and ``labels.txt`` from the model's
associated files (``core/ModelFiles.kt``), as any standard client would; no loose copies. Beside
it goes a small manifest, ``edgecnn-bundle.json``, listing what it wrote (name, size, sha256), so the
next bundle removes exactly those files and nothing a developer put there; a file of the same name
that no manifest lists, or an assets path that is not a folder, is refused, never replaced. The new set is staged
in a temporary folder beside the assets and swapped in with renames: an interrupted bundle
leaves the previous one in place.

The contract the bundled model carries is the one the on-device agent applies: the model's contract reconciled with
its own tensors (``edgecnn.runtimes.base.reconcile``: size and class count must match, input and
output types and quantization are the model's).

It refuses, with one line and no copy: a model over the size budget (default 20 MB, 1 MB =
1,000,000 bytes), a model that carries no contract, a contract whose input size or class count
disagrees with the model, and a contract the app cannot honour (it applies RGB, NHWC, bilinear
resize, float32/int8/uint8 input, and reads float32/int8/uint8 output only).

Needs the standard library, numpy and (for the tensor check) ai-edge-litert: never TensorFlow.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Callable

from .core.errors import BudgetError, InputError
from .core.io import sha256_file, staged
from .rundir import DEFAULT_SIZE_MB, check_same_model, run_of_artifact

PRECISIONS = ("int8", "fp16", "fp32")
MB = 1_000_000
MODEL_NAME = "model.tflite"
MANIFEST_NAME = "edgecnn-bundle.json"
ASSETS = Path("app") / "src" / "main" / "assets"

# what the app's Kotlin core implements (android_demo/.../core/Contract.kt, Preprocess.kt)
APP_COLOR_ORDERS = ("RGB",)
APP_LAYOUTS = ("NHWC",)
APP_RESIZE = ("bilinear",)
APP_INPUT_DTYPES = ("float32", "int8", "uint8")
APP_OUTPUT_DTYPES = ("float32", "int8", "uint8")


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / MB:.2f} MB"


def resolve_model(source: str | Path, precision: str = "int8") -> Path:
    """The .tflite a RUN_DIR (its export/model_<precision>.tflite) or a MODEL path stands for."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    src = Path(source)
    if src.is_dir():
        name = f"model_{precision}.tflite"
        for cand in (src / "export" / name, src / name):
            if cand.is_file():
                return cand
        found = sorted(p.name for d in (src / "export", src) if d.is_dir() for p in d.glob("model_*.tflite"))
        hint = (f"found {', '.join(found)}: pass --precision accordingly" if found
                else f"run 'edgecnn export {src}' first")
        raise InputError(f"no {name} in {src / 'export'} ({hint})")
    if not src.exists():
        raise InputError(f"no such run folder or model: {src}")
    if src.suffix.lower() != ".tflite":
        raise InputError(f"{src}: the Android app runs a .tflite model (got '{src.suffix or src.name}'); "
                         f"export one with 'edgecnn export'")
    return src


def _app_problems(contract) -> list[str]:
    """Why the app's Kotlin core cannot apply this contract (empty when it can)."""
    out = []
    if contract.color_order not in APP_COLOR_ORDERS:
        out.append(f"colour order {contract.color_order} (the app feeds RGB)")
    if contract.layout not in APP_LAYOUTS:
        out.append(f"layout {contract.layout} (the app feeds NHWC)")
    if contract.resize not in APP_RESIZE:
        out.append(f"resize {contract.resize} (the app resizes bilinear)")
    if contract.input_dtype not in APP_INPUT_DTYPES:
        out.append(f"input dtype {contract.input_dtype} (the app feeds {'/'.join(APP_INPUT_DTYPES)})")
    if contract.input_dtype != "float32" and contract.input_quantization is None:
        out.append(f"{contract.input_dtype} input without input_quantization")
    return out    # labels that cannot be one line of labels.txt are refused with the contract itself


def _reconciled(model: Path, contract, log):
    """The contract as it applies to this model, exactly as the agent applies it.

    ``edgecnn.runtimes.base.reconcile``: input size and class count must match the model's
    tensors (else one-line ContractError); input/output dtype and quantization are the model's own
    (the file is the truth). Without LiteRT installed the contract is used as it is (the app
    checks the tensors again on the phone).
    """
    from .agent.runtimes.base import RuntimeMissing, reconcile
    from .agent.runtimes.litert import LiteRTRunner

    try:
        with LiteRTRunner(model) as r:
            out_dtype = r.output.dtype
            fixed = reconcile(r, contract, model.name)
    except RuntimeMissing:
        log("warning: ai-edge-litert is not installed; the model's tensors were not checked against its contract")
        return contract
    if out_dtype not in APP_OUTPUT_DTYPES:
        raise InputError(f"{model.name}: output type {out_dtype} (the app reads {'/'.join(APP_OUTPUT_DTYPES)})")
    if out_dtype != "float32" and fixed.output_quantization is None:
        raise InputError(f"{model.name}: {out_dtype} output without quantization parameters")
    for what, a, b in (("input type", contract.input_dtype, fixed.input_dtype),
                       ("input quantization", contract.input_quantization, fixed.input_quantization),
                       ("output quantization", contract.output_quantization, fixed.output_quantization)):
        if a != b:
            log(f"note: the contract's {what} ({_q(a)}) differs from the model's ({_q(b)}); "
                f"bundling the model's")
    return fixed


def _q(v) -> str:
    return "none" if v is None else v if isinstance(v, str) else f"scale {v.scale:.9g}, zero point {v.zero_point}"



def _previous_files(assets: Path) -> set[str]:
    """What the last bundle wrote into assets (its manifest and the files it lists): the only entries
    a bundle replaces. Anything else there that a bundle would write over, and an assets path that is
    not a folder, is refused: a developer's file is never replaced or deleted."""
    if not assets.exists() and not assets.is_symlink():
        return set()
    if not assets.is_dir():
        raise InputError(f"{assets} is a file, not the app's assets folder: bundle writes its model into "
                         f"that folder; move the file away and bundle again")
    manifest = assets / MANIFEST_NAME
    ours: set[str] = set()
    if manifest.exists() or manifest.is_symlink():
        try:
            names = {str(f["name"]) for f in json.loads(manifest.read_text(encoding="utf-8"))["files"]}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            raise InputError(f"{manifest} is not a manifest edgecnn bundle can read, so what the last bundle "
                             f"wrote is not known: move it away and bundle again") from None
        ours = {n for n in names if n and "/" not in n and "\\" not in n and n not in (".", "..")} | {MANIFEST_NAME}
    theirs = sorted(n for n in (MODEL_NAME, MANIFEST_NAME) if n not in ours and (assets / n).exists())
    if theirs:
        raise InputError(f"{assets / theirs[0]} was not written by edgecnn bundle (no {MANIFEST_NAME} lists it): "
                         f"move it away and bundle again")
    return ours


def bundle(source: str | Path, android_dir: str | Path, precision: str = "int8", *,
           budget_mb: float = DEFAULT_SIZE_MB, log: Callable[[str], None] | None = print) -> dict:
    """Put a model, carrying its labels and contract, into the Android app's assets; return what was written.

    ``source``: a run folder (uses ``export/model_<precision>.tflite``) or a ``.tflite`` file.
    ``android_dir``: the Android project (``android_demo/``). Raises InputError (bad input, no
    contract, a contract the app cannot honour) or BudgetError (model over ``budget_mb``).
    """
    log = log or (lambda _msg: None)
    model = resolve_model(source, precision)
    app = _checked_app(Path(android_dir), budget_mb)
    size = model.stat().st_size
    if size > budget_mb * MB:
        raise BudgetError(f"{model.name} is {_mb(size)}, over the {budget_mb:g} MB size budget: "
                          f"not bundled (export INT8, a smaller input size or alpha, or raise --budget-mb)")
    contract = _checked_contract(model, log)
    src = Path(source)
    manifest = {
        "schema": "edgecnn.bundle/1",
        "model_source": (f"{src.name}/{model.relative_to(src).as_posix()}" if src.is_dir() else model.name),
        "precision": precision if src.is_dir() else None, "input_dtype": contract.input_dtype,
        "input_size": list(contract.input_size), "num_classes": contract.num_classes, "budget_mb": budget_mb,
    }
    assets = app / ASSETS
    previous = _previous_files(assets)
    files = _write_assets(model, contract, manifest, assets, previous, log)
    log(f"bundled {model} ({contract.input_dtype} input {contract.input_size[0]}x{contract.input_size[1]}, "
        f"{contract.num_classes} classes; {_mb(size)} of the {budget_mb:g} MB budget) into {assets}:")
    for f in files:
        log(f"  {f['name']:<14} {f['bytes']:>12,d} bytes")
    return {"model": str(model), "assets_dir": str(assets), "size_mb": round(size / MB, 3), "within_budget": True,
            "total_bytes": sum(f["bytes"] for f in files), "files": files,
            **{k: manifest[k] for k in ("precision", "input_dtype", "input_size", "num_classes", "budget_mb")}}


def _checked_app(app: Path, budget_mb) -> Path:
    manifest_xml = app / "app" / "src" / "main" / "AndroidManifest.xml"
    if not manifest_xml.is_file():
        raise InputError(f"{app} is not the edgecnn Android app (no {manifest_xml.relative_to(app)}); "
                         f"pass --android android_demo")
    if not (isinstance(budget_mb, (int, float)) and budget_mb > 0 and math.isfinite(budget_mb)):
        raise InputError(f"the size budget must be a positive number of MB, got {budget_mb!r}")
    return app


def _checked_contract(model: Path, log):
    """The model's contract, from the same model as its run, reconciled with its tensors, honourable by the app."""
    from .core.artifact import read_contract
    contract = read_contract(model)          # embedded, or a sidecar beside the model
    run = run_of_artifact(model)
    if run is not None:                      # never bundle a stale export of another model
        check_same_model(model, contract, run)
    contract = _reconciled(model, contract, log)
    problems = _app_problems(contract)
    if problems:
        raise InputError(f"{model.name}: the Android app cannot honour its contract: {'; '.join(problems)}")
    return contract


def _write_assets(model: Path, contract, manifest: dict, assets: Path, previous: set[str], log) -> list[dict]:
    """The model (carrying `contract`) and the manifest staged beside the assets folder and swapped in whole."""
    try:
        with staged(assets) as staging:
            _write_model(model, contract, staging / MODEL_NAME, log)
            files = [{"name": n, "bytes": (staging / n).stat().st_size, "sha256": sha256_file(staging / n)}
                     for n in (MODEL_NAME,)]
            (staging / MANIFEST_NAME).write_text(json.dumps({**manifest, "files": files}, indent=2) + "\n",
                                                 encoding="utf-8")
            _carry_over(assets, staging, previous)
            for f in staging.rglob("*"):
                if f.is_file():
                    with open(f, "rb") as fh:
                        os.fsync(fh.fileno())
        return files
    except OSError as e:
        raise InputError(f"cannot write the app's assets in {assets}: {e.strerror or e}") from None


def _write_model(model: Path, contract, dest: Path, log) -> None:
    """The model byte for byte when it already carries `contract`, else re-stamped with it."""
    from .core.artifact import embedded_contract, model_card, tflite_with_contract
    if embedded_contract(model) == contract:
        shutil.copyfile(model, dest)
        return
    log(f"note: {model.name} is bundled re-stamped with the contract above (standard metadata and "
        f"associated files), so the app reads the contract the agent applies")
    dest.write_bytes(tflite_with_contract(model.read_bytes(), contract, model_card(contract)))


def _carry_over(assets: Path, staging: Path, previous: set[str]) -> None:
    """Keep whatever else lives in assets (a developer's own files); drop what we wrote before."""
    if not assets.is_dir():
        return
    for entry in assets.iterdir():
        if entry.name in previous or (staging / entry.name).exists():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, staging / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, staging / entry.name, follow_symlinks=False)

