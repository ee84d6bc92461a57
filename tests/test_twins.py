"""Guarded twice: rules that a tool-gated test checks end to end (the Kotlin app's core, the emulated Arm
phone under QEMU, boards over sshd), checked here again in pure Python on exact values, so a machine
without those tools still guards them. Each test names the tool-gated test it shadows.

Where a board is needed, a small shell script written here stands for the OpenSSH client: one that never
answers, one whose file transfers never finish, or one that runs the remote command line (always its last
argument, SSHTransport.argv) with sh in a folder of the test's, so the real subprocesses, deadlines and
quoting are exercised and the board's side can be read back file by file."""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import android_helpers as H
import results_helpers as R
from edgecnn import bench as B
from edgecnn.core.contract import Contract, Quantization, dequantize, load_image, preprocess_array, quantize
from edgecnn.core.errors import DeviceError
from edgecnn.core.protocol import AgentRequest, AgentResult, BoardEmulation, Tensor
from edgecnn.devices import emulated as EM
from edgecnn.devices.ssh import JetsonDevice, SSHTransport, local_path

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
    board = R.record(device="jetson", device_info={"host": "root@127.0.0.1:2223", "emulated": emu.to_dict()})
    other = R.record(device="jetson", device_info={"host": "pi@10.0.0.2"})
    host = R.record(device="host", device_info={})
    assert B.device_label("jetson root@127.0.0.1", board) == "jetson root@127.0.0.1 (emulated)"
    assert B.device_label("jetson pi@10.0.0.2", other) == "jetson pi@10.0.0.2"
    assert B.device_label("host", host) == "host"
    notes = B.emulation_notes([board, board.model_copy(), other])
    assert notes == [f"root@127.0.0.1:2223 is {emu.describe()}"]
    assert B.emulation_notes([other, host]) == []


# ------------------------------------------ the board's transfer deadline (shadows test_bad_inputs.py, sshd)
def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


NEVER_ANSWERS = "#!/bin/sh\nexec sleep 30\n"                       # whatever it is asked
TRANSFERS_HANG = """#!/bin/sh
for last; do :; done
case "$last" in
  "cat "*|*"&& tar -xf - -C "*) exec sleep 30 ;;
esac
exec sh -c "$last"
"""                                                     # files travel by cat, folders by tar: those never end


def _ends_at(call, seconds: float) -> tuple[str, bool]:
    """The DeviceError line `call` ends with, and whether it came at the deadline (not before, not long after)."""
    t0 = time.perf_counter()
    try:
        call()
    except DeviceError as e:
        took = time.perf_counter() - t0
        return str(e), seconds - 0.05 <= took < seconds + 4
    return "no error", False


def _in_parallel(calls: dict, seconds: float) -> dict:
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = {name: pool.submit(_ends_at, call, seconds) for name, call in calls.items()}
        return {name: f.result() for name, f in futures.items()}


def _small_tree(root: Path) -> Path:
    (root / "rust").mkdir(parents=True)
    (root / "rust" / "1.png").write_bytes(b"\x89PNG one")
    (root / "healthy leaf").mkdir()
    (root / "healthy leaf" / "a b.jpg").write_bytes(b"\xff\xd8 two")
    return root


