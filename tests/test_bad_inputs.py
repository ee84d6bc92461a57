"""Hostile and broken inputs: each one gets a one-line `Error:` and a non-zero exit, never a traceback
and never a PASS, and leaves what was already written byte for byte as it was.

Kinds: model, contract, data, recipe, device, output path, interruption. Fast: the tiny INT8 model
(32x32, 3 classes) and a few generated images; the CLI in-process except where a real signal is sent.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from devices_helpers import LABELS, image_folder
from edgecnn.core.metadata import strip_archive
from edgecnn.core.contract import Contract
from edgecnn.cli import main

QUICK = ["--runs", "3", "--warmup", "0", "--min-seconds", "0", "--threads", "1"]


# ------------------------------------------------------------------ fixtures: a good model, data, run
@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    from tiny_model import tiny_int8_tflite
    w = tmp_path_factory.mktemp("bad-inputs")
    (w / "good.tflite").write_bytes(tiny_int8_tflite(True, LABELS))
    (w / "flat.tflite").write_bytes(strip_archive(tiny_int8_tflite(True, LABELS)))
    image_folder(w / "data", per_class=2)
    (w / "previous.json").write_text('{"kept": true}\n')
    return w


def _snapshot(*roots: Path) -> dict:
    out = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*")) if Path(root).is_dir() else [Path(root)]:
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def refused(args, *, code: int = 2, says: str | None = None, keep=()) -> str:
    """Run the CLI; assert exit `code`, exactly one `Error:` line and it last, no traceback, and every
    file under `keep` unchanged. Returns the error line."""
    before = _snapshot(*keep)
    r = CliRunner().invoke(main, [str(a) for a in args])
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output and "PASSED" not in r.output, r.output
    errors = [ln for ln in err if ln.startswith("Error:")]
    assert len(errors) == 1 and err[-1] == errors[0], r.stderr
    if says:
        assert says in errors[0], errors[0]
    assert _snapshot(*keep) == before, "an earlier file was changed"
    return errors[0]


def _with_contract(work: Path, name: str, edit) -> Path:
    """The tiny model with an edited contract embedded (or, when edit returns text, as a sidecar)."""
    c = json.loads(Contract.from_json(zipfile.ZipFile(work / "good.tflite").read("contract.json")).to_json())
    out = edit(c)
    m = work / name
    if isinstance(out, str):
        m.write_bytes((work / "flat.tflite").read_bytes())
        (work / f"{name}.contract.json").write_text(out)
    else:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("contract.json", json.dumps(c))
        m.write_bytes((work / "flat.tflite").read_bytes() + buf.getvalue())
    return m


def _set(path, value):
    def edit(c):
        node = c
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return edit


# ------------------------------------------------------------------ model files
@pytest.mark.parametrize("content,says", [     # ids: the test's name must be the same at every collection
    pytest.param(b"", "not a loadable TFLite model", id="empty"),
    pytest.param(np.random.default_rng(0).bytes(4096), "not a loadable TFLite model", id="random-4096"),
    pytest.param(b"TFL3" * 10, "not a loadable TFLite model", id="tfl3-magic"),
])
def test_model_bytes(work, content, says):
    m = work / "bad.tflite"
    m.write_bytes(content)
    refused(["bench", m, *QUICK], says=says, keep=[work / "good.tflite"])


def test_model_truncated(work):
    m = work / "cut.tflite"
    data = (work / "flat.tflite").read_bytes()
    m.write_bytes(data[: len(data) // 3])
    refused(["bench", m, *QUICK], says="not a loadable TFLite model")


@pytest.mark.parametrize("name,says", [
    ("model.pb", "not a benchable model"),
    ("missing.tflite", "no such model or run directory"),
    ("garbage.onnx", "cannot be loaded as ONNX"),
])
def test_model_names_and_formats(work, name, says):
    p = work / name
    if name != "missing.tflite":
        p.write_bytes(b"\x08\x01garbage")
    refused(["bench", p, *QUICK], says=says)


def test_a_folder_that_is_not_a_run(work):
    (work / "notarun").mkdir(exist_ok=True)
    refused(["bench", work / "notarun", *QUICK], says="no preprocessing contract")


# ------------------------------------------------------------------ contracts carried by a model
@pytest.mark.parametrize("edit,says", [
    (_set(["std"], [float("nan")] * 3), "std must be finite"),
    (_set(["mean"], [1e30] * 3), "mean must be finite numbers within"),
    (_set(["std"], [0, 0, 0]), "std must be finite numbers from 0.001"),
    (_set(["labels"], ["../../x", "b", "c"]), "contains a path separator"),
    (_set(["labels"], ["a\nb", "c", "d"]), "contains a control character"),
    (_set(["labels"], "abc"), "labels must be a list of strings"),
    (_set(["labels"], [f"c{i}" for i in range(20000)]), "more than 10000"),
    (_set(["model", "recipe"], 5), "model.recipe must be a string"),
    (_set(["input_size"], [0, 0]), "input_size must be [height, width] of 8 to 4096 px"),
    (_set(["input_size"], [100000, 100000]), "input_size must be [height, width] of 8 to 4096 px"),
    (_set(["input_size"], ["32", "32"]), "input_size must be a list of 2 integers"),
    (_set(["colour"], "red"), "unknown field(s) colour"),
    (_set(["schema"], "edgecnn.contract/9"), "schema is"),
    (_set(["input_quantization", "scale"], -1.0), "input_quantization.scale must be a positive number"),
    (_set(["input_quantization", "zero_point"], 0.5), "zero_point must be an integer"),
])
def test_embedded_contract_fields(work, edit, says):
    m = _with_contract(work, "edited.tflite", edit)
    refused(["bench", m, "--data", work / "data", *QUICK], says=says, keep=[work / "data"])


def test_sidecar_contract_not_json(work):
    m = _with_contract(work, "side.tflite", lambda c: "{not json")
    refused(["bench", m, "--data", work / "data", *QUICK], says="not valid JSON")


def test_sidecar_contract_with_nan_std_never_passes(work):
    """Before: 10% accuracy on a model that gets much more, and PASSED."""
    m = _with_contract(work, "nan.tflite", lambda c: json.dumps({**c, "std": [float("nan")] * 3}))
    refused(["bench", m, "--data", work / "data", *QUICK], says="std must be finite")


def test_contract_that_disagrees_with_the_model(work):
    m = _with_contract(work, "big.tflite", _set(["input_size"], [64, 64]))
    refused(["bench", m, "--data", work / "data", *QUICK], says="model input is 32x32 but its contract says 64x64")
    m = _with_contract(work, "four.tflite", _set(["labels"], ["a", "b", "c", "d"]))
    refused(["bench", m, "--data", work / "data", *QUICK], says="lists 4 labels")


def _zip_with(entry_bytes: bytes, *, method=zipfile.ZIP_DEFLATED, patch=None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        z.writestr("contract.json", entry_bytes)
    data = bytearray(buf.getvalue())
    if patch:
        patch(data)
    return bytes(data)


def _patch_headers(offset_in_header: int, fmt: str, value):
    """Set a field in both the local header (PK\\3\\4) and the central directory entry (PK\\1\\2)."""
    def patch(data: bytearray):
        local = data.find(b"PK\x03\x04")
        central = data.find(b"PK\x01\x02")
        struct.pack_into(fmt, data, local + offset_in_header, value)
        struct.pack_into(fmt, data, central + offset_in_header + 2, value)   # central header has +2 bytes
    return patch


@pytest.mark.parametrize("archive,says", [
    (lambda: _zip_with(b" " * (2 << 20)), "more than a contract can be"),
    (lambda: _zip_with(b"{}", patch=_patch_headers(6, "<H", 1)), "encrypted"),
    (lambda: _zip_with(b"{}", patch=_patch_headers(8, "<H", 99)), "cannot be read"),
    (lambda: _zip_with(b'{"schema": "x"}' * 10, method=zipfile.ZIP_STORED,
                       patch=_patch_headers(14, "<I", 0xDEADBEEF)), "cannot be read"),
])
def test_appended_archive_problems(work, archive, says):
    m = work / "zip.tflite"
    m.write_bytes((work / "flat.tflite").read_bytes() + archive())
    refused(["bench", m, "--data", work / "data", *QUICK], says=says)


def test_a_600mb_deflated_contract_is_refused_from_its_header(work):
    """A zip bomb: refused by the size its header declares, before anything is inflated."""
    m = work / "bomb.tflite"
    raw = zipfile.ZipInfo("contract.json")
    raw.compress_type = zipfile.ZIP_DEFLATED
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z, z.open(raw, "w", force_zip64=True) as f:
        chunk = b"\0" * (1 << 20)
        for _ in range(600):
            f.write(chunk)
    m.write_bytes((work / "flat.tflite").read_bytes() + buf.getvalue())
    t0 = time.perf_counter()
    refused(["bench", m, "--data", work / "data", *QUICK], says="more than a contract can be")
    assert time.perf_counter() - t0 < 20


# ------------------------------------------------------------------ data folders
def _data_case(work: Path, kind: str) -> Path:
    d = work / f"data-{kind}"
    shutil.rmtree(d, ignore_errors=True)
    if kind == "file":
        d.write_text("x") if not d.exists() else None
        return d
    if kind == "flat":
        d.mkdir()
        Image.new("RGB", (8, 8)).save(d / "loose.png")
    elif kind == "unknown-class":
        image_folder(d, per_class=1)
        (d / "zebra").mkdir()
        Image.new("RGB", (8, 8)).save(d / "zebra" / "z.png")
    elif kind == "unreadable":
        for label in LABELS:
            (d / label).mkdir(parents=True)
            (d / label / "a.jpg").write_text("not a jpeg")
    elif kind == "hidden-only":
        for label in LABELS:
            (d / label / ".ipynb_checkpoints").mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(d / label / ".ipynb_checkpoints" / "a.png")
    return d


@pytest.mark.parametrize("kind,says", [
    ("missing", "no such folder"),
    ("file", "no such folder"),
    ("flat", "no class subfolders"),
    ("unknown-class", "match no label of the model"),
    ("unreadable", "none of its 3 images could be read"),
    ("hidden-only", "no images in its class folders"),
])
def test_data_folders(work, kind, says):
    d = _data_case(work, kind)
    refused(["bench", work / "good.tflite", "--data", d, *QUICK], says=says, keep=[work / "good.tflite"])


def test_images_in_hidden_folders_are_never_training_data(tmp_path):
    from edgecnn import data as D
    root = tmp_path / "d"
    for c in ("a", "b"):
        for i in range(3):
            (root / c).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (i * 60, 0, 0)).save(root / c / f"{i}.png")
        (root / c / ".ipynb_checkpoints").mkdir()
        Image.new("RGB", (8, 8)).save(root / c / ".ipynb_checkpoints" / "x-checkpoint.png")
        (root / c / "__MACOSX").mkdir()
        Image.new("RGB", (8, 8)).save(root / c / "__MACOSX" / "y.png")
    ds = D.scan(root, val_fraction=0.34, progress=False)
    assert len(ds.train) + len(ds.val) == 6


def test_16_bit_and_32_bit_images_by_their_bit_depth(tmp_path):
    from edgecnn.core.contract import ImageError, load_image
    dark = tmp_path / "dark16.png"
    Image.fromarray(np.full((4, 4), 200, np.uint16)).save(dark)
    assert load_image(dark).max() == 1          # 200 of 65535, not 200 of 255
    bright = tmp_path / "bright16.png"
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(bright)
    assert load_image(bright).min() == 255
    i32 = tmp_path / "i32.tif"
    Image.fromarray(np.full((4, 4), 70000, np.int32)).save(i32)
    with pytest.raises(ImageError, match="pixel mode I .32-bit integer"):
        load_image(i32)


# ------------------------------------------------------------------ recipes
@pytest.mark.parametrize("text,says", [
    (b"name: x\nimage_size: 96\nimage_size: 128\n", "duplicate key 'image_size'"),
    (b"training:\n  reduce_lr:\n    min_lr: .inf\n", "min_lr: Input should be a finite number"),
    (b"training:\n  early_stopping:\n    patience: 1e12\n", "patience: Input should be a valid integer"),
    (b'augmentation:\n  horizontal_flip: "yes"\n', "horizontal_flip: Input should be a valid boolean"),
    (b"image_size: '96'\n", "image_size: Input should be a valid integer"),
    (b"description: caf\xe9\n", "not UTF-8 text"),
    (b"!!python/object:os.system {}\n", "not valid YAML"),
    (b"- a\n- b\n", "expected a mapping"),
    (b"imagesize: 96\n", "imagesize: unknown key"),
    (b"training:\n  head:\n    top_blocks: 17\n", "top_blocks: Input should be less than or equal to 16"),
    (b"training:\n  head:\n    schedule: linear\n", "schedule: Input should be 'plateau' or 'cosine'"),
    (b"? [a, b]\n: 1\n", "a key must be a plain name, not a list or mapping (line 1)"),   # was a TypeError
])
def test_recipe_files(tmp_path, text, says):
    p = tmp_path / "r.yaml"
    p.write_bytes(text)
    refused(["train", "--recipe", p, "--data", tmp_path, "--out", tmp_path / "out"], says=says)
    assert not (tmp_path / "out").exists()
    refused(["recipes", "show", p], says=says)


def test_unknown_recipe_name(tmp_path):
    refused(["train", "--recipe", "nosuch", "--data", tmp_path, "--out", tmp_path / "o"], says="unknown recipe")


# ------------------------------------------------------------------ devices
@pytest.mark.parametrize("args,says", [
    (["--device", "nosuch"], "unknown device 'nosuch'"),
    (["--device", "jetson"], "needs a host"),
    (["--device", "jetson", "--host", "-oProxyCommand=touch /tmp/x"], "not a host name"),
    (["--device", "phone-emulated", "--host", "a@b"], "does not apply to --device phone-emulated"),
    (["--device", "jetson:host=a@b,port=99999"], "port must be a whole number from 1 to 65535, got 99999"),
    (["--device", "jetson:host=-oProxyCommand=x"], "not a host name"),
    (["--cpus", "a,b"], "comma-separated CPU ids"),
    (["--max-slowdown", "5"], "needs --baseline"),
])
def test_device_options(work, args, says):
    refused(["bench", work / "good.tflite", *QUICK, *args], says=says)


@pytest.mark.needs_tools("adb")
def test_a_phone_without_the_benchmark_tool(work):
    """With adb present the phone needs LiteRT's benchmark_model; without adb that is said first (the case
    used to fail instead of skipping where adb is missing)."""
    refused(["bench", work / "good.tflite", *QUICK, "--device", "phone"], says="needs LiteRT's benchmark tool")


def test_baseline_on_a_device_that_cannot(work):
    refused(["bench", work / "good.tflite", *QUICK, "--device", "phone-emulated", "--baseline", work / "good.tflite"],
            says="devices that can: host, jetson")


@pytest.mark.needs_tools("ssh-client")
def test_unreachable_board_is_one_line(work):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused(["bench", work / "good.tflite", *QUICK, "--device", "jetson", "--host", "nobody@127.0.0.1",
             "--port", port, "--timeout", "30"], says="cannot reach")


# ------------------------------------------------------------------ output paths
@pytest.mark.parametrize("target,says", [
    ("/proc/edgecnn-x.json", "cannot write /proc/edgecnn-x.json"),
    ("{work}/no/such/folder/b.json", "no folder"),
    ("{work}", "is a directory"),
])
def test_json_output_paths(work, target, says):
    refused(["bench", work / "good.tflite", *QUICK, "--json", target.format(work=work)], says=says,
            keep=[work / "previous.json"])


def test_markdown_output_path(work):
    refused(["bench", work / "good.tflite", *QUICK, "--markdown", "/proc/x.md"], says="cannot write")


def test_out_that_is_a_file(work, tmp_path):
    f = tmp_path / "file"
    f.write_text("mine")
    refused(["train", "--recipe", "products", "--data", work / "data", "--out", f], says="is a file",
            keep=[f])


def test_an_existing_run_is_never_overwritten_by_accident(exported_run, work):
    refused(["train", "--recipe", "products", "--data", work / "data", "--out", exported_run],
            says="--overwrite", keep=[exported_run])


def test_written_files_have_the_users_permissions(exported_run, tmp_path):
    out = tmp_path / "b.json"
    old = os.umask(0o022)
    try:
        r = CliRunner().invoke(main, ["bench", str(exported_run / "export" / "model_int8.tflite"), *QUICK,
                                      "--json", str(out)])
    finally:
        os.umask(old)
    assert r.exit_code == 0, r.output
    assert out.stat().st_mode & 0o777 == 0o644
    for p in (exported_run / "metrics.json", exported_run / "export" / "model_int8.tflite"):
        assert p.stat().st_mode & 0o777 == 0o644, p
    assert exported_run.stat().st_mode & 0o777 == 0o755


# ------------------------------------------------------------------ interruption
def _terminal_sigint() -> None:
    """In the child: SIGINT handled as in a terminal. A shell without job control starts background
    commands with SIGINT ignored, and Python then keeps it ignored: Ctrl-C could not be tested so."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _importable_here() -> dict:
    """The environment for a `python -m edgecnn.cli` run from another folder: the edgecnn under test
    importable whether or not it is installed."""
    import edgecnn
    root = str(Path(edgecnn.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))}


