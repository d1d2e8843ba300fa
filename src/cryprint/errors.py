"""The errors cryprint raises for input a user can fix, and their exit codes.

Every error that reaches the CLI is a ``CryprintError``: the CLI prints its message (never a
traceback) and exits with its ``exit_code``. The codes are documented in the README.

A message that tells the user which option to change names the library's field, as a
``{placeholder}`` with ``fields={"threshold": FIELD}`` (or a value: ``fields={"tta": 5}``):
``str(error)`` words it as Python does (``threshold``, ``tta=5``), and the CLI words it with
its flags (``--threshold``, ``--tta 5``) through :meth:`CryprintError.worded`. The library never
needs to know a flag.

>>> str(ConfigError("{top} must be at least 1", fields={"top": FIELD}))
'top must be at least 1'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class _Field:
    def __repr__(self) -> str:
        return "FIELD"


# A field named without a value.
FIELD = _Field()
# How a field (and its value) is worded: (name, value or FIELD) -> text.
Wording = Callable[[str, object], str]


def python_wording(name: str, value: object) -> str:
    """A field as a Python caller writes it: ``threshold``, ``tta=5``."""
    return name if value is FIELD else f"{name}={value!r}"


class CryprintError(Exception):
    """Base class: a problem the user can act on. Exit code 1.

    Args:
        message: the message; with ``fields``, a template with a ``{name}`` for each field.
        fields: the options the message names, each with a value or :data:`FIELD`.
    """

    exit_code = 1

    def __init__(self, message: str = "", *, fields: Mapping[str, object] | None = None) -> None:
        self.template = message
        self.fields = dict(fields or {})
        super().__init__(self.worded(python_wording))

    def worded(self, wording: Wording) -> str:
        """The message with every field worded by ``wording`` (the CLI passes its flags)."""
        if not self.fields:
            return self.template
        # Only the named placeholders: any other brace (in a path, say) stays as it is.
        return _PLACEHOLDER.sub(
            lambda match: (
                wording(match[1], self.fields[match[1]]) if match[1] in self.fields else match[0]
            ),
            self.template,
        )


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
