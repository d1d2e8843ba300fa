"""The split table of a CryCeleb-layout directory (babies per split, files, hours, durations)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from cryprint.data.layout import SPLITS, read_metadata


def summarize(root: Path | str, check_files: bool = True) -> dict:
    """Per split: babies (with both B and D, only B, only D), files, hours of audio, and segment
    duration min / quartiles / max in seconds, from ``metadata.csv`` alone (no audio is read).

    Returns:
        ``{"root": str, "splits": {split: {...}, "total": {...}}}``, JSON-ready: a sum or mean
        too large for a float (absurd durations) is None, never inf.
    """
    metadata = read_metadata(root, check_files=check_files)
    splits = {}
    for split in (*SPLITS, "total"):
        rows = metadata if split == "total" else metadata[metadata["split"] == split]
        if rows.empty:
            continue
        splits[split] = _split_row(rows)
    return {"root": str(root), "splits": splits}


def _finite(value: float) -> float | None:
    """``value`` as a float, or None when it is inf or NaN (which JSON cannot hold)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _split_row(rows: pd.DataFrame) -> dict:
    periods = rows.groupby("baby_id")["period"].agg(lambda p: "".join(sorted(set(p))))
    durations = rows["duration"].to_numpy()
    # Every duration is finite (read_metadata checks), but absurd ones can overflow a sum or a
    # mean; those are reported as None (JSON null, "n/a" in the table), never as Infinity.
    with np.errstate(over="ignore", invalid="ignore"):
        quartiles = np.percentile(durations, [25, 50, 75])
        hours = durations.sum() / 3600
        mean = durations.mean()
    return {
        "babies": len(periods),
        "both": int((periods == "BD").sum()),
        "only_B": int((periods == "B").sum()),
        "only_D": int((periods == "D").sum()),
        "files": len(rows),
        "hours": _finite(hours),
        "duration_mean": _finite(mean),
        "duration_min": _finite(durations.min()),
        "duration_q1": _finite(quartiles[0]),
        "duration_median": _finite(quartiles[1]),
        "duration_q3": _finite(quartiles[2]),
        "duration_max": _finite(durations.max()),
    }


def _number(value: float | None, width: int = 0) -> str:
    return f"{'n/a' if value is None else format(value, '.2f'):>{width}}"


def format_summary(summary: dict) -> str:
    """The summary as a fixed-width text table, every header over its column."""
    columns = (
        ("split", "<", 6), ("babies", ">", 6), ("both", ">", 6), ("only B", ">", 6),
        ("only D", ">", 6), ("files", ">", 6), ("hours", ">", 6), ("min", ">", 6),
        ("q1", ">", 6), ("median", ">", 6), ("q3", ">", 6), ("max", ">", 6),
    )  # fmt: skip
    header = " ".join(f"{name:{align}{width}}" for name, align, width in columns)
    seconds_at = sum(width + 1 for _, _, width in columns[:7])
    lines = [
        f"CryCeleb-layout data in {summary['root']}",
        (" " * seconds_at + "segment seconds".center(len(header) - seconds_at)).rstrip(),
        header,
        "-" * len(header),
    ]
    keys = ("duration_min", "duration_q1", "duration_median", "duration_q3", "duration_max")
    for split, row in summary["splits"].items():
        cells = [split, *(row[k] for k in ("babies", "both", "only_B", "only_D", "files"))]
        cells += [_number(row["hours"]), *(_number(row[key]) for key in keys)]
        lines.append(
            " ".join(
                f"{cell:{align}{width}}"
                for cell, (_, align, width) in zip(cells, columns, strict=True)
            )
        )
    return "\n".join(lines)
