"""Errors that the CLI turns into one clear line and an exit status (never a traceback)."""


class EdgecnnError(Exception):
    """A failure the user can act on. The CLI prints it in one line (after `label:`) and exits 1."""

    exit_code = 1
    label = "Error"


class InputError(EdgecnnError):
    """Bad input given by the user (files, folders, options): exit 2, like a usage error."""

    exit_code = 2


class BudgetError(EdgecnnError):
    """A deployment budget (size, accuracy drop, latency) does not hold: exit 1."""

    exit_code = 1


class InconclusiveError(EdgecnnError):
    """A budget the test images cannot decide either way (its interval straddles the limit): exit 3.
    A finding, not a failure: its line starts `INCONCLUSIVE:`, never `Error:`."""

    exit_code = 3
    label = "INCONCLUSIVE"


class DeviceError(EdgecnnError):
    """A device that cannot be reached or used (or an emulated one that cannot be built or started):
    exit 2, one line saying why."""

    exit_code = 2


class ConversionError(EdgecnnError):
    """A model that a converter or engine builder could not turn into an artifact: exit 1."""


class ArtifactError(InputError):
    """A model file that cannot be used as given (unknown format, damaged metadata, no contract): exit 2."""
