"""Process groups under torchrun: detection, set-up, rank-0-first work, sharding and gathering in rank order.

Outside torchrun (no WORLD_SIZE/RANK in the environment, or a world of one process) every function here is a
no-op that behaves like a world of one: no process group is made and no collective runs, so a single-process run
is exactly what it was. Under torchrun the group is created once per process (gloo on the CPU,
NCCL on CUDA with LOCAL_RANK picking the GPU) with a timeout, so that a collective waiting for a dead rank ends
in an error instead of a hang.
"""

from __future__ import annotations

import atexit
import datetime as dt
import os
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from ganbench.errors import ConfigError, GanbenchError

T = TypeVar("T")
# seconds a collective may wait for the other ranks ($GANBENCH_DIST_TIMEOUT); a rank that died makes the others
# fail after at most this long (gloo usually notices a closed connection at once)
DEFAULT_TIMEOUT_S = 600
_GATHER_CHUNK_BYTES = 64 << 20


def launched() -> bool:
    """Whether this process is one of several started by torchrun (or another launcher setting its variables)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def active() -> bool:
    """Whether a process group of more than one process is up."""
    if not launched():
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return int(os.environ.get("RANK", "0")) if launched() else 0


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1")) if launched() else 1


def is_main() -> bool:
    """Rank 0, or the only process: the one that writes files and prints results."""
    return rank() == 0


def init_group(device: str = "auto") -> None:
    """Under torchrun, create this process's group if not done yet: NCCL when the job runs on GPUs (device "auto"
    or "cuda" with GPUs visible; LOCAL_RANK picks the GPU), gloo otherwise. Outside torchrun: nothing."""
    if not launched():
        return
    import torch.distributed as dist

    if dist.is_initialized():
        return
    try:
        timeout = dt.timedelta(seconds=float(os.environ.get("GANBENCH_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))
    except ValueError:
        raise ConfigError(f"GANBENCH_DIST_TIMEOUT={os.environ['GANBENCH_DIST_TIMEOUT']!r} is not a number of "
                          "seconds; set it to e.g. 600 or unset it") from None
    cuda = str(device) != "cpu" and torch.cuda.is_available()
    if cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s) are visible; "
                              f"start at most {torch.cuda.device_count()} processes per node (--nproc-per-node)")
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout)
    atexit.register(cleanup)


def setup(device: str = "auto") -> torch.device:
    """The device of this process, creating the process group first when launched by torchrun.

    device: "auto", "cpu" or "cuda". Under torchrun CUDA means cuda:LOCAL_RANK with NCCL, the CPU means gloo.
    """
    from ganbench.devices import pick_device

    init_group(device)
    picked = pick_device(device)
    if not launched():
        return picked
    if picked.type == "cuda":
        picked = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if _backend_device().type != picked.type:
        raise ConfigError(f"this torchrun job's process group runs on {_backend_device().type} but --device "
                          f"{device} asks for {picked.type}; use one device type per job")
    return picked


def cleanup() -> None:
    """Destroy the process group (at exit; harmless when there is none).

    Garbage is collected first: a training run that ended on an error leaves its DDP wrappers in reference cycles
    (through the exception's frames), and they hold the group's gloo/NCCL threads. Freed by the collector during
    interpreter shutdown instead, after the group is gone, they aborted the process ("terminate called without an
    active exception") about one time in five when a process ran a command after a failed one.
    """
    if launched():
        import torch.distributed as dist

        if dist.is_initialized():
            import gc

            gc.collect()
            dist.destroy_process_group()


def _backend_device() -> torch.device:
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    if active():
        import torch.distributed as dist

        dist.barrier()


def lost_peer(exc: BaseException) -> bool:
    """Whether exc is a collective failing because another rank died, hung or cannot be reached."""
    if not active():
        return False
    import torch.distributed as dist

    text = str(exc)
    return isinstance(exc, dist.DistError) or any(
        word in text for word in ("gloo", "NCCL", "Connection reset", "Connection closed", "timed out"))


class MirroredError(GanbenchError):
    """Rank 0's error, raised again on the other ranks so that every process stops; the CLI prints it once."""

    mirrored = True


def _share_outcome(error: Exception | None) -> None:
    """Collective: rank 0's error (or success) reaches every rank; the others raise it too."""
    import torch.distributed as dist

    box = [None if error is None else str(error)] if is_main() else [None]
    dist.broadcast_object_list(box, src=0)
    if not is_main() and box[0] is not None:
        raise MirroredError(box[0])


def main_first(fn: Callable[[], T], others: bool = True) -> T | None:
    """Run fn on rank 0, then (after it succeeded) on the other ranks, e.g. to build a cache the others then read.

    others=False: rank 0 only (file writes); the other ranks wait for it and return None. An error of rank 0 is
    raised on every rank, so no rank waits forever for one that has stopped.
    """
    if not active():
        return fn()
    if is_main():
        try:
            result = fn()
        except Exception as exc:
            _share_outcome(exc)
            raise
        _share_outcome(None)
        return result
    _share_outcome(None)
    return fn() if others else None


def on_main(fn: Callable[[], T]) -> T | None:
    """Run fn on rank 0 only (file writes); every rank returns after it, with rank 0's error raised everywhere."""
    return main_first(fn, others=False)


def broadcast_object(value: Any) -> Any:
    """Rank 0's value on every rank."""
    if not active():
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(value: Any) -> list[Any]:
    """Every rank's value, in rank order, on every rank."""
    if not active():
        return [value]
    import torch.distributed as dist

    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def all_reduce_(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """In-place sum/min/max over ranks (identity outside torchrun)."""
    if active():
        import torch.distributed as dist

        dist.all_reduce(tensor, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN,
                                    "max": dist.ReduceOp.MAX}[op])
    return tensor


def shard(n_items: int, unit: int = 1) -> tuple[int, int]:
    """This rank's contiguous [lo, hi) of n_items, cut at multiples of unit (a batch size), ranks in order.

    Batches are dealt as evenly as possible, so every rank sees the very batches a single process would.
    """
    n_units = -(-n_items // unit)
    r, w = rank(), world_size()
    lo_u, hi_u = n_units * r // w, n_units * (r + 1) // w
    return min(lo_u * unit, n_items), min(hi_u * unit, n_items)


def gather_rows(local: np.ndarray, out: np.ndarray | None = None) -> np.ndarray | None:
    """Concatenate every rank's rows in rank order on rank 0 (None on the others); outside torchrun: local.

    out: rank 0's destination (e.g. a memmap) of the full shape, else a new array. Rows travel in chunks of at
    most 64 MiB as tensors on the backend's device (CPU for gloo, the GPU for NCCL).
    """
    if not active():
        if out is not None:
            out[:len(local)] = local
            return out
        return local
    import torch.distributed as dist

    counts = all_gather_object((int(local.shape[0]), tuple(local.shape[1:]), str(local.dtype)))
    filled = [c for c in counts if c[0] > 0] or counts  # a rank without rows may pass any empty array
    tail, dtype = filled[0][1], filled[0][2]
    if any(c[1] != tail or c[2] != dtype for c in filled):
        raise RuntimeError(f"ranks produced rows of different shapes or types: {counts}")
    dev = _backend_device()
    row_bytes = max(1, int(np.prod(tail, dtype=np.int64)) * np.dtype(dtype).itemsize)
    step = max(1, _GATHER_CHUNK_BYTES // row_bytes)
    total = sum(c[0] for c in counts)
    if is_main():
        if out is None:
            out = np.empty((total, *tail), dtype=dtype)
        if len(local):
            out[:len(local)] = local
        at = len(local)
        for src in range(1, world_size()):
            n = counts[src][0]
            for lo in range(0, n, step):
                buf = torch.empty((min(step, n - lo), *tail), dtype=_torch_dtype(dtype), device=dev)
                dist.recv(buf, src=src)
                out[at + lo:at + lo + len(buf)] = buf.cpu().numpy()
            at += n
        return out
    for lo in range(0, len(local), step):
        dist.send(torch.from_numpy(np.ascontiguousarray(local[lo:lo + step])).to(dev), dst=0)
    return None


def _torch_dtype(dtype: str) -> torch.dtype:
    return torch.from_numpy(np.empty(0, dtype=dtype)).dtype


class _SumOverRanks(torch.autograd.Function):
    """all_reduce(SUM) with a gradient: d(sum over ranks)/d(this rank's term) is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # noqa: D102
        import torch.distributed as dist

        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return _SumOverRanks.apply(grad)


class CpuSyncBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch of all ranks, for the CPU (gloo), where PyTorch's SyncBatchNorm does not run.

    In training mode the mean and then the biased variance of every channel are reduced over the ranks (two
    differentiable sums, count included, so ranks may hold different batch sizes); running statistics are
    updated as nn.BatchNorm updates them from a batch of the global size. Outside training, or without a process
    group, it is plain BatchNorm; its state_dict keys are BatchNorm's, so checkpoints load into plain models.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(x)
        self._check_input_dim(x)
        dtype, x = x.dtype, x.float()  # statistics in float32 also under autocast
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count_local = x.numel() // x.shape[1]
        sums = _SumOverRanks.apply(torch.cat([x.sum(dims), x.new_full((1,), float(count_local))]))
        count = sums[-1]
        mean = sums[:-1] / count
        centred = x - mean.view(shape)
        var = _SumOverRanks.apply((centred * centred).sum(dims)) / count
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                n = float(count)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / max(n - 1, 1.0)), alpha=m)
        return y.to(dtype)


def convert_sync_batchnorm(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Every BatchNorm of module normalising over the global batch: PyTorch's SyncBatchNorm on GPUs, CpuSyncBatchNorm
    on the CPU. Parameters and buffers are kept (the same tensors)."""
    if device.type != "cpu":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    bn_types = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
    if type(module) in bn_types:
        sync = CpuSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                module.track_running_stats)
        if module.affine:
            sync.weight, sync.bias = module.weight, module.bias
        if module.track_running_stats:
            sync.running_mean, sync.running_var = module.running_mean, module.running_var
            sync.num_batches_tracked = module.num_batches_tracked
        sync.train(module.training)
        return sync
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child, device))
    return module
