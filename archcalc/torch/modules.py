"""Small nn.Modules for spec layers that torch.nn has no class for (merges, option-A shortcuts)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Add(nn.Module):
    """Sum of all inputs (a residual join); ``inplace`` records the spec's flag (the sum itself is out of place)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Concat(nn.Module):
    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, self.dim)


class Subsample(nn.Module):
    """x[:, :, ::s, ::s] (option-A shortcut)."""

    def __init__(self, stride: tuple[int, ...]) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idx = (slice(None), slice(None), *(slice(None, None, s) for s in self.stride))
        return x[idx]


class ChannelPad(nn.Module):
    """Zero-pad the channel axis (option-A shortcut)."""

    def __init__(self, before: int, after: int) -> None:
        super().__init__()
        self.before, self.after = before, after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = (0, 0) * (x.dim() - 2)
        return F.pad(x, (*spatial, self.before, self.after))
