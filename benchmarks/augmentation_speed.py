"""Augmentation speed: the chain of Keras random layers (edgecnn before) vs the composed affine warp
and fused colour jitter (edgecnn.data.Augmenter), side by side in one process on the same photos.

Two measures, each timed in alternating turns (A, B, A, B, ...), medians reported:
- augmentation alone: views/s of a tf.data pipeline over photos already decoded and resized
  (batches of 64, parallel map), per recipe (crop_disease: flips, rotation, zoom, translation,
  brightness, contrast; products: the same plus saturation and hue);
- caching: views/s of phase 1's augmented-view pass as training runs it (decode, resize, augment,
  normalise, the frozen backbone up to block 12), crop_disease recipe.

Photos: the first --photos train photos of ../shared/data/crop_disease_34 (classes in order).
Results: results/augmentation_speed.json.

    python benchmarks/augmentation_speed.py [--photos 512] [--turns 5] [--image-size 160]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.recipe_runs import save  # noqa: E402
from edgecnn.paths import shared_data  # noqa: E402

BATCH = 64


def keras_layers(aug, seed: int):
    """The augmentation edgecnn ran before: one Keras random layer per transform (each resamples or
    rescans the whole batch)."""
    import keras
    from keras import layers

    stack = []
    mode = {(True, True): "horizontal_and_vertical", (True, False): "horizontal",
            (False, True): "vertical"}.get((aug.horizontal_flip, aug.vertical_flip))
    if mode:
        stack.append(layers.RandomFlip(mode, seed=seed))
    if aug.rotation_degrees:
        stack.append(layers.RandomRotation(aug.rotation_degrees / 360.0, fill_mode="reflect", seed=seed + 1))
    if aug.zoom:
        stack.append(layers.RandomZoom((-aug.zoom, aug.zoom), fill_mode="reflect", seed=seed + 2))
    if aug.translate:
        stack.append(layers.RandomTranslation(aug.translate, aug.translate, fill_mode="reflect", seed=seed + 3))
    if aug.brightness:
        stack.append(layers.RandomBrightness(aug.brightness, value_range=(0, 255), seed=seed + 4))
    if aug.contrast:
        stack.append(layers.RandomContrast(aug.contrast, value_range=(0, 255), seed=seed + 5))
    if aug.saturation:
        stack.append(layers.RandomSaturation((0.5 - aug.saturation / 2, 0.5 + aug.saturation / 2),
                                             value_range=(0, 255), seed=seed + 6))
    if aug.hue:
        stack.append(layers.RandomHue(aug.hue, value_range=(0, 255), seed=seed + 7))
    return keras.Sequential(stack, name="augmentation")


def photos(n: int) -> list:
    from edgecnn.core.images import Sample, images_under

    train = shared_data() / "crop_disease_34" / "train"
    out = []
    for label, cdir in enumerate(sorted(train.iterdir())):
        out += [Sample(p, label, p) for p in images_under(cdir)]
        if len(out) >= n:
            break
    return out[:n]


def views_per_s(run, n: int) -> float:
    t = time.perf_counter()
    run()
    return n / (time.perf_counter() - t)


def alternate(named: dict, n: int, turns: int) -> dict[str, list[float]]:
    """views/s of each callable, timed in turns (one warm-up pass each first)."""
    for run in named.values():
        run()
    out = {k: [] for k in named}
    for _ in range(turns):
        for k, run in named.items():
            out[k].append(views_per_s(run, n))
    return out


def augmentation_alone(samples, size: int, recipe_name: str, turns: int) -> dict:
    import numpy as np
    import tensorflow as tf

    from edgecnn import data as D
    from edgecnn import recipe as R

    aug = R.load(recipe_name).augmentation
    images = np.stack([D.tf_decode_resize(str(s.path), (size, size)).numpy() for s in samples])

    def pipeline(augment):
        ds = tf.data.Dataset.from_tensor_slices(images).batch(BATCH).map(
            lambda x: augment(x, training=True), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return lambda: [None for _ in ds.prefetch(tf.data.AUTOTUNE)]

    return alternate({"keras_layers": pipeline(keras_layers(aug, 0)), "composed": pipeline(D.augmenter(aug, 0))},
                     len(samples), turns)


def caching(samples, size: int, turns: int) -> dict:
    from edgecnn import data as D
    from edgecnn import model as M
    from edgecnn import recipe as R
    from edgecnn.core import contract as C
    from edgecnn.train import predict_at

    rec = R.load("crop_disease")
    model = M.build(4, size, weights=M.resolve_weights(None))
    fx = M.feature_extractor(model, M.cache_point(model, rec.training.head.top_blocks))
    contract = C.Contract(input_size=(size, size), labels=tuple("abcd"))

    def pass_with(augment):
        ds = D.image_dataset(samples, contract, batch_size=BATCH, augment=augment, keep_decoded=False)
        return lambda: [predict_at(fx, x, BATCH) for x, _ in ds]

    return alternate({"keras_layers": pass_with(keras_layers(rec.augmentation, 0)),
                      "composed": pass_with(D.augmenter(rec.augmentation, 0))}, len(samples), turns)


def summarise(measured: dict) -> dict:
    med = {k: statistics.median(v) for k, v in measured.items()}
    return {"views_per_s": {k: round(v, 1) for k, v in med.items()},
            "turns": {k: [round(x, 1) for x in v] for k, v in measured.items()},
            "speedup": round(med["composed"] / med["keras_layers"], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=512)
    ap.add_argument("--turns", type=int, default=5)
    ap.add_argument("--image-size", type=int, default=160)
    args = ap.parse_args()
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    samples = photos(args.photos)
    result = {"photos": len(samples), "image_size": args.image_size, "batch": BATCH, "turns": args.turns,
              "cpus": os.cpu_count(), "tensorflow": tf.__version__}
    for name in ("crop_disease", "products"):
        r = summarise(augmentation_alone(samples, args.image_size, name, args.turns))
        result[f"augmentation_{name}"] = r
        print(f"augmentation alone ({name}): Keras layers {r['views_per_s']['keras_layers']} views/s, composed "
              f"{r['views_per_s']['composed']} views/s: x{r['speedup']}")
    r = summarise(caching(samples, args.image_size, max(2, args.turns // 2)))
    result["caching_crop_disease"] = r
    print(f"phase 1 augmented-view caching (decode + augment + backbone to block 12): Keras layers "
          f"{r['views_per_s']['keras_layers']} views/s, composed {r['views_per_s']['composed']} views/s: x{r['speedup']}")
    save(result, "augmentation_speed.json")


if __name__ == "__main__":
    main()
