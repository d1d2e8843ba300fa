"""Unpack a zip archive safely and atomically: nothing outside the destination, no links or
special files, and never half an archive under its final names.

Every entry is checked before anything is written; the archive is unpacked into a hidden
sibling folder, and each top-level entry is then moved into place. :mod:`cryprint.data.download`
unpacks CryCeleb2023's ``audio.zip`` with it.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from cryprint.errors import DataError, OutputError
from cryprint.io import make_directory, output_error

_COPY_CHUNK_BYTES = 1 << 20


def extract_zip(zip_path: Path, dest: Path, *, progress: bool = False) -> list[Path]:
    """Unpack ``zip_path`` into ``dest`` safely and atomically.

    Every entry is checked before anything is written: entries that would land outside
    ``dest`` (absolute paths, ``..`` components, drive letters, backslashes), symlinks and other
    special files, encrypted or duplicate entries are refused. The archive is unpacked into the
    sibling ``dest/.{stem}.partial`` and each top-level entry is then moved into place,
    replacing what was there (so nothing stale from an older extraction survives). A partial
    directory left by an interrupted earlier run is removed first.

    Args:
        zip_path: the archive.
        dest: the directory to unpack into (created if missing).
        progress: show a progress bar (bytes unpacked) on stderr.

    Returns:
        The paths of the unpacked files (not directories) under ``dest``, in archive order.

    Raises:
        DataError: the archive is not a valid zip, is damaged, or holds an unsafe entry (named).
        OutputError: not enough free space, or ``dest`` cannot be written.
    """
    zip_path = Path(zip_path)
    dest = Path(dest)
    make_directory(dest)
    partial = dest / f".{zip_path.stem}.partial"
    replaced = dest / f".{zip_path.stem}.old"
    # Left by a run that was killed: never trust or reuse it.
    _remove_tree(partial)
    _remove_tree(replaced)
    if not zip_path.is_file():
        raise DataError(f"{zip_path}: file not found")
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = _checked_members(archive, zip_path, reserved={partial.name, replaced.name})
            _check_free_space(dest, zip_path, sum(info.file_size for info, _ in members))
            try:
                _write_members(archive, zip_path, members, partial, progress)
            except BaseException:
                # Also on Ctrl-C: an unpacked fraction of the data set is useless and large.
                _remove_tree(partial)
                raise
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise DataError(
            f"{zip_path}: not a valid or complete zip archive ({error}); delete it and run the "
            "download again"
        ) from error
    top_level = sorted({relative.parts[0] for _, relative in members})
    try:
        for name in top_level:
            _move_into_place(partial / name, dest / name, replaced)
    finally:
        _remove_tree(partial)
        _remove_tree(replaced)
    return [dest / relative for info, relative in members if not info.is_dir()]


def _checked_members(
    archive: zipfile.ZipFile, zip_path: Path, reserved: set[str]
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Every entry with its safe relative path; DataError naming the first unsafe entry."""
    members = []
    seen: set[PurePosixPath] = set()
    for info in archive.infolist():
        relative = PurePosixPath(info.filename)
        why = _unsafe_entry(info, relative, reserved) or (
            "listed twice" if relative in seen else None
        )
        if why is not None:
            raise _refusal(zip_path, info.filename, why)
        seen.add(relative)
        members.append((info, relative))
    directories = {parent for _, relative in members for parent in relative.parents}
    for info, relative in members:
        if not info.is_dir() and relative in directories:
            raise _refusal(
                zip_path, info.filename, "a file and also the directory of other entries"
            )
    return members


def _unsafe_entry(info: zipfile.ZipInfo, relative: PurePosixPath, reserved: set[str]) -> str | None:
    """Why an entry may not be unpacked, or None when it is safe."""
    name = info.filename
    file_type = stat.S_IFMT(info.external_attr >> 16)
    checks = (
        ("\\" in name, "backslash in the path (a Windows path separator)"),
        (":" in name, "':' in the path (a drive letter or stream name)"),
        (relative.is_absolute(), "absolute path"),
        (".." in relative.parts, "'..' in the path"),
        (not relative.parts, "empty path"),
        (bool(relative.parts) and relative.parts[0] in reserved, "name reserved for unpacking"),
        (stat.S_ISLNK(file_type), "symbolic link"),
        (
            bool(file_type) and not (stat.S_ISREG(file_type) or stat.S_ISDIR(file_type)),
            "not a regular file or directory",
        ),
        (bool(info.flag_bits & 0x1), "encrypted"),
    )
    return next((why for unsafe, why in checks if unsafe), None)


def _refusal(zip_path: Path, name: str, why: str) -> DataError:
    """DataError naming the unsafe entry ``name`` of ``zip_path``."""
    return DataError(
        f"{zip_path}: refusing entry '{name}': {why}; nothing was unpacked. The archive is not "
        "the published one: delete it and run the download again"
    )


def _check_free_space(dest: Path, zip_path: Path, needed: int) -> None:
    """Fail before unpacking when the declared sizes cannot fit (a zip bomb or a full disk).

    The declared sizes are an upper bound: zipfile never yields more than an entry's declared
    size (a lying archive fails its CRC check instead)."""
    free = shutil.disk_usage(dest).free
    if needed > free:
        raise OutputError(
            f"{dest}: unpacking {zip_path.name} needs {needed / 1e9:.2f} GB but only "
            f"{free / 1e9:.2f} GB are free; free some space or choose another directory"
        )


def _write_members(
    archive: zipfile.ZipFile,
    zip_path: Path,
    members: list[tuple[zipfile.ZipInfo, PurePosixPath]],
    partial: Path,
    progress: bool,
) -> None:
    """Write the checked members under ``partial`` (a fresh directory)."""
    total = sum(info.file_size for info, _ in members)
    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        desc=f"unpacking {zip_path.name}",
        disable=not progress,
    ) as bar:
        for info, relative in members:
            target = partial.joinpath(*relative.parts)
            try:
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                # "x": the directory is ours and fresh, so an existing name means a bug; never
                # follow or overwrite anything.
                with archive.open(info) as source, open(target, "xb") as sink:
                    shutil.copyfileobj(source, sink, _COPY_CHUNK_BYTES)
            except zipfile.BadZipFile as error:
                raise DataError(
                    f"{zip_path}: entry '{info.filename}' is damaged ({error}); delete the archive "
                    "and run the download again"
                ) from error
            except OSError as error:
                raise _output_error(target, error, f"cannot unpack {info.filename}") from error
            bar.update(info.file_size)


def _move_into_place(source: Path, target: Path, replaced: Path) -> None:
    """Replace ``target`` with ``source``; an existing ``target`` is moved aside into
    ``replaced`` first, because a directory cannot be renamed over a non-empty one."""
    try:
        if target.is_symlink() or target.exists():
            replaced.mkdir(exist_ok=True)
            os.replace(target, replaced / target.name)
        os.replace(source, target)
    except OSError as error:
        raise _output_error(target, error, "cannot move the unpacked files into place") from error


# --- small file-system helpers ----------------------------------------------------------------


# What to do when the disk fills up here.
ON_FULL_DISK = "free some space and try again (nothing half unpacked is kept)"


def _output_error(path: Path, error: OSError, what: str) -> OutputError:
    return output_error(
        path, error, what, "free some space and try again (nothing half unpacked is kept)"
    )


def _remove_tree(path: Path) -> None:
    """Remove a directory we own, if present."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