@pytest.mark.slow                     # the CLI end to end in a process of its own, a real signal
def test_ctrl_c_during_bench_writes_nothing(work):
    """A real SIGINT while the agent runs: exit 130, one line, the previous JSON untouched."""
    out = work / "previous.json"
    before = out.read_bytes()
    p = subprocess.Popen([sys.executable, "-m", "edgecnn.cli", "bench", str(work / "good.tflite"), "--runs", "100000",
                          "--min-seconds", "60", "--json", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=work, preexec_fn=_terminal_sigint, env=_importable_here())
    time.sleep(4)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "Aborted."
    assert out.read_bytes() == before and not list(work.glob(".tmp-*"))


def test_a_killed_training_leaves_the_previous_run(exported_run, products_subset, tmp_path):
    """SIGKILL in the middle of an --overwrite training: the old run is still whole."""
    run = tmp_path / "run"
    shutil.copytree(exported_run, run, symlinks=True)
    before = _snapshot(run)
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        p = subprocess.Popen([sys.executable, "-m", "edgecnn.cli", "train", "--recipe", "products", "--data",
                              str(products_subset), "--out", str(run), "--image-size", "96", "--quiet", "--overwrite"],
                             stdout=f, stderr=subprocess.STDOUT)
        deadline = time.time() + 240
        while "phase 1" not in log.read_text() and time.time() < deadline and p.poll() is None:
            time.sleep(0.3)
        p.kill()
        p.wait(timeout=60)
    assert _snapshot(run) == before


def test_a_native_abort_still_reaches_the_terminal(tmp_path):
    """The CLI's stderr filter forwards what a native library wrote just before it aborted the process."""
    code = ("from edgecnn.native import filter_native_stderr\nfilter_native_stderr()\nimport os\n"
            "os.write(2, b'I0000 00:00 harmless log line\\n')\n"
            "os.write(2, b'F native: check failed in the kernel\\n')\nos.abort()\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "check failed in the kernel" in p.stderr and "harmless log line" not in p.stderr


@pytest.fixture(scope="module")
def ssh_board(tmp_path_factory):
    from devices_helpers import Sshd, need_ssh
    need_ssh()
    s = Sshd(tmp_path_factory.mktemp("bad-inputs-sshd")).start()
    yield s
    s.stop()


def test_a_board_that_hangs_is_given_up_on(ssh_board, tmp_path):
    """A transfer into a FIFO nobody reads never returns on the board: the deadline ends it."""
    from edgecnn.core.errors import DeviceError
    from edgecnn.devices.ssh import SSHTransport
    fifo = tmp_path / "stuck"
    os.mkfifo(fifo)
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"x" * 1000)
    t = SSHTransport(ssh_board.user_host, port=ssh_board.port, identity=ssh_board.client_key,
                     known_hosts=ssh_board.known_hosts,
                     command_timeout=3)
    try:
        t0 = time.perf_counter()
        with pytest.raises(DeviceError, match=r"no answer within 3 s"):
            t.push(payload, str(fifo))   # `cat > fifo` blocks on open: no reader
        assert time.perf_counter() - t0 < 30
    finally:
        t.close()


@pytest.mark.slow
def test_an_agent_over_its_deadline_is_stopped_on_the_board(ssh_board, work):
    from edgecnn.core.protocol import AgentRequest
    from edgecnn.devices import get_device
    from edgecnn.core.errors import DeviceError
    opts = dict(host=ssh_board.user_host, port=ssh_board.port, identity=str(ssh_board.client_key),
                known_hosts=str(ssh_board.known_hosts), timeout=4)
    def agents() -> set[str]:     # agents on this machine (the loopback board); other runs may have their own
        ps = subprocess.run(["pgrep", "-f", "agent.pyz --request request.json"], capture_output=True, text=True)
        return set(ps.stdout.split())

    before = agents()
    with get_device("jetson", **opts) as dev:
        with pytest.raises(DeviceError, match=r"did not finish within 4 s and was stopped on the board"):
            dev.run(AgentRequest(model=str(work / "good.tflite"), runs=10_000_000, min_seconds=120.0))
        left = dev.transport.shell('ls -d "${TMPDIR:-/tmp}"/edgecnn.* 2>/dev/null | wc -l').stdout.strip()
    assert left == "0"                                  # the work folder is gone too
    time.sleep(1)
    stayed = {pid for pid in agents() - before if Path(f"/proc/{pid}/cwd").exists()
              and "(deleted)" in os.readlink(f"/proc/{pid}/cwd")}     # ours ran in the work folder, now removed
    assert not stayed, "the agent kept running on the board"


# ------------------------------------------------------------------ third round (issue 26)
TRAIN_QUICK = ["--recipe", "products", "--image-size", "32", "--epochs", "1", "--quiet", "--weights", "none"]


def test_a_recipe_without_a_name_whose_file_name_cannot_be_one(tmp_path):
    """Before: 'name: String should match pattern', about a key the user never wrote."""
    p = tmp_path / "my recipe.yaml"
    p.write_text("description: no name\nimage_size: 96\n")
    refused(["recipes", "show", p], says="it has no 'name:' and its file name 'my recipe' cannot stand in for one")


def test_yaml_merge_keys_work_in_recipes(tmp_path):
    """Before: valid YAML with a merge key (<<: *x) was 'not valid YAML'."""
    from edgecnn import recipe as R
    p = tmp_path / "merged.yaml"
    p.write_text("training:\n  head: &phase\n    epochs: 3\n    learning_rate: 0.001\n"
                 "  fine_tune:\n    <<: *phase\n    epochs: 4\n    unfreeze_layers: 10\n")
    r = R.load(p)
    assert (r.name, r.training.head.epochs, r.training.head.learning_rate) == ("merged", 3, 0.001)
    assert (r.training.fine_tune.epochs, r.training.fine_tune.learning_rate, r.training.fine_tune.unfreeze_layers) \
        == (4, 0.001, 10)
    p.write_text("name: a\nname: b\n")
    refused(["recipes", "show", p], says="duplicate key 'name' (line 2)")


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_seed_out_of_range(work, tmp_path, seed):
    """Before: a numpy traceback once training began."""
    refused(["train", *TRAIN_QUICK, "--data", work / "data", "--out", tmp_path / "out", "--seed", seed],
            says="Invalid value for '--seed'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("entry,says", [
    ("device: host\n    timeout: abc", "timeout must be a number of seconds from 1 to 86400, got 'abc'"),
    ("device: host\n    timeout: -5", "timeout must be a number of seconds from 1 to 86400, got -5"),
    ("device: jetson\n    host: a@b\n    port: abc", "port must be a whole number from 1 to 65535, got 'abc'"),
    ("device: jetson\n    host: a@b\n    port: 99999", "port must be a whole number from 1 to 65535, got 99999"),
    ("device: jetson\n    host: [a, b]", "host must be a text value, got ['a', 'b']"),
    ("device: phone-emulated\n    profile: [1, 2]", "profile must be a text value, got [1, 2]"),
])
def test_fleet_entries_with_values_of_the_wrong_kind(work, tmp_path, entry, says):
    """Before: four tracebacks, and a negative timeout or port 99999 reported as UNREACHABLE."""
    f = tmp_path / "fleet.yaml"
    f.write_text(f"devices:\n  - {entry}\n")
    refused(["bench", work / "good.tflite", *QUICK, "--fleet", f], says=f"fleet file fleet.yaml, device 1: {says}")


