"""Read and validate a directory in the CryCeleb2023 layout (real or synthetic).

The layout (see ``shared/cryceleb-format.md``)::

    ROOT/metadata.csv          baby_id, period, duration, split, chronological_index,
                               file_name, file_id
    ROOT/dev_pairs.csv         baby_id_B, baby_id_D, id, label
    ROOT/test_pairs.csv        baby_id_B, baby_id_D, id [, label]
    ROOT/sample_submission.csv id, score
    ROOT/audio/{split}/{baby_id}/{period}/{baby_id}_{period}_{NNN}.wav

Identifiers (``baby_id``, ``chronological_index``) are read as strings, never numbers: ``0369``
must stay ``0369``. Every reader raises :class:`~cryprint.errors.DataError` naming the file and
the bad row instead of letting pandas or a later lookup fail obscurely.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pandas as pd

from cryprint.errors import DataError

METADATA_COLUMNS = (
    "baby_id",
    "period",
    "duration",
    "split",
    "chronological_index",
    "file_name",
    "file_id",
)
PAIRS_COLUMNS = ("baby_id_B", "baby_id_D", "id")
SUBMISSION_COLUMNS = ("id", "score")
PERIODS = ("B", "D")
SPLITS = ("train", "dev", "test")
PAIRS_FILES = {"dev": "dev_pairs.csv", "test": "test_pairs.csv"}


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read ``path`` with every column as a string and check ``columns`` are present."""
    try:
        found = path.is_file()
    except OSError as error:  # a name the system cannot look up (e.g. too long)
        raise DataError(f"{path}: file not found ({error.strerror})") from error
    if not found:
        raise DataError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        ValueError,
    ) as error:
        raise DataError(f"{path}: not a readable CSV file ({error})") from error
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; "
            f"found {', '.join(map(str, frame.columns))}"
        )
    return frame


def _bad_row(path: Path, frame: pd.DataFrame, mask: pd.Series, what: str) -> DataError:
    """A DataError naming the first offending row (1-based line number in the file, header = 1)."""
    index = int(mask.to_numpy().nonzero()[0][0])
    row = frame.iloc[index].to_dict()
    return DataError(f"{path}, line {index + 2}: {what}: {row}")


def _check_relative_path(path: Path, frame: pd.DataFrame, column: str) -> None:
    """File names from a CSV must stay inside the data directory (no absolute paths, no '..')."""
    unsafe = frame[column].map(
        lambda name: (
            name == ""
            or PurePosixPath(name).is_absolute()
            or "\\" in name
            or ".." in PurePosixPath(name).parts
            or (len(name) > 1 and name[1] == ":")
        )
    )
    if unsafe.any():
        raise _bad_row(
            path, frame, unsafe, f"'{column}' must be a relative path inside the data directory"
        )


