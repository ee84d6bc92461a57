"""The preprocessing contract: TF training path == numpy path, decoding odd images, validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from edgecnn.core import contract as C
from tests.conftest import need_shared


def _real_images():
    out = []
    for ds, pattern in (("products", "test/*/*.jpg"), ("crop_disease", "test/*/*.JPG"),
                        ("traffic_signs", "test/*/*.png")):
        root = need_shared(ds)
        out += sorted(root.glob(pattern))[::97][:4]
    return out


@pytest.mark.parametrize("size", [96, 160])
def test_tf_training_preprocessing_matches_numpy_contract(size):
    import tensorflow as tf

    from edgecnn.data import tf_decode_resize, tf_normalize
    c = C.Contract(input_size=(size, size), labels=("a", "b"))
    for p in _real_images():
        via_tf = tf_normalize(tf_decode_resize(tf.constant(str(p)), c.input_size), c).numpy()
        via_np = C.preprocess(p, c)
        assert via_np.shape == via_tf.shape == (size, size, 3)
        # same decoded pixels and the same half-pixel bilinear arithmetic: float rounding only
        assert np.abs(via_np - via_tf).max() < 2e-5, p.name


def test_resize_matches_opencv_float_bilinear():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    for h, w, oh, ow in ((32, 32, 96, 96), (256, 256, 160, 160), (224, 300, 96, 128)):
        img = rng.integers(0, 256, (h, w, 3)).astype(np.float32)
        ours = C.resize_bilinear(img, (oh, ow))
        ref = cv2.resize(img, (ow, oh), interpolation=cv2.INTER_LINEAR)
        assert np.abs(ours - ref).max() < 0.01  # of 255 levels: float rounding only


def test_quantize_matches_formula_and_clips():
    q = C.Quantization(scale=2 / 255, zero_point=-1)
    x = np.array([-1.0, 0.0, 1.0, 5.0], dtype=np.float32)
    got = C.quantize(x, "int8", q)
    assert got.dtype == np.int8
    # 2/255 rounds up in float32, so 1.0 lands just below 127.5 steps: 127 - 1 = 126
    assert got.tolist() == [-128, -1, 126, 127]
    assert np.allclose(C.dequantize(got, q)[:3], x[:3], atol=q.scale)


def test_contract_json_roundtrip_and_errors(tmp_path):
    c = C.Contract(input_size=(96, 128), labels=("cat", "dog"), input_dtype="int8",
                   input_quantization=C.Quantization(0.0078, -1))
    assert C.Contract.from_json(c.to_json()) == c
    d = c.to_dict()
    d["resize"] = "nearest"
    with pytest.raises(C.ContractError, match="resize"):
        C.Contract.from_dict(d)
    d = c.to_dict()
    d["surprise"] = 1
    with pytest.raises(C.ContractError, match="unknown field"):
        C.Contract.from_dict(d)
    with pytest.raises(C.ContractError, match="no preprocessing contract"):
        C.load(tmp_path / "contract.json")
    (tmp_path / "contract.json").write_text("{not json")
    with pytest.raises(C.ContractError, match="not valid JSON"):
        C.load(tmp_path / "contract.json")


def test_load_image_converts_modes(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    cases = {
        "gray.png": Image.fromarray(rgb[..., 0], "L"),
        "rgba.png": Image.fromarray(np.dstack([rgb, np.full((40, 50), 7, np.uint8)]), "RGBA"),
        "palette.png": Image.fromarray(rgb).convert("P"),
        "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
        "sixteen.png": Image.fromarray(rgb[..., 0].astype(np.uint16) * 257),
    }
    for name, im in cases.items():
        im.save(tmp_path / name)
        out = C.load_image(tmp_path / name)
        assert out.shape == (40, 50, 3) and out.dtype == np.uint8, name
    assert np.array_equal(C.load_image(tmp_path / "rgba.png"), rgb)  # alpha dropped, colour kept
    gray = C.load_image(tmp_path / "sixteen.png")
    assert np.array_equal(gray[..., 0], rgb[..., 0]) and np.array_equal(gray[..., 1], gray[..., 2])


def test_exif_rotation_is_applied(tmp_path):
    im = Image.new("RGB", (60, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    im.save(tmp_path / "rot.jpg", exif=exif)
    assert C.load_image(tmp_path / "rot.jpg").shape == (60, 20, 3)


def test_huge_jpeg_is_decoded_reduced(tmp_path):
    Image.new("RGB", (C.LARGE_IMAGE_SIDE * 2 + 100, 600), (10, 200, 30)).save(tmp_path / "big.jpg", quality=50)
    out = C.load_image(tmp_path / "big.jpg")
    assert max(out.shape[:2]) <= C.LARGE_IMAGE_SIDE + 64  # DCT-scaled, never full size
    assert out.shape[2] == 3


@pytest.mark.parametrize("content,reason", [(b"", "empty"), (b"not an image at all", "not a recognised")])
def test_bad_files_give_clear_errors(tmp_path, content, reason):
    p = tmp_path / "x.jpg"
    p.write_bytes(content)
    with pytest.raises(C.ImageError, match=reason):
        C.load_image(p)


def test_truncated_jpeg_is_an_error(tmp_path):
    src = sorted(need_shared("products").glob("test/*/*.jpg"))[0].read_bytes()
    p = tmp_path / "cut.jpg"
    p.write_bytes(src[: len(src) // 2])
    with pytest.raises(C.ImageError, match="truncated"):
        C.load_image(p)


def test_topk_ties_go_to_lower_index():
    assert [i for i, _ in C.topk(np.array([0.2, 0.4, 0.4, 0.0]), 3)] == [1, 2, 0]
    assert json.dumps(C.topk(np.array([1.0, 0.0]), 1))


# ---------------------------------------------------------------------------------- parsing, exactly
def _base() -> dict:
    c = C.Contract(input_size=(96, 128), labels=("a", "b", "c"), model={"arch": "mobilenet_v2", "alpha": 1.0},
                   provenance=C.Provenance("a" * 64, "b" * 64))
    return c.with_quantization("int8", C.Quantization(0.0078125, -1), C.Quantization(0.00390625, -128)).to_dict()


def _edit(path, value):
    d = _base()
    node = d
    for k in path[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return d


_DELETE = object()


def test_a_contract_round_trips_exactly():
    d = _base()
    assert d == {"schema": "edgecnn.contract/1", "input_size": [96, 128], "labels": ["a", "b", "c"],
                 "color_order": "RGB", "layout": "NHWC", "resize": "bilinear", "mean": [127.5] * 3,
                 "std": [127.5] * 3, "input_dtype": "int8",
                 "input_quantization": {"scale": 0.0078125, "zero_point": -1},
                 "output_quantization": {"scale": 0.00390625, "zero_point": -128},
                 "model": {"arch": "mobilenet_v2", "alpha": 1.0},
                 "provenance": {"model_sha256": "a" * 64, "recipe_sha256": "b" * 64}}
    c = C.Contract.from_dict(d)
    assert c.to_dict() == d and C.Contract.from_json(c.to_json()) == c and c.to_json().endswith("}\n")
    assert c.input_shape == (1, 96, 128, 3) and c.num_classes == 3
    plain = C.Contract.from_dict({"schema": "edgecnn.contract/1", "input_size": [32, 32], "labels": ["x", "y"]})
    assert plain == C.Contract(input_size=(32, 32), labels=("x", "y")) and plain.to_dict()["input_quantization"] is None
    assert plain.to_dict()["provenance"] is None and plain.to_dict()["model"] == {}


@pytest.mark.parametrize("path,value,message", [
    (["schema"], "edgecnn.contract/9", "c.json: schema is 'edgecnn.contract/9', expected 'edgecnn.contract/1'"),
    (["colour"], "red", "c.json: unknown field(s) colour"),
    (["labels"], _DELETE, "c.json: input_size and labels are required"),
    (["input_size"], _DELETE, "c.json: input_size and labels are required"),
    (["input_size"], [96], "c.json: input_size must be a list of 2 integers, got list '[96]'"),
    (["input_size"], [96, True], "c.json: input_size must be a list of 2 integers, got list '[96, True]'"),
    (["input_size"], [4, 96], "c.json: input_size must be [height, width] of 8 to 4096 px, got [4, 96]"),
    (["input_size"], [96, 4097], "c.json: input_size must be [height, width] of 8 to 4096 px, got [96, 4097]"),
    (["labels"], "abc", "c.json: labels must be a list of strings, got str 'abc'"),
    (["labels"], ["a", 2], "c.json: labels[1] must be a string, got int '2'"),
    (["labels"], ["a"], "c.json: needs 2 to 10000 labels, got 1"),
    (["labels"], ["a", "a"], "c.json: labels are not unique"),
    (["labels"], ["a", " b"], "c.json: label ' b' is empty or has leading/trailing spaces"),
    (["labels"], ["a", "x" * 201], "is longer than 200 characters"),
    (["labels"], ["a", ".."], "c.json: label '..' contains a path separator or is . or .."),
    (["labels"], ["a", "b\\c"], "contains a path separator"),
    (["labels"], ["a", "b\x7f"], "contains a control character"),
    (["color_order"], "BGR", "c.json: color_order must be RGB, got 'BGR'"),
    (["layout"], "NCHW", "c.json: layout must be NHWC, got 'NCHW'"),
    (["resize"], "nearest", "c.json: resize must be one of ('bilinear',), got 'nearest'"),
    (["layout"], 5, "c.json: layout must be a string, got int '5'"),
    (["mean"], [1, 2], "c.json: mean must be a list of 3 numbers, got list '[1, 2]'"),
    (["std"], [1, 2, "3"], "c.json: std must be a list of 3 numbers"),
    (["mean"], [65536, 0, 0], "c.json: mean must be finite numbers within +-65535 (pixel units)"),
    (["std"], [0.0009, 1, 1], "c.json: std must be finite numbers from 0.001 to 65535 (pixel units)"),
    (["std"], [65536, 1, 1], "std must be finite numbers from 0.001"),
    (["input_dtype"], "int16", "c.json: input_dtype must be one of ('float32', 'int8', 'uint8'), got 'int16'"),
    (["input_quantization"], None, "c.json: input_dtype int8 needs input_quantization (scale, zero_point)"),
    (["input_quantization"], {"scale": 1.0}, "c.json: input_quantization must be an object with scale and zero_point"),
    (["input_quantization", "scale"], True, "c.json: input_quantization.scale must be a number, got bool 'True'"),
    (["input_quantization", "scale"], 0.0, "c.json: input_quantization.scale must be a positive number"),
    (["output_quantization", "scale"], -1.0, "c.json: output_quantization.scale must be a positive number"),
    (["input_quantization", "zero_point"], 1.5, "c.json: input_quantization.zero_point must be an integer, got float"),
    (["output_quantization", "zero_point"], 2 ** 31, "c.json: output_quantization.zero_point is out of range"),
    (["model"], [], "c.json: model must be an object, got list '[]'"),
    (["model", "alpha"], [1], "c.json: model.alpha must be a string, number or boolean, got list '[1]'"),
    (["model", "recipe"], 5, "c.json: model.recipe must be a string, got int '5'"),
    (["provenance"], {"model_sha256": "a" * 64}, "c.json: provenance must hold exactly model_sha256 and recipe_sha256"),
    (["provenance", "recipe_sha256"], "B" * 64, "c.json: provenance.recipe_sha256 is not a sha256 hex digest"),
    (["provenance", "model_sha256"], "a" * 63, "c.json: provenance.model_sha256 is not a sha256 hex digest"),
])
def test_every_contract_field_is_checked_by_name(path, value, message):
    with pytest.raises(C.ContractError) as e:
        C.Contract.from_dict(_edit(path, value), source="c.json")
    assert message in str(e.value)


def test_contract_edges_that_are_valid():
    for path, value in ((["input_size"], [8, 4096]), (["labels"], ["a", "x" * 200]), (["std"], [0.001, 65535, 1]),
                        (["mean"], [-65535, 65535, 0]), (["output_quantization", "zero_point"], -(2 ** 31)),
                        (["model", "note"], None), (["model", "alpha"], 0.35), (["model", "trainable"], True)):
        C.Contract.from_dict(_edit(path, value))
    with pytest.raises(C.ContractError, match="c.json: not a JSON object"):
        C.Contract.from_dict([], source="c.json")
    with pytest.raises(C.ContractError, match="c.json: not valid JSON"):
        C.Contract.from_json(b"{", source="c.json")


def test_quantize_dequantize_and_topk_exactly():
    q = C.Quantization(0.5, 3)
    assert C.dequantize(np.array([3, 5, -1], np.int8), q).tolist() == [0.0, 1.0, -2.0]
    assert C.dequantize(np.array([1.5]), None).dtype == np.float32
    assert C.quantize(np.array([0.24, 0.26, 100.0, -100.0], np.float32), "int8", q).tolist() == [3, 4, 127, -128]
    assert C.quantize(np.array([-100.0, 0.75], np.float32), "uint8", q).tolist() == [0, 5]     # rint(1.5) = 2
    assert C.topk(np.array([0.1, 0.7, 0.7, 0.2]), 3) == [(1, pytest.approx(0.7)), (2, pytest.approx(0.7)),
                                                          (3, pytest.approx(0.2))]
    assert C.topk(np.array([[0.3, 0.6]]), 5) == [(1, pytest.approx(0.6)), (0, pytest.approx(0.3))]


def test_saved_contract_loads_and_a_missing_one_is_named(tmp_path):
    c = C.Contract.from_dict(_base())
    C.save(c, tmp_path / "contract.json")
    assert C.load(tmp_path / "contract.json") == c
    with pytest.raises(C.ContractError, match="no preprocessing contract at .*nope.json"):
        C.load(tmp_path / "nope.json")


@pytest.mark.parametrize("path,value,message", [
    (["color_order"], 5, "c.json: color_order must be a string, got int '5'"),
    (["resize"], 5, "c.json: resize must be a string, got int '5'"),
    (["input_dtype"], 5, "c.json: input_dtype must be a string, got int '5'"),
    (["output_quantization"], {"scale": 1.0}, "c.json: output_quantization must be an object with scale and "
                                               "zero_point, got dict \"{'scale': 1.0}\""),
    (["output_quantization", "zero_point"], -(2 ** 31) - 1, "c.json: output_quantization.zero_point is out of range"),
    (["unknown_a", ], 1, "c.json: unknown field(s) unknown_a"),
    (["labels"], ["a", "b\x01c"], "c.json: label 'b\\x01c' contains a control character"),
    (["labels"], ["a", "."], "contains a path separator or is . or .."),
    (["labels"], ["a", "x/y"], "contains a path separator"),
])
def test_more_contract_fields_by_name(path, value, message):
    with pytest.raises(C.ContractError) as e:
        C.Contract.from_dict(_edit(path, value), source="c.json")
    assert message in str(e.value)


def test_contract_limits_and_defaults():
    for labels in (["leaf spot", "b"], [f"c{i}" for i in range(C.MAX_LABELS)]):   # a space inside is fine
        C.Contract.from_dict(_edit(["labels"], labels))
    C.Contract.from_dict(_edit(["output_quantization", "zero_point"], 100))
    two = _edit(["unknown_a"], 1)
    two["unknown_b"] = 2
    with pytest.raises(C.ContractError, match="unknown field\\(s\\) unknown_a, unknown_b$"):
        C.Contract.from_dict(two)
    with pytest.raises(C.ContractError, match="^contract: not valid JSON"):
        C.Contract.from_json("{")
    with pytest.raises(C.ContractError, match="^contract: mean and std need 3 values each$"):
        C.Contract(input_size=(32, 32), labels=("a", "b"), mean=(1.0, 2.0)).validate()
    assert C.Contract.from_dict(_base()).to_json().startswith('{\n  "schema": "edgecnn.contract/1",\n')


def test_a_broken_contract_file_is_named(tmp_path):
    p = tmp_path / "contract.json"
    p.write_text('{"schema": "edgecnn.contract/1"}')
    with pytest.raises(C.ContractError) as e:
        C.load(p)
    assert str(e.value) == f"{p}: input_size and labels are required"


def test_preprocess_batches_and_integer_inputs(tmp_path):
    img = np.zeros((10, 12, 3), np.uint8)
    img[..., 0] = 255
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(img).save(paths[-1])
    c = C.Contract(input_size=(8, 8), labels=("a", "b"))
    assert C.preprocess_batch([], c).shape == (0, 8, 8, 3) and C.preprocess_batch([], c).dtype == np.float32
    b = C.preprocess_batch(paths, c)
    assert b.shape == (2, 8, 8, 3) and np.all(b[..., 0] == 1.0) and np.all(b[..., 1] == -1.0)
    q = c.with_quantization("int8", C.Quantization(1 / 127.5, 0), None)
    x = C.preprocess_array(img, q)
    assert x.dtype == np.int8 and np.all(x[..., 0] == 127) and np.all(x[..., 1] == -127)   # -127.49999 in float32
    assert C.preprocess_batch([], q).dtype == np.int8
    with pytest.raises(C.ImageError) as e:
        C.preprocess_array(np.zeros((4, 4), np.uint8), c)
    assert str(e.value) == "expected an HxWx3 RGB image, got shape (4, 4)"
    with pytest.raises(C.ImageError):
        C.preprocess_array(np.zeros((4, 4, 4), np.uint8), c)
