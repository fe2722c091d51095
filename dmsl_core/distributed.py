"""Scale-out on ``torch.distributed``: what ``dmsl train`` / ``dmsl eval`` need under ``torchrun``.

Nothing here is needed for a single process: :func:`init_from_env` returns a one-process
:class:`DistContext` whose collectives are no-ops when ``WORLD_SIZE`` is not set (or is 1).

Under ``torchrun --nproc-per-node N`` (and multi-node with ``--nnodes`` + rendezvous) the
environment carries ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``;
:func:`init_from_env` joins the process group with ``nccl`` when the run is on CUDA (device
``cuda:LOCAL_RANK``) and ``gloo`` otherwise (CPU).

How the library uses it (see ``training.py``, ``crossval.py``, ``evaluation.py`` and ``sharding.py``):

- training: DistributedDataParallel over the part being trained (the U-Net in stage 1, the head in
  stage 2); every rank draws the same permutation of each epoch's items and takes its share of
  each *global* batch (``--batch-size`` is the global batch, so a run on N processes follows the
  same optimisation path as one process with the same batch size); train loss and validation
  figures are all-reduced sums/counts; rank 0 alone writes files and emits progress events.
- cross-validation: ``dmsl train --fold all`` runs fold k on rank k mod N, each as an independent
  one-process training; the per-fold results are gathered to rank 0 (``crossval.train_folds``).
- evaluation: ``dmsl eval`` predicts a contiguous shard of the images on each rank (shards start on
  batch boundaries, so each image is predicted in the same batch as in one process) and gathers
  the records to rank 0 in the original order.
- streams: ``dmsl run`` on a recorded source processes a contiguous share of the frames on each
  rank; rank 0 merges the shares into the exports one process writes (``sharding.run_sharded``).

:func:`torchrun_command` builds the command line a launcher (e.g. the GUI's training panel) can
run to train with N local processes.
"""
from __future__ import annotations

import datetime
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

log = logging.getLogger("dmsl.distributed")

ENV_TIMEOUT = "DMSL_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 24 * 3600   # cross-validation gathers wait for the slowest fold (hours)


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset)."""
    raw = os.environ.get("WORLD_SIZE", "1")
    try:
        return max(1, int(raw))
    except ValueError:
        raise ValueError(f"WORLD_SIZE={raw!r} in the environment is not a number") from None


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} in the environment is not a number") from None


@dataclass
class DistContext:
    """Where this process stands: ``rank`` of ``world_size``, ``local_rank`` on its machine, and the
    device it should use (None: let the caller resolve its own). ``active`` is True when a process
    group is initialised (world size > 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: Optional[torch.device] = None
    active: bool = False
    backend: str = ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ----------------------------------------------------------------- collectives (no-ops alone)
    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def all_reduce_sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum over ranks (float64 on the CPU with gloo, on the device with nccl)."""
        if not self.active:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self._coll_device())
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
        return [float(v) for v in t.cpu().tolist()]

    def any(self, *flags: bool) -> list[bool]:
        """Element-wise logical OR over ranks (so every rank takes the same branch)."""
        if not self.active:
            return [bool(f) for f in flags]
        return [v > 0 for v in self.all_reduce_sum([1.0 if f else 0.0 for f in flags])]

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def _coll_device(self) -> torch.device:
        if self.backend == "nccl" and self.device is not None:
            return self.device
        return torch.device("cpu")


def shard_range(n: int, rank: int, world_size: int, align: int = 1) -> tuple[int, int]:
    """The contiguous ``[start, stop)`` share of ``n`` items for ``rank``; shares differ by at most
    one unit of ``align`` items and start on multiples of ``align`` (larger shares first)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of {world_size}")
    align = max(1, int(align))
    units = -(-n // align)  # ceil
    base, extra = divmod(units, world_size)
    start_u = rank * base + min(rank, extra)
    stop_u = start_u + base + (1 if rank < extra else 0)
    return min(n, start_u * align), min(n, stop_u * align)


def split_sizes(n: int, world_size: int) -> list[int]:
    """Sizes of the contiguous shares of ``n`` items (larger first), e.g. 5 over 2 -> [3, 2]."""
    return [shard_range(n, r, world_size)[1] - shard_range(n, r, world_size)[0] for r in range(world_size)]


def init_from_env(device: Optional[str] = None) -> DistContext:
    """Join the process group that ``torchrun`` described in the environment, if any.

    ``device``: the user's device choice (``auto``/None, ``cpu``, ``cuda``...). Under torchrun a
    CUDA choice becomes ``cuda:LOCAL_RANK`` and the backend ``nccl``; on the CPU it is ``gloo``.
    Without ``WORLD_SIZE`` > 1 nothing is initialised and a one-process context is returned
    (``device`` None: the caller resolves it as before).
    """
    world = env_world_size()
    if world <= 1:
        return DistContext()
    import torch.distributed as dist
    local_rank = _env_int("LOCAL_RANK", 0)
    want = (device or "auto").lower()
    use_cuda = torch.cuda.is_available() and (want == "auto" or want.startswith("cuda"))
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for but CUDA is not available here")
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s) here; "
                             f"use --nproc-per-node {torch.cuda.device_count()} or fewer")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        if want not in ("auto", "cpu"):
            raise ValueError(f"device {device!r} is not supported under torchrun (use cpu or cuda)")
        dev = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        timeout = datetime.timedelta(seconds=_env_int(ENV_TIMEOUT, DEFAULT_TIMEOUT_S))
        kw = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, timeout=timeout, **kw)
    ctx = DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                      device=dev, active=True, backend=backend)
    log.info("rank %d of %d (local rank %d), backend %s, device %s", ctx.rank, ctx.world_size, local_rank,
             backend, dev)
    return ctx


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (after a final barrier) if one was joined."""
    if ctx.active and torch.distributed.is_initialized():
        try:
            torch.distributed.barrier()
        finally:
            torch.distributed.destroy_process_group()


def torchrun_command(args: Sequence[str], nproc: int, *, command: str = "train", nnodes: int = 1,
                     node_rank: Optional[int] = None, rdzv_endpoint: Optional[str] = None,
                     python: Optional[str] = None) -> list[str]:
    """The argv to run ``dmsl COMMAND ARGS`` with ``nproc`` local processes under torchrun.

    One machine (the default) uses ``--standalone`` (a private rendezvous on a free port). For several
    machines pass ``nnodes`` and ``rdzv_endpoint`` ("host:port" of one of them), run the same command
    on every machine. ``args`` are the usual ``dmsl train`` arguments; ``--batch-size`` is the global
    batch. Example::

        subprocess.Popen(torchrun_command(["--data", "d", "--out", "r", "--config", "dmsl-fast"], 2))
    """
    if int(nproc) < 1:
        raise ValueError(f"nproc must be at least 1, got {nproc}")
    if int(nnodes) < 1:
        raise ValueError(f"nnodes must be at least 1, got {nnodes}")
    cmd = [python or sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(int(nproc))]
    if int(nnodes) == 1 and not rdzv_endpoint:
        cmd.append("--standalone")
    else:
        if not rdzv_endpoint:
            raise ValueError("several machines need rdzv_endpoint ('host:port' of one of them)")
        cmd += ["--nnodes", str(int(nnodes)), "--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint]
        if node_rank is not None:
            cmd += ["--node-rank", str(int(node_rank))]
    return cmd + ["-m", "dmsl_core.cli", command, *[str(a) for a in args]]
