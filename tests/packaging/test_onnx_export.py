"""export_onnx: the whole embedder in one ONNX file gives the torch model's embeddings."""

import json

import numpy as np
import pytest
import torch

from cryprint.errors import ModelError
from cryprint.inference.onnx_runtime import OnnxEmbedder
from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.models.embed import embed_waveforms
from cryprint.models.folder import LoadedModel, model_identity
from cryprint.models.onnx_format import ONNX_MODEL_NAME, ONNX_SPEC_NAME, OnnxSpec
from cryprint.packaging.onnx_export import (
    KEEP_FLOAT_SCOPES,
    ExportableEmbedder,
    export_graph,
    export_onnx,
    quantize_int8,
)


def _cosines(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity, computed in float64."""
    left, right = left.astype(np.float64), right.astype(np.float64)
    return (left * right).sum(1) / np.linalg.norm(left, axis=1) / np.linalg.norm(right, axis=1)


def test_tiny_model_embeddings_equal_torch_at_every_length(tiny_model, tiny_export, cries):
    expected = embed_waveforms(tiny_model, cries)
    got = OnnxEmbedder(tiny_export).embed_waveforms(cries)
    assert got.shape == expected.shape == (4, 192)
    assert _cosines(got, expected).min() >= 0.9999
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max())


def test_full_voxceleb_architecture_embeddings_equal_torch(tmp_path, cry) -> None:
    torch.manual_seed(1)
    model = CryEmbedder(ModelConfig()).eval()
    export_onnx(LoadedModel(model, "random", "random"), tmp_path)
    waveforms = [cry(0.3, 10), cry(3.7, 11)]
    expected = embed_waveforms(model, waveforms)
    got = OnnxEmbedder(tmp_path, threads=2).embed_waveforms(waveforms)
    assert _cosines(got, expected).min() >= 0.9999


def test_spec_names_the_source_model(tiny_model, tiny_export) -> None:
    spec = OnnxSpec.read(tiny_export)
    assert spec.model_id == spec.embedding_id == model_identity(tiny_model)
    assert (spec.n_mels, spec.embedding_dim, spec.sample_rate) == (80, 192, 16000)
    assert spec.int8 is False and spec.front_end == "onnx"
    assert spec.probe_cosine >= 0.9999
    record = json.loads((tiny_export / ONNX_SPEC_NAME).read_text())
    assert "float32 [1, samples]" in record["input_spec"]


def test_graph_has_a_dynamic_time_axis_and_one_recording(tiny_export) -> None:
    import onnx  # here, not at the top: ruff's isort takes tests/onnx/ for the onnx package

    graph = onnx.load(str(tiny_export / ONNX_MODEL_NAME)).graph
    (waveform,) = graph.input
    batch, time = waveform.type.tensor_type.shape.dim
    assert batch.dim_value == 1 and time.dim_param == "samples"
    (embedding,) = graph.output
    assert embedding.type.tensor_type.shape.dim[1].dim_value == 192


def test_int8_needs_calibration_audio(tiny_model, tmp_path) -> None:
    with pytest.raises(ModelError, match="calibration"):
        export_onnx(tiny_model, tmp_path, int8=True)
    assert not any(tmp_path.iterdir())


def test_int8_export_loads_and_stays_close_to_fp32(tiny_model, tiny_export, tmp_path, cry):
    # Calibrated on other cries than the ones measured (as train audio, not dev or test).
    calibration = [cry(2.0, 100 + seed) for seed in range(8)]
    export_onnx(tiny_model, tmp_path, int8=True, calibration_waveforms=calibration)
    spec = OnnxSpec.read(tmp_path)
    assert spec.int8 is True and spec.model_id == model_identity(tiny_model)
    assert spec.embedding_id != spec.model_id  # int8 embeddings are not the fp32 ones
    import onnx  # here, not at the top: ruff's isort takes tests/onnx/ for the onnx package

    graph = onnx.load(str(tmp_path / ONNX_MODEL_NAME)).graph
    dequantized = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    convolutions = {node.name: node for node in graph.node if node.op_type == "Conv"}
    quantized = {name for name, node in convolutions.items() if set(node.input) & dequantized}
    # The SE-Res2Net blocks and the aggregation are int8; the first block and the pooling not.
    assert any(name.startswith("/blocks.1/") for name in quantized)
    assert any(name.startswith("/mfa/") for name in quantized)
    kept = [n for n in convolutions if n.startswith(KEEP_FLOAT_SCOPES)]
    assert kept and not set(kept) & quantized
    waveforms = [cry(seconds, 200 + seed) for seed, seconds in enumerate((0.5, 1.5, 3.7, 6.0))]
    fp32 = OnnxEmbedder(tiny_export).embed_waveforms(waveforms)
    int8 = OnnxEmbedder(tmp_path).embed_waveforms(waveforms)
    assert _cosines(int8, fp32).min() >= 0.99
    assert _cosines(int8, fp32).min() < 0.99999  # quantised: close, not equal


def test_a_graph_that_does_not_reproduce_the_model_is_not_written(
    tiny_model, tmp_path, monkeypatch
) -> None:
    import cryprint.packaging.onnx_export as export_module

    monkeypatch.setattr(export_module, "_probe_cosine", lambda model, data: 0.5)
    with pytest.raises(ModelError, match="does not reproduce"):
        export_onnx(tiny_model, tmp_path)
    assert not any(tmp_path.iterdir())


def test_int8_refuses_float_scopes_that_name_no_node(tiny_model, tmp_path, cry) -> None:
    graph = export_graph(ExportableEmbedder(tiny_model), tmp_path / "fp32.onnx")
    with pytest.raises(ModelError, match=r"/embedding_model/blocks\.0/"):
        quantize_int8(graph, tmp_path / "int8.onnx", [cry(1.0, 0)], ("/embedding_model/blocks.0/",))
