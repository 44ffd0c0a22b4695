"""Many processes (`torchrun --nproc-per-node N -m ecgaudit scan ...`): the model's work, sharded over ranks.

Every rank runs the same scan with the same seed on the same data, so every rank holds the same tensors and takes
the same branches: the algorithm is replicated, and attacks know nothing of ranks. What is sharded is the model
work, which is nearly all of a scan's cost. `shard_model` makes an adapter data-parallel over the batch axis:

- the vendor runtime (`raw_predict`, and so `predict` and every success rate and black-box query): each rank runs
  its contiguous share of the rows, then the outputs are gathered, so every rank gets the whole `(N, K)` result;
- the surrogate (`torch_forward`): each rank computes the logits of its rows and the logits are gathered; the
  backward sends each rank's rows of the incoming gradient through its own graph and gathers the input gradients.
  Rows are disjoint, so the gathered gradient is exactly the one-process gradient, bit for bit the same on every
  rank: SCAR's and DeepFool's minibatch gradients are reduced over ranks and PGD's records are shared out.

A failure in one rank's share is raised on every rank (the others learn it from the gathered status), so no rank
waits for an answer that never comes; the process group's timeout catches anything else. Only rank 0 writes.

Nothing here imports torch at module level: the CLI asks `is_writer()` before the model stack is loaded.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ecgaudit.errors import DistributedError, EcgauditError, ExitCode

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ecgaudit.models.interface import ModelAdapter

TIMEOUT_ENV = "ECGAUDIT_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 900.0
"""How long a rank waits for the others in one collective before it gives up with an error (a rank that died
without torchrun noticing, or one model call that runs that long on one share)."""

_FAILED = -1.0
_DTYPES = ("float16", "bfloat16", "float32", "float64")
"""Gathered outputs carry their dtype as a code (1 + index here; 0 = an empty share), beside the rows."""


@dataclass(frozen=True)
class _State:
    world_size: int
    rank: int
    backend: str


_state: list[_State] = []
"""The process group ecgaudit started (at most one), or empty: then `shard_model` leaves models alone."""


# -- the launch, from torchrun's environment (no torch needed) -----------------------------------------------------

def world_size() -> int:
    """Processes in the run: torchrun's `WORLD_SIZE`, 1 when not launched by it."""
    return _env_int("WORLD_SIZE", 1)


def rank() -> int:
    return _env_int("RANK", 0)


def launched() -> bool:
    """Whether this process is one of several ranks (torchrun, or the same variables set by hand)."""
    return world_size() > 1


def is_writer() -> bool:
    """Rank 0 (or a single process): the one process that prints progress and writes outputs."""
    return rank() == 0


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise DistributedError(f"environment variable {name}={text!r} is not an integer; launch ecgaudit with "
                               "torchrun, which sets it.") from None


def backend_for_device(device: str | None = None) -> str:
    """The collective backend: NCCL when the run's tensors live on a GPU, gloo on CPU.

    `device` is the run's `--device` when the CLI has one; without it, NCCL when this node has a GPU for each of
    its ranks (NCCL refuses two ranks on one GPU), else gloo.
    """
    import torch

    if device is not None:
        return "nccl" if device.startswith("cuda") else "gloo"
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return "nccl" if gpus >= max(1, _env_int("LOCAL_WORLD_SIZE", 1)) else "gloo"


def timeout_s() -> float:
    text = os.environ.get(TIMEOUT_ENV)
    try:
        value = DEFAULT_TIMEOUT_S if not text else float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise DistributedError(f"{TIMEOUT_ENV}={text!r} is not a positive number of seconds; set it to how long a "
                               "rank may wait for the others (default 900).")
    return value


def start(device: str | None = None) -> None:
    """Join the process group torchrun describes, when launched by it; nothing otherwise. Idempotent.

    Sets each rank's torch threads to the cores over the ranks on this node (torchrun sets OMP_NUM_THREADS=1,
    which leaves cores idle); an OMP_NUM_THREADS other than 1 is kept as the user's choice.
    """
    if _state or not launched():
        return
    import torch
    import torch.distributed as dist

    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise DistributedError(f"WORLD_SIZE={world_size()} asks for several processes but {', '.join(missing)} "
                               "is not set; launch with `torchrun --nproc-per-node N -m ecgaudit ...`.")
    size, me = world_size(), rank()
    if not 0 <= me < size:
        raise DistributedError(f"RANK={me} is outside 0..{size - 1} (WORLD_SIZE={size}); launch with torchrun.")
    backend = backend_for_device(device)
    local_size = max(1, _env_int("LOCAL_WORLD_SIZE", 1))
    if backend == "nccl":  # a missing GPU is the user's to fix (exit 2), found before NCCL fails on it
        from ecgaudit.models.device import resolve_device

        resolve_device(device or "cuda")
        local_rank, gpus = _env_int("LOCAL_RANK", 0), torch.cuda.device_count()
        if local_rank >= gpus:
            raise DistributedError(f"rank {me} is local rank {local_rank} on a node with {gpus} CUDA GPU(s); start "
                                   f"at most {gpus} process(es) per node with --device cuda (NCCL needs one GPU "
                                   "per rank).")
    if os.environ.get("OMP_NUM_THREADS", "1") == "1":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(max(1, cores // local_size))
    if backend == "nccl":
        torch.cuda.set_device(_env_int("LOCAL_RANK", 0))
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s()))
    except (RuntimeError, ValueError) as exc:  # a rendezvous that never completes, a port in use
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DistributedError(f"rank {me} could not join the other {size - 1} process(es) ({first}); check "
                               "MASTER_ADDR/MASTER_PORT (or --rdzv-endpoint) and that every node started.") from exc
    _state.append(_State(size, me, backend))
    atexit.register(_stop)


