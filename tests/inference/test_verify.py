"""verify: files or folders of segments, any rate and channel count, one operating point whose
decision and probability agree."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch
import torchaudio.functional

from cryprint.cli import main
from cryprint.data.inputs import read_recording
from cryprint.errors import AudioError, ConfigError, ModelError
from cryprint.evaluation.calibrate_model import calibrate_model
from cryprint.evaluation.evaluate import evaluate
from cryprint.inference.api import verify
from cryprint.inference.operating_point import operating_point
from cryprint.inference.options import EmbeddingOptions
from cryprint.models.folder import load_model, save_model_folder
from cryprint.scoring import (
    Calibration,
    prior_for_threshold,
    probability,
    threshold_at_false_accept_rate,
    threshold_for_prior,
)


def cli(*args: object) -> int:
    """Run ``cryprint ARGS`` in-process; paths and numbers may be given as objects."""
    return main([str(arg) for arg in args])


def _dev_folders(corpus: Path) -> list[Path]:
    """The (baby, period) folders of the dev split, sorted."""
    return sorted(path for path in (corpus / "audio" / "dev").glob("*/*") if path.is_dir())


def _segments(folder: Path) -> list[np.ndarray]:
    return [soundfile.read(path, dtype="float32")[0] for path in sorted(folder.glob("*.wav"))]


def _write(path: Path, audio: np.ndarray, rate: int = 16000) -> Path:
    soundfile.write(path, audio, rate, subtype="FLOAT")
    return path


def test_two_files_of_one_recording_outscore_other_babies(
    small_corpus: Path, make_model, tmp_path: Path
) -> None:
    # An untrained model cannot be expected to tell babies apart, but two files holding the
    # same cries (another format, another gain) must score near 1, above every other baby.
    model = make_model(0)
    folders = _dev_folders(small_corpus)
    audio = np.concatenate(_segments(folders[0]))
    wav = _write(tmp_path / "cries.wav", audio)
    flac = tmp_path / "cries_quieter.flac"
    soundfile.write(flac, 0.5 * audio, 16000, subtype="PCM_24")
    same = verify(model, wav, flac, threshold=0.0)
    others = [verify(model, wav, folder, threshold=0.0).score for folder in folders[2:]]
    assert len(others) == 6
    assert same.score > 0.9999
    assert same.score > max(others) + 1e-3
    # The decision follows the threshold.
    threshold = (same.score + max(others)) / 2
    assert verify(model, wav, flac, threshold=threshold).same_baby
    for folder in folders[2:]:
        assert not verify(model, wav, folder, threshold=threshold).same_baby


def test_a_folder_is_its_segments_joined_in_name_order(
    small_corpus: Path, make_model, tmp_path: Path
) -> None:
    model = make_model(0)
    folders = _dev_folders(small_corpus)
    segments = _segments(folders[0])[:4]
    folder = tmp_path / "cries"
    folder.mkdir()
    # Written in reverse order, with other files beside them: only the name order counts.
    for index in reversed(range(len(segments))):
        _write(folder / f"cry_{index:03d}.wav", segments[index])
    (folder / "notes.txt").write_text("not audio")
    (folder / ".hidden.wav").write_bytes(b"junk")
    joined = _write(tmp_path / "joined.wav", np.concatenate(segments))
    shuffled = _write(tmp_path / "shuffled.wav", np.concatenate(segments[::-1]))
    np.testing.assert_array_equal(read_recording(folder), read_recording(joined))
    from_folder = verify(model, folder, folders[3], threshold=0.5).score
    assert from_folder == pytest.approx(verify(model, joined, folders[3], threshold=0.5).score)
    assert from_folder != pytest.approx(
        verify(model, shuffled, folders[3], threshold=0.5).score, abs=1e-6
    )


def test_stereo_44k_equals_mono_16k(small_corpus: Path, make_model, tmp_path: Path) -> None:
    model = make_model(0)
    folders = _dev_folders(small_corpus)
    mono = np.concatenate(_segments(folders[0]))
    resampled = torchaudio.functional.resample(torch.from_numpy(mono), 16000, 44100).numpy()
    # Two channels whose mean is the cry; the left one alone is louder and shifted.
    stereo = np.stack([resampled * 1.5, resampled * 0.5], axis=1)
    stereo_file = tmp_path / "stereo.wav"
    soundfile.write(stereo_file, stereo, 44100, subtype="PCM_24")
    assert soundfile.info(stereo_file).channels == 2
    mono_file = _write(tmp_path / "mono.wav", mono)
    from_stereo = verify(model, stereo_file, folders[5], threshold=0.5).score
    from_mono = verify(model, mono_file, folders[5], threshold=0.5).score
    assert from_stereo == pytest.approx(from_mono, abs=1e-3)
    assert read_recording(stereo_file).shape == pytest.approx(mono.shape, abs=2)


def test_bad_audio_is_refused(small_corpus: Path, make_model, tmp_path: Path) -> None:
    model = make_model(0)
    other = _dev_folders(small_corpus)[1]
    short = _write(tmp_path / "short.wav", np.full(3200, 0.1, dtype=np.float32))  # 0.2 s
    with pytest.raises(AudioError, match=r"short\.wav: 0\.200 s of audio is too short"):
        verify(model, short, other, threshold=0.5)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no cries here")
    with pytest.raises(AudioError, match="no audio files in the folder"):
        verify(model, other, empty, threshold=0.5)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF0000WAVEjunk" * 10)
    with pytest.raises(AudioError, match="not a readable audio file"):
        verify(model, garbage, other, threshold=0.5)
    with pytest.raises(AudioError, match="no such audio file or folder"):
        verify(model, tmp_path / "missing.wav", other, threshold=0.5)


def test_threshold_comes_from_the_dev_evaluation(
    small_corpus: Path, model_folder: Path, tmp_path: Path
) -> None:
    a, b = _dev_folders(small_corpus)[:2]
    with pytest.raises(ConfigError, match=r"cryprint evaluate .*--split dev.*pass threshold"):
        verify(model_folder, a, b)
    [report] = evaluate([model_folder], small_corpus, "dev", tmp_path / "out", cohort=False)
    result = verify(model_folder, a, b)
    assert result.threshold == report["threshold"]
    assert "evaluation.json" in result.threshold_source
    assert result.same_baby == (result.score >= report["threshold"])
    assert result.probability is None
    assert verify(model_folder, a, b, threshold=-1.0).threshold_source == "given"

    # Retrained weights in the same folder: the stored threshold no longer applies.
    model = load_model(model_folder).model
    with torch.no_grad():
        model.embedding_model.fc.conv.bias += 0.01
    save_model_folder(model, model_folder)
    with pytest.raises(ModelError, match="computed for other weights"):
        verify(model_folder, a, b)


def _calibrated(corpus: Path, folder: Path, out: Path) -> tuple[Calibration, dict]:
    """Evaluate ``folder`` on dev (storing the EER and FAR 1 % thresholds) and calibrate it;
    returns the calibration and the dev scores.csv as arrays."""
    [report] = evaluate([folder], corpus, "dev", out, cohort=False)  # raw scores
    table = pd.read_csv(out / "scores.csv")
    return calibrate_model(folder, corpus).calibration, {
        "scores": table["score"].to_numpy(),
        "labels": table["label"].to_numpy(),
        "eer": report["threshold"],
    }


def _check_agreement(verdict: dict, calibration: Calibration) -> None:
    """Decision, threshold, probability and prior of one JSON verdict tell one story."""
    assert verdict["decision"] in ("same baby", "different babies")
    assert verdict["same_baby"] == (verdict["score"] >= verdict["threshold"])
    assert verdict["same_baby"] == (verdict["probability"] >= 0.5)
    assert verdict["decision"] == ("same baby" if verdict["same_baby"] else "different babies")
    assert 0 < verdict["prior"] < 1  # (a threshold far from the dev scores may imply 0 or 1)
    expected = float(probability(verdict["score"], calibration, verdict["prior"]))
    assert verdict["probability"] == pytest.approx(expected, abs=1e-6)


def test_verdict_and_probability_agree_at_every_operating_point(
    small_corpus: Path, model_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    calibration, dev = _calibrated(small_corpus, model_folder, tmp_path / "out")
    assert calibration.prior == 4 / 16  # the dev pairs' share of same-baby pairs
    folders = _dev_folders(small_corpus)
    far1 = threshold_at_false_accept_rate(dev["scores"], dev["labels"], 0.01).threshold
    middle = float(np.median(dev["scores"]))  # a threshold among the scores
    a = folders[0]
    verdicts = {}
    for b in (folders[1], folders[2]):
        for name, options in {
            "eer": [],
            "far1": ["--operating-point", "far1"],
            "threshold": ["--threshold", middle],
            "prior": ["--prior", "0.5"],
            "target-rate": ["--target-rate", "0.01"],
        }.items():
            assert cli("verify", a, b, "--model", model_folder, *options, "--json") == 0
            verdict = json.loads(capsys.readouterr().out)
            _check_agreement(verdict, calibration)
            verdicts[name, b.name] = verdict
    eer = verdicts["eer", folders[1].name]
    assert eer["threshold"] == dev["eer"]
    assert eer["threshold_source"].startswith("dev EER threshold from ")
    assert eer["prior"] == pytest.approx(prior_for_threshold(calibration, dev["eer"]))
    assert "the prior that puts P(same baby) = 0.5 at this threshold" in eer["prior_source"]
    # scores.csv holds 8 significant digits; evaluation.json the scores themselves.
    assert verdicts["far1", folders[1].name]["threshold"] == pytest.approx(far1, abs=1e-7)
    assert verdicts["threshold", folders[1].name]["threshold_source"] == "given"
    for name, prior in (("prior", 0.5), ("target-rate", 0.01)):
        given = verdicts[name, folders[1].name]
        assert (given["prior"], given["prior_source"]) == (prior, "given")
        assert given["threshold"] == pytest.approx(threshold_for_prior(calibration, prior))
        assert "calibration.json" in given["threshold_source"]
    # The same trial at a higher prior is at least as likely to be the same baby.
    low, high = verdicts["target-rate", folders[2].name], verdicts["prior", folders[2].name]
    assert high["probability"] > low["probability"]

    # The printed verdict is the JSON one, in words.
    assert cli("verify", a, folders[2], "--model", model_folder, "--prior", "0.5") == 0
    decision, chance = capsys.readouterr().out.splitlines()
    verdict = verdicts["prior", folders[2].name]
    side = ">=" if verdict["same_baby"] else "<"
    assert decision.startswith(
        f"{verdict['decision']}: score {verdict['score']:.4f} {side} threshold "
        f"{verdict['threshold']:.4f} (the score where P(same baby) = 0.5 at this prior, from "
    )
    assert chance.startswith("P(same baby) = ")
    assert chance.endswith(" at a prior of 0.500 (given)")
    shown = float(chance.split(" = ")[1].split(" ")[0])
    assert (shown >= 0.5) == verdict["same_baby"]


def test_an_inconclusive_band_around_one_half(
    small_corpus: Path, model_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    calibrate_model(model_folder, small_corpus)
    a, b = _dev_folders(small_corpus)[:2]
    score = verify(model_folder, a, b, threshold=0.0).score
    # At the score itself P = 0.5: inconclusive for any band; far below it, a clear "no".
    unsure = verify(model_folder, a, b, threshold=score, inconclusive=0.2)
    assert (unsure.decision, unsure.same_baby, unsure.probability) == ("inconclusive", None, 0.5)
    far_above = ["--threshold", score + 10, "--inconclusive", 0.2]
    assert cli("verify", a, b, "--model", model_folder, *far_above) == 0
    decision, chance = capsys.readouterr().out.splitlines()
    assert decision.startswith("different babies: ")
    assert float(chance.split(" = ")[1].split(" ")[0]) <= 0.2
    with pytest.raises(ConfigError, match="inconclusive band"):
        verify(model_folder, a, b, threshold=score, inconclusive=0.5)


def test_no_calibration_no_probability_and_no_band(
    small_corpus: Path, model_folder: Path, capsys: pytest.CaptureFixture
) -> None:
    a, b = _dev_folders(small_corpus)[:2]
    assert cli("verify", a, b, "--model", model_folder, "--threshold", 0.5) == 0
    decision, chance = capsys.readouterr().out.splitlines()
    assert decision.endswith("threshold 0.5000 (given)")
    assert chance == "no probability: this model has no calibration (run cryprint calibrate)"
    for option in (["--threshold", "0.5", "--inconclusive", "0.2"], ["--prior", "0.5"]):
        assert cli("verify", a, b, "--model", model_folder, *option) == 2
        err = capsys.readouterr().err
        assert "has no calibration" in err and "cryprint calibrate" in err
    with pytest.raises(SystemExit) as exited:  # two operating points at once
        cli("verify", a, b, "--model", model_folder, "--threshold", 0.5, "--prior", 0.5)
    assert exited.value.code == 2
    assert "not allowed with argument --threshold" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="give one"):
        verify(model_folder, a, b, threshold=0.5, point="eer")


def test_a_calibration_of_other_weights_is_refused(
    small_corpus: Path, model_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a, b = _dev_folders(small_corpus)[:2]
    calibrate_model(model_folder, small_corpus)
    assert verify(model_folder, a, b, threshold=0.5).probability is not None
    model = load_model(model_folder).model
    with torch.no_grad():
        model.embedding_model.fc.conv.bias += 0.01
    save_model_folder(model, model_folder)  # calibration.json stays, of the old weights
    with pytest.raises(ModelError, match=r"calibration\.json was fitted for other weights"):
        verify(model_folder, a, b, threshold=0.5)
    assert cli("verify", a, b, "--model", model_folder, "--threshold", 0.5) == 5
    assert "cryprint calibrate" in capsys.readouterr().err


def test_evaluation_stores_both_dev_thresholds(
    small_corpus: Path, model_folder: Path, tmp_path: Path
) -> None:
    _, dev = _calibrated(small_corpus, model_folder, tmp_path / "out")
    record = json.loads((model_folder / "evaluation.json").read_text())
    far1 = threshold_at_false_accept_rate(dev["scores"], dev["labels"], 0.01)
    assert record["threshold"] == record["thresholds"]["eer"]["threshold"] == dev["eer"]
    stored = record["thresholds"]["far1"]
    # scores.csv holds 8 significant digits; evaluation.json the scores themselves.
    expected = pytest.approx(far1.threshold, abs=1e-7) if np.isfinite(far1.threshold) else None
    assert (stored["threshold"], stored["far"], stored["frr"]) == (expected, far1.far, far1.frr)
    assert stored["far"] <= 0.01
    loaded = load_model(model_folder)
    assert operating_point(loaded, point="far1").threshold == stored["threshold"]
    # No finite threshold (a different-baby pair on top): stored as null, refused by name.
    record["thresholds"]["far1"]["threshold"] = None
    (model_folder / "evaluation.json").write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="no finite dev threshold for a 1 %"):
        operating_point(loaded, point="far1")
    # Older files hold only "threshold": the EER point still works, far1 asks for a re-run.
    del record["thresholds"]
    (model_folder / "evaluation.json").write_text(json.dumps(record))
    assert operating_point(loaded).threshold == dev["eer"]
    with pytest.raises(ConfigError, match=r"no dev threshold for a 1 % false-acceptance rate"):
        operating_point(loaded, point="far1")
    with pytest.raises(ConfigError, match="choose from"):
        operating_point(loaded, point="minDCF")


def test_a_threshold_or_calibration_of_other_tta_or_trimming_is_refused(
    small_corpus: Path,
    model_folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The dev thresholds and the calibration hold for scores of recordings embedded as they
    were measured on: with 5 TTA views dev EER thresholds of demo models moved by up to 0.05,
    and dev FRR by 4 points at the 1-view threshold (benchmarks/RESULTS.md §6). Before this,
    verify applied them to any embedding."""
    a, b = _dev_folders(small_corpus)[:2]
    tta3 = EmbeddingOptions(tta=3)
    [report] = evaluate(
        [model_folder], small_corpus, "dev", tmp_path / "out", embedding=tta3, cohort=False
    )
    record = json.loads((model_folder / "evaluation.json").read_text())
    assert record["thresholds"]["eer"]["embedding"] == {"tta": 3, "trim": True, "as_norm": False}
    assert record["thresholds"]["far1"]["embedding"] == {"tta": 3, "trim": True, "as_norm": False}
    with pytest.raises(ConfigError, match=r"3 TTA views, trimmed.*1 TTA view, trimmed.*tta=3"):
        verify(model_folder, a, b)
    assert verify(model_folder, a, b, embedding=tta3).threshold == report["threshold"]
    assert verify(model_folder, a, b, threshold=0.5).threshold_source == "given"
    assert cli("verify", a, b, "--model", model_folder, "--no-trim", "--tta", 3) == 2
    assert "3 TTA views, untrimmed" in capsys.readouterr().err
    calibrate_model(model_folder, small_corpus, embedding=tta3)
    fitted = json.loads((model_folder / "calibration.json").read_text())["fitted_on"]
    assert fitted["embedding"] == {"tta": 3, "trim": True, "as_norm": False}
    assert verify(model_folder, a, b, prior=0.5, embedding=tta3).probability is not None
    with pytest.raises(ConfigError, match=r"calibration in .*calibration\.json was measured"):
        verify(model_folder, a, b, prior=0.5)  # the prior needs it: refused
    # The decision at a given threshold needs none: it stands, without a probability.
    assert verify(model_folder, a, b, threshold=0.5).probability is None
    assert cli("verify", a, b, "--model", model_folder, "--threshold", 0.5) == 0
    assert "No P(same baby) is given" in caplog.text
    fitted["embedding"] = {"tta": "3"}
    (model_folder / "calibration.json").write_text(json.dumps({
        **json.loads((model_folder / "calibration.json").read_text()), "fitted_on": fitted
    }))  # fmt: skip
    with pytest.raises(ModelError, match="'embedding' must be"):
        verify(model_folder, a, b, threshold=0.5)


