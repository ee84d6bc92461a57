"""Standard TFLite Model Metadata: written into every exported .tflite, read back from any .tflite.

This is the metadata MediaPipe Tasks, LiteRT's MetadataExtractor, Android Studio's model viewer and
Model Maker's models speak (schema ``metadata_schema.fbs``, file identifier ``M001``):

- a ``ModelMetadata`` flatbuffer in the model's buffer named ``TFLITE_METADATA``: name, description,
  version, author, license; the input tensor's ImageProperties (RGB), NormalizationOptions
  (mean/std per channel, from the contract) and value range; the output tensor's labels;
- its associated files, packed the standard way: an uncompressed ZIP appended to the flatbuffer,
  whose entries carry absolute offsets (what ``zipfile`` mode "a" writes onto a non-ZIP file, and
  what the metadata populator of tflite-support/MediaPipe writes). Interpreters ignore the
  trailing bytes. Two files: ``labels.txt`` (TENSOR_AXIS_LABELS of the output) and our
  ``contract.json`` (a model-level associated file): one mechanism for both.

The generated reader/writer classes of the schema (``metadata_schema_py_generated``) are vendored
from the mediapipe 1.2.2 wheel (schema 1.5.0, Apache-2.0, see metadata_schema.fbs beside it); the
model flatbuffer's classes are ai-edge-litert's own. Nothing here parses or builds bytes by hand.

Needs numpy, flatbuffers and ai-edge-litert (never TensorFlow): runs on a device. The schema
modules are imported when a .tflite is read or written, so a board with ONNX Runtime alone (no
flatbuffers) still runs the agent on ONNX models.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .contract import Quantization
from .errors import ArtifactError

if TYPE_CHECKING:   # for annotations only: at run time the functions import the schema when called
    from . import metadata_schema_py_generated as M

METADATA_BUFFER_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MODEL_IDENTIFIER = b"TFL3"
# Every field written here exists since schema 1.0.0 (no AssociatedFile.version, no tokenizers...),
# so parsers from the first release on read it fully.
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"
CONTRACT_FILE = "contract.json"
MAX_LABELS_BYTES = 2 * 1024 * 1024


def _schema():
    """The metadata schema's generated classes (they import flatbuffers)."""
    from . import metadata_schema_py_generated
    return metadata_schema_py_generated


@dataclass(frozen=True)
class ModelCard:
    """The human-facing fields of the standard metadata."""

    name: str
    description: str
    version: str
    author: str | None = None
    license: str | None = None


@dataclass(frozen=True)
class InputFacts:
    """What the standard metadata says about the image input."""

    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    color_space: str | None        # "RGB", "GRAYSCALE" or None when not stated
    value_range: tuple[float, float] | None


@dataclass(frozen=True)
class StandardMetadata:
    """A .tflite's standard metadata as read back (what a third-party model can tell us)."""

    card: ModelCard
    input: InputFacts
    labels_file: str | None        # the output's TENSOR_AXIS_LABELS associated file, if any
    associated_files: tuple[str, ...]
    min_parser_version: str | None


# ---------------------------------------------------------------------------------------- writing
def _tensor(name: str, description: str, content: M.ContentT, stats: M.StatsT,
            units: list | None = None, files: list | None = None) -> M.TensorMetadataT:
    M = _schema()
    t = M.TensorMetadataT()
    t.name, t.description, t.content, t.stats = name, description, content, stats
    t.processUnits, t.associatedFiles = units, files
    return t


def _stats(lo: float, hi: float) -> M.StatsT:
    M = _schema()
    s = M.StatsT()
    s.min, s.max = [float(lo)], [float(hi)]
    return s


def _file(name: str, description: str, kind: int) -> M.AssociatedFileT:
    M = _schema()
    f = M.AssociatedFileT()
    f.name, f.description, f.type = name, description, kind
    return f


def _input_metadata(contract, input_range: tuple[float, float]) -> M.TensorMetadataT:
    M = _schema()
    props = M.ImagePropertiesT()
    props.colorSpace = M.ColorSpaceType.RGB
    content = M.ContentT()
    content.contentPropertiesType, content.contentProperties = M.ContentProperties.ImageProperties, props
    norm = M.NormalizationOptionsT()
    norm.mean, norm.std = [float(v) for v in contract.mean], [float(v) for v in contract.std]
    unit = M.ProcessUnitT()
    unit.optionsType, unit.options = M.ProcessUnitOptions.NormalizationOptions, norm
    h, w = contract.input_size
    return _tensor("image", f"RGB image, {h}x{w}, resized by stretching (bilinear); "
                            f"normalised (pixel - mean) / std per channel", content,
                   _stats(*input_range), [unit])


