"""Guarded twice: rules that a tool-gated test checks end to end (the Kotlin app's core, the emulated Arm
phone under QEMU, boards over sshd), checked here again in pure Python on exact values, so a machine
without those tools still guards them. Each test names the tool-gated test it shadows."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn import bench as B
from edgecnn.core.contract import Contract, Quantization, dequantize, preprocess_array, quantize
from edgecnn.core.protocol import AgentResult, BoardEmulation, Tensor
from edgecnn.devices import emulated as EM

LABELS = ("healthy", "rust", "blight")


def _half_even(x: float) -> int:
    """Round half to even, from the definition (not numpy's rint, which the code under test uses)."""
    lo = int(np.floor(x))
    frac = x - lo
    return lo + (1 if frac > 0.5 or (frac == 0.5 and lo % 2) else 0)


# -------------------------------------------------- the quantiser (shadows test_android.py's Kotlin twin)
def test_exact_ties_round_half_to_even_and_clip_like_the_app():
    """test_quantization_rounds_half_to_even_and_clips: mean 0, std 1, scale 2, zero point 60: pixel v ->
    clip(round_half_even(v / 2) + 60, -128, 127); every odd v is an exact tie."""
    c = Contract(input_size=(16, 16), labels=LABELS, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)
                 ).with_quantization("int8", Quantization(2.0, 60), None)
    rgb = (np.arange(16 * 16 * 3).reshape(16, 16, 3) % 256).astype(np.uint8)
    got = preprocess_array(rgb, c)
    assert got.dtype == np.int8
    expected = np.vectorize(lambda v: min(127, max(-128, _half_even(v / 2) + 60)))(rgb.astype(int))
    assert np.array_equal(got.astype(int), expected)
    by_value = dict(zip(rgb.ravel().tolist(), got.ravel().tolist()))
    assert [by_value[v] for v in (0, 1, 3, 5, 7, 133, 134, 135, 255)] == [60, 60, 62, 62, 64, 126, 127, 127, 127]


@pytest.mark.parametrize("dtype,zero_point", [("int8", 0), ("int8", -5), ("uint8", 128)])
def test_negative_and_positive_ties_go_to_the_even_step(dtype, zero_point):
    lo, hi = (-128, 127) if dtype == "int8" else (0, 255)
    steps = np.arange(-40.5, 41.0, 0.5, dtype=np.float32)      # every half step from -40.5 to 40.5
    got = quantize(steps * np.float32(0.25), dtype, Quantization(0.25, zero_point))
    assert got.dtype == np.dtype(dtype)
    assert got.astype(int).tolist() == [min(hi, max(lo, _half_even(float(s)) + zero_point)) for s in steps]
    assert quantize(np.float32([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]), "int8", Quantization(1.0, 0)).tolist() == [
        -2, -2, 0, 0, 2, 2]


def test_dequantize_then_quantize_is_the_identity_on_every_code():
    for dtype, codes, q in (("int8", np.arange(-128, 128), Quantization(0.0123, -7)),
                            ("uint8", np.arange(256), Quantization(0.00390625, 3))):
        v = codes.astype(dtype)
        assert np.array_equal(quantize(dequantize(v, q), dtype, q), v)


# -------------------------------------------- the emulated phone's agreement (shadows test_devices_emulated)
def _result(dtype: str | None) -> AgentResult:
    return AgentResult(artifact="m.tflite", format="tflite", size_mb=1.0, runtime="litert", runtime_version="2",
                       platform={}, tensorflow_imported=False,
                       input=None if dtype is None else Tensor("in", (1, 8, 8, 3), dtype))


def test_only_integer_input_makes_a_full_integer_model():
    """test_int8_mobilenet_v2_agrees_with_host: a["int8"] comes from the model's input type."""
    assert [_result(d).integer_input for d in ("int8", "uint8", "float32", "float16", None)] == [
        True, True, False, False, False]


def test_bit_exact_means_every_score_equal_to_the_last_bit():
    """test_tiny_int8_end_to_end / test_emulated_scores_are_the_arm_cores_own: bit_exact only when every
    value is equal; a one-ulp difference anywhere is not bit-exact, and is counted."""
    rng = np.random.default_rng(5)
    host = rng.random((4, 3)).astype(np.float32)
    assert EM.agreement(host, host.copy(), integer_model=False)["bit_exact"] is True
    for i, j in ((0, 0), (3, 2), (2, 1)):
        emu = host.copy()
        emu[i, j] = np.nextafter(emu[i, j], np.float32(2))
        a = EM.agreement(host, emu, integer_model=False)
        assert a["bit_exact"] is False and a["values_differing"] == 1 and a["values"] == 12
        assert a["max_abs_diff"] == float(abs(np.float64(emu[i, j]) - np.float64(host[i, j]))) > 0
        assert a["top1_agreement"] == 1.0 and a["images"] == 4 and a["int8"] is False


def test_differences_in_lsb_are_counted_from_the_quantized_outputs():
    """An INT8 model's scores are dequantized codes: the largest difference in LSB is the largest
    difference of the codes, whatever the scale's rounding in float."""
    q = Quantization(0.01, -128)
    codes = np.array([[-128, 100, 27], [5, 6, 7], [127, -128, 0]], np.int8)
    for shift in (1, 2, 3, 7, 20):
        other = codes.astype(int).copy()
        other[1, 2] += shift
        other[2, 0] -= 1
        a = EM.agreement(dequantize(codes, q), dequantize(other.astype(np.int8), q), True, output_scale=q.scale)
        assert a["max_diff_lsb"] == shift and a["values_differing"] == 2 and a["int8"] is True
        assert a["bit_exact"] is False
    same = EM.agreement(dequantize(codes, q), dequantize(codes, q), True, output_scale=q.scale)
    assert same["max_diff_lsb"] == 0 and same["bit_exact"] is True


def test_top1_agreement_is_the_share_of_images_whose_best_class_is_the_same():
    host = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], np.float32)
    emu = host[:, ::-1].copy()
    emu[0] = host[0]
    assert EM.agreement(host, emu, False)["top1_agreement"] == 0.25
    assert EM.agreement(emu, host, False)["top1_agreement"] == 0.25


# ---------------------------------------------- an emulated board's rows (shadows test_board.py over sshd)
def test_a_board_that_declares_emulation_is_marked_in_every_row_and_once_in_the_notes():
    """test_bench_cli_on_the_board_marks_its_latency_as_emulated: the rows of an emulated board say so, and
    one note per board says whose latency it is."""
    emu = BoardEmulation(emulator="qemu-aarch64 7.2", cpu="cortex-a76", host_machine="x86_64")
    board = {"device": "jetson", "device_info": {"host": "root@127.0.0.1:2223", "emulated": emu.to_dict()}}
    other = {"device": "jetson", "device_info": {"host": "pi@10.0.0.2"}}
    assert B.device_label(board) == "jetson (emulated)"
    assert B.device_label(other) == "jetson" and B.device_label({"device": "host"}) == "host"
    notes = B.emulation_notes([board, dict(board), other])
    assert notes == [f"root@127.0.0.1:2223 is {emu.describe()}"]
    assert B.emulation_notes([other, {"device": "host", "device_info": None}]) == []
