"""The ONNX export's format: ``embedder.onnx`` and what ``onnx.json`` says about it.

- :mod:`cryprint.packaging.onnx_export` (imports torch) writes ``embedder.onnx`` — the whole
  embedder, SpeechBrain's Fbank and sentence mean normalisation included, waveform in,
  embedding out — and ``onnx.json`` (:class:`OnnxSpec`) into a model folder, optionally int8.
- :mod:`cryprint.inference.onnx_runtime` runs it on onnxruntime without torch or SpeechBrain.

This module imports neither torch nor SpeechBrain: keep it so
(``tests/inference/test_onnx_runtime.py`` runs the runtime with torch made unimportable).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from cryprint.errors import ModelError

ONNX_MODEL_NAME = "embedder.onnx"
ONNX_SPEC_NAME = "onnx.json"
ONNX_FORMAT_VERSION = 1
INPUT_NAME = "waveform"
OUTPUT_NAME = "embedding"


@dataclass(frozen=True)
class OnnxSpec:
    """What ``onnx.json`` says about ``embedder.onnx``.

    model_id: the source model's identity (:func:`cryprint.models.folder.model_identity`),
    which its thresholds and calibration belong to. embedding_id: what the export recorded as
    its embeddings' identity (kept for reference; the runtime keys stored embeddings by the
    file it actually runs, ``file_sha256``: the SHA-256 of embedder.onnx, checked on load).
    sample_rate, n_mels, embedding_dim: input rate in Hz, mel filters, output size. int8:
    whether the convolutions are quantised. opset: the ONNX opset. probe_cosine: cosine between
    this file's and the torch model's embedding of a probe recording, measured at export.
    front_end: where features are computed (``"onnx"``: inside the graph). input, output: the
    tensor names.
    """

    model_id: str
    embedding_id: str
    sample_rate: int
    n_mels: int
    embedding_dim: int
    int8: bool
    opset: int
    probe_cosine: float
    front_end: str = "onnx"
    input: str = INPUT_NAME
    output: str = OUTPUT_NAME
    format_version: int = ONNX_FORMAT_VERSION
    # SHA-256 of the embedder.onnx written with this spec ("": an export of cryprint 0.1).
    file_sha256: str = ""

    def to_json(self) -> str:
        described = {
            **asdict(self),
            "input_spec": f"{self.input}: float32 [1, samples] at {self.sample_rate} Hz "
            "(one recording, any length)",
            "output_spec": f"{self.output}: float32 [1, {self.embedding_dim}] (not normalised; "
            "score with cosine similarity)",
        }
        return json.dumps(described, indent=2) + "\n"

    @classmethod
    def read(cls, folder: Path | str) -> OnnxSpec:
        """The spec in ``folder/onnx.json``.

        Raises:
            ModelError: missing, unreadable, of another format version, or missing a field.
        """
        path = Path(folder) / ONNX_SPEC_NAME
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise ModelError(
                f"{Path(folder)}: no {ONNX_SPEC_NAME} — not an ONNX export "
                "(write one with `cryprint export --format onnx`)"
            ) from error
        except (OSError, ValueError, UnicodeDecodeError) as error:
            raise ModelError(f"{path}: unreadable ({error})") from error
        if not isinstance(record, dict):
            raise ModelError(f"{path}: not a JSON object")
        if record.get("format_version") != ONNX_FORMAT_VERSION:
            raise ModelError(
                f"{path}: format version {record.get('format_version')!r}, this cryprint reads "
                f"{ONNX_FORMAT_VERSION}; export the model again"
            )
        names = [
            field.name
            for field in fields(cls)
            if field.name in record or field.name != "file_sha256"
        ]
        missing = [name for name in names if name not in record]
        if missing:
            raise ModelError(f"{path}: missing {', '.join(missing)}")
        values = {name: record[name] for name in names}
        for name in ("sample_rate", "n_mels", "embedding_dim", "opset"):
            value = values[name]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ModelError(f"{path}: {name} must be a positive whole number, got {value!r}")
        probe = values["probe_cosine"]
        if isinstance(probe, bool) or not isinstance(probe, int | float):
            raise ModelError(f"{path}: probe_cosine must be a number, got {probe!r}")
        if not isinstance(values["int8"], bool):
            raise ModelError(f"{path}: int8 must be true or false, got {values['int8']!r}")
        if values["front_end"] != "onnx":
            raise ModelError(f"{path}: unknown front_end {values['front_end']!r}")
        if not isinstance(values.get("file_sha256", ""), str):
            raise ModelError(f"{path}: file_sha256 must be a string")
        return cls(**values)


__all__ = ["INPUT_NAME", "ONNX_MODEL_NAME", "ONNX_SPEC_NAME", "OUTPUT_NAME", "OnnxSpec"]
