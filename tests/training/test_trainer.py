"""Training runs: the trained model verifies better, runs resume exactly, DDP processes agree."""

import hashlib
import os
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.multiprocessing

from cryprint.data.corpus import Corpus
from cryprint.errors import ConfigError, DataError, ModelError
from cryprint.models.ecapa import ModelConfig
from cryprint.models.embed import embed_waveforms
from cryprint.models.folder import load_model
from cryprint.scoring import compute_eer
from cryprint.training.config import make_config
from cryprint.training.distributed import Distributed
from cryprint.training.trainer import TrainingState, build_model, restore, train
from cryprint.training.training_set import build_training_data
from cryprint.training.validation import ValidationSet, validation_loss
from tiny_recipe import TINY_TRAINING as TINY

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def corpus(small_corpus: Path) -> Corpus:
    return Corpus(small_corpus, splits=("train",))


def _config(small_corpus: Path, run: Path, **overrides: object):
    return make_config({**TINY, "data": str(small_corpus), "run": str(run), **overrides})


def _weights_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _recomputed_validation(state: TrainingState, validation: ValidationSet) -> list[float]:
    """[validation loss, validation EER] of ``state``'s weights, the EER from scratch: the
    held-out babies' two sides embedded, each left side scored against each right side by a
    plain cosine (the diagonal: same baby)."""
    loss = validation_loss(state.embedder, state.validation_objective, validation, CPU)
    embeddings = embed_waveforms(state.embedder, validation.left + validation.right)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    count = len(validation.left)
    scores = unit[:count] @ unit[count:].T
    return [loss, compute_eer(scores.ravel(), np.eye(count, dtype=int).ravel()).eer]


def test_run_folder_holds_what_reproduces_the_run(
    small_corpus: Path, corpus: Corpus, tmp_path: Path
) -> None:
    result = train(_config(small_corpus, tmp_path / "run", epochs=2), quiet=True, corpus=corpus)
    run = tmp_path / "run"
    for name in ("config.yaml", "environment.json", "metrics.csv", "train.log"):
        assert (run / name).is_file(), name
    environment = (run / "environment.json").read_text()
    assert '"seed": 0' in environment and '"initial_weights": "random"' in environment
    assert "RANDOM" in (run / "train.log").read_text()
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics["epoch"]) == [0, 1, 2]
    assert {
        "train_loss",
        "validation_loss",
        "validation_eer",
        "positive_distance",
        "negative_distance",
        "learning_rate",
        "seconds",
        "train_seconds",
        "crops_per_second",
    } <= set(metrics.columns)
    trained_epochs = metrics[metrics["epoch"] > 0]
    assert (trained_epochs["train_seconds"] <= trained_epochs["seconds"]).all()
    assert (trained_epochs["crops_per_second"] > 0).all()
    best = load_model(result.best)
    assert best.model.config.channels == (16, 16, 16, 16, 48)
    with pytest.raises(ConfigError, match="pass resume=True to continue it"):
        train(_config(small_corpus, run, epochs=2), quiet=True, corpus=corpus)


def test_resume_after_a_stop_equals_the_uninterrupted_run(
    small_corpus: Path, corpus: Corpus, tmp_path: Path
) -> None:
    whole = train(_config(small_corpus, tmp_path / "whole", epochs=3), quiet=True, corpus=corpus)
    train(_config(small_corpus, tmp_path / "parts", epochs=2), quiet=True, corpus=corpus)
    resumed = train(
        _config(small_corpus, tmp_path / "parts", epochs=3), resume=True, quiet=True, corpus=corpus
    )
    assert _weights_digest(resumed.model) == _weights_digest(whole.model)
    assert [row["validation_eer"] for row in resumed.history] == [
        row["validation_eer"] for row in whole.history
    ]
    with pytest.raises(ConfigError, match="margin"):
        train(
            _config(small_corpus, tmp_path / "parts", epochs=4, margin=0.3),
            resume=True,
            quiet=True,
            corpus=corpus,
        )


