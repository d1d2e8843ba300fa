"""Score fusion of several models (``evaluate --model A --model B --fuse``): fitted on the dev
pairs, stored, applied to any split and to ``submit``.

The fusion (:mod:`cryprint.scoring.fusion`) is fitted on the raw cosine scores of the labelled
dev pairs only, whatever split is evaluated: test labels are never read for it. It is stored as
``fusion.json`` with the ``model_id`` of every fused model, in order, and how their recordings
were embedded (TTA views, trimming); applying it to other weights or other embedding options is
refused, since the weights are only right for the score distributions they were fitted on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cryprint.data.layout import read_pairs
from cryprint.errors import FIELD, ConfigError, DataError, ModelError
from cryprint.evaluation.pairs import score_pairs
from cryprint.evaluation.report import (
    REPORT_NAME,
    metrics_or_none,
    new_report,
    to_json,
    write_figures,
    write_scores,
)
from cryprint.inference.options import describe_basis
from cryprint.inference.splits import embed_split
from cryprint.io import atomic_write_text, read_json, replace_folder, staging_folder
from cryprint.scoring.fusion import Fusion, fit_fusion, stack_scores

if TYPE_CHECKING:
    from cryprint.inference.api import CryPrint

FUSION_NAME = "fusion.json"
# The subfolder of an evaluation's output folder that holds the fused scores.
FUSED_FOLDER = "fused"
# ``fusion="dev"``: fit on the dev pairs now; anything else is a fusion.json to apply.
FIT_ON_DEV = "dev"
_KEYS = {"kind", "model_ids", "fusion", "embedding", "fitted_on"}
_KIND = "cryprint score fusion"


@dataclass(frozen=True)
class StoredFusion:
    """A fusion and what it belongs to: the fused models' ``model_id`` (in the order of the
    fusion's weights), how their recordings were embedded, and the trials it was fitted on."""

    fusion: Fusion
    model_ids: tuple[str, ...]
    embedding: dict[str, Any]
    fitted_on: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": _KIND,
            "model_ids": list(self.model_ids),
            "fusion": self.fusion.to_dict(),
            "embedding": self.embedding,
            "fitted_on": self.fitted_on,
        }


def how_models_embed(embedders: Sequence[CryPrint]) -> dict[str, Any]:
    """How the fused models embed recordings: the TTA views and trimming (the same for all of
    them) and each model's embedding id (its weights, engine and precision: bf16 or int8
    embeddings have their own)."""
    bases = [embedder.options.score_basis for embedder in embedders]
    if any(basis != bases[0] for basis in bases):
        raise ConfigError(
            "fused models must embed with the same {tta} and {trim}",
            fields={"tta": FIELD, "trim": FIELD},
        )
    return {**bases[0], "embedding_ids": [embedder.engine.embedding_id for embedder in embedders]}


def labelled_dev_pairs(root: Path) -> pd.DataFrame:
    """The dev pairs a fusion is fitted on, checked to have labels of both classes.

    Raises:
        DataError: no labels, or only one class.
    """
    pairs = read_pairs(root, "dev")
    if "label" not in pairs.columns:
        raise DataError(f"{root}/dev_pairs.csv has no labels: the fusion is fitted on them")
    if pairs["label"].nunique() != 2:
        raise DataError(f"{root}/dev_pairs.csv needs same-baby and different-baby pairs")
    return pairs


def split_scores(
    embedders: Sequence[CryPrint], root: Path, split: str, pairs: pd.DataFrame, progress: bool
) -> np.ndarray:
    """Each model's raw cosine scores of ``pairs``: float64 [n_pairs, n_models]."""
    return stack_scores(
        [
            score_pairs(embed_split(embedder, root, split, progress=progress), pairs)
            for embedder in embedders
        ]
    )


def fit_on_dev(
    embedders: Sequence[CryPrint],
    root: Path,
    progress: bool = False,
    dev_scores: np.ndarray | None = None,
) -> StoredFusion:
    """Fit the fusion of these models on the labelled dev pairs of ``root``.

    Args:
        dev_scores: the models' cosine scores of the dev pairs, float [n_pairs, n_models], when
            already computed (an evaluation of the dev split); else they are computed here.

    Raises:
        ConfigError: fewer than two models. DataError: dev pairs without labels.
    """
    if len(embedders) < 2:
        raise ConfigError("fusion needs at least two models")
    pairs = labelled_dev_pairs(root)
    labels = pairs["label"].to_numpy()
    if dev_scores is None:
        dev_scores = split_scores(embedders, root, "dev", pairs, progress)
    fitted_on = {
        "split": "dev",
        "data": str(root.resolve()),
        "n_pairs": len(pairs),
        "n_target": int(labels.sum()),
    }
    return StoredFusion(
        fit_fusion(dev_scores, labels),
        tuple(e.model_id for e in embedders),
        how_models_embed(embedders),
        fitted_on,
    )


def save_fusion(path: Path | str, stored: StoredFusion) -> Path:
    """Write ``fusion.json`` atomically."""
    return atomic_write_text(path, json.dumps(stored.to_dict(), indent=2, allow_nan=False) + "\n")


