"""Data-parallel training (PyTorch DDP): gloo on the CPU, NCCL on CUDA. torchrun (or `cnnlab train --nproc N`)
starts one process per rank with RANK / WORLD_SIZE / LOCAL_RANK set; each holds the whole data set on its
device and trains on its share of every global batch (the batch's rank-th slice), so the global batch and
the learning-rate schedule are those of a single process. Only rank 0 writes the run directory, the
checkpoint and the store row.

    cnnlab train CONFIG --nproc 2
    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m cnnlab train CONFIG
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def world() -> World:
    """This process's place, from torchrun's environment (a single process when there is none)."""
    return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                 int(os.environ.get("LOCAL_RANK", 0)))


def init(device: torch.device) -> World:
    """Join the process group (once); on CUDA, each local rank takes its own GPU."""
    w = world()
    if w.distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(w.local_rank)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return w


def shard(indices: torch.Tensor, w: World) -> torch.Tensor:
    """This rank's slice of a global batch (or of the evaluation set)."""
    return indices[w.rank::w.size] if w.distributed else indices


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum over ranks (identity in a single process)."""
    if not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def any_rank(flag: bool, device: torch.device) -> bool:
    return all_sum([1.0 if flag else 0.0], device)[0] > 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def finish() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def launch(nproc: int, argv: list[str]) -> int:
    """`cnnlab ... --nproc N`: start N local ranks of the same command through torchrun's own launcher."""
    from torch.distributed.run import main as torchrun
    try:
        torchrun(["--nproc-per-node", str(nproc), "--standalone", "--no-python", sys.executable, "-m", "cnnlab",
                  *argv])
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:  # noqa: BLE001 — torchrun's ChildFailedError carries each rank's failure
        print(f"cnnlab: error: a rank failed: {exc}", file=sys.stderr)
        return 1
    return 0
