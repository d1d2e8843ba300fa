"""Embed recordings with an exported ``embedder.onnx`` on onnxruntime: no torch, no SpeechBrain.

Only numpy, onnxruntime and torch-free cryprint modules are imported, so a process that
only verifies pairs starts in a fraction of a second (importing torch alone takes 1-2 s).
The session runs every graph optimisation onnxruntime has (``ORT_ENABLE_ALL``: constant
folding, Conv+BatchNorm and Conv+activation fusion...) on as many threads as the process may
use cores, and embeds one recording per run, like :func:`cryprint.models.embed.embed_waveforms`:
a recording's embedding never depends on what else is embedded.

>>> embedder = OnnxEmbedder("exports/cry-onnx")  # doctest: +SKIP
>>> embedder.embed_waveforms([waveform]).shape  # doctest: +SKIP
(1, 192)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime

from cryprint.errors import AudioError, ModelError
from cryprint.models.onnx_format import ONNX_MODEL_NAME, ONNX_SPEC_NAME, OnnxSpec
from cryprint.threads import available_cores, compute_threads, spinning


def session_options(threads: int | None = None) -> onnxruntime.SessionOptions:
    """Options for one embedder session: ``threads`` intra-op threads (default:
    :func:`cryprint.threads.compute_threads`), idle threads sleeping rather than spinning
    (:mod:`cryprint.threads`), one inter-op thread (the graph is a chain: nothing runs side by
    side), every graph optimisation, sequential execution."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or compute_threads()
    spin = "1" if spinning() else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


class OnnxEmbedder:
    """An exported embedder loaded once.

    Args:
        folder: a folder holding ``embedder.onnx`` and ``onnx.json`` (``cryprint export
            --format onnx``).
        threads: intra-op threads (default: the cores available to this process).

    Raises:
        ModelError: no ONNX export in ``folder``, or a file onnxruntime cannot load.
    """

    def __init__(self, folder: Path | str, threads: int | None = None) -> None:
        self.folder = Path(folder)
        self.spec = OnnxSpec.read(self.folder)
        path = self.folder / ONNX_MODEL_NAME
        if not path.is_file():
            raise ModelError(f"{self.folder}: {ONNX_MODEL_NAME} is missing")
        data = path.read_bytes()
        # What runs is this file: its identity is its own bytes', never only what onnx.json says.
        self.file_sha256 = hashlib.sha256(data).hexdigest()
        if self.spec.file_sha256 and self.spec.file_sha256 != self.file_sha256:
            raise ModelError(
                f"{path} is not the file this export wrote (its SHA-256 differs from "
                f"{ONNX_SPEC_NAME}'s): export the model again"
            )
        try:
            self.session = onnxruntime.InferenceSession(
                data, session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own exception types for bad files
            raise ModelError(f"{path}: onnxruntime cannot load it ({error})") from error
        inputs = [item.name for item in self.session.get_inputs()]
        outputs = [item.name for item in self.session.get_outputs()]
        if inputs != [self.spec.input] or outputs != [self.spec.output]:
            raise ModelError(
                f"{path}: expected input {self.spec.input!r} and output {self.spec.output!r}, "
                f"the file has {inputs} and {outputs}"
            )
        self._check_probes(path)

    def _check_probes(self, path: Path) -> None:
        """Two different seeded probe sounds must give two finite embeddings of the spec's
        size that differ: a file that outputs a constant, or the wrong shape, is refused."""
        rng = np.random.default_rng(0)
        probes = [(rng.standard_normal(8000) * 0.1).astype(np.float32) for _ in range(2)]
        first, second = self.embed_waveforms(probes, ["probe 1", "probe 2"])
        cosine = float(first @ second / (np.linalg.norm(first) * np.linalg.norm(second)))
        if not np.isfinite(cosine) or cosine > 0.99999:
            raise ModelError(
                f"{path} gives the same embedding for two different sounds: it cannot "
                "tell cries apart; export the model again"
            )

    @property
    def model_id(self) -> str:
        """The source model's identity: what its thresholds and calibration belong to."""
        return self.spec.model_id

    @property
    def embedding_id(self) -> str:
        """The identity of these embeddings, which stored embeddings are keyed by: the file
        that runs (its SHA-256), so no other file's embeddings can be taken for its own."""
        return f"onnx:{self.file_sha256}"

    @property
    def embedding_dim(self) -> int:
        return self.spec.embedding_dim

    @property
    def int8(self) -> bool:
        return self.spec.int8

    def embed_waveforms(
        self, waveforms: Sequence[np.ndarray], names: Sequence[str] | None = None
    ) -> np.ndarray:
        """Embed each waveform, one per run.

        Args:
            waveforms: float32 [samples] arrays at 16 kHz, any lengths (checked recordings:
                :func:`cryprint.data.inputs.read_recording` gives them).
            names: what each waveform is, for error messages.

        Returns:
            float32 [len(waveforms), embedding_dim], row i for waveforms[i]; not normalised.

        Raises:
            AudioError: a waveform that is not one-dimensional or is empty.
            ModelError: the model gave a NaN or infinite embedding (broken weights).
        """
        result = np.zeros((len(waveforms), self.embedding_dim), dtype=np.float32)
        for row, waveform in enumerate(waveforms):
            audio = np.ascontiguousarray(waveform, dtype=np.float32)
            if audio.ndim != 1 or audio.size == 0:
                name = names[row] if names is not None else f"waveform #{row}"
                raise AudioError(
                    f"{name}: expected float32 [samples] at {self.spec.sample_rate} Hz, "
                    f"got shape {audio.shape}"
                )
            result[row] = self._run(audio)
        bad = np.flatnonzero(~np.isfinite(result).all(axis=1))
        if len(bad):
            named = [names[i] if names is not None else f"#{i}" for i in bad[:5]]
            raise ModelError(
                f"the ONNX model gave NaN/inf embeddings for {len(bad)} recording(s) "
                f"({', '.join(named)}); its weights are broken"
            )
        return result

    def _run(self, audio: np.ndarray) -> np.ndarray:
        """One recording's embedding, checked to be float [1, embedding_dim]."""
        try:
            output = self.session.run(None, {self.spec.input: audio[None, :]})[0]
        except Exception as error:  # onnxruntime's own types: a bad graph, out of memory...
            message = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
            raise ModelError(f"{self.folder / ONNX_MODEL_NAME} failed to run: {message}") from error
        output = np.asarray(output)
        if output.shape != (1, self.embedding_dim):
            raise ModelError(
                f"{self.folder / ONNX_MODEL_NAME} gives an output of shape {output.shape}, not "
                f"[1, {self.embedding_dim}] as {ONNX_SPEC_NAME} says"
            )
        return output[0]


__all__ = ["OnnxEmbedder", "available_cores", "session_options"]
