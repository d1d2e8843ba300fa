"""Model folders and checkpoints round-trip exactly; unsafe or mismatching weights are refused."""

import os
import pickle
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


# --- issue #10: hostile model folders ----------------------------------------------------------


@contextmanager
def _address_space_limit(extra_bytes: int) -> Iterator[None]:
    """Let the process map at most ``extra_bytes`` more than it has now, so that a model built by
    mistake fails at once instead of filling the machine's memory (Linux; else no limit)."""
    status = Path("/proc/self/status")
    if not status.is_file():
        yield
        return
    size_kib = next(
        int(line.split()[1])
        for line in status.read_text().splitlines()
        if line.startswith("VmSize")
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size_kib * 1024 + extra_bytes
    resource.setrlimit(
        resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard)
    )
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _with_channels(folder: Path, channels: str) -> Path:
    """Rewrite the channel list of a model folder's hyperparams.yaml."""
    hparams = folder / "hyperparams.yaml"
    text = hparams.read_text()
    old = f"channels: {list(TINY.channels)}"
    assert old in text
    hparams.write_text(text.replace(old, f"channels: {channels}"))
    return folder


def test_huge_architecture_in_hyperparams_is_refused_before_it_is_built(
    model: CryEmbedder, tmp_path: Path
) -> None:
    # 40,000 channels: about 100 GB of weights, against the tiny model's real ones.
    folder = _with_channels(
        save_model_folder(model, tmp_path / "huge"), "[40000, 40000, 40000, 40000, 120000]"
    )
    start = time.perf_counter()
    with _address_space_limit(2 * 2**30), pytest.raises(ModelError) as error:
        load_model(folder)
    assert time.perf_counter() - start < 2.0
    message = str(error.value)
    assert "embedding_model.ckpt" in message and "wrong shape: " in message


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("channels", (16, 16, 16, 16, -48), "positive"),
        ("channels", (-16, 16, 16, 16, 48), "positive"),
        ("channels", (16.5, 16, 16, 16, 48), "whole number"),
        ("channels", ("x", 16, 16, 16, 48), "whole number"),
        ("channels", (True, 16, 16, 16, 48), "whole number"),
        ("channels", (16, 32, 16, 16, 48), "same width"),
        ("channels", 16, "list"),
        ("kernel_sizes", (5, 0, 3, 3, 1), "positive"),
        ("kernel_sizes", (5, -3, 3, 3, 1), "positive"),
        ("kernel_sizes", (53, 3, 3, 3, 1), "too wide"),
        ("dilations", (1, 0, 3, 4, 1), "positive"),
        ("dilations", (1, -2, 3, 4, 1), "positive"),
        ("dilations", (1, 2, 3, 26, 1), "too wide"),
        ("dilations", (1, 2, 3, 4), "same length"),
        ("n_mels", "80", "whole number"),
        ("n_mels", 0, "positive"),
        ("attention_channels", 2.5, "whole number"),
    ],
)
def test_invalid_architecture_is_a_model_error(field: str, value: object, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        ModelConfig(**{**TINY.to_dict(), field: value})


@pytest.mark.parametrize("layers", [0, 1, 2, 7])
def test_architecture_needs_three_to_six_layers(layers: int) -> None:
    with pytest.raises(ModelError, match="3 to 6"):
        ModelConfig(channels=(16,) * layers, kernel_sizes=(3,) * layers, dilations=(1,) * layers)


@pytest.mark.parametrize("layers", [3, 6])
def test_every_accepted_architecture_embeds_the_shortest_recording(layers: int) -> None:
    widest = (51,) + (3,) * (layers - 2) + (1,)  # padding 25 < the 26 frames of 0.25 s
    config = ModelConfig(
        channels=(16,) * (layers - 1) + (48,), kernel_sizes=widest, dilations=(1,) * layers
    )
    with torch.no_grad():
        embedding = CryEmbedder(config).eval()(torch.randn(1, 4000))
    assert embedding.shape == (1, 192) and torch.isfinite(embedding).all()


def test_invalid_architecture_in_hyperparams_is_a_model_error(
    model: CryEmbedder, tmp_path: Path
) -> None:
    folder = save_model_folder(model, tmp_path / "bad")
    for channels in ("[]", "[abc, 16, 16, 16, 48]", "[16, 16, 16, 16, -48]", "{a: 1}"):
        _with_channels(folder, channels)
        with pytest.raises(ModelError, match=r"hyperparams\.yaml"):
            load_model(folder)
        save_model_folder(model, folder)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(
    model: CryEmbedder, tmp_path: Path, bad: float
) -> None:
    save_model_folder(model, tmp_path / "model")
    state = model.embedding_model.state_dict()
    state["fc.conv.weight"][0, 0, 0] = bad
    torch.save(state, tmp_path / "model" / CHECKPOINT_NAME)
    with pytest.raises(ModelError, match=r"fc\.conv\.weight.*(NaN|inf)"):
        load_model(tmp_path / "model")
    with pytest.raises(ModelError, match=r"fc\.conv\.weight"):
        load_model(tmp_path / "model" / CHECKPOINT_NAME, TINY)


@pytest.mark.parametrize(
    "spec",
    [
        "a" * 300,
        "./" + "a" * 300 + ".ckpt",
        "a" * 300 + "/" + "b" * 300,
        "a/" * 3000,
        "my model/x",
        "owner/" + "n" * 200,
    ],
)
def test_a_model_spec_that_is_no_path_and_no_hub_id_is_a_model_error(
    spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_download(*_: object, **__: object) -> str:
        raise AssertionError("must not reach the hub")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", no_download)
    with pytest.raises(ModelError):
        load_model(spec)
