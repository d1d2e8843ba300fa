"""AS-norm with a model's own cohort: kept by the dev evaluation, used exactly when it helped
(or when asked), refused when it belongs to other weights or other embedding options."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cryprint.errors import ConfigError, ModelError
from cryprint.evaluation.calibrate_model import calibrate_model
from cryprint.evaluation.evaluate import evaluate
from cryprint.inference.api import CryPrint, verify
from cryprint.inference.options import EmbeddingOptions
from cryprint.inference.splits import embed_split
from cryprint.models.folder import save_model_folder


def _dev(corpus: Path, index: int, period: str) -> Path:
    return sorted((corpus / "audio" / "dev").iterdir())[index] / period


@pytest.fixture
def evaluated(small_corpus: Path, model_folder: Path, tmp_path: Path) -> Path:
    """A tiny model folder after `evaluate --split dev` (cohort kept)."""
    evaluate([model_folder], small_corpus, "dev", tmp_path / "out")
    return model_folder


def _set_helped(folder: Path, helped: bool) -> None:
    record = json.loads((folder / "evaluation.json").read_text())
    record["as_norm"]["helped"] = helped
    (folder / "evaluation.json").write_text(json.dumps(record))


def test_the_dev_evaluation_keeps_a_cohort_and_its_decision(
    evaluated: Path, small_corpus: Path
) -> None:
    record = json.loads((evaluated / "evaluation.json").read_text())
    decision = record["as_norm"]
    train = embed_split(evaluated, small_corpus, "train")
    assert decision["cohort_size"] == len(train.keys) and decision["cohort_split"] == "train"
    costs = decision["min_dcf"]
    assert decision["helped"] == (costs["as_norm"] < costs["cosine"])
    assert (evaluated / "cohort.npz").is_file()
    normalised = record["asnorm_thresholds"]["eer"]
    assert normalised["embedding"] == {"tta": 1, "trim": True, "as_norm": True}
    assert record["thresholds"]["eer"]["embedding"]["as_norm"] is False
    # The 12 different-baby dev pairs of the small corpus, sorted, of both kinds.
    for kind in ("cosine", "as_norm"):
        scores = record["nontarget_scores"][kind]
        assert len(scores) == 12 and scores == sorted(scores)


def _naive_as_norm(a, b, cohort, top_n):
    """AS-norm of one trial written out: each side's top-n cohort cosines' mean and std."""
    unit = lambda x: x / np.linalg.norm(x)  # noqa: E731
    cohort = np.array([unit(c) for c in cohort])
    raw = float(unit(a) @ unit(b))
    sides = []
    for x in (a, b):
        best = np.sort(cohort @ unit(x))[-top_n:]
        sides.append((raw - best.mean()) / best.std())
    return 0.5 * sum(sides)


@pytest.mark.parametrize("helped", [True, False])
def test_scores_are_normalised_exactly_when_it_helped(
    evaluated: Path, small_corpus: Path, helped: bool
) -> None:
    _set_helped(evaluated, helped)
    embedder = CryPrint(evaluated, store=False)
    assert embedder.as_norm == helped
    a, b = _dev(small_corpus, 0, "B"), _dev(small_corpus, 1, "D")
    left, right = embedder.embed_many([a, b]).astype(np.float64)
    cohort = embed_split(evaluated, small_corpus, "train").embeddings.astype(np.float64)
    top_n = json.loads((evaluated / "evaluation.json").read_text())["as_norm"]["top_n"]
    raw = float(left @ right / (np.linalg.norm(left) * np.linalg.norm(right)))
    expected = _naive_as_norm(left, right, cohort, top_n) if helped else raw
    assert embedder.score(a, b) == pytest.approx(expected, abs=1e-9)
    verdict = embedder.verify(a, b)
    kind = "asnorm_thresholds" if helped else "thresholds"
    stored = json.loads((evaluated / "evaluation.json").read_text())[kind]["eer"]["threshold"]
    assert verdict.threshold == stored
    # The other kind on request, whatever the record says.
    assert CryPrint(evaluated, store=False, as_norm=not helped).as_norm == (not helped)


def test_as_norm_is_refused_without_a_cohort(small_corpus: Path, model_folder: Path) -> None:
    with pytest.raises(ConfigError, match="no AS-norm cohort"):
        CryPrint(model_folder, store=False, as_norm=True)
    assert CryPrint(model_folder, store=False).as_norm is False  # nothing recorded: raw


def test_another_models_cohort_is_refused(
    evaluated: Path, small_corpus: Path, make_model, tmp_path: Path
) -> None:
    other = save_model_folder(make_model(3), tmp_path / "other")
    evaluate([other], small_corpus, "dev", tmp_path / "other-out")
    shutil.copyfile(other / "cohort.npz", evaluated / "cohort.npz")
    with pytest.raises(ModelError, match="cohort of other weights"):
        CryPrint(evaluated, store=False, as_norm=True)


def test_a_cohort_embedded_otherwise_is_refused(evaluated: Path) -> None:
    _set_helped(evaluated, True)
    # The decision was measured on 1-view embeddings: with 3 views it does not apply...
    assert CryPrint(evaluated, store=False, tta=3).as_norm is False
    # ...and asking for it anyway is refused, naming how the cohort was embedded.
    with pytest.raises(ConfigError, match=r"the cohort in .* 1 TTA view, trimmed"):
        CryPrint(evaluated, store=False, tta=3, as_norm=True)


def test_a_calibration_records_its_normalisation_and_verify_holds_to_it(
    evaluated: Path, small_corpus: Path
) -> None:
    _set_helped(evaluated, True)
    calibrate_model(evaluated, small_corpus)
    fitted = json.loads((evaluated / "calibration.json").read_text())["fitted_on"]
    assert fitted["embedding"] == {"tta": 1, "trim": True, "as_norm": True}
    a, b = _dev(small_corpus, 0, "B"), _dev(small_corpus, 0, "D")
    assert verify(evaluated, a, b, prior=0.3).probability is not None
    raw = EmbeddingOptions(as_norm=False)
    with pytest.raises(ConfigError, match=r"calibration .* AS-norm"):
        verify(evaluated, a, b, prior=0.3, embedding=raw)
