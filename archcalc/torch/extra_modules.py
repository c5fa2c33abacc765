"""Small nn.Modules for the lineage's spec layers that torch.nn has no class for.

Each is what user code writes inline, as a module so that a built spec has one module per layer:

* ``Mul``: ``x * gate`` (squeeze-and-excitation), with torch's broadcasting;
* ``Chunk``: ``x.chunk(chunks, dim)[index]`` (ShuffleNet v2's split is two of these);
* ``Crop``: center crop by slicing, ``x[..., top:top + h, left:left + w]`` with
  ``top = (H - h) // 2`` (U-Net's crop of the skip connection).

The class names, lowercased, are the spec types (``mul``, ``chunk``, ``crop``), so
:func:`archcalc.torch.measure.module_kind` maps them back.
"""

from __future__ import annotations

import torch
from torch import nn


class Mul(nn.Module):
    """Elementwise product of all inputs, broadcasting as torch does."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Chunk(nn.Module):
    """One piece of ``torch.chunk``: ``x.chunk(chunks, dim)[index]`` (a view: no copy)."""

    def __init__(self, chunks: int, index: int, dim: int = 1) -> None:
        super().__init__()
        self.chunks, self.index, self.dim = chunks, index, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.chunk(self.chunks, self.dim)[self.index]

    def extra_repr(self) -> str:
        return f"chunks={self.chunks}, index={self.index}, dim={self.dim}"


class Crop(nn.Module):
    """Center crop of the trailing spatial axes to ``size`` by slicing (a view: no copy).

    The offset on each axis is ``(in - out) // 2``: an odd difference leaves the extra pixel at the
    end (torchvision's ``CenterCrop`` rounds the offset instead, which differs then).
    """

    def __init__(self, size: tuple[int, ...]) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.size)
        idx: list[slice] = [slice(None)] * (x.dim() - n)
        for have, want in zip(x.shape[-n:], self.size, strict=True):
            start = (int(have) - want) // 2
            idx.append(slice(start, start + want))
        return x[tuple(idx)]

    def extra_repr(self) -> str:
        return f"size={self.size}"


__all__ = ["Chunk", "Crop", "Mul"]


class Sub(nn.Module):
    """``a - b - ...`` of all inputs, broadcasting as torch does."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out - x
        return out


class Div(nn.Module):
    """``a / b / ...`` of all inputs, broadcasting as torch does."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out / x
        return out


class Scalar(nn.Module):
    """Arithmetic with a constant: ``x op value`` (``rsub``: value - x, ``rdiv``: value / x)."""

    def __init__(self, op: str, value: float) -> None:
        super().__init__()
        self.op, self.value = op, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.value
        return {
            "add": lambda: x + v, "sub": lambda: x - v, "mul": lambda: x * v, "div": lambda: x / v,
            "rsub": lambda: v - x, "rdiv": lambda: v / x, "pow": lambda: x ** v,
        }[self.op]()

    def extra_repr(self) -> str:
        return f"op={self.op!r}, value={self.value}"
