"""What the ward station does, for the pages and the API alike: one model loaded once, the
library's own enrol, identify and verify run in a bounded pool on uploaded audio.

Uploads are written to a private temporary folder and handed to the library as files, so they
are read, checked and embedded exactly as the CLI reads files (any rate and channels; too short,
silent or not audio: the CLI's refusal). Refusals reach the caller without any path in them.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from cryprint.data.inputs import read_recording
from cryprint.errors import CryprintError, python_wording
from cryprint.inference.api import CryPrint
from cryprint.scoring.ranking import Identification
from cryprint.scoring.verdict import Verdict
from cryprint.server.settings import StationSettings
from cryprint.ward.enrol import enrol
from cryprint.ward.gallery import Enrolment, Gallery
from cryprint.ward.identify import WardQuestion, identify

Result = TypeVar("Result")
# A safe name for an uploaded file on disk: its own name, letters, digits and . _ - only.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[^\s/:'\"]+/)*([^\s/:'\"]+)")
# Columns of the waveform drawn for a cry.
_WAVE_COLUMNS = 300


class Busy(Exception):
    """Every worker is busy and the queue is full: come back in a few seconds."""


@dataclass(frozen=True)
class Upload:
    """An uploaded recording: the name the client gave it and its bytes."""

    name: str
    data: bytes


class Pool:
    """At most ``workers`` requests embed at once, ``queue`` more wait; beyond that
    :class:`Busy`. Embedding on more threads than cores only slows every request down."""

    def __init__(self, workers: int, queue: int) -> None:
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="cryprint-station")
        self.slots = threading.BoundedSemaphore(workers + queue)

    async def run(self, function: Callable[..., Result], *args: Any) -> Result:
        if not self.slots.acquire(blocking=False):
            raise Busy
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)
        finally:
            self.slots.release()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


class StationError(Exception):
    """A refusal for the caller: an HTTP status and a message without any path."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


# The HTTP status of each kind of refusal (cryprint.errors' classes by name).
_STATUS = {
    "AudioError": 422,
    "DataError": 400,
    "ConfigError": 400,
    "ModelError": 409,
    "OutputError": 503,
}


def public_message(error: CryprintError, known: dict[str, str]) -> str:
    """``error``'s message for a caller: fields worded as the API names them, known paths
    replaced by what they are, and any other absolute path cut to its last part."""
    return public_text(error.worded(python_wording), known)


def public_text(text: str, known: dict[str, str]) -> str:
    """``text`` without a path: known ones replaced by what they are, any other absolute path
    cut to its last part (the server's folders are nobody's business on a ward)."""
    for path, label in sorted(known.items(), key=lambda item: -len(item[0])):
        text = text.replace(path, label)
    return _ABSOLUTE_PATH.sub(lambda match: match.group(1), text)


