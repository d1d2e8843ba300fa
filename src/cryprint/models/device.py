"""Which torch device to run on: one function for every command, checked before any work."""

from __future__ import annotations

import torch

from cryprint.errors import ConfigError

DEVICE_HELP = "auto (a GPU when there is one, else the CPU), cpu, cuda, cuda:N or mps"


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
