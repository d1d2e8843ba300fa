"""What a run's learning curve says while it runs: the time left, and whether it stopped while
still learning (pure: the metrics rows in, words out)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# "Still learning": over the last LOOKBACK epochs, validation EER fell at least this much per
# epoch on a least-squares line, and the best epoch is among the last two.
LOOKBACK = 5
MIN_FALL_PER_EPOCH = 0.002  # 0.2 EER points


def seconds_left(history: Sequence[dict[str, Any]], epochs: int) -> float | None:
    """Estimated seconds to the last epoch, from the mean time of the epochs run so far."""
    done = [row for row in history if row["epoch"] >= 1]
    if not done:
        return None
    mean = sum(row["seconds"] for row in done) / len(done)
    return mean * max(0, epochs - done[-1]["epoch"])


def format_duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``2.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def still_learning(history: Sequence[dict[str, Any]]) -> str | None:
    """A note when validation EER was still falling clearly over the last epochs (the run
    stopped too early for its schedule), else None."""
    rows = [row for row in history if row["epoch"] >= 1 and math.isfinite(row["validation_eer"])]
    if len(rows) < LOOKBACK + 1:
        return None
    last = rows[-LOOKBACK:]
    eers = np.array([row["validation_eer"] for row in last])
    slope = float(np.polyfit(np.arange(LOOKBACK), eers, 1)[0])
    best = min(rows, key=lambda row: row["validation_eer"])
    if slope > -MIN_FALL_PER_EPOCH or best["epoch"] < rows[-2]["epoch"]:
        return None
    return (
        f"still learning: validation EER fell {-100 * slope:.2f} points per epoch over the last "
        f"{LOOKBACK} epochs (to {100 * eers[-1]:.2f}% at epoch {last[-1]['epoch']}); more "
        "epochs would likely help"
    )