def test_calibration_needs_a_local_folder(small_corpus: Path, model_folder: Path) -> None:
    for spec in ("random", str(model_folder / "embedding_model.ckpt"), "owner/model"):
        with pytest.raises(ModelError, match="cryprint export"):
            calibrate_model(spec, small_corpus)


def test_silence_is_refused_not_called_the_same_baby(make_model, tmp_path: Path) -> None:
    # Issue #10 item 7: two all-zero files were "same baby, score 1.0000".
    silence = _write(tmp_path / "silence.wav", np.zeros(32000, dtype=np.float32))
    hiss = _write(tmp_path / "dither.wav", np.full(32000, 1e-5, dtype=np.float32))
    for path in (silence, hiss):
        with pytest.raises(AudioError, match=rf"{path.name}: no cry found"):
            verify(make_model(0), path, path, threshold=0.5)


def test_a_silent_test_baby_stops_the_submission(
    corpus_copy: Path, make_model, tmp_path: Path
) -> None:
    from cryprint.evaluation.submit import write_submission

    test_babies = sorted((corpus_copy / "audio" / "test").iterdir())
    silent = test_babies[0]
    for wav in sorted(silent.glob("*/*.wav")):
        samples = len(soundfile.read(wav)[0])
        wav.unlink()  # a hard link to the shared corpus: never write through it
        soundfile.write(wav, np.zeros(samples, dtype=np.float32), 16000)
    babies = [silent.name]
    with pytest.raises(AudioError, match=rf"recording {babies[0]}B.*no cry found"):
        write_submission(make_model(0), corpus_copy, tmp_path / "submission.csv")
    assert not (tmp_path / "submission.csv").exists()


def test_a_threshold_file_without_model_id_is_not_trusted(model_folder: Path) -> None:
    # Issue #10 item 13: an evaluation.json without a model_id was trusted.
    (model_folder / "evaluation.json").write_text(json.dumps({"threshold": 0.1}))
    with pytest.raises(ModelError, match="other weights"):
        verify(model_folder, "a.wav", "b.wav")
