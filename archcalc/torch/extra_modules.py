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

from typing import Any

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

    def function_args(self, x: torch.Tensor) -> tuple[float]:
        """The operand after the tensor when a function computes it (``torch.mul(x, 0.5)``)."""
        if self.op not in ("add", "sub", "mul", "div"):
            raise NotImplementedError(f"{self.value} {self.op.removeprefix('r')} x is not a function call of x")
        return (self.value,)

    def extra_repr(self) -> str:
        return f"op={self.op!r}, value={self.value}"





class Matmul(nn.Module):
    """``torch.matmul(a, b)``."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


class ScaledDotProductAttention(nn.Module):
    """``F.scaled_dot_product_attention(q, k, v, ...)`` (dropout only in training)."""

    def __init__(self, is_causal: bool = False, scale: float | None = None, dropout_p: float = 0.0, enable_gqa: bool = False) -> None:
        super().__init__()
        self.is_causal, self.scale, self.dropout_p, self.enable_gqa = is_causal, scale, dropout_p, enable_gqa

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        p = self.dropout_p if self.training else 0.0
        return nn.functional.scaled_dot_product_attention(
            q, k, v, dropout_p=p, is_causal=self.is_causal, scale=self.scale, enable_gqa=self.enable_gqa
        )


class MultiheadAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` called as a layer: one input (self-attention) or (q, k, v),
    batch-first tensors in and out whatever ``batch_first`` says, attention weights not returned."""

    def __init__(
        self, embed_dim: int, num_heads: int, dropout: float, bias: bool, kdim: int, vdim: int, batch_first: bool, self_attention: bool
    ) -> None:
        super().__init__(embed_dim, num_heads, dropout, bias, kdim=kdim, vdim=vdim, batch_first=batch_first)
        self.self_attention = self_attention

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if not self.batch_first:  # each tensor transposed once: one passed as k and v stays one (torch projects it once), as a real (L, N, E) input
            seen: dict[int, torch.Tensor] = {}
            xs = tuple(seen.setdefault(id(t), t.transpose(0, 1)) for t in xs)
        q, k, v = (xs[0], xs[0], xs[0]) if len(xs) == 1 else xs
        out = super().forward(q, k, v, need_weights=False)[0]
        return out if self.batch_first else out.transpose(0, 1)


class Permute(nn.Module):
    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


class Transpose(nn.Module):
    def __init__(self, dim0: int, dim1: int) -> None:
        super().__init__()
        self.dim0, self.dim1 = dim0, dim1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(self.dim0, self.dim1)


class Reshape(nn.Module):
    """``x.reshape(n, *shape)`` (``x.view`` when ``view``)."""

    def __init__(self, shape: tuple[int, ...], view: bool = False) -> None:
        super().__init__()
        self.shape, self.view = shape, view

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], *self.shape) if self.view else x.reshape(x.shape[0], *self.shape)


class Roll(nn.Module):
    def __init__(self, shifts: tuple[int, ...], dims: tuple[int, ...]) -> None:
        super().__init__()
        self.shifts, self.dims = shifts, dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.roll(x, self.shifts, self.dims)


class Select(nn.Module):
    def __init__(self, dim: int, index: int) -> None:
        super().__init__()
        self.dim, self.index = dim, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.select(self.dim, self.index)


class Slice(nn.Module):
    def __init__(self, dim: int, start: int, end: int, step: int) -> None:
        super().__init__()
        self.dim, self.start, self.end, self.step = dim, start, end, step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idx = [slice(None)] * (self.dim % x.dim()) + [slice(self.start, self.end, self.step)]
        return x[tuple(idx)]


class Mean(nn.Module):
    def __init__(self, dim: int | tuple[int, ...], keepdim: bool = False) -> None:
        super().__init__()
        self.dim, self.keepdim = dim, keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(self.dim, keepdim=self.keepdim)


_MEAN_POOLS: dict[type, type] = {}


def _mean_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return x.mean(tuple(range(2, x.dim())), keepdim=True)


def as_mean(pool: nn.Module) -> nn.Module:
    """An adaptive average pool to size 1 that computes ``x.mean(spatial axes, keepdim=True)``, as a model's own
    ``x.mean((2, 3))`` does (a spec's ``as_mean``): a subclass of the pool's class with that ``forward`` and ``as_mean``
    True, so verify and import read it as that layer, and the peers that hook the pool's exact class (thop, ptflops)
    see no pool, as on the model."""
    return retyped(pool, _MEAN_POOLS, forward=_mean_forward, as_mean=True)


def retyped(module: nn.Module, made: dict[type, type], **body: Any) -> nn.Module:
    """``module`` made an instance of a subclass of its class (one per class, kept in ``made``) with
    ``body``'s methods and attributes: the same name, so that verify, import and the peers that
    hook a module's exact class read it as what it stands for."""
    cls = type(module)
    sub = made.get(cls)
    if sub is None:
        sub = made[cls] = type(cls.__name__, (cls,), {"__module__": __name__, "__qualname__": cls.__qualname__, **body})
    module.__class__ = sub
    return module


