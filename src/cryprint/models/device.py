"""Which torch device to run on and in which arithmetic: one function for each, for every
command, checked before any work."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import torch

from cryprint.errors import ConfigError
from cryprint.models import DEVICE_HELP


def resolve_device(name: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """The device called ``name``, checked to exist on this machine.

    Args:
        name: ``auto`` (this process's GPU under torchrun — ``local_rank`` — else the first GPU,
            else the CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        local_rank: this process's rank on its machine (torchrun's ``LOCAL_RANK``).

    Raises:
        ConfigError: an unknown device name, or a device this machine does not have.
    """
    text = str(name).strip()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError) as error:
        raise ConfigError(f"unknown device '{text}'; use {DEVICE_HELP}") from error
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device '{text}': this machine has no CUDA GPU; use cpu or auto")
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"device '{text}': this machine has {count} CUDA GPU(s), numbered 0-{count - 1}"
            )
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device '{text}': MPS is not available on this machine")
        return device
    raise ConfigError(f"device '{text}' cannot run cryprint; use {DEVICE_HELP}")


# CPU flags of native bfloat16 arithmetic: AVX-512 BF16 (Cooper Lake, Zen 4+) and AMX (Sapphire
# Rapids+). Without them PyTorch emulates bf16 on the CPU, slower than float32 (measured on AVX2).
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 arithmetic natively (not emulated)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return any(flag in cpu_flags() for flag in NATIVE_BF16_CPU_FLAGS)
    return False


# bf16 pays on a CPU only for wide models. Speed of bf16 relative to fp32, one forward pass on a
# 3 s cry (Xeon with AMX, 2 cores; benchmarks/RESULTS.md section 5): width C=64 0.80x, 128
# 0.89x, 256 1.03x, 512 1.31x, 1024 1.55x (5 s). Narrower models stay in float32 under ``auto``.
BF16_MIN_CPU_CHANNELS = 512


def resolve_precision(precision: str, device: torch.device, channels: int) -> torch.dtype | None:
    """The autocast dtype of an inference precision on ``device`` for an ECAPA of width
    ``channels`` (:attr:`~cryprint.models.ecapa.ModelConfig.width`): ``auto`` → bfloat16 where
    :func:`native_bf16` and it pays (on CUDA; on a CPU from :data:`BF16_MIN_CPU_CHANNELS`), else
    None (float32); ``fp32`` → None; ``bf16`` → bfloat16 (forced: emulated and slow on a CPU
    without the flags, but it runs).

    Raises:
        ConfigError: an unknown precision.
    """
    if precision == "auto":
        pays = device.type != "cpu" or channels >= BF16_MIN_CPU_CHANNELS
        return torch.bfloat16 if native_bf16(device) and pays else None
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    raise ConfigError(f"unknown precision '{precision}'; use auto, fp32 or bf16")


def with_weights_in(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A copy of ``model`` whose convolution and linear layers hold their weights in ``dtype``,
    for running under ``torch.autocast(dtype=dtype)``: the same numbers (autocast casts exactly
    those weights to ``dtype``), without casting them again on every forward pass — which it
    does under ``inference_mode`` (26 % of a C=1024 ECAPA's pass; 1.2x faster without). The
    copy holds the weights again (half their float32 size)."""
    prepared = copy.deepcopy(model)
    for module in prepared.modules():
        if isinstance(module, torch.nn.Conv1d | torch.nn.Linear):
            module.to(dtype)
    return prepared
