"""Does trimming to the cry hurt? Dev and test EER of a model with and without trimming, and the
cosine between a cry and the same cry padded with 5 s of silence, both ways.

    python benchmarks/bench_activity.py --model demo/runs/triplet/best --data demo/corpus

Prints one table; writes nothing (no embedding store is used, so every number is computed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from common import machine_description
from cryprint import CryPrint
from cryprint.data.inputs import read_recording
from cryprint.data.layout import read_pairs
from cryprint.evaluation.pairs import score_pairs
from cryprint.inference.splits import embed_split
from cryprint.scoring import compute_eer, cosine_matrix


def split_eer(embedder: CryPrint, data: Path, split: str) -> float:
    pairs = read_pairs(data, split)
    scores = score_pairs(embed_split(embedder, data, split), pairs)
    return compute_eer(scores, pairs["label"].to_numpy()).eer


def padded_cosines(embedder: CryPrint, data: Path, count: int = 20) -> np.ndarray:
    """Cosine between each of ``count`` test recordings and itself padded with 5 s of silence."""
    folders = sorted((data / "audio" / "test").glob("*/B"))[:count]
    silence = np.zeros(5 * 16000, dtype=np.float32)
    cosines = []
    for folder in folders:
        cry = read_recording(folder)
        both = embedder.embed_many([cry, np.concatenate([silence, cry, silence])])
        cosines.append(cosine_matrix(both[:1], both[1:])[0, 0])
    return np.array(cosines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("demo/runs/triplet/best"))
    parser.add_argument("--data", type=Path, default=Path("demo/corpus"))
    args = parser.parse_args()
    print(machine_description())
    print(f"{'trim':6}{'dev EER':>10}{'test EER':>10}{'padded cosine min / mean':>28}")
    for trim in (False, True):
        embedder = CryPrint(args.model, store=False, trim=trim)
        dev, test = split_eer(embedder, args.data, "dev"), split_eer(embedder, args.data, "test")
        cosines = padded_cosines(embedder, args.data)
        print(
            f"{'on' if trim else 'off':6}{100 * dev:>9.2f}%{100 * test:>9.2f}%"
            f"{cosines.min():>18.4f} / {cosines.mean():.4f}"
        )


if __name__ == "__main__":
    main()
