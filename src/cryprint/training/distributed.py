"""This process's place among torchrun's training processes."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Distributed:
    """This process's place among the training processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_context() -> Distributed:
    """Read torchrun's environment; start the process group when there are several processes."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return Distributed(
        torch.distributed.get_rank(), world_size, int(os.environ.get("LOCAL_RANK", "0"))
    )


def barrier(context: Distributed) -> None:
    """Wait for every process (nothing to wait for in a single-process run)."""
    if context.world_size > 1:
        torch.distributed.barrier()
