"""MediaPipe Tasks' ImageClassifier as a client of our models, beside edgecnn's own agent.

Used by tests/test_mediapipe_client.py (a small run) and benchmarks/mediapipe_agreement.py (the
recipes' real runs). MediaPipe is given the decoded RGB photo the agent decodes (EXIF applied),
either resized exactly as the contract resizes ("contract-resized": its own resize is then the
identity) or at full size ("full-size": it resizes with its own resampling).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

HOW = ("contract-resized", "full-size")


def photo(path: str, contract, resized: bool) -> np.ndarray:
    """The decoded RGB photo, at full size or resized exactly as the contract resizes (uint8)."""
    from edgecnn.core import contract as C
    rgb = np.asarray(C.load_image(Path(path)), dtype=np.uint8)
    if resized:
        x = C.preprocess_array(rgb, replace(contract, input_dtype="float32", input_quantization=None))
        rgb = np.clip(np.rint(x * np.array(contract.std) + np.array(contract.mean)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb)


def mediapipe_top1(model: Path, paths: list[str], contract, resized: bool) -> list[str]:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(model)), max_results=1)
    with vision.ImageClassifier.create_from_options(opts) as clf:
        return [clf.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=photo(p, contract, resized)))
                .classifications[0].categories[0].category_name for p in paths]


def edgecnn_top1(model: Path, data: Path):
    """Top-1 through the agent of `edgecnn bench` (the host device, its own process)."""
    from edgecnn.core.protocol import AgentRequest
    from edgecnn.devices import get_device
    with get_device("host") as host:
        res = host.run(AgentRequest(model=str(model), data=str(data), latency=False))
    return res.evaluation, res.contract


def agreement(model: Path, data: Path) -> dict:
    """MediaPipe's top-1 against the agent's, both ways of feeding it; every name it returns must be
    one of our labels (else AssertionError)."""
    ev, contract = edgecnn_top1(model, data)
    ours = [contract.labels[i] for i in ev.top1]
    out = {"images": len(ours)}
    for how in HOW:
        theirs = mediapipe_top1(model, list(ev.paths), contract, resized=how == "contract-resized")
        unknown = set(theirs) - set(contract.labels)
        assert not unknown, f"{model.name}: MediaPipe returned names that are not our labels: {sorted(unknown)[:3]}"
        out[how] = {"agreement": round(sum(a == b for a, b in zip(theirs, ours)) / len(ours), 4),
                    "disagreements": [{"image": Path(p).name, "edgecnn": o, "mediapipe": m}
                                      for p, o, m in zip(ev.paths, ours, theirs) if o != m]}
    return out
