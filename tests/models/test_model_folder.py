"""Model folders and checkpoints round-trip exactly; unsafe or mismatching weights are refused."""

import os
import pickle
from pathlib import Path

import pytest
import torch

from cryprint.errors import HubError, ModelError
from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.models.folder import (
    CHECKPOINT_NAME,
    load_model,
    read_hparams_architecture,
    save_model_folder,
)

TINY = ModelConfig.small(16)


@pytest.fixture
def model() -> CryEmbedder:
    torch.manual_seed(0)
    return CryEmbedder(TINY).eval()


def _embed(model: CryEmbedder) -> torch.Tensor:
    torch.manual_seed(1)
    audio = torch.randn(2, 16000)
    with torch.no_grad():
        return model.eval()(audio, torch.tensor([1.0, 0.6]))


def test_voxceleb_architecture_by_default() -> None:
    config = ModelConfig()
    assert config.channels == (1024, 1024, 1024, 1024, 3072)
    assert ModelConfig.small(1024) == config
    assert (config.kernel_sizes, config.dilations) == ((5, 3, 3, 3, 1), (1, 2, 3, 4, 1))
    assert (config.attention_channels, config.embedding_dim, config.n_mels) == (128, 192, 80)


def test_folder_round_trip_is_exact(model: CryEmbedder, tmp_path: Path) -> None:
    save_model_folder(model, tmp_path / "best", {"note": "test"})
    assert read_hparams_architecture(tmp_path / "best" / "hyperparams.yaml") == TINY
    loaded = load_model(tmp_path / "best")
    assert loaded.kind == "folder"
    assert torch.equal(_embed(model), _embed(loaded.model))


def test_bare_checkpoint_round_trip_is_exact(model: CryEmbedder, tmp_path: Path) -> None:
    torch.save(model.embedding_model.state_dict(), tmp_path / CHECKPOINT_NAME)
    loaded = load_model(tmp_path / CHECKPOINT_NAME, TINY)
    assert loaded.kind == "checkpoint"
    assert torch.equal(_embed(model), _embed(loaded.model))


def test_wrong_architecture_names_the_keys(model: CryEmbedder, tmp_path: Path) -> None:
    torch.save(model.embedding_model.state_dict(), tmp_path / CHECKPOINT_NAME)
    with pytest.raises(ModelError, match=r"wrong shape: .*--channels"):
        load_model(tmp_path / CHECKPOINT_NAME, ModelConfig.small(24))
    state = model.embedding_model.state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["fc.conv.bias"]
    torch.save(state, tmp_path / "odd.ckpt")
    with pytest.raises(ModelError, match=r"missing: fc\.conv\.bias; unexpected: extra\.weight"):
        load_model(tmp_path / "odd.ckpt", TINY)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / CHECKPOINT_NAME
    with path.open("wb") as file:
        pickle.dump({"weight": _RunsCode()}, file)
    with pytest.raises(ModelError, match="refused"):
        load_model(path, TINY)
    torch.save({"weight": _RunsCode()}, tmp_path / "zip.ckpt")
    with pytest.raises(ModelError, match="refused"):
        load_model(tmp_path / "zip.ckpt", TINY)


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(ModelError, match=r"missing hyperparams\.yaml, embedding_model\.ckpt"):
        load_model(tmp_path / "folder")
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable PyTorch weights file"):
        load_model(tmp_path / "garbage.ckpt", TINY)
    with pytest.raises(ModelError, match="no such model file"):
        load_model(tmp_path / "absent.ckpt")


def test_random_init_says_so() -> None:
    loaded = load_model("random", TINY)
    assert (loaded.kind, loaded.source) == ("random", "random")


def test_hub_id_offline_and_uncached_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(HubError, match="--init random"):
        load_model("speechbrain/spkrec-ecapa-voxceleb")


def test_hub_id_from_cache_loads(
    model: CryEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hub model already in the cache loads offline: stand in for the cache with a folder."""
    folder = save_model_folder(model, tmp_path / "snapshot")

    def fake_download(repo_id: str, filename: str, **_: object) -> str:
        assert repo_id == "speechbrain/spkrec-ecapa-voxceleb"
        return str(folder / filename)

    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake_download)
    loaded = load_model("speechbrain/spkrec-ecapa-voxceleb")
    assert (loaded.kind, loaded.source) == ("hub", "speechbrain/spkrec-ecapa-voxceleb")
    assert torch.equal(_embed(model), _embed(loaded.model))
