#!/usr/bin/env bash
# Everything the project and its full test suite need on a fresh Debian machine:
# system tools (QEMU, debootstrap, adb, OpenSSH, aapt2/zipalign/apksigner, a JDK, Kotlin) and the
# pinned Python packages (with the test and docs groups). Idempotent. Needs root, or sudo, for apt-get.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO bash .ci/devices-deps.sh
bash .ci/android-deps.sh
python3 -m pip install --quiet --disable-pip-version-check -e ".[test,docs]"
