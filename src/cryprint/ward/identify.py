"""Which enrolled baby is crying? Rank a cry against a ward's gallery (``cryprint identify``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from cryprint.data.inputs import recording_files
from cryprint.errors import FIELD, ConfigError, DataError
from cryprint.inference.api import embedder_for
from cryprint.inference.operating_point import stored_threshold
from cryprint.inference.options import EmbeddingOptions
from cryprint.scoring.ranking import Identification
from cryprint.ward.gallery import Gallery, open_for

if TYPE_CHECKING:
    from cryprint.inference.api import CryPrint
    from cryprint.models.folder import ModelSpec


def identify(
    model: ModelSpec | CryPrint,
    gallery_path: Path | str,
    cry: Path | str,
    threshold: float | None = None,
    top: int = 5,
    *,
    embedding: EmbeddingOptions | None = None,
) -> Identification:
    """Which enrolled baby is crying in ``cry`` (an audio file or folder of segments), if any.

    Args:
        threshold: accept the best baby when its score is >= this; None for the model folder's
            stored dev EER threshold (:func:`cryprint.inference.operating_point.stored_threshold`).
        top: how many candidates to return.
        embedding: how the cry is embedded (:class:`~cryprint.EmbeddingOptions`;
            None: the defaults): as the gallery's enrolments were.

    Raises:
        ConfigError: bad ``top`` or threshold, none given and none stored, or a gallery (or
            a stored threshold) embedded otherwise. DataError: not a gallery, an empty one, or
            a damaged enrolment. ModelError: another model's gallery. AudioError: a missing or
            bad recording.
    """
    if top < 1:
        raise ConfigError(f"{{top}} must be at least 1, got {top}", fields={"top": FIELD})
    if threshold is not None and not math.isfinite(threshold):
        raise ConfigError(f"threshold must be a finite number, got {threshold}")
    with Gallery.open(gallery_path) as gallery:
        if not gallery.babies():
            raise DataError(f"{gallery_path}: no baby is enrolled; `cryprint enroll` first")
    recording_files(cry)
    embedder = embedder_for(model, embedding)
    source = "given"
    if threshold is None:
        basis = embedder.options.score_basis
        threshold, source = stored_threshold(embedder.loaded, embedder.model_id, basis=basis)
    with open_for(gallery_path, embedder) as gallery:
        gallery.centroids()  # a damaged enrolment is reported before the cry is embedded
        return gallery.identify(embedder.embed(cry), threshold, top, source)
