"""Write a model's whole embedder as ``embedder.onnx``: waveform in, embedding out.

SpeechBrain's ``Fbank`` computes its STFT with ``torch.stft`` on complex numbers, which the
ONNX exporter refuses. :class:`FeatureFrontEnd` is the same computation written with the
operations ONNX has — zero-padding (``center=True``, ``pad_mode="constant"``), framing by index,
a real DFT as one matrix product with the Hamming window folded into its basis, the power
spectrum, SpeechBrain's own mel matrix, ``10·log10`` clamped at ``amin`` and at ``top_db`` below
the recording's maximum, then the sentence mean subtracted. It runs in float64: SpeechBrain's
float32 FFT is itself about 1e-3 dB away from the exact features on real cries (most in the
quiet mel bands), so float64 is the only way to be as close to its features as it is to
itself. That costs little next to the full ECAPA (the DFT is under 1 % of its arithmetic,
under 2 % of onnxruntime's time) but ~40 % of the time of the CPU demo's C=64 model.
Every constant (window, mel matrix, hop,
``amin``, ``top_db``) is read from the model's own ``Fbank``; settings it does not reproduce
are refused.

The graph takes one recording, float32 [1, samples] (the time axis dynamic), like
:func:`cryprint.models.embed.embed_waveforms`, which embeds one recording per forward pass.

int8 (``int8=True``): onnxruntime's static quantisation of the ECAPA's convolutions (QDQ
format, 7-bit signed weights per output channel, uint8 activations whose ranges are calibrated
on ``calibration_waveforms``, e.g. train recordings); the float64 front-end, the first block,
the attentive pooling and the last layer stay in float (:func:`quantize_int8` says why).
Dynamic quantisation was measured too: as accurate, but onnxruntime runs its ConvInteger
3.5x slower than the fp32 convolutions.
"""

from __future__ import annotations

import copy
import hashlib
import math
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from speechbrain.lobes.features import Fbank
from speechbrain.processing.features import InputNormalization

from cryprint.data.audio import SAMPLE_RATE
from cryprint.errors import ModelError
from cryprint.io import atomic_write_bytes, atomic_write_text
from cryprint.models.folder import LoadedModel, embedder_of, model_identity
from cryprint.models.onnx_format import (
    INPUT_NAME,
    ONNX_MODEL_NAME,
    ONNX_SPEC_NAME,
    OUTPUT_NAME,
    OnnxSpec,
)

OPSET = 17
# Node-name prefixes (the exporter names each node after the module that made it, relative to
# the module that called it) kept out of int8 quantisation: the float64 front-end, the first
# TDNN block (its input, the log-mel features, spans a wide range), the attentive pooling (its
# softmax over time needs float accuracy), and the last batch norm and linear layer.
KEEP_FLOAT_SCOPES = ("/front_end/", "/blocks.0/", "/pooling/", "/asp_bn/", "/fc/")
# An fp32 export whose embedding of the probe recording is further than this from the torch
# model's is refused (measured: 1 - 1e-7 or closer).
FP32_MIN_COSINE = 0.9999
CALIBRATION_RECORDINGS = 32


