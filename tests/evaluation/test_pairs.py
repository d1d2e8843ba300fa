"""Pair scores: the vectorised lookup equals a per-pair loop; missing recordings are named."""

import numpy as np
import pandas as pd
import pytest

from cryprint.errors import DataError
from cryprint.evaluation.pairs import (
    DEFAULT_COHORT_TOP_N,
    resolve_top_n,
    score_pairs,
    score_pairs_as_norm,
)
from cryprint.inference.splits import RecordingEmbeddings
from cryprint.scoring import as_norm_matrix

BABIES = ["0007", "0133", "0611", "1024", "2048"]


def _embeddings(keys: list[str], seed: int, dim: int = 8) -> RecordingEmbeddings:
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(len(keys), dim)).astype(np.float32)
    matrix *= rng.uniform(0.5, 3.0, size=(len(keys), 1)).astype(np.float32)  # norms differ
    return RecordingEmbeddings(keys, matrix, "model")


def _all_pairs(babies: list[str]) -> pd.DataFrame:
    rows = [(b, d, f"{b}B_{d}D") for b in babies for d in babies]
    return pd.DataFrame(rows, columns=["baby_id_B", "baby_id_D", "id"])


def _keys(babies: list[str]) -> list[str]:
    # Shuffled so that row order is not the pairs' order.
    keys = [f"{baby}{period}" for baby in babies for period in "BD"]
    return [keys[i] for i in np.random.default_rng(3).permutation(len(keys))]


def test_vectorised_scores_equal_a_per_pair_loop() -> None:
    embeddings = _embeddings(_keys(BABIES), seed=0)
    pairs = _all_pairs(BABIES).sample(frac=1.0, random_state=1).reset_index(drop=True)
    scores = score_pairs(embeddings, pairs)
    expected = []
    for _, pair in pairs.iterrows():
        b = embeddings.embeddings[embeddings.keys.index(pair["baby_id_B"] + "B")]
        d = embeddings.embeddings[embeddings.keys.index(pair["baby_id_D"] + "D")]
        expected.append(float(np.dot(b, d) / (np.linalg.norm(b) * np.linalg.norm(d))))
    assert scores.shape == (len(pairs),)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)


def test_a_pair_naming_a_missing_recording_is_named() -> None:
    keys = [key for key in _keys(BABIES) if key != "0611D"]
    pairs = _all_pairs(BABIES)
    with pytest.raises(DataError, match=r"pair 0007B_0611D: no recording 0611D \(baby 0611"):
        score_pairs(_embeddings(keys, seed=0), pairs)
    # A baby id that exists only in the other period is missing too.
    pairs = pd.DataFrame(
        [["9999", "0007", "9999B_0007D"]], columns=["baby_id_B", "baby_id_D", "id"]
    )
    with pytest.raises(DataError, match="pair 9999B_0007D: no recording 9999B"):
        score_pairs(_embeddings(_keys(BABIES), seed=0), pairs)


def test_as_norm_pairs_equal_the_full_matrix() -> None:
    embeddings = _embeddings(_keys(BABIES), seed=0)
    cohort = _embeddings([f"c{i:03d}B" for i in range(30)], seed=5)
    pairs = _all_pairs(BABIES)
    scores = score_pairs_as_norm(embeddings, pairs, cohort, top_n=7)
    matrix = as_norm_matrix(embeddings.embeddings, embeddings.embeddings, cohort.embeddings, 7)
    rows = [embeddings.keys.index(b + "B") for b in pairs["baby_id_B"]]
    columns = [embeddings.keys.index(d + "D") for d in pairs["baby_id_D"]]
    np.testing.assert_allclose(scores, matrix[rows, columns], atol=1e-10)
    # Not the raw scores.
    assert np.abs(scores - score_pairs(embeddings, pairs)).max() > 0.1


def test_cohort_must_not_hold_the_trials() -> None:
    embeddings = _embeddings(_keys(BABIES), seed=0)
    with pytest.raises(DataError, match="cohort holds recordings of the trials"):
        score_pairs_as_norm(embeddings, _all_pairs(BABIES), embeddings, top_n=3)


def test_cohort_top_n() -> None:
    assert resolve_top_n("auto", 44) == 44
    assert resolve_top_n(None, 500) == DEFAULT_COHORT_TOP_N == 100
    assert resolve_top_n(10, 44) == 10
    with pytest.raises(DataError, match=r"cohort top-n 45 is outside \[2, 44\]"):
        resolve_top_n(45, 44)
    with pytest.raises(DataError, match="outside"):
        resolve_top_n(1, 44)
    with pytest.raises(DataError, match="at least 2"):
        resolve_top_n("auto", 1)
