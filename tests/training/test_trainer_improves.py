"""The outcome, not only the files: a short seeded training verifies better than the untrained
model on babies it never saw."""

import numpy as np
import pytest

from cryprint.data.synth import generate_corpus
from cryprint.training.config import make_config
from cryprint.training.trainer import train


@pytest.mark.slow
def test_triplet_training_lowers_validation_eer(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Many babies with little audio each: generalising to new babies needs many identities.
    root = tmp_path_factory.mktemp("improve") / "corpus"
    generate_corpus(root, babies=400, seed=11, segments_per_recording=(2, 4))
    config = make_config(
        {
            "data": str(root),
            "run": str(root.parent / "run"),
            "init": "random",
            "channels": 16,
            "epochs": 10,
            "batch_babies": 16,
            "crops_per_baby": 3,
            "crop_min_seconds": 1.0,
            "crop_max_seconds": 1.5,
            "validation_fraction": 0.25,
            "learning_rate": 2e-3,
            "validation_batches": 1,
            "device": "cpu",
        }
    )
    history = train(config, quiet=True).history
    untrained = history[0]["validation_eer"]
    # The mean of the last three epochs, not the best epoch: no selection on the validation set.
    trained = float(np.mean([row["validation_eer"] for row in history[-3:]]))
    print(f"validation EER untrained {untrained:.3f}, trained (last 3 epochs) {trained:.3f}")
    assert untrained > 0.2  # the task is not trivial for the untrained model
    assert trained < untrained - 0.05
