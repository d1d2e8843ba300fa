"""Writing outputs safely: whole or not at all, never over what cryprint did not make.

- :func:`atomic_write` writes a file to a temporary sibling, fsyncs it and ``os.replace``-s it
  over the target (atomic on POSIX). On any failure (disk full included) the temporary file is
  removed, the earlier target is untouched, and an :class:`OutputError` names the path. Only a
  regular file (or nothing) is ever replaced: a device, FIFO, socket or folder at the target is
  refused, so ``--out /dev/null`` can never replace the system's ``/dev/null``. A symbolic link
  is followed: its target file is replaced and the link kept.
- New files and folders get the mode the umask gives (0644 and 0755 by default), like ``cp``;
  a replaced file keeps its mode.
- :func:`staging_folder` and :func:`replace_folder` do the same for a whole folder: it is
  written as a temporary sibling and swapped in at the end; an earlier folder is replaced only
  when it carries cryprint's marker for that kind of folder.
- :func:`folder_lock` makes a second writer of the same run folder, output folder or gallery
  fail at once, naming the process that holds it.

A process killed mid-write (SIGKILL, power loss) cannot remove its temporary file:
:func:`remove_stale_temporaries` does, when the folder is next written.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import IO, Any

from cryprint import __version__
from cryprint.errors import CryprintError, OutputError

_TEMPORARY_SUFFIX = ".tmp"


def _umask() -> int:
    # The only portable way to read the umask is to set it; put it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The mode a new file gets under the process's umask, as ``cp`` gives it (0644 under
    the usual 022)."""
    return 0o666 & ~_umask()


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def writable_target(path: Path | str) -> Path:
    """The file an output at ``path`` will replace: ``path`` itself, or the file a symbolic
    link there points to.

    Raises:
        OutputError: the target exists and is not a regular file (a folder, device, FIFO,
            socket), or its name cannot be checked (too long, a parent is not a folder).
    """
    path = Path(path)
    try:
        target = path.resolve() if path.is_symlink() else path
        mode = target.stat().st_mode
    except FileNotFoundError:
        return target
    except OSError as error:
        raise output_error(path, error) from error
    if not stat.S_ISREG(mode):
        raise OutputError(
            f"{path} is {_kind(mode)}; cryprint writes only regular files — give a file path"
        )
    return target


def atomic_write(path: Path | str, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(file)`` on a temporary binary file, then move it to ``path`` atomically.

    Returns ``path``. Raises :class:`OutputError` (see :func:`writable_target`), and whatever
    ``write`` raises, with nothing left behind.
    """
    path = Path(path)
    target = writable_target(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = target.stat().st_mode & 0o7777 if target.exists() else new_file_mode()
        handle, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=_TEMPORARY_SUFFIX, dir=target.parent
        )
    except OSError as error:
        raise output_error(path, error) from error
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fchmod(file.fileno(), mode)
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise output_error(path, error) from error
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temporaries(folder: Path | str, targets: Iterable[str] = ("*",)) -> list[Path]:
    """Delete the temporary files that atomic writes of ``targets`` (file names or glob patterns)
    in ``folder`` left when killed mid-way; return their paths. Only for a folder no other
    process is writing to (hold its :func:`folder_lock`)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = sorted(
        {path for target in targets for path in folder.glob(f".{target}.*{_TEMPORARY_SUFFIX}")}
    )
    for path in stale:
        if path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
    return stale


def atomic_write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda file: file.write(text.encode("utf-8")))


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda file: file.write(data))


def atomic_save_torch(obj: Any, path: Path | str) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch

    return atomic_write(path, lambda file: torch.save(obj, file))