class FeatureFrontEnd(torch.nn.Module):
    """SpeechBrain's ``Fbank`` then ``InputNormalization(norm_type="sentence",
    std_norm=False)`` for one unpadded recording, in float64 with ONNX-exportable operations.

    Args:
        fbank: the model's feature extractor (its constants are copied).
        normalization: the model's normalisation (checked to be sentence mean only).

    Raises:
        ModelError: a setting this front-end does not reproduce (deltas, context, another
            padding or window length, trainable filters, std normalisation...); the filter
            shape and window function are whatever the model's Fbank holds.
    """

    def __init__(self, fbank: Fbank, normalization: InputNormalization) -> None:
        super().__init__()
        stft, filters = fbank.compute_STFT, fbank.compute_fbanks
        unsupported = {
            "deltas": fbank.deltas,
            "context": fbank.context,
            "center=False": not stft.center,
            f"pad_mode={stft.pad_mode!r}": stft.pad_mode != "constant",
            "normalized_stft": stft.normalized_stft,
            "two-sided STFT": not stft.onesided,
            f"win_length {stft.win_length} != n_fft {stft.n_fft}": stft.win_length != stft.n_fft,
            "linear (not log) mel": not filters.log_mel,
            f"power_spectrogram={filters.power_spectrogram}": filters.power_spectrogram != 2,
            "trainable filters": not filters.freeze,
            f"norm_type={normalization.norm_type!r}": normalization.norm_type != "sentence",
            "std_norm": normalization.std_norm,
        }
        refused = [name for name, present in unsupported.items() if present]
        if refused:
            raise ModelError(f"the ONNX front-end does not reproduce: {', '.join(refused)}")
        self.n_fft, self.hop = stft.n_fft, stft.hop_length
        self.amin, self.top_db = float(filters.amin), float(filters.top_db)
        self.db_offset = float(filters.multiplier * filters.db_multiplier)
        self.multiplier = float(filters.multiplier)
        bins = self.n_fft // 2 + 1
        frequency = torch.arange(bins, dtype=torch.float64)[None, :]
        time = torch.arange(self.n_fft, dtype=torch.float64)[:, None]
        angle = 2 * math.pi * ((time * frequency) % self.n_fft) / self.n_fft
        window = stft.window.to(torch.float64)[:, None]
        # [n_fft, 2·bins]: real parts then imaginary parts of the windowed DFT (torch.stft's
        # sign convention, e^{-iωt}; the sign does not change the power).
        self.register_buffer("dft", torch.cat([window * angle.cos(), -window * angle.sin()], 1))
        # SpeechBrain builds its mel matrix in float32: the same values, held in float64.
        with torch.no_grad():
            mel = filters._create_fbank_matrix(
                filters.f_central.repeat(filters.n_stft, 1).transpose(0, 1),
                filters.band.repeat(filters.n_stft, 1).transpose(0, 1),
            )
        self.register_buffer("mel", mel.detach().to(torch.float64))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """float32 [1, samples] at 16 kHz → float32 [1, frames, n_mels], frames = 1 +
        samples // hop (SpeechBrain's centred STFT)."""
        audio = torch.nn.functional.pad(waveform[0].to(torch.float64), (self.n_fft // 2,) * 2)
        frames = 1 + (audio.shape[0] - self.n_fft) // self.hop
        starts = torch.arange(frames, dtype=torch.int64)[:, None] * self.hop
        framed = audio[starts + torch.arange(self.n_fft, dtype=torch.int64)[None, :]]
        spectrum = framed @ self.dft
        bins = self.n_fft // 2 + 1
        power = spectrum[:, :bins].square() + spectrum[:, bins:].square()
        decibels = self.multiplier * torch.log10(torch.clamp(power @ self.mel, min=self.amin))
        decibels = decibels - self.db_offset
        decibels = torch.maximum(decibels, decibels.max() - self.top_db)
        return (decibels - decibels.mean(dim=0, keepdim=True)).to(torch.float32)[None]


class AttentivePooling(torch.nn.Module):
    """SpeechBrain's ``AttentiveStatisticsPooling`` (global context) for one unpadded
    recording, with the global context added after the attention's first convolution instead
    of tiled over time before it.

    SpeechBrain concatenates the frames x [C, L] with the recording's mean and std repeated
    over the L frames, [3C, L], and applies a 1x1 convolution W = [W_x | W_mean | W_std]. That
    equals ``W_x x + (W_mean mean + W_std std)`` added to every frame: no [3C, L] tensor is
    built, and the convolution runs on C channels instead of 3C (4 % of the full ECAPA's
    arithmetic, and the Tile/Concat that took 8 % of onnxruntime's time).

    Args:
        pooling: the model's trained ``AttentiveStatisticsPooling`` (its weights are copied).
    """

    def __init__(self, pooling: torch.nn.Module) -> None:
        super().__init__()
        if not pooling.global_context:
            raise ModelError("the ONNX export expects ECAPA's pooling with global context")
        self.eps = pooling.eps
        convolution = pooling.tdnn.conv.conv
        if convolution.kernel_size != (1,):
            raise ModelError("the ONNX export expects a 1x1 attention convolution")
        channels = convolution.in_channels // 3
        weight = convolution.weight.detach()[:, :, 0]
        self.frames = torch.nn.Conv1d(channels, convolution.out_channels, 1)
        self.context = torch.nn.Linear(2 * channels, convolution.out_channels, bias=False)
        with torch.no_grad():
            self.frames.weight.copy_(weight[:, :channels, None])
            self.frames.bias.copy_(convolution.bias.detach())
            self.context.weight.copy_(weight[:, channels:])
        self.activation = copy.deepcopy(pooling.tdnn.activation)
        self.norm = copy.deepcopy(pooling.tdnn.norm)
        self.tanh = copy.deepcopy(pooling.tanh)
        self.attention = copy.deepcopy(pooling.conv)

    def _statistics(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """[mean; std] over time of x [1, C, L] with weights [1, C or 1, L] summing to 1."""
        mean = (weights * x).sum(2)
        deviation = x - mean.unsqueeze(2)
        # A product, not pow(2): onnxruntime's Pow is several times slower than its Mul.
        variance = (weights * deviation * deviation).sum(2)
        return torch.cat([mean, variance.clamp(self.eps).sqrt()], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x float32 [1, C, L] → pooled statistics [1, 2C, 1]."""
        uniform = torch.ones_like(x[:, :1]) / x.shape[2]
        context = self.context(self._statistics(x, uniform)).unsqueeze(2)
        hidden = self.norm(self.activation(self.frames(x) + context))
        attention = torch.softmax(self.attention(self.tanh(hidden)), dim=2)
        return self._statistics(x, attention).unsqueeze(2)


class ExportableEmbedder(torch.nn.Module):
    """The whole embedder for one recording: float32 [1, samples] → float32 [1, dim].

    SpeechBrain's ``ECAPA_TDNN.forward`` step by step (blocks, multi-layer aggregation,
    pooling, batch norm, linear layer) with :class:`AttentivePooling` as its pooling.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.front_end = FeatureFrontEnd(model.compute_features, model.mean_var_norm)
        self.embedding_model = model.embedding_model
        self.pooling = AttentivePooling(model.embedding_model.asp)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        ecapa = self.embedding_model
        x = self.front_end(waveform).transpose(1, 2)
        outputs = []
        for block in ecapa.blocks:
            x = block(x)
            outputs.append(x)
        x = ecapa.mfa(torch.cat(outputs[1:], dim=1))
        x = ecapa.asp_bn(self.pooling(x))
        return ecapa.fc(x).transpose(1, 2).squeeze(1)


def export_graph(module: torch.nn.Module, path: Path, output_name: str = OUTPUT_NAME) -> Path:
    """Trace ``module`` (float32 [1, samples] in) into an ONNX file at ``path`` with a dynamic
    time axis.

    Uses the TorchScript exporter, deprecated since torch 2.9 but still shipped in 2.11: it
    needs no extra package (the torch.export-based one needs onnxscript) and records the shape
    arithmetic of the front-end and of ECAPA's length masks as graph operations. Its warnings
    are silenced: the deprecation, SpeechBrain's ``length_to_mask`` calling ``len()`` on the
    batch of one (fixed here) and ``torch.as_tensor`` on a tensor, and Slice steps it cannot
    fold (they cost nothing); the tests run the file at lengths from 0.3 to 10 s.
    """
    example = torch.zeros(1, SAMPLE_RATE)
    module = module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[output_name],
            dynamic_axes={INPUT_NAME: {1: "samples"}},
            do_constant_folding=True,
        )
    return path


def export_onnx(
    loaded_model: LoadedModel | torch.nn.Module,
    out_folder: Path | str,
    int8: bool = False,
    calibration_waveforms: Sequence[np.ndarray] | None = None,
) -> Path:
    """Write ``embedder.onnx`` and ``onnx.json`` into ``out_folder`` (an existing folder, e.g.
    the staging folder of ``cryprint export``).

    Before anything is written, the file is run on a probe recording (4.1 s of seeded noise)
    and compared with the torch model: fp32 must give cosine ≥ 0.9999; int8 records its
    cosine in ``onnx.json`` (``probe_cosine``) either way.

    Args:
        loaded_model: the model (a LoadedModel or a CryEmbedder).
        out_folder: where to write; the two files are written atomically.
        int8: quantise (see the module docstring); needs ``calibration_waveforms``.
        calibration_waveforms: float32 [samples] arrays at 16 kHz for the activation ranges
            (a few dozen train recordings, :func:`draw_calibration_waveforms`; never dev or
            test, which measure the result).

    Returns:
        the path of ``embedder.onnx``.

    Raises:
        ModelError: the model's front-end settings cannot be exported, int8 without
            calibration audio, or an fp32 file that does not match the torch model.
    """
    out_folder = Path(out_folder)
    model = embedder_of(loaded_model)
    if int8 and not calibration_waveforms:
        raise ModelError("int8 export needs calibration recordings (e.g. train audio)")
    exportable = ExportableEmbedder(model).eval()
    model_id = model_identity(model)
    with tempfile.TemporaryDirectory(prefix="cryprint-onnx-") as temporary:
        graph = export_graph(exportable, Path(temporary) / "fp32.onnx")
        if int8:
            graph = quantize_int8(graph, Path(temporary) / "int8.onnx", calibration_waveforms)
        data = graph.read_bytes()
    probe_cosine = _probe_cosine(model, data)
    if not int8 and probe_cosine < FP32_MIN_COSINE:
        raise ModelError(
            f"the exported graph does not reproduce the model: cosine {probe_cosine:.6f} < "
            f"{FP32_MIN_COSINE} on a probe recording; nothing was written"
        )
    spec = OnnxSpec(
        model_id=model_id,
        embedding_id=hashlib.sha256(data).hexdigest() if int8 else model_id,
        sample_rate=SAMPLE_RATE,
        n_mels=model.config.n_mels,
        embedding_dim=model.config.embedding_dim,
        int8=int8,
        opset=OPSET,
        probe_cosine=round(probe_cosine, 7),
        file_sha256=hashlib.sha256(data).hexdigest(),
    )
    path = atomic_write_bytes(out_folder / ONNX_MODEL_NAME, data)
    atomic_write_text(out_folder / ONNX_SPEC_NAME, spec.to_json())
    return path


def _probe_cosine(model: torch.nn.Module, data: bytes) -> float:
    """Cosine between the torch model's and the ONNX file's embeddings of 4.1 s of seeded
    noise (not a multiple of the hop: the last frame is partial)."""
    import onnxruntime

    waveform = np.random.default_rng(0).standard_normal(65_537).astype(np.float32) * 0.1
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            expected = model(torch.from_numpy(waveform)[None], torch.ones(1))[0].numpy()
    finally:
        model.train(was_training)
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: waveform[None]})[0][0]
    return float(np.dot(expected, got) / (np.linalg.norm(expected) * np.linalg.norm(got) + 1e-30))


