"""Arm64 emulation on this machine, in one place: the Debian userlands it runs (arm64: the phone's
sysroot and the board's installed root, the Arm cores they can be pinned to), the emulated phone's
Arm64 side (phone: the agent under QEMU user mode) and the stand-in board (standin: an Arm64 root
with its own sshd on loopback). The devices that use them (devices/emulated.py, devices/ssh.py) import
from here; nothing here imports a device.
"""