def test_same_seed_same_weights_other_seed_differs(
    small_corpus: Path, corpus: Corpus, tmp_path: Path
) -> None:
    first = train(_config(small_corpus, tmp_path / "a", epochs=1), quiet=True, corpus=corpus)
    again = train(_config(small_corpus, tmp_path / "b", epochs=1), quiet=True, corpus=corpus)
    other = train(
        _config(small_corpus, tmp_path / "c", epochs=1, seed=1), quiet=True, corpus=corpus
    )
    assert _weights_digest(first.model) == _weights_digest(again.model)
    assert _weights_digest(first.model) != _weights_digest(other.model)


def test_aam_baseline_trains_into_the_same_run_format(
    small_corpus: Path, corpus: Corpus, tmp_path: Path
) -> None:
    config = _config(small_corpus, tmp_path / "aam", method="aam", epochs=1)
    result = train(config, quiet=True, corpus=corpus)
    assert len(result.history) == 2
    assert (tmp_path / "aam" / "best" / "embedding_model.ckpt").is_file()
    # The recorded numbers belong to the weights they claim: epoch 0's to the initial weights,
    # epoch 1's to its checkpoint, whose embedder best/ holds (the only epoch, so the best).
    data = build_training_data(config, corpus, Distributed())
    state = build_model(config, data.num_classes, CPU, Distributed())
    initial = _recomputed_validation(state, data.validation)
    restore(state, tmp_path / "aam", config)
    assert state.start_epoch == 2
    trained = _recomputed_validation(state, data.validation)
    recorded = [row[key] for row in result.history for key in ("validation_loss", "validation_eer")]
    assert recorded == pytest.approx(initial + trained, abs=1e-5)
    assert _weights_digest(load_model(result.best).model) == _weights_digest(state.embedder)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, config_values: dict, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    try:
        result = train(make_config(config_values), quiet=True)
        Path(out, f"rank{rank}.txt").write_text(_weights_digest(result.model))
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def test_two_gloo_processes_train_and_agree_on_weights(small_corpus: Path, tmp_path: Path) -> None:
    values = {
        **TINY,
        "data": str(small_corpus),
        "run": str(tmp_path / "ddp"),
        "epochs": 1,
        "device": "cpu",
    }
    torch.multiprocessing.spawn(
        _ddp_worker, args=(2, _free_port(), values, str(tmp_path)), nprocs=2, join=True
    )
    digests = [(tmp_path / f"rank{rank}.txt").read_text() for rank in range(2)]
    assert digests[0] == digests[1]
    torch.manual_seed(0)  # the trainer seeds the same way before building the model
    untrained = load_model("random", ModelConfig.small(16))
    assert digests[0] != _weights_digest(untrained.model)  # a step was taken
    assert (tmp_path / "ddp" / "best" / "embedding_model.ckpt").is_file()


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"data": "/nonexistent/corpus"}, DataError),  # checked before the run folder is made
        ({"init": "/nonexistent/model"}, ModelError),  # found after it was made: removed again
    ],
)
def test_a_training_that_cannot_start_leaves_no_run_folder(
    small_corpus: Path, tmp_path: Path, overrides: dict, error: type
) -> None:
    (tmp_path / "runs").mkdir()
    with pytest.raises(error):
        train(_config(small_corpus, tmp_path / "runs" / "new", **overrides), quiet=True)
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_failed_start_never_removes_a_folder_it_did_not_make(
    small_corpus: Path, tmp_path: Path
) -> None:
    run = tmp_path / "mine"
    run.mkdir()
    (run / "notes.txt").write_text("a user's file")
    with pytest.raises(ModelError):
        train(_config(small_corpus, run, init="/nonexistent/model"), quiet=True)
    assert (run / "notes.txt").read_text() == "a user's file"