def _is_file(path: Path) -> bool:
    """``path.is_file()``, but False (not an OSError) for a name the system cannot look up,
    e.g. a component over 255 bytes (ENAMETOOLONG)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _check_links_stay_inside(root: Path, path: Path, frame: pd.DataFrame) -> None:
    """Every listed file, links followed, must lie inside the data directory.

    A link in the data directory that leads out of it is refused like a ``..`` name. The one
    exception is ``ROOT/audio`` itself: linking the whole audio folder to another disk is a
    deliberate choice of the directory's owner, and files inside it are held to that folder.
    """
    bases = [root.resolve()]
    audio = root / "audio"
    if audio.is_symlink():
        bases.append(audio.resolve())

    def outside(name: str) -> bool:
        real = (root / name).resolve()
        return not any(real.is_relative_to(base) for base in bases)

    escaping = frame["file_name"].map(outside)
    if escaping.any():
        name = frame["file_name"][escaping].iloc[0]
        raise _bad_row(
            path,
            frame,
            escaping,
            f"{name} leads through a link to {(root / name).resolve()}, outside the data directory",
        )


def chronological_sort_key(index: pd.Series) -> pd.Series:
    """Sort key for ``chronological_index``: numeric when every value is a whole number (so an
    index written without zero-padding puts 2 before 10), the text itself otherwise."""
    if index.str.fullmatch(r"\d+").all():
        return index.astype(int)
    return index


def read_metadata(root: Path | str, check_files: bool = True) -> pd.DataFrame:
    """Read and validate ``ROOT/metadata.csv``.

    Args:
        root: the data directory (holds ``metadata.csv`` and ``audio/``).
        check_files: also check that every ``file_name`` exists under ``root``.

    Returns:
        The metadata with string columns, except ``duration`` as float seconds, sorted by
        split, baby_id, period and chronological_index (see :func:`chronological_sort_key`).

    Raises:
        DataError: naming the file and the first bad row; with ``check_files``, also a listed
            file that is missing or, links followed, lies outside ``root``.
    """
    root = Path(root)
    path = root / "metadata.csv"
    frame = _read_csv(path, METADATA_COLUMNS)
    if frame.empty:
        raise DataError(f"{path}: no rows")
    for column in ("baby_id", "chronological_index", "file_name", "file_id"):
        empty = frame[column].str.strip() == ""
        if empty.any():
            raise _bad_row(path, frame, empty, f"empty '{column}'")
    bad_period = ~frame["period"].isin(PERIODS)
    if bad_period.any():
        raise _bad_row(path, frame, bad_period, "period must be B or D")
    bad_split = ~frame["split"].isin(SPLITS)
    if bad_split.any():
        raise _bad_row(path, frame, bad_split, "split must be train, dev or test")
    duration = pd.to_numeric(frame["duration"], errors="coerce")
    bad_duration = duration.isna() | ~(duration > 0) | ~duration.map(lambda x: x < float("inf"))
    if bad_duration.any():
        raise _bad_row(path, frame, bad_duration, "duration must be a positive number of seconds")
    frame["duration"] = duration.astype(float)
    _check_relative_path(path, frame, "file_name")
    duplicated = frame["file_name"].duplicated()
    if duplicated.any():
        raise _bad_row(path, frame, duplicated, "file_name listed twice")
    mixed = frame.groupby("baby_id")["split"].nunique() > 1
    if mixed.any():
        baby = mixed[mixed].index[0]
        raise DataError(f"{path}: baby_id {baby} appears in more than one split")
    if check_files:
        exists = frame["file_name"].map(lambda name: _is_file(root / name))
        if not exists.all():
            missing = int((~exists).sum())
            raise _bad_row(
                path, frame, ~exists, f"audio file missing ({missing} of {len(frame)} missing)"
            )
        _check_links_stay_inside(root, path, frame)
    order = chronological_sort_key(frame["chronological_index"])
    return (
        frame.assign(_order=order)
        .sort_values(["split", "baby_id", "period", "_order"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def read_pairs(root: Path | str, split: str) -> pd.DataFrame:
    """Read ``ROOT/{split}_pairs.csv``: one trial per row, B recording of ``baby_id_B`` vs D of
    ``baby_id_D``. Returns string columns, plus ``label`` as int (0/1) when the file has labels.

    Raises:
        DataError: unknown split, missing file/columns, an id other than
            ``{baby_id_B}B_{baby_id_D}D``, duplicate ids, bad labels.
    """
    if split not in PAIRS_FILES:
        raise DataError(
            f"no pairs file for split '{split}'; choose one of {', '.join(PAIRS_FILES)}"
        )
    path = Path(root) / PAIRS_FILES[split]
    frame = _read_csv(path, PAIRS_COLUMNS)
    if frame.empty:
        raise DataError(f"{path}: no rows")
    for column in PAIRS_COLUMNS:
        empty = frame[column].str.strip() == ""
        if empty.any():
            raise _bad_row(path, frame, empty, f"empty '{column}'")
    # The id names the trial (``0133B_0611D``: B of 0133 against D of 0611); an id that
    # disagrees with its row would put one trial's score under another's name.
    expected = frame["baby_id_B"] + "B_" + frame["baby_id_D"] + "D"
    wrong_id = frame["id"] != expected
    if wrong_id.any():
        index = int(wrong_id.to_numpy().nonzero()[0][0])
        raise _bad_row(
            path,
            frame,
            wrong_id,
            f"pair id must be '{{baby_id_B}}B_{{baby_id_D}}D', expected '{expected.iloc[index]}'",
        )
    duplicated = frame["id"].duplicated()
    if duplicated.any():
        raise _bad_row(path, frame, duplicated, "pair id listed twice")
    if "label" in frame.columns:
        bad_label = ~frame["label"].isin(["0", "1"])
        if bad_label.any():
            raise _bad_row(path, frame, bad_label, "label must be 0 or 1")
        frame["label"] = frame["label"].astype(int)
    return frame


def read_sample_submission(root: Path | str) -> pd.DataFrame:
    """Read ``ROOT/sample_submission.csv`` (columns id, score): the ids and order a submission
    must match exactly."""
    path = Path(root) / "sample_submission.csv"
    frame = _read_csv(path, SUBMISSION_COLUMNS)
    duplicated = frame["id"].duplicated()
    if duplicated.any():
        raise _bad_row(path, frame, duplicated, "id listed twice")
    return frame
