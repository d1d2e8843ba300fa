"""OnnxEmbedder: runs without torch or SpeechBrain, tuned session, clear errors."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import onnxruntime
import pytest

from cryprint.errors import AudioError, ModelError
from cryprint.inference.onnx_runtime import OnnxEmbedder, available_cores, session_options
from cryprint.models.embed import embed_waveforms
from cryprint.models.onnx_format import ONNX_MODEL_NAME, ONNX_SPEC_NAME

# Run in a fresh interpreter where importing torch, torchaudio or SpeechBrain (directly or from
# any module) raises ImportError: cryprint.inference.onnx_runtime must embed all the same.
_WITHOUT_TORCH = textwrap.dedent(
    """
    import importlib.abc, sys

    BLOCKED = {"torch", "torchaudio", "speechbrain"}

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Blocker())
    import numpy as np
    from cryprint.data.inputs import read_recording
    from cryprint.inference.onnx_runtime import OnnxEmbedder

    folder, out = sys.argv[1:3]
    embedder = OnnxEmbedder(folder)
    waveforms = [read_recording(path) for path in sys.argv[3:]]
    np.save(out, embedder.embed_waveforms(waveforms))
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
    print(embedder.model_id, embedder.embedding_dim, loaded)
    """
)


def test_embeds_from_files_with_torch_unimportable(tiny_model, tiny_export, cries, tmp_path):
    import soundfile

    paths = []
    for index, waveform in enumerate(cries):
        path = tmp_path / f"cry{index}.wav"
        soundfile.write(path, waveform, 16000, subtype="FLOAT")
        paths.append(str(path))
    out = tmp_path / "embeddings.npy"
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH, str(tiny_export), str(out), *paths],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    model_id, dim, loaded = result.stdout.split(" ", 2)
    assert loaded.strip() == "[]"
    spec = json.loads((tiny_export / ONNX_SPEC_NAME).read_text())
    assert model_id == spec["model_id"] and int(dim) == 192
    got = np.load(out)
    expected = embed_waveforms(tiny_model, cries)
    cosine = (
        (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    )
    assert cosine.min() >= 0.9999


def test_the_blocker_does_block_torch(tiny_export, tmp_path) -> None:
    # The control: the same script fails at once when it imports a module that needs torch.
    script = _WITHOUT_TORCH.replace(
        "from cryprint.inference.onnx_runtime import",
        "import cryprint.models.folder\nfrom cryprint.inference.onnx_runtime import",
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tiny_export), str(tmp_path / "e.npy")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "torch is blocked" in result.stderr


def test_session_uses_every_core_and_every_graph_optimisation(tiny_export) -> None:
    options = session_options()
    assert options.intra_op_num_threads == available_cores() >= 1
    assert options.graph_optimization_level == onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert session_options(threads=1).intra_op_num_threads == 1
    embedder = OnnxEmbedder(tiny_export, threads=1)
    assert embedder.session.get_providers() == ["CPUExecutionProvider"]


def test_one_recording_per_run_so_neighbours_do_not_matter(tiny_export, cries) -> None:
    embedder = OnnxEmbedder(tiny_export)
    together = embedder.embed_waveforms(cries)
    for row, waveform in zip(together, cries, strict=True):
        np.testing.assert_array_equal(embedder.embed_waveforms([waveform])[0], row)
    assert embedder.embed_waveforms([]).shape == (0, 192)


@pytest.mark.parametrize(
    "waveform", [np.zeros((2, 8000), np.float32), np.zeros(0, np.float32)], ids=["2d", "empty"]
)
def test_a_waveform_that_is_not_one_recording_is_refused(tiny_export, waveform) -> None:
    with pytest.raises(AudioError, match="the cry"):
        OnnxEmbedder(tiny_export).embed_waveforms([waveform], names=["the cry"])


def test_a_folder_without_an_export_is_refused(tmp_path) -> None:
    with pytest.raises(ModelError, match="not an ONNX export"):
        OnnxEmbedder(tmp_path)


def test_a_damaged_or_mismatched_export_is_refused(tiny_export, tmp_path) -> None:
    spec = json.loads((tiny_export / ONNX_SPEC_NAME).read_text())
    (tmp_path / ONNX_SPEC_NAME).write_text(json.dumps({**spec, "format_version": 99}))
    with pytest.raises(ModelError, match="format version"):
        OnnxEmbedder(tmp_path)
    (tmp_path / ONNX_SPEC_NAME).write_text(json.dumps(spec))
    with pytest.raises(ModelError, match="missing"):
        OnnxEmbedder(tmp_path)
    (tmp_path / ONNX_MODEL_NAME).write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="not the file this export wrote"):
        OnnxEmbedder(tmp_path)
    legacy = {key: value for key, value in spec.items() if key != "file_sha256"}  # 0.1 export
    (tmp_path / ONNX_SPEC_NAME).write_text(json.dumps(legacy))
    with pytest.raises(ModelError, match="cannot load"):
        OnnxEmbedder(tmp_path)
    (tmp_path / ONNX_SPEC_NAME).write_text(json.dumps(spec))
    (tmp_path / ONNX_MODEL_NAME).write_bytes((tiny_export / ONNX_MODEL_NAME).read_bytes())
    (tmp_path / ONNX_SPEC_NAME).write_text(json.dumps({**spec, "input": "audio"}))
    with pytest.raises(ModelError, match="expected input 'audio'"):
        OnnxEmbedder(tmp_path)


def _constant_graph(path, dim: int, shape: tuple[int, int]) -> None:
    """An ONNX file with the embedder's input and output names that ignores its input."""
    import onnx
    from onnx import TensorProto, helper

    value = helper.make_tensor("value", TensorProto.FLOAT, shape, [0.5] * int(np.prod(shape)))
    node = helper.make_node("Constant", [], ["embedding"], value=value)
    graph = helper.make_graph(
        [node],
        "constant",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, [1, "samples"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, list(shape))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


@pytest.mark.parametrize(
    ("rows", "refusal"), [(1, "same embedding for two different sounds"), (4, "output of shape")]
)
def test_a_file_that_cannot_tell_cries_apart_is_refused(
    tiny_export, tmp_path, rows: int, refusal: str
) -> None:
    """The reliability review: an ONNX file that outputs a constant gave "same baby 1.0" for
    every pair; one with a 2-d output ended in exit 70. Both are refused when loaded, whatever
    onnx.json claims (here its hash is made to match)."""
    import hashlib

    spec = json.loads((tiny_export / ONNX_SPEC_NAME).read_text())
    _constant_graph(
        tmp_path / ONNX_MODEL_NAME, spec["embedding_dim"], (rows, spec["embedding_dim"])
    )
    forged = hashlib.sha256((tmp_path / ONNX_MODEL_NAME).read_bytes()).hexdigest()
    (tmp_path / ONNX_SPEC_NAME).write_text(json.dumps({**spec, "file_sha256": forged}))
    with pytest.raises(ModelError, match=refusal):
        OnnxEmbedder(tmp_path)


def test_embeddings_are_keyed_by_the_file_that_runs(tiny_export, tmp_path) -> None:
    """A swapped embedder.onnx (another export's, with its onnx.json kept) is refused, and even
    a consistent folder never stores its embeddings under the torch model's identity."""
    import hashlib
    import shutil

    from cryprint.models.ecapa import CryEmbedder, ModelConfig
    from cryprint.packaging.onnx_export import export_onnx

    torch = pytest.importorskip("torch")
    torch.manual_seed(5)
    other = tmp_path / "other"
    other.mkdir()
    export_onnx(CryEmbedder(ModelConfig.small(16)).eval(), other)
    swapped = tmp_path / "swapped"
    shutil.copytree(tiny_export, swapped)
    shutil.copyfile(other / ONNX_MODEL_NAME, swapped / ONNX_MODEL_NAME)
    with pytest.raises(ModelError, match="not the file this export wrote"):
        OnnxEmbedder(swapped)
    embedder = OnnxEmbedder(tiny_export)
    data = (tiny_export / ONNX_MODEL_NAME).read_bytes()
    assert embedder.embedding_id == "onnx:" + hashlib.sha256(data).hexdigest()
    assert embedder.embedding_id != embedder.model_id
