"""What runs the embedder: PyTorch (SpeechBrain's ECAPA) or ONNX Runtime (an exported model).

Both engines take checked float32 waveforms and give one embedding each, one recording per
forward pass. The ONNX engine imports neither torch nor SpeechBrain, so a process that only
verifies cries starts in well under a second; the torch engine imports them when it is built.

``backend="auto"`` picks ONNX when the model is a folder holding an ONNX export
(``cryprint export --format onnx``) and onnxruntime is installed, else torch.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from cryprint.errors import ConfigError, ModelError
from cryprint.inference.options import EmbeddingOptions
from cryprint.inference.tta import embed_views
from cryprint.models.files import FolderRef


class TorchEngine:
    """SpeechBrain's ECAPA on PyTorch. ``model``: a model spec or a loaded model, which must not
    change afterwards (its identity is taken once, and under bf16 a bf16 copy of it runs)."""

    def __init__(self, model: Any, device: str = "cpu", precision: str = "auto") -> None:
        from cryprint.models.device import resolve_device, resolve_precision, with_weights_in
        from cryprint.models.folder import as_loaded, model_identity
        from cryprint.threads import apply_to_torch

        apply_to_torch()
        self.device = resolve_device(device)
        EmbeddingOptions(precision=precision)  # checked before the model loads
        self.loaded = as_loaded(model)
        self.loaded.model.to(self.device).eval()
        self.autocast = resolve_precision(precision, self.device, self.loaded.model.config.width)
        self.model_id = model_identity(self.loaded)
        # What runs: the model itself, or under bf16 a copy with bf16 weights (same numbers).
        self.runner = self.loaded.model
        if self.autocast is not None:
            self.runner = with_weights_in(self.loaded.model, self.autocast)
        # bf16 embeddings differ slightly from fp32 ones (cosine >= 0.9999 on the demo model):
        # stored under their own id.
        self.arithmetic = "fp32" if self.autocast is None else "bf16"
        self.embedding_id = self.model_id + ("|bf16" if self.autocast is not None else "")
        # What a gallery's embeddings must share to be compared (bf16 and fp32 do).
        self.scoring_id = self.model_id
        self.embedding_dim = self.loaded.model.config.embedding_dim

    def embed(self, waveforms: list[np.ndarray], names: list[str], tta: int = 1) -> np.ndarray:
        from cryprint.models import embed  # looked up at call time: tests watch it

        def run(parts: list[np.ndarray], labels: list[str]) -> np.ndarray:
            return embed.embed_waveforms(
                self.runner, parts, self.device, names=labels, autocast=self.autocast
            )

        return run(waveforms, names) if tta == 1 else embed_views(run, waveforms, tta, names)


class OnnxEngine:
    """An ONNX export on onnxruntime (no torch). ``folder``: the exported model folder; its
    thresholds and calibration are those of the model it was exported from."""

    def __init__(self, folder: Path | str) -> None:
        from cryprint.inference.onnx_runtime import OnnxEmbedder

        self.runtime = OnnxEmbedder(folder)
        folder = Path(folder)
        self.loaded = FolderRef(str(folder.resolve()), "folder", folder)
        self.model_id = self.runtime.model_id
        # Stored under the identity of the file that runs (its SHA-256), never another's.
        self.embedding_id = self.runtime.embedding_id
        self.arithmetic = "int8" if self.runtime.spec.int8 else "fp32"
        # fp32 embeddings match the source model's (cosine >= 0.9999, checked at export), so a
        # gallery enrolled with either serves both; int8 ones differ: their own.
        self.scoring_id = self.runtime.embedding_id if self.runtime.spec.int8 else self.model_id
        self.embedding_dim = self.runtime.embedding_dim

    def embed(self, waveforms: list[np.ndarray], names: list[str], tta: int = 1) -> np.ndarray:
        run = self.runtime.embed_waveforms
        return run(waveforms, names) if tta == 1 else embed_views(run, waveforms, tta, names)


def has_onnx_export(model: Any) -> bool:
    """Whether ``model`` is a folder holding an ONNX export."""
    from cryprint.models.onnx_format import ONNX_MODEL_NAME, ONNX_SPEC_NAME

    if not isinstance(model, str | Path):
        return False
    folder = Path(model).expanduser()
    try:
        return (folder / ONNX_MODEL_NAME).is_file() and (folder / ONNX_SPEC_NAME).is_file()
    except OSError:
        return False


def make_engine(model: Any, options: EmbeddingOptions) -> Any:
    """The engine for ``model`` (see the module docstring) with ``options``' backend, device
    and precision (the precision applies to torch).

    Raises:
        ConfigError: ONNX asked of a model without an export, on a device other than the CPU
            or in bf16. ModelError: onnxruntime is not installed.
    """
    backend, device, precision = options.backend, options.device, options.precision
    if precision == "bf16" and backend == "auto":
        backend = "torch"  # bf16 is the torch engine's; an ONNX export runs fp32 or int8
    onnx_ready = importlib.util.find_spec("onnxruntime") is not None
    if backend == "auto":
        backend = (
            "onnx"
            if has_onnx_export(model) and onnx_ready and device in ("cpu", "auto")
            else "torch"
        )
    if backend == "torch":
        return TorchEngine(model, device, precision)
    if precision == "bf16":
        raise ConfigError("bf16 is a torch-backend precision; the ONNX backend runs fp32/int8")
    if not has_onnx_export(model):
        raise ConfigError(
            f"{model}: no ONNX export here; make one with `cryprint export --format onnx "
            "--model MODEL --out FOLDER`, or use {backend}",
            fields={"backend": "torch"},
        )
    if not onnx_ready:
        raise ModelError("the ONNX backend needs onnxruntime: pip install 'cryprint[onnx]'")
    if device not in ("cpu", "auto"):
        raise ConfigError(
            "the ONNX backend runs on the CPU; use {backend} for a GPU",
            fields={"backend": "torch"},
        )
    return OnnxEngine(model)