@contextlib.contextmanager
def staging_folder(target: Path | str) -> Iterator[Path]:
    """A new empty folder beside ``target`` to assemble a folder output in; removed (with all
    it holds) when the block fails. Move it into place with :func:`replace_folder`."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Not mkdtemp: its 0700 mode would make the output unreadable to others.
        staging = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}{_TEMPORARY_SUFFIX}"
        staging.mkdir()
    except OSError as error:
        raise output_error(target, error) from error
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# Written into every folder output as it is moved into place: what cryprint wrote there. A
# folder is replaced only when it holds this mark and nothing else.
OUTPUT_MANIFEST = ".cryprint-output.json"
# What folder outputs of cryprint 0.1 (written before the manifest) held: such a folder, with its
# marker, is still recognised when every entry matches one of these.
_LEGACY_OUTPUTS = (
    "report.json", "scores.csv", "*.png", "embeddings_*.npz", "fusion.json", "*.yaml",
    "*.ckpt", "*.json", "README.md", "embedder.onnx", "cohort.npz",
)  # fmt: skip


def check_replaceable_folder(target: Path | str, marker: str, what: str) -> None:
    """Refuse to replace ``target`` unless it is missing, empty, or a folder cryprint wrote as
    ``what``: it holds cryprint's manifest (:data:`OUTPUT_MANIFEST`), which lists ``marker``,
    and nothing that the manifest does not list (a folder of cryprint 0.1: ``marker`` and only
    names its outputs had).

    Raises:
        OutputError: naming the folder, what is in it that cryprint did not write, and what to
            do instead.
    """
    target = Path(target)
    try:
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            raise OutputError(f"{target} exists and is not a folder; give a new folder's path")
        if not target.exists() or not any(target.iterdir()):
            return
        unknown = _not_written_by_cryprint(target, marker)
    except OSError as error:
        raise output_error(target, error) from error
    if unknown:
        shown = ", ".join(sorted(unknown)[:3]) + (" ..." if len(unknown) > 3 else "")
        raise OutputError(
            f"{target} holds what cryprint did not write as {what} ({shown}); nothing was "
            "changed — choose a new or empty folder"
        )


def _not_written_by_cryprint(folder: Path, marker: str) -> set[str]:
    """The entries of ``folder`` cryprint did not write there (all of them without a mark)."""
    entries = {entry.name for entry in folder.iterdir()}
    manifest = folder / OUTPUT_MANIFEST
    if manifest.is_file() and not manifest.is_symlink():
        try:
            listed = json.loads(manifest.read_text(encoding="utf-8")).get("files")
        except (OSError, ValueError, AttributeError, UnicodeDecodeError):
            listed = None
        if isinstance(listed, list) and marker in listed:
            return entries - set(map(str, listed)) - {OUTPUT_MANIFEST}
        return entries
    if marker not in entries or not _legacy_mark(folder / marker):
        return entries
    return {name for name in entries if not any(fnmatch(name, p) for p in _LEGACY_OUTPUTS)}


def _legacy_mark(path: Path) -> bool:
    """Whether a marker file of cryprint 0.1 is one: a JSON object cryprint signed."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(record, dict) and bool({"cryprint_version", "exported_with"} & set(record))


def replace_folder(staging: Path, target: Path, marker: str = "") -> None:
    """Move ``staging`` to ``target``, with cryprint's manifest of what it holds. An earlier
    ``target`` (checked beforehand with :func:`check_replaceable_folder`; checked again here,
    with ``marker``, when given) is set aside first and removed only once the new folder is in
    place; if the swap fails, the earlier folder is put back.

    Raises:
        OutputError: the folder cannot be written, or ``target`` gained what cryprint did not
            write since it was checked (then nothing is changed).
    """
    try:
        names = sorted(entry.name for entry in staging.iterdir())
        manifest = {"written_by": f"cryprint {__version__}", "files": names}
        atomic_write_text(staging / OUTPUT_MANIFEST, json.dumps(manifest, indent=2) + "\n")
        if not target.exists():
            os.replace(staging, target)
            return
        if marker and _not_written_by_cryprint(target, marker):
            shutil.rmtree(staging, ignore_errors=True)
            check_replaceable_folder(target, marker, "an output")  # raises, naming what is there
        retired = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.old"
        os.replace(target, retired)
        try:
            os.replace(staging, target)
        except OSError:
            os.replace(retired, target)
            raise
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise output_error(target, error) from error
    shutil.rmtree(retired, ignore_errors=True)


