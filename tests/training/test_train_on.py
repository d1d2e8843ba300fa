"""What a run trains on: train+dev-B adds exactly the dev babies' B recordings, train+dev all
dev recordings, validation stays on train babies, and the test split is never read."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cryprint.data.corpus import Corpus
from cryprint.errors import ConfigError, DataError
from cryprint.packaging.card import model_card
from cryprint.training import trainer
from cryprint.training.config import TRAIN_ON, dev_warning, make_config
from cryprint.training.distributed import Distributed
from cryprint.training.trainer import train
from cryprint.training.training_set import build_training_data, training_splits
from tiny_recipe import TINY_TRAINING as TINY


@pytest.fixture(scope="module")
def corpus(small_corpus: Path) -> Corpus:
    return Corpus(small_corpus, splits=("train", "dev"))


def _config(small_corpus: Path, **overrides: object):
    return make_config({**TINY, "data": str(small_corpus), "run": "unused", **overrides})


def _dev_rows(small_corpus: Path) -> pd.DataFrame:
    metadata = pd.read_csv(small_corpus / "metadata.csv", dtype=str)
    return metadata[metadata["split"] == "dev"]


def _trained(groups: list) -> list:
    return [recording for group in groups for recording in group]


def _keys(groups: list) -> list[list[str]]:
    return [[recording.key for recording in group] for group in groups]


@pytest.mark.parametrize("method", ["triplet", "aam"])
def test_train_plus_dev_b_adds_exactly_the_dev_b_recordings(
    small_corpus: Path, corpus: Corpus, method: str
) -> None:
    plain = build_training_data(_config(small_corpus, method=method), corpus, Distributed())
    config = _config(small_corpus, method=method, train_on="train+dev-B")
    data = build_training_data(config, corpus, Distributed())
    dev_b = _dev_rows(small_corpus).query("period == 'B'")
    trained = _trained(data.batches.groups)
    added = [recording for recording in trained if recording.split != "train"]
    assert {recording.split for recording in trained} == {"train", "dev"}
    assert sorted(recording.key for recording in added) == sorted(
        f"{baby}B" for baby in dev_b["baby_id"].unique()
    )
    # Each added recording holds all of its baby's B segments, as metadata.csv lists them.
    assert sum(len(recording.segments) for recording in added) == len(dev_b)
    # One more training baby (class) per dev baby, after the unchanged train babies.
    count = dev_b["baby_id"].nunique()
    assert (data.dev_babies, data.dev_recordings) == (count, count)
    assert data.num_classes == plain.num_classes + count
    assert _keys(data.batches.groups[: plain.num_classes]) == _keys(plain.batches.groups)
    # Validation is the train split's held-out babies, as without dev.
    assert data.validation_babies == plain.validation_babies
    assert all(
        (a == b).all() for a, b in zip(data.validation.left, plain.validation.left, strict=True)
    )
    assert {r.split for r in _trained(data.validation.loss_batches.groups)} == {"train"}


def test_train_plus_dev_adds_both_periods_of_every_dev_baby(
    small_corpus: Path, corpus: Corpus
) -> None:
    data = build_training_data(_config(small_corpus, train_on="train+dev"), corpus, Distributed())
    dev = _dev_rows(small_corpus)
    added = [r for r in _trained(data.batches.groups) if r.split == "dev"]
    assert sorted(r.key for r in added) == sorted(
        set(dev["baby_id"] + dev["period"])  # e.g. 0133B, 0133D
    )
    assert sum(len(r.segments) for r in added) == len(dev)
    # A dev baby's B and D recordings are one training baby.
    added_groups = data.batches.groups[-data.dev_babies :]
    assert {tuple(sorted(r.period for r in group)) for group in added_groups} == {("B", "D")}
    assert data.dev_babies == dev["baby_id"].nunique()


def test_plain_training_reads_no_dev_and_dev_needs_its_audio(small_corpus: Path) -> None:
    assert training_splits(_config(small_corpus)) == ("train",)
    for train_on in ("train+dev-B", "train+dev"):
        assert training_splits(_config(small_corpus, train_on=train_on)) == ("train", "dev")
    train_only = Corpus(small_corpus, splits=("train",))
    with pytest.raises(DataError, match="split 'dev' not loaded"):
        build_training_data(
            _config(small_corpus, train_on="train+dev-B"), train_only, Distributed()
        )


def test_a_train_plus_dev_b_run_never_reads_test_audio_and_says_what_it_trained_on(
    corpus_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With its audio garbled, reading the test split would fail: the run must not need it.
    for wav in (corpus_copy / "audio" / "test").rglob("*.wav"):
        wav.unlink()  # a hard link: the shared corpus keeps its file
        wav.write_bytes(b"not audio")
    loaded: list[Corpus] = []

    def spy(*args: object, **kwargs: object) -> Corpus:
        loaded.append(Corpus(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(trainer, "Corpus", spy)
    run = tmp_path / "run"
    values = {**TINY, "data": str(corpus_copy), "run": str(run), "epochs": 1}
    train(make_config({**values, "train_on": "train+dev-B"}), quiet=True)
    assert [corpus.splits for corpus in loaded] == [("dev", "train")]
    assert yaml.safe_load((run / "config.yaml").read_text())["train_on"] == "train+dev-B"
    environment = json.loads((run / "environment.json").read_text())
    dev_babies = _dev_rows(corpus_copy)["baby_id"].nunique()
    assert environment["train_on"] == "train+dev-B"
    assert environment["dev_babies_trained_on"] == dev_babies
    assert environment["augmentation"] is None
    info = json.loads((run / "best" / "cryprint.json").read_text())
    assert (info["train_on"], info["augment"]) == ("train+dev-B", "none")
    assert "dev is no longer unseen" in (run / "train.log").read_text()
    assert "- training data (--train-on): `train+dev-B`" in model_card(run / "best")
    with pytest.raises(ConfigError, match="train_on"):  # resuming cannot change it
        train(make_config({**values, "epochs": 2}), resume=True, quiet=True)


def test_train_on_values_and_their_dev_warnings() -> None:
    assert make_config({}).train_on == "train"
    for bad in ("test", "train+test", "train+dev-D", "dev"):
        with pytest.raises(ConfigError, match="train_on must be one of"):
            make_config({"train_on": bad})
    assert dev_warning(None) is None and dev_warning("train") is None
    b_only = dev_warning("train+dev-B")
    assert "no longer unseen" in b_only and "B-vs-D" in b_only and "winners" in b_only
    assert "not a fair evaluation" in dev_warning("train+dev")
    assert set(TRAIN_ON) == {"train", "train+dev-B", "train+dev"}
