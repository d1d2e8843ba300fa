"""A whole ward in one call, the model loaded once: enrol every baby of a list, identify many
cries (as WeSpeaker drives extraction from a list).

A ward list is a CSV with the columns ``baby`` and ``path`` (one recording per row: an audio
file or a folder of segments; relative paths are taken from the list's folder); a baby may have
several rows. Every row is checked before anything is embedded; each baby is enrolled in its
own transaction, in the list's order.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cryprint.data.inputs import recording_files
from cryprint.errors import DataError
from cryprint.inference.api import embedder_for
from cryprint.inference.options import EmbeddingOptions
from cryprint.scoring.ranking import Identification
from cryprint.ward.enrol import enrol
from cryprint.ward.gallery import Enrolment, check_baby_id
from cryprint.ward.identify import WardQuestion, identify

if TYPE_CHECKING:
    from cryprint.inference.api import CryPrint
    from cryprint.models.folder import ModelSpec

WARD_LIST_COLUMNS = ("baby", "path")


def read_ward_list(path: Path | str) -> dict[str, list[Path]]:
    """The recordings of each baby of a ward list (see the module docstring), in its order.

    Raises:
        DataError: a missing file or column, an empty list, a bad baby id — naming the line.
        AudioError: a recording that does not exist or holds no audio file.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
            columns = set(rows[0]) if rows else set()
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: not a readable ward list ({error})") from error
    if not rows or not set(WARD_LIST_COLUMNS) <= columns:
        raise DataError(f"{path}: a ward list is a CSV with the columns baby,path and a row each")
    babies: dict[str, list[Path]] = {}
    for line, row in enumerate(rows, start=2):
        try:
            baby = check_baby_id((row["baby"] or "").strip())
        except Exception as error:  # ConfigError: named with its line
            raise DataError(f"{path}, line {line}: {error}") from error
        recording = Path((row["path"] or "").strip())
        if not str(recording) or str(recording) == ".":
            raise DataError(f"{path}, line {line}: no path")
        recording = recording if recording.is_absolute() else path.parent / recording
        recording_files(recording)  # missing or empty: refused now, before any embedding
        babies.setdefault(baby, []).append(recording)
    return babies


def enrol_ward(
    model: ModelSpec | CryPrint,
    gallery_path: Path | str,
    babies: dict[str, list[Path]],
    *,
    embedding: EmbeddingOptions | None = None,
    progress: bool = False,
    client: str = "cli",
) -> list[Enrolment]:
    """Enrol every baby of ``babies`` (:func:`read_ward_list`), the model loaded once."""
    embedder = embedder_for(model, embedding)
    return [
        enrol(embedder, gallery_path, baby, recordings, progress=progress, client=client)
        for baby, recordings in babies.items()
    ]


def identify_cries(
    model: ModelSpec | CryPrint,
    gallery_path: Path | str,
    cries: Sequence[Path | str],
    question: WardQuestion | None = None,
    *,
    embedding: EmbeddingOptions | None = None,
) -> list[Identification]:
    """:func:`~cryprint.ward.identify.identify` for each cry, the model loaded once (every cry
    is checked first)."""
    for cry in cries:
        recording_files(cry)
    embedder = embedder_for(model, embedding)
    return [identify(embedder, gallery_path, cry, question) for cry in cries]


def read_cry_list(path: Path | str) -> list[Path]:
    """The cries of a list file: one path per line (relative to the file's folder; blank lines
    and lines starting with # ignored).

    Raises:
        DataError: unreadable, or no cry in it.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable list of cries ({error})") from error
    cries = [Path(line.strip()) for line in lines if line.strip() and not line.startswith("#")]
    if not cries:
        raise DataError(f"{path}: no cry listed (one path per line)")
    return [cry if cry.is_absolute() else path.parent / cry for cry in cries]
