"""Shared helpers for tests/test_android.py and tests/test_bundle.py.

- Finding the tools: a Kotlin 2.x compiler (``kotlinc``) and ``java``; the Android build tools
  from Debian (``aapt2``, ``zipalign``, ``apksigner``, ``keytool``, framework-res.apk).
  ``.ci/android-deps.sh`` installs them; kotlinc is looked for in ``$EDGECNN_KOTLINC``, in
  ``.ci/.tools/node_modules/kotlin-compiler/bin`` (where that script puts it), on ``PATH`` and in
  the global npm prefix, and must be version 2 or newer.
- Compiling the app's pure-Kotlin core with the JVM check program into one jar.
- A tiny, real full-integer INT8 TFLite classifier carrying a contract (built once per process).

Nothing here mocks a tool: a missing tool makes the caller skip with the reason returned.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
ANDROID = REPO / "android_demo"
CORE_DIR = ANDROID / "app" / "src" / "main" / "java" / "dev" / "edgecnn" / "demo" / "core"
JVMCHECK_DIR = ANDROID / "jvmcheck" / "src"
FRAMEWORK_RES = Path("/usr/share/android-framework-res/framework-res.apk")


# ------------------------------------------------------------------------------------ tools
def _kotlinc_version(exe: str) -> tuple[int, ...] | None:
    try:
        r = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"kotlinc-jvm (\d+)\.(\d+)\.(\d+)", r.stdout + r.stderr)
    return tuple(int(g) for g in m.groups()) if m else None


def kotlinc_candidates():
    """Possible Kotlin compilers, in order of preference (no check that they run)."""
    if os.environ.get("EDGECNN_KOTLINC"):
        yield os.environ["EDGECNN_KOTLINC"]
    yield str(REPO / ".ci" / ".tools" / "node_modules" / "kotlin-compiler" / "bin" / "kotlinc")
    if shutil.which("kotlinc"):
        yield shutil.which("kotlinc")
    npm = shutil.which("npm")
    if npm:
        try:
            root = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            root = ""
        if root:
            yield str(Path(root) / "kotlin-compiler" / "bin" / "kotlinc")


def _runnable(path: str) -> bool:
    return bool(path) and Path(path).is_file() and os.access(path, os.X_OK)


@functools.lru_cache(maxsize=None)
def find_kotlinc() -> tuple[str | None, str]:
    """(path to a Kotlin >= 2 compiler, or None; the version found, or why there is none)."""
    if not shutil.which("java"):
        return None, "no java on PATH (install a JDK 17+, see .ci/android-deps.sh)"
    seen: list[str] = []
    for c in kotlinc_candidates():
        if not _runnable(c) or c in seen:
            continue
        seen.append(c)
        v = _kotlinc_version(c)
        if v and v[0] >= 2:
            return c, ".".join(map(str, v))
    if seen:
        return None, f"kotlinc found ({', '.join(seen)}) but none is Kotlin 2.x; run .ci/android-deps.sh"
    return None, "no kotlinc (Kotlin 2.x compiler) found; run .ci/android-deps.sh (npm package kotlin-compiler)"


def android_build_tools() -> tuple[dict[str, str] | None, str]:
    """Paths of aapt2, zipalign, apksigner, keytool and framework-res.apk, or None and why."""
    tools = {}
    for name in ("aapt2", "zipalign", "apksigner", "keytool"):
        p = shutil.which(name)
        if not p:
            return None, f"{name} not found; run .ci/android-deps.sh (Debian: aapt zipalign apksigner, a JDK)"
        tools[name] = p
    if not FRAMEWORK_RES.is_file():
        return None, f"{FRAMEWORK_RES} not found; run .ci/android-deps.sh (Debian: android-framework-res)"
    tools["framework_res"] = str(FRAMEWORK_RES)
    return tools, "ok"


# ------------------------------------------------------------------------------------ kotlin
def kotlin_sources() -> list[Path]:
    return sorted(CORE_DIR.glob("*.kt")) + sorted(JVMCHECK_DIR.rglob("*.kt"))


def _jar_name(kotlinc: str) -> str:
    h = hashlib.sha256(kotlinc.encode())
    for src in kotlin_sources():
        h.update(src.name.encode())
        h.update(src.read_bytes())
    return f"core-check-{h.hexdigest()[:16]}.jar"


def core_check_jar(cache_dir: Path) -> tuple[Path | None, str]:
    """The core + JVM check program as a runnable jar (or None and why not).

    Built with the first Kotlin 2.x compiler found and kept in ``cache_dir`` under a name that
    hashes the compiler path and every source, so it is rebuilt only when a source changes.
    """
    if not shutil.which("java"):
        return None, "no java on PATH (install a JDK 17+, see .ci/android-deps.sh)"
    for c in kotlinc_candidates():                       # a jar built earlier: no compiler start
        if _runnable(c) and (cache_dir / _jar_name(c)).is_file():
            return cache_dir / _jar_name(c), "cached"
    kotlinc, why = find_kotlinc()
    if kotlinc is None:
        return None, why
    jar = cache_dir / _jar_name(kotlinc)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{jar.name}.tmp.jar"
    r = subprocess.run([kotlinc, *map(str, kotlin_sources()), "-include-runtime", "-d", str(tmp)],
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0 or not tmp.is_file():
        raise AssertionError(f"kotlinc failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    os.replace(tmp, jar)
    for old in cache_dir.glob("core-check-*.jar"):
        if old != jar:
            old.unlink(missing_ok=True)
    return jar, f"built with kotlinc {why}"


def run_jobs(jar: Path, jobs: list[list[str]], workdir: Path) -> str:
    """Runs the JVM check program on a list of jobs (see CoreCheck.kt); returns its stdout."""
    spec = workdir / "jobs.tsv"
    spec.write_text("".join("\t".join(map(str, j)) + "\n" for j in jobs), encoding="utf-8")
    r = subprocess.run(["java", "-jar", str(jar), str(spec)], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise AssertionError(f"core-check failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


# ------------------------------------------------------------------------------------ camera frames
# The Python reference that tests/test_android.py holds RgbImage.fromRgba and RgbImage.rotatedClockwise
# (core/Preprocess.kt, used by FrameAnalyzer.kt) to; tests/test_twins.py checks it from the definitions.
def frame_rgb(plane: bytes, width: int, height: int, row_stride: int, pixel_stride: int = 4):
    """A camera plane (`row_stride` bytes a row, the padding after each row's pixels, the last row possibly
    cut after its last pixel; `pixel_stride` bytes a pixel, R first) as HxWx3 RGB: padding and alpha dropped."""
    import numpy as np
    buf = np.frombuffer(plane, np.uint8)
    rows = [buf[y * row_stride: y * row_stride + width * pixel_stride] for y in range(height)]
    return np.stack(rows).reshape(height, width, pixel_stride)[..., :3]


def rotated_clockwise(rgb, degrees: int):
    """The HxWx3 image turned clockwise by 0, 90, 180 or 270 degrees (CameraX's rotationDegrees)."""
    import numpy as np
    return np.rot90(rgb, k=-degrees // 90)            # np.rot90 turns counter-clockwise for k > 0


# ------------------------------------------------------------------------------------ model
def tiny_int8_tflite(with_contract: bool = True) -> bytes:
    """A real full-integer INT8 classifier (32x32 RGB int8 in, 3 classes int8 out); see tiny_model."""
    from tiny_model import tiny_int8_tflite as build
    return build(with_contract)


def tensorflow_available() -> tuple[bool, str]:
    try:
        import tensorflow  # noqa: F401
        import ai_edge_litert  # noqa: F401
    except ImportError as e:
        return False, f"TensorFlow/LiteRT not installed ({e}); needed to build the test INT8 model"
    return True, "ok"
