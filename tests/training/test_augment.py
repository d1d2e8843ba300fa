"""Training-batch augmentation: it changes the batch, the same key augments the same way, the
caller's generators are untouched, and an augmented run resumes bit for bit."""

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml

from cryprint.data.audio import SAMPLE_RATE
from cryprint.data.batches import Batch
from cryprint.data.corpus import Corpus
from cryprint.errors import ConfigError
from cryprint.training.augment import augment_batch, build_augmenter
from cryprint.training.augment_settings import PRESETS, augment_settings
from cryprint.training.config import AUGMENT_PRESETS, make_config
from cryprint.training.trainer import train
from tiny_recipe import TINY_TRAINING as TINY

CPU = torch.device("cpu")
# Each augmentation alone, on every batch.
SINGLE = {
    "noise": {"noise_snr_db": [5, 10]},
    "reverb": {"reverb_rt60_seconds": [0.2, 0.4]},
    "speed": {"speeds": [90]},
    "drop_freq": {"drop_freq_count": [2, 2], "drop_freq_width": 0.1},
    "drop_chunk": {"drop_chunk_count": [2, 2], "drop_chunk_seconds": [0.05, 0.1]},
}


def _batch() -> Batch:
    """Six crops of 0.5 s: harmonic 'cries' at different pitches, the last two shorter
    (zero-padded to the longest, like CropBatches' batches)."""
    rng = np.random.default_rng(0)
    samples = SAMPLE_RATE // 2
    time = np.arange(samples) / SAMPLE_RATE
    rows = np.stack(
        [
            0.3 * np.sin(2 * np.pi * (350 + 40 * row) * time)
            + 0.1 * np.sin(2 * np.pi * (700 + 80 * row) * time)
            + 0.01 * rng.standard_normal(samples)
            for row in range(6)
        ]
    ).astype(np.float32)
    lengths = np.array([1, 1, 1, 1, 0.6, 0.3], dtype=np.float32)
    for row, share in enumerate(lengths):
        rows[row, round(share * samples) :] = 0
    return Batch(torch.from_numpy(rows), torch.from_numpy(lengths), torch.arange(6))


def _augment(block: dict, key: tuple[int, ...]) -> Batch:
    augmenter = build_augmenter(augment_settings(block), CPU)
    assert augmenter is not None
    return augment_batch(augmenter, _batch(), key, CPU)


def _padding_is_zero(batch: Batch) -> bool:
    samples = batch.waveforms.shape[1]
    return all(
        bool((row[round(share * samples) :] == 0).all())
        for row, share in zip(batch.waveforms, batch.lengths.tolist(), strict=True)
    )


def test_presets_are_the_config_choices() -> None:
    assert tuple(PRESETS) == AUGMENT_PRESETS
    assert not PRESETS["none"].enabled
    assert PRESETS["light"].enabled and PRESETS["strong"].enabled
    assert build_augmenter(PRESETS["none"], CPU) is None
    # A block starts from its preset and changes only what it names.
    settings = augment_settings(
        {"preset": "light", "noise_snr_db": [0, 5], "reverb_rt60_seconds": None}
    )
    assert settings.noise_snr_db == (0.0, 5.0) and settings.reverb_rt60_seconds is None
    assert settings.drop_chunk_count == PRESETS["light"].drop_chunk_count


@pytest.mark.parametrize("name", sorted(SINGLE))
def test_each_augmentation_changes_the_batch_the_same_way_for_the_same_key(name: str) -> None:
    clean = _batch()
    torch_state, python_state = torch.get_rng_state(), random.getstate()
    first = _augment(SINGLE[name], (0, 1, 2, 0))
    again = _augment(SINGLE[name], (0, 1, 2, 0))
    # The caller's generators are left as they were.
    assert torch.equal(torch.get_rng_state(), torch_state) and random.getstate() == python_state
    assert torch.equal(first.waveforms, again.waveforms)
    assert torch.equal(first.lengths, again.lengths) and torch.equal(first.labels, clean.labels)
    changed = first.waveforms.shape != clean.waveforms.shape or not torch.allclose(
        first.waveforms, clean.waveforms, atol=1e-3
    )
    assert changed
    assert _padding_is_zero(first)
    assert torch.isfinite(first.waveforms).all()


def test_speed_perturbation_resamples_the_batch() -> None:
    slower = _augment(SINGLE["speed"], (0, 1, 0, 0))
    # 90% speed: 1/0.9 as many samples, the relative lengths kept.
    assert slower.waveforms.shape[1] == pytest.approx(SAMPLE_RATE / 2 / 0.9, abs=2)
    assert torch.equal(slower.lengths, _batch().lengths)


