"""What a spec asks of torch and of the machine, checked before torch allocates anything.

- :func:`check_int64`: torch holds sizes and element counts as int64; a 10**30 dimension is valid
  arithmetic for archcalc but no tensor torch can make (it failed with a C++ frame dump).
- :func:`check_fits`: ``bench`` of a model too big for the machine is refused before the weights are
  allocated (it would swap for minutes or be killed), using what the run must hold at least:

  * the weights (float32: the dtype a bench's parameters keep, AMP or not),
  * inference: the largest single layer's inputs and output at the batch (they coexist while it runs),
  * ``--train``: every layer's output (autograd keeps them for the backward pass) plus the gradients.

  This is a lower bound, so a refusal is certain, never a guess; a run that passes may still need
  more (workspace, allocator slack). Free memory: ``MemAvailable`` of ``/proc/meminfo`` (Linux;
  elsewhere unknown, no check) on CPU, ``torch.cuda.mem_get_info`` on CUDA.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..conventions import dtype_bytes
from ..dims import Dim, as_int, prod
from ..errors import SpecError
from ..graph import INPUT
from ..layers.base import shape_str
from ..report import Report

INT64_MAX = 2**63 - 1
PARAM_BYTES = 4  # bench keeps float32 weights; float16/bfloat16 run under autocast


def _int(value: Dim) -> int:
    v = as_int(value)
    if v is None:
        raise SpecError("sizes are symbolic; torch needs numbers (--input/--set)")
    return v


def check_int64(report: Report) -> None:
    """Raise :class:`SpecError` (naming the layer and field) if a size torch would see passes int64:
    a dimension, a tensor's element count at the report's batch, or a weight's element count."""
    batch = _int(report.batch)

    def check(shape: Sequence[Dim], what: str, layer: str | None, field: str, times: int) -> None:
        dims = [_int(d) for d in shape]
        n = prod(dims) * times
        if max(dims, default=0) > INT64_MAX or n > INT64_MAX:
            size = f"{len(str(n))}-digit" if n > 10**30 else f"{n:,}"
            raise SpecError(
                f"{what} {shape_str(tuple(shape))} has {size} elements{' at batch ' + str(batch) if times > 1 else ''}: "
                f"past torch's int64 limit (2**63 - 1, about 9.2e18); no tensor of that size can be made",
                layer=layer,
                field=field,
            )

    check(report.input_shape, "the input", None, "input", batch)
    for row in report.rows:
        check(row.output_shape, "the output", row.name, "output_shape", batch)
        for wname, wshape in row.weights.items():
            check(wshape, f"weight {wname!r}", row.name, "params", 1)


def required_bytes(report: Report, *, train: bool = False, weights: bool = True) -> int:
    """The least memory a bench run of ``report`` (its batch and dtype) holds at once, in bytes (see the
    module docstring); ``weights=False`` leaves out the weights (a model that is already built).

    A layer's new memory is its ``activation_bytes`` (0 for an in-place layer or a view); while it runs,
    the tensors it reads exist too. The network's input (float32, as bench makes it) lives throughout.
    """
    batch = _int(report.batch)
    tensor = {row.name: _int(prod(row.output_shape)) * batch * dtype_bytes(report.dtype) for row in report.rows}
    x = _int(prod(report.input_shape)) * batch * PARAM_BYTES
    params = sum(_int(row.params) for row in report.rows) * PARAM_BYTES if weights else 0
    new = {row.name: _int(row.activation_bytes) for row in report.rows}
    if train:  # weights, their gradients, and every output autograd keeps for the backward pass
        return 2 * params + x + sum(new.values())
    running = max((new[row.name] + sum(tensor[i] for i in row.inputs if i != INPUT) for row in report.rows), default=0)
    return params + x + running


def available_bytes(device: Any) -> int | None:
    """Free memory on ``device`` (a torch.device) in bytes, or None where it cannot be read."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_fits(report: Report, device: Any, *, train: bool = False, weights: bool = True, free: int | None = None) -> None:
    """Raise :class:`SpecError` if the run cannot fit: :func:`required_bytes` over ``free`` (default: read now)."""
    free = available_bytes(device) if free is None else free
    if free is None:
        return
    need = required_bytes(report, train=train, weights=weights)
    if need > free:
        from ..render import units

        what = "weights, gradients and every layer's output" if train else "weights and the largest layer's input and output"
        batch = report.batch
        hint = "try a smaller --batch" if not (type(batch) is int and batch <= 1) else "at batch 1 already: it does not fit this device"
        raise SpecError(
            f"needs at least {units.size(need)} on {device.type} ({what} at batch {batch}, {report.dtype}) "
            f"but {units.size(free)} is free: refused before allocating anything ({hint})",
            field="--batch",
        )


__all__ = ["INT64_MAX", "available_bytes", "check_fits", "check_int64", "required_bytes"]
