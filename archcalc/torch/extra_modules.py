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


class Embedding(nn.Embedding):
    """torch.nn.Embedding; with ``positions``, it looks up 0..L-1 for an input of L positions
    (GPT-2's ``wpe(torch.arange(L))``), the same rows for every sample in the batch."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, positions: bool = False) -> None:
        super().__init__(num_embeddings, embedding_dim, padding_idx)
        self.positions = positions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.positions:
            pos = torch.arange(x.shape[1], device=x.device)
            return super().forward(pos).unsqueeze(0).expand(x.shape[0], -1, -1)
        return super().forward(x)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", positions=True" if self.positions else "")


class Rotary(nn.Module):
    """Rotary position embedding (RoFormer, Su et al. 2021) of a (N, ..., L, d) tensor, the
    rotate-half form of GPT-NeoX and Hugging Face's LLaMA: x*cos + rotate_half(x)*sin, the angle of
    feature pair i at position p being p / base^(2i/d).  No parameters or buffers."""

    def __init__(self, base: int = 10000) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length, d = x.shape[-2], x.shape[-1]
        inv_freq = 1.0 / (self.base ** (torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d))
        angles = torch.outer(torch.arange(length, device=x.device, dtype=torch.float32), inv_freq)
        emb = torch.cat((angles, angles), dim=-1)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        x1, x2 = x[..., : d // 2], x[..., d // 2 :]
        return x * cos + torch.cat((-x2, x1), dim=-1) * sin

    def extra_repr(self) -> str:
        return f"base={self.base}"


__all__ = ["Chunk", "Crop", "Embedding", "Mul", "Rotary"]
