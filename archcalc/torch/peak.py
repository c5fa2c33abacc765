"""Measure the peak memory of one training step on CPU: the check of archcalc's modelled peak.

:func:`measure_peak` runs one forward and backward of a spec's torch model under
``torch.profiler.profile(profile_memory=True)`` and replays the allocator's events: every
allocation and free of the CPU allocator (c10), kernel temporaries included, with the bytes asked
for (the CPU allocator does not round: what is reported is what was requested).  That is why the
profiler and not a ``TorchDispatchMode`` that tracks each op's outputs: the dispatch level does not
see what a kernel allocates and frees inside itself (the profiler does), and a storage's lifetime
would have to be followed with weak references.  What neither sees, oneDNN's own scratchpads if
it allocates them outside c10, is outside both.

The step is the one archcalc's peak assumes: parameters, their gradients (already allocated, as
after ``zero_grad(set_to_none=False)``) and buffers exist before it, the input batch is held by the
caller, the forward's output is held by the caller and ``output.backward(gradient)`` is called
with a gradient the caller also holds (a loss that keeps only the output, and whose gradient is
the output's).  ``peak`` = what existed before (parameters, gradients, buffers, input) + the
largest sum of the profiler's allocations minus frees, in time order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class PeakMeasurement:
    """``peak`` bytes of one training step; ``before``: what existed before it (parameters,
    gradients, buffers, input); ``op``: the innermost op running at the peak (for diagnosis)."""

    peak: int
    before: int
    op: str
    forward_peak: int  # the largest moment of the forward alone


def _nbytes(tensors: Any) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        s = t.untyped_storage()
        seen[int(s._cdata)] = s.nbytes()
    return sum(seen.values())


def measure_peak(model: nn.Module, x: torch.Tensor, loss: str = "none", autocast: torch.dtype | None = None) -> PeakMeasurement:
    """The peak of one forward + ``output.backward(ones)`` of ``model`` on ``x`` (CPU), see the
    module docstring; ``loss="cross_entropy"``: ``F.cross_entropy(output, targets).backward()``
    instead, the int64 targets made (and held) before the step, the classes the output's axis 1,
    or for a 3-D (batch, positions, vocabulary) output the last, flattened as language models do;
    ``autocast``: the forward (and the loss) under ``torch.autocast("cpu", autocast)``."""
    import contextlib

    from torch.profiler import ProfilerActivity, profile

    model.train()
    for p in model.parameters():
        if p.requires_grad and p.grad is None:
            p.grad = torch.zeros_like(p)
    targets = None
    if loss == "cross_entropy":
        with torch.no_grad():
            shape = model(x).shape
        lm = len(shape) == 3
        targets = torch.randint(0, shape[-1] if lm else shape[1], (shape[0] * shape[1],) if lm else (shape[0], *shape[2:]))
    held = [x] if targets is None else [x, targets]
    before = _nbytes([*model.parameters(), *(p.grad for p in model.parameters() if p.grad is not None), *model.buffers(), *held])
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        cast = torch.autocast("cpu", dtype=autocast) if autocast is not None else contextlib.nullcontext()
        with torch.profiler.record_function("archcalc.forward"), cast:
            out = model(x)
        with torch.profiler.record_function("archcalc.backward"):
            if targets is None:
                grad = torch.ones_like(out)
                out.backward(grad)
                del grad
            else:
                logits = out.flatten(0, 1) if out.dim() == 3 else out
                with cast:
                    value = torch.nn.functional.cross_entropy(logits, targets)
                torch.autograd.backward(value)
                del value
                del logits
        del out
    events = prof.profiler.kineto_results.events()
    mem = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    ops = [(e.start_ns(), e.start_ns() + e.duration_ns(), e.name()) for e in events if e.name() != "[memory]"]
    fwd_end = next((b for a, b, n in ops if n == "archcalc.forward"), 0)
    live = peak = fwd_peak = 0
    at = 0
    for t, n in mem:
        live += n
        if live > peak:
            peak, at = live, t
        if t <= fwd_end:
            fwd_peak = max(fwd_peak, live)
    inside = sorted((b - a, name) for a, b, name in ops if a <= at <= b and not name.startswith("archcalc."))
    op = " < ".join(name for _, name in inside[:4])
    return PeakMeasurement(before + peak, before, op, before + fwd_peak)


__all__ = ["PeakMeasurement", "measure_peak"]
