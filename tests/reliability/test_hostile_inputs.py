"""Issue #10 (hostile-user review), end to end through the command line: each input is refused
with its documented exit code and a message naming it, never exit 0 with a wrong answer and
never exit 70 (internal error)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch

from cryprint.cli import main
from cryprint.errors import DataError, ModelError
from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.models.folder import CHECKPOINT_NAME, save_model_folder

CSV_NAMES = ("metadata.csv", "dev_pairs.csv", "test_pairs.csv", "sample_submission.csv")
LONG_NAME = "a" * 300  # over the 255-byte limit of a file name: ENAMETOOLONG


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_model_folder(CryEmbedder(ModelConfig.small(16)), tmp_path / "model")


@pytest.fixture
def cries(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    paths = tmp_path / "a.wav", tmp_path / "b.wav"
    for path in paths:
        soundfile.write(path, rng.uniform(-0.3, 0.3, 8000).astype(np.float32), 16_000)
    return paths


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err


def test_submit_with_swapped_pair_ids_writes_nothing(
    small_corpus: Path, model_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in CSV_NAMES:
        shutil.copyfile(small_corpus / name, data / name)
    (data / "audio").symlink_to(small_corpus / "audio", target_is_directory=True)
    pairs = pd.read_csv(data / "test_pairs.csv", dtype=str, keep_default_na=False)
    same = int((pairs["label"] == "1").to_numpy().nonzero()[0][0])
    other = int((pairs["label"] == "0").to_numpy().nonzero()[0][0])
    pairs.loc[[same, other], "id"] = pairs.loc[[other, same], "id"].to_numpy()
    pairs.to_csv(data / "test_pairs.csv", index=False)
    out = tmp_path / "submission.csv"
    code, err = _run(
        ["submit", "--model", str(model_folder), "--data", str(data), "--out", str(out)], capsys
    )
    assert code == DataError.exit_code
    assert "test_pairs.csv" in err and f"line {min(same, other) + 2}" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "model", [LONG_NAME, f"./{LONG_NAME}.ckpt", f"{LONG_NAME}/{LONG_NAME}", "my model/x"]
)
def test_verify_with_a_model_that_is_no_path_and_no_hub_id(
    model: str, cries: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    code, err = _run(["verify", *map(str, cries), "--model", model, "--threshold", "0.5"], capsys)
    assert code == ModelError.exit_code, err
    assert model.removeprefix("./")[:40] in err and "internal error" not in err


def test_verify_refuses_a_model_with_a_nan_weight(
    model_folder: Path, cries: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    state = torch.load(model_folder / CHECKPOINT_NAME, weights_only=True)
    state["blocks.0.conv.conv.weight"][0, 0, 0] = float("nan")
    torch.save(state, model_folder / CHECKPOINT_NAME)
    argv = ["verify", *map(str, cries), "--model", str(model_folder), "--threshold", "0.5"]
    code, err = _run(argv, capsys)
    assert code == ModelError.exit_code
    assert "blocks.0.conv.conv.weight" in err and "NaN" in err


def test_info_on_a_path_too_long_to_look_up(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = _run(["info", str(tmp_path / LONG_NAME)], capsys)
    assert code == DataError.exit_code and "metadata.csv" in err and "internal error" not in err
