"""A run directory: what train wrote, read back the same way by export, bench and bundle.

    runs/<name>/  model.keras  contract.json  recipe.json  labels.txt  history.json  metrics.json  report/
                  export/  *.tflite *.onnx export_report.json

- The resolved recipe (``recipe.json``) is what export, bench and bundle enforce (sizes, INT8 drop,
  p90, calibration size); command-line budgets override it. The built-in recipe of the same name is
  never consulted: a run trained from a custom recipe keeps its own budgets.
- Provenance: contract.json records the sha256 of model.keras and of recipe.json; every
  artifact carries that contract, so an artifact made from another model is recognised and refused.
- A run is written whole: train writes a staging folder beside the destination and swaps it in at
  the end, so an interrupted or failed run leaves the previous one untouched, and a new run never
  keeps an older run's export/.
- Only a run is ever replaced: every run carries a marker (``.edgecnn-run``, the command that wrote
  it), and a run folder never is, contains or lies inside one of its inputs (check_out_dir).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import recipe as R
from .core import contract as C
from .core.errors import InputError
from .core.io import atomic_write_text, json_text, read_json, sha256_file
from . import results
from .results import BenchDocument, ExportReport

RECIPE_FILE = "recipe.json"
EXPORT_DIR = "export"
EXPORT_REPORT = "export_report.json"   # what `edgecnn export` wrote: export/export_report.json
BENCH_DIR = "bench"                  # the latest bench document per device kind: bench/<kind>.json
DEFAULT_SIZE_MB = 20.0


class ProvenanceError(InputError):
    """Two things compared that were not made from the same model: exit 2."""


def recipe_json(recipe: R.Recipe) -> str:
    return json.dumps(recipe.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


@dataclass
class Run:
    dir: Path
    contract: C.Contract
    recipe: R.Recipe
    metrics: dict

    @property
    def export_dir(self) -> Path:
        return self.dir / EXPORT_DIR

    @property
    def model_path(self) -> Path:
        return self.dir / "model.keras"

    @property
    def data_root(self) -> Path | None:
        root = self.metrics.get("data", {}).get("root")
        return Path(root) if root and Path(root).is_dir() else None


def read_json_object(path: Path) -> dict:
    """A JSON object from a file of the run; anything else is one InputError naming the file."""
    d = read_json(path)
    if not isinstance(d, dict):
        raise InputError(f"{path}: expected a JSON object")
    return d


def _run_recipe(run_dir: Path) -> R.Recipe:
    """The recipe the run was trained with (recipe.json)."""
    path = run_dir / RECIPE_FILE
    if not path.is_file():
        raise InputError(f"{run_dir} records no recipe ({RECIPE_FILE}; trained by an older edgecnn): retrain it")
    return R.from_dict(read_json_object(path), str(path))


def load_run(run_dir: str | Path) -> Run:
    """The run, checked: its model.keras is the one its contract's provenance names."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"run directory not found: {run_dir}")
    contract = C.load(run_dir / "contract.json")
    if not (run_dir / "model.keras").is_file():
        raise InputError(f"{run_dir} has no model.keras (train it with 'edgecnn train')")
    metrics = read_json_object(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
    run = Run(run_dir, contract, _run_recipe(run_dir), metrics)
    prov = contract.provenance
    if prov is None:
        raise ProvenanceError(f"{run_dir}/contract.json records no provenance (trained by an older edgecnn): "
                              f"retrain it so artifacts can be traced to their model")
    if sha256_file(run.model_path) != prov.model_sha256:
        raise ProvenanceError(f"{run.model_path} is not the model its contract.json was written for "
                              f"(sha256 differs): was it replaced after training? retrain the run")
    if sha256_file(run_dir / RECIPE_FILE) != prov.recipe_sha256:
        raise ProvenanceError(f"{run_dir}/{RECIPE_FILE} is not the recipe the run was trained with "
                              f"(sha256 differs from contract.json's provenance)")
    return run


def run_of_artifact(path: Path) -> Run | None:
    """The run an artifact lies in (RUN/export/FILE), or None for a file outside a run."""
    path = Path(path)
    if path.parent.name == EXPORT_DIR and (path.parent.parent / "contract.json").is_file():
        return load_run(path.parent.parent)
    return None


def check_same_model(artifact: Path, contract: C.Contract | None, run: Run) -> None:
    """Refuse an artifact of the run's export/ that was not made from the run's model.keras."""
    prov = contract.provenance if contract is not None else None
    if prov is None:
        raise ProvenanceError(f"{artifact} records no provenance (exported by an older edgecnn or copied in): "
                              f"re-export the run with 'edgecnn export {run.dir}' or remove the file")
    if prov != run.contract.provenance:
        raise ProvenanceError(
            f"{artifact} was made from another model (model sha256 {prov.model_sha256[:12]}, the run's is "
            f"{run.contract.provenance.model_sha256[:12]}): a stale file; re-export with 'edgecnn export "
            f"{run.dir}' or remove it")


def check_comparable(artifact: str, a: C.Contract | None, reference: str, b: C.Contract | None,
                     explicit_reference: bool) -> str | None:
    """Refuse comparing an artifact with a reference of another provenance; a note when it is unknown."""
    pa, pb = (a.provenance if a else None), (b.provenance if b else None)
    if pa is not None and pb is not None:
        if pa != pb:
            raise ProvenanceError(f"{artifact} and the reference {reference} were made from different models "
                                  f"(model sha256 {pa.model_sha256[:12]} vs {pb.model_sha256[:12]}): the accuracy "
                                  f"drop between them means nothing; pass the matching --reference")
        return None
    if not explicit_reference:
        raise ProvenanceError(f"{artifact} or its reference {reference} records no provenance: re-export the run")
    return (f"{artifact} vs {reference}: provenance not recorded on both, so not checked "
            f"(the reference was chosen with --reference)")


@dataclass(frozen=True)
class Budgets:
    """The limits a verdict enforces, and where each came from."""

    size_mb: float
    max_drop_pp: float | None
    max_p90_ms: float | None
    source: str
    min_agreement_pct: float | None = None

    @classmethod
    def resolve(cls, run: Run | None, size_mb=None, max_drop_pp=None, max_p90_ms=None,
                min_agreement_pct=None) -> "Budgets":
        """The run's recipe budgets, each overridden by a command-line value when given."""
        b = run.recipe.budgets if run is not None else None
        source = f"recipe {run.recipe.name} of {run.dir}" if run is not None else "defaults (no run)"
        given = [n for n, v in (("size", size_mb), ("drop", max_drop_pp), ("p90", max_p90_ms),
                                ("agreement", min_agreement_pct)) if v is not None]
        if given:
            source += f", command line ({', '.join(given)})"
        pick = lambda v, rv, d: v if v is not None else (rv if b is not None else d)  # noqa: E731
        return cls(size_mb=pick(size_mb, b and b.size_mb, DEFAULT_SIZE_MB),
                   max_drop_pp=pick(max_drop_pp, b and b.max_int8_drop_pp, None),
                   max_p90_ms=pick(max_p90_ms, b and b.max_p90_ms, None), source=source,
                   min_agreement_pct=pick(min_agreement_pct, b and b.min_agreement_pct, None))


def bench_file(run_dir: Path, device: str) -> Path:
    return Path(run_dir) / BENCH_DIR / f"{device}.json"


def record_bench(doc: BenchDocument, run_dir: Path) -> None:
    """Keep a bench document in its run: the latest per device kind benched (a document of that device)."""
    for e in doc.devices:
        if e.records:
            results.write(bench_file(run_dir, e.device), doc.of_device(e))


def read_benches(run_dir: Path) -> list[BenchDocument]:
    """The run's latest bench document per device kind (bench/<kind>.json), each of this version."""
    return [results.read(p, BenchDocument) for p in sorted((Path(run_dir) / BENCH_DIR).glob("*.json"))]


def read_export_report(run_dir: Path) -> ExportReport | None:
    """The run's export report (export/export_report.json), None before its first export."""
    path = Path(run_dir) / EXPORT_DIR / EXPORT_REPORT
    return results.read(path, ExportReport) if path.is_file() else None


def budgets_for(source: Path, **overrides) -> Budgets:
    """Budgets for a run directory or an artifact (its run's, when it lies in one)."""
    source = Path(source)
    run = load_run(source) if source.is_dir() else run_of_artifact(source)
    return Budgets.resolve(run, **overrides)


# ------------------------------------------------------------------------------ writing a run whole
MARKER_FILE = ".edgecnn-run"          # written into every run train writes: what --overwrite may replace
MARKER_SCHEMA = "edgecnn.run/1"
LEGACY_RUN_FILES = ("contract.json", RECIPE_FILE, "model.keras")   # a run of an edgecnn without markers
RUN_COMMANDS = ("train", "demo")


@dataclass(frozen=True)
class RunMarker:
    """The marker file of a run folder: which command wrote it. Only a folder that carries one (or an
    older edgecnn's run: contract.json, recipe.json and model.keras) is ever replaced whole."""

    command: str                      # "train" or "demo"
    schema: str = MARKER_SCHEMA

    def to_json(self) -> str:
        return json_text({"schema": self.schema, "command": self.command})

    @classmethod
    def read(cls, folder: Path) -> "RunMarker | None":
        """The folder's marker, or None when it has none or one that is not ours (never an error)."""
        try:
            d = json.loads((Path(folder) / MARKER_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        if not isinstance(d, dict) or d.get("schema") != MARKER_SCHEMA or d.get("command") not in RUN_COMMANDS:
            return None
        return cls(d["command"])


def write_marker(folder: Path, command: str) -> None:
    atomic_write_text(Path(folder) / MARKER_FILE, RunMarker(command).to_json())


def _relation(out: Path, other: Path) -> str | None:
    if out == other:
        return "is"
    if out in other.parents:
        return "contains"
    if other in out.parents:
        return "lies inside"
    return None


def check_out_dir(out: Path, inputs: dict[str, Path | None]) -> None:
    """Refuse a run folder (--out) that is, contains or lies inside one of the inputs, given as option
    name -> path (--data, --calibration, --unlabeled; None skipped). Paths are compared resolved,
    symlinks followed; a file input stands for the folder it lies in. A run folder is replaced whole,
    so an input inside it would be deleted, and a run inside an input would become part of it."""
    target = Path(out).resolve()
    for option, path in inputs.items():
        if path is None:
            continue
        folder = Path(path).resolve()
        if folder.is_file():
            folder = folder.parent
        how = _relation(target, folder)
        if how is not None:
            raise InputError(f"--out {out} {how} the {option} folder {path}: a run folder is replaced whole, "
                             f"so it must lie apart from its inputs; choose an --out outside {path}")


def _holds_a_run(folder: Path) -> bool:
    return RunMarker.read(folder) is not None or all((folder / n).is_file() for n in LEGACY_RUN_FILES)


def refuse_existing(dest: Path, overwrite: bool, command: str = "train") -> None:
    """Refuse a destination that holds files, unless it may be replaced whole: with --overwrite an
    edgecnn run (its marker, or an older edgecnn's run files); for demo, a run demo wrote itself."""
    if dest.exists() and not dest.is_dir():
        raise InputError(f"--out {dest} is a file, not a folder")
    if not dest.is_dir() or not any(dest.iterdir()):
        return
    marker = RunMarker.read(dest)
    if command == "demo":
        if marker is not None and marker.command == "demo":
            return
        what = f"a run written by 'edgecnn {marker.command}'" if marker else \
            (f"a run no demo wrote (no {MARKER_FILE}: train's, or an older edgecnn's)" if _holds_a_run(dest)
             else "files that are not an edgecnn run")
        raise InputError(f"--out {dest} holds {what}: the demo replaces only its own previous run; "
                         f"choose another --out, or delete that folder yourself")
    if not _holds_a_run(dest):
        raise InputError(f"--out {dest} holds files that are not an edgecnn run (no {MARKER_FILE}): "
                         f"--overwrite replaces only a run folder; choose another --out")
    if not overwrite:
        raise InputError(f"{dest} already holds files (a previous run?): pass --overwrite to replace it "
                         f"whole, export/ included, or choose another --out")
