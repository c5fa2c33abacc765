"""Measure a torch module with torch itself: per layer output shape, parameters and MACs.

Everything here is what torch reports, never a formula of archcalc:

* **params**: the sum of ``numel`` of a module's parameters (``module.parameters()``; buffers
  such as BatchNorm's running statistics are not parameters).  A module called more than once
  (torchvision's shared ``relu``) shows its parameters on its first call and 0 on later calls,
  so that the per-call rows add up to what the model holds.
* **output shape**: the shape of the tensor a module returns in a forward pass (forward hooks),
  without the batch axis.
* **MACs**: ``torch.utils.flop_counter.FlopCounterMode`` FLOPs halved.  Each call of a hooked
  module gets the FLOPs the counter added while it ran (its total before and after the call);
  ``by_module`` keeps the counter's own per-module attribution (``get_flop_counts()``, keyed by
  module name) for cross-checking: for a module called once the two are the same number.

The forward pass runs in eval mode under ``torch.no_grad()`` on a zero input of batch 1 (by
default).  On the ``meta`` device no memory is used and FlopCounterMode still works (it reads
shapes only); :func:`measure_spec` falls back to a real CPU tensor if an op has no meta kernel.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import networkx as nx
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..errors import UserExit, user_failure
from ..layers import TYPE_NAMES
from ..layers.base import Layer
from ..usercode import user_code
from .importer import moved_axis, new_axis_at

COUNTING_PATH = (
    "scaled_dot_product_attention on its math kernel and the nn.MultiheadAttention/TransformerEncoderLayer "
    "fast path off (FlopCounterMode counts 0 for the CPU flash kernel and the fused fast path)"
)


@contextlib.contextmanager
def counting_path() -> Iterator[None]:
    """Run attention on kernels FlopCounterMode has formulas for (see ``COUNTING_PATH``).

    On CPU, torch 2.14's ``F.scaled_dot_product_attention`` picks a flash kernel that the counter
    counts as 0 FLOPs, and ``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer`` in eval
    under ``no_grad`` take a fused fast path counted as 0 too (tests/test_attention_counting.py)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    was = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(was)


WINDOW_FIELDS = ("kernel_size", "stride", "padding", "dilation", "groups", "ceil_mode", "output_padding")
"""The settings of a sliding window that shapes, params and MACs can all miss: a dilation of 2 with a
padding of 2 gives the shape of a dilation of 1 with a padding of 1, and the same torch MACs."""


def window_of(layer: Any, kind: str | None) -> dict[str, Any]:
    """The window settings of a convolution or pool, a spec layer's or a torch module's alike (their
    fields have torch's names): per axis as tuples (3 -> (3, 3) in 2-D), a pool's stride None as its
    kernel (torch's default).  Empty for any other layer type."""
    if kind is None or kind[-2:] not in ("1d", "2d", "3d") or not kind.startswith(("conv", "maxpool", "avgpool", "lppool")):
        return {}
    n = int(kind[-2])
    out: dict[str, Any] = {}
    for f in WINDOW_FIELDS:
        v = getattr(layer, f, None)
        if isinstance(v, bool | str):
            out[f] = v
        elif isinstance(v, int):
            out[f] = (v,) * n if f != "groups" else v
        elif isinstance(v, list | tuple) and v and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            out[f] = tuple(v) if len(v) == n else tuple(v) * n if len(v) == 1 else tuple(v)
    if "stride" not in out and "kernel_size" in out:
        out["stride"] = out["kernel_size"]
    return out


