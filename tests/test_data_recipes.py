"""Folder layouts, bad images, stratified hold-out, recipes and their validation."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgecnn import data as D
from edgecnn import recipe as R
from edgecnn.cli import main


def _img(path, color=(120, 30, 200), size=(40, 40)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _folder(root, classes=("a", "b"), n=4, splits=("train",)):
    for s in splits:
        for c in classes:
            for i in range(n):
                _img(root / s / c / f"{i}.png", color=(i * 40, 10, 99))
    return root


def test_split_layout_and_holdout(tmp_path):
    root = _folder(tmp_path / "d", n=10, splits=("train", "test"))
    ds = D.scan(root, val_fraction=0.2, seed=3, progress=False)
    assert ds.layout == "splits" and ds.classes == ["a", "b"]
    assert len(ds.test) == 20 and len(ds.val) == 4 and len(ds.train) == 16
    assert sorted(s.label for s in ds.val) == [0, 0, 1, 1]  # stratified
    assert not set(s.path for s in ds.val) & set(s.path for s in ds.train)


def test_flat_layout(tmp_path):
    root = tmp_path / "flat"
    for c in ("x", "y", "z"):
        for i in range(5):
            _img(root / c / f"{i}.jpg")
    ds = D.scan(root, progress=False)
    assert ds.layout == "flat" and ds.classes == ["x", "y", "z"] and not ds.test and len(ds.val) == 3


@pytest.mark.parametrize("build,message", [
    (lambda r: _folder(r, splits=("test",)), "no train/ split"),
    (lambda r: (_folder(r, splits=("train",)), (r / "train" / "empty").mkdir()), "empty class"),
    (lambda r: (_folder(r, splits=("train",)), _folder(r, classes=("a", "c"), splits=("test",))),
     "missing in test/: b; only in test/: c"),
    (lambda r: _folder(r, classes=("only",), splits=("train",)), "single class"),
    (lambda r: (_img(r / "loose.png"),), "no class subfolders"),
    (lambda r: (_folder(r, splits=("train",)), (r / "validation").mkdir()), "unexpected folder"),
])
def test_layout_errors_name_the_problem(tmp_path, build, message):
    root = tmp_path / "d"
    root.mkdir()
    build(root)
    with pytest.raises(D.DataError, match=message):
        D.scan(root, progress=False)


def test_missing_folder(tmp_path):
    with pytest.raises(D.DataError, match="not found"):
        D.scan(tmp_path / "nope", progress=False)


def test_corrupt_truncated_and_empty_files_are_skipped_and_listed(tmp_path):
    root = _folder(tmp_path / "d", n=4)
    (root / "train" / "a" / "zero.jpg").write_bytes(b"")
    (root / "train" / "a" / "junk.png").write_bytes(b"garbage bytes")
    good = _img(tmp_path / "big.jpg", size=(300, 300))
    data = good.read_bytes()
    (root / "train" / "b" / "cut.jpg").write_bytes(data[: len(data) // 3])
    ds = D.scan(root, cache_dir=tmp_path / "cache", progress=False)
    skipped = {p["path"].rsplit("/", 1)[-1]: p["reason"] for p in ds.skipped}
    assert set(skipped) == {"zero.jpg", "junk.png", "cut.jpg"}
    assert "empty" in skipped["zero.jpg"] and "truncated" in skipped["cut.jpg"]
    assert len(ds.train) + len(ds.val) == 8


def test_odd_modes_are_normalised_for_training(tmp_path):
    root = _folder(tmp_path / "d", n=3)
    Image.new("CMYK", (30, 30), (0, 100, 0, 0)).save(root / "train" / "a" / "cmyk.jpg")
    ds = D.scan(root, cache_dir=tmp_path / "cache", progress=False)
    assert any(p.endswith("cmyk.jpg") for p in ds.normalized)
    s = next(s for s in ds.train + ds.val if s.path.name == "cmyk.jpg")
    assert s.load_path.suffix == ".png" and s.load_path.is_file()


def test_augmentation_policies_fit_the_tasks():
    signs, leaves, products = (R.load(n).augmentation for n in ("traffic_signs", "crop_disease", "products"))
    assert not signs.horizontal_flip and not signs.vertical_flip and signs.rotation_degrees <= 15
    assert leaves.horizontal_flip and leaves.vertical_flip and leaves.rotation_degrees >= 90
    assert products.horizontal_flip and not products.vertical_flip and 0 < products.saturation <= 0.2


def test_augmenter_changes_images_but_keeps_range():
    aug = D.augmenter(R.load("crop_disease").augmentation, seed=1)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    y = np.asarray(aug(x, training=True))
    assert y.shape == x.shape and not np.allclose(x, y) and y.min() >= -1e-3 and y.max() <= 255.001
    again = D.augmenter(R.load("crop_disease").augmentation, seed=1)
    assert np.array_equal(np.asarray(again(x, training=True)), y)          # seeded
    assert not np.allclose(np.asarray(aug(x, training=True)), y)           # each call a new view
    assert np.array_equal(np.asarray(aug(x, training=False)), x)
    assert D.augmenter(R.Augmentation(), seed=1) is None


def test_the_composed_warp_samples_where_the_transforms_say():
    """Identity, flips, whole-pixel shifts and a 2x zoom are exact; a 90 degree turn is numpy's rot90 (one
    bilinear resampling; cos(pi/2) is not exactly 0 in float32)."""
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    one, zero = np.ones(2, np.float32), np.zeros(2, np.float32)
    warp = lambda fx=one, fy=one, angle=zero, scale=one, dx=zero, dy=zero: np.asarray(  # noqa: E731
        D.affine_warp(x, fx, fy, angle, scale, dx, dy))
    assert np.array_equal(warp(), x)
    assert np.array_equal(warp(fx=-one), x[:, :, ::-1]) and np.array_equal(warp(fy=-one), x[:, ::-1])
    assert np.array_equal(warp(fx=-one, fy=-one), x[:, ::-1, ::-1])
    assert np.array_equal(warp(dx=one / 4)[:, :, :6], x[:, :, 2:])       # 2 of 8 pixels, borders reflected
    assert np.abs(warp(angle=zero + np.pi / 2) - np.rot90(x, 1, axes=(1, 2))).max() < 1e-3
    odd = np.random.default_rng(2).uniform(0, 255, (2, 9, 9, 3)).astype("float32")
    out = np.asarray(D.affine_warp(odd, one, one, zero, one * 2, zero, zero))  # zoomed out 2x about the centre
    assert np.array_equal(out[:, 2:7, 2:7], odd[:, ::2, ::2])


def test_the_fused_colour_jitter_is_the_layers_arithmetic():
    """Brightness and contrast as Keras' layers compute them (contrast about each image's mean colour,
    then clipped); saturation 0 is the luma grey; a whole turn of hue changes nothing."""
    x = np.random.default_rng(1).uniform(0, 255, (3, 6, 6, 3)).astype("float32")
    one, zero = np.ones(3, np.float32), np.zeros(3, np.float32)
    jitter = lambda b=zero, c=one, s=one, h=zero: np.asarray(D.colour_jitter(x, b, c, s, h))  # noqa: E731
    mean = x.mean(axis=(1, 2), keepdims=True)
    assert np.abs(jitter(b=zero + 20, c=one * 1.3) - np.clip((x - mean) * 1.3 + mean + 20, 0, 255)).max() < 1e-3
    grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
    assert np.abs(jitter(s=zero) - grey[..., None]).max() < 1e-3
    assert np.abs(jitter(h=zero + 2 * np.pi) - x).max() < 1e-2


def test_recipes_cli_lists_and_shows():
    r = CliRunner().invoke(main, ["recipes"])
    assert r.exit_code == 0 and all(n in r.output for n in ("crop_disease", "traffic_signs", "products"))
    r = CliRunner().invoke(main, ["recipes", "show", "traffic_signs"])
    assert r.exit_code == 0 and "horizontal_flip: false" in r.output and "size_mb: 20" in r.output


@pytest.mark.parametrize("text,message", [
    ("name: x\nimage_size: 160\ntraining: {batchsize: 3}\n", "training.batchsize: unknown key"),
    ("name: x\nimage_size: 100\n", "multiple of 8"),
    ("name: x\ntraining: {head: {epochs: 0}}\n", "training.head.epochs"),
    ("name: x\nbudgets: {size_mb: -1}\n", "budgets.size_mb"),
    ("- just\n- a list\n", "expected a mapping"),
    ("name: [unclosed\n", "not valid YAML"),
])
def test_recipe_errors_name_the_key(tmp_path, text, message):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    with pytest.raises(R.RecipeError, match=message.replace("[", r"\[")):
        R.load(p)


def test_user_recipe_file_and_unknown_name(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("image_size: 128\naugmentation: {horizontal_flip: true}\n")
    r = R.load(p)
    assert r.name == "mine" and r.image_size == 128 and r.augmentation.horizontal_flip
    with pytest.raises(R.RecipeError, match="unknown recipe"):
        R.load("no_such_recipe")
    res = CliRunner().invoke(main, ["recipes", "show", "no_such_recipe"])
    assert res.exit_code == 2 and "unknown recipe" in res.output and "Traceback" not in res.output


def test_the_check_cache_decodes_only_new_or_changed_photos(tmp_path):
    """A re-run reuses each unchanged photo's verdict (its CMYK copy and a corrupt file's reason too);
    a rewritten photo is decoded again, even one damaged in place (same size) whose modification time
    was set back."""
    import os

    root = _folder(tmp_path / "d", n=4)
    Image.new("CMYK", (30, 30), (0, 100, 0, 0)).save(root / "train" / "a" / "cmyk.jpg")
    (root / "train" / "b" / "junk.png").write_bytes(b"garbage bytes")
    photos = sorted(p for p in root.rglob("*") if p.is_file())
    store = tmp_path / "cache" / "checks.sqlite3"
    scan = lambda: D.scan(root, cache_dir=tmp_path / "norm", progress=False, checks=store)  # noqa: E731

    first, again = scan(), scan()
    assert (first.checked.checked_anew, first.checked.remembered) == (len(photos), 0)
    assert (again.checked.checked_anew, again.checked.remembered) == (0, len(photos))
    assert (again.skipped, again.normalized) == (first.skipped, first.normalized)
    assert [s.load_path for s in again.train] == [s.load_path for s in first.train]

    cut = root / "train" / "a" / "0.png"
    cut.write_bytes(cut.read_bytes()[:40])                        # truncated: a new size
    same = root / "train" / "b" / "1.png"
    before = same.stat()
    data = bytearray(same.read_bytes())
    data[-20:-12] = bytes(8)                                       # damaged in place: the same size
    same.write_bytes(bytes(data))
    os.utime(same, ns=(before.st_atime_ns, before.st_mtime_ns))    # and its old modification time
    assert (same.stat().st_size, same.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    changed = scan()
    assert (changed.checked.checked_anew, changed.checked.remembered) == (2, len(photos) - 2)
    assert {str(cut), str(same)} <= {s["path"] for s in changed.skipped}


def test_an_unusable_check_cache_only_means_checking_every_photo(tmp_path):
    root = _folder(tmp_path / "d", n=2)
    (tmp_path / "file").write_text("not a folder")
    ds = D.scan(root, progress=False, checks=tmp_path / "file" / "checks.sqlite3")
    assert ds.checked.checked_anew == 4 and ds.checked.note and "could not be opened" in ds.checked.note
