"""The run folder: one writer at a time, and a resume that needs nothing but the folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cryprint.errors import ConfigError, OutputError
from cryprint.training.config import make_config
from cryprint.training.runfolder import resume_config, saved_config
from cryprint.training.trainer import train
from tiny_recipe import TINY_TRAINING


def test_a_second_training_on_the_same_run_fails_at_once_naming_the_first(
    tmp_path: Path,
) -> None:
    # Issue #10 item 5: two `train` runs on one --run silently mixed configs and checkpoints.
    run = tmp_path / "run"
    code = (
        "import time\nfrom cryprint.io import folder_lock\n"
        f"with folder_lock({str(run)!r}, 'cryprint train'):\n"
        "    print('training', flush=True)\n    time.sleep(60)\n"
    )
    first = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "training"
        # At once: before the data is read (a missing corpus would be the error otherwise).
        missing = tmp_path / "no-such-corpus"
        config = make_config({**TINY_TRAINING, "data": str(missing), "run": str(run)})
        with pytest.raises(OutputError, match=f"in use.*process {first.pid}"):
            train(config, quiet=True)
    finally:
        first.kill()
        first.wait()
    assert list(run.iterdir()) == []  # the second run wrote nothing


def test_resume_config_takes_the_saved_options(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    saved = make_config({**TINY_TRAINING, "data": "corpus", "run": str(run), "epochs": 3})
    (run / "config.yaml").write_text(saved.to_yaml())
    assert saved_config(run) == saved
    resumed = resume_config(run, {"epochs": 5, "margin": None, "data": None})
    assert resumed == make_config({**saved.to_dict(), "epochs": 5})
    with pytest.raises(ConfigError, match="margin"):
        resume_config(run, {"margin": 0.3})
    with pytest.raises(ConfigError, match=r"no config\.yaml"):
        resume_config(tmp_path / "elsewhere", {})


def test_a_run_that_already_holds_a_training_is_refused_before_the_data_is_read(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "index.json").write_text("[]")
    missing = tmp_path / "no-such-corpus"  # read first, this would be the error
    config = make_config({**TINY_TRAINING, "data": str(missing), "run": str(run)})
    with pytest.raises(ConfigError, match="already holds a training run"):
        train(config, quiet=True)
