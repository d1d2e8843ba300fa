"""The ONNX backend end to end: `export --format onnx`, then verify in a process where torch
cannot be imported, with the same verdict as the torch backend."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cryprint.cli import main
from cryprint.evaluation.evaluate import evaluate
from cryprint.inference.api import verify
from cryprint.inference.options import EmbeddingOptions

# Run the CLI with torch and SpeechBrain made unimportable (an entry of None in sys.modules makes
# `import torch` raise ImportError).
NO_TORCH = (
    "import sys\n"
    "for name in ('torch', 'torchaudio', 'speechbrain'):\n"
    "    sys.modules[name] = None\n"
    "from cryprint.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.fixture(scope="module")
def exported(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from cryprint.models.ecapa import CryEmbedder, ModelConfig
    from cryprint.models.folder import save_model_folder

    root = tmp_path_factory.mktemp("onnx-backend")
    torch.manual_seed(0)
    model = save_model_folder(CryEmbedder(ModelConfig.small(16)), root / "model")
    evaluate([model], small_corpus, "dev", root / "evaluation", cohort=False)  # threshold
    out = root / "export"
    assert main(["export", "--model", str(model), "--out", str(out), "--format", "onnx"]) == 0
    return out


def _sides(corpus: Path) -> tuple[Path, Path]:
    babies = sorted((corpus / "audio" / "dev").iterdir())
    return babies[0] / "B", babies[1] / "D"


def test_verify_runs_without_torch_and_agrees_with_torch(
    exported: Path, small_corpus: Path, tmp_path: Path
) -> None:
    a, b = _sides(small_corpus)
    command = [
        sys.executable, "-c", NO_TORCH, "verify", str(a), str(b), "--model", str(exported),
        "--backend", "onnx", "--json",
    ]  # fmt: skip
    env = {"CRYPRINT_STORE": str(tmp_path / "store.sqlite"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    onnx_verdict = json.loads(result.stdout)
    torch_verdict = verify(exported, a, b, embedding=EmbeddingOptions(backend="torch"), store=False)
    assert onnx_verdict["score"] == pytest.approx(torch_verdict.score, abs=1e-4)
    assert onnx_verdict["threshold"] == torch_verdict.threshold
    assert onnx_verdict["same_baby"] == (onnx_verdict["score"] >= onnx_verdict["threshold"])
    # The same verdict, unless the pair sits on the threshold itself (it is a dev pair, and the
    # dev EER threshold is one of their scores): there 1e-6 apart may fall either side.
    if abs(torch_verdict.score - torch_verdict.threshold) > 1e-4:
        assert onnx_verdict["same_baby"] == torch_verdict.same_baby


def test_auto_picks_onnx_for_an_export_and_refuses_onnx_without_one(
    exported: Path, small_corpus: Path
) -> None:
    from cryprint import CryPrint

    assert CryPrint(exported, store=False).backend == "onnx"
    assert CryPrint(exported, store=False, backend="torch").backend == "torch"
    a, b = _sides(small_corpus)
    code = main(["verify", str(a), str(b), "--model", str(exported.parent / "model"),
                 "--backend", "onnx", "--threshold", "0.5"])  # fmt: skip
    assert code == 2
