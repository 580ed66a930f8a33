"""Data-parallel training on PyTorch's own engine: torchrun starts the processes, DistributedDataParallel
all-reduces the gradients (NCCL on GPUs, gloo on CPUs). warpc adds no launcher or all-reduce of its own.

How a run stays the one-process run, up to float reduction order:
- every process builds the same model from `--seed` and draws the same batch order; each takes a contiguous shard
  of every global batch (`--batch-size` stays the global batch);
- the training noise of a sample is a function of (seed, step, node, row in the global batch) (warplut.noise_rows),
  so each process draws the noise of its own rows and together they draw what one process would;
- each process's loss is its shard's summed cross-entropy over the global batch size times the number of
  processes, so DDP's gradient average is the gradient of the global batch's mean loss.

Only rank 0 validates, prints progress and writes checkpoints. Stop requests (SIGINT / SIGTERM) are agreed on by
all processes at a step boundary; a process that dies makes the others' next collective fail, which ends the run
with a TrainingError that names the last saved (resumable) state.
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import os
import re
import signal
import sys
import uuid
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import ConfigError, TrainingError, TrainingInterrupted

# How often (in steps) the processes agree on a stop request: one tiny gloo all-reduce per check.
STOP_CHECK_EVERY = 8
# A process that waits longer than this for the others (e.g. one that hangs rather than dies) gives up.
TIMEOUT = datetime.timedelta(minutes=30)


@dataclass
class Distributed:
    """This process's place in a data-parallel run."""

    rank: int
    world: int
    local_rank: int
    backend: str                 # of the gradients' process group: "nccl" or "gloo"
    device: torch.device
    control: object              # a gloo group for small CPU messages (stop flags, loss sums): no GPU sync

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: int) -> tuple[int, int]:
        """This process's rows [lo, hi) of a `batch`-row global batch (contiguous, sizes differ by at most one)."""
        return self.rank * batch // self.world, (self.rank + 1) * batch // self.world

    def any(self, flag: bool) -> bool:
        """True on every process when `flag` is true on any."""
        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control)
        return bool(t.item() > 0)

    def sum(self, value: float) -> float:
        t = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(t, group=self.control)
        return float(t.item())

    def broadcast_object(self, obj):
        """`obj` of rank 0 on every process (small, picklable Python data: metrics, history)."""
        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def broadcast_state(self, state: dict[str, torch.Tensor] | None, like: dict[str, torch.Tensor]) -> dict:
        """Rank 0's tensors (or None) on every process, shaped like `like` (a state dict of the same model)."""
        if not self.broadcast_object(state is not None):
            return None
        out = {}
        for name, ref in like.items():
            t = state[name].detach().clone() if self.is_main else torch.empty_like(ref)
            group = self.control if t.device.type == "cpu" else None
            dist.broadcast(t, src=0, group=group)
            out[name] = t
        return out

    @contextlib.contextmanager
    def main_threads(self):
        """Rank 0 alone validates while the processes on its machine wait: on the CPU it borrows their threads
        (each process has cores / N of them) for that time."""
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
        before = torch.get_num_threads()
        wide = min(os.cpu_count() or before, before * max(1, local))
        if self.device.type == "cpu" and wide > before:
            torch.set_num_threads(wide)
        try:
            yield
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The DistributedDataParallel wrapper. Buffers (wiring, thresholds) are fixed and identical on every
        process, so they are not re-broadcast before each forward."""
        from torch.nn.parallel import DistributedDataParallel

        import inspect

        ids = [self.device.index] if self.device.type == "cuda" else None
        params = inspect.signature(DistributedDataParallel).parameters
        no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}
        return DistributedDataParallel(model, device_ids=ids, **no_sync)

    def describe(self, batch: int) -> str:
        lo, hi = self.shard(batch)
        return (f"data-parallel: {self.world} processes ({self.backend}), global batch {batch} "
                f"({hi - lo}{'' if batch % self.world == 0 else f'-{hi - lo + 1}'} per process)")


def world_size_from_env() -> int:
    """The number of processes torchrun started (1 outside torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def rank_from_env() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


_CURRENT: Distributed | None = None


def setup(device: torch.device) -> Distributed | None:
    """Join the data-parallel run this process belongs to, or None for a one-process run.

    Under torchrun (WORLD_SIZE > 1) the default process group is started from the environment (NCCL for CUDA,
    gloo otherwise); a process group the caller started already is used as it is. On CUDA each process takes the
    GPU of its LOCAL_RANK."""
    global _CURRENT
    if _CURRENT is not None:
        return _CURRENT
    if not dist.is_available():
        if world_size_from_env() > 1:
            raise ConfigError("this PyTorch build has no torch.distributed; train with one process")
        return None
    if not dist.is_initialized():
        if world_size_from_env() <= 1:
            return None
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            if local >= torch.cuda.device_count():
                raise ConfigError(f"process {local} on this machine has no GPU of its own ({torch.cuda.device_count()} "
                                  f"visible); start at most that many processes per machine")
            torch.cuda.set_device(local)
        try:
            dist.init_process_group(backend, timeout=TIMEOUT)
        except (RuntimeError, ValueError) as e:
            raise TrainingError(f"cannot join the data-parallel run: {_first_line(e)}") from None
    if dist.get_world_size() <= 1:
        return None
    backend = dist.get_backend()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    control = dist.new_group(backend="gloo") if backend != "gloo" else dist.group.WORLD
    _CURRENT = Distributed(dist.get_rank(), dist.get_world_size(), local, backend, device, control)
    return _CURRENT


def current() -> Distributed | None:
    return _CURRENT


def teardown() -> None:
    """Leave the process group (at the end of `warpc train` under torchrun)."""
    global _CURRENT
    if _CURRENT is not None and dist.is_initialized():
        # Leave together: a process that tears its connections down while a peer is still writing the run's
        # files can make gloo abort in the peer ("terminate called without an active exception").
        try:
            dist.barrier(group=_CURRENT.control)
        except RuntimeError:
            pass  # a peer is gone already (the run is ending on an error)
        dist.destroy_process_group()
    _CURRENT = None


def is_peer_failure(e: BaseException) -> bool:
    """An error from a collective because another process died, hung or left."""
    if isinstance(e, getattr(dist, "DistBackendError", ())):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and any(s in text for s in (
        "Connection closed by peer", "Connection reset by peer", "Broken pipe", "Timed out", "timed out", "NCCL",
        "gloo", "Gloo"))


def _first_line(e: BaseException) -> str:
    """The gist of a (collective's) error: its first line without gloo's source location and advice."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    text = re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", lines[0])
    return text.split(". This is typically")[0][:300]


# ---- `warpc train --nproc N`: torchrun for one machine ------------------------------------------------------

LAUNCHED_ENV = "WARPC_NPROC"  # set for the processes `launch` starts (their resume hints repeat --nproc N)


def launched_nproc() -> int:
    """N when this process was started by `warpc train --nproc N`, else 0."""
    try:
        return int(os.environ.get(LAUNCHED_ENV, "0")) if world_size_from_env() > 1 else 0
    except ValueError:
        return 0


def launch(nproc: int, args: list[str]) -> None:
    """Run `python -m warpc <args>` in `nproc` processes on this machine through torchrun's launcher (the same
    engine as `torchrun --standalone --nproc-per-node N -m warpc ...`). Each process gets cores / N threads unless
    OMP_NUM_THREADS is set. Raises TrainingError naming the processes that failed."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed; train without --nproc")
    if world_size_from_env() > 1:
        raise ConfigError("--nproc starts the processes itself; under torchrun give --nproc-per-node to torchrun "
                          "instead")
    os.environ[LAUNCHED_ENV] = str(nproc)
    if "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.2,
                          start_method="spawn")
    from torch.distributed.elastic.multiprocessing.api import SignalException

    # The processes print their own errors (rank 0 the run's); the launcher's log would repeat them.
    quiet = _quiet_loggers("torch.distributed.elastic")
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", "warpc", *args)
    except ChildFailedError as e:
        raise TrainingError(_describe_failure(e, nproc)) from None
    except SignalException as e:  # Ctrl-C / SIGTERM: the launcher passed it on; rank 0 saved and said so
        raise TrainingInterrupted(f"interrupted by {signal.Signals(e.sigval).name}", int(e.sigval), -1) from None
    finally:
        for log, level in quiet:
            log.setLevel(level)


def _quiet_loggers(prefix: str) -> list[tuple[logging.Logger, int]]:
    """Raise `prefix`'s loggers to CRITICAL; returns what to restore."""
    names = [prefix] + [n for n in logging.root.manager.loggerDict if n.startswith(prefix + ".")]
    saved = []
    for name in names:
        log = logging.getLogger(name)
        saved.append((log, log.level))
        log.setLevel(logging.CRITICAL)
    return saved


def _describe_failure(e, nproc: int) -> str:
    """The first process that failed (the others were stopped by the launcher after it)."""
    rank, f = e.get_first_failure()
    how = f"was killed by {f.signal_name()}" if f.exitcode < 0 else f"exited with code {f.exitcode}"
    return f"training process {rank} of {nproc} {how}; the launcher stopped the others"
