"""The evaluation subcommands: thin shells with the documented exit codes."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from cryprint.cli import main


def cli(*args: object) -> int:
    """Run ``cryprint ARGS`` in-process; paths may be given as Path objects."""
    return main([str(arg) for arg in args])


def _dev_folders(corpus: Path) -> list[Path]:
    return sorted(path for path in (corpus / "audio" / "dev").glob("*/*") if path.is_dir())


def test_missing_model_folder_exits_5(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    missing = tmp_path / "no-such-run" / "best"
    code = cli("evaluate", "--model", missing, "--data", small_corpus, "--out", tmp_path / "out")
    assert code == 5
    assert "no such model file or folder" in capsys.readouterr().err
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "hyperparams.yaml").write_text("embedding_model: {}\n")
    code = cli("verify", "a.wav", "b.wav", "--model", incomplete, "--threshold", "0.5")
    assert code == 5
    assert "missing embedding_model.ckpt" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_missing_data_dir_exits_3(
    model_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    nowhere, out = tmp_path / "nowhere", tmp_path / "out"
    code = cli("evaluate", "--model", model_folder, "--data", nowhere, "--out", out)
    assert code == 3
    assert "dev_pairs.csv: file not found" in capsys.readouterr().err
    code = cli("submit", "--model", model_folder, "--data", nowhere, "--out", out / "sub.csv")
    assert code == 3
    assert not out.exists()


def test_pairs_naming_a_missing_recording_exit_3(
    corpus_copy: Path, model_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pairs = pd.read_csv(corpus_copy / "dev_pairs.csv", dtype=str)
    pairs.loc[3, ["baby_id_D", "id"]] = ["7777", f"{pairs.loc[3, 'baby_id_B']}B_7777D"]
    pairs.to_csv(corpus_copy / "dev_pairs.csv", index=False)
    code = cli(
        "evaluate", "--model", model_folder, "--data", corpus_copy, "--out", tmp_path / "out"
    )
    assert code == 3
    assert f"pair {pairs.loc[3, 'id']}: no recording 7777D" in capsys.readouterr().err
    assert not (tmp_path / "out" / "scores.csv").exists()


def test_evaluate_json_then_verify(
    small_corpus: Path, model_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    code = cli("evaluate", "--model", model_folder, "--data", small_corpus, "--out", out, "--json")
    assert code == 0
    [report] = json.loads(capsys.readouterr().out)
    assert report["n_pairs"] == 16

    a, b = _dev_folders(small_corpus)[:2]
    assert cli("verify", a, b, "--model", model_folder, "--json") == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["threshold"] == report["threshold"]
    assert verdict["same_baby"] == (verdict["score"] >= report["threshold"])

    short = tmp_path / "short.wav"
    soundfile.write(short, np.zeros(1000, dtype=np.float32), 16000)
    assert cli("verify", short, b, "--model", model_folder) == 4
    assert "too short" in capsys.readouterr().err


def test_option_errors_exit_2(
    small_corpus: Path, model_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a, b = _dev_folders(small_corpus)[:2]
    assert cli("verify", a, b, "--model", model_folder) == 2
    assert "--threshold" in capsys.readouterr().err
    command = ["evaluate", "--model", model_folder, "--data", small_corpus, "--cohort-top-n", "5"]
    assert cli(*command, "--out", tmp_path / "out") == 2
    assert "--cohort-top-n needs --as-norm" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_embed_reuses_its_output(
    small_corpus: Path, model_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    command = ["embed", "--model", model_folder, "--data", small_corpus, "--split", "test"]
    command += ["--out", tmp_path / "test.npz"]
    assert cli(*command) == 0
    assert capsys.readouterr().out.startswith("wrote 16 test recording embeddings (192-d")
    assert cli(*command) == 0
    assert capsys.readouterr().out.startswith("reused 16 test recording embeddings")


def test_export_and_card(model_folder: Path, tmp_path: Path) -> None:
    assert cli("export", "--model", model_folder, "--out", tmp_path / "hub") == 0
    assert (tmp_path / "hub" / "README.md").is_file()
    assert cli("model-card", "--model", model_folder) == 0
    assert (model_folder / "README.md").read_text().startswith("---\nlibrary_name: speechbrain")


def test_evaluate_writes_beside_the_model_by_default(
    small_corpus: Path, model_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli("evaluate", "--model", model_folder, "--data", small_corpus) == 0
    assert (model_folder.parent / "evaluation-dev" / "report.json").is_file()
    assert list(elsewhere.iterdir()) == []  # nothing in the current directory
