"""The Python API: load a model once, then embed, score and verify as many cries as you like.

>>> from cryprint import CryPrint
>>> cryprint = CryPrint("runs/triplet/best")  # doctest: +SKIP
>>> cryprint.verify("birth_cry.wav", "discharge_cries/")  # doctest: +SKIP
Verdict(score=0.71, threshold=0.45, threshold_source='dev EER threshold ...', same_baby=True, ...)

Every CLI command that embeds audio goes through a :class:`CryPrint`: it checks each recording
(at least 0.25 s, a cry in it), embeds it alone (no padding: the embedding of a recording does not
depend on what else is embedded) and keeps the embedding in the embedding store
(:mod:`cryprint.inference.store`), so no command embeds what another has already embedded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence, Sized
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from cryprint.data.activity import trim_to_cry
from cryprint.data.audio import MAX_ABS_SAMPLE, MAX_SECONDS, SAMPLE_RATE
from cryprint.data.inputs import check_recording, read_recording, recording_files
from cryprint.errors import AudioError, OutputError
from cryprint.inference.cohort import model_cohort
from cryprint.inference.engines import make_engine
from cryprint.inference.operating_point import operating_point
from cryprint.inference.options import EmbeddingOptions, describe_basis
from cryprint.inference.store import EmbeddingStore, audio_key, open_store
from cryprint.progress import Progress
from cryprint.scoring import as_norm_matrix, as_norm_pairs, cosine_matrix, cosine_pairs
from cryprint.scoring.verdict import Verdict

if TYPE_CHECKING:
    from cryprint.models.folder import ModelSpec

logger = logging.getLogger(__name__)

# Recordings read and embedded at a time: bounds memory on the real train split (about 1 GB of
# float32 audio at once otherwise) and commits finished work to the store.
_RECORDINGS_PER_CHUNK = 256

# What can be embedded: an audio file or folder of segments, or float32 samples at 16 kHz.
Audio = str | Path | NDArray[np.floating]


class CryPrint:
    """A cry embedder loaded once.

    Args:
        model: a model folder (``runs/NAME/best``), an ``embedding_model.ckpt``, a hub id, or a
            loaded model.
        device: ``auto`` (default: a GPU when there is one, else the CPU), ``cpu``, ``cuda``,
            ``cuda:N``.
        backend: ``torch``, ``onnx`` (an ONNX export, run without torch) or ``auto`` (onnx
            when the model folder holds an export; see :mod:`cryprint.inference.engines`).
        precision: the torch engine's arithmetic: ``auto`` (bfloat16 autocast where the
            hardware runs it natively and it pays — a CUDA GPU with bf16, or a CPU with
            AVX512_BF16 or AMX for a model of width C >= 512 — else float32), ``fp32`` or
            ``bf16``; bf16 embeddings are stored apart from fp32 ones (see
            :func:`cryprint.models.device.resolve_precision`).
        store: the embedding store — True for the default one (:func:`cryprint.inference.store.
            default_store_path`), a path, an :class:`EmbeddingStore`, or False for none.
        tta: test-time augmentation views per recording (1 = none; see
            :func:`cryprint.inference.tta.embed_views`); part of the store's key.
        trim: embed each recording without its leading and trailing non-cry sound
            (:func:`cryprint.data.activity.trim_to_cry`); part of the store's key. On by
            default: a cry padded with 5 s of silence then embeds as the cry (cosine 0.997 at
            worst on the demo corpus, 0.06 on average untrimmed), at no cost to dev EER
            (benchmarks/bench_activity.py).
        as_norm: score with adaptive s-norm against the model folder's cohort
            (:mod:`cryprint.inference.cohort`): None (default) exactly when it lowered the
            model's dev minDCF, True to require it, False for raw cosine scores.

    Raises:
        ModelError, HubError: the model cannot be loaded, or its cohort is of other weights.
        ConfigError: no such device, an unknown backend or precision, a bad number of TTA
            views, or ``as_norm=True`` for a model without a cohort.
    """

    def __init__(
        self,
        model: Any,
        *,
        device: str = "auto",
        store: EmbeddingStore | Path | str | bool | None = True,
        tta: int = 1,
        trim: bool = True,
        backend: str = "auto",
        precision: str = "auto",
        as_norm: bool | None = None,
    ) -> None:
        self.options = EmbeddingOptions(device, backend, precision, tta, trim, as_norm)
        self.engine = make_engine(model, self.options)
        self.backend = "onnx" if hasattr(self.engine, "runtime") else "torch"
        self.loaded = self.engine.loaded  # what thresholds and calibrations belong to
        self.model_id = self.engine.model_id
        # The model's AS-norm cohort when its scores are normalised (cryprint.inference.cohort).
        self.cohort = model_cohort(self.loaded, self.model_id, self.options.score_basis, as_norm)
        self.store = open_store(store)
        self.computed = 0  # recordings embedded by the model (not found in the store)

    @property
    def tta(self) -> int:
        return self.options.tta

    @property
    def trim(self) -> bool:
        return self.options.trim

    @property
    def as_norm(self) -> bool:
        """Whether scores are AS-norm scores (against :attr:`cohort`), not raw cosines."""
        return self.cohort is not None

    @property
    def score_basis(self) -> dict[str, Any]:
        """What a stored threshold or calibration must have been measured on to apply to this
        embedder's scores: the TTA views, trimming and whether scores are normalised."""
        return {**self.options.score_basis, "as_norm": self.as_norm}

    @property
    def scoring(self) -> str:
        """How scores are made, in words: ``cosine`` or ``AS-norm (top 100 of ...)``."""
        return "cosine" if self.cohort is None else self.cohort.describe()

    @property
    def scoring_key(self) -> str:
        """What two embeddings must share to be scored against each other (a gallery's
        enrolments and a cry): the engine's scoring id (the weights; an int8 export has its
        own), the TTA views and trimming. bf16, fp32 and an fp32 ONNX export match — their
        embeddings' cosine is >= 0.9999 (benchmarks/RESULTS.md) — so a gallery enrolled where
        ``precision="auto"`` picks bf16 serves a machine where it picks fp32."""
        return self.engine.scoring_id + self._key_suffix

    @property
    def embedding_description(self) -> str:
        """How recordings are embedded here, in words (``torch fp32, 1 TTA view, trimmed``)."""
        return (
            f"{self.backend} {self.engine.arithmetic}, {describe_basis(self.options.score_basis)}"
        )

    @property
    def embedded_as(self) -> dict[str, Any]:
        """How recordings are embedded, as reports record it: ``tta``, ``trim`` and
        ``embedded_with`` (:attr:`embedding_description`)."""
        return {"tta": self.tta, "trim": self.trim, "embedded_with": self.embedding_description}

    @property
    def _key_suffix(self) -> str:
        return (f"|tta{self.tta}" if self.tta > 1 else "") + ("|trim" if self.trim else "")

    @property
    def source(self) -> str:
        """Where the weights came from (a folder, a file, a hub id)."""
        return self.loaded.source

    @property
    def embedding_dim(self) -> int:
        return self.engine.embedding_dim

    def embed(self, audio: Audio) -> NDArray[np.float32]:
        """The embedding of one recording: float32 [dim], not normalised (score by cosine).

        Raises:
            AudioError: unreadable audio, shorter than 0.25 s, or no cry in it.
        """
        return self.embed_many([audio])[0]

    def embed_many(
        self, items: Sequence[Audio], names: Sequence[str] | None = None, progress: bool = False
    ) -> NDArray[np.float32]:
        """Embeddings of several recordings: float32 [len(items), dim], row i for items[i].

        Each item is keyed by its audio content; what the store holds for this model is reused,
        the rest is read, checked, embedded and stored.

        Raises:
            AudioError: an item is unreadable, shorter than 0.25 s, or holds no cry.
        """
        keys = [_key(item) for item in items]
        labels = list(names) if names is not None else [_describe(item) for item in items]
        return self.embed_keyed(keys, lambda i: _waveform(items[i]), labels, progress)

    def store_keys(self, audio_keys: Sequence[str]) -> list[str]:
        """The embedding store's keys of recordings with these audio keys, as embedded here
        (the TTA views and trimming are part of the key; the model is the store's model id,
        ``self.engine.embedding_id``)."""
        return [f"{key}{self._key_suffix}" for key in audio_keys]

    def embed_keyed(
        self,
        keys: Sequence[str],
        read: Callable[[int], np.ndarray],
        names: Sequence[str],
        progress: bool = False,
        label: str = "embedding",
    ) -> NDArray[np.float32]:
        """Embeddings of recordings known by their store keys: float32 [len(keys), dim].

        Args:
            keys: each recording's audio key (:func:`cryprint.inference.store.audio_key`).
            read: ``read(i)`` gives recording i's checked float32 waveform; called only for
                recordings the store does not hold.
            names: what each recording is, for messages.
            progress: log progress (a bar on a terminal, periodic lines otherwise).
            label: what the progress lines say is being done.
        """
        keys = self.store_keys(keys)
        store_id = self.engine.embedding_id
        found = {} if self.store is None else self.store.get(store_id, keys, self.embedding_dim)
        missing = [keys.index(key) for key in dict.fromkeys(keys) if key not in found]
        with Progress(len(missing), label, enabled=progress) as bar:
            for start in range(0, len(missing), _RECORDINGS_PER_CHUNK):
                chunk = missing[start : start + _RECORDINGS_PER_CHUNK]
                fresh = self._compute(chunk, keys, read, names)
                found.update(fresh)
                bar.update(len(chunk))
        result = np.zeros((len(keys), self.embedding_dim), dtype=np.float32)
        for row, key in enumerate(keys):
            result[row] = found[key]
        return result

    def _compute(
        self,
        chunk: list[int],
        keys: list[str],
        read: Callable[[int], np.ndarray],
        names: Sequence[str],
    ) -> dict[str, np.ndarray]:
        """Embed recordings ``chunk`` (indices) and store them; chunked so memory stays bounded
        and an interrupted run keeps what it computed."""
        waveforms, labels = [read(i) for i in chunk], [names[i] for i in chunk]
        if self.trim:
            waveforms = [trim_to_cry(waveform) for waveform in waveforms]
        computed = self.engine.embed(waveforms, labels, self.tta)
        self.computed += len(chunk)
        fresh = {keys[i]: computed[row] for row, i in enumerate(chunk)}
        if self.store is not None:
            try:
                self.store.put(self.engine.embedding_id, fresh)
            except OutputError as error:  # a cache that cannot be written costs no answer
                logger.warning("%s; these embeddings are not kept", error)
        return fresh

    def score(self, a: Audio, b: Audio) -> float:
        """The score of two recordings: the cosine similarity of their embeddings, in [-1, 1],
        or its AS-norm when this model's scores are normalised (:attr:`scoring`)."""
        embeddings = self.embed_many([a, b])
        return float(self.score_pairs(embeddings, np.array([[0, 1]]))[0])

    def score_pairs(self, embeddings: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """Scores of trials among embeddings [n, dim]: ``pairs`` int [n_pairs, 2] of row
        indices → float64 [n_pairs] (cosine, or AS-norm against the cohort)."""
        if self.cohort is None:
            return cosine_pairs(embeddings, embeddings, pairs)
        cohort = self.cohort
        return as_norm_pairs(embeddings, embeddings, cohort.embeddings, pairs, cohort.top_n)

    def score_matrix(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Scores of every row of ``left`` [n, dim] against every row of ``right`` [m, dim]:
        float64 [n, m] (cosine, or AS-norm against the cohort)."""
        if self.cohort is None:
            return cosine_matrix(left, right)
        return as_norm_matrix(left, right, self.cohort.embeddings, self.cohort.top_n)

    def verify(
        self,
        a: Audio,
        b: Audio,
        threshold: float | None = None,
        *,
        prior: float | None = None,
        point: str | None = None,
        inconclusive: float | None = None,
    ) -> Verdict:
        """Are ``a`` and ``b`` the same baby? One verdict at one operating point
        (:func:`cryprint.inference.operating_point.operating_point`, checked before any embedding):
        the given threshold, or the threshold at the given prior (needs a calibration), or the
        model folder's stored point (``eer`` by default, or ``far1``). With a calibration the
        verdict also holds P(same baby) at the point's prior, and P >= 0.5 exactly when the
        score reaches the threshold; ``inconclusive`` (e.g. 0.2) marks P in (0.2, 0.8)."""
        chosen = operating_point(
            self.loaded,
            threshold,
            self.model_id,
            prior=prior,
            point=point,
            inconclusive=inconclusive,
            basis=self.score_basis,
        )
        return chosen.decide(self.score(a, b))


def embedder_for(
    model: Any,
    embedding: EmbeddingOptions | None = None,
    store: EmbeddingStore | str | bool | None = True,
) -> CryPrint:
    """What every library function that embeds does with its ``model`` and ``embedding=``:
    ``model`` itself when it is a :class:`cryprint.CryPrint`, else the model loaded with
    ``embedding`` (None: the defaults — on the CPU) and ``store``."""
    if isinstance(model, CryPrint):
        return model  # its own options stand
    return CryPrint(model, store=store, **asdict(embedding or EmbeddingOptions()))


def verify(
    model: ModelSpec,
    a: Path | str,
    b: Path | str,
    threshold: float | None = None,
    *,
    prior: float | None = None,
    point: str | None = None,
    inconclusive: float | None = None,
    embedding: EmbeddingOptions | None = None,
    store: bool | Path | str = True,
) -> Verdict:
    """Decide whether recordings ``a`` and ``b`` are of the same baby (one-off: to verify many
    pairs, load the model once with :class:`cryprint.CryPrint`).

    Args:
        model: a model spec (folder, checkpoint, hub id) or a loaded model.
        a, b: audio files or folders of segments (see :func:`cryprint.data.inputs.read_recording`).
        threshold, prior, point, inconclusive: the operating point (see
            :func:`operating_point`); none of them: the model folder's dev EER threshold.
        embedding: how recordings are embedded (device, backend, precision, TTA, trimming;
            None: the defaults). store: the embedding store (see :class:`cryprint.CryPrint`).

    Raises:
        ConfigError: no threshold given and none stored, a bad operating point, or a stored
            one measured on recordings embedded with other TTA views or trimming.
        AudioError: bad or too short audio, or no cry in it.
        ModelError: bad model folder, stale evaluation.json, invalid or stale calibration.json.
    """
    embedder = embedder_for(model, embedding, store)
    return embedder.verify(a, b, threshold, prior=prior, point=point, inconclusive=inconclusive)


def _key(item: Audio) -> str:
    """The store's audio key of a recording; samples are checked (:func:`_samples`) first."""
    if isinstance(item, str | Path):
        return audio_key(files=recording_files(item))
    return audio_key(samples=_samples(item))


def _waveform(item: Audio) -> np.ndarray:
    """A recording's checked float32 waveform (at least 0.25 s, a cry in it)."""
    if isinstance(item, str | Path):
        return read_recording(item)
    waveform = _samples(item)
    check_recording(waveform, "the waveform")
    return waveform


def _describe(item: Audio) -> str:
    return str(item) if isinstance(item, str | Path) else "a waveform"


# The longest waveform embedded, in samples at 16 kHz: a file's limit, so that samples given in
# memory cannot ask for more work than a file can.
_MAX_SAMPLES = int(MAX_SECONDS * SAMPLE_RATE)
# What an array of each non-numeric kind holds, for a refusal that never shows the content.
_NOT_NUMBERS = {"b": "bool", "c": "complex", "O": "object", "U": "str", "S": "bytes"}


def _samples(item: object) -> NDArray[np.float32]:
    """``item`` (real-valued samples: float or int, any array-like) as float32 [samples],
    checked from its type and shape before anything is hashed or copied.

    Raises:
        AudioError: not real numbers (bytes, text, bool, complex, objects), not 1-D, longer
            than :data:`~cryprint.data.audio.MAX_SECONDS`, or NaN, infinite or absurdly large
            samples. The message names the type, never the content.
    """
    if isinstance(item, bytes | bytearray | memoryview | str):
        raise _not_samples(type(item).__name__)
    if isinstance(item, Sized) and not isinstance(item, np.ndarray) and len(item) > _MAX_SAMPLES:
        raise _too_long(len(item))
    try:
        array = np.asarray(item)  # no copy of an array
    except (TypeError, ValueError, OverflowError):  # a ragged list, say
        raise _not_samples(type(item).__name__) from None
    if array.dtype.kind not in "fiu":
        kind = _NOT_NUMBERS.get(array.dtype.kind, "other")
        raise _not_samples(type(item).__name__ + (f" of {kind}" if array.ndim else ""))
    if array.ndim != 1:
        raise AudioError(f"a waveform must be float32 [samples] at 16 kHz, got shape {array.shape}")
    if len(array) > _MAX_SAMPLES:
        raise _too_long(len(array))
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf: refused
        waveform = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(waveform).all():
        raise AudioError("the waveform holds NaN or infinite samples")
    if waveform.size and float(np.abs(waveform).max()) > MAX_ABS_SAMPLE:
        raise AudioError("the waveform's samples reach far outside [-1, 1]: it is not audio")
    return waveform


def _not_samples(what: str) -> AudioError:
    return AudioError(
        f"cannot embed a {what}: give an audio file or folder (str or Path) or real-valued "
        "samples (float32 [samples] at 16 kHz)"
    )


def _too_long(samples: int) -> AudioError:
    return AudioError(
        f"the waveform: {samples / SAMPLE_RATE:.1f} s of audio is longer than the limit of "
        f"{MAX_SECONDS:g} s per recording; split it"
    )


__all__ = ["Audio", "CryPrint", "embedder_for", "verify"]
