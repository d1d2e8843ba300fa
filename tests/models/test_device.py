"""Inference precision: bf16 only where the hardware runs it natively (or when forced), and
bf16 embeddings close to fp32 ones but stored apart from them."""

import numpy as np
import pytest
import torch

import cryprint.models.device as device_module
from cryprint.errors import ConfigError
from cryprint.inference.api import CryPrint
from cryprint.inference.engines import TorchEngine, make_engine
from cryprint.inference.options import EmbeddingOptions
from cryprint.inference.store import EmbeddingStore
from cryprint.models.device import cpu_flags, native_bf16, resolve_precision
from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.models.embed import embed_waveforms

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ({"avx2", "fma"}, False),  # an AVX2 CPU emulates bf16: never chosen by auto
        ({"avx512f", "avx512_vnni"}, False),
        ({"avx512f", "avx512_bf16"}, True),
        ({"amx_bf16", "amx_tile"}, True),
        (set(), False),  # no /proc/cpuinfo
    ],
)
def test_auto_picks_bf16_only_on_native_cpus(
    monkeypatch: pytest.MonkeyPatch, flags: set[str], native: bool
) -> None:
    monkeypatch.setattr(device_module, "cpu_flags", lambda: frozenset(flags))
    assert native_bf16(CPU) is native
    assert resolve_precision("auto", CPU, 1024) == (torch.bfloat16 if native else None)
    assert resolve_precision("auto", CPU, 512) == (torch.bfloat16 if native else None)
    assert resolve_precision("auto", CPU, 256) is None  # too narrow for bf16 to pay
    assert resolve_precision("fp32", CPU, 1024) is None
    assert resolve_precision("bf16", CPU, 64) == torch.bfloat16


def test_this_machines_cpu_flags_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real reader, imported before the session's patch (tests/conftest.py) took its place.
    monkeypatch.setattr(device_module, "cpu_flags", cpu_flags)
    flags = cpu_flags()
    assert isinstance(flags, frozenset)
    if flags:  # Linux: the flags of /proc/cpuinfo, as the benchmarks print them
        assert native_bf16(CPU) is bool(flags & {"avx512_bf16", "amx_bf16"})


def test_unknown_precisions_are_refused(model_folder) -> None:
    with pytest.raises(ConfigError, match="precision"):
        resolve_precision("fp16", CPU, 1024)
    with pytest.raises(ConfigError, match="precision"):
        EmbeddingOptions(precision="half")
    with pytest.raises(ConfigError, match="bf16 is a torch-backend precision"):
        make_engine(model_folder, EmbeddingOptions(backend="onnx", precision="bf16"))
    with pytest.raises(ConfigError, match="precision"):  # before looking for the model
        TorchEngine(model_folder.parent / "no-such-model", precision="half")


def test_bf16_embeddings_are_close_to_fp32_and_stored_apart(make_model, tmp_path) -> None:
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(16000 * s).astype(np.float32) * 0.1 for s in (1, 3)]
    store = EmbeddingStore(tmp_path / "store.sqlite")
    model = make_model(0)
    fp32 = CryPrint(model, store=store, precision="fp32", trim=False)
    bf16 = CryPrint(model, store=store, precision="bf16", trim=False)
    assert bf16.engine.embedding_id == fp32.engine.embedding_id + "|bf16"
    assert bf16.model_id == fp32.model_id  # thresholds and calibrations still apply
    a, b = fp32.embed_many(waves), bf16.embed_many(waves)
    cosine = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.99
    assert not np.array_equal(a, b)  # really computed in bf16, not read from the fp32 store
    assert fp32.computed == bf16.computed == 2


def test_auto_runs_bf16_on_a_native_cpu_and_shares_fp32s_scoring_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wide = CryEmbedder(ModelConfig.small(512))
    on_fp32_cpu = CryPrint(wide, store=False)  # the suite's CPU: no native bf16
    monkeypatch.setattr(device_module, "cpu_flags", lambda: frozenset({"avx512f", "amx_bf16"}))
    on_bf16_cpu = CryPrint(wide, store=False)
    assert (on_fp32_cpu.engine.arithmetic, on_bf16_cpu.engine.arithmetic) == ("fp32", "bf16")
    # A gallery, threshold or calibration made on one serves the other; the cache does not.
    assert on_bf16_cpu.scoring_key == on_fp32_cpu.scoring_key
    assert on_bf16_cpu.engine.embedding_id == on_fp32_cpu.engine.embedding_id + "|bf16"
    narrow = CryPrint(CryEmbedder(ModelConfig.small(64)), store=False)
    assert narrow.engine.arithmetic == "fp32"  # slower in bf16 than in fp32, even natively
    # The width is the SE-Res2Net blocks', where the work is, not the first layer's.
    uneven = ModelConfig(channels=(512, 128, 128, 128, 384))
    assert uneven.width == 128
    assert CryPrint(CryEmbedder(uneven), store=False).engine.arithmetic == "fp32"


def test_bf16_weights_cast_once_give_what_autocast_gives(make_model) -> None:
    model = make_model(0)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(16000 * s).astype(np.float32) * 0.1 for s in (1, 2)]
    engine = make_engine(model, EmbeddingOptions(precision="bf16", trim=False))
    assert engine.runner is not model
    expected = embed_waveforms(model, waves, autocast=torch.bfloat16)
    assert np.array_equal(engine.embed(waves, ["a", "b"]), expected)
    after = model.state_dict()  # the caller's model is left in float32
    assert all(torch.equal(before[name], after[name]) for name in before)