@contextlib.contextmanager
def folder_lock(folder: Path | str, what: str) -> Iterator[bool]:
    """Hold an exclusive OS lock (``flock``) on ``folder`` itself for the block; yields whether
    this call created the folder.

    The lock is on the folder's own file descriptor, so no lock file is left anywhere; the
    kernel releases it when the process ends, however it ends, so a killed run never leaves a
    stale lock. The folder is created when missing.

    Raises:
        OutputError: another process holds the lock (its pid named when the system tells), or
            the folder cannot be created or opened.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} exists and is not a folder; give a folder's path")
    try:
        created = _made_directory(folder)
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        raise output_error(folder, error) from error
    try:
        _lock(handle, folder, what)
        if not os.path.samestat(os.fstat(handle), os.stat(folder)):
            raise OutputError(f"{folder} was removed while it was being locked; try again")
        yield created
    finally:
        os.close(handle)


def check_not_locked(folder: Path | str, what: str) -> None:
    """Fail at once, as :func:`folder_lock` would, when another process holds ``folder``'s lock
    (nothing is created; the lock is taken and released) — for a check before slow work.

    Raises:
        OutputError: another process holds the lock.
    """
    try:
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return  # missing or not a folder: folder_lock itself will say
    try:
        _lock(handle, Path(folder), what)
    finally:
        os.close(handle)


def _lock(handle: int, folder: Path, what: str) -> None:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _lock_holder(os.fstat(handle))
        raise OutputError(
            f"{folder} is in use: another {what} ({holder}) is writing it; wait for it to "
            "finish or choose another folder"
        ) from None


def _made_directory(folder: Path) -> bool:
    """Create ``folder`` (and its parents) when missing; whether this call created it."""
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        return False
    return True


def _lock_holder(status: os.stat_result) -> str:
    """'process N' for the process holding an flock on the file with ``status`` (Linux's
    /proc/locks lists them), else 'another process'."""
    device = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return "another process"
    for line in lines:
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == device:
            return f"process {parts[4]}"
    return "another process"


def output_error(path: Path, error: OSError, what: str = "", on_full_disk: str = "") -> OutputError:
    """The :class:`OutputError` for an OS error writing ``path``: 'disk full' (with what to do,
    ``on_full_disk``), 'not writable', 'name too long' ... ``what`` says what was being done."""
    doing = f" ({what})" if what else ""
    if error.errno == errno.ENOSPC:
        advice = on_full_disk or "earlier outputs are intact"
        return OutputError(f"{path}: disk full, no space left on the device{doing}; {advice}")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"{path}: not writable{doing} ({error.strerror})")
    if error.errno == errno.ENAMETOOLONG:
        return OutputError(f"{path}: file name too long")
    if error.errno == errno.ENOTDIR:
        return OutputError(f"{path}: a part of the path is not a folder")
    return OutputError(f"{path}: could not be written{doing} ({error.strerror or error})")


def make_directory(path: Path) -> None:
    """Create ``path`` (and parents); OutputError when it cannot be a directory."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as error:
        raise OutputError(f"{path}: exists and is not a directory; choose another") from error
    except OSError as error:
        raise output_error(path, error, "cannot create the directory") from error


def read_json(path: Path | str, what: str, error: type[CryprintError]) -> Any:
    """The JSON value in ``path``, or ``error`` naming ``what`` the file is and why it could not
    be read (missing, unreadable, not UTF-8, not JSON)."""
    source = Path(path)
    if source.exists() and not source.is_file():  # a FIFO would block the read forever
        raise error(f"{what} {source} is not a regular file")
    try:
        return json.loads(source.read_text(encoding="utf-8"))
    except OSError as problem:
        raise error(f"could not read {what} {source}: {problem.strerror or problem}") from problem
    except (json.JSONDecodeError, UnicodeDecodeError) as problem:
        raise error(f"{what} {source} is not valid JSON: {problem}") from problem
