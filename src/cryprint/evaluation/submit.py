"""Write a CryCeleb2023 challenge submission: a score for every test pair, in the sample's order.

The file must match ``sample_submission.csv`` exactly: the same ids in the same order, one
finite float score each (higher = more likely the same baby). The text to be written is parsed
back and checked against the sample before anything is written; the write is atomic, so a
failure leaves an earlier submission untouched and never a partial one.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cryprint.data.layout import read_pairs, read_sample_submission
from cryprint.errors import FIELD, ConfigError, DataError
from cryprint.evaluation.fused import FIT_ON_DEV, StoredFusion, resolve_fusion, split_scores
from cryprint.evaluation.pairs import TopN, pair_indices, resolve_top_n, score_pairs_as_norm
from cryprint.inference.api import embedder_for
from cryprint.inference.options import EmbeddingOptions
from cryprint.inference.splits import embed_split
from cryprint.io import atomic_write_text, writable_target
from cryprint.models.folder import ModelSpec


@dataclass(frozen=True)
class Submission:
    """What :func:`write_submission` wrote: the file, its row count, the model, the AS-norm
    ``top_n`` (None for raw cosine scores)."""

    path: Path
    n_pairs: int
    model_id: str
    as_norm_top_n: int | None
    computed: int = 0  # recordings embedded by the model; the rest came from the store
    fusion: StoredFusion | None = None  # the fusion of a fused submission

    def scoring(self) -> str:
        """How the scores were made, in words: cosine, AS-norm (top N) or the fusion."""
        if self.fusion is not None:
            weights = ", ".join(f"{w:.6g}" for w in self.fusion.fusion.weights)
            fitted = self.fusion.fitted_on
            return (
                f"fused ({len(self.fusion.model_ids)} models: weights {weights}, bias "
                f"{self.fusion.fusion.bias:.6g}, fitted on {fitted.get('n_pairs')} "
                f"{fitted.get('split')} pairs)"
            )
        return "cosine" if self.as_norm_top_n is None else f"AS-norm (top {self.as_norm_top_n})"


def submit(
    models: Sequence[ModelSpec],
    root: Path | str,
    out: Path | str,
    as_norm_top_n: TopN | None = None,
    fusion: str | Path | None = None,
    *,
    embedding: EmbeddingOptions | None = None,
    progress: bool = False,
) -> Submission:
    """The submission of one model (:func:`write_submission`), or of several fused
    (:func:`write_fused_submission`, ``fusion``: ``"dev"`` or a ``fusion.json``).

    Raises:
        ConfigError: several models without a fusion, or a fusion with AS-norm; else as the
            function it calls.
    """
    if fusion is None and len(models) > 1:
        raise ConfigError("several models are fused: add {fusion}", fields={"fusion": FIELD})
    if fusion is not None and as_norm_top_n is not None:
        raise ConfigError(
            "fusion combines raw cosine scores: it cannot be used with {as_norm}",
            fields={"as_norm": FIELD},
        )
    if not models:
        raise ConfigError("no model to submit with")
    if fusion is None:
        return write_submission(
            models[0], root, out, as_norm_top_n, embedding=embedding, progress=progress
        )
    return write_fused_submission(models, root, out, fusion, embedding=embedding, progress=progress)


def check_submission(submission: pd.DataFrame, sample: pd.DataFrame) -> None:
    """Check a submission against the sample: columns ``id, score``, the same ids in the same
    order, every score a finite float.

    Raises:
        DataError: naming the first difference.
    """
    if list(submission.columns) != ["id", "score"]:
        raise DataError(f"submission columns are {list(submission.columns)}, expected id, score")
    if len(submission) != len(sample):
        raise DataError(
            f"submission has {len(submission)} rows, sample_submission.csv {len(sample)}"
        )
    ids = submission["id"].astype(str).to_numpy()
    expected = sample["id"].astype(str).to_numpy()
    differ = ids != expected
    if differ.any():
        row = int(np.flatnonzero(differ)[0])
        raise DataError(
            f"submission row {row + 1} has id {ids[row]}, sample_submission.csv has {expected[row]}"
        )
    scores = pd.to_numeric(submission["score"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(scores)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{int(bad.sum())} submission score(s) are not finite numbers, first for "
            f"{ids[row]}: {submission['score'].iloc[row]!r}"
        )


def write_submission(
    model: ModelSpec,
    root: Path | str,
    out: Path | str,
    as_norm_top_n: TopN | None = None,
    *,
    embedding: EmbeddingOptions | None = None,
    progress: bool = False,
) -> Submission:
    """Score every pair of ``test_pairs.csv`` and write ``out`` in the ids and order of
    ``sample_submission.csv``.

    Args:
        model: a model spec (folder, checkpoint, hub id) or a loaded model.
        root: a CryCeleb-layout data directory.
        out: the CSV to write (``id,score``).
        as_norm_top_n: None to score as the model does (raw cosine, or AS-norm against its
            folder's cohort: :attr:`~cryprint.EmbeddingOptions.as_norm`); ``"auto"`` or an int
            for AS-norm scores against this data's train split (see
            :func:`cryprint.evaluation.evaluate.evaluate`).
        embedding: how recordings are embedded (:class:`~cryprint.EmbeddingOptions`;
            None: the defaults).
        progress: show progress.

    Raises:
        DataError: the sample's ids are not exactly the test pairs' ids, or a score is not
            finite; nothing is written then. OutputError: ``out`` cannot be written.
    """
    root, out = Path(root), Path(out)
    sample, pairs = _checked_sample(root, out)
    embedder = embedder_for(model, embedding)
    embeddings = embed_split(embedder, root, "test", progress=progress)
    if as_norm_top_n is None:
        # As the model scores: raw cosine, or AS-norm against its own cohort where it helped.
        scores = embedder.score_pairs(embeddings.embeddings, pair_indices(embeddings, pairs))
        top_n = None if embedder.cohort is None else embedder.cohort.top_n
    else:
        cohort = embed_split(
            embedder, root, "train", progress=progress, purpose="the AS-norm cohort"
        )
        top_n = resolve_top_n(as_norm_top_n, len(cohort.keys))
        scores = score_pairs_as_norm(embeddings, pairs, cohort, top_n)
    _write(out, sample, pairs, scores)
    return Submission(out, len(sample), embedder.model_id, top_n, embedder.computed)


def write_fused_submission(
    models: Sequence[ModelSpec],
    root: Path | str,
    out: Path | str,
    fusion: str | Path = FIT_ON_DEV,
    *,
    embedding: EmbeddingOptions | None = None,
    progress: bool = False,
) -> Submission:
    """:func:`write_submission` with the fused scores of several models (see
    :mod:`cryprint.evaluation.fused`): ``fusion`` is ``"dev"`` to fit the fusion on the dev
    pairs now, or the :class:`~pathlib.Path` of a ``fusion.json`` from ``evaluate --fuse``.
    The submission's ``model_id`` joins the models' ids with ``+``.

    Raises:
        as :func:`write_submission`; ConfigError for fewer than two models, ModelError for a
        fusion.json of other models.
    """
    root, out = Path(root), Path(out)
    sample, pairs = _checked_sample(root, out)
    embedders = [embedder_for(model, embedding) for model in models]
    stored = resolve_fusion(fusion, embedders, root, progress)
    scores = stored.fusion.apply(split_scores(embedders, root, "test", pairs, progress))
    _write(out, sample, pairs, scores)
    model_id = "+".join(embedder.model_id for embedder in embedders)
    computed = sum(embedder.computed for embedder in embedders)
    return Submission(out, len(sample), model_id, None, computed, stored)


def _checked_sample(root: Path, out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sample submission and the test pairs, checked to list the same ids, before any
    work; ``out`` checked to be a file that can be written."""
    writable_target(out)  # a folder, device or FIFO at ``out`` fails now, before any work
    sample = read_sample_submission(root)
    pairs = read_pairs(root, "test")
    pair_ids = set(pairs["id"])
    unknown = [pair_id for pair_id in sample["id"] if pair_id not in pair_ids]
    if unknown:
        raise DataError(
            f"{root / 'sample_submission.csv'}: {len(unknown)} id(s) are not test pairs "
            f"(first: {unknown[0]}); is it the sample of this data set?"
        )
    if len(sample) != len(pairs):
        sample_ids = set(sample["id"])
        missing = [pair_id for pair_id in pairs["id"] if pair_id not in sample_ids]
        raise DataError(
            f"{root / 'sample_submission.csv'} lists {len(sample)} ids, test_pairs.csv "
            f"{len(pairs)} (first test pair missing from the sample: {missing[0]})"
        )
    return sample, pairs


def _write(out: Path, sample: pd.DataFrame, pairs: pd.DataFrame, scores: np.ndarray) -> None:
    # The sample defines the order; test_pairs.csv lists the same ids (checked before).
    by_id = pd.Series(scores, index=pairs["id"].to_numpy())
    submission = pd.DataFrame(
        {"id": sample["id"].to_numpy(), "score": by_id[sample["id"]].to_numpy()}
    )
    text = submission.to_csv(index=False, float_format="%.8g", lineterminator="\n")
    written = pd.read_csv(io.StringIO(text), dtype={"id": str}, keep_default_na=False)
    check_submission(written, sample)
    atomic_write_text(out, text)
