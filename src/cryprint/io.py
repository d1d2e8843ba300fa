"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Write to a temporary file in the same folder, flush and fsync it, then ``os.replace`` it over
the target (atomic on POSIX). On any failure (disk full included) the temporary file is removed,
the earlier target is untouched, and an :class:`OutputError` names the path. A process killed
mid-write (SIGKILL, power loss) cannot remove its temporary file: :func:`remove_stale_temporaries`
does, when the folder is next written.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from cryprint.errors import OutputError

_TEMPORARY_SUFFIX = ".tmp"


def atomic_write(path: Path | str, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(file)`` on a temporary binary file, then move it to ``path`` atomically."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=_TEMPORARY_SUFFIX, dir=path.parent
        )
    except OSError as error:
        raise _output_error(path, error) from error
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise _output_error(path, error) from error
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temporaries(folder: Path | str, targets: Iterable[str] = ("*",)) -> list[Path]:
    """Delete the temporary files that atomic writes of ``targets`` (file names or glob patterns)
    in ``folder`` left when killed mid-way; return their paths. Only for a folder no other
    process is writing to."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = sorted(
        {path for target in targets for path in folder.glob(f".{target}.*{_TEMPORARY_SUFFIX}")}
    )
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def atomic_write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda file: file.write(text.encode("utf-8")))


def atomic_save_torch(obj: Any, path: Path | str) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch

    return atomic_write(path, lambda file: torch.save(obj, file))


def _output_error(path: Path, error: OSError) -> OutputError:
    if error.errno == errno.ENOSPC:
        return OutputError(f"{path}: no space left on the device; earlier outputs are intact")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"{path}: not writable ({error.strerror})")
    return OutputError(f"{path}: could not be written ({error})")
