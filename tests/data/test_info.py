"""The split table: counts, and a JSON summary that any JSON parser reads."""

import json
from pathlib import Path

import pandas as pd
import pytest

from cryprint.cli import main
from cryprint.data.info import format_summary, summarize
from cryprint.data.layout import METADATA_COLUMNS


def _strict_json(text: str) -> dict:
    """``json.loads`` that refuses ``Infinity``, ``-Infinity`` and ``NaN`` (not JSON)."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not valid JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def _metadata(root: Path, durations: list[str]) -> None:
    rows = [
        [f"{i:04d}", "B", duration, "train", "001", f"audio/{i}.wav", f"{i:04d}_B_001"]
        for i, duration in enumerate(durations)
    ]
    root.mkdir()
    pd.DataFrame(rows, columns=list(METADATA_COLUMNS)).to_csv(root / "metadata.csv", index=False)


def test_info_json_counts_the_small_corpus(
    small_corpus: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["info", str(small_corpus), "--json"]) == 0
    summary = _strict_json(capsys.readouterr().out)
    metadata = pd.read_csv(small_corpus / "metadata.csv", dtype=str)
    assert summary["splits"]["total"]["files"] == len(metadata)
    assert summary["splits"]["total"]["babies"] == metadata["baby_id"].nunique()


def test_info_json_stays_valid_when_durations_overflow(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Each duration is finite, as read_metadata requires; their sum and mean are not.
    _metadata(tmp_path / "data", ["1.7e308", "1.7e308", "1.0"])
    assert main(["info", str(tmp_path / "data"), "--json", "--no-check-files"]) == 0
    row = _strict_json(capsys.readouterr().out)["splits"]["train"]
    assert row["hours"] is None and row["duration_mean"] is None
    assert row["duration_max"] == pytest.approx(1.7e308) and row["duration_min"] == 1.0
    text = format_summary(summarize(tmp_path / "data", check_files=False))
    assert "train" in text and "n/a" in text
