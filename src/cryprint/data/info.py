"""The split table of a CryCeleb-layout directory (babies per split, files, hours, durations)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cryprint.data.layout import SPLITS, read_metadata


def summarize(root: Path | str, check_files: bool = True) -> dict:
    """Per split: babies (with both B and D, only B, only D), files, hours of audio, and segment
    duration min / quartiles / max in seconds, from ``metadata.csv`` alone (no audio is read).

    Returns:
        ``{"root": str, "splits": {split: {...}}, "total": {...}}``, JSON-ready.
    """
    metadata = read_metadata(root, check_files=check_files)
    splits = {}
    for split in (*SPLITS, "total"):
        rows = metadata if split == "total" else metadata[metadata["split"] == split]
        if rows.empty:
            continue
        splits[split] = _split_row(rows)
    return {"root": str(root), "splits": splits}


def _split_row(rows: pd.DataFrame) -> dict:
    periods = rows.groupby("baby_id")["period"].agg(lambda p: "".join(sorted(set(p))))
    durations = rows["duration"].to_numpy()
    quartiles = np.percentile(durations, [25, 50, 75])
    return {
        "babies": len(periods),
        "both": int((periods == "BD").sum()),
        "only_B": int((periods == "B").sum()),
        "only_D": int((periods == "D").sum()),
        "files": len(rows),
        "hours": float(durations.sum() / 3600),
        "duration_mean": float(durations.mean()),
        "duration_min": float(durations.min()),
        "duration_q1": float(quartiles[0]),
        "duration_median": float(quartiles[1]),
        "duration_q3": float(quartiles[2]),
        "duration_max": float(durations.max()),
    }


def format_summary(summary: dict) -> str:
    """The summary as a fixed-width text table."""
    header = (
        f"{'split':<6} {'babies':>6} {'both':>5} {'only B':>6} {'only D':>6} {'files':>6}"
        f" {'hours':>6}  segment seconds: min / q1 / median / q3 / max"
    )
    lines = [f"CryCeleb-layout data in {summary['root']}", header, "-" * len(header)]
    for split, row in summary["splits"].items():
        lines.append(
            f"{split:<6} {row['babies']:>6} {row['both']:>5} {row['only_B']:>6} {row['only_D']:>6}"
            f" {row['files']:>6} {row['hours']:>6.2f}  {row['duration_min']:.2f} /"
            f" {row['duration_q1']:.2f} / {row['duration_median']:.2f} / {row['duration_q3']:.2f}"
            f" / {row['duration_max']:.2f}"
        )
    return "\n".join(lines)