def test_a_class_folder_whose_name_cannot_be_a_label(work, tmp_path):
    """Before: a class named with a newline trained, exit 0, and every later step refused the run."""
    data = tmp_path / "data"
    shutil.copytree(work / "data", data)
    shutil.copytree(data / LABELS[0], data / "bad\nname")
    refused(["train", *TRAIN_QUICK, "--data", data, "--out", tmp_path / "out"],
            says="class folder 'bad\\nname' in", keep=[data])
    assert not (tmp_path / "out").exists()


def test_file_names_a_calibration_list_cannot_hold(work, tmp_path):
    """Before: a name with a tab or newline went into calibration.txt, which then could not be read back."""
    from edgecnn import data as D
    from edgecnn.core.errors import InputError
    from edgecnn.core.images import Sample
    from edgecnn.export.calibration import write_list
    data = tmp_path / "data"
    shutil.copytree(work / "data", data)
    for label, odd in zip(LABELS, ("tab\there.png", "new\nline.png", "fine.png")):
        shutil.copy(data / label / "img 0.png", data / label / odd)
    ds = D.scan(data, val_fraction=0.34, progress=False)
    assert sorted(Path(s["path"]).name for s in ds.skipped) == ["new\nline.png", "tab\there.png"]
    assert {s["reason"] for s in ds.skipped} == {
        "its name contains a control character (a tab or newline): rename the file to use it"}
    assert all("\t" not in str(s.path) and "\n" not in str(s.path) for s in ds.train + ds.val)
    with pytest.raises(InputError, match="cannot be recorded in calibration.txt; rename it"):
        write_list(tmp_path / "calibration.txt", data, [Sample(data / LABELS[0] / "tab\there.png", 0,
                                                               data / LABELS[0] / "tab\there.png")], "products", 0)
    assert not (tmp_path / "calibration.txt").exists()


