"""Several processes training one model: PyTorch DistributedDataParallel (DDP) under ``torchrun``.

``torchrun --standalone --nproc_per_node=N -m prodgen train MODEL`` starts N copies of ``prodgen train``
and tells each its place in environment variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ...).
:func:`init` reads them and joins the process group: NCCL with one GPU per process (``cuda:LOCAL_RANK``)
on a CUDA machine, gloo on the CPU. Asking for more processes than the machine has GPUs is refused
with a message (it never silently doubles processes up on one GPU); ``--device cpu`` trains with gloo.

The rest is what the engine (``prodgen.engine.train``) needs: who am I (:func:`rank`, :func:`is_main`), this
rank's slice of each global batch (:func:`shard`), the DDP wrapper (:func:`wrap`), the batch-norm
statistics copied from rank 0 (:func:`sync_buffers`) and sums over ranks (:func:`all_reduce_sum`).
Without torchrun every function is the one-process identity, so the engine has one code path.
Used by ``prodgen train`` and ``prodgen.engine.train`` (lessons 03+ train in one process).
"""
from __future__ import annotations

import inspect
import os

import torch
from torch import distributed as dist

__all__ = ["launched", "init", "teardown", "world_size", "rank", "is_main", "shard", "wrap", "sync_buffers",
           "all_reduce_sum", "barrier"]


def launched() -> bool:
    """Whether ``torchrun`` (or another launcher setting ``WORLD_SIZE`` > 1) started this process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def world_size() -> int:
    """How many processes train together (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's number, 0 .. world_size() - 1 (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Rank 0: the process that shows progress and writes history, samples and checkpoints."""
    return rank() == 0


def init(device: str = "auto") -> torch.device | None:
    """Join the process group ``torchrun`` described and return this process's device.

    ``cuda`` (or ``auto`` on a machine with GPUs) -> NCCL on ``cuda:LOCAL_RANK``; ``cpu`` (or ``auto``
    without GPUs) -> gloo. Returns None when torchrun did not start this process (nothing to join; the
    engine picks the device as usual) and the current device when the group is already joined.
    """
    if not launched():
        return None
    if device not in ("auto", "cpu", "cuda", "mps") and not str(device).startswith("cuda:"):
        raise ValueError(f"unknown device {device!r}; valid devices: auto, cpu, cuda, mps")
    if device == "mps":
        raise ValueError("distributed training runs on CUDA GPUs (NCCL) or the CPU (gloo), not on mps: "
                         "add --device cpu, or train in one process without torchrun")
    cuda = device != "cpu" and torch.cuda.is_available()
    if dist.is_available() and dist.is_initialized():
        return torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    if not dist.is_available():
        raise ValueError("this PyTorch build has no torch.distributed: train in one process (plain `prodgen train`)")
    if str(device).startswith("cuda:"):
        raise ValueError(f"under torchrun each process takes the GPU cuda:LOCAL_RANK; give --device cuda "
                         f"(or auto), not {device!r} (CUDA_VISIBLE_DEVICES picks which GPUs are used)")
    if device == "cuda" and not cuda:
        raise ValueError("--device cuda, but this machine has no usable CUDA GPU: add --device cpu to train "
                         "with gloo on the CPU")
    if cuda:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
        gpus = torch.cuda.device_count()
        if local > gpus:
            raise ValueError(f"torchrun started {local} processes on this machine but it has {gpus} GPU(s), and "
                             f"NCCL needs one GPU per process: use --nproc_per_node={gpus}, or add --device cpu "
                             "to train on the CPU with gloo")
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
        dist.init_process_group("nccl", device_id=dev)
        return dev
    dist.init_process_group("gloo")
    return torch.device("cpu")


def teardown() -> None:
    """Leave the process group (if one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(order: torch.Tensor, batch_size: int, rank_: int | None = None, world: int | None = None) -> torch.Tensor:
    """This rank's part of one epoch: ``steps x (batch_size / world_size)`` indices.

    ``order`` is the epoch's permutation of the catalog, the same on every rank (drawn from the same
    seeded generator). It is cut into global batches of ``batch_size`` (the remainder dropped) and
    every rank takes its own contiguous slice of each, so no product is seen twice in an epoch and one
    process (``world_size() == 1``) sees exactly the batches it would see without DDP. ``rank_`` and
    ``world`` default to this process's.
    """
    world = world_size() if world is None else world
    rank_ = rank() if rank_ is None else rank_
    if batch_size % world:
        raise ValueError(f"the batch size {batch_size} is the global batch, split evenly across processes: "
                         f"it must be a multiple of the {world} processes")
    steps = len(order) // batch_size
    return order[: steps * batch_size].view(steps, world, batch_size // world)[:, rank_]


def wrap(module: torch.nn.Module, device) -> torch.nn.Module:
    """``module`` in DistributedDataParallel when several processes train, else ``module`` itself.

    Gradients are averaged over ranks in the backward pass. Batch-norm statistics stay per rank
    (no broadcast before each forward; :func:`sync_buffers` copies rank 0's before samples and checkpoints).
    """
    if world_size() == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device = torch.device(device)
    ids = [device.index] if device.type == "cuda" else None
    # no buffer broadcast before every forward (newer PyTorch renamed the switch)
    renamed = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    no_sync = {"forward_sync_buffers": False} if renamed else {"broadcast_buffers": False}
    return DistributedDataParallel(module, device_ids=ids, **no_sync)


@torch.no_grad()
def sync_buffers(modules) -> None:
    """Copy rank 0's buffers (batch-norm running statistics and counters) to every rank."""
    if world_size() == 1:
        return
    for module in modules:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over ranks (in place; ``tensor`` itself without a process group)."""
    if world_size() > 1:
        dist.all_reduce(tensor)
    return tensor


def barrier() -> None:
    """Wait until every rank gets here."""
    if world_size() > 1:
        dist.barrier()
