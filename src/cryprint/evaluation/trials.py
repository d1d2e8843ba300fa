"""Score any list of trials: ``cryprint score --model M --trials trials.csv``.

A trials file (WeSpeaker's idea, as CSV) lists one trial per row::

    enrolment,test,label
    ward3/baby07/birth.wav,ward3/baby07/discharge/,1
    ward3/baby07/birth.wav,ward3/baby12/discharge/,0

``enrolment`` and ``test`` are audio files or folders of segments (see
:mod:`cryprint.data.inputs`), relative to the trials file's folder and inside it: a path that
leaves it (absolute, through ``..`` or a link, or a folder holding a linked segment that leads
out) is refused with its line number. ``label`` is optional: ``1``/``0`` or
``target``/``nontarget``; the same pair of recordings (in either order) labelled both ways is
refused, naming both lines, and so is a row with more fields than the header. With labels the
trials are evaluated exactly as ``cryprint evaluate`` evaluates a split's pairs: EER, minDCF,
AUC, histogram and DET plot.

Each distinct recording is embedded once (and only when the embedding store does not already
hold it); the output folder (``scores.csv``, ``report.json``, figures) is written as a whole.
"""

from __future__ import annotations

import csv
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryprint.data.inputs import recording_files
from cryprint.errors import AudioError, DataError
from cryprint.evaluation.report import (
    REPORT_NAME,
    metrics_or_none,
    new_report,
    to_json,
    write_figures,
)
from cryprint.inference.api import embedder_for
from cryprint.inference.options import EmbeddingOptions
from cryprint.io import (
    atomic_write,
    atomic_write_text,
    check_replaceable_folder,
    folder_lock,
    replace_folder,
    staging_folder,
)
from cryprint.models.folder import ModelSpec

TRIALS_COLUMNS = ("enrolment", "test")
# The American spelling (WeSpeaker's, and cryprint 0.1's): read as ``enrolment``.
_COLUMN_ALIASES = {"enrollment": "enrolment"}
LABELS = {"1": 1, "0": 0, "target": 1, "nontarget": 0, "true": 1, "false": 0}


def read_trials(path: Path | str) -> pd.DataFrame:
    """The trials of ``path``: ``enrolment`` and ``test`` as written, ``enrolment_path`` and
    ``test_path`` resolved inside the file's folder, and ``label`` (0/1) when the file has one.

    Raises:
        DataError: a missing file or column, an empty list, a row with more fields than the
            header, a path leaving the folder (a linked segment of a folder too), an unknown
            label, the same trial labelled 1 and 0 — naming the line(s).
    """
    path = Path(path)
    frame = _read_csv(path)
    frame = frame.rename(
        columns={old: new for old, new in _COLUMN_ALIASES.items() if new not in frame.columns}
    )
    missing = [column for column in TRIALS_COLUMNS if column not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; a trials file has the columns "
            "enrolment,test[,label]"
        )
    if frame.empty:
        raise DataError(f"{path}: no trials")
    base = path.resolve().parent
    for column in TRIALS_COLUMNS:
        frame[f"{column}_path"] = [
            _inside(base, value, path, row + 2) for row, value in enumerate(frame[column])
        ]
    _check_folders(frame, base, path)
    if "label" in frame.columns:
        frame["label"] = [_label(value, path, row + 2) for row, value in enumerate(frame["label"])]
        _check_labels_agree(frame, path)
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    """The CSV's rows as text. A row with more fields than the header is refused, naming its
    line: pandas would take the first field of such rows as an index, or drop the last ones."""
    if path.exists() and not path.is_file():  # a FIFO would block the read forever
        raise DataError(f"{path} is not a regular file; give the trials CSV")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            frame = pd.read_csv(
                path, dtype=str, keep_default_na=False, na_filter=False, index_col=False
            )
    except FileNotFoundError:
        raise DataError(f"{path}: trials file not found") from None
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        _refuse_longer_row(path)
        raise DataError(f"{path}: not a readable trials CSV ({error})") from error
    if any(issubclass(warning.category, pd.errors.ParserWarning) for warning in caught):
        _refuse_longer_row(path)
        raise DataError(f"{path}: a row has more fields than the header")
    return frame


def _refuse_longer_row(path: Path) -> None:
    """DataError naming the first line of ``path`` with more fields than its header, if any
    (a file the csv module cannot read is left to the caller's message)."""
    try:
        with path.open(encoding="utf-8", newline="") as file:
            reader = csv.reader(file)
            header = next((fields for fields in reader if fields), [])
            for fields in reader:
                if len(fields) > len(header):
                    raise DataError(
                        f"{path}, line {reader.line_num}: {len(fields)} fields under a header "
                        f"of {len(header)} columns"
                    )
    except (OSError, UnicodeDecodeError, csv.Error):
        return


def _inside(base: Path, value: str, path: Path, line: int) -> str:
    if "\0" in value:
        raise DataError(f"{path}, line {line}: {value!r} holds a NUL byte; no path can")
    relative = Path(value.strip())
    if not value.strip() or relative.is_absolute():
        raise DataError(f"{path}, line {line}: '{value}' must be a path relative to {base}")
    resolved = (base / relative).resolve()
    if resolved != base and base not in resolved.parents:
        raise DataError(f"{path}, line {line}: '{value}' leads outside {base}")
    return str(resolved)