@pytest.mark.parametrize("timeout", [1, 2])
def test_every_transfer_ends_at_the_transports_command_timeout(tmp_path, timeout):
    """test_a_board_that_hangs_is_given_up_on: push, push_text, pull, read_text and push_dir to a board that
    never answers each end, at the deadline, with one line naming the command timeout (the device's
    --timeout), never the connect timeout; 1 s and 2 s give their own lines."""
    ssh = _script(tmp_path / "ssh", NEVER_ANSWERS)
    payload = tmp_path / "m.tflite"
    payload.write_bytes(b"\0" * 5000)
    data = _small_tree(tmp_path / "data")
    transports = {name: SSHTransport("u@board", ssh=str(ssh), connect_timeout=3, command_timeout=timeout)
                  for name in ("push", "push_text", "pull", "read_text", "push_dir")}
    t = transports
    try:
        got = _in_parallel({"push": lambda: t["push"].push(payload, "/w/model/m.tflite"),
                            "push_text": lambda: t["push_text"].push_text("{}", "/w/request.json"),
                            "pull": lambda: t["pull"].pull("/w/outputs.npy", tmp_path / "outputs.npy"),
                            "read_text": lambda: t["read_text"].read_text("/w/result.json"),
                            "push_dir": lambda: t["push_dir"].push_dir(data, "/w/data")}, timeout)
    finally:
        for tr in transports.values():
            tr.close()
    line = f"u@board: no answer within {timeout} s (raise --timeout for a slow board or link)"
    assert got == {name: (line, True) for name in transports}
    assert not (tmp_path / "outputs.npy").exists()


@pytest.mark.parametrize("timeout", [1, 2])
def test_the_jetson_devices_staging_ends_at_its_timeout(tmp_path, monkeypatch, timeout):
    """test_a_board_that_hangs_is_given_up_on, through the device: JetsonDevice's --timeout is its
    transport's command timeout, so staging the model (and its sidecar), the agent, --data and --unlabeled
    on a board whose transfers never finish ends at that deadline; connect_timeout bounds none of it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(bin_dir / "ssh", TRANSFERS_HANG)                      # the `ssh` the device finds on PATH
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\0" * 5000)
    model.with_name("m.tflite.contract.json").write_text("{}")
    data = _small_tree(tmp_path / "data")
    work = str(tmp_path / "board" / "edgecnn.work")
    notes: list[str] = []
    with JetsonDevice(host="u@board", timeout=timeout, connect_timeout=3) as d:
        assert (d.transport.ssh, d.transport.command_timeout, d.transport.connect_timeout) == (
            str(bin_dir / "ssh"), timeout, 3)
        got = _in_parallel({"model": lambda: d._stage_file(model, f"{work}/model"),
                            "agent": lambda: d.transport.push(d._agent_file(), f"{work}/agent.pyz"),
                            "data": lambda: d._stage_data(data, work, notes, "data"),
                            "unlabeled": lambda: d._stage_data(data, work, notes, "unlabeled")}, timeout)
    line = f"u@board: no answer within {timeout} s (raise --timeout for a slow board or link)"
    assert got == {name: (line, True) for name in ("model", "agent", "data", "unlabeled")}
    assert notes == [] and (tmp_path / "board" / "edgecnn.work" / "model").is_dir()   # the mkdir did run


# ----------------------------------------- staging on the board (shadows test_devices_ssh.py over sshd)
@pytest.fixture
def stand_in_board(tmp_path, monkeypatch):
    """A board in a folder of this test (not conftest's slow, QEMU-gated `board`): `ssh` on PATH runs the remote command line with sh, with the
    board's TMPDIR (where the device's work folders are made) inside that folder."""
    root = tmp_path / "board"
    (root / "tmp").mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(bin_dir / "ssh", f"""#!/bin/sh
