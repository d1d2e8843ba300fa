"""A run folder that holds everything needed to reproduce the run.

``runs/NAME/``: ``config.yaml`` (the validated config), ``environment.json`` (seed, package
versions, git revision, python, device, where the initial weights came from), ``metrics.csv``
(one row per epoch), ``train.log``, ``checkpoints/``, ``best/`` (a model folder).
"""

from __future__ import annotations

import csv
import io
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from cryprint.io import atomic_write_text

PACKAGES = (
    "cryprint",
    "torch",
    "torchaudio",
    "speechbrain",
    "pytorch-metric-learning",
    "numpy",
    "pandas",
)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_revision() -> str:
    """The git commit of the cryprint source (with ``-dirty`` when modified), or ``unknown``."""
    source = Path(__file__).resolve().parent
    try:
        revision = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return revision or "unknown"


def environment(seed: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "seed": seed,
        "packages": package_versions(),
        "git_revision": git_revision(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "command": sys.argv,
        **(extra or {}),
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, default=str) + "\n")


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite the whole metrics table (atomically, so a resumed run's table has no stale rows)."""
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
