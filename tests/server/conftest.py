"""A ward station over a tiny model: evaluated on dev (thresholds, different-baby scores,
cohort) and calibrated, as `make demo` leaves the demo's model."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")


@pytest.fixture(scope="session")
def station_model(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from cryprint.evaluation.calibrate_model import calibrate_model
    from cryprint.evaluation.evaluate import evaluate
    from cryprint.models.ecapa import CryEmbedder, ModelConfig
    from cryprint.models.folder import save_model_folder

    root = tmp_path_factory.mktemp("station")
    torch.manual_seed(21)
    model = save_model_folder(CryEmbedder(ModelConfig.small(16)).eval(), root / "model")
    evaluate([model], small_corpus, "dev", root / "evaluation")
    calibrate_model(model, small_corpus)
    return model
