"""A run's report page: runs/<name>/report.html, one static file with every image embedded.

It is rebuilt from what the run holds (metrics.json, history plots, export/export_report.json and
bench/<device>.json) by the CLI after train, export and bench, and by ``edgecnn report RUN_DIR``: a pure
reader of the run, which no step of the flow imports; a step not taken yet is shown as such. HTML comes from a Jinja2 template (autoescaped), plots from matplotlib.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import io
from dataclasses import dataclass
from pathlib import Path

from jinja2 import TemplateError

from . import plots
from . import verdict as V
from .core.errors import InputError
from .core.io import atomic_write_text
from .results import BenchDocument, BenchRecord, DeviceEntry, ExportReport
from .rundir import read_benches, read_export_report, read_json_object

PAGE = "report.html"
FLIP_THUMBS = 12           # flipped images shown per artifact
THUMB_PX = 72


@dataclass
class View:
    """One device's bench as the page shows it: the document it came from and the device's entry."""

    doc: BenchDocument
    entry: DeviceEntry

    @property
    def notes(self) -> list[str]:
        return self.doc.notes + self.entry.notes


@dataclass
class Section:
    """What the template gets for one step of the flow: its document, or why there is none."""

    doc: ExportReport | list[View] | None
    missing: str | None = None


def refresh(run_dir: Path, log=print) -> Path | None:
    """Rebuild the page after a step that has already written its results: a file of the run that
    cannot be shown (say, a stale bench result of an older version) is reported, not fatal."""
    try:
        return build(run_dir)
    except InputError as e:
        log(f"report: {PAGE} not rebuilt: {e}")
        return None


def build(run_dir: str | Path, name: str | None = None) -> Path:
    """(Re)write RUN_DIR/report.html from the run's files; returns its path. name: the run's name
    when run_dir is a staging folder."""
    run_dir = Path(run_dir)
    metrics = _read(run_dir / "metrics.json")
    if metrics is None:
        raise InputError(f"{run_dir} is not a training run (no metrics.json): nothing to report")
    benches = _bench_docs(run_dir)
    try:
        html = _template().render(**_context(run_dir, name, metrics, benches))
    except (LookupError, TypeError, ValueError, AttributeError, TemplateError) as e:
        raise InputError(f"{run_dir}: its result files are not as edgecnn writes them "
                         f"({type(e).__name__}: {str(e)[:120]})") from None
    page = run_dir / PAGE
    atomic_write_text(page, html)
    return page


def _context(run_dir: Path, name: str | None, metrics: dict, benches: list[View]) -> dict:
    return {
        "name": name or run_dir.resolve().name, "metrics": metrics,
        "built": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "images": _training_images(run_dir, metrics),
        "export": _export_section(run_dir),
        "bench": Section(benches or None, None if benches else
                         f"not benchmarked yet: edgecnn bench {run_dir} --data <test folder>"),
        "latency_plot": _latency_plot(benches),
        "verdict": _verdict(benches),
        "fmt": _fmt,
        "flip_thumbs": lambda report, rec: flip_thumbs(report, rec, run_dir),
    }


def _bench_docs(run_dir: Path) -> list[View]:
    """The latest bench document per device (each read as this version's, or refused): one view per device."""
    return [View(doc, e) for doc in read_benches(run_dir) for e in doc.devices]


def _template():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
    env = Environment(loader=PackageLoader("edgecnn", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2")


def _read(path: Path) -> dict | None:
    return read_json_object(path) if path.is_file() else None


def _uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _data_uri(path: Path) -> str | None:
    try:
        return _uri(path.read_bytes())
    except OSError:
        return None


def _thumbnail(path: str, root: Path) -> str | None:
    """A small JPEG of an evaluated image, when the file is still where it was evaluated."""
    from PIL import Image, UnidentifiedImageError
    from .core.contract import MAX_DECODE_PIXELS
    p = Path(path)
    for candidate in (p, root / p):
        if candidate.is_file():
            try:
                with Image.open(candidate) as im:
                    im.draft("RGB", (THUMB_PX, THUMB_PX))      # JPEG: decode at a reduced scale
                    if im.size[0] * im.size[1] > MAX_DECODE_PIXELS:
                        return None                           # not decoded: no thumbnail is worth that
                    im = im.convert("RGB")
                    im.thumbnail((THUMB_PX, THUMB_PX))
                    buf = io.BytesIO()
                    im.save(buf, format="JPEG", quality=80)
                return _uri(buf.getvalue(), "image/jpeg")
            except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError):
                return None
    return None


def _training_images(run_dir: Path, metrics: dict) -> dict:
    rep = run_dir / "report"
    return {"curves": _data_uri(rep / "curves.png"), "confusion": _data_uri(rep / "confusion.png"),
            "gradcam": [(name, _data_uri(rep / "gradcam" / name)) for name in metrics.get("gradcam", [])
                        if (rep / "gradcam" / name).is_file()]}


def _export_section(run_dir: Path) -> Section:
    report = read_export_report(run_dir)
    if report is None:
        return Section(None, f"not exported yet: edgecnn export {run_dir} --int8 --float")
    return Section(report)


def flip_thumbs(report: ExportReport, rec, run_dir: Path) -> list[dict]:
    """The first flipped images of an export record, each with a thumbnail when the file is still there."""
    root = Path(report.run).parent if report.run else run_dir
    return [{"flip": f, "thumb": _thumbnail(f.path, root)} for f in (rec.flips or [])[:FLIP_THUMBS]]


def _latency_plot(benches: list[View]) -> str | None:
    rows = [(f"{r.artifact} on {v.entry.name}" + (" (estimated)" if r.latency_estimated else ""),
             _latency_row(r)) for v in benches for r in v.entry.records if r.latency_ms]
    if not rows:
        return None
    buf = io.BytesIO()
    plots.latency(rows, buf)
    return _uri(buf.getvalue())


def _latency_row(r: BenchRecord) -> dict:
    """A record's latency statistics as the plot takes them (those measured), and whether estimated."""
    return {k: v for k, v in dataclasses.asdict(r.latency_ms).items() if v is not None} | {
        "estimated": r.latency_estimated}


def _verdict(benches: list[View]) -> dict | None:
    """The page's one verdict: every device's bench verdict combined, and the model each would ship."""
    if not benches:
        return None
    per_device = []
    for v in benches:
        choice = V.choose_deployable(v.entry)
        per_device.append({"device": v.entry.name, "verdict": v.entry.verdict,
                           "deploy": choice.record.artifact if choice.record else None,
                           "deploy_verdict": choice.verdict, "rejected": choice.rejected})
    return {"verdict": V.overall([v.entry.verdict for v in benches]), "devices": per_device}


def _fmt(v, spec: str = ".2f", none: str = "-") -> str:
    return none if v is None else format(v, spec)
