"""Measure what autograd saves for the backward pass: the proof of archcalc's training memory.

:func:`measure_saved` runs one training-mode forward under ``torch.autograd.graph.saved_tensors_hooks``
and counts every storage packed, once (a tensor saved by two nodes, or two views of one tensor,
count once), parameters and buffers excluded; each storage is put on the module that was running
when it was first saved.  Storages are told apart by their ``StorageImpl`` (``_cdata``), which
also works on the meta device, where nothing is computed and every data pointer is 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class SavedMeasurement:
    """Bytes of distinct saved storages: ``total``, and ``per_module`` (by qualified module name,
    the innermost module running when the storage was first saved; ``""`` outside every module)."""

    total: int = 0
    per_module: dict[str, int] = field(default_factory=dict)
    tensors: list[tuple[str, tuple[int, ...], str, int]] = field(default_factory=list)  # (module, shape, dtype, storage bytes)


def _storage_key(t: torch.Tensor) -> int:
    return int(t.untyped_storage()._cdata)


@contextmanager
def _running_module(model: nn.Module, stack: list[str]) -> Iterator[None]:
    handles = []
    for name, mod in model.named_modules():

        def pre(_m: nn.Module, _args: Any, name: str = name) -> None:
            stack.append(name)

        def post(_m: nn.Module, _args: Any, _out: Any) -> None:
            stack.pop()

        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def measure_saved(model: nn.Module, x: torch.Tensor) -> SavedMeasurement:
    """What autograd saves during ``model(x)`` in training mode (``x`` does not require grad)."""
    model.train()
    excluded = {_storage_key(t) for t in (*model.parameters(), *model.buffers())}
    seen: set[int] = set()
    keep: list[torch.Tensor] = []  # hold every saved tensor: no storage is freed and reused meanwhile
    stack: list[str] = []
    m = SavedMeasurement()

    def pack(t: torch.Tensor) -> torch.Tensor:
        keep.append(t)
        key = _storage_key(t)
        if key not in excluded and key not in seen:
            seen.add(key)
            nbytes = t.untyped_storage().nbytes()
            where = stack[-1] if stack else ""
            m.total += nbytes
            m.per_module[where] = m.per_module.get(where, 0) + nbytes
            m.tensors.append((where, tuple(t.shape), str(t.dtype).removeprefix("torch."), nbytes))
        return t

    with torch.enable_grad(), _running_module(model, stack), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return m


__all__ = ["SavedMeasurement", "measure_saved"]