class StochasticDepth(nn.Module):
    """Drop the whole input per sample ("row") or batch ("batch") with probability p in training (torchvision.ops.stochastic_depth)."""

    def __init__(self, p: float, mode: str = "row") -> None:
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        shape = [x.shape[0]] + [1] * (x.dim() - 1) if self.mode == "row" else [1] * x.dim()
        noise = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(1.0 - self.p)
        if self.p < 1.0:
            noise.div_(1.0 - self.p)
        return x * noise


class DropPath(StochasticDepth):
    """timm's name for StochasticDepth in mode "row" (its own class, so that the layer type maps back)."""


class LayerScale(nn.Module):
    """``gamma * x`` with a learned gamma broadcast from ``shape``."""

    def __init__(self, shape: tuple[int, ...], init_values: float = 1e-6) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full(shape, init_values))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * x

    def function_args(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        """The operand after the tensor when a function computes it: ``x.mul(gamma)`` with gamma of x's rank, as timm's
        ``x.mul(self.gamma.reshape(1, -1, 1, 1))`` (ptflops sizes its torch.mul patch by the shapes aligned on the
        left, which is the output's only for operands of one rank)."""
        g = self.gamma
        return (g.reshape((1,) * (x.dim() - g.dim()) + tuple(g.shape)),)


class Parameter(nn.Module):
    """A learned (1, *shape) tensor, expanded over the batch (called with the batch size, or with
    a tensor whose batch size it takes: only that tensor's shape is read)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, *shape))

    def forward(self, batch: int | torch.Tensor = 1) -> torch.Tensor:
        if isinstance(batch, torch.Tensor):
            batch = batch.shape[0]
        # under no_grad a view of a parameter still says requires_grad, without a grad_fn: torch's
        # module tracker (FlopCounterMode) then fails on it, so hand out a detached view there
        w = self.weight if torch.is_grad_enabled() else self.weight.detach()
        return w.expand(batch, *w.shape[1:])
class PositionBias(nn.Module):
    """A learned table read at fixed positions (the first entries, cycled: the counts are what matter),
    shaped (1, *shape) and expanded over the batch."""

    def __init__(self, table: tuple[int, ...], shape: tuple[int, ...]) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(*table))
        n = 1
        for d in shape:
            n *= d
        self.index: torch.Tensor
        self.register_buffer("index", torch.arange(n) % self.table.numel(), persistent=False)
        self.shape = shape

    def forward(self, batch: int = 1) -> torch.Tensor:
        t = self.table if torch.is_grad_enabled() else self.table.detach()
        return t.reshape(-1)[self.index].reshape(1, *self.shape).expand(batch, *self.shape)


class Embedding(nn.Embedding):
    """torch.nn.Embedding; ``indices="positions"`` looks up 0..L-1 for an input of L positions
    (GPT-2's ``wpe(torch.arange(L))``), ``"zeros"`` row 0 at every position (BERT's token types),
    the same rows for every sample in the batch."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, indices: str = "input") -> None:
        super().__init__(num_embeddings, embedding_dim, padding_idx)
        self.indices = indices

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.indices == "input":
            return super().forward(x)
        idx = torch.arange(x.shape[1], device=x.device) if self.indices == "positions" else torch.zeros(x.shape[1], dtype=torch.long, device=x.device)
        return super().forward(idx).unsqueeze(0).expand(x.shape[0], -1, -1)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.indices == "input" else f", indices={self.indices!r}")


class CausalMask(nn.Module):
    """``scores.masked_fill(mask, float("-inf"))`` of (N, ..., L, S) scores, the mask True where key j >
    query i (the complement of torch's top-left aligned tril(ones(L, S)), as sdpa's ``is_causal``).
    With ``buffer_size`` n, as nanoGPT writes it: a (1, 1, n, n) fp32 tril buffer, sliced and compared."""

    def __init__(self, buffer_size: int | None = None) -> None:
        super().__init__()
        self.buffer_size = None if buffer_size is None else int(buffer_size)  # (import reads the layer's field from it)
        self.sized = buffer_size is not None
        if buffer_size is not None:
            n = int(buffer_size)
            self.register_buffer("bias", torch.tril(torch.ones(n, n)).view(1, 1, n, n))

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        length, keys = scores.shape[-2], scores.shape[-1]
        if self.sized:
            bias: torch.Tensor = self.get_buffer("bias")
            return scores.masked_fill(bias[:, :, :length, :keys] == 0, float("-inf"))
        mask = torch.ones(length, keys, dtype=torch.bool, device=scores.device).triu(1)
        return scores.masked_fill(mask, float("-inf"))


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


__all__ = [
    "CausalMask",
    "Chunk",
    "Crop",
    "DropPath",
    "Embedding",
    "LayerScale",
    "Matmul",
    "Mean",
    "Mul",
    "MultiheadAttention",
    "Parameter",
    "Permute",
    "PositionBias",
    "Reshape",
    "Roll",
    "Rotary",
    "ScaledDotProductAttention",
    "Select",
    "Slice",
    "StochasticDepth",
    "Transpose",
]