def _stop() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    """Whether ecgaudit started a process group of more than one rank (then models are sharded)."""
    return bool(_state)


def describe() -> dict[str, Any]:
    """For the report's environment: how many processes shared the model work, and over which backend."""
    if not _state:
        return {"world_size": 1, "backend": None}
    return {"world_size": _state[0].world_size, "backend": _state[0].backend}


def agree_on_exit_code(write: Callable[[], int]) -> int:
    """Rank 0 runs `write` (the outputs, the summary) and returns its code; the other ranks wait for it, then 0.

    The run's outcome is rank 0's exit code. The other ranks leave with 0 once rank 0 has written: had they left
    with rank 0's code, torchrun would take the first of them to exit for the failure and stop rank 0 with
    SIGTERM while it flushes its output, and would name that signal instead of rank 0's code. torchrun itself
    exits 1 when any rank fails; its summary gives rank 0's code (1 gate failed, 4 inconclusive, ...).
    """
    if not _state:
        return write()
    if _state[0].rank != 0:
        _broadcast_code(0)
        return int(ExitCode.OK)
    try:
        code = write()
    except EcgauditError as exc:
        _broadcast_code(int(exc.exit_code), quiet=True)
        raise
    except BaseException:
        _broadcast_code(int(ExitCode.INTERNAL), quiet=True)
        raise
    return _broadcast_code(code, quiet=True)


def _broadcast_code(code: int, *, quiet: bool = False) -> int:
    import torch
    import torch.distributed as dist

    box = torch.tensor([code], dtype=torch.int64, device=_comm_device())
    try:
        dist.broadcast(box, src=0)
    except RuntimeError as exc:
        if quiet:  # rank 0's work is done; a peer that is gone changes nothing it wrote
            return code
        raise DistributedError(f"rank {rank()} lost rank 0 before it reported its outcome ({exc}).") from exc
    return int(box.item())


# -- sharding the model work ---------------------------------------------------------------------------------------

