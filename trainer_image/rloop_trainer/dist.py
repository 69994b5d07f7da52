"""Rank layout from the environment torchrun and the PyTorchJob set.

PyTorchJob sets MASTER_ADDR/MASTER_PORT/WORLD_SIZE/RANK (RANK as the pod index);
torchrun inside the pod rewrites them per process and adds LOCAL_RANK. A plain
`python -m ...` has none of them: that is a world of one, and we still start a
process group so DeepSpeed and the collectives below run the same code path. Its
rendezvous is an in-process store: a TCP port picked as "free" can be taken by any
outgoing connection before the group binds it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as torch_dist

from rloop_trainer import fencing, rank_watch


@dataclass(frozen=True)
class RankLayout:
    rank: int
    world_size: int
    local_rank: int


def layout_from_env(env: dict[str, str] | None = None) -> RankLayout:
    values = os.environ if env is None else env
    return RankLayout(
        rank=int(values.get("RANK", "0")),
        world_size=int(values.get("WORLD_SIZE", "1")),
        local_rank=int(values.get("LOCAL_RANK", "0")),
    )


def init_distributed(collective_timeout: timedelta) -> RankLayout:
    """Join (or, for a single process, create) the default process group, whose every
    collective fails after `collective_timeout`; with peers, start this rank's watch of
    them (rloop_trainer.rank_watch)."""
    layout = layout_from_env()
    if torch_dist.is_initialized():
        return layout
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(layout.local_rank)
    if "MASTER_ADDR" in os.environ:
        torch_dist.init_process_group(backend=backend, timeout=collective_timeout)
        if layout.world_size > 1:
            rank_watch.start_watch(layout.rank, layout.world_size, collective_timeout)
        return layout
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    store = torch_dist.HashStore()  # type: ignore[attr-defined]  # public; missing in the stubs
    torch_dist.init_process_group(
        backend=backend, store=store, rank=0, world_size=1, timeout=collective_timeout
    )
    return layout


def device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", layout_from_env().local_rank)
    return torch.device("cpu")


def is_main() -> bool:
    return not torch_dist.is_initialized() or torch_dist.get_rank() == 0


def barrier() -> None:
    if torch_dist.is_initialized():
        torch_dist.barrier()


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (a copy; the input is untouched)."""
    total = value.detach().clone()
    if torch_dist.is_initialized() and torch_dist.get_world_size() > 1:
        torch_dist.all_reduce(total, op=torch_dist.ReduceOp.SUM)
    return total


def all_reduce_float(value: float) -> float:
    """Sum of a Python float over ranks."""
    return float(all_reduce_sum(torch.tensor(value, dtype=torch.float64, device=device())).item())


def broadcast_object(value: object) -> object:
    """Rank 0's value on every rank."""
    if not torch_dist.is_initialized() or torch_dist.get_world_size() == 1:
        return value
    holder = [value]
    torch_dist.broadcast_object_list(holder, src=0)
    return holder[0]


@contextlib.contextmanager
def claimed_output(owner_uri: str, *also: str) -> Iterator[None]:
    """Collective: this attempt, under rank 0's identity, becomes the one writer of
    `owner_uri` and `also` for the block (rloop_trainer.fencing); rank 0 publishes it."""
    attempt = str(broadcast_object(fencing.new_attempt()))
    with fencing.claimed(owner_uri, *also, attempt=attempt, publish=is_main()):
        barrier()  # no rank checks the claim before rank 0 has published it
        yield


def shutdown() -> None:
    """Destroy the default process group. Once DeepSpeed has used it, through DeepSpeed:
    its own destroy also drops the groups it cached (data parallel, world), which a
    process group created later in this process would otherwise meet, destroyed."""
    if not torch_dist.is_initialized():
        return
    deepspeed_comm = sys.modules.get("deepspeed.comm")
    if deepspeed_comm is not None and deepspeed_comm.is_initialized():
        deepspeed_comm.destroy_process_group()
    else:
        torch_dist.destroy_process_group()