def settings_of(layer: Any, kind: str | None, shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    """The settings verify compares beside shapes, params and MACs, which those can all miss: a
    window's (:func:`window_of`), a convolution's ``padding_mode``, a causal mask's (its mask and fill value: what archcalc's
    ``causal_mask`` is), sdpa's ``is_causal`` and ``enable_gqa`` (torch counts every score either
    way) and a rotary embedding's ``base`` (no count depends on it); a softmax's ``dim`` (its receptive field and
    thop's count), the norms' axes and groups (``normalized_shape``, ``num_groups``, LRN's ``size``: the field, the
    saved statistics, ptflops' count), and the drop probabilities (``p``, sdpa's ``dropout_p``, attention's
    ``dropout``, a drop-path's ``mode``: whether training keeps a mask, and its size).  A spec layer
    and a torch module of archcalc's alike (their fields have the same names).  ``shape``: the layer's input per sample
    (a dim counted from the end, a LayerNorm's default axes read from it); None where unknown (then those are left out)."""
    if kind == "causal_mask":
        return {"mask": "causal", "value": "-inf"}
    if kind == "scaled_dot_product_attention":  # a causal mask or grouped heads: the same torch MACs either way
        return {**{f: bool(getattr(layer, f, False)) for f in ("is_causal", "enable_gqa")},
                "dropout_p": float(getattr(layer, "dropout_p", 0.0) or 0.0)}
    if kind == "rotary" and isinstance(getattr(layer, "base", None), int):
        return {"base": layer.base}
    if kind in ("permute", "transpose") and shape is not None:  # which axes are swapped: the receptive field, no count
        dims = getattr(layer, "dims", None)
        perm = axes_permutation(kind, len(shape) + 1, dims=dims, dim0=getattr(layer, "dim0", None), dim1=getattr(layer, "dim1", None))
        return {} if perm is None else {"axes": perm}
    if kind == "softmax":
        dim = _dim(getattr(layer, "dim", None), shape)
        return {} if dim is None else {"dim": dim}
    if kind in ("layernorm", "rmsnorm"):
        norm = _normalized_shape(getattr(layer, "normalized_shape", None), shape)
        return {} if norm is None else {"normalized_shape": norm}
    if kind == "groupnorm" and isinstance(getattr(layer, "num_groups", None), int):
        return {"num_groups": layer.num_groups}
    if kind == "localresponsenorm" and isinstance(getattr(layer, "size", None), int):
        return {"size": layer.size}
    if kind is not None and kind.startswith("batchnorm") and isinstance(getattr(layer, "track_running_stats", None), bool):
        return {"track_running_stats": layer.track_running_stats}  # without: the batch's own statistics (its field, buffers)
    if kind == "shiftedwindowattention":  # the shift moves the windows: the receptive field, which no count shows
        shift = getattr(layer, "shift_size", None)
        shift = [shift, shift] if isinstance(shift, int) else shift
        return {"shift_size": tuple(shift)} if isinstance(shift, list | tuple) and all(isinstance(x, int) for x in shift) else {}
    if kind == "multiheadattention" and isinstance(getattr(layer, "dropout", None), int | float):
        return {"dropout": float(layer.dropout)}
    if kind in ("stochasticdepth", "droppath"):  # timm's DropPath holds drop_prob, and drops per sample (row)
        p = getattr(layer, "p", getattr(layer, "drop_prob", None))
        return {"p": float(p), "drop_mode": str(getattr(layer, "mode", "row"))} if isinstance(p, int | float) else {}
    out = window_of(layer, kind)
    if kind == "dropout" and isinstance(getattr(layer, "p", None), int | float):  # p = 0 keeps no mask (training memory)
        out["p"] = float(layer.p)
    if kind == "upsample":  # nearest or (bi/tri)linear: the same shapes and torch MACs, other fields and peer counts
        out["mode"] = str(getattr(layer, "mode", "nearest"))
        out["align_corners"] = bool(getattr(layer, "align_corners", None) or False)  # (None is torch's False)
    if kind in TYPE_NAMES and "padding_mode" in TYPE_NAMES[kind].model_fields:  # zeros, or a padded copy: training memory differs
        out["padding_mode"] = str(getattr(layer, "padding_mode", "zeros"))
    if kind in TYPE_NAMES and "inplace" in TYPE_NAMES[kind].model_fields and isinstance(getattr(layer, "inplace", None), bool):
        out["inplace"] = layer.inplace  # whether the output is a new tensor: training memory differs
    return out


def _dim(dim: Any, shape: tuple[int, ...] | None) -> int | None:
    """A dim of a batched tensor (batch axis 0, as torch counts) counted from the start: -1 of a 4-D tensor is 3; None
    (torch's implicit softmax dim: 0 for a 0-, 1- or 3-D tensor, else 1) as torch reads it.  None when unknown."""
    if shape is None:
        return None
    rank = len(shape) + 1
    if dim is None:
        return 0 if rank in (0, 1, 3) else 1
    return dim % rank if isinstance(dim, int) and not isinstance(dim, bool) and -rank <= dim < rank else None


def _normalized_shape(norm: Any, shape: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """The trailing sizes a LayerNorm normalizes over, as a tuple: 8 as (8,), a spec's default (None) as the input's
    last size.  None when unknown."""
    if norm is None:
        return (int(shape[-1]),) if shape else None
    if isinstance(norm, int) and not isinstance(norm, bool):
        return (norm,)
    if isinstance(norm, list | tuple) and all(isinstance(x, int) and not isinstance(x, bool) for x in norm):
        return tuple(norm)
    return None


def module_kind(module: nn.Module) -> str | None:
    """The archcalc layer type a torch module is (``nn.Conv2d`` -> ``conv2d``), or None if unknown.

    Torch's class names, lowercased, are archcalc's type names; subclasses inherit their base's type.
    A type that is one class for every rank (``layerscale``) also names its per-rank classes
    (timm's ``LayerScale2d``).
    """
    for cls in type(module).__mro__:
        name = cls.__name__.lower()
        if name in TYPE_NAMES:
            return name
        if name[-2:] in ("1d", "2d", "3d") and name[:-2] in TYPE_NAMES and not TYPE_NAMES[name[:-2]].__name__.endswith("d"):
            return name[:-2]
        if cls is nn.Module:
            break
    return None


@dataclass(frozen=True)
class LayerMeasure:
    """One call of one module, as torch measured it."""

    name: str
    """Spec layer name (a built spec) or module name (a user model: ``features.0``)."""
    kind: str | None
    """The archcalc layer type of the module (:func:`module_kind`), None if torch's class is unknown."""
    cls: str
    """The module's class name (``Conv2d``)."""
    call: int
    """1 for a module's first call, 2 for its second..."""
    output_shape: tuple[int, ...] | None
    """Per sample (no batch axis); None when the module returned something other than a tensor."""
    params: int
    flops: int
    full_shape: tuple[int, ...] | None = None
    """The output's whole shape, batch axis included if it has one (a tensor held once for the
    batch, like learned positions ``wpe(arange(L))``, has none)."""
    window: dict[str, Any] = field(default_factory=dict)
    """Settings compared with the spec's (:func:`settings_of`): a convolution's or pool's window, a
    causal mask's mask and fill value, a rotary embedding's base."""
    sources: frozenset[str] | None = None
    """Where its input came from (recorded with ``functional=True``): the labels of the nearest
    recorded calls whose outputs reach this call's inputs through unrecorded operations (a view, an
    add, a cat), :data:`FROM_INPUT` for the model's input; None when not recorded.  What verify
    compares with the spec's wiring."""
    alias: bool = False
    """Its output is its input tensor itself, unchanged (``nn.Identity``, a dropout in eval; not
    ``ReLU(inplace=True)``, which changes it): the calls after it cannot tell it from the call
    before it, so the wiring looks through it (recorded with ``functional=True``)."""

    @property
    def macs(self) -> int:
        return self.flops // 2

    @property
    def label(self) -> str:
        return self.name if self.call == 1 else f"{self.name} (call {self.call})"


@dataclass(frozen=True)
class Reorder:
    """One call of the model's own code, outside its modules, that reorders the axes of a tensor made from its input.
    It is a node of the dataflow (:attr:`LayerMeasure.sources` name it by :attr:`label`): verify treats it as the output
    of the spec layer it is paired with, and looks through it when it is paired with none (review s10 #7)."""

    label: str
    """Its name in the dataflow (``<reorder 1>``: no module's or function call's)."""
    called: str
    """What was called, as the verify table shows it: ``function permute``, ``function einsum (axes not read)``."""
    axes: tuple[int, ...] | None
    """Where each output axis comes from (:func:`axes_permutation`), batch axis included; None where not read."""
    sources: frozenset[str]
    """Where the tensors it reorders came from (as :attr:`LayerMeasure.sources`)."""
    after: str | None = None
    """The reorder whose output tensor this one reorders itself (``x.mT.movedim(1, 3)``, through ``.contiguous()``)."""


@dataclass(frozen=True)
class Measurement:
    calls: list[LayerMeasure]
    """Hooked module calls in execution order."""
    output_shape: tuple[int, ...] | None
    total_params: int
    """Every parameter the model holds (each shared tensor once)."""
    total_flops: int
    """FlopCounterMode's total for the whole forward (ops outside any module included)."""
    by_module: dict[str, int] = field(default_factory=dict)
    """FlopCounterMode's own per-module FLOPs (``get_flop_counts()``) by hooked name."""
    device: str = "cpu"
    batch: int = 1
    not_run: dict[str, int] = field(default_factory=dict)
    """Hooked modules the forward never called that hold parameters (torchvision's auxiliary heads
    in eval mode) -> their parameters (each shared tensor once, none shared with a module that ran)."""
    output_sources: frozenset[str] | None = None
    """Where the output came from (:attr:`LayerMeasure.sources`; recorded with ``functional=True``)."""
    permutes: tuple[Reorder, ...] | None = None
    """The model's own calls that reorder axes outside its modules (``x.permute(0, 2, 3, 1)``, ``x.transpose(1, 2)``,
    ``x.movedim(1, -1)``, ``x.mT``, ``torch.einsum("bchw->bwhc", x)``: :func:`reorder_of`), in order; recorded with
    ``functional=True``."""

    @property
    def total_macs(self) -> int:
        return self.total_flops // 2


class TorchRunError(RuntimeError):
    """Torch raised while running a module; ``layer`` names the module that was running."""

    def __init__(self, layer: str | None, error: BaseException) -> None:
        self.layer = layer
        self.error = error
        self.message = f"{type(error).__name__}: {error}"
        super().__init__(f"layer {layer!r}: {self.message}" if layer else self.message)


def functional_kinds() -> dict[Any, str]:
    """Functions user code calls in place of a layer -> the layer type:
    ``F.relu``, ``torch.sigmoid``, ``x.relu()``, ``F.max_pool2d``, ``F.adaptive_avg_pool2d``...
    (the calls ``archcalc import`` reads as layers: the ``records=`` of its handler table,
    :func:`archcalc.torch.registry.recorded_kinds`)."""
    from .registry import recorded_kinds

    return {f: kind for f, kind in recorded_kinds().items() if kind in TYPE_NAMES or "{n}" in kind}


FROM_INPUT = "<input>"
"""The source label of the model's input (:attr:`LayerMeasure.sources`)."""


def _tensors(v: Any) -> Iterator[torch.Tensor]:
    """The tensors in a call's arguments or result (tuples, lists and dicts looked into)."""
    if isinstance(v, torch.Tensor):
        yield v
    elif isinstance(v, list | tuple):
        for x in v:
            yield from _tensors(x)
    elif isinstance(v, dict):
        for x in v.values():
            yield from _tensors(x)


class _Flow:
    """Which recorded calls each tensor comes from: tensor -> the labels of the nearest recorded calls
    (or :data:`FROM_INPUT`) whose outputs it was computed from by operations that are not recorded.
    Held by identity and weakly (a freed tensor's id may be reused by another)."""

    def __init__(self) -> None:
        from torch.utils.weak import WeakIdKeyDictionary

        self.near: Any = WeakIdKeyDictionary()

    def of(self, *values: Any) -> frozenset[str]:
        out: set[str] = set()
        for t in _tensors(values):
            out |= self.near.get(t, frozenset())
        return frozenset(out)

    def set(self, result: Any, labels: frozenset[str]) -> None:
        for t in _tensors(result):
            self.near[t] = labels

    @staticmethod
    def aliases(result: Any, *inputs: Any) -> bool:
        """True when every tensor of ``result`` is one of ``inputs`` (the same object: no new tensor)."""
        ins = {id(t) for t in _tensors(inputs)}
        outs = [id(t) for t in _tensors(result)]
        return bool(outs) and all(o in ins for o in outs)


class _HeadRepeats:
    """The tensors a forward made by repeating an axis in place, each entry n times: Hugging Face's ``repeat_kv``
    (``x[:, :, None, :, :]``, ``.expand(b, kv, n, s, d)``, ``.reshape(b, kv * n, s, d)``) and ``torch.repeat_interleave``,
    step by step, as import reads them (:class:`archcalc.torch.importer.Repeated`).  An sdpa call whose k and v are
    such repeats of fewer heads to q's is grouped-query attention, what a spec says with ``enable_gqa`` (torch's flag
    repeats them the same way).  Held by identity and weakly, as :class:`_Flow`."""

    def __init__(self) -> None:
        from torch.utils.weak import WeakIdKeyDictionary

        self.made: Any = WeakIdKeyDictionary()  # tensor -> ("axis", a) | ("copies", a, n) | ("repeated", a, n), a counted from the end

    def note(self, func: Any, args: Any, kwargs: dict[str, Any], out: Any) -> None:
        x = args[0] if args else None
        if func not in _REPEAT_STEPS or not isinstance(x, torch.Tensor) or not isinstance(out, torch.Tensor):
            return
        step = self.made.get(x)
        if func in (torch.Tensor.contiguous, torch.Tensor.clone, torch.Tensor.detach):
            if step is not None:
                self.made[out] = step
        elif func is torch.Tensor.__getitem__ and len(args) == 2:
            with contextlib.suppress(ValueError):  # (any other index: no step of a repeat)
                at = new_axis_at(args[1], x.dim())
                if out.dim() == x.dim() + 1:
                    self.made[out] = ("axis", at - out.dim())
        elif func in (torch.unsqueeze, torch.Tensor.unsqueeze):  # x.unsqueeze(2): x[:, :, None]
            d = args[1] if len(args) > 1 else kwargs.get("dim")
            if isinstance(d, int) and not isinstance(d, bool) and -out.dim() <= d < out.dim() and d % out.dim() > 0:
                self.made[out] = ("axis", d % out.dim() - out.dim())
        elif func in (torch.Tensor.expand, torch.Tensor.expand_as) and step is not None and step[0] == "axis":
            a = step[1]
            if x.shape[a] == 1 and out.dim() == x.dim() and all(i == out.dim() + a or out.shape[i] == x.shape[i] for i in range(x.dim())):
                self.made[out] = ("copies", a, int(out.shape[a]))
        elif func in (torch.Tensor.reshape, torch.Tensor.view, torch.reshape, torch.Tensor.flatten, torch.flatten) and step is not None \
                and step[0] == "copies":  # (a reshape's result is its shape alone)
            _, a, n = step
            p = x.dim() + a  # the copies' axis, counted from the front; merged into the one before it
            if p >= 2 and tuple(out.shape) == (*x.shape[: p - 1], x.shape[p - 1] * n, *x.shape[p + 1 :]):
                self.made[out] = ("repeated", a, n)
        elif func in (torch.transpose, torch.Tensor.transpose) and step is not None and step[0] == "repeated" and len(args) == 3:
            a, b, axis = (int(d) % x.dim() if isinstance(d, int) else -1 for d in (args[1], args[2], step[1]))
            if min(a, b) >= 0:  # the repeat of the transpose, its axis moved with it
                self.made[out] = ("repeated", moved_axis(axis, a, b) - x.dim(), step[2])
        elif func in (torch.repeat_interleave, torch.Tensor.repeat_interleave):
            bound = {**dict(zip(("input", "repeats", "dim"), args, strict=False)), **kwargs}
            n, dim = bound.get("repeats"), bound.get("dim")
            if isinstance(n, int) and isinstance(dim, int) and not isinstance(n, bool) and -x.dim() <= dim < x.dim():
                self.made[out] = ("repeated", dim % x.dim() - x.dim(), n)

    def grouped(self, args: Any, kwargs: dict[str, Any]) -> bool:
        """Whether sdpa's k and v are the same repeat of fewer heads (axis -3) to q's."""
        bound = {**dict(zip(("query", "key", "value"), args, strict=False)), **kwargs}
        q, k, v = (bound.get(f) for f in ("query", "key", "value"))
        if not (isinstance(q, torch.Tensor) and isinstance(k, torch.Tensor) and isinstance(v, torch.Tensor) and min(q.dim(), k.dim()) >= 3):
            return False
        rk, rv = self.made.get(k), self.made.get(v)
        return rk is not None and rk == rv and rk[0] == "repeated" and rk[1] == -3 and rk[2] > 1 and q.shape[-3] == k.shape[-3]


_REPEAT_STEPS = frozenset({torch.Tensor.__getitem__, torch.Tensor.expand, torch.Tensor.expand_as, torch.Tensor.reshape, torch.Tensor.view,
                           torch.reshape, torch.repeat_interleave, torch.Tensor.repeat_interleave, torch.transpose, torch.Tensor.transpose,
                           torch.Tensor.contiguous, torch.Tensor.clone, torch.Tensor.detach, torch.unsqueeze, torch.Tensor.unsqueeze,
                           torch.flatten, torch.Tensor.flatten})


class _FunctionalCalls(torch.overrides.TorchFunctionMode):
    """Records the parameter-free layers a model runs as plain function calls in its own forward
    (not inside a hooked module: ``nn.ReLU`` calls ``F.relu`` itself)."""

    def __init__(self, calls: list[LayerMeasure], running: list[tuple[str, int]], counter: list[FlopCounterMode], counted: set[int],
                 flow: _Flow | None = None) -> None:
        super().__init__()
        self.calls, self.running, self.counter, self.kinds = calls, running, counter, functional_kinds()
        self.flow = flow
        self.repeats = _HeadRepeats()
        self.seen: dict[str, int] = {}
        self.params_seen = counted  # shared with the module hooks: a weight a module counted is not counted again (F.linear(x, wte.weight))
        self.permutes: list[Reorder] | None = [] if flow is not None else None
        from torch.utils.weak import WeakIdKeyDictionary

        self.reordered: Any = WeakIdKeyDictionary()  # a reorder's output tensor (and its .contiguous() copies) -> its label

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kind = self.kinds.get(func) if not self.running else None
        if kind is not None and "{n}" in kind:  # batchnorm{n}d: n from the input's rank
            x = args[0] if args else None
            kind = kind.format(n=max(x.dim() - 2, 1)) if isinstance(x, torch.Tensor) else None
        if kind is None and not self.running and func in (torch.mean, torch.Tensor.mean):
            kind = _global_mean(args, kwargs or {})
        before = self.counter[0].get_total_flops() if kind else 0
        came = self.flow.of(args, kwargs) if self.flow is not None and not self.running else None  # (before an in-place op)
        out = func(*args, **(kwargs or {}))
        # (of a tensor made from the input, not a bias table's)
        reorder = reorder_of(func, args, kwargs or {}) if self.permutes is not None and came and not kind else None
        if came is not None and self.flow is not None and not kind:
            self.flow.set(out, came)  # an operation not recorded (a view, an add): its result comes from where its inputs do
        if not self.running:
            self.repeats.note(func, args, kwargs or {}, out)
            if reorder is not None and self.permutes is not None and self.flow is not None and came:
                self._reorder(reorder, args, out, came)
            elif (func in _COPIES and args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor)
                  and self.reordered.get(args[0]) is not None):
                self.reordered[out] = self.reordered[args[0]]  # x.mT.contiguous(): still that reorder's output
        return self._record(kind, func, args, kwargs, out, before, came)

    def _reorder(self, reorder: tuple[str, tuple[int, ...] | None], args: Any, out: Any, came: frozenset[str]) -> None:
        """Record a reorder and make its output a node of the dataflow (:class:`Reorder`)."""
        assert self.permutes is not None and self.flow is not None
        name, axes = reorder
        label = f"<reorder {len(self.permutes) + 1}>"
        tensors = list(_tensors(args))
        before = self.reordered.get(tensors[0]) if len(tensors) == 1 else None
        after = before if before is not None and came == frozenset({before}) else None
        called = f"function {name}" if axes is not None else f"function {name} (axes not read)"
        self.permutes.append(Reorder(label, called, axes, came, after))
        self.flow.set(out, frozenset({label}))
        for t in _tensors(out):
            self.reordered[t] = label

    def _record(self, kind: str | None, func: Any, args: Any, kwargs: Any, out: Any, before: int, came: frozenset[str] | None) -> Any:
        if kind:
            name = getattr(func, "__name__", kind)
            n = self.seen[name] = self.seen.get(name, 0) + 1
            flops = self.counter[0].get_total_flops() - before
            shape = _per_sample(out)
            if name == "mean" and shape is not None:  # x.mean((2, 3)) is global pooling to C x 1 x 1 (then a flatten)
                shape = (shape[0], *(1 for _ in range(args[0].dim() - 2)))
            params = 0  # the parameters the call reads (F.batch_norm(x, ..., self.weight, self.bias)), each once
            holds = kind in TYPE_NAMES and TYPE_NAMES[kind].weights is not Layer.weights  # (x @ self.W: a matmul holds none; W is a parameter layer)
            for t in (*args, *(kwargs or {}).values()) if holds else ():
                if isinstance(t, nn.Parameter) and id(t) not in self.params_seen:
                    self.params_seen.add(id(t))
                    params += t.numel()
            window = _call_settings(kind, args, kwargs or {}, func)
            if kind == "scaled_dot_product_attention" and self.repeats.grouped(args, kwargs or {}):
                window["enable_gqa"] = True  # k and v of fewer heads repeated to q's before the call: grouped-query attention
            label = name if n == 1 else f"{name}_{n - 1}"
            alias = self.flow is not None and not window.get("inplace") and _Flow.aliases(out, args, kwargs)
            self.calls.append(LayerMeasure(label, kind, f"function {name}", 1, shape, params, flops, window=window, sources=came, alias=alias))
            if self.flow is not None and not alias:
                self.flow.set(out, frozenset({label}))
        return out


_TRANSPOSES = frozenset({torch.transpose, torch.Tensor.transpose, torch.Tensor.transpose_, torch.swapaxes, torch.Tensor.swapaxes,
                         torch.Tensor.swapaxes_, torch.swapdims, torch.Tensor.swapdims, torch.Tensor.swapdims_})
_MOVES = frozenset({torch.movedim, torch.Tensor.movedim, torch.moveaxis, torch.Tensor.moveaxis})
_LAST_TWO = frozenset({torch.adjoint, torch.Tensor.adjoint})  # (and the properties x.mT, x.mH)
_REVERSED = frozenset({torch.t, torch.Tensor.t, torch.Tensor.t_})  # (and the properties x.T, x.H)
_COPIES = frozenset({torch.Tensor.contiguous, torch.Tensor.clone, torch.clone, torch.Tensor.detach})
"""Calls whose result holds its input's values in its input's axes (a reorder's output copied stays that reorder's)."""


def reorder_of(func: Any, args: Any, kwargs: dict[str, Any]) -> tuple[str, tuple[int, ...] | None] | None:
    """Whether a call reorders the axes of its tensor, and how: (its name, :func:`axes_permutation` or None where the
    arguments cannot be read); None for a call that reorders nothing.  Every spelling torch has: ``permute``,
    ``transpose`` / ``swapaxes`` / ``swapdims`` (in place too), ``movedim`` / ``moveaxis``, ``x.mT`` / ``x.mH`` /
    ``adjoint()`` (the last two axes), ``x.T`` / ``x.H`` / ``t()`` (all axes reversed), ``rot90`` by an odd number of
    quarter turns (its two axes swapped), and an ``einsum`` that puts some operand's kept axes in another order: a
    single operand's pure permutation (``"bchw->bwhc"``) is read, any other such einsum is a reorder not read
    (review s10 #2: these spellings were not seen, so a model swapping H and W passed)."""
    owner = getattr(func, "__self__", None)  # a property's getter: x.mT calls TensorBase.mT.__get__
    tensors = list(_tensors(args))
    x = tensors[0] if tensors else None
    if not isinstance(x, torch.Tensor):
        return None
    rank = x.dim()
    name = getattr(func, "__name__", "reorder")
    if func in (torch.permute, torch.Tensor.permute):
        rest = list(args[1:])
        dims = rest[0] if len(rest) == 1 and isinstance(rest[0], list | tuple) else rest or kwargs.get("dims")
        return "permute", axes_permutation("permute", rank, dims=dims)
    if func in _TRANSPOSES:
        rest = list(args[1:])
        names = ("dim0", "dim1") if "dim0" in kwargs else ("axis0", "axis1")
        rest += [kwargs.get(n) for n in names[len(rest):]]
        return name, axes_permutation("transpose", rank, dim0=rest[0], dim1=rest[1]) if len(rest) >= 2 else None
    if func in _MOVES:
        bound = {**dict(zip(("input", "source", "destination"), args, strict=False)), **kwargs}
        return name, _moved(rank, bound.get("source"), bound.get("destination"))
    if owner is torch.Tensor.mT or owner is torch.Tensor.mH or func in _LAST_TWO:
        name = {id(torch.Tensor.mT): "mT", id(torch.Tensor.mH): "mH"}.get(id(owner), name)
        return (name, axes_permutation("transpose", rank, dim0=-2, dim1=-1)) if rank >= 2 else None
    if owner is torch.Tensor.T or owner is torch.Tensor.H or func in _REVERSED:
        name = {id(torch.Tensor.T): "T", id(torch.Tensor.H): "H"}.get(id(owner), name)
        return (name, tuple(range(rank - 1, -1, -1))) if rank >= 2 else None
    if func in (torch.rot90, torch.Tensor.rot90):
        bound = {**dict(zip(("input", "k", "dims"), args, strict=False)), **kwargs}
        k, dims = bound.get("k", 1), bound.get("dims", (0, 1))
        if not isinstance(k, int) or isinstance(k, bool) or not isinstance(dims, list | tuple) or len(dims) != 2:
            return name, None
        return (name, axes_permutation("transpose", rank, dim0=dims[0], dim1=dims[1])) if k % 2 else None
    if func is torch.einsum:
        how = _einsum_reorder(args, kwargs)
        return None if how is False else (name, how if isinstance(how, tuple) else None)
    return None


def _moved(rank: int, source: Any, destination: Any) -> tuple[int, ...] | None:
    """:func:`axes_permutation` of ``movedim(source, destination)`` (each an axis or a sequence of axes)."""
    src = [source] if isinstance(source, int) else list(source) if isinstance(source, list | tuple) else None
    dst = [destination] if isinstance(destination, int) else list(destination) if isinstance(destination, list | tuple) else None
    if src is None or dst is None or len(src) != len(dst) or not all(isinstance(d, int) and -rank <= d < rank for d in (*src, *dst)):
        return None
    src, dst = [d % rank for d in src], [d % rank for d in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        return None
    out: list[int | None] = [None] * rank
    for s_, d in zip(src, dst, strict=True):
        out[d] = s_
    rest = iter(a for a in range(rank) if a not in src)
    return tuple(a if a is not None else next(rest) for a in out)


_ELLIPSIS = "..."


def _einsum_terms(args: Any) -> tuple[list[list[str]], list[str], list[torch.Tensor]] | None:
    """An einsum call's operands' subscripts, the output's, and the operands: ``"bchw->bwhc"`` or the sublist form
    (``einsum(x, [0, 1, 2, 3], [0, 3, 2, 1])``); each subscript a letter, a number or :data:`_ELLIPSIS`; None if unread."""
    if args and isinstance(args[0], str):
        ops = list(args[1:])
        if len(ops) == 1 and isinstance(ops[0], list | tuple):
            ops = list(ops[0])
        eq = args[0].replace(" ", "")
        lhs, arrow, rhs = eq.partition("->")

        def subs(term: str) -> list[str] | None:
            parts = term.split(_ELLIPSIS)
            if len(parts) > 2 or not all(c.isalpha() for c in "".join(parts)):
                return None
            return [*parts[0], *([_ELLIPSIS, *parts[1]] if len(parts) == 2 else [])]

        terms = [subs(t) for t in lhs.split(",")]
        out = subs(rhs) if arrow else None
    elif args and isinstance(args[0], torch.Tensor):
        pairs_ = list(args[:-1] if len(args) % 2 else args)  # operand, its sublist, ...; then the output's sublist, if given
        rhs_list = args[-1] if len(args) % 2 else None
        ops = pairs_[0::2]

        def sublist(t: Any) -> list[str] | None:
            return [_ELLIPSIS if d is Ellipsis else str(d) for d in t] if isinstance(t, list | tuple) else None

        terms = [sublist(t) for t in pairs_[1::2]]
        out = sublist(rhs_list)
        arrow = "->" if rhs_list is not None else ""
    else:
        return None
    if any(t is None for t in terms) or len(terms) != len(ops) or not all(isinstance(o, torch.Tensor) for o in ops):
        return None
    read = [t for t in terms if t is not None]
    if not arrow:  # implicit output: the subscripts that occur once, in order (the ellipsis first)
        flat = [s_ for t in read for s_ in t]
        once = sorted((s_ for s_ in set(flat) if s_ != _ELLIPSIS and flat.count(s_) == 1), key=lambda s_: (len(s_), s_))  # (10 after 9)
        out = [_ELLIPSIS, *once] if _ELLIPSIS in flat else once
    if out is None:
        return None
    return read, out, ops


def _einsum_reorder(args: Any, kwargs: dict[str, Any]) -> tuple[int, ...] | bool | None:
    """False where an einsum keeps the axes of every operand that reach its output in their order (a product, a
    contraction, a sum over an axis); a permutation where it is one operand's pure index permutation (``"bchw->bwhc"``:
    no axis summed, none repeated); None where it reorders otherwise (it cannot be read as a permute)."""
    if kwargs:
        return None
    read = _einsum_terms(args)
    if read is None:
        return None
    terms, out, ops = read
    keeps = True
    for t in terms:
        kept = [out.index(s_) for s_ in dict.fromkeys(t) if s_ in out]
        keeps = keeps and all(a < b for a, b in pairwise(kept))
    if keeps:
        return False
    if len(terms) != 1:
        return None
    t, x = terms[0], ops[0]
    if len(set(t)) != len(t) or sorted(t) != sorted(out):
        return None
    letters = sum(s_ != _ELLIPSIS for s_ in t)
    if x.dim() < letters:
        return None
    at, i = {}, 0
    for s_ in t:  # each subscript's axes (the ellipsis stands for the axes the letters leave)
        n = x.dim() - letters if s_ == _ELLIPSIS else 1
        at[s_], i = list(range(i, i + n)), i + n
    return tuple(a for s_ in out for a in at[s_])


def axes_permutation(kind: str, rank: int, dims: Any = None, dim0: Any = None, dim1: Any = None) -> tuple[int, ...] | None:
    """Where each output axis comes from, batch axis included (``x.transpose(1, 2)`` of a 4-D x: (0, 2, 1, 3)):
    one form for ``permute`` and ``transpose`` alike; None where the arguments are not axes of a rank-``rank`` tensor."""
    try:
        if kind == "permute":
            axes = [int(d) for d in dims]
            if len(axes) != rank or not all(-rank <= d < rank for d in axes):
                return None
            return tuple(d % rank for d in axes)
        a, b = int(dim0), int(dim1)
    except (TypeError, ValueError):
        return None
    if not (-rank <= a < rank and -rank <= b < rank):
        return None
    perm = list(range(rank))
    perm[a % rank], perm[b % rank] = perm[b % rank], perm[a % rank]
    return tuple(perm)


def _inplace_of(func: Any, args: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``{"inplace": ...}`` of an activation's function call: a function taking ``inplace``
    (``F.relu(x, inplace=True)``) as bound, one named with torch's trailing ``_`` (``x.relu_()``)
    True, another False; empty when the call cannot be read (then it is not compared)."""
    import inspect

    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # a builtin (torch.relu, Tensor.relu_): its name says
        params = None
    if params is not None and "inplace" in params:
        try:
            bound = inspect.signature(func).bind(*args, **kwargs)
        except TypeError:
            return {}
        bound.apply_defaults()
        return {"inplace": bool(bound.arguments["inplace"])}
    name = getattr(func, "__name__", "")
    return {"inplace": name.endswith("_") and not name.endswith("__")}


def _call_settings(kind: str, args: Any, kwargs: dict[str, Any], func: Any = None) -> dict[str, Any]:
    """The settings of a function's call (:func:`settings_of`): of ``scores.masked_fill(mask, value)``,
    whether the mask is causal (its values read, as import reads them) and the value; of a pooling
    function's (``F.avg_pool2d(x, 3, 2, 1, ceil_mode=True)``), its window, the arguments bound by the
    names import reads them with (ops.pool.POOL_FUNCTIONS)."""
    if kind == "causal_mask":
        from .ops.attention import mask_setting

        bound = {**dict(zip(("input", "mask", "value"), args, strict=False)), **kwargs}
        scores, value = bound.get("input"), bound.get("value")
        shape = tuple(scores.shape[1:]) if isinstance(scores, torch.Tensor) else ()
        return {"mask": mask_setting(bound.get("mask"), shape), "value": "-inf" if value == float("-inf") else repr(value)}
    if kind == "scaled_dot_product_attention":  # F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa)
        bound = {**dict(zip(("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa"), args, strict=False)),
                 **kwargs}
        p = bound.get("dropout_p", 0.0)  # read only where non-zero: a model that passes it in training only (nanoGPT:
        # `self.dropout if self.training else 0`) shows 0 to the eval forward, which says nothing of its training
        flags = {f: bool(bound.get(f, False)) for f in ("is_causal", "enable_gqa")}
        return {**flags, **({"dropout_p": float(p)} if isinstance(p, int | float) and p else {})}
    if kind == "upsample":  # F.interpolate(x, size, scale_factor, mode, align_corners, ...)
        from .ops.pool import INTERPOLATE_PARAMS

        bound = {**dict(zip(INTERPOLATE_PARAMS, args, strict=False)), **kwargs}
        return {"mode": str(bound.get("mode") or "nearest"), "align_corners": bool(bound.get("align_corners") or False)}
    x = args[0] if args else kwargs.get("input")
    per_sample = tuple(x.shape[1:]) if isinstance(x, torch.Tensor) else None
    if kind == "softmax":  # F.softmax(x, dim), torch.softmax(x, dim), x.softmax(dim)
        bound = {**dict(zip(("input", "dim"), args, strict=False)), **kwargs}
        dim = _dim(bound.get("dim"), per_sample)
        return {} if dim is None else {"dim": dim}
    if kind == "layernorm":  # F.layer_norm(x, normalized_shape, weight, bias, eps)
        bound = {**dict(zip(("input", "normalized_shape"), args, strict=False)), **kwargs}
        norm = _normalized_shape(bound.get("normalized_shape"), per_sample) if "normalized_shape" in bound else None
        return {} if norm is None else {"normalized_shape": norm}
    if kind.startswith("batchnorm"):  # F.batch_norm(x, running_mean, running_var, ...): running statistics or the batch's
        bound = {**dict(zip(("input", "running_mean"), args, strict=False)), **kwargs}
        return {"track_running_stats": bound.get("running_mean") is not None} if "running_mean" in bound else {}
    if kind == "groupnorm":  # F.group_norm(x, num_groups, weight, bias, eps)
        bound = {**dict(zip(("input", "num_groups"), args, strict=False)), **kwargs}
        return {"num_groups": bound["num_groups"]} if isinstance(bound.get("num_groups"), int) else {}
    if kind == "dropout":  # F.dropout(x, p=0.5, training, inplace), torch.dropout(x, p, train), x.dropout(p, train)
        bound = {**dict(zip(("input", "p"), args, strict=False)), **kwargs}
        p = bound.get("p", 0.5)
        return {**_inplace_of(func, args, kwargs), **({"p": float(p)} if isinstance(p, int | float) else {})}
    if kind in TYPE_NAMES and "inplace" in TYPE_NAMES[kind].model_fields:  # F.relu(x, inplace=True), x.relu_(), torch.relu_(x)
        return _inplace_of(func, args, kwargs)
    if not kind.startswith(("maxpool", "avgpool")):
        return {}
    from types import SimpleNamespace

    from .ops.pool import POOL_FUNCTIONS

    names = next((params for k, _, params in POOL_FUNCTIONS if k == kind), None)
    if names is None or len(args) > len(names):
        return {}
    bound = {**dict(zip(names, args, strict=False)), **kwargs}
    for k, default in (("padding", 0), ("dilation", 1), ("ceil_mode", False)):  # torch's defaults, where the function has the argument
        if k in names:
            bound.setdefault(k, default)
    if bound.get("stride") in (None, [], ()):
        bound.pop("stride", None)  # torch's default: the kernel size
    return window_of(SimpleNamespace(**{k: v for k, v in bound.items() if k in WINDOW_FIELDS}), kind)


def _global_mean(args: Any, kwargs: dict[str, Any]) -> str | None:
    """``x.mean((2, 3))`` over every spatial axis of an N x C x ... tensor: global average pooling, as
    ``archcalc import`` reads it (adaptiveavgpool + flatten); None for any other mean."""
    x = args[0] if args else None
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    if not isinstance(x, torch.Tensor) or dim is None or not 3 <= x.dim() <= 5:
        return None
    dims = {d % x.dim() for d in (dim if isinstance(dim, list | tuple) else [dim])}
    kind = f"adaptiveavgpool{x.dim() - 2}d"
    return kind if dims == set(range(2, x.dim())) and kind in TYPE_NAMES else None


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every module that is one layer to archcalc (each shared module once).

    The rule is import's (:func:`archcalc.torch.leaves.classify`): a known torch.nn/archcalc layer,
    or a composite archcalc handles by name, is a leaf and is not looked into; any other module is
    looked into, and a module without children that is not a known layer (a user activation) is
    a leaf too (its calls are matched by position).  A subclass of a torch layer with its own
    ``forward`` (timm's ``BatchNormAct2d``) is looked into, as import traces into it.
    """
    from .leaves import classify

    out: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()

    def walk(prefix: str, m: nn.Module) -> None:
        if id(m) in seen:
            return
        seen.add(id(m))
        children = list(m.named_children())
        if classify(m) is not None or (not children and prefix):  # see measure_module for the childless ones
            out.append((prefix, m))
            return
        for n, c in children:
            walk(f"{prefix}.{n}" if prefix else n, c)

    walk("", model)
    return out


def _per_sample(out: Any) -> tuple[int, ...] | None:
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        out = out[0]
    if isinstance(out, torch.Tensor):
        return tuple(int(d) for d in out.shape[1:])
    return None


def _whole(out: Any) -> tuple[int, ...] | None:
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        out = out[0]
    return tuple(int(d) for d in out.shape) if isinstance(out, torch.Tensor) else None


def _param_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for t in (*model.parameters(), *model.buffers()):
        return t.device, (t.dtype if t.is_floating_point() else torch.float32)
    return torch.device("cpu"), torch.float32


def measure_module(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    batch: int = 1,
    targets: Iterable[tuple[str, nn.Module]] | None = None,
    device: str | torch.device | None = None,
    functional: bool = False,
    input_dtype: torch.dtype | None = None,
    output_key: str | None = None,
) -> Measurement:
    """Run ``model`` once on zeros of shape ``(batch, *input_shape)`` and measure every call of ``targets``.

    ``targets``: (name, module) pairs to hook; default :func:`leaf_modules`.  ``device``: where
    the input lives; default the device of the model's first parameter (CPU if it has none).
    ``functional``: also record, in order among the module calls, the activations and pools the
    model runs as functions outside any hooked module (:func:`functional_kinds`), named after the
    function (``relu``, ``relu_1``...).  ``input_dtype``: the input's dtype (``torch.long`` for
    token ids); default the model's ``input_dtype`` attribute (a built spec's), else its weights'.
    ``output_key``: for a model that returns a dict, the key of the output measured (default: its
    only tensor; see :func:`archcalc.torch.outputs.dict_output_key`).
    Raises :class:`TorchRunError` naming the module that was running when torch raised.
    """
    pdev, dtype = _param_device_dtype(model)
    dev = torch.device(device) if device is not None else pdev
    targets = list(leaf_modules(model) if targets is None else targets)
    fqn = {id(m): n for n, m in model.named_modules()}
    root = type(model).__name__

    calls: list[LayerMeasure] = []
    seen: dict[int, int] = {}
    counted: set[int] = set()  # ids of parameters already counted
    running: list[tuple[str, int]] = []
    counter: list[FlopCounterMode] = []

    from .leaves import classify

    # A hooked module import would trace into (no children, not a known layer: a user's activation,
    # torchvision's LayerNorm2d) is transparent: the functions it calls that import reads as layers
    # are recorded; if it called none, it is one call matched by position (a custom leaf).
    transparent = {id(m) for _, m in targets if classify(m) is None}
    starts: list[tuple[int, int]] = []
    flow = _Flow() if functional else None
    permutes: list[Reorder] | None = None

    def pre_hook(name: str) -> Any:
        def hook(module: nn.Module, args: Any) -> None:
            if id(module) in transparent:
                starts.append((len(calls), counter[0].get_total_flops()))
                return
            running.append((name, counter[0].get_total_flops()))

        return hook

    def post_hook(name: str) -> Any:
        def hook(module: nn.Module, args: Any, kwargs: Any, out: Any) -> None:
            # where its input came from: a known layer reads its arguments; a module traced into (its
            # operations followed) computed its output from whatever that came from (a helper making
            # rotary's cos and sin from positions reads its argument's dtype, not its values)
            came = None if flow is None else flow.of(out) if id(module) in transparent else flow.of(args, kwargs)
            if id(module) in transparent:
                start, flops_before = starts.pop()
                if len(calls) > start:
                    seen[id(module)] = seen.get(id(module), 0) + 1  # it ran (its parameters are on the eval path)
                    return  # its functions were recorded
                running.append((name, flops_before))  # nothing recorded: one call, matched by position
            _, before = running.pop()
            n = seen.get(id(module), 0) + 1
            seen[id(module)] = n
            # each tensor counted once, by the first module that runs with it (a tied head shares the embedding's)
            params = 0
            if n == 1:
                fresh = [p for p in module.parameters() if id(p) not in counted]
                counted.update(id(p) for p in fresh)
                params = sum(p.numel() for p in fresh)
            flops = counter[0].get_total_flops() - before
            kind = module_kind(module)
            label = name if n == 1 else f"{name} (call {n})"
            x = args[0] if args else None
            settings = settings_of(module, kind, tuple(x.shape[1:]) if isinstance(x, torch.Tensor) else None)
            alias = flow is not None and not settings.get("inplace") and _Flow.aliases(out, args, kwargs)
            calls.append(LayerMeasure(name, kind, type(module).__name__, n, _per_sample(out), params, flops, _whole(out), settings, came, alias))
            if flow is not None and not alias:
                flow.set(out, frozenset({label}))

        return hook

    handles = []
    for name, mod in targets:
        handles.append(mod.register_forward_pre_hook(pre_hook(name)))
        handles.append(mod.register_forward_hook(post_hook(name), with_kwargs=True))
    modes = [(m, m.training) for m in model.modules()]  # restored one by one (a frozen BN stays frozen)
    model.eval()
    try:
        x = torch.zeros((batch, *input_shape), device=dev, dtype=input_dtype or getattr(model, "input_dtype", None) or dtype)  # token ids: long
        with torch.no_grad(), counting_path(), FlopCounterMode(display=False) as fc:
            counter.append(fc)
            try:
                with user_code():  # a user's forward: no os._exit, no print into the report
                    if functional:
                        assert flow is not None
                        flow.set(x, frozenset({FROM_INPUT}))
                        with _FunctionalCalls(calls, running, counter, counted, flow) as recording:
                            out = model(x)
                        permutes = recording.permutes
                    else:
                        out = model(x)
            except Exception as e:
                raise TorchRunError(running[-1][0] if running else None, e) from e
            except SystemExit as e:  # sys.exit in a forward: nothing measured, and no exit 0 from archcalc
                where = f" in layer {running[-1][0]!r}" if running else ""
                raise UserExit(f"exited while running{where}: {user_failure(e)}") from None
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode
    from .outputs import model_output

    out = model_output(out, output_key, lambda x: isinstance(x, torch.Tensor))
    counts = fc.get_flop_counts()
    by_module = {}
    for name, mod in targets:
        key = root if fqn.get(id(mod), "") == "" else f"{root}.{fqn[id(mod)]}"
        by_module[name] = int(sum(counts.get(key, {}).values()))
    unique = {id(p): p.numel() for p in model.parameters()}
    ran = {id(p) for _, mod in targets if id(mod) in seen for p in mod.parameters()}
    not_run: dict[str, int] = {}
    for name, mod in targets:
        if id(mod) not in seen:
            own = {id(p): p.numel() for p in mod.parameters() if id(p) not in ran}
            ran |= set(own)  # a tensor shared by two modules that never ran counts once
            if own:
                not_run[name] = sum(own.values())
    return Measurement(
        calls=calls,
        output_shape=_per_sample(out),
        total_params=int(sum(unique.values())),
        total_flops=int(fc.get_total_flops()),
        by_module=by_module,
        device=str(dev),
        batch=batch,
        not_run=not_run,
        output_sources=flow.of(out) if flow is not None else None,
        permutes=tuple(permutes) if permutes is not None else None,
    )


def failure_cause(model: nn.Module, input_shape: Sequence[int], *, batch: int = 1, device: str | torch.device | None = None,
                  input_dtype: torch.dtype | None = None) -> str | None:
    """Why :func:`measure_module` raised on a model, when the model itself is not at fault: None when
    the model fails on its own too (eval, no_grad, the counting path: a real error of the model, or
    of the spec it was built from), else the measuring that fails: torch's FlopCounterMode (its
    ModuleTracker raises on some models that run: nn.MultiheadAttention with kdim/vdim fed learned
    tensors) or, if not that, archcalc's hooks."""
    pdev, dtype = _param_device_dtype(model)
    dev = torch.device(device) if device is not None else pdev
    x = torch.zeros((batch, *input_shape), device=dev, dtype=input_dtype or getattr(model, "input_dtype", None) or dtype)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        for counted in (False, True):
            try:
                with user_code(), torch.no_grad(), counting_path():
                    if counted:
                        with FlopCounterMode(display=False):
                            model(x)
                    else:
                        model(x)
            except Exception as e:
                if not counted:
                    return None
                return f"torch's FlopCounterMode fails on this model ({type(e).__name__}: {e}); the model runs without it"
            except SystemExit:
                return None
        return "measuring it with archcalc's hooks fails, though the model runs under torch's FlopCounterMode"
    finally:
        for m, mode in modes:
            m.training = mode


@dataclass(frozen=True)
class SpecMeasurement:
    """The module built from a spec, measured: one call per spec layer."""

    layers: dict[str, LayerMeasure]
    """Spec layer name -> its measurement (training-only layers included: measured in eval mode)."""
    output_shape: tuple[int, ...] | None
    total_params: int
    """Every parameter of the built module, training-only heads included."""
    total_flops: int
    """One eval forward of the built module: training-only layers do not run."""
    by_module: dict[str, int]
    device: str

    @property
    def total_macs(self) -> int:
        return self.total_flops // 2


def measure_spec(G: nx.DiGraph[str], *, batch: int = 1, device: str | torch.device = "meta") -> SpecMeasurement:
    """Build ``G`` (:func:`~archcalc.torch.build.build_module`) and measure every layer.

    Tries ``device`` (default ``meta``: no memory, VGG-sized models cost nothing) and, if torch
    fails there, a real CPU tensor.  Raises :class:`TorchRunError` if torch fails on CPU too.
    """
    try:
        return _measure_spec_on(G, batch, device)
    except Exception:
        if torch.device(device).type == "cpu":
            raise
    return _measure_spec_on(G, batch, "cpu")


def _measure_spec_on(G: nx.DiGraph[str], batch: int, device: str | torch.device) -> SpecMeasurement:
    from .build import build_module

    model = build_module(G, device=device)
    model.run_training_only = True  # measure auxiliary heads too (still in eval mode)
    m = measure_module(model, model.input_shape, batch=batch, targets=list(model.named_layers()), device=device)
    layers = {c.name: c for c in m.calls}
    total_flops = m.total_flops
    if model.training_only:
        model.run_training_only = False
        total_flops = measure_module(model, model.input_shape, batch=batch, targets=[], device=device).total_flops
    return SpecMeasurement(layers, m.output_shape, m.total_params, total_flops, m.by_module, m.device)


__all__ = [
    "COUNTING_PATH", "FROM_INPUT", "LayerMeasure", "Measurement", "SpecMeasurement", "TorchRunError", "counting_path", "failure_cause",
    "leaf_modules", "measure_module",
    "measure_spec", "module_kind",
]