@pytest.mark.parametrize(
    "block",
    [
        SINGLE["noise"],
        SINGLE["reverb"],
        SINGLE["drop_chunk"],
        {"preset": "strong", "probability": 1.0},
    ],
)
def test_other_keys_augment_differently_whatever_the_global_state(block: dict) -> None:
    keys = [(0, 1, 0, 0), (0, 1, 1, 0), (0, 2, 0, 0), (1, 1, 0, 0), (0, 1, 0, 1)]
    outputs = []
    for outer_seed, key in enumerate(keys):
        torch.manual_seed(outer_seed)  # the global state before a batch must not matter
        random.seed(outer_seed)
        outputs.append(_augment(block, key).waveforms)
    for i, left in enumerate(outputs):
        for right in outputs[i + 1 :]:
            assert left.shape != right.shape or not torch.equal(left, right)
    torch.manual_seed(99)
    random.seed(99)
    assert torch.equal(_augment(block, keys[0]).waveforms, outputs[0])


def test_probability_leaves_some_batches_clean() -> None:
    augmenter = build_augmenter(PRESETS["light"], CPU)
    clean = _batch()
    changed = [
        not torch.equal(
            augment_batch(augmenter, clean, (0, 1, index, 0), CPU).waveforms, clean.waveforms
        )
        for index in range(40)
    ]
    # light: half the batches; 40 draws land in [10, 30] with probability > 0.998.
    assert 10 <= sum(changed) <= 30


def test_noise_comes_from_the_noise_folder(tmp_path: Path) -> None:
    folder = tmp_path / "noises"
    folder.mkdir()
    time = np.arange(SAMPLE_RATE // 4) / SAMPLE_RATE  # shorter than a crop: repeated
    soundfile.write(folder / "hum.wav", 0.5 * np.sin(2 * np.pi * 3000 * time), SAMPLE_RATE)
    noisy = _augment({"noise_snr_db": [-20, -20], "noise_folder": str(folder)}, (0, 1, 0, 0))
    for row in noisy.waveforms[:4]:  # the full-length rows
        spectrum = np.abs(np.fft.rfft(row.numpy()))
        peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(row)
        assert peak_hz == pytest.approx(3000, abs=5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="noise_folder"):
        build_augmenter(
            augment_settings({"noise_snr_db": [0, 5], "noise_folder": str(tmp_path / "empty")}), CPU
        )


@pytest.mark.parametrize(
    ("augment", "message"),
    [
        ("heavy", "augment must be one of none, light, strong"),
        (3, "expected str or dict"),
        ({"nois_snr_db": [0, 5]}, r"unknown augment key.*nois_snr_db.*valid keys"),
        ({"preset": "medium"}, "augment must be one of"),
        ({"noise_snr_db": [20, 5]}, "low 20.0 is above high 5.0"),
        ({"noise_snr_db": [5]}, r"noise_snr_db: expected \[low, high\]"),
        ({"reverb_rt60_seconds": [0.2, float("inf")]}, "reverb_rt60_seconds"),
        ({"speeds": []}, "speeds: expected a list"),
        ({"speeds": [95, 300]}, "speeds: 300 is not in"),
        ({"drop_freq_count": [1.5, 2]}, "drop_freq_count: expected a whole number"),
        ({"probability": 1.5}, "probability: 1.5 is not in"),
        ({"probability": None}, "probability cannot be empty"),
        ({"probability": True}, "probability: expected a number"),
        ({"min_augmentations": 3, "max_augmentations": 1}, "min_augmentations is above"),
        ({"noise_folder": 5}, "noise_folder: expected a folder"),
    ],
)
def test_bad_augment_values_are_named(augment: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config({"augment": augment})


def test_an_augment_block_round_trips_through_config_yaml(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("augment:\n  preset: light\n  noise_snr_db: [5, 20]\n  speeds: [95, 105]\n")
    config = make_config(yaml_file=path)
    assert config.augment == {"preset": "light", "noise_snr_db": [5.0, 20.0], "speeds": [95, 105]}
    path.write_text(config.to_yaml())
    assert make_config(yaml_file=path) == config
    assert make_config({"augment": "strong"}).augment == "strong"
    assert make_config({}).augment == "none"


def _digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_augmented_training_resumes_bit_for_bit(small_corpus: Path, tmp_path: Path) -> None:
    corpus = Corpus(small_corpus, splits=("train",))

    def run(name: str, epochs: int, augment: str = "light", resume: bool = False):
        values = {**TINY, "data": str(small_corpus), "run": str(tmp_path / name)}
        config = make_config({**values, "epochs": epochs, "augment": augment})
        return train(config, resume=resume, quiet=True, corpus=corpus)

    whole = run("whole", 2)
    run("parts", 1)
    resumed = run("parts", 2, resume=True)
    assert _digest(resumed.model) == _digest(whole.model)
    for key in ("train_loss", "validation_eer"):
        assert [row[key] for row in resumed.history[1:]] == [row[key] for row in whole.history[1:]]
    # The augmentation reached the training: the same run without it ends elsewhere.
    assert _digest(run("clean", 2, augment="none").model) != _digest(whole.model)
    environment = json.loads((tmp_path / "whole" / "environment.json").read_text())
    assert environment["augmentation"] == PRESETS["light"].to_dict()
    assert (
        json.loads((tmp_path / "whole" / "best" / "cryprint.json").read_text())["augment"]
        == "light"
    )
    assert yaml.safe_load((tmp_path / "whole" / "config.yaml").read_text())["augment"] == "light"