def _check_folders(frame: pd.DataFrame, base: Path, path: Path) -> None:
    """Every audio file of a listed folder resolves inside ``base`` too (a linked segment may
    lead anywhere); DataError naming the first line that lists a folder holding one that does
    not. Folders that do not exist or hold no audio are left to the embedding (AudioError)."""
    checked: set[str] = set()
    sides = [zip(frame[c], frame[f"{c}_path"], strict=True) for c in TRIALS_COLUMNS]
    for row, trial in enumerate(zip(*sides, strict=True)):
        for value, recording in trial:
            if recording in checked:
                continue
            checked.add(recording)
            outside = _file_outside(Path(recording), base)
            if outside is not None:
                raise DataError(
                    f"{path}, line {row + 2}: '{value}' holds {outside.name}, which leads "
                    f"outside {base}"
                )


def _file_outside(recording: Path, base: Path) -> Path | None:
    """The first audio file of folder ``recording`` that resolves outside ``base``, if any."""
    if not recording.is_dir():
        return None
    try:
        files = recording_files(recording)
    except AudioError:
        return None
    for file in files:
        resolved = file.resolve()
        if base not in resolved.parents:
            return file
    return None


def _check_labels_agree(frame: pd.DataFrame, path: Path) -> None:
    """DataError naming both lines when a pair of recordings (in either order) is labelled 1
    on one line and 0 on another."""
    first: dict[frozenset[str], tuple[int, int]] = {}
    pairs = zip(frame["enrolment_path"], frame["test_path"], frame["label"], strict=True)
    for row, (enrolment, test, label) in enumerate(pairs):
        pair = frozenset((enrolment, test))
        line, seen = first.setdefault(pair, (row + 2, label))
        if seen != label:
            raise DataError(
                f"{path}, lines {line} and {row + 2}: the same trial is labelled {seen} and {label}"
            )


def _label(value: str, path: Path, line: int) -> int:
    try:
        return LABELS[value.strip().lower()]
    except KeyError:
        raise DataError(
            f"{path}, line {line}: label '{value}' is not 1/0 or target/nontarget"
        ) from None


def score_trials(
    model: ModelSpec,
    trials: Path | str,
    out: Path | str | None = None,
    p_targets: Sequence[float] = (0.05, 0.01),
    *,
    embedding: EmbeddingOptions | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Score every trial of ``trials`` and write ``scores.csv``, ``report.json`` (and, with
    labels, the metrics and figures of :func:`cryprint.evaluation.evaluate.evaluate`) to ``out``.

    Args:
        model: a model spec, a loaded model, or a :class:`cryprint.CryPrint`.
        trials: the trials CSV (see the module docstring).
        out: the output folder; default ``TRIALS_STEM-scores`` beside the trials file.
        p_targets: minDCF priors (``c_miss = c_fa = 1``).
        embedding: how recordings are embedded (:class:`~cryprint.EmbeddingOptions`;
            None: the defaults); ignored when ``model`` is a CryPrint.
        progress: show progress.

    Returns:
        The report (what ``report.json`` holds).
    """
    started = time.perf_counter()
    trials = Path(trials)
    table = read_trials(trials)
    folder = Path(out) if out is not None else trials.parent / f"{trials.stem}-scores"
    check_replaceable_folder(folder, REPORT_NAME, "a trials scoring")
    embedder = embedder_for(model, embedding)
    recordings = list(dict.fromkeys([*table["enrolment_path"], *table["test_path"]]))
    embeddings = embedder.embed_many(recordings, progress=progress)
    index = {recording: row for row, recording in enumerate(recordings)}
    pairs = zip(table["enrolment_path"], table["test_path"], strict=True)
    sides = np.array([[index[a], index[b]] for a, b in pairs], dtype=np.int64)
    scores = {"score": embedder.score_pairs(embeddings, sides)}  # cosine, or AS-norm
    labels = table["label"].to_numpy() if "label" in table.columns else None
    identity = {
        "model": Path(embedder.source).name or embedder.source,
        "model_source": embedder.source,
        "model_kind": embedder.loaded.kind,
        "model_id": embedder.model_id,
    }
    report = new_report(
        identity, trials.name, {"trials": str(trials.resolve())}, len(table), labels,
        len(recordings), score=embedder.scoring, embedded=embedder.embedded_as,
        p_targets=p_targets,
    )  # fmt: skip
    report.update(metrics_or_none(scores["score"], labels, p_targets))
    report["warning"] = _few_trials_warning(labels)
    with folder_lock(folder, "cryprint score"), staging_folder(folder) as staging:
        _write_outputs(staging, table, scores, labels, report)
        report["seconds"] = round(time.perf_counter() - started, 3)
        atomic_write_text(staging / REPORT_NAME, to_json(report))
        replace_folder(staging, folder)
    report["folder"] = str(folder)
    return report


def _write_outputs(
    staging: Path, table: pd.DataFrame, scores: dict[str, np.ndarray],
    labels: np.ndarray | None, report: dict[str, Any],
) -> None:  # fmt: skip
    columns = {"enrolment": table["enrolment"], "test": table["test"], **scores}
    if labels is not None:
        columns["label"] = labels
    frame = pd.DataFrame(columns)
    written = atomic_write(
        staging / "scores.csv",
        lambda file: frame.to_csv(file, index=False, float_format="%.8g", lineterminator="\n"),
    )
    report["files"]["scores"] = written.name
    if labels is not None:
        report["files"].update(write_figures(staging, report, scores, labels))


# Fewer labelled trials of a kind than this and the metrics are noise: said with them.
MIN_TRIALS_PER_KIND = 10


def _few_trials_warning(labels: np.ndarray | None) -> str | None:
    if labels is None:
        return None
    same, different = int(labels.sum()), int(len(labels) - labels.sum())
    if min(same, different) >= MIN_TRIALS_PER_KIND:
        return None
    return (
        f"only {same} same-baby and {different} different-baby trial(s): EER, minDCF and AUC "
        f"on fewer than {MIN_TRIALS_PER_KIND} of each say little"
    )
