"""How the preprocessing contract travels with each artifact, and how it is read back.

- .tflite: standard TFLite Model Metadata (``metadata.py``): the contract is an associated file,
  ``contract.json``, beside the output's ``labels.txt``, with the normalisation, labels and model
  card in the metadata itself, so MediaPipe Tasks and LiteRT's MetadataExtractor read the same
  facts. A .tflite without our contract but with standard metadata (a Model Maker or MediaPipe
  model, say) gets a contract built from that metadata, marked as such.
- .onnx: ``metadata_props`` entries ``edgecnn.contract`` (the JSON) and ``edgecnn.labels``, with the
  model card in the standard ModelProto fields.
- anything else (a TensorRT engine, a user's model): a sidecar ``<file>.contract.json``, or
  ``contract.json`` in the same folder.

Needs the standard library, numpy, flatbuffers, ai-edge-litert and (for ONNX) onnxruntime or onnx
only: runs on a device.
"""

from __future__ import annotations

from pathlib import Path

from . import metadata as MD
from .contract import Contract
from .errors import ArtifactError

CONTRACT_NAME = MD.CONTRACT_FILE
LABELS_NAME = MD.LABELS_FILE
MAX_CONTRACT_BYTES = 512 * 1024   # 10,000 labels of 40 characters fit; real contracts are a few KB
ONNX_CONTRACT_KEY = "edgecnn.contract"
ONNX_LABELS_KEY = "edgecnn.labels"
FORMATS = {".tflite": "tflite", ".onnx": "onnx", ".engine": "tensorrt", ".plan": "tensorrt",
           ".keras": "keras"}
FROM_STANDARD_METADATA = "standard TFLite metadata"   # contract.model["source"] of a contract built from it


def format_of(path: str | Path) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ArtifactError(f"{path}: unknown model format (expected one of {', '.join(sorted(FORMATS))})")
    return fmt


