#!/bin/sh
# System tools for the device tests (tests/test_devices_*.py, tests/test_board.py): QEMU user mode and
# debootstrap for phone-emulated and the stand-in Arm64 board (plus a C compiler and static libc for
# its 20-line QEMU launcher, util-linux for mount/setpriv), the adb client for phone, an OpenSSH server
# and client for jetson; Chromium and its WebDriver open the run's report page (tests/test_report.py).
# Run as root; idempotent (apt-get install skips what is already there).
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends qemu-user-static debootstrap adb openssh-server openssh-client \
  gcc libc6-dev util-linux mount \
  chromium chromium-driver \
  libgl1 libegl1 libgles2 libglib2.0-0 libx11-6 libxext6 libsm6 libice6   # MediaPipe and its OpenCV (test client)
mkdir -p /run/sshd
