"""Plots for a run's report (matplotlib, headless): curves, confusion, latency, Grad-CAM overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .core import contract as C
from .core.io import atomic_path


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path) -> None:
    """To a file (atomically) or to an open binary stream."""
    plt = _plt()
    if hasattr(path, "write"):
        fig.savefig(path, dpi=110, bbox_inches="tight", format="png")
    else:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def confusion(cm: np.ndarray, labels: list[str], path: Path, title: str) -> None:
    plt = _plt()
    n = len(labels)
    size = max(5.0, 0.28 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size, size))
    row = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, row, out=np.zeros_like(cm, dtype=float), where=row > 0)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=7 if n > 15 else 9)
    ax.set_yticks(range(n), labels, fontsize=7 if n > 15 else 9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if norm[i, j] > 0.5 else "black")
    _save(fig, path)


def curves(history: dict[str, dict[str, list[float]]], path: Path) -> None:
    """history: {phase: {metric: [per-epoch values]}}; phases drawn one after another."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        offset = 0
        for phase, h in history.items():
            n = len(h.get(metric, []))
            if not n:
                continue
            xs = np.arange(offset + 1, offset + n + 1)
            ax.plot(xs, h[metric], label=f"{phase} train")
            if f"val_{metric}" in h:
                ax.plot(xs, h[f"val_{metric}"], "--", label=f"{phase} val")
            if offset:
                ax.axvline(offset + 0.5, color="grey", lw=0.8)
            offset += n
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _save(fig, path)


def latency(rows: list[tuple[str, dict]], path) -> None:
    """One row per (label, latency_ms): a line from min to max, a box from p50 to p90, a tick at p99,
    and a dot at the mean; log scale when the rows span more than 20x. Estimated latencies are hatched."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(rows) + 1.2))
    for y, (_, lat) in enumerate(rows):
        lo, hi = lat.get("min", lat["p50"]), lat.get("max", lat["p99"])
        ax.plot([lo, hi], [y, y], color="grey", lw=1)
        ax.add_patch(plt.Rectangle((lat["p50"], y - 0.25), max(lat["p90"] - lat["p50"], 1e-6), 0.5,
                                   color="tab:blue", alpha=0.5, hatch="//" if lat.get("estimated") else None))
        ax.plot([lat["p50"]] * 2, [y - 0.25, y + 0.25], color="tab:blue", lw=2)
        ax.plot([lat["p99"]] * 2, [y - 0.2, y + 0.2], color="tab:red", lw=1.5)
        if "mean" in lat:
            ax.plot(lat["mean"], y, "k.", ms=4)
    spans = [r[1].get("max", r[1]["p99"]) for r in rows] + [r[1].get("min", r[1]["p50"]) for r in rows]
    if min(spans) > 0 and max(spans) / min(spans) > 20:
        ax.set_xscale("log")
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel("ms per image (box p50-p90, red p99, line min-max, dot mean)")
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)


def gradcam(model, samples, probs: np.ndarray, labels: list[str], contract: C.Contract,
            out_dir: Path, n: int, conv_layer: str) -> list[str]:
    """Overlays for up to n misclassified images: where the model looked for its wrong answer."""
    import keras
    import tensorflow as tf

    preds = probs.argmax(1)
    wrong = [i for i, s in enumerate(samples) if preds[i] != s.label]
    wrong.sort(key=lambda i: -probs[i, preds[i]])  # most confident mistakes first
    if not wrong or n <= 0:
        return []
    grad_model = keras.Model(model.input, [model.get_layer(conv_layer).output, model.output])
    plt = _plt()
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for k, i in enumerate(wrong[:n]):
        s = samples[i]
        rgb = C.load_image(s.path)
        x = C.preprocess_array(rgb, contract)[None]
        with tf.GradientTape() as tape:
            fmap, out = grad_model(x, training=False)
            score = out[:, int(preds[i])]
        grads = tape.gradient(score, fmap)[0].numpy()
        fmap = fmap[0].numpy()
        cam = np.maximum((fmap * grads.mean(axis=(0, 1))).sum(-1), 0)
        cam = cam / cam.max() if cam.max() > 0 else cam
        shown = C.resize_bilinear(rgb, contract.input_size).astype(np.uint8)
        heat = C.resize_bilinear(cam[..., None], contract.input_size)[..., 0]
        fig, axes = plt.subplots(1, 2, figsize=(6, 3.2))
        axes[0].imshow(shown)
        axes[1].imshow(shown)
        axes[1].imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        for a in axes:
            a.axis("off")
        fig.suptitle(f"true: {labels[s.label]}\npredicted: {labels[preds[i]]} ({probs[i, preds[i]]:.0%})",
                     fontsize=9)
        name = f"{k:02d}_{labels[s.label]}_as_{labels[preds[i]]}.png"
        _save(fig, out_dir / name)
        written.append(name)
    return written
