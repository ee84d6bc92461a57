"""Keep the native libraries' chatter (TensorFlow/absl/XNNPACK/converter logs written straight to
file descriptors 1 and 2) away from the user's terminal and from JSON output."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import sys
import tempfile
import time

_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog|[IW]\d{4} \d\d:\d\d:\d\d|I0000 |W0000 |"
    r"E0000 .*use_unbounded_threadpool|INFO: Created TensorFlow Lite|To enable the following instructions|"
    r".*rebuild TensorFlow with the appropriate compiler flags|.*oneDNN custom operations are on)")


@contextlib.contextmanager
def captured_output():
    """Send fd 1 and fd 2 to a temp file for the block (e.g. the TFLite converter's ~260 lines).

    Yields a function returning what was captured, for error messages.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        py_out, py_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = open(f.fileno(), "w", buffering=1, closefd=False,
                                       encoding="utf-8", errors="replace")

        def text() -> str:
            f.flush()
            f.seek(0)
            return f.read().decode("utf-8", "replace")
        try:
            yield text
        finally:
            try:
                sys.stdout.flush()
            except Exception:
                pass
            sys.stdout, sys.stderr = py_out, py_err
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def filter_native_stderr() -> None:
    """For the CLI process: Python keeps writing to the real stderr; native writes to fd 2 pass
    through a filter that drops the known harmless log lines and forwards everything else.

    The filter is a forked process, not a thread: when a native library aborts the CLI (SIGABRT,
    SIGSEGV), its last words are still in the pipe, and a thread would die with the process before
    forwarding them. The filter drains the pipe to its end whatever happens to the CLI.
    """
    if getattr(filter_native_stderr, "_done", False) or os.environ.get("EDGECNN_RAW_LOGS"):
        return
    filter_native_stderr._done = True
    sys.stderr.flush()
    real = os.dup(2)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # the filter process
        os.close(w)
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the CLI's to handle
        try:
            with os.fdopen(r, "rb") as src:
                for line in src:
                    if not _NOISE.match(line.decode("utf-8", "replace")):
                        os.write(real, line)
        finally:
            os._exit(0)
    os.close(r)
    sys.stderr = open(real, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    os.dup2(w, 2)
    os.close(w)
    atexit.register(_drain, pid, real)


def _drain(pid: int, real: int) -> None:
    """At exit: close our end of the pipe and give the filter a moment to forward what is left."""
    try:
        sys.stderr.flush()
        os.dup2(real, 2)
    except OSError:
        return
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:      # a child process still holding the pipe must not hang us
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.01)
