"""The preprocessing contract: TF training path == numpy path, decoding odd images, validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from edgecnn.agent import contract as C
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
