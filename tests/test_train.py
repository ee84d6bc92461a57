"""`edgecnn train` end to end on a small real subset (96 px, 3 classes, few epochs)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgecnn.cli import main
from tests.conftest import SHARED, _train, need_shared


def test_run_directory_is_complete(trained_run):
    for name in ("model.keras", "labels.txt", "contract.json", "history.json", "metrics.json",
                 "report/confusion.png", "report/curves.png"):
        assert (trained_run / name).is_file(), name
    m = json.loads((trained_run / "metrics.json").read_text())
    assert set(m["per_class"]) == set((trained_run / "labels.txt").read_text().split())
    assert all({"precision", "recall", "f1"} <= set(v) for v in m["per_class"].values())
    assert len(m["confusion_matrix"]) == 3 and sum(map(sum, m["confusion_matrix"])) == 30
    assert m["timings_s"]["phase1_s"] > 0 and m["weights"]["source"] == "found"
    c = json.loads((trained_run / "contract.json").read_text())
    assert c["input_size"] == [96, 96] and c["mean"] == [127.5] * 3 and c["model"]["recipe"] == "products"
    assert list((trained_run / "report" / "gradcam").glob("*.png")) or m["test_accuracy"] == 1.0


def test_imagenet_weights_beat_chance_and_random_init_does_not(trained_run, products_subset, tmp_path):
    pre = json.loads((trained_run / "metrics.json").read_text())["test_accuracy"]
    assert pre >= 0.8  # 3 classes: chance is 0.33
    scratch = _train(products_subset, tmp_path / "scratch", weights="none")
    none = json.loads((scratch / "metrics.json").read_text())["test_accuracy"]
    assert pre - none >= 0.2, (pre, none)


@pytest.mark.slow
def test_training_is_reproducible(products_subset, tmp_path):
    a = _train(products_subset, tmp_path / "a", extra=["--seed", "5"])
    b = _train(products_subset, tmp_path / "b", extra=["--seed", "5"])
    ha, hb = (json.loads((r / "history.json").read_text())["head"]["loss"] for r in (a, b))
    assert ha == pytest.approx(hb, rel=1e-4)


@pytest.mark.parametrize("weights,message", [
    ("missing.weights.h5", "weights file not found"),
    (str(SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet.weights.h5"), "does not fit MobileNetV2"),
])
def test_bad_weights_are_clear_errors(products_subset, tmp_path, weights, message):
    if "imagenet" in weights:
        need_shared("weights", "mobilenet_v2_1.0_224_imagenet.weights.h5")
    r = CliRunner().invoke(main, ["train", "--recipe", "products", "--data", str(products_subset), "--out",
                                  str(tmp_path / "o"), "--image-size", "96", "--epochs", "1", "--quiet",
                                  "--weights", weights])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_bad_data_is_a_clear_error(tmp_path):
    (tmp_path / "d" / "train" / "only").mkdir(parents=True)
    r = CliRunner().invoke(main, ["train", "--recipe", "products", "--data", str(tmp_path / "d"), "--out",
                                  str(tmp_path / "o")])
    assert r.exit_code == 2 and r.output.startswith("Error: ") and "Traceback" not in r.output
    assert not (tmp_path / "o" / "model.keras").exists()


def _interrupted_run(data, tmp_path, change, wait_for: str):
    """A real SIGINT a few seconds after `wait_for` appears in the log of a products run whose recipe
    `change` made long: (exit status, log text, run directory)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    from edgecnn.recipe import resolve_path

    out = tmp_path / "run"
    log = tmp_path / "log.txt"
    spec = yaml.safe_load(resolve_path("products").read_text())
    change(spec["training"])
    recipe = tmp_path / "long.yaml"
    recipe.write_text(yaml.safe_dump(spec))
    with open(log, "w") as f:
        p = subprocess.Popen([sys.executable, "-m", "edgecnn.cli", "train", "--recipe", str(recipe),
                              "--data", str(data), "--out", str(out), "--image-size", "96", "--quiet"],
                             stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        deadline = time.time() + 300
        while wait_for not in log.read_text() and time.time() < deadline and p.poll() is None:
            time.sleep(0.5)
        time.sleep(3)
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=300)
    return rc, log.read_text(), out