def public(value: Any, known: dict[str, str]) -> Any:
    """A JSON-like answer with every string made :func:`public_text`."""
    if isinstance(value, str):
        return public_text(value, known)
    if isinstance(value, dict):
        return {key: public(item, known) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [public(item, known) for item in value]
    return value


class Station:
    """One ward: its gallery, the model loaded once, the pool. See the module docstring."""

    def __init__(self, settings: StationSettings, embedder: CryPrint | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or CryPrint(settings.model, **asdict(settings.embedding))
        self.pool = Pool(settings.workers, settings.queue)
        self.gallery_path = Path(settings.gallery)

    def _known_paths(self, uploads: dict[str, str] | None = None) -> dict[str, str]:
        known = {
            str(self.gallery_path.resolve()): "the gallery",
            str(self.gallery_path): "the gallery",
            str(Path(self.embedder.source)): "the model",
        }
        return {**known, **(uploads or {})}

    def public(self, value: Any) -> Any:
        """An answer for a caller, without the station's paths (:func:`public`)."""
        folder = self.embedder.loaded.folder
        known = self._known_paths({str(folder): "the model"} if folder is not None else {})
        return public(value, known)

    def _refusal(self, error: CryprintError, uploads: dict[str, str] | None = None) -> StationError:
        status = _STATUS.get(type(error).__name__, 400)
        return StationError(status, public_message(error, self._known_paths(uploads)))

    async def _in_pool(self, work: Callable[[Path], Result], uploads: list[Upload]) -> Result:
        """Run ``work(folder)`` in the pool with the uploads written into a private folder."""

        def job() -> Result:
            with tempfile.TemporaryDirectory(prefix="cryprint-station-") as scratch:
                folder, names = Path(scratch), {scratch: "the upload"}
                try:
                    for index, upload in enumerate(uploads):
                        safe = _UNSAFE.sub("_", Path(upload.name).name)[-80:] or "recording"
                        path = folder / f"{index}-{safe}"
                        path.write_bytes(upload.data)
                        names[str(path)] = upload.name  # refusals name the file as sent
                    return work(folder)
                except CryprintError as error:
                    raise self._refusal(error, names) from error

        return await self.pool.run(job)

    async def enrol(self, baby_id: str, uploads: list[Upload], client: str) -> Enrolment:
        """Enrol the uploads as recordings of ``baby_id`` (one gallery transaction)."""
        if not uploads:
            raise StationError(400, "give at least one recording to enrol")

        names = [f"upload: {upload.name}" for upload in uploads]

        def work(folder: Path) -> Enrolment:
            files = sorted(folder.iterdir(), key=lambda path: int(path.name.split("-")[0]))
            return enrol(
                self.embedder, self.gallery_path, baby_id, files, client=client, sources=names
            )

        return await self._in_pool(work, uploads)

    async def identify(
        self, upload: Upload, question: WardQuestion | None = None
    ) -> tuple[Identification, list[tuple[float, float]]]:
        """Whose cry is ``upload``? The answer and the cry's waveform (min, max per column)."""

        def work(folder: Path) -> tuple[Identification, list[tuple[float, float]]]:
            [cry] = list(folder.iterdir())
            result = identify(self.embedder, self.gallery_path, cry, question)
            return result, waveform_outline(read_recording(cry))

        return await self._in_pool(work, [upload])

    async def verify(self, a: Upload, b: Upload) -> Verdict:
        """Are ``a`` and ``b`` the same baby? verify's verdict at the model's operating point."""

        def work(folder: Path) -> Verdict:
            first, second = sorted(folder.iterdir(), key=lambda path: path.name)
            return self.embedder.verify(first, second)

        return await self._in_pool(work, [a, b])

    def _gallery(self) -> Gallery | None:
        try:
            return Gallery.open(self.gallery_path) if self.gallery_path.exists() else None
        except CryprintError as error:
            raise self._refusal(error) from error

    def ward(self) -> dict[str, Any]:
        """The enrolled babies (with their enrolments) and the audit log, newest first."""
        gallery = self._gallery()
        if gallery is None:
            return {"babies": [], "audit": []}
        with gallery:
            babies, records = gallery.babies(), gallery.enrolment_records()
            audit = gallery.audit_log(limit=50)
        enrolled: dict[str, list[dict[str, str]]] = {}
        for record in records:
            enrolled.setdefault(record.baby_id, []).append(record._asdict())
        return {
            "babies": [{**b._asdict(), "enrolments": enrolled.get(b.baby_id, [])} for b in babies],
            "audit": [entry._asdict() for entry in audit],
        }

    def remove(self, baby_id: str, client: str) -> int:
        """Remove a baby and its enrolments (discharge), recorded in the audit table."""
        gallery = self._gallery()
        if gallery is None:
            raise StationError(404, "no baby is enrolled yet")
        try:
            with gallery:
                return gallery.remove(baby_id, client=client)
        except CryprintError as error:
            raise self._refusal(error) from error

    def close(self) -> None:
        self.pool.close()


def waveform_outline(
    waveform: np.ndarray, columns: int = _WAVE_COLUMNS
) -> list[tuple[float, float]]:
    """The waveform as (min, max) of each of ``columns`` equal slices, in [-1, 1]."""
    usable = len(waveform) - len(waveform) % columns
    if usable < columns:
        return [(float(waveform.min()), float(waveform.max()))] * columns
    slices = waveform[:usable].reshape(columns, -1)
    low, high = np.clip(slices.min(axis=1), -1, 1), np.clip(slices.max(axis=1), -1, 1)
    return [(float(a), float(b)) for a, b in zip(low, high, strict=True)]
