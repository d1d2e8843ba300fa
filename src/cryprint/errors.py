"""The errors cryprint raises for input a user can fix, and their exit codes.

Every error that reaches the CLI is a ``CryprintError``: the CLI prints its message (never a
traceback) and exits with its ``exit_code``. The codes are documented in the README.
"""


class CryprintError(Exception):
    """Base class: a problem the user can act on. Exit code 1."""

    exit_code = 1


class DataError(CryprintError):
    """A data set, CSV, or its rows are missing or malformed. Exit code 3."""

    exit_code = 3


class AudioError(CryprintError):
    """An audio file is unreadable, empty, too short, or holds NaN/inf samples. Exit code 4."""

    exit_code = 4


class ModelError(CryprintError):
    """Model weights or a model folder are missing, unsafe, or do not match. Exit code 5."""

    exit_code = 5


class HubError(CryprintError):
    """The Hugging Face hub could not provide a file (gated, no login, offline). Exit code 6."""

    exit_code = 6


class OutputError(CryprintError):
    """An output could not be written (unwritable path, disk full). Exit code 7."""

    exit_code = 7


class CheckpointError(CryprintError):
    """A checkpoint is missing, truncated or fails its checksum. Exit code 8."""

    exit_code = 8


class ConfigError(CryprintError):
    """A configuration file or option is invalid (unknown key, bad value). Exit code 2."""

    exit_code = 2