@pytest.mark.slow
def test_ctrl_c_keeps_the_best_weights_so_far(products_subset, tmp_path):
    """A real SIGINT during fine-tuning: the run is still written, from the best weights, exit 130."""
    def long_phase2(t):
        t["fine_tune"] = {"epochs": 25, "learning_rate": 0.0005, "unfreeze_layers": 155}

    rc, text, out = _interrupted_run(products_subset, tmp_path, long_phase2, "phase 2: fine-tuning")
    assert rc == 130, text
    assert "keeping the best fine-tuned weights so far" in text and "Traceback" not in text
    m = json.loads((out / "metrics.json").read_text())
    assert m["interrupted"] is True and (out / "model.keras").is_file(), text
    assert m["test_accuracy"] >= 0.8, text  # phase 1's head survived: not half-updated weights


@pytest.mark.slow
def test_ctrl_c_in_phase_1_skips_phase_2_and_still_writes_the_run(products_subset, tmp_path):
    """Before: an interrupted phase 1 left no phase 2 timing and the summary line ended in a KeyError
    traceback after the run was written."""
    def long_phase1(t):
        t["head"].update(epochs=1000, augmented_views=0)
        t["early_stopping"]["patience"] = 1000
        t["fine_tune"] = {"epochs": 5, "learning_rate": 0.0005, "unfreeze_layers": 20}

    rc, text, out = _interrupted_run(products_subset, tmp_path, long_phase1, "phase 1: cached")
    assert rc == 130 and "Traceback" not in text, text
    assert "keeping the best head so far" in text and "phase 2: fine-tuning" not in text, text
    assert "phase 2 0 s" in text and json.loads((out / "metrics.json").read_text())["interrupted"] is True


def test_grad_cam_and_the_feature_model_raise_no_keras_warnings(trained_run, products_subset, tmp_path):
    """Before: 'UserWarning: The structure of `inputs` doesn't match the expected structure' in the
    middle of the demo's output, from models built on `model.inputs` and called with one tensor."""
    import warnings

    import keras
    import numpy as np

    from edgecnn import model as M
    from edgecnn import plots
    from edgecnn.core import contract as C
    from edgecnn.core.images import Sample

    model = keras.models.load_model(trained_run / "model.keras")
    contract = C.load(trained_run / "contract.json")
    paths = sorted((products_subset / "test").rglob("*.jpg"))[:2]
    samples = [Sample(path=p, label=0, load_path=p) for p in paths]
    probs = np.tile(np.eye(contract.num_classes)[1], (2, 1)).astype(np.float32)   # both "wrong"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = plots.gradcam(model, samples, probs, list(contract.labels), contract, tmp_path, 2, M.BACKBONE_END)
        M.feature_extractor(model)(C.preprocess_batch(paths, contract))
    assert len(written) == 2
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == []


@pytest.mark.needs_shared_data
@pytest.mark.slow
def test_crop_disease_trains_its_top_blocks_on_cached_activations(tmp_path):
    """The crop_disease recipe (phase 1: the last 4 blocks + head on cached activations) on 4 classes of
    crop_disease_34 at 96 px: far above chance; the top blocks learned, the layers below and every
    BatchNorm's statistics are the ImageNet ones still."""
    import keras
    import numpy as np

    from edgecnn import model as M
    from tests.conftest import make_subset

    data = make_subset(tmp_path / "d", "crop_disease_34", (0, 9, 17, 29), 30, 10)
    r = CliRunner().invoke(main, ["train", "--recipe", "crop_disease", "--data", str(data), "--out",
                                  str(tmp_path / "run"), "--image-size", "96", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "training the head and the backbone's last 4 blocks" in r.output
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["test_accuracy"] >= 0.8, m["test_accuracy"]    # chance: 0.25
    trained = keras.models.load_model(tmp_path / "run" / "model.keras")
    start = M.build(4, 96, weights=M.resolve_weights(None))
    same = lambda name: all(np.array_equal(a, b) for a, b in zip(  # noqa: E731
        trained.get_layer(name).get_weights(), start.get_layer(name).get_weights()))
    assert M.cache_point(start, 4) == "block_12_add"
    assert same("block_12_project") and same("block_12_depthwise") and same("Conv1")
    assert same("block_13_expand_BN") and same("Conv_1_bn")
    assert not same("block_13_expand") and not same("block_16_project") and not same("Conv_1")


def test_predictions_run_at_one_batch_shape():
    """A short last batch is padded to the batch size and trimmed back: the same outputs, one trace."""
    import keras
    import numpy as np

    from edgecnn.train import predict_at

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    got = predict_at(model, x, 8)
    assert got.shape == (3, 3) and np.allclose(got, np.asarray(model(x)), atol=1e-6)
    predict_at(model, x[:1], 8)
    assert model.predict_function.experimental_get_tracing_count() == 1
