"""Ranges of options that reach a device both from the command line and from a fleet file: one
definition for Click's checks (cli.py) and the fleet file's (devices/base.py). No imports: cli.py reads
it at start-up."""

PORT_RANGE = (1, 65535)              # SSH port
TIMEOUT_RANGE_S = (1.0, 86400.0)     # deadline of one agent run on a device, in seconds