def draw_calibration_waveforms(
    data_root: Path | str, count: int = CALIBRATION_RECORDINGS, seed: int = 0
) -> list[np.ndarray]:
    """``count`` train recordings of a CryCeleb-layout directory, drawn with ``seed``: the
    int8 calibration set (float32 [samples] at 16 kHz each).

    Raises:
        DataError: no train split, or the directory is not a CryCeleb layout.
    """
    from cryprint.data.corpus import Corpus, recordings
    from cryprint.errors import DataError

    items = recordings(Corpus(data_root, splits=("train",)), "train")
    if not items:
        raise DataError(f"{data_root}: no train recordings to calibrate int8 on")
    chosen = np.random.default_rng(seed).choice(len(items), min(count, len(items)), replace=False)
    return [items[int(index)].waveform() for index in sorted(chosen)]


class _CalibrationReader:
    """onnxruntime's calibration data reader: one recording per ``get_next``."""

    def __init__(self, waveforms: Sequence[np.ndarray]) -> None:
        self._items: Iterator[np.ndarray] = iter(waveforms)

    def get_next(self) -> dict[str, np.ndarray] | None:
        waveform = next(self._items, None)
        if waveform is None:
            return None
        return {INPUT_NAME: np.asarray(waveform, dtype=np.float32)[None, :]}


