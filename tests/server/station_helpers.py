"""Helpers of the ward station's tests."""

from __future__ import annotations

from pathlib import Path


def cry_files(corpus: Path, baby: str, period: str) -> list[Path]:
    """The segment files of one recording of the small corpus."""
    (folder,) = corpus.glob(f"audio/*/{baby}/{period}")
    return sorted(folder.glob("*.wav"))
