"""Standard TFLite Model Metadata: what every export writes, and a model that carries only that.

Read back with the schema's generated reader (edgecnn.core.metadata) and checked field by field
against the contract; MediaPipe's own loading of the same files is tests/test_mediapipe_client.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgecnn.core import metadata as MD
from edgecnn.core.artifact import FROM_STANDARD_METADATA, read_contract
from edgecnn.cli import main


def _labels_file(model: Path) -> list[str]:
    return MD.associated_file(model, MD.LABELS_FILE, MD.MAX_LABELS_BYTES).decode().splitlines()


@pytest.fixture(scope="module")
def carded_run(exported_run, tmp_path_factory) -> Path:
    """The exported run with an FP16 TFLite exported with an author and a license."""
    run = tmp_path_factory.mktemp("carded") / "products"
    shutil.copytree(exported_run, run, symlinks=True)
    r = CliRunner().invoke(main, ["export", str(run), "--fp16", "--author", "Field team", "--license", "CC-BY-4.0"])
    assert r.exit_code in (0, 3), r.output
    return run


@pytest.mark.parametrize("name,dtype,value_range", [("model_fp32.tflite", "float32", (-1.0, 1.0)),
                                                    ("model_fp16.tflite", "float32", (-1.0, 1.0)),
                                                    ("model_int8.tflite", "uint8", (0.0, 255.0))])
def test_every_tflite_export_carries_standard_metadata(carded_run, name, dtype, value_range):
    model = carded_run / "export" / name
    contract = read_contract(model)
    md = MD.read(model.read_bytes(), str(model))
    assert md is not None and md.min_parser_version == "1.0.0"
    assert contract.input_dtype == dtype                     # uint8 I/O is the INT8 default
    assert md.card.name == "edgecnn products" and "3 classes" in md.card.description
    assert md.card.version.startswith("edgecnn ") and contract.provenance.model_sha256[:16] in md.card.version
    assert md.input.mean == tuple(contract.mean) and md.input.std == tuple(contract.std)
    assert md.input.color_space == "RGB" and md.input.value_range == value_range
    assert md.labels_file == "labels.txt" and _labels_file(model) == list(contract.labels)
    assert set(md.associated_files) == {"labels.txt", "contract.json"}
    if name == "model_fp16.tflite":
        assert (md.card.author, md.card.license) == ("Field team", "CC-BY-4.0")
        assert "fp16" in md.card.description
    else:
        assert (md.card.author, md.card.license) == ("edgecnn", None)


def test_onnx_carries_the_same_model_card(exported_run):
    import onnx
    m = onnx.load(str(exported_run / "export" / "model_int8_qdq.onnx"), load_external_data=False)
    props = {p.key: p.value for p in m.metadata_props}
    assert props["name"] == "edgecnn products" and props["author"] == "edgecnn" and "license" not in props
    assert "3 classes" in m.doc_string and props["version"].startswith("edgecnn ")
    assert json.loads(props["edgecnn.contract"])["labels"] == props["edgecnn.labels"].split("\n")


def _standard_only(model: Path, dest: Path) -> Path:
    """`model` as another tool would ship it: the same standard metadata and labels, no contract.json."""
    data = model.read_bytes()
    dest.write_bytes(MD.with_metadata(MD.strip_archive(data), MD.metadata_buffer(data, str(model)),
                                      {MD.LABELS_FILE: "\n".join(_labels_file(model)).encode() + b"\n"}))
    return dest


@pytest.mark.parametrize("name", ["model_int8.tflite", "model_fp32.tflite"])
def test_a_model_with_only_standard_metadata_benches_with_the_right_accuracy(exported_run, tmp_path, name):
    alone = tmp_path / "vendor" / name
    alone.parent.mkdir()
    _standard_only(exported_run / "export" / name, alone)
    c = read_contract(alone)
    assert c.model["source"] == FROM_STANDARD_METADATA and c.provenance is None
    data = Path(json.loads((exported_run / "metrics.json").read_text())["data"]["root"]) / "test"
    r = CliRunner().invoke(main, ["bench", str(alone), "--data", str(data), "--runs", "5", "--warmup", "1",
                                  "--min-seconds", "0", "--json", str(tmp_path / "b.json")])
    assert r.exit_code in (0, 3), r.output
    assert f"{name}: no edgecnn contract; preprocessing from its standard TFLite metadata (96x96 RGB" in r.output
    rec = json.loads((tmp_path / "b.json").read_text())["devices"][0]["records"][0]
    export = next(a for a in json.loads((exported_run / "export" / "export_report.json").read_text())["artifacts"]
                  if a["artifact"] == name)
    assert rec["images"] == export["paired"]["n"]
    assert abs(rec["accuracy"] - export["accuracy"]) <= 1 / rec["images"] + 1e-9   # at most one photo apart
    if name == "model_int8.tflite":
        assert "uint8 input fed raw pixels" in r.output
    else:
        assert "NormalizationOptions: (pixel - 127.5) / 127.5" in r.output


def test_float_input_without_normalization_is_one_clear_error(exported_run, tmp_path):
    """A float model whose metadata has no NormalizationOptions cannot be fed: one line, no guess."""
    import flatbuffers

    from edgecnn.core import metadata_schema_py_generated as S
    src = exported_run / "export" / "model_fp32.tflite"
    data = src.read_bytes()
    md = S.ModelMetadataT.InitFromObj(S.ModelMetadata.GetRootAs(MD.metadata_buffer(data, str(src)), 0))
    md.subgraphMetadata[0].inputTensorMetadata[0].processUnits = None
    b = flatbuffers.Builder(1024)
    b.Finish(md.Pack(b), file_identifier=MD.METADATA_IDENTIFIER)
    bad = tmp_path / "nonorm.tflite"
    bad.write_bytes(MD.with_metadata(MD.strip_archive(data), bytes(b.Output()),
                                     {MD.LABELS_FILE: "\n".join(_labels_file(src)).encode()}))
    r = CliRunner().invoke(main, ["bench", str(bad), "--data", str(tmp_path), "--runs", "2"])
    assert r.exit_code == 2 and r.output.count("Error:") == 1
    assert "float32 input without NormalizationOptions in its standard metadata" in r.output