def shard_model(adapter: ModelAdapter) -> ModelAdapter:
    """Make `adapter`'s runtime and surrogate data-parallel over the ranks; the same object, unchanged when
    ecgaudit started no process group. Every rank must make the same calls in the same order."""
    if not _state or getattr(adapter, "_sharded", False):
        return adapter
    raw_predict, torch_forward = adapter.raw_predict, adapter.torch_forward
    n_classes = adapter.card.n_classes

    def sharded_raw_predict(x_mv: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        import numpy as np
        import torch

        adapter._check_input(x_mv.shape)
        if len(x_mv) == 0:
            return raw_predict(x_mv, batch_size=batch_size)
        lo, hi = _share(len(x_mv))
        local = _guarded(lambda: torch.from_numpy(raw_predict(x_mv[lo:hi], batch_size=batch_size)), hi > lo)
        out = _gather_rows(local, len(x_mv), (n_classes,), torch.float32, torch.float32)
        return np.ascontiguousarray(out.numpy(), dtype=np.float32)

    def sharded_torch_forward(x_mv: torch.Tensor, *, batch_size: int = 64) -> torch.Tensor:
        import torch

        if adapter.surrogate_error is not None or len(x_mv) == 0:
            return torch_forward(x_mv, batch_size=batch_size)
        adapter._check_input(tuple(x_mv.shape))
        if torch.is_grad_enabled() and x_mv.requires_grad:
            return _sharded_function().apply(x_mv, torch_forward, batch_size, n_classes)
        lo, hi = _share(len(x_mv))
        local = _guarded(lambda: torch_forward(x_mv[lo:hi], batch_size=batch_size).detach(), hi > lo)
        return _gather_rows(local, len(x_mv), (n_classes,), torch.float64, x_mv.dtype).to(x_mv.device)

    adapter.raw_predict = sharded_raw_predict  # type: ignore[method-assign]
    adapter.torch_forward = sharded_torch_forward  # type: ignore[method-assign]
    adapter._sharded = True  # type: ignore[attr-defined]
    return adapter


def _share(n_rows: int) -> tuple[int, int]:
    """This rank's contiguous rows `[lo, hi)` of `n_rows`: ceil(n / world) each, the last shares shorter or empty."""
    state = _state[0]
    per = -(-n_rows // state.world_size)
    lo = min(n_rows, state.rank * per)
    return lo, min(n_rows, lo + per)


def _comm_device() -> torch.device:
    import torch

    if _state and _state[0].backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class _LocalFailure:
    """This rank's share raised: the exception, kept until every rank has heard of it."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _guarded(work: Callable[[], torch.Tensor], has_rows: bool) -> torch.Tensor | _LocalFailure | None:
    if not has_rows:
        return None
    try:
        return work()
    except Exception as exc:  # every rank must hear of it before anyone raises, or the others wait forever
        return _LocalFailure(exc)


def _gather_rows(local: torch.Tensor | _LocalFailure | None, n_rows: int, row_shape: tuple[int, ...],
                 wire: torch.dtype, empty_dtype: torch.dtype) -> torch.Tensor:
    """Every rank's rows, in rank order, on every rank: `(n_rows, *row_shape)` on the CPU.

    Shares are padded to one size (collectives need it) and sent as `wire` (a dtype that holds the rows exactly)
    with one status value in front: 0 an empty share, -1 a share that failed, else 1 + the rows' dtype's index in
    `_DTYPES` (the result's dtype is rank 0's; `empty_dtype` when every share is empty). A failure anywhere is
    raised everywhere: the failing rank's own exception there, a `DistributedError` naming it on the others.
    """
    import math

    import torch
    import torch.distributed as dist

    state = _state[0]
    per = -(-n_rows // state.world_size)
    width = math.prod(row_shape)
    buffer = torch.zeros(1 + per * width, dtype=wire)
    if isinstance(local, _LocalFailure):
        buffer[0] = _FAILED
    elif local is not None:
        buffer[0] = 1 + _DTYPES.index(str(local.dtype).removeprefix("torch."))
        buffer[1 : 1 + local.numel()] = local.detach().reshape(-1).to("cpu", wire)
    device = _comm_device()
    buffer = buffer.to(device)
    parts = [torch.empty_like(buffer) for _ in range(state.world_size)]
    dist.all_gather(parts, buffer)
    statuses = [float(p[0]) for p in parts]
    if _FAILED in statuses:
        if isinstance(local, _LocalFailure):
            raise local.error
        failed = statuses.index(_FAILED)
        raise DistributedError(f"rank {failed} of {state.world_size} failed on its share of the model's work; "
                               "its error says why.")
    codes = [int(s) for s in statuses if s > 0]
    dtype = getattr(torch, _DTYPES[codes[0] - 1]) if codes else empty_dtype
    rows = []
    for r, part in enumerate(parts):
        lo = min(n_rows, r * per)
        count = min(n_rows, lo + per) - lo
        rows.append(part[1 : 1 + count * width].reshape(count, *row_shape))
    return torch.cat(rows).to("cpu", dtype)


def _sharded_function() -> type:
    """The autograd Function, built on first use so that importing this module does not import torch."""
    if _FUNCTION:
        return _FUNCTION[0]
    import torch

    class ShardedForward(torch.autograd.Function):
        """Logits of all rows from each rank's share; the backward gathers each share's input gradient."""

        @staticmethod
        def forward(ctx: Any, x_mv: torch.Tensor, forward: Callable[..., torch.Tensor], batch_size: int,
                    n_classes: int) -> torch.Tensor:
            lo, hi = _share(len(x_mv))
            local_in = x_mv[lo:hi].detach().requires_grad_(True)

            def run() -> torch.Tensor:
                with torch.enable_grad():  # the local graph, kept for the backward
                    return forward(local_in, batch_size=batch_size)

            local_out = _guarded(run, hi > lo)
            gathered = _gather_rows(local_out if not isinstance(local_out, torch.Tensor) else local_out.detach(),
                                    len(x_mv), (n_classes,), torch.float64, x_mv.dtype)
            ctx.local_in, ctx.local_out, ctx.rows = local_in, local_out, (lo, hi)
            ctx.x_shape, ctx.x_dtype, ctx.x_device = tuple(x_mv.shape), x_mv.dtype, x_mv.device
            return gathered.to(x_mv.device)

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
            lo, hi = ctx.rows
            local_out, local_in = ctx.local_out, ctx.local_in

            def run() -> torch.Tensor:
                if not local_out.requires_grad:  # logits that do not depend on anything differentiable
                    return torch.zeros_like(local_in)
                # retain_graph: callers take several gradients of one forward (DeepFool, one per class).
                (grad,) = torch.autograd.grad(local_out, local_in, grad_out[lo:hi].to(local_out.device),
                                              retain_graph=True, allow_unused=True)
                return torch.zeros_like(local_in) if grad is None else grad

            local_grad = _guarded(run, hi > lo)
            # The input gradient goes over the wire in its own dtype: it is the big message (N x L x T).
            grad = _gather_rows(local_grad, ctx.x_shape[0], ctx.x_shape[1:], ctx.x_dtype, ctx.x_dtype)
            return grad.to(ctx.x_device), None, None, None

    _FUNCTION.append(ShardedForward)
    return ShardedForward


_FUNCTION: list[type] = []