def weights_precision(path: str | Path) -> str | None:
    """The precision a model's own tensors show: "int8" (integer-quantized tensors), "fp16" (half-precision
    weights) or "fp32"; None for a format, or a file, this machine cannot look inside. Never the file name."""
    path = Path(path)
    kinds: set[str] = set()
    try:
        if format_of(path) == "tflite":
            from ai_edge_litert.interpreter import Interpreter
            kinds = {str(d["dtype"].__name__) for d in Interpreter(model_content=path.read_bytes())
                     .get_tensor_details()}
        elif format_of(path) == "onnx":
            import onnx
            g = onnx.load(str(path), load_external_data=False).graph
            kinds = {onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name for t in g.initializer}
            if any(n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv") for n in g.node):
                kinds.add("int8")
    except Exception:        # a file no runtime here reads: the caller falls back on what it knows
        return None
    if kinds & {"int8", "uint8"}:
        return "int8"
    if "float16" in kinds:
        return "fp16"
    return "fp32" if kinds else None


def model_card(contract: Contract, precision: str | None = None, author: str | None = None,
               license: str | None = None) -> MD.ModelCard:
    """The standard metadata's name, description and version for an artifact of `contract`."""
    from .. import __version__
    info = contract.model or {}
    task = str(info.get("recipe") or "image classifier")
    h, w = contract.input_size
    shown = ", ".join(contract.labels[:5]) + (", ..." if contract.num_classes > 5 else "")
    desc = (f"{info.get('arch', 'CNN')} image classifier for {task}: {contract.num_classes} classes ({shown}); "
            f"{h}x{w} RGB input" + (f"; {precision}" if precision else "") + ". Made with edgecnn.")
    version = f"edgecnn {__version__}" + (f"; model.keras sha256 {contract.provenance.model_sha256[:16]}"
                                          if contract.provenance else "")
    return MD.ModelCard(name=f"edgecnn {task}", description=desc, version=version,
                        author=author or "edgecnn", license=license or None)


def tflite_with_contract(model_bytes: bytes, contract: Contract, card: MD.ModelCard | None = None) -> bytes:
    """The flatbuffer with standard TFLite metadata for `contract`: its model card, input
    normalisation and labels, and labels.txt and contract.json as its associated files."""
    if len(model_bytes) < 8 or model_bytes[4:8] != MD.MODEL_IDENTIFIER:
        raise ArtifactError("not a TFLite flatbuffer (missing TFL3 identifier)")
    lo, hi = _input_range(contract)
    meta = MD.metadata_bytes(card or model_card(contract), contract, (lo, hi))
    files = {CONTRACT_NAME: contract.to_json().encode(),
             LABELS_NAME: "".join(f"{l}\n" for l in contract.labels).encode()}
    return MD.with_metadata(model_bytes, meta, files)


def _input_range(contract: Contract) -> tuple[float, float]:
    """The values the input tensor takes: the integer range, or the normalised pixel range."""
    from .contract import INT_RANGES
    if contract.input_dtype in INT_RANGES:
        return INT_RANGES[contract.input_dtype]
    return (min((0 - m) / s for m, s in zip(contract.mean, contract.std)),
            max((255 - m) / s for m, s in zip(contract.mean, contract.std)))


def embedded_contract(path: Path) -> Contract | None:
    """The contract.json associated file of a .tflite; None when it has none."""
    data = MD.associated_file(path, CONTRACT_NAME, MAX_CONTRACT_BYTES, "a contract")
    return None if data is None else Contract.from_json(data, source=f"{path} (associated file {CONTRACT_NAME})")


def _standard_contract(path: Path) -> Contract | None:
    """A contract built from a .tflite's standard metadata; None when it has none."""
    model_bytes = path.read_bytes()
    meta = MD.read(model_bytes, str(path))
    return None if meta is None else contract_from_standard_metadata(path, model_bytes, meta)


def contract_from_standard_metadata(path: Path, model_bytes: bytes, meta: MD.StandardMetadata) -> Contract:
    """The preprocessing a third-party model's standard metadata describes.

    Size from the input tensor; labels from the output's TENSOR_AXIS_LABELS file (else "0".."N-1");
    uint8 input: raw pixels, the convention of every standard client (MediaPipe, LiteRT Task
    Library), i.e. mean = zero point and std = 1 / scale, so the quantised value is the pixel;
    float (or int8) input: its NormalizationOptions (required: without them the range is unknown). The
    resize is bilinear (the standard does not say; the clients resize bilinearly)."""
    tensors = MD.io_tensors(model_bytes, str(path))
    (h, w), n = tensors.input_hw, tensors.classes
    raw = _labels(path, meta.labels_file, n) if meta.labels_file else [str(i) for i in range(n)]
    labels = usable_labels(raw)
    if tensors.input_dtype == "uint8" and tensors.input_quantization is not None:
        q = tensors.input_quantization
        mean, std = (float(q.zero_point),) * 3, (1.0 / q.scale,) * 3
        how = "uint8 input fed raw pixels (the standard clients' convention)"
    elif meta.input.mean and meta.input.std:
        mean, std = _per_channel(meta.input.mean, path, "mean"), _per_channel(meta.input.std, path, "std")
        how = f"NormalizationOptions: (pixel - {_fmt(mean)}) / {_fmt(std)}"
    else:
        raise ArtifactError(f"{path}: {tensors.input_dtype} input without NormalizationOptions in its standard "
                            f"metadata: the input value range is unknown (write a contract.json beside it)")
    if meta.input.color_space not in (None, "RGB"):
        raise ArtifactError(f"{path}: its standard metadata asks for {meta.input.color_space} input; edgecnn feeds RGB")
    renamed = sum(a != b for a, b in zip(labels, raw))
    c = Contract(input_size=(h, w), labels=labels, mean=mean, std=std,
                 model={"source": FROM_STANDARD_METADATA, "name": meta.card.name[:200], "normalization": how,
                        "labels_renamed": renamed})
    c.validate(f"{path} (standard metadata)")
    return c


def _fmt(v: tuple[float, ...]) -> str:
    return f"{v[0]:g}" if len(set(v)) == 1 else "[" + ", ".join(f"{x:g}" for x in v) + "]"


def _per_channel(values: tuple[float, ...], path: Path, what: str) -> tuple[float, float, float]:
    if len(values) == 1:
        return (values[0],) * 3
    if len(values) != 3:
        raise ArtifactError(f"{path}: NormalizationOptions {what} has {len(values)} values (expected 1 or 3)")
    return tuple(values)


def _labels(path: Path, name: str, n: int) -> list[str]:
    data = MD.associated_file(path, name, MD.MAX_LABELS_BYTES, "a labels file")
    if data is None:
        raise ArtifactError(f"{path}: its metadata names the labels file {name!r}, which is not packed in the model")
    try:
        lines = [l.strip() for l in data.decode("utf-8").splitlines()]
    except UnicodeDecodeError:
        raise ArtifactError(f"{path}: labels file {name!r} is not UTF-8 text") from None
    lines = [l for l in lines if l]
    if len(lines) != n:
        raise ArtifactError(f"{path}: labels file {name!r} has {len(lines)} labels for {n} outputs")
    return lines


def usable_labels(lines: list[str]) -> tuple[str, ...]:
    """Labels a contract can hold: a repeated name gets its output index ("crane (134)": ImageNet's
    label list names two cranes and two maillots), a name that cannot be a folder becomes "class i"."""
    from collections import Counter

    from .contract import label_problem
    count = Counter(lines)
    out = []
    for i, label in enumerate(lines):
        name = f"{label} ({i})" if count[label] > 1 else label
        out.append(f"class {i}" if label_problem(name) else name)
    return tuple(out)


def _onnx_contract(path: Path) -> Contract | None:
    try:
        import onnxruntime as ort
        meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
        props = meta.custom_metadata_map
    except ImportError:  # pragma: no cover - onnx without onnxruntime
        import onnx
        m = onnx.load(str(path), load_external_data=False)
        props = {p.key: p.value for p in m.metadata_props}
    except Exception as e:
        raise ArtifactError(f"{path}: cannot be loaded as ONNX ({str(e).splitlines()[0][:160]})") from None
    if ONNX_CONTRACT_KEY in props:
        return Contract.from_json(props[ONNX_CONTRACT_KEY], source=f"{path} (metadata_props)")
    return None


def contract_source(path: Path) -> Path | None:
    """The file an artifact that embeds no contract is read with: its sidecar `<name>.contract.json`, else
    the contract.json beside it, else the one a folder up (a run's export/ folder under the run)."""
    return next((side for side in (path.with_name(path.name + ".contract.json"), path.parent / CONTRACT_NAME,
                                   path.parent.parent / CONTRACT_NAME) if side.is_file()), None)


def read_contract(path: str | Path, required: bool = True) -> Contract | None:
    """The contract an artifact carries (embedded, sidecar, or contract.json beside it), else, for a
    .tflite, the one its standard metadata describes."""
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"model file not found: {p}")
    fmt = format_of(p)
    c = None
    if fmt == "tflite":
        c = embedded_contract(p)
    elif fmt == "onnx":
        c = _onnx_contract(p)
    side = contract_source(p) if c is None else None
    if side is not None:
        from .contract import load
        c = load(side)
    if c is None and fmt == "tflite":
        c = _standard_contract(p)
    if c is None and required:
        raise ArtifactError(f"{p} carries no preprocessing contract (nor standard TFLite metadata) and none "
                            f"lies beside it ({p.name}.contract.json or contract.json); export it with "
                            f"'edgecnn export' or write one")
    return c
