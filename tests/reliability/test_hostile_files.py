"""Hostile and odd files, one by one: audio the reader must read or refuse clearly, recordings
that must not embed to NaN, checkpoints and models that would run code, secrets that must not
reach a run folder."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import struct
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from reliability_helpers import EPOCHS, TINY, time_limit, tiny_config

from cryprint.data.audio import read_audio
from cryprint.data.corpus import Corpus
from cryprint.errors import AudioError, CheckpointError, ModelError
from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.models.embed import embed_waveforms
from cryprint.models.folder import CHECKPOINT_NAME, load_model
from cryprint.training import checkpoints
from cryprint.training.runfolder import environment, write_json
from cryprint.training.trainer import TrainResult, train

RATE = 16_000

# --- audio -------------------------------------------------------------------------------------


def _noise(seconds: float = 0.5, rate: int = RATE, channels: int = 1) -> np.ndarray:
    samples = np.random.default_rng(0).uniform(-0.5, 0.5, size=(int(seconds * rate), channels))
    return samples.astype(np.float32)


def _wav(path: Path, samples: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> None:
    soundfile.write(path, samples, rate, subtype=subtype, format="WAV")


def _truncated(at: int) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        _wav(path, _noise())
        path.write_bytes(path.read_bytes()[:at])

    return write


def _header_field(offset: int, value: int, fmt: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        _wav(path, _noise())
        data = bytearray(path.read_bytes())
        data[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
        path.write_bytes(bytes(data))

    return write


def _with_value(value: float, rate: int = RATE) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        samples = _noise(rate=rate)
        samples[len(samples) // 2 :] = value
        _wav(path, samples, rate, "FLOAT")

    return write


# name -> (writes the file, expected: "read" with the samples it must hold (None: any finite
# samples) or the AudioError text).
AUDIO_CASES: dict[str, tuple[Callable[[Path], None], str, np.ndarray | None]] = {
    **{
        f"{subtype} mono": (
            lambda path, subtype=subtype: _wav(path, _noise(), subtype=subtype),
            "read",
            _noise()[:, 0],
        )
        for subtype in ("PCM_16", "PCM_24", "PCM_32", "PCM_U8", "FLOAT", "DOUBLE")
    },
    "stereo": (
        lambda path: _wav(path, np.hstack([_noise(), -_noise() / 2])),
        "read",
        _noise()[:, 0] / 4,  # the mean of the two channels
    ),
    "8 kHz": (lambda path: _wav(path, _noise(rate=8_000), 8_000), "read", None),
    "44.1 kHz": (lambda path: _wav(path, _noise(rate=44_100), 44_100), "read", None),
    "silence": (lambda path: _wav(path, np.zeros((RATE, 1))), "read", np.zeros(RATE)),
    "int16-scale float samples": (_with_value(32767.0), "read", None),
    "NaN samples": (_with_value(np.nan), "NaN or infinite", None),
    "infinite samples": (_with_value(-np.inf), "NaN or infinite", None),
    "1e18 samples": (_with_value(1e18), "far outside", None),
    "float32-max samples at 8 kHz": (_with_value(3.4e38, 8_000), "far outside", None),
    "zero-length file": (lambda path: path.write_bytes(b""), "not a readable audio file", None),
    "header without samples": (
        lambda path: _wav(path, np.zeros((0, 1))),
        "no audio samples",
        None,
    ),
    **{
        f"header cut at byte {at}": (_truncated(at), "not a readable audio file", None)
        for at in (4, 12, 20, 36)
    },
    "data chunk cut short": (_truncated(44 + 2 * 1000 + 1), "read", _noise()[:1000, 0]),
    "sample rate 0": (_header_field(24, 0, "<I"), "not a readable audio file", None),
    "0 channels": (_header_field(22, 0, "<H"), "not a readable audio file", None),
    "sample rate 7 Hz": (_header_field(24, 7, "<I"), "below 4000 Hz", None),
    "odd sample rate 44101 Hz": (_header_field(24, 44_101, "<I"), "no small ratio", None),
    "odd sample rate 1000003 Hz": (_header_field(24, 1_000_003, "<I"), "no small ratio", None),
    "random bytes": (
        lambda path: path.write_bytes(np.random.default_rng(1).bytes(4000)),
        "not a readable audio file",
        None,
    ),
    "a directory": (lambda path: path.mkdir(), "not found", None),
}


@pytest.mark.parametrize("case", AUDIO_CASES)
def test_hostile_audio_is_read_or_refused_naming_the_file(tmp_path: Path, case: str) -> None:
    write, expected, samples = AUDIO_CASES[case]
    path = tmp_path / "cry.wav"
    write(path)
    if expected != "read":
        with pytest.raises(AudioError) as raised, time_limit(20):
            read_audio(path)
        assert str(path) in str(raised.value) and expected in str(raised.value)
        return
    with time_limit(20):
        waveform = read_audio(path)
    assert waveform.dtype == np.float32 and waveform.ndim == 1
    assert np.isfinite(waveform).all()
    if samples is not None:
        np.testing.assert_allclose(waveform, samples, atol=1 / 2**7)  # 8-bit PCM: 2^-7 steps


def test_a_name_the_system_cannot_look_up_is_an_audio_error(tmp_path: Path) -> None:
    path = tmp_path / ("x" * 300 + ".wav")  # over 255 bytes: ENAMETOOLONG, not "no such file"
    with pytest.raises(AudioError, match="not found") as raised:
        read_audio(path)
    assert str(path) in str(raised.value)


@pytest.fixture(scope="module")
def tiny_embedder() -> CryEmbedder:
    torch.manual_seed(0)
    return CryEmbedder(ModelConfig.small(TINY["channels"])).eval()


@pytest.mark.parametrize("amplitude", [0.0, 1e-40, 1e-6, 1.0, 32767.0, 2.0**31])
def test_every_accepted_recording_embeds_to_a_finite_vector(
    tmp_path: Path, tiny_embedder: CryEmbedder, amplitude: float
) -> None:
    """All-silent (0), subnormal (1e-40), quiet, normal and integer-scale recordings."""
    path = tmp_path / "cry.wav"
    _wav(path, _noise(1.0) * np.float32(amplitude), subtype="FLOAT")
    waveform = read_audio(path)
    embeddings = embed_waveforms(tiny_embedder, [waveform, np.zeros(RATE, np.float32)])
    assert np.isfinite(embeddings).all()


# --- checkpoints and models that would run code -----------------------------------------------


class _OpensAFile:
    """Pickles to a call of ``open(marker, "w")``: loading it unsafely creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def _plant_crafted_checkpoint(folder: Path, epoch: int, marker: Path) -> Path:
    """Replace the checkpoint of ``epoch`` with one that would run code, and make the index
    vouch for it (its checksum updated), so that only ``weights_only`` stands in the way."""
    path = folder / f"epoch-{epoch:04d}.ckpt"
    torch.save({"model": _OpensAFile(marker), "history": []}, path)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    entries = [
        replace(entry, sha256=sha256) if entry.epoch == epoch else entry
        for entry in checkpoints._read_index(folder)
    ]
    checkpoints._write_index(folder, entries)
    return path


