"""phone-emulated: the agent under QEMU user mode on a named Arm core vs the host, and the
latency estimate from a device profile (anchors benched side by side on the host).

The Arm64 sysroot is prepared once under the user cache (about a minute the first time).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from devices_helpers import image_folder, need_qemu, shared_tiny_model
from edgecnn.core.errors import DeviceError
from edgecnn.core.protocol import AgentRequest, Latency
from edgecnn.devices import emulated as E
from edgecnn.devices import get_device
from edgecnn.emulation import arm64, phone
from edgecnn.paths import shared_data


def req(model, **kw) -> AgentRequest:
    opts = dict(runs=20, warmup=3, min_seconds=0.2)
    opts.update({k: (str(v) if isinstance(v, Path) else v) for k, v in kw.items()})
    return AgentRequest(model=str(model), **opts)
REF = shared_data() / "weights" / "reference"




@pytest.fixture(scope="session")
def sysroot():
    need_qemu()
    t0 = time.perf_counter()
    root = arm64.ensure(arm64.SYSROOT, log=print)
    print(f"\nArm64 sysroot ready in {time.perf_counter() - t0:.1f} s "
          f"(built in {json.loads((root / 'sysroot.json').read_text())['built_s']} s from nothing)")
    return root


@pytest.fixture(scope="session")
def model(tmp_path_factory):
    return shared_tiny_model(tmp_path_factory)


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    return image_folder(tmp_path_factory.mktemp("emu") / "data")


def test_sysroot_is_complete_and_cached(sysroot):
    assert (sysroot / "root" / arm64.PYTHON).is_file() and (sysroot / "site" / "ai_edge_litert").is_dir()
    assert arm64.ensure(arm64.SYSROOT, log=print) == sysroot  # second call: cached, no rebuild
    assert not list(sysroot.parent.glob("arm64-sysroot.partial-*"))
    view = phone.core_view(sysroot, "cortex-a76")
    info = (view / "proc" / "cpuinfo").read_text()
    assert "CPU part\t: 0xd0b" in info and "asimddp" in info
    assert (view / "sys/devices/system/cpu/possible").read_text() == "0-3\n"


@pytest.mark.parametrize("profile", ["pixel3", "lowcost-a53"])
def test_tiny_int8_end_to_end(sysroot, model, data, profile):
    with get_device("phone-emulated", profile=profile, rounds=1) as dev:
        res = dev.run(req(model, data=data))
    a = res.agreement_with_host
    assert res.platform["machine"] == "aarch64"          # really ran on the emulated Arm core
    assert res.device_detail["emulation"]["qemu_cpu"] == E.load_profile(profile)["qemu_cpu"]
    assert a["images"] == 9 and a["top1_agreement"] == 1.0 and a["bit_exact"] and a["max_abs_diff"] == 0.0
    assert res.evaluation.images == 9 and res.evaluation.accuracy is not None
    if not res.latency_estimated:
        # no anchor could be had (the shared data folder's reference model, or TensorFlow to build one)
        assert res.latency_ms is None and any("anchor" in n for n in res.notes), res.notes
        pytest.skip("latency estimate needs an anchor model: " + "; ".join(res.notes))
    est = res.estimate
    assert est["profile"] == profile and est["anchor"] in {a["model"] for a in E.load_profile(profile)["anchors"]}
    assert est["scale"] > 0 and res.latency_ms.p50 == pytest.approx(est["candidate_host_ms"] * est["scale"], rel=1e-2)
    print(f"\n{profile}: tiny model estimated p50 {res.latency_ms.p50:.3f} ms, "
          f"uncertainty {est['uncertainty_pct']}%, agreement {a}")


def test_emulated_scores_are_the_arm_cores_own(sysroot, data, tmp_path):
    """A float model: top-1 agrees, but the emulated Arm kernels' scores differ from x86's in the last
    bits (FMA and summation order differ), so the comparison really is host against emulator."""
    from devices_helpers import LABELS
    from tiny_model import tiny_float_tflite
    m = tmp_path / "tiny_float.tflite"
    m.write_bytes(tiny_float_tflite(LABELS))
    with get_device("phone-emulated", profile="pixel3", rounds=1, log=lambda msg: None) as dev:
        res = dev.run(req(m, data=data, latency=False))
    a = res.agreement_with_host
    assert a["images"] == 9 and a["top1_agreement"] == 1.0 and not a["int8"]
    assert not a["bit_exact"] and 0 < a["max_abs_diff"] < 1e-5, a


def _labels() -> list[str]:
    labels, seen = [], set()
    for i, line in enumerate((REF / "imagenet_labels.txt").read_text().splitlines()):
        name = line.strip() or f"class {i}"
        if name in seen:
            name = f"{name} ({i})"
        seen.add(name)
        labels.append(name)
    return labels


def test_int8_mobilenet_v2_agrees_with_host(sysroot, tmp_path):
    src = REF / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
    if not src.is_file():
        pytest.skip(f"needs the reference model {src.name} in the shared data folder weights/reference")
    from edgecnn.core.contract import Contract
    m = tmp_path / src.name
    shutil.copyfile(src, m)
    labels = _labels()
    assert len(labels) == 1001
    (tmp_path / (m.name + ".contract.json")).write_text(Contract(input_size=(224, 224), labels=tuple(labels)).to_json())
    d = tmp_path / "photos" / labels[1]
    d.mkdir(parents=True)
    for bmp in sorted(REF.glob("*.bmp")):
        shutil.copyfile(bmp, d / bmp.name)
    with get_device("phone-emulated", profile="pixel3", rounds=2) as dev:
        res = dev.run(req(m, data=tmp_path / "photos", outputs="scores.npy"))
    a = res.agreement_with_host
    assert a["images"] == len(list(REF.glob("*.bmp"))) and a["top1_agreement"] == 1.0
    assert a["bit_exact"] and a["int8"]  # INT8 with XNNPACK: bit-exact x86 vs emulated Arm64
    assert res.outputs.shape == (a["images"], 1001)
    est = res.estimate
    assert res.latency_estimated and est["anchor"] == "mobilenet_v2_1.0_224_quant.tflite"
    # the candidate is a MobileNetV2 1.0/224 like the anchor (12 ms on the Pixel 3): the estimate is that
    # anchor time scaled by the two models' measured host ratio (about 0.45-0.5 here: the TF2 PTQ graph
    # runs faster on XNNPACK than the older QAT one), never an emulated time
    ratio = est["candidate_host_ms"] / est["anchor_host_ms"]
    assert 0.25 < ratio < 2.0 and res.latency_ms.p50 == pytest.approx(12.0 * ratio, rel=1e-2)
    if len(est["anchors"]) == 2:
        assert est["uncertainty_pct"] is not None
    print(f"\nINT8 MobileNetV2 (tf2 PTQ) on {est['device']}: estimated p50 {res.latency_ms.p50:.1f} ms "
          f"(p90 {res.latency_ms.p90:.1f}), uncertainty {est['uncertainty_pct']}%, "
          f"scale {est['scale']}, anchors {json.dumps({k: (v['host_ms'], v['scale']) for k, v in est['anchors'].items()})}; "
          f"agreement {a}; emulated run {res.device_detail['emulation']['wall_s']} s")


def test_no_anchor_means_no_latency(sysroot, model, data, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECNN_SHARED_DATA", str(tmp_path / "empty"))
    with get_device("phone-emulated", profile="lowcost-a53", rounds=1, log=lambda m: None) as dev:
        res = dev.run(req(model))
    assert res.latency_ms is None and not res.latency_estimated
    assert any("no anchor model available" in n for n in res.notes)
    # without --data: agreement on random images under the model's first label
    assert res.agreement_with_host["inputs"].startswith("random images")
    assert res.agreement_with_host["bit_exact"]
    assert res.evaluation is None


def test_missing_tools_name_the_packages(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DeviceError, match=r"apt-get install qemu-user-static debootstrap"):
        arm64.ensure(arm64.SYSROOT, log=print)


def test_estimate_math_and_profiles():
    prof = E.load_profile("pixel3")
    assert prof["qemu_cpu"] == "cortex-a76" and {a["precision"] for a in prof["anchors"]} == {"int8", "float"}
    assert all(a["source"] for p in E.list_profiles() for a in E.load_profile(p)["anchors"])
    cand = Latency(p50=2.0, p90=3.0, p99=4.0, mean=2.5, n=10)
    anchors = {"mobilenet_v2_1.0_224_quant.tflite": 3.0, "build:mobilenet_v2_1.0_224_float": 5.0}
    lat, how = E.estimate(prof, cand, anchors, "int8")
    assert how["scale"] == pytest.approx(4.0)        # 12 ms / 3 ms
    assert lat.p50 == pytest.approx(8.0) and lat.p90 == pytest.approx(12.0)
    assert how["uncertainty_pct"] == pytest.approx(12.5)  # float scale 3.5 vs 4.0
    assert E.estimate(prof, cand, anchors, "float")[1]["anchor"].startswith("build:")
    assert E.estimate(prof, cand, {}, "int8") is None
    with pytest.raises(Exception, match="unknown device profile"):
        E.load_profile("no-such-phone")


def test_apt_mirror_is_read_from_sources():
    uri = arm64.apt_mirror()
    assert uri.startswith(("http://", "https://", "file:/"))