def _output_metadata(contract) -> M.TensorMetadataT:
    M = _schema()
    content = M.ContentT()
    content.contentPropertiesType, content.contentProperties = (M.ContentProperties.FeatureProperties,
                                                                M.FeaturePropertiesT())
    return _tensor("probability", f"probabilities of the {contract.num_classes} labels", content,
                   _stats(0.0, 1.0),
                   files=[_file(LABELS_FILE, "labels of the output, one per line, in output order",
                                M.AssociatedFileType.TENSOR_AXIS_LABELS)])


def metadata_bytes(card: ModelCard, contract, input_range: tuple[float, float]) -> bytes:
    """The ModelMetadata flatbuffer for a classifier that follows `contract`."""
    M = _schema()
    import flatbuffers

    sub = M.SubGraphMetadataT()
    sub.name = "image_classifier"
    sub.inputTensorMetadata = [_input_metadata(contract, input_range)]
    sub.outputTensorMetadata = [_output_metadata(contract)]
    md = M.ModelMetadataT()
    md.name, md.description, md.version = card.name, card.description, card.version
    md.author, md.license = card.author, card.license
    md.subgraphMetadata = [sub]
    md.associatedFiles = [_file(CONTRACT_FILE, "edgecnn preprocessing contract (JSON): the exact resize, "
                                               "normalisation, quantisation and provenance",
                                M.AssociatedFileType.UNKNOWN)]
    md.minParserVersion = MIN_PARSER_VERSION
    b = flatbuffers.Builder(1024)
    b.Finish(md.Pack(b), file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


def with_metadata(model_bytes: bytes, metadata: bytes, files: dict[str, bytes]) -> bytes:
    """The flatbuffer with `metadata` as its TFLITE_METADATA buffer (replacing any) and `files`
    packed as its associated files, beside the other files it already carried (e.g. a vendor's)."""
    from ai_edge_litert import schema_py_generated as S
    import flatbuffers

    try:
        with zipfile.ZipFile(io.BytesIO(model_bytes)) as old:
            files = {**{n: old.read(n) for n in old.namelist() if n not in files}, **files}
    except zipfile.BadZipFile:
        pass
    model_bytes = strip_archive(model_bytes)
    model = S.ModelT.InitFromObj(S.Model.GetRootAs(model_bytes, 0))
    buf = S.BufferT()
    buf.data = np.frombuffer(metadata, dtype=np.uint8)
    entry = next((m for m in (model.metadata or []) if _name(m.name) == METADATA_BUFFER_NAME), None)
    if entry is None:
        entry = S.MetadataT()
        entry.name = METADATA_BUFFER_NAME
        model.metadata = (model.metadata or []) + [entry]
        model.buffers.append(buf)
        entry.buffer = len(model.buffers) - 1
    else:
        model.buffers[entry.buffer] = buf
    b = flatbuffers.Builder(len(model_bytes) + len(metadata) + 1024)
    b.Finish(model.Pack(b), file_identifier=MODEL_IDENTIFIER)
    out = io.BytesIO(bytes(b.Output()))
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as z:   # absolute offsets
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


def strip_archive(model_bytes: bytes) -> bytes:
    """The flatbuffer alone, without an appended archive of associated files (idempotent)."""
    try:
        with zipfile.ZipFile(io.BytesIO(model_bytes)) as z:
            # zipfile reports header offsets from the start of the file, prepended data included
            starts = [i.header_offset for i in z.infolist()]
    except zipfile.BadZipFile:
        return model_bytes
    return model_bytes[:min(starts)] if starts else model_bytes


def _name(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else (v or "")


# ---------------------------------------------------------------------------------------- reading
def metadata_buffer(model_bytes: bytes, source: str) -> bytes | None:
    """The raw TFLITE_METADATA buffer of a .tflite (None when it has none)."""
    from ai_edge_litert import schema_py_generated as S

    try:
        model = S.Model.GetRootAs(model_bytes, 0)
        for i in range(model.MetadataLength()):
            m = model.Metadata(i)
            if _name(m.Name()) == METADATA_BUFFER_NAME:
                if not 0 <= m.Buffer() < model.BuffersLength():
                    raise ArtifactError(f"{source}: TFLITE_METADATA names buffer {m.Buffer()}, which does not exist")
                data = model.Buffers(m.Buffer()).DataAsNumpy()
                return data.tobytes() if isinstance(data, np.ndarray) else None
    except ArtifactError:
        raise
    except Exception as e:   # a damaged flatbuffer can fail anywhere inside the generated reader
        raise ArtifactError(f"{source}: not a loadable TFLite model (its flatbuffer cannot be read: "
                            f"{type(e).__name__})") from None
    return None


@dataclass(frozen=True)
class IoTensors:
    """The first subgraph's image input and class-score output, as the flatbuffer declares them."""

    input_hw: tuple[int, int]
    input_dtype: str
    input_quantization: Quantization | None
    classes: int


_DTYPES = {"FLOAT32": "float32", "INT8": "int8", "UINT8": "uint8", "FLOAT16": "float16"}


def io_tensors(model_bytes: bytes, source: str) -> IoTensors:
    """Shape, type and quantisation of the model's image input ([1, H, W, 3]) and score output ([1, N])."""
    from ai_edge_litert import schema_py_generated as S

    names = {v: k for k, v in vars(S.TensorType).items() if not k.startswith("_")}
    try:
        sg = S.Model.GetRootAs(model_bytes, 0).Subgraphs(0)
        tin, tout = sg.Tensors(sg.Inputs(0)), sg.Tensors(sg.Outputs(0))
        shape_in, shape_out = list(tin.ShapeAsNumpy()), list(tout.ShapeAsNumpy())
        dtype = _DTYPES.get(names.get(tin.Type(), ""), names.get(tin.Type(), "?").lower())
        q = tin.Quantization()
        quant = (Quantization(float(q.Scale(0)), int(q.ZeroPoint(0)))
                 if q is not None and q.ScaleLength() == 1 and q.ZeroPointLength() == 1 else None)
    except Exception as e:
        raise ArtifactError(f"{source}: not a loadable TFLite model (its flatbuffer cannot be read: "
                            f"{type(e).__name__})") from None
    if len(shape_in) != 4 or shape_in[-1] != 3 or len(shape_out) != 2:
        raise ArtifactError(f"{source}: not an image classifier (input {shape_in}, output {shape_out}; "
                            f"expected [1, H, W, 3] and [1, N])")
    return IoTensors((int(shape_in[1]), int(shape_in[2])), dtype, quant, int(shape_out[1]))


def read(model_bytes: bytes, source: str = "model") -> StandardMetadata | None:
    """The standard metadata a .tflite carries, or None when it carries none."""
    M = _schema()
    raw = metadata_buffer(model_bytes, source)
    if raw is None:
        return None
    if len(raw) < 8 or raw[4:8] != METADATA_IDENTIFIER:
        raise ArtifactError(f"{source}: TFLITE_METADATA is not a metadata flatbuffer (no M001 identifier)")
    try:
        md = M.ModelMetadataT.InitFromObj(M.ModelMetadata.GetRootAs(raw, 0))
    except Exception as e:
        raise ArtifactError(f"{source}: its standard metadata cannot be read ({type(e).__name__})") from None
    sub = (md.subgraphMetadata or [None])[0]
    inp = (sub.inputTensorMetadata or [None])[0] if sub else None
    out = (sub.outputTensorMetadata or [None])[0] if sub else None
    files = [f for f in (md.associatedFiles or [])]
    for t in (inp, out):
        files += list(t.associatedFiles or []) if t is not None else []
    labels = next((_name(f.name) for f in (out.associatedFiles or []) if out is not None
                   and f.type == M.AssociatedFileType.TENSOR_AXIS_LABELS), None) if out is not None else None
    card = ModelCard(_name(md.name), _name(md.description), _name(md.version),
                     _name(md.author) or None, _name(md.license) or None)
    return StandardMetadata(card, _input_facts(inp), labels, tuple(_name(f.name) for f in files),
                            _name(md.minParserVersion) or None)


def _input_facts(t) -> InputFacts:
    M = _schema()
    if t is None:
        return InputFacts(None, None, None, None)
    norm = next((u.options for u in (t.processUnits or [])
                 if u.optionsType == M.ProcessUnitOptions.NormalizationOptions), None)
    color = None
    if t.content is not None and t.content.contentPropertiesType == M.ContentProperties.ImageProperties:
        color = {M.ColorSpaceType.RGB: "RGB", M.ColorSpaceType.GRAYSCALE: "GRAYSCALE"}.get(
            t.content.contentProperties.colorSpace)
    rng = None
    if t.stats is not None and t.stats.min is not None and t.stats.max is not None \
            and len(t.stats.min) and len(t.stats.max):
        rng = (float(t.stats.min[0]), float(t.stats.max[0]))
    as_tuple = (lambda v: tuple(float(x) for x in v) if v is not None and len(v) else None)
    return InputFacts(as_tuple(norm.mean) if norm else None, as_tuple(norm.std) if norm else None, color, rng)


def associated_file(path, name: str, limit: int, what: str = "the file") -> bytes | None:
    """One associated file of a .tflite on disk (stored or deflated entry), read with a bound on its
    size; None when the model has no archive or no such entry."""
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    with z:
        try:
            info = z.getinfo(name)
        except KeyError:
            return None
        where = f"{path} (associated file {name})"
        if info.flag_bits & 0x1:
            raise ArtifactError(f"{where}: the entry is encrypted")
        if info.file_size > limit or info.compress_size > limit:
            raise ArtifactError(f"{where}: {info.file_size} bytes, more than {what} can be ({limit // 1024} KiB)")
        try:
            with z.open(info) as f:
                data = f.read(limit + 1)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, OSError, ValueError) as e:
            raise ArtifactError(f"{where}: cannot be read ({str(e).splitlines()[0][:120] or type(e).__name__})") from None
        if len(data) > limit:
            raise ArtifactError(f"{where}: more than {limit // 1024} KiB when decompressed")
        return data