def test_crafted_checkpoint_is_refused_and_the_previous_one_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for epoch in (1, 2):
        state = {"model": {"w": torch.full((8,), float(epoch))}}
        checkpoints.save_checkpoint(tmp_path, epoch, state, 0.5, 0.1)
    marker = tmp_path / "code-ran"
    path = _plant_crafted_checkpoint(tmp_path, 2, marker)
    caplog.set_level(logging.WARNING, logger=checkpoints.__name__)

    found = checkpoints.load_latest(tmp_path)

    assert not marker.exists()
    assert found is not None and found[1].epoch == 1
    assert f"checkpoint {path} refused" in caplog.text and "run code" in caplog.text
    assert "weights_only=False" not in caplog.text  # torch's advice is not passed on


def test_resume_from_a_crafted_checkpoint_is_refused(
    small_corpus: Path, train_corpus: Corpus, reference_run: TrainResult, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(reference_run.run, run)
    folder = run / "checkpoints"
    newest = max(checkpoints._read_index(folder), key=lambda entry: entry.epoch)
    checkpoints._write_index(folder, [newest])  # the only checkpoint left to resume from
    marker = tmp_path / "code-ran"
    path = _plant_crafted_checkpoint(folder, newest.epoch, marker)

    with pytest.raises(CheckpointError) as raised:
        train(
            tiny_config(small_corpus, run, epochs=EPOCHS + 1),
            resume=True,
            quiet=True,
            corpus=train_corpus,
        )

    assert not marker.exists()
    message = str(raised.value)
    assert path.name in message and "refused" in message and "run code" in message
    assert f"checkpoint {path} refused" in (run / "train.log").read_text()


def test_crafted_model_folder_is_refused(reference_run: TrainResult, tmp_path: Path) -> None:
    best = tmp_path / "best"
    shutil.copytree(reference_run.best, best)
    marker = tmp_path / "code-ran"
    torch.save({"embedding_model.weight": _OpensAFile(marker)}, best / CHECKPOINT_NAME)
    with pytest.raises(ModelError, match="refused"):
        load_model(best)
    assert not marker.exists()


# --- secrets -----------------------------------------------------------------------------------

FAKE_TOKEN = "hf_HostileFilesTokenNeverWritten_9a4e"


def test_environment_record_holds_no_hub_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """environment.json records the command line; the token lives in the environment."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.setenv(name, FAKE_TOKEN)
    monkeypatch.setattr("sys.argv", ["cryprint", "train", "--run", str(tmp_path / "run")])
    write_json(tmp_path / "environment.json", environment(0, {"device": "cpu"}))
    text = (tmp_path / "environment.json").read_text()
    assert json.loads(text)["command"][1] == "train"
    assert FAKE_TOKEN not in text