for last; do :; done
TMPDIR={shlex.quote(str(root / "tmp"))}
export TMPDIR
exec sh -c "$last"
""")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return root


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under folder by its relative path, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _work(d: JetsonDevice, board: Path) -> str:
    work = d._make_work_folder()
    assert re.fullmatch(re.escape(str(board / "tmp")) + r"/edgecnn\.[A-Za-z0-9]{8}", work), work
    return work


def test_a_model_travels_with_the_contract_the_host_reads_it_with_and_nothing_else(stand_in_board, tmp_path):
    """test_agent_over_ssh_matches_host / test_baseline_timed_in_turns_on_the_board /
    test_hostile_file_names_are_not_commands: a file is staged into its folder under its own name, with the
    contract file the host reads it with (its sidecar, else the folder's contract.json, else the one a
    folder up) as `<file>.contract.json`; nothing else of its folder travels, and names are never commands."""
    src = tmp_path / "in; touch PWNED_DIR"
    src.mkdir()
    files = {"a; touch PWNED.tflite": b"tflite bytes", "a; touch PWNED.tflite.contract.json": b'{"c": 1}',
             "m.engine": b"engine bytes", "m.engine.contract.json": b'{"c": 2}', "contract.json": b'{"c": 3}',
             "labels.txt": b"a\nb\n", "other.onnx": b"x", "sub/$(touch PWNED2).onnx": b"onnx bytes"}
    (src / "sub").mkdir()
    for name, content in files.items():
        (src / name).write_bytes(content)
    with JetsonDevice(host="u@board") as d:
        work = _work(d, stand_in_board)
        staged = [d._stage_file(src / "a; touch PWNED.tflite", f"{work}/model"),
                  d._stage_file(src / "m.engine", f"{work}/baseline"),
                  d._stage_file(src / "sub" / "$(touch PWNED2).onnx", f"{work}/onnx")]
    assert staged == [f"{work}/model/a; touch PWNED.tflite", f"{work}/baseline/m.engine",
                      f"{work}/onnx/$(touch PWNED2).onnx"]
    w = Path(work)
    assert _tree(w) == {"model/a; touch PWNED.tflite": b"tflite bytes",
                        "model/a; touch PWNED.tflite.contract.json": b'{"c": 1}',
                        "baseline/m.engine": b"engine bytes", "baseline/m.engine.contract.json": b'{"c": 2}',
                        "onnx/$(touch PWNED2).onnx": b"onnx bytes",
                        "onnx/$(touch PWNED2).onnx.contract.json": b'{"c": 3}'}     # from a folder up
    (src / "m.engine.contract.json").unlink()     # an engine without a sidecar: the folder's contract.json
    with JetsonDevice(host="u@board") as d:
        work = _work(d, stand_in_board)
        d._stage_file(src / "m.engine", f"{work}/engine")
    assert _tree(Path(work)) == {"engine/m.engine": b"engine bytes", "engine/m.engine.contract.json": b'{"c": 3}'}
    assert not [p for p in tmp_path.rglob("PWNED*")] and not list(Path.cwd().glob("PWNED*"))


def test_the_model_staged_is_the_one_the_boards_runtimes_can_run(stand_in_board, tmp_path):
    """test_agent_over_ssh_matches_host / test_tensorrt_build_on_a_board: a .tflite goes as is into
    model/; an ONNX asked to run on TensorRT, where the board has none, goes to the CPU instead, as its
    sibling .tflite (with that file's sidecar) under LiteRT, else as itself under ONNX Runtime, each with
    its note. The board's modules are those of this machine's python (the probe runs it)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for name in ("a/m.tflite", "a/m.tflite.contract.json", "a/m.onnx", "a/m.onnx.contract.json", "b/m.onnx"):
        (tmp_path / name).write_bytes(name.encode())
    with JetsonDevice(host="u@board", python=sys.executable) as d:
        modules = d.probe()["modules"]
        if modules["tensorrt"] or not (modules["ai_edge_litert"] and modules["onnxruntime"]):
            pytest.skip(f"the stand-in board is this machine: needs LiteRT and ONNX Runtime, no TensorRT ({modules})")
        notes: list[str] = []
        w1, w2, w3 = _work(d, stand_in_board), _work(d, stand_in_board), _work(d, stand_in_board)
        got = [d._stage_model(tmp_path / "a" / "m.tflite", None, w1, notes),
               d._stage_model(tmp_path / "a" / "m.onnx", "tensorrt", w2, notes),
               d._stage_model(tmp_path / "b" / "m.onnx", "tensorrt", w3, notes)]
    assert got == [f"{w1}/model/m.tflite", f"{w2}/model/m.tflite", f"{w3}/model/m.onnx"]
    assert notes == ["no TensorRT on u@board: ran m.tflite with LiteRT on the board's CPU instead",
                     "no TensorRT on u@board: ran the ONNX with ONNX Runtime on the board's CPU instead"]
    sent = {"model/m.tflite": b"a/m.tflite", "model/m.tflite.contract.json": b"a/m.tflite.contract.json"}
    assert (_tree(Path(w1)), _tree(Path(w2)), _tree(Path(w3))) == (sent, sent, {"model/m.onnx": b"b/m.onnx"})


def _folder_of(root: Path, sizes: dict[str, int]) -> Path:
    for name, n in sizes.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(bytes([len(name) % 256]) * n)
    return root


def test_a_data_folder_travels_whole_up_to_max_data_mb_and_maps_back(stand_in_board, tmp_path, monkeypatch):
    """test_agent_over_ssh_matches_host / test_unlabeled_photos_over_ssh_match_the_host /
    test_a_relative_data_folder_maps_back_to_the_hosts_paths: --data and --unlabeled each travel whole into
    their folder of the work dir while their files weigh at most max_data_mb (10^6 bytes a MB), and each
    path the board reports maps back to the same file here, by its absolute path."""
    monkeypatch.chdir(tmp_path)
    data = _folder_of(tmp_path / "test set", {"rust/1.png": 400_000, "healthy leaf/a b.jpg": 600_000})
    field = _folder_of(tmp_path / "field", {"x.jpg": 10, "deep/er/y.png": 20})
    request = AgentRequest(model="m.tflite", data="test set", unlabeled=str(field))
    log: list[str] = []
    with JetsonDevice(host="u@board", max_data_mb=1, log=log.append) as d:
        work = _work(d, stand_in_board)
        notes: list[str] = []
        got = (d._stage_data(Path("test set"), work, notes, "data"), d._stage_data(field, work, notes, "unlabeled"))
    assert got == ("data", "unlabeled") and notes == [] and log == []
    assert _tree(Path(work)) == {**{f"data/{k}": v for k, v in _tree(data).items()},
                                 **{f"unlabeled/{k}": v for k, v in _tree(field).items()}}
    assert sorted(_tree(Path(work))) == ["data/healthy leaf/a b.jpg", "data/rust/1.png",
                                         "unlabeled/deep/er/y.png", "unlabeled/x.jpg"]
    assert [local_path(p, request) for p in sorted(_tree(Path(work)))] == [
        str(data / "healthy leaf" / "a b.jpg"), str(data / "rust" / "1.png"),
        str(field / "deep" / "er" / "y.png"), str(field / "x.jpg")]


def test_a_data_folder_over_max_data_mb_is_not_sent_and_a_note_says_so(stand_in_board, tmp_path):
    """The same tests' rule past the limit: one byte over max_data_mb and the folder is not sent; one note
    (also logged) says how large it is, the limit, and what the board will not do without it."""
    data = _folder_of(tmp_path / "data", {"rust/1.png": 400_000, "healthy/2.png": 600_001})
    field = _folder_of(tmp_path / "field", {"x.jpg": 2_400_000, "y/z.png": 100_001})
    log: list[str] = []
    with JetsonDevice(host="u@board", max_data_mb=1, log=log.append) as d:
        work = _work(d, stand_in_board)
        notes: list[str] = []
        got = (d._stage_data(data, work, notes, "data"), d._stage_data(field, work, notes, "unlabeled"))
    assert got == (None, None)
    assert notes == log == ["--data is 1 MB (> 1 MB): not sent, no accuracy on the board",
                            "--unlabeled is 3 MB (> 1 MB): not sent, no changes counted on the board"]
    assert list(Path(work).iterdir()) == []


# ------------------------------------------ camera frames (shadows test_android.py's Kotlin frame check)
def _frame_by_definition(plane: bytes, width: int, height: int, row_stride: int, pixel_stride: int) -> np.ndarray:
    """Pixel (x, y) starts at byte y * row_stride + x * pixel_stride, R then G then B; the rest is dropped."""
    return np.array([[[plane[y * row_stride + x * pixel_stride + c] for c in range(3)] for x in range(width)]
                     for y in range(height)], np.uint8)


def _turned_clockwise_by_definition(img: np.ndarray, degrees: int) -> np.ndarray:
    """A quarter turn clockwise: the new row i is the old column i read from the bottom up."""
    for _ in range(degrees // 90):
        h, w = img.shape[:2]
        img = np.array([[img[h - 1 - j, i] for j in range(h)] for i in range(w)], np.uint8)
    return img


def test_an_rgba_camera_plane_with_row_padding_becomes_its_rgb_image():
    """test_frame_conversion_and_rotation (RgbImage.fromRgba): the reference the Kotlin is held to keeps
    each row's pixels, drops each row's padding and each pixel's alpha, and reads a last row cut short
    after its last pixel; as load_image drops the alpha of an RGBA picture."""
    h, w, row_stride = 3, 2, 2 * 4 + 5
    plane = bytes(range(1, row_stride * (h - 1) + w * 4 + 1))          # 1, 2, 3, ...: every byte its own
    got = H.frame_rgb(plane, w, h, row_stride, 4)
    assert got.tolist() == [[[1, 2, 3], [5, 6, 7]], [[14, 15, 16], [18, 19, 20]], [[27, 28, 29], [31, 32, 33]]]
    rng = np.random.default_rng(3)
    for h, w, row_stride in ((5, 7, 7 * 4 + 12), (4, 3, 12), (1, 9, 9 * 4 + 64)):
        plane = rng.integers(0, 256, row_stride * (h - 1) + w * 4, dtype=np.uint8).tobytes()
        expected = _frame_by_definition(plane, w, h, row_stride, 4)
        assert np.array_equal(H.frame_rgb(plane, w, h, row_stride, 4), expected), (h, w, row_stride)
        rows = np.frombuffer(plane + bytes(row_stride - w * 4), np.uint8).reshape(h, row_stride)[:, : w * 4]
        assert np.array_equal(np.asarray(Image.fromarray(rows.reshape(h, w, 4), "RGBA").convert("RGB")), expected)


def test_a_frame_turns_clockwise_by_its_rotation_degrees(tmp_path):
    """test_frame_conversion_and_rotation (RgbImage.rotatedClockwise): 90 turns the image a quarter
    clockwise (what the camera's rotationDegrees asks for to stand it upright), 180 a half, 270 three
    quarters; the same turns load_image applies for the EXIF orientations 6, 3 and 8."""
    img = np.array([[1, 2, 3], [4, 5, 6]], np.uint8)[..., None].repeat(3, axis=2)
    img[..., 1] += 10
    img[..., 2] += 20
    turned = {d: H.rotated_clockwise(img, d)[..., 0].tolist() for d in (0, 90, 180, 270)}
    assert turned == {0: [[1, 2, 3], [4, 5, 6]], 90: [[4, 1], [5, 2], [6, 3]], 180: [[6, 5, 4], [3, 2, 1]],
                      270: [[3, 6], [2, 5], [1, 4]]}
    assert all(np.array_equal(H.rotated_clockwise(img, d)[..., 2], H.rotated_clockwise(img, d)[..., 0] + 20)
               for d in (0, 90, 180, 270))                           # channels stay with their pixel
    rgb = np.random.default_rng(3).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for d, orientation in ((0, 1), (90, 6), (180, 3), (270, 8)):
        expected = _turned_clockwise_by_definition(rgb, d)
        assert np.array_equal(H.rotated_clockwise(rgb, d), expected), d
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(rgb).save(tmp_path / f"{d}.png", exif=exif)
        assert np.array_equal(load_image(tmp_path / f"{d}.png"), expected), d