def test_a_test_split_that_is_the_training_split(work, tmp_path):
    """Before: training accuracy was reported as test accuracy without a word."""
    from edgecnn import data as D
    root = tmp_path / "d"
    shutil.copytree(work / "data", root / "train")
    shutil.copytree(work / "data", root / "test")        # the same photos, other paths
    ds = D.scan(root, val_fraction=0.34, progress=False)
    assert ds.overlap == {"test": 6}
    assert ds.warnings() == ["warning: 6 of 6 test images are also in train/ (same content): the test "
                             "accuracy is training accuracy; keep test/ photos apart from train/"]
    shutil.rmtree(root / "test" / LABELS[0])
    image_folder(root / "other", per_class=1, size=24)
    shutil.copytree(root / "other" / LABELS[0], root / "test" / LABELS[0])
    shutil.rmtree(root / "other")
    ds = D.scan(root, val_fraction=0.34, progress=False)
    assert ds.overlap == {"test": 4} and "4 of 5 test images" in ds.warnings()[0]
    assert "is inflated toward training accuracy" in ds.warnings()[0]


@pytest.mark.parametrize("name,model,precision", [("model_int8.tflite", "float", "fp32"),
                                                  ("model_fp32.tflite", "int8", "int8")])
def test_precision_is_read_from_the_tensors(work, tmp_path, name, model, precision):
    """Before: a float model renamed model_int8.tflite was benched and reported as INT8."""
    from tiny_model import tiny_float_tflite
    m = tmp_path / name
    m.write_bytes(tiny_float_tflite(LABELS) if model == "float" else (work / "good.tflite").read_bytes())
    out = tmp_path / "b.json"
    r = CliRunner().invoke(main, ["bench", str(m), *QUICK, "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert [rec["precision"] for rec in json.loads(out.read_text())["devices"][0]["records"]] == [precision]


@pytest.mark.parametrize("cpus", ["99", "0,99"])
def test_cpus_that_do_not_exist(work, cpus):
    """Before: 'I/O: Invalid argument (on the host)' for 99; 0,99 ran on CPU 0 without a word."""
    have = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    refused(["bench", work / "good.tflite", *QUICK, "--cpus", cpus],
            says=f"--cpus {cpus}: no CPU 99 here; this machine offers CPUs {have}")


def test_a_class_of_formats_edgecnn_does_not_read(work, tmp_path):
    """Before: 'no readable images', without naming the .heic files it skipped."""
    data = tmp_path / "data"
    shutil.copytree(work / "data", data)
    for f in (data / LABELS[1]).iterdir():
        f.rename(f.with_suffix(".heic"))
    refused(["train", *TRAIN_QUICK, "--data", data, "--out", tmp_path / "out"], keep=[data],
            says=f"empty class(es) in {data}: {LABELS[1]} (no readable images; it holds 2 .heic file(s), "
                 f"not a format edgecnn reads")


def _hand_made_run(root: Path, data: Path, model_bytes: bytes) -> Path:
    """A run as train leaves it, around a tiny Keras model: model.keras, recipe.json, contract.json
    with their provenance, metrics.json naming the data root."""
    from edgecnn import recipe as R
    from edgecnn.core.contract import Provenance
    from edgecnn.core.io import sha256_file
    from edgecnn.rundir import recipe_json
    run = root / "run"
    run.mkdir(parents=True)
    (run / "model.keras").write_bytes(model_bytes)
    (run / "recipe.json").write_text(recipe_json(R.load("products").with_overrides(image_size=32)))
    prov = Provenance(sha256_file(run / "model.keras"), sha256_file(run / "recipe.json"))
    (run / "contract.json").write_text(Contract(input_size=(32, 32), labels=LABELS, provenance=prov).to_json())
    (run / "metrics.json").write_text(json.dumps({"data": {"root": str(data)}}))
    return run


def test_a_truncated_model_keras_whose_hash_was_patched(work, tmp_path):
    """Before: 'File not found' for a model.keras that exists."""
    from tiny_model import tiny_keras_model
    tiny_keras_model().save(tmp_path / "whole.keras")
    whole = (tmp_path / "whole.keras").read_bytes()
    data = tmp_path / "data"
    shutil.copytree(work / "data", data / "test")
    run = _hand_made_run(tmp_path, data, whole[: len(whole) // 2])
    line = refused(["export", run, "--float"], keep=[run], says=f"{run / 'model.keras'}: not a loadable Keras "
                                                               f"model (not a whole .keras zip archive")
    assert "File not found" not in line and "truncated or damaged?" in line


def test_a_flipped_image_that_is_a_decompression_bomb(exported_run, tmp_path):
    """Before: `edgecnn report` died with a DecompressionBombError traceback."""
    run = tmp_path / "run"
    shutil.copytree(exported_run, run, symlinks=True)
    bomb = tmp_path / "bomb.jpg"
    Image.new("RGB", (8, 8)).save(bomb)
    data = bytearray(bomb.read_bytes())
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 30000, 30000)      # the frame header says 30000 x 30000
    bomb.write_bytes(bytes(data))
    rep_path = run / "export" / "export_report.json"
    rep = json.loads(rep_path.read_text())
    rep["artifacts"][0]["flips"] = [{"path": str(bomb), "label": "a", "reference": "a", "prediction": "b"}]
    rep_path.write_text(json.dumps(rep))
    r = CliRunner().invoke(main, ["report", str(run)])
    assert r.exit_code == 0 and r.exception is None, r.output
    assert "images whose prediction changed" in (run / "report.html").read_text()


def test_a_model_path_the_locale_cannot_decode(work, tmp_path):
    """Before: with PYTHONUTF8=0 and LC_ALL=C a non-ASCII model path was 'not a loadable TFLite model'."""
    m = tmp_path / "modèle.tflite"
    shutil.copy(work / "good.tflite", m)
    env = {**os.environ, "PYTHONUTF8": "0", "LC_ALL": "C", "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.run([sys.executable, "-m", "edgecnn.cli", "bench", str(m), *QUICK, "--data", str(work / "data")],
                       capture_output=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert b"PASSED" in p.stdout


def test_ctrl_c_during_export_leaves_no_report_of_replaced_files(exported_run, tmp_path):
    """Before: after a SIGINT, export_report.json kept the previous sha256 of a rewritten model_fp32.tflite."""
    run = tmp_path / "run"
    shutil.copytree(exported_run, run, symlinks=True)
    fp32 = run / "export" / "model_fp32.tflite"
    first = fp32.stat().st_ino
    p = subprocess.Popen([sys.executable, "-m", "edgecnn.cli", "export", str(run), "--float", "--int8"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_terminal_sigint,
                         env={**os.environ, "EDGECNN_CALIBRATION_DIR": str(tmp_path)})
    deadline = time.time() + 300
    while fp32.stat().st_ino == first and time.time() < deadline and p.poll() is None:
        time.sleep(0.02)
    assert fp32.stat().st_ino != first, "export never rewrote model_fp32.tflite"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    report = run / "export" / "export_report.json"
    if report.exists():      # only a whole export leaves a report; it names the files as they are
        for rec in json.loads(report.read_text())["artifacts"]:
            assert rec["sha256"] == hashlib.sha256((run / "export" / rec["artifact"]).read_bytes()).hexdigest()


def test_out_that_cannot_be_written_is_refused_before_training(work, tmp_path, monkeypatch):
    """Before: a read-only working directory was found out after the whole training (here /proc, which
    refuses root too)."""
    photos = work / "data"
    monkeypatch.chdir("/proc")
    refused(["train", *TRAIN_QUICK, "--data", photos, "--out", "runs/new"], keep=[photos], says="cannot write runs/new")
    refused(["demo", "--recipe", "products", "--data", photos, "--out", "runs/new"], keep=[photos],
            says="cannot write runs/new")


def test_bundle_into_assets_that_cannot_be_written_is_an_io_error(work, tmp_path):
    """Before: exit 1, the status of a failed budget. A write that fails (here: over the file size
    limit, which binds root too, unlike a read-only folder) is an I/O error: exit 2, one line."""
    import resource
    from android_helpers import ANDROID
    app = tmp_path / "android_demo"
    (app / "app" / "src" / "main").mkdir(parents=True)
    shutil.copy(ANDROID / "app" / "src" / "main" / "AndroidManifest.xml", app / "app" / "src" / "main")
    model = work / "good.tflite"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (model.stat().st_size // 2, hard))
    try:
        refused(["bundle", model, "--android", app], says="cannot write the app's assets", keep=[model])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    main_dir = app / "app" / "src" / "main"
    assert sorted(p.name for p in main_dir.iterdir()) == ["AndroidManifest.xml"]     # no assets, no staging left