def quantize_int8(
    fp32_path: Path,
    int8_path: Path,
    calibration_waveforms: Sequence[np.ndarray],
    keep_float: Sequence[str] = KEEP_FLOAT_SCOPES,
) -> Path:
    """Statically quantise the ECAPA of ``fp32_path`` into ``int8_path`` (see the module
    docstring).

    ``reduce_range`` (7-bit weights) matters on x86 CPUs without VNNI (AVX2, AVX-512F): their
    u8·s8 kernel adds pairs of products in saturating int16, and with full-range weights the
    sums clip. Measured on a mid-training checkpoint of the demo model (C=64): cosine to fp32
    0.974 at worst without it, 0.9994 with it. What stays float is ``keep_float`` (node-name
    prefixes, each of which must name at least one node; the default: see
    ``KEEP_FLOAT_SCOPES``). MinMax calibration: onnxruntime's histogram calibrators
    (percentile, entropy) fail on recordings of different lengths.
    """
    # (ruff sorts onnx last: it takes tests/onnx/ for a first-party package named onnx)
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = int8_path.with_name("prepared.onnx")
    # Shape inference and graph clean-up first, as onnxruntime recommends before quantising.
    quant_pre_process(str(fp32_path), str(prepared))
    graph = onnx.load(str(prepared))
    names = [node.name for node in graph.graph.node]
    unmatched = [scope for scope in keep_float if not any(n.startswith(scope) for n in names)]
    if unmatched:  # the exporter named nodes differently: quantising them would go unnoticed
        raise ModelError(f"no nodes named {', '.join(unmatched)}* in the exported graph")
    excluded = [name for name in names if name.startswith(tuple(keep_float))]
    quantize_static(
        str(prepared),
        str(int8_path),
        _CalibrationReader(calibration_waveforms),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv", "MatMul", "Gemm"],
        per_channel=True,
        reduce_range=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=excluded,
        calibrate_method=CalibrationMethod.MinMax,
    )
    return int8_path


__all__ = [
    "OPSET",
    "AttentivePooling",
    "ExportableEmbedder",
    "FeatureFrontEnd",
    "draw_calibration_waveforms",
    "export_onnx",
    "quantize_int8",
]
