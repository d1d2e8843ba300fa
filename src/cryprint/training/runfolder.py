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

from cryprint.errors import FIELD, ConfigError
from cryprint.io import atomic_write_text, remove_stale_temporaries
from cryprint.training.checkpoints import INDEX_NAME
from cryprint.training.config import TrainConfig, make_config

# Options that may change when a run is resumed; anything else must match the saved config.
RESUMABLE_OVERRIDES = ("epochs", "device", "amp", "compile")

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


def resumable_overrides(config: dict[str, Any]) -> tuple[str, ...]:
    """What may change when this run resumes: :data:`RESUMABLE_OVERRIDES`, except ``epochs``
    under a schedule planned over them (all but ``plateau``: the rate would jump)."""
    if config.get("schedule", "plateau") == "plateau":
        return RESUMABLE_OVERRIDES
    return tuple(key for key in RESUMABLE_OVERRIDES if key != "epochs")


def _differing_keys(current: dict[str, Any], saved: dict[str, Any]) -> list[str]:
    # "run" is where the folder is now: a run folder moved or copied elsewhere resumes there.
    free = (*resumable_overrides(saved), "run")
    return [
        key
        for key, value in current.items()
        if key not in free and key in saved and saved[key] != value
    ]


def _refuse_changes(changed: list[str], where: str, saved: dict[str, Any]) -> None:
    if changed:
        raise ConfigError(
            f"{{resume}}: options differ from {where} ({', '.join(changed)}); "
            f"only {', '.join(resumable_overrides(saved))} may change",
            fields={"resume": FIELD},
        )


def saved_config(run: Path) -> TrainConfig | None:
    """The validated ``config.yaml`` of a run folder, or None when it has none.

    Raises:
        ConfigError: the file is unreadable, not YAML, or not a valid config.
    """
    path = Path(run) / "config.yaml"
    if not path.is_file():
        return None
    return make_config(yaml_file=path)


def check_new_or_resumed(config: TrainConfig, run: Path, resume: bool) -> None:
    """A new run needs a folder without checkpoints; a resumed one the options it was started
    with (only :data:`RESUMABLE_OVERRIDES` may change).

    Raises:
        ConfigError: naming the options that differ, or saying to pass --resume.
    """
    if not resume:
        if (run / "checkpoints" / INDEX_NAME).is_file():
            raise ConfigError(
                f"{run} already holds a training run; pass {{resume}} to continue it "
                "or choose another {run}",
                fields={"resume": True, "run": FIELD},
            )
        return
    saved = saved_config(run)
    if saved is not None:
        previous = saved.to_dict()
        _refuse_changes(
            _differing_keys(config.to_dict(), previous), "the run's config.yaml", previous
        )


def check_same_run(config: TrainConfig, saved: Any, where: str) -> None:
    """Compare ``config`` with the config dict a checkpoint recorded (``where`` names it); a
    checkpoint without one is accepted as it is."""
    if isinstance(saved, dict):
        _refuse_changes(_differing_keys(config.to_dict(), saved), where, saved)


def run_config(
    overrides: dict[str, Any], yaml_file: Path | str | None = None, resume: bool = False
) -> TrainConfig:
    """The config a ``train`` call runs with: defaults ← ``yaml_file`` ← ``overrides`` (None
    values ignored); or, to resume a run given only by ``overrides["run"]`` (no YAML file), that
    run's saved config with the overrides (see :func:`resume_config`).

    Raises:
        ConfigError: an invalid config, or an override that changes a resumed run.
    """
    run = overrides.get("run")
    if resume and yaml_file is None and run and saved_config(Path(run)) is not None:
        return resume_config(Path(run), overrides)
    return make_config(overrides, yaml_file)


def resume_config(run: Path, overrides: dict[str, Any]) -> TrainConfig:
    """The config to resume ``run`` with: its saved ``config.yaml``, with the given overrides
    (None values ignored). Options other than :data:`RESUMABLE_OVERRIDES` must equal the saved
    ones, so ``cryprint train --run R --resume`` needs nothing else.

    Raises:
        ConfigError: no config.yaml in ``run``, or an override that changes the run.
    """
    saved = saved_config(run)
    if saved is None:
        raise ConfigError(
            f"{run}: no config.yaml to resume from; give the run's options again "
            "({data} and the rest) or start a new run",
            fields={"data": FIELD},
        )
    given = {key: value for key, value in overrides.items() if value is not None}
    merged = make_config({**saved.to_dict(), **given, "run": str(run)})
    previous = saved.to_dict()
    _refuse_changes(_differing_keys(merged.to_dict(), previous), "the run's config.yaml", previous)
    return merged


def remove_interrupted_writes(run: Path) -> list[Path]:
    """Temporary files of atomic writes a killed run could not remove (a checkpoint's is as
    large as the checkpoint): ours alone, named after the files a run writes."""
    removed = []
    for folder, targets in (
        (run, ("environment.json", "config.yaml", "metrics.csv")),
        (run / "checkpoints", ("epoch-*.ckpt", INDEX_NAME)),
        (run / "best", ("*",)),
    ):
        removed += remove_stale_temporaries(folder, targets)
    return removed
