"""How the preprocessing contract travels with each artifact, and how it is read back.

- .tflite: as associated files in a ZIP archive appended to the flatbuffer (the convention of
  TFLite model metadata: interpreters ignore the trailing bytes; Python's zipfile, Java's ZipFile
  and LiteRT's MetadataExtractor read the archive). It holds ``contract.json`` and ``labels.txt``.
- .onnx: ``metadata_props`` entries ``edgecnn.agent.contract`` (the JSON) and ``edgecnn.labels``.
- anything else (a TensorRT engine, a user's model): a sidecar ``<file>.contract.json``, or
  ``contract.json`` in the same folder.

Needs the standard library, numpy and (for ONNX) onnxruntime or onnx only: runs on a device.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from .contract import Contract, ContractError

CONTRACT_NAME = "contract.json"
LABELS_NAME = "labels.txt"
MAX_CONTRACT_BYTES = 512 * 1024   # 10,000 labels of 40 characters fit; real contracts are a few KB
ONNX_CONTRACT_KEY = "edgecnn.contract"
ONNX_LABELS_KEY = "edgecnn.labels"
FORMATS = {".tflite": "tflite", ".onnx": "onnx", ".engine": "tensorrt", ".plan": "tensorrt",
           ".keras": "keras"}


class ArtifactError(ContractError):
    pass


def format_of(path: str | Path) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ArtifactError(f"{path}: unknown model format (expected one of {', '.join(sorted(FORMATS))})")
    return fmt


def tflite_with_contract(model_bytes: bytes, contract: Contract) -> bytes:
    """The flatbuffer with contract.json and labels.txt appended as a ZIP of associated files."""
    if len(model_bytes) < 8 or model_bytes[4:8] != b"TFL3":
        raise ArtifactError("not a TFLite flatbuffer (missing TFL3 identifier)")
    kept = {}
    try:  # keep associated files the model already carries (e.g. a vendor's labels)
        with zipfile.ZipFile(io.BytesIO(model_bytes)) as old:
            kept = {n: old.read(n) for n in old.namelist() if n not in (CONTRACT_NAME, LABELS_NAME)}
    except zipfile.BadZipFile:
        pass
    model_bytes = strip_tflite_archive(model_bytes)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in kept.items():
            z.writestr(name, data)
        z.writestr(CONTRACT_NAME, contract.to_json())
        z.writestr(LABELS_NAME, "".join(f"{l}\n" for l in contract.labels))
    return model_bytes + buf.getvalue()


def strip_tflite_archive(model_bytes: bytes) -> bytes:
    """The flatbuffer alone, without an appended archive (idempotent)."""
    try:
        with zipfile.ZipFile(io.BytesIO(model_bytes)) as z:
            # zipfile reports header offsets from the start of the file, prepended data included
            starts = [i.header_offset for i in z.infolist()]
    except zipfile.BadZipFile:
        return model_bytes
    return model_bytes[:min(starts)] if starts else model_bytes


def _tflite_contract(path: Path) -> Contract | None:
    """The contract.json appended to a .tflite, read with a bound on its size; None when there is none."""
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError):
        return None           # no archive appended: a plain flatbuffer
    with z:
        try:
            info = z.getinfo(CONTRACT_NAME)
        except KeyError:
            return None
        where = f"{path} (embedded {CONTRACT_NAME})"
        if info.flag_bits & 0x1:
            raise ArtifactError(f"{where}: the entry is encrypted")
        if info.file_size > MAX_CONTRACT_BYTES or info.compress_size > MAX_CONTRACT_BYTES:
            raise ArtifactError(f"{where}: {info.file_size} bytes, more than a contract can be "
                                f"({MAX_CONTRACT_BYTES // 1024} KiB)")
        try:
            with z.open(info) as f:
                data = f.read(MAX_CONTRACT_BYTES + 1)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, OSError, ValueError) as e:
            raise ArtifactError(f"{where}: cannot be read ({str(e).splitlines()[0][:120] or type(e).__name__})") from None
        if len(data) > MAX_CONTRACT_BYTES:
            raise ArtifactError(f"{where}: more than {MAX_CONTRACT_BYTES // 1024} KiB when decompressed")
        return Contract.from_json(data, source=where)


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


def read_contract(path: str | Path, required: bool = True) -> Contract | None:
    """The contract an artifact carries (embedded, sidecar, or contract.json beside it)."""
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"model file not found: {p}")
    fmt = format_of(p)
    c = None
    if fmt == "tflite":
        c = _tflite_contract(p)
    elif fmt == "onnx":
        c = _onnx_contract(p)
    if c is None:
        for side in (p.with_name(p.name + ".contract.json"), p.parent / CONTRACT_NAME,
                     p.parent.parent / CONTRACT_NAME):
            if side.is_file():
                from .contract import load
                c = load(side)
                break
    if c is None and required:
        raise ArtifactError(f"{p} carries no preprocessing contract and none lies beside it "
                            f"({p.name}.contract.json or contract.json); export it with 'edgecnn export' "
                            f"or write one")
    return c
