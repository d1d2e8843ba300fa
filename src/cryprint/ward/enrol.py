"""Enrol a baby's cries into a ward's gallery (``cryprint enroll``): check everything, embed,
then one gallery transaction."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cryprint.data.inputs import recording_files
from cryprint.errors import ConfigError, OutputError
from cryprint.inference.api import embedder_for
from cryprint.inference.options import EmbeddingOptions
from cryprint.inference.store import audio_key
from cryprint.ward.gallery import Enrolment, Gallery, check_baby_id, open_for
from cryprint.ward.gallery_file import check_client

if TYPE_CHECKING:
    from cryprint.inference.api import CryPrint
    from cryprint.models.folder import ModelSpec


def _check_new_gallery(path: Path) -> None:
    """Refuse, before any embedding, a gallery path where no file can be created."""
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot create a gallery there ({folder} is not writable)")


def enrol(
    model: ModelSpec | CryPrint,
    gallery_path: Path | str,
    baby_id: str,
    recordings: Sequence[Path | str],
    *,
    embedding: EmbeddingOptions | None = None,
    progress: bool = False,
    client: str = "cli",
    sources: Sequence[str] | None = None,
) -> Enrolment:
    """Embed ``recordings`` and enrol them for ``baby_id`` in the gallery (created when missing).

    Everything is checked before any embedding: the baby id, every recording's path, the
    gallery (a cryprint gallery of this model, or a path where one can be created).

    Args:
        model: a model spec or a loaded :class:`cryprint.CryPrint`.
        gallery_path: the gallery's SQLite file.
        baby_id: see :func:`check_baby_id`.
        recordings: audio files or folders of segments, one enrolment each.
        embedding: how recordings are embedded (:class:`~cryprint.EmbeddingOptions`;
            None: the defaults); identify must embed cries the same way.
        progress: show embedding progress.
        client: who asks, recorded in the gallery's audit table (``cli``, an address).
        sources: what each recording is, as ``gallery list`` shows it (default: its absolute
            path; the ward station gives the uploaded file's name).

    Raises:
        ConfigError: bad baby id, client or no recordings, or a gallery embedded otherwise
            (other TTA views, trimming, an int8 export). AudioError: a missing or bad
            recording. DataError: not a gallery (a link to a missing file included).
            ModelError: another model's gallery. OutputError: cannot write.
    """
    baby_id, client = check_baby_id(baby_id), check_client(client)
    gallery_path = Path(gallery_path)
    if not recordings:
        raise ConfigError("give at least one recording (audio file or folder) to enrol")
    keys = [audio_key(files=recording_files(path)) for path in recordings]
    # A link to a missing file is "existing" too: refused by name (check_gallery_file), not
    # created through.
    existing = gallery_path.exists() or gallery_path.is_symlink()
    if existing:
        Gallery.open(gallery_path).close()  # not a gallery: refused before loading the model
    else:
        _check_new_gallery(gallery_path)
    embedder = embedder_for(model, embedding)
    if existing:
        open_for(gallery_path, embedder).close()
    vectors = embedder.embed_many(recordings, progress=progress)
    if sources is None:
        sources = [os.path.abspath(path) for path in recordings]
    elif len(sources) != len(recordings):
        raise ConfigError(f"{len(sources)} sources for {len(recordings)} recordings")
    with Gallery.create_or_open(
        gallery_path,
        embedder.model_id,
        embedder.embedding_dim,
        embedder.source,
        embedder.scoring_key,
        embedder.embedding_description,
        embedder.as_norm,
    ) as gallery:
        return gallery.enrol(baby_id, vectors, sources, keys, client=client)