def load_fusion(path: Path | str, embedders: Sequence[CryPrint] | None = None) -> StoredFusion:
    """Read a ``fusion.json``; given the models, check it fuses exactly these weights, in this
    order, embedded the same way.

    Raises:
        ModelError: unreadable, not a fusion, or written for other models or options; the
            message names the file and what differs.
    """
    source = Path(path)
    data = read_json(source, "fusion file", ModelError)
    if not isinstance(data, dict) or set(data) != _KEYS or data["kind"] != _KIND:
        raise ModelError(f"{source} is not a cryprint fusion file (from `evaluate --fuse`)")
    try:
        stored = StoredFusion(
            Fusion.from_dict(data["fusion"]),
            tuple(str(model_id) for model_id in data["model_ids"]),
            dict(data["embedding"]),
            dict(data["fitted_on"]),
        )
    except (ModelError, TypeError, ValueError, OverflowError) as error:
        raise ModelError(f"fusion file {source} is invalid: {error}") from error
    if len(stored.model_ids) != len(stored.fusion.weights):
        raise ModelError(f"fusion file {source} is invalid: one weight per model is needed")
    if embedders is not None:
        _check_models(source, stored, embedders)
    return stored


def _check_models(source: Path, stored: StoredFusion, embedders: Sequence[CryPrint]) -> None:
    ids = tuple(embedder.model_id for embedder in embedders)
    if ids != stored.model_ids:
        if sorted(ids) == sorted(stored.model_ids):
            why = "the same models in another order: give the models in its order"
        else:
            why = f"{len(stored.model_ids)} other model(s) (the weights differ)"
        raise ModelError(f"fusion file {source} was fitted for {why}")
    options = how_models_embed(embedders)
    basis = embedders[0].options.score_basis
    fitted = {key: stored.embedding.get(key) for key in basis}
    if fitted != basis:
        raise ModelError(
            f"fusion file {source} was fitted on recordings embedded with {fitted}, not "
            f"with {describe_basis(basis)}: pass the same {{tta}} and {{trim}}, or fit it "
            "again ({fusion})",
            fields={"tta": FIELD, "trim": FIELD, "fusion": FIT_ON_DEV},
        )
    if stored.embedding.get("embedding_ids") != options["embedding_ids"]:
        raise ModelError(
            f"fusion file {source} was fitted on embeddings of another {{precision}} or "
            "{backend} (bf16, int8): use the same ones, or fit it again ({fusion})",
            fields={"precision": FIELD, "backend": FIELD, "fusion": FIT_ON_DEV},
        )


def resolve_fusion(
    fusion: str | Path, embedders: Sequence[CryPrint], root: Path, progress: bool = False
) -> StoredFusion:
    """The string ``"dev"`` → fit on the dev pairs of ``root`` now; a :class:`~pathlib.Path`
    → that stored fusion, checked against the models."""
    if isinstance(fusion, str) and fusion == FIT_ON_DEV:
        return fit_on_dev(embedders, root, progress)
    if len(embedders) < 2:
        raise ConfigError("fusion needs at least two models")
    return load_fusion(fusion, embedders)


def write_fused_evaluation(
    stored: StoredFusion, embedders: Sequence[CryPrint], names: list[str],
    columns: list[np.ndarray], trials: tuple[Path, str, pd.DataFrame], folder: Path,
    p_targets: Sequence[float],
) -> dict[str, Any]:  # fmt: skip
    """The fused scores' output folder: report.json, scores.csv (each model's cosine score
    and the fused score), fusion.json and the figures, swapped in as a whole. ``trials``:
    the data directory, split and pairs scored."""
    root, split, pairs = trials
    started = time.perf_counter()
    fused = stored.fusion.apply(stack_scores(columns))
    labels = pairs["label"].to_numpy() if "label" in pairs.columns else None
    identity = {
        "model": f"fused({' + '.join(names)})",
        "models": names,
        "model_ids": list(stored.model_ids),
    }
    recordings = set(pairs["baby_id_B"] + "B") | set(pairs["baby_id_D"] + "D")
    descriptions = dict.fromkeys(embedder.embedding_description for embedder in embedders)
    embedded = {**embedders[0].embedded_as, "embedded_with": " + ".join(descriptions)}
    report = new_report(
        identity, split, {"data": str(root.resolve())}, len(pairs), labels, len(recordings),
        score="logistic fusion of the models' cosine scores (log-odds at the dev prior)",
        embedded=embedded, p_targets=p_targets,
    )  # fmt: skip
    report["fusion"] = stored.to_dict()
    fitted_on = (stored.fitted_on.get("split"), stored.fitted_on.get("data"))
    if split == "dev" and fitted_on == ("dev", str(root.resolve())):
        report["warning"] = (
            "the fusion was fitted on these dev pairs: its dev metrics are optimistic, test "
            "is the fair measure"
        )
    report.update(metrics_or_none(fused, labels, p_targets))
    scores = {f"score_{name}": column for name, column in zip(names, columns, strict=True)}
    with staging_folder(folder) as staging:
        report["files"]["fusion"] = save_fusion(staging / FUSION_NAME, stored).name
        report["files"]["scores"] = write_scores(
            staging / "scores.csv", pairs, {**scores, "score": fused}, labels
        ).name
        if labels is not None:
            figures = write_figures(staging, report, {"score": fused}, labels, "fused score")
            report["files"].update(figures)
        report["seconds"] = round(time.perf_counter() - started, 3)
        atomic_write_text(staging / REPORT_NAME, to_json(report))
        replace_folder(staging, folder, REPORT_NAME)
    return report
