"""Benchmark 3: scoring the 25,600 test pairs of CryCeleb2023 (160 babies, every B against
every D).

cryprint's ``score_pairs`` (one index lookup of both sides, one row-wise dot product) against
the reference notebook's row-by-row scoring: ``pairs.apply(...)`` calling
``torch.nn.CosineSimilarity`` on the two embeddings of each row. Same embeddings (random,
192-d), same pairs; the scores are checked equal.

    python benchmarks/bench_scoring.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from common import best_of, machine_description, table
from cryprint.evaluation.pairs import score_pairs
from cryprint.inference.splits import RecordingEmbeddings

BABIES = 160
DIMENSION = 192


def test_like_pairs(babies: int) -> tuple[RecordingEmbeddings, pd.DataFrame]:
    """Embeddings of ``babies`` B and D recordings and every B-D pair, in the test file's
    columns."""
    rng = np.random.default_rng(0)
    ids = [f"anonymous{index:03d}" for index in range(babies)]
    keys = [f"{baby}{period}" for baby in ids for period in "BD"]
    embeddings = RecordingEmbeddings(
        keys, rng.standard_normal((len(keys), DIMENSION)).astype(np.float32), "benchmark"
    )
    left = np.repeat(ids, babies)
    right = np.tile(ids, babies)
    names = [f"{b}B_{d}D" for b, d in zip(left, right, strict=True)]
    pairs = pd.DataFrame({"baby_id_B": left, "baby_id_D": right, "id": names})
    return embeddings, pairs


def row_by_row(embeddings: RecordingEmbeddings, pairs: pd.DataFrame) -> np.ndarray:
    """The reference notebook's way."""
    lookup = dict(zip(embeddings.keys, embeddings.embeddings, strict=True))
    cosine = torch.nn.CosineSimilarity(dim=-1)

    def score(row: pd.Series) -> float:
        return cosine(
            torch.tensor(lookup[row["baby_id_B"] + "B"]),
            torch.tensor(lookup[row["baby_id_D"] + "D"]),
        ).item()

    return pairs.apply(score, axis=1).to_numpy()


def main() -> None:
    print(machine_description())
    embeddings, pairs = test_like_pairs(BABIES)
    ours = score_pairs(embeddings, pairs)
    theirs = row_by_row(embeddings, pairs)
    difference = float(np.abs(ours - theirs).max())
    assert difference < 1e-5, f"the two ways disagree by {difference}"
    vectorised = best_of(20, lambda: score_pairs(embeddings, pairs))
    reference = best_of(3, lambda: row_by_row(embeddings, pairs))
    print(f"\n{len(pairs):,} pairs, {DIMENSION}-d embeddings; max |difference| {difference:.1e}")
    print(
        table(
            ["way", "seconds", "pairs per second"],
            [
                [
                    "cryprint score_pairs (vectorised)",
                    f"{vectorised:.4f}",
                    f"{len(pairs) / vectorised:,.0f}",
                ],
                [
                    "reference (pandas apply, torch cosine per row)",
                    f"{reference:.3f}",
                    f"{len(pairs) / reference:,.0f}",
                ],
            ],
        )
    )
    print(f"\nratio reference / cryprint: {reference / vectorised:.0f}x")


if __name__ == "__main__":
    main()
