"""The demo end to end at toy size: every stage runs, the table reports what the reports hold."""

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from cryprint.cli import main
from cryprint.demo import DemoSettings, before_after_table, run_demo


def _tiny(out: Path, method: str = "triplet", **changes: object) -> DemoSettings:
    settings = replace(DemoSettings(), out=out, babies=40, segments_per_recording=(1, 3))
    settings = settings.with_training(
        channels=8,
        epochs=1,
        batch_babies=8,
        crops_per_baby=2,
        crop_min_seconds=0.5,
        crop_max_seconds=0.5,
        method=method,
    )
    return replace(settings, **changes)


@pytest.mark.parametrize("method", ["triplet", "aam"])
def test_demo_runs_every_stage(tmp_path: Path, method: str, capsys: pytest.CaptureFixture) -> None:
    results = run_demo(_tiny(tmp_path, method), quiet=True)
    printed = capsys.readouterr().out
    assert printed.strip("\n") == results["table"]  # quiet still prints the result
    for stage in ("before", "after"):
        for split in ("dev", "test"):
            folder = Path(results[stage][split]["folder"])
            report = json.loads((folder / "report.json").read_text())
            report = report[0] if isinstance(report, list) else report
            assert report["eer"] == results[stage][split]["eer"]
            assert f"{100 * report['eer']:.2f}%" in results["table"]
            assert (folder / "det_curve.png").is_file()
    assert (tmp_path / "runs" / method / "best" / "embedding_model.ckpt").is_file()
    assert results["seconds_per_epoch"] > 0
    assert f"trained ({method})" in results["table"]


def test_demo_reuses_its_corpus_and_replaces_its_run(tmp_path: Path, capsys) -> None:
    settings = _tiny(tmp_path)
    run_demo(settings, quiet=True)
    marker_before = (tmp_path / "corpus" / "metadata.csv").stat().st_mtime_ns
    run_demo(settings)
    output = capsys.readouterr().out
    assert "using the synthetic corpus already in" in output
    assert (tmp_path / "corpus" / "metadata.csv").stat().st_mtime_ns == marker_before
    # Another corpus size: generated anew.
    run_demo(replace(settings, babies=44), quiet=True)
    babies = pd.read_csv(tmp_path / "corpus" / "metadata.csv", dtype=str)["baby_id"].nunique()
    assert babies == 44


def test_table_drop_is_the_dev_eer_difference() -> None:
    def report(eer: float) -> dict:
        return {"eer": eer, "min_dcf": {"0.05": 0.5}, "folder": "f"}

    results = {
        "before": {"dev": report(0.30), "test": report(0.31)},
        "after": {"dev": report(0.10), "test": report(0.12)},
    }
    table = before_after_table(results, "triplet")
    assert "dev EER change: -20.00 points" in table
    assert "30.00%" in table and "12.00%" in table


def test_cli_demo_epochs_override(tmp_path: Path, monkeypatch) -> None:
    seen = {}

    def fake_run_demo(settings: DemoSettings, quiet: bool = False) -> dict:
        seen["settings"] = settings
        return {}

    monkeypatch.setattr("cryprint.demo.run_demo", fake_run_demo)
    assert main(["demo", "--out", str(tmp_path), "--method", "aam", "--epochs", "3"]) == 0
    expected = replace(DemoSettings(), out=tmp_path).with_training(method="aam", epochs=3)
    assert seen["settings"] == expected
    assert seen["settings"].training.channels == DemoSettings().training.channels


def test_the_winners_recipe_trains_on_dev_births_and_embeds_with_tta(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    settings = _tiny(tmp_path).with_recipe("winners")
    assert settings.training.train_on == "train+dev-B" and settings.tta == 5
    results = run_demo(settings, quiet=True)
    for stage in ("before", "after"):
        for split in ("dev", "test"):
            report = json.loads((Path(results[stage][split]["folder"]) / "report.json").read_text())
            assert report["tta"] == 5
            assert report["embedded_with"] == "torch fp32, 5 TTA views, trimmed"
    assert "dev is no longer unseen" in results["table"]  # the dev warning reaches the table
    capsys.readouterr()


def test_cli_demo_full_passes_the_recipe(tmp_path: Path, monkeypatch) -> None:
    seen = {}

    def fake_run_full(data, out, quiet=False, recipe="reference") -> dict:
        seen.update(data=data, out=out, recipe=recipe)
        return {"dev": {"eer": 0.2}, "test": {"eer": None}}

    monkeypatch.setattr("cryprint.demo.run_full", fake_run_full)
    data = tmp_path / "cryceleb"
    assert main(["demo", "--full", "--data", str(data), "--recipe", "winners"]) == 0
    assert seen["recipe"] == "winners" and seen["data"] == data
    with pytest.raises(SystemExit):
        main(["demo", "--recipe", "best-guess"])
