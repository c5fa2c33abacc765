"""Import a torch model as a spec: ``archcalc import pkg.mod:factory --input C,H,W -o spec.json``.

The model is traced with ``torch.fx`` (a symbolic trace: nothing runs, no memory is used) in
eval mode, so what is imported is the inference graph: training-only branches (auxiliary heads)
that ``forward`` skips in eval mode are not seen.  Each fx node that computes becomes a spec layer:

* ``call_module`` of a module whose class (or a torch.nn / archcalc base class of it) is an
  archcalc layer type (torch's class name lowercased: ``nn.Conv2d`` is ``conv2d``;
  :data:`archcalc.layers.TYPE_NAMES`): the layer's fields are read from the module's attributes
  of the same names, since the spec fields are torch.nn's argument names (``bias`` is whether the
  module has one).  archcalc's own modules (:mod:`archcalc.torch.modules`,
  :mod:`archcalc.torch.extra_modules`: ``Add``, ``Concat``, ``Subsample``, ``ChannelPad``, ``Mul``,
  ``Chunk``, ``Crop``) are leaves of the trace and map back to their types, so a module built from
  a spec (:func:`archcalc.torch.build.build_module`) imports as that spec.
* ``call_function`` / ``call_method`` of the functions user code writes inline: ``a + b``,
  ``torch.add``, ``Tensor.add``/``add_`` -> ``add``; ``a * b`` -> ``mul``; ``torch.cat`` -> ``concat``;
  ``torch.flatten``, ``x.flatten(1)``, ``x.view(x.size(0), -1)`` and other reshapes that merge
  adjacent axes -> ``flatten``; ``F.relu`` and friends -> the activation; ``F.max_pool2d``,
  ``F.avg_pool2d``, ``F.adaptive_avg_pool2d`` (and their 1d/3d forms) -> the pool;
  ``F.dropout``, ``F.softmax``, ``x.chunk(n, dim)[i]``, ``F.channel_shuffle``, ``F.pad`` with zeros
  (spatial: ``zeropad``; channels only: option-A ``channelpad``), ``F.interpolate``, and slicing
  ``x[:, :, ::2, ::2]`` (``subsample``) or a center crop with constant bounds (``crop``).
  ``x.mean([2, 3])`` is global average pooling (``adaptiveavgpool2d`` + ``flatten`` unless
  ``keepdim``); torchvision's ``channel_shuffle`` (view into groups, transpose, view back) is one
  ``channelshuffle``.  ``x.size()``, ``x.shape``, ``x.contiguous()`` and a reshape to the same
  shape make no layer.  fx records ``x += y`` as ``x + y``, so an in-place add imports as a plain
  ``add``; module flags (``nn.ReLU(inplace=True)``) are kept.  A computed but unused tensor still
  becomes a layer (torch computes it); when the output is not the last layer, an ``identity``
  named ``output`` ends the spec.

Names: a module call is named after its qualified name (``layer1.0.conv1``; the layers of a
built spec module after their spec names); a module called again (torchvision's shared ``relu``)
gets one layer per call, the later ones named after fx's node (``relu_1``); other nodes take fx's
node name (``add``, ``cat``, ``flatten``).  ``inputs`` is written only when a layer's input is not
the layer before it.  Shapes are archcalc's own (the formulas of the produced layers), so a
module whose ``in_channels``/``in_features``/``num_features`` disagree with its input is an error,
as torch would fail there.

Anything else is a :class:`~archcalc.errors.SpecError` naming the node, its op and its target;
a model fx cannot trace is a one-line SpecError too.  Nothing is written unless the whole model
imported.
"""

from __future__ import annotations

import argparse
import inspect
import json
import operator
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..dims import Dim, DimError, as_int, check_expr, known_sign, parse_dim, prod
from ..errors import SpecError
from ..layers import TYPE_NAMES
from ..layers.base import Layer, shape_str
from ..output import write_output

if TYPE_CHECKING:
    from torch import fx, nn

INPUT = "input"
_ALIASES = {
    "scaleddotproductattention": "scaled_dot_product_attention",  # archcalc's module for the sdpa layer
    "dropout1d": "dropout", "dropout2d": "dropout", "dropout3d": "dropout", "alphadropout": "dropout", "featurealphadropout": "dropout"}
"""torch.nn classes that are another archcalc type (no extra fields, or fields the type has)."""
_COMMON_FIELDS = frozenset({"name", "type", "inputs", "when", "unless", "training_only"})
_OWN_PREFIXES = ("torch.nn", "torch.ao.nn", "archcalc.")


# ----- values flowing along the fx graph ------------------------------------------------------------
class _Batch:
    """The batch size (``x.size(0)``): known to exist, never a number here."""

    def __repr__(self) -> str:
        return "N"


BATCH = _Batch()


@dataclass(frozen=True)
class _Tensor:
    """A tensor: the output of spec layer ``name`` (``"input"`` for the network input)."""

    name: str


@dataclass(frozen=True)
class _Pieces:
    """The tuple ``torch.chunk`` returns; indexing it makes a ``chunk`` layer."""

    src: str
    chunks: int
    dim: int


@dataclass(frozen=True)
class _Grouped:
    """``x.view(N, g, C // g, ...)`` of tensor ``src`` (the first step of a channel shuffle), maybe transposed."""

    src: str
    groups: int
    transposed: bool = False


@dataclass(frozen=True)
class _Unusable:
    """A value archcalc cannot follow (an extra forward argument)."""

    why: str


def _same(a: Any, b: Any) -> bool:
    if a is BATCH or b is BATCH:
        return a is b
    try:
        return known_sign(a - b) == 0
    except TypeError:
        return False


# ----- module classes -------------------------------------------------------------------------------
def module_type(module: nn.Module) -> str | None:
    """The archcalc layer type of a torch.nn or archcalc module class (or a user subclass of one).

    Unlike :func:`archcalc.torch.measure.module_kind`, a user class is never taken for a layer by
    its name alone (a user ``Add`` module is traced through, not trusted).
    """
    from torch import nn

    for cls in type(module).__mro__:
        if cls is nn.Module:
            break
        if cls.__module__.startswith(_OWN_PREFIXES):
            kind = _ALIASES.get(cls.__name__.lower(), cls.__name__.lower())
            if kind in TYPE_NAMES:
                return kind
    return None


def _tracer() -> fx.Tracer:
    from torch import fx

    class Tracer(fx.Tracer):
        """fx's tracer, with archcalc's modules and subclasses of known torch.nn layers as leaves."""

        def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
            return module_type(m) is not None or bool(super().is_leaf_module(m, module_qualified_name))

    return Tracer()


def _concrete_args(module: nn.Module) -> dict[str, Any]:
    """Bind every forward argument after the first to its default (flags like ``return_aux=False``)."""
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return {}
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if not positional:
        return {}
    extra = positional[1:]
    missing = [p.name for p in extra if p.default is inspect.Parameter.empty]
    if missing:
        raise SpecError(
            f"{type(module).__name__}.forward takes more than one input ({', '.join([positional[0].name, *missing])}); "
            "archcalc imports models with a single input tensor",
            field="factory",
        )
    return {p.name: p.default for p in extra}


def trace(module: nn.Module) -> fx.Graph:
    """Symbolically trace ``module`` in eval mode (its train/eval flags are restored afterwards)."""
    from torch import fx

    flags = {m: m.training for m in module.modules()}
    module.eval()
    try:
        return _tracer().trace(module, concrete_args=_concrete_args(module) or None)
    except SpecError:
        raise
    except fx.proxy.TraceError as e:
        raise SpecError(f"torch.fx cannot trace {type(module).__name__}: {_first_line(e)}", field="factory") from None
    except Exception as e:  # user code runs during the trace and can fail in any way
        raise SpecError(f"torch.fx cannot trace {type(module).__name__}: {type(e).__name__}: {_first_line(e)}", field="factory") from None
    finally:
        for m, flag in flags.items():
            m.training = flag


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# ----- the importer ---------------------------------------------------------------------------------
def _target_str(node: fx.Node, root: nn.Module) -> str:
    t = node.target
    if node.op == "call_module":
        try:
            cls = type(root.get_submodule(str(t))).__name__
        except AttributeError:
            return str(t)
        return f"{t}: {cls}"
    if node.op == "call_method":
        return f"Tensor.{t}"
    if node.op == "call_function":
        if getattr(t, "__module__", None) in ("_operator", "operator"):
            return str(t)
        from torch.fx.node import _get_qualified_name

        try:
            return str(_get_qualified_name(t))  # type: ignore[arg-type]
        except Exception:  # a callable without a qualified name
            return str(t)
    return str(t)


def _int_value(v: Any, what: str) -> Any:
    """A dim field value from torch: ints stay, integral floats become ints, strings stay."""
    if isinstance(v, bool):
        raise SpecError(f"{what}: expected a size, got {v!r}")
    if isinstance(v, int) or v is None or isinstance(v, str):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if as_int(v) is not None:  # sympy integers
        return as_int(v)
    raise SpecError(f"{what}: {v!r} is not an integer (archcalc sizes and factors are integers)")


_SHAPE_FIELDS = frozenset({"shape", "unflattened_size", "normalized_shape"})
"""Fields that hold a shape, not one value per axis: (1024, 1024) stays two sizes."""


def _dim_value(v: Any, what: str) -> Any:
    """Normalise a per-axis value: a tuple becomes a list, or one int when all axes agree (not a shape)."""
    if isinstance(v, list | tuple):
        vals = [_int_value(x, what) for x in v]
        if not vals:
            return None
        if what not in _SHAPE_FIELDS and all(x is not None for x in vals) and all(x == vals[0] for x in vals):
            return vals[0]
        return vals
    return _int_value(v, what)


def _annotation_has(annotation: Any, t: type) -> bool:
    import typing

    if annotation is t:
        return True
    return any(_annotation_has(a, t) for a in typing.get_args(annotation))


def _field_value(cls: type[Layer], fname: str, raw: Any) -> Any:
    """A module attribute (or functional argument) as the value of spec field ``fname``."""
    import torch

    info = cls.model_fields[fname]
    ann = info.annotation
    if isinstance(raw, torch.Tensor):  # a module's bias: the field says whether there is one
        return True
    if raw is None and ann is bool:
        return False
    if fname in cls._dim_fields:
        return _dim_value(raw, fname)
    if isinstance(raw, int) and not isinstance(raw, bool) and _annotation_has(ann, float) and not _annotation_has(ann, int):
        return float(raw)
    if isinstance(raw, tuple):
        return list(raw)
    return raw


def _is_default(cls: type[Layer], fname: str, value: Any) -> bool:
    info = cls.model_fields[fname]
    if info.is_required():
        return False
    d = info.get_default(call_default_factory=True)
    return type(d) is type(value) and bool(d == value)


class _Importer:
    def __init__(self, root: nn.Module, input_shape: tuple[Dim, ...], preferred: Mapping[str, str]) -> None:
        self.root = root
        self.preferred = dict(preferred)
        self.called_with_weights: set[str] = set()  # modules with parameters already called once
        self.weight_owners: dict[int, str] = {}  # id of a module weight -> the spec layer that owns it (tied weights)
        self.notes: list[str] = []  # what the spec cannot say, for its description
        self.layers: list[dict[str, Any]] = []
        self.shapes: dict[str, tuple[Dim, ...]] = {INPUT: input_shape}
        self.values: dict[fx.Node, Any] = {}
        self.taken: set[str] = {INPUT}
        self.prev = INPUT
        self.input_seen = False
        self.functions, self.methods = _handlers()

    # ----- errors ----------------------------------------------------------------------------
    def where(self, node: fx.Node) -> str:
        return f"node {node.name!r} ({node.op} {_target_str(node, self.root)})"

    def unsupported(self, node: fx.Node, why: str = "") -> SpecError:
        return SpecError(f"{self.where(node)} has no archcalc layer type" + (f": {why}" if why else ""))

    def fail(self, node: fx.Node, message: str) -> SpecError:
        return SpecError(f"{self.where(node)}: {message}")

    # ----- values ----------------------------------------------------------------------------
    def value(self, arg: Any) -> Any:
        """The value of an fx argument: nodes replaced by what they computed, containers recursed."""
        from torch import fx

        if isinstance(arg, fx.Node):
            return self.values[arg]
        if isinstance(arg, list | tuple):
            return type(arg)(self.value(a) for a in arg)
        if isinstance(arg, slice):
            return slice(self.value(arg.start), self.value(arg.stop), self.value(arg.step))
        return arg

    def tensor(self, node: fx.Node, arg: Any) -> str:
        """The spec name of the tensor ``arg`` (an fx argument), or an error naming ``node``."""
        v = self.value(arg)
        if isinstance(v, _Tensor):
            return v.name
        if isinstance(v, _Unusable):
            raise self.fail(node, v.why)
        raise self.unsupported(node, f"expected a tensor argument, got {_describe(v)}")

    def shape(self, name: str) -> tuple[Dim, ...]:
        return self.shapes[name]

    # ----- emitting layers -------------------------------------------------------------------
    def fresh(self, *candidates: str) -> str:
        for c in candidates:
            if c and c not in self.taken:
                self.taken.add(c)
                return c
        base, n = candidates[-1] or "layer", 2
        while f"{base}_{n}" in self.taken:
            n += 1
        self.taken.add(f"{base}_{n}")
        return f"{base}_{n}"

    def emit(self, node: fx.Node, kind: str, fields: Mapping[str, Any], inputs: Sequence[str], name: str | None = None) -> str:
        """Add a layer; validate it and compute its output shape with archcalc's formulas."""
        from pydantic import ValidationError

        cls = TYPE_NAMES[kind]
        lname = name or self.fresh(node.name)
        data: dict[str, Any] = {"name": lname, "type": kind}
        clean = {k: v for k, v in fields.items() if not _is_default(cls, k, v)}
        if len(inputs) != 1 or inputs[0] != self.prev:
            data["inputs"] = list(inputs)
        data.update(clean)
        try:
            layer = cls.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise self.fail(node, f"field {loc!r}: {err['msg']} (value {data.get(str(err['loc'][0]), '?')!r})") from None
        lo, hi = cls.n_inputs
        if len(inputs) < lo or (hi is not None and len(inputs) > hi):
            raise self.fail(node, f"{kind} takes {lo if lo == hi else f'at least {lo}'} input(s), got {len(inputs)}")
        try:
            out = tuple(layer.output_shape([self.shapes[i] for i in inputs]))
        except SpecError as e:
            raise self.fail(node, f"{kind} layer {lname!r}: {e.message}" + (f" (field {e.field!r})" if e.field else "")) from None
        self.layers.append(data)
        self.shapes[lname] = out
        self.prev = lname
        self.values[node] = _Tensor(lname)
        return lname

    # ----- the walk --------------------------------------------------------------------------
    def run(self, graph: fx.Graph) -> str:
        """Turn every node into layers; return the name of the output layer."""
        output: str | None = None
        for node in graph.nodes:
            if node.op == "placeholder":
                if not self.input_seen:
                    self.values[node] = _Tensor(INPUT)
                    self.input_seen = True
                elif node.args:  # an argument bound to its default (concrete_args): a constant
                    self.values[node] = node.args[0]
                else:
                    self.values[node] = _Unusable(f"forward argument {node.name!r} is not the model input; archcalc imports models with one input")
            elif node.op == "get_attr":
                self.values[node] = _Unusable(
                    f"reads the attribute {node.target!r} directly (a functional layer with its own weights, "
                    "e.g. F.conv2d(x, self.weight)); write it as a module to import it"
                )
            elif node.op == "call_module":
                self.call_module(node)
            elif node.op in ("call_function", "call_method"):
                self.call(node)
            elif node.op == "output":
                output = self.output(node)
        if output is None:
            raise SpecError("the traced graph has no output")
        return output

    def output(self, node: fx.Node) -> str:
        (res,) = node.args
        v = self.value(res)
        if not isinstance(v, _Tensor):
            what = f"{len(v)} values" if isinstance(v, list | tuple) else _describe(v)
            raise SpecError(f"the model returns {what}; archcalc specs have one output tensor (node {node.name!r})")
        if v.name != self.prev or not self.layers:  # the spec's output is its last layer
            self.emit(node, "identity", {}, [v.name], self.fresh("output"))
        return v.name

    def call_module(self, node: fx.Node) -> None:
        target = str(node.target)
        module = self.root.get_submodule(target)
        kind = module_type(module)
        if kind is None:
            raise self.unsupported(node)
        if target in self.called_with_weights:  # shared weights: each spec layer owns its weights
            raise self.fail(
                node, f"calls {target!r} a second time: its weights are shared between the calls, and each spec layer "
                "has its own, so its parameters would be counted twice (archcalc specs have no weight sharing)"
            )
        if any(True for _ in module.parameters(recurse=False)):
            self.called_with_weights.add(target)
        weight = getattr(module, "weight", None)
        owner = self.weight_owners.get(id(weight)) if weight is not None else None  # a tied weight (GPT-2's head and wte)
        if node.kwargs:
            raise self.unsupported(node, f"called with keyword arguments {sorted(node.kwargs)}")
        inputs = [self.tensor(node, a) for a in node.args]
        cls = TYPE_NAMES[kind]
        fields: dict[str, Any] = {}
        for fname in cls.model_fields:
            if fname in _COMMON_FIELDS or not hasattr(module, fname):
                continue
            try:
                fields[fname] = _field_value(cls, fname, getattr(module, fname))
            except SpecError as e:
                raise self.fail(node, e.message) from None
        ins = [self.shapes[i] for i in inputs]
        self._module_specials(node, module, kind, fields, ins)
        if owner is not None:
            if "tie_weight" not in cls.model_fields:
                raise self.fail(node, f"uses the weight of {owner!r} (tied), which a {kind} layer cannot say: it would be counted twice")
            fields["tie_weight"] = owner
        preferred = self.preferred.get(target, target)
        name = self.fresh(preferred, node.name)
        if weight is not None and owner is None:
            self.weight_owners[id(weight)] = name
        self.emit(node, kind, fields, inputs, name)

    def _module_specials(self, node: fx.Node, module: nn.Module, kind: str, fields: dict[str, Any], ins: list[tuple[Dim, ...]]) -> None:
        """Fields a module does not hold under the spec's name, and consistency with the input."""
        if getattr(module, "return_indices", False):
            raise self.unsupported(node, "return_indices=True returns a tuple")
        mode = getattr(module, "padding_mode", "zeros")
        if mode != "zeros" and isinstance(mode, str):  # reflect/replicate/circular: same shapes and counts, other values
            self.notes.append(f"{node.target} pads with padding_mode={mode!r} (the spec's padding is the same size; costs are equal)")
        if kind == "softmax" and fields.get("dim") is None:
            fields["dim"] = _implicit_softmax_dim(ins[0])
        if kind == "channelpad":
            before, after = int(getattr(module, "before", 0)), int(getattr(module, "after", 0))
            if before != (before + after) // 2:
                raise self.unsupported(node, f"channel padding {before} before and {after} after; channelpad puts (extra)//2 zeros before")
            fields["out_channels"] = _spec_dim(ins[0][0] + before + after)
        if ins:
            for attr, axis in (("in_channels", 0), ("num_features", 0), ("in_features", -1)):
                want = getattr(module, attr, None)
                if isinstance(want, int) and len(ins[0]) and not isinstance(want, bool):
                    have = as_int(ins[0][axis])
                    if have is not None and have != want:
                        raise self.fail(
                            node,
                            f"the module has {attr}={want} but its input {shape_str(ins[0])} has {have} "
                            f"{'feature' if axis else 'channel'}(s) (wrong --input?)",
                        )

    def call(self, node: fx.Node) -> None:
        handler = self.methods.get(str(node.target)) if node.op == "call_method" else self.functions.get(node.target)
        if handler is None:
            raise self.unsupported(node)
        handler(self, node)

    # ----- helpers for the handlers ----------------------------------------------------------
    def bind(self, node: fx.Node, names: Sequence[str]) -> dict[str, Any]:
        """The node's arguments by parameter name (``names[0]`` is the tensor / ``self``)."""
        if len(node.args) > len(names):
            raise self.unsupported(node, f"called with {len(node.args)} positional arguments")
        out = dict(zip(names, node.args, strict=False))
        for k, v in node.kwargs.items():
            if k not in names:
                raise self.unsupported(node, f"argument {k!r} is not supported")
            out[k] = v
        return out

    def fields_of(self, node: fx.Node, kind: str, given: Mapping[str, Any]) -> dict[str, Any]:
        cls = TYPE_NAMES[kind]
        out: dict[str, Any] = {}
        for k, raw in given.items():
            if k not in cls.model_fields:
                continue
            v = self.value(raw)
            if _contains(v, lambda x: isinstance(x, _Tensor | _Batch | _Pieces | _Unusable)):
                raise self.unsupported(node, f"argument {k!r} depends on tensor values or the batch size")
            if v is None and k in ("stride",):
                continue
            if k == "stride" and isinstance(v, list | tuple) and not v:
                continue  # torch's stride=[] means "the kernel size"
            try:
                out[k] = _field_value(cls, k, v)
            except SpecError as e:
                raise self.fail(node, e.message) from None
        return out


def _contains(v: Any, pred: Callable[[Any], bool]) -> bool:
    if pred(v):
        return True
    if isinstance(v, list | tuple):
        return any(_contains(x, pred) for x in v)
    return False


def _describe(v: Any) -> str:
    if isinstance(v, _Pieces):
        return "the tuple of torch.chunk (index it)"
    if isinstance(v, _Grouped):
        return f"a view of {v.src!r} with its channels split into {v.groups} groups"
    if v is BATCH:
        return "the batch size"
    if isinstance(v, list | tuple):
        return f"a {type(v).__name__} of {len(v)}"
    return f"the constant {v!r}"


def _spec_dim(v: Dim) -> Any:
    """A computed size as a spec value: an int, or an expression string the spec parser reads."""
    i = as_int(v)
    if i is not None:
        return i
    text = str(v)
    check_expr(text)
    return text


def _implicit_softmax_dim(shape: tuple[Dim, ...]) -> int:
    """torch's ``_get_softmax_dim`` for ``dim=None`` (the rank counts the batch axis)."""
    return 0 if len(shape) + 1 in (0, 1, 3) else 1


# ----- function and method handlers -------------------------------------------------------------------
_Handler = Callable[[_Importer, "fx.Node"], None]


def _activation(kind: str, names: Sequence[str], inplace: bool = False) -> _Handler:
    def handle(imp: _Importer, node: fx.Node) -> None:
        a = imp.bind(node, names)
        fields = imp.fields_of(node, kind, {k: v for k, v in a.items() if k != "input"})
        if inplace and "inplace" in TYPE_NAMES[kind].model_fields:
            fields["inplace"] = True
        if kind == "softmax":
            dim = imp.value(a.get("dim"))
            fields["dim"] = _implicit_softmax_dim(imp.shape(imp.tensor(node, a["input"]))) if dim is None else dim
        imp.emit(node, kind, fields, [imp.tensor(node, a["input"])])

    return handle


def _pool(kind: str, names: Sequence[str]) -> _Handler:
    def handle(imp: _Importer, node: fx.Node) -> None:
        a = imp.bind(node, names)
        if imp.value(a.get("return_indices", False)):
            raise imp.unsupported(node, "return_indices=True returns a tuple")
        src = imp.tensor(node, a["input"])
        imp.emit(node, kind, imp.fields_of(node, kind, {k: v for k, v in a.items() if k != "input"}), [src])

    return handle


def _merge(kind: str, inplace: bool = False) -> _Handler:
    """``a + b`` / ``a * b`` (both tensors); on sizes (``x.size(1) * 2``) the arithmetic itself."""
    fn = operator.mul if kind == "mul" else operator.add

    def handle(imp: _Importer, node: fx.Node) -> None:
        operands = [*node.args, *([node.kwargs["other"]] if "other" in node.kwargs else [])]
        if len(operands) != 2 or set(node.kwargs) - {"alpha", "other"}:
            raise imp.unsupported(node, "expected two operands")
        a, b = operands
        va, vb = imp.value(a), imp.value(b)
        if not isinstance(va, _Tensor) and not isinstance(vb, _Tensor):
            if isinstance(va, int | float) and isinstance(vb, int | float):
                imp.values[node] = fn(va, vb)
                return
            raise imp.unsupported(node, f"arithmetic on {_describe(va)} and {_describe(vb)}")
        if not (isinstance(va, _Tensor) and isinstance(vb, _Tensor)):
            other = vb if isinstance(va, _Tensor) else va
            raise imp.unsupported(node, f"{'adds' if kind == 'add' else 'multiplies by'} {_describe(other)}, not a tensor")
        if imp.value(node.kwargs.get("alpha", 1)) != 1:
            raise imp.unsupported(node, "alpha != 1 scales the second operand")
        if kind not in TYPE_NAMES:
            raise imp.unsupported(node)
        fields = {"inplace": True} if inplace and "inplace" in TYPE_NAMES[kind].model_fields else {}
        imp.emit(node, kind, fields, [va.name, vb.name])

    return handle


def _meta_arith(fn: Callable[[Any, Any], Any]) -> _Handler:
    def handle(imp: _Importer, node: fx.Node) -> None:
        vals = [imp.value(a) for a in node.args]
        if len(vals) == 2 and not _contains(vals, lambda x: isinstance(x, _Tensor | _Batch | _Pieces | _Grouped | _Unusable)):
            try:
                imp.values[node] = fn(*vals)
            except (TypeError, ValueError, ArithmeticError) as e:
                raise imp.fail(node, f"{type(e).__name__}: {e}") from None
            return
        raise imp.unsupported(node, "arithmetic on tensors or the batch size")

    return handle


def _guard(imp: _Importer, node: fx.Node) -> None:
    """fx's checks that a forward flag kept its default (``torch._assert``): nothing to import."""
    if _contains(imp.value(list(node.args)), lambda x: isinstance(x, _Tensor)):
        raise imp.unsupported(node, "an assertion on tensor values")
    imp.values[node] = None


def _cat(imp: _Importer, node: fx.Node) -> None:
    a = imp.bind(node, ["tensors", "dim"] if "axis" not in node.kwargs else ["tensors", "axis"])
    tensors = a["tensors"]
    if not isinstance(tensors, list | tuple):
        raise imp.unsupported(node, "expected a list of tensors")
    names = [imp.tensor(node, t) for t in tensors]
    dim = imp.value(a.get("dim", a.get("axis", 0)))
    if len(names) == 1:
        imp.values[node] = _Tensor(names[0])  # cat of one tensor: a copy of it
        return
    imp.emit(node, "concat", {"dim": dim}, names)


def _flatten(imp: _Importer, node: fx.Node) -> None:
    a = imp.bind(node, ["input", "start_dim", "end_dim"])
    src = imp.tensor(node, a["input"])
    fields = {"start_dim": imp.value(a.get("start_dim", 0)), "end_dim": imp.value(a.get("end_dim", -1))}
    imp.emit(node, "flatten", fields, [src])


def _reshape(imp: _Importer, node: fx.Node) -> None:
    """``view``/``reshape`` that keeps the batch axis and merges adjacent axes: a ``flatten``; one
    that splits an axis: an ``unflatten``.

    Splitting the channels into groups, swapping the two group axes and merging them back is
    torchvision's ``channel_shuffle``: a ``channelshuffle`` layer.
    """
    if node.kwargs:
        raise imp.unsupported(node, f"keyword arguments {sorted(node.kwargs)}")
    grouped = imp.value(node.args[0])
    src = grouped.src if isinstance(grouped, _Grouped) else imp.tensor(node, node.args[0])
    raw = list(node.args[1:])
    if len(raw) == 1 and isinstance(raw[0], list | tuple):
        raw = list(raw[0])
    elif len(raw) == 1 and isinstance(imp.value(raw[0]), tuple):
        raw = list(imp.value(raw[0]))
    target = [imp.value(x) for x in raw]
    shape = imp.shape(src)
    total = prod(shape)
    if any(not (x is BATCH or (isinstance(x, int) and not isinstance(x, bool))) for x in target):
        raise imp.unsupported(node, f"reshape to {target!r}")
    if not target:
        raise imp.unsupported(node, "reshape to a scalar")
    batch_kept = (
        target[0] is BATCH
        or (  # x.view(x.size(0), ...), or x.view(-1, <the per-sample sizes>)
            target[0] == -1 and -1 not in target[1:] and all(isinstance(x, int) for x in target[1:]) and _same(prod(target[1:]), total)
        )
    )
    if batch_kept:
        per = target[1:]
    else:
        raise imp.unsupported(node, f"reshape to {_shape_text(target)} does not keep the batch axis {_shape_text([BATCH, *shape])}")
    if any(x is BATCH or (x != -1 and x <= 0) for x in per) or sum(1 for x in per if x == -1) > 1:
        raise imp.unsupported(node, f"reshape to {_shape_text(target)}")
    if -1 in per:
        known = prod(x for x in per if x != -1)
        per = [total // known if x == -1 else x for x in per]
    same = len(per) == len(shape) and all(_same(x, y) for x, y in zip(per, shape, strict=True))
    if isinstance(grouped, _Grouped):
        if not same:
            raise imp.unsupported(node, f"reshape of channels split into {grouped.groups} groups to {_shape_text([BATCH, *per])}")
        if grouped.transposed:
            imp.emit(node, "channelshuffle", {"groups": grouped.groups}, [src])
        else:
            imp.values[node] = _Tensor(src)  # split and merged back: no layer
        return
    if same:
        imp.values[node] = _Tensor(src)  # same shape: no layer
        return
    if (
        "channelshuffle" in TYPE_NAMES
        and len(per) == len(shape) + 1
        and isinstance(per[0], int)
        and per[0] > 1
        and _same(per[0] * per[1], shape[0])
        and all(_same(x, y) for x, y in zip(per[2:], shape[1:], strict=True))
    ):
        imp.values[node] = _Grouped(src, per[0])  # (C, ...) -> (g, C/g, ...): wait for the transpose
        return
    for a in range(len(shape)):
        for b in range(a + 1, len(shape) + 1):
            merged = [*shape[:a], prod(shape[a:b]), *shape[b:]]
            if len(merged) == len(per) and all(_same(x, y) for x, y in zip(merged, per, strict=True)):
                fields = {"start_dim": a + 1, "end_dim": -1 if b == len(shape) else b}
                imp.emit(node, "flatten", fields, [src])
                return
    for a in range(len(shape)):  # one axis split in several: x.view(b, c, 1, 1) after a Linear (squeeze-and-excitation)
        for n in range(2, len(per) - len(shape) + 2):
            pieces = per[a : a + n]
            if (
                len(per) == len(shape) + n - 1
                and all(_same(x, y) for x, y in zip(per[:a], shape[:a], strict=True))
                and all(_same(x, y) for x, y in zip(per[a + n :], shape[a + 1 :], strict=True))
                and _same(prod(pieces), shape[a])
            ):
                imp.emit(node, "unflatten", {"dim": a + 1, "unflattened_size": [_spec_dim(x) for x in pieces]}, [src])
                return
    raise imp.unsupported(
        node, f"reshape of {_shape_text([BATCH, *shape])} to {_shape_text([BATCH, *per])} neither merges adjacent axes nor splits one"
    )


def _shape_text(dims: Iterable[Any]) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"


def _size(imp: _Importer, node: fx.Node) -> None:
    a = imp.bind(node, ["input", "dim"])
    full = (BATCH, *imp.shape(imp.tensor(node, a["input"])))
    dim = imp.value(a.get("dim"))
    if dim is not None and not (isinstance(dim, int) and -len(full) <= dim < len(full)):
        raise imp.fail(node, f"size({dim!r}) of a tensor with {len(full)} axes")
    imp.values[node] = full if dim is None else full[dim]


def _dim(imp: _Importer, node: fx.Node) -> None:
    imp.values[node] = len(imp.shape(imp.tensor(node, node.args[0]))) + 1


def _alias(imp: _Importer, node: fx.Node) -> None:
    """``x.contiguous()``, ``y.expand_as(x)``: the same tensor, no layer (a layer that cannot broadcast it says so)."""
    v = imp.value(node.args[0])
    imp.values[node] = v if isinstance(v, _Grouped) else _Tensor(imp.tensor(node, node.args[0]))


def _mean(imp: _Importer, node: fx.Node) -> None:
    """``x.mean([2, 3])`` over every spatial axis: global average pooling (then a flatten unless keepdim)."""
    a = imp.bind(node, ["input", "dim", "keepdim", "dtype"])
    src = imp.tensor(node, a["input"])
    rank = len(imp.shape(src)) + 1
    dim = imp.value(a.get("dim"))
    dims = {d % rank for d in (dim if isinstance(dim, list | tuple) else [dim])} if isinstance(dim, int | list | tuple) else set()
    n = rank - 2
    kind = f"adaptiveavgpool{n}d"
    if n < 1 or dims != set(range(2, rank)) or kind not in TYPE_NAMES:
        raise imp.unsupported(node, f"mean over dims {dim!r}: only the mean over every spatial axis (global average pooling) is supported")
    pooled = imp.emit(node, kind, {"output_size": 1}, [src])
    if not imp.value(a.get("keepdim", False)):
        imp.emit(node, "flatten", {}, [pooled], imp.fresh(f"{pooled}_flatten"))


def _transpose(imp: _Importer, node: fx.Node) -> None:
    """``transpose(1, 2)`` of channels split into groups (channel shuffle); nothing else."""
    a = imp.bind(node, ["input", "dim0", "dim1"])
    v = imp.value(a["input"])
    dims = {imp.value(a.get("dim0")), imp.value(a.get("dim1"))}
    if isinstance(v, _Grouped) and dims == {1, 2}:
        imp.values[node] = _Grouped(v.src, v.groups, not v.transposed)
        return
    raise imp.unsupported(node, "a transpose other than the swap of channel groups of a channel shuffle")


def _getattr(imp: _Importer, node: fx.Node) -> None:
    obj, attr = node.args[0], node.args[1]
    v = imp.value(obj)
    if isinstance(v, _Tensor) and attr == "shape":
        imp.values[node] = (BATCH, *imp.shape(v.name))
        return
    if isinstance(v, _Tensor) and attr == "ndim":
        imp.values[node] = len(imp.shape(v.name)) + 1
        return
    raise imp.unsupported(node, f"attribute {attr!r}")


def _chunk(imp: _Importer, node: fx.Node) -> None:
    a = imp.bind(node, ["input", "chunks", "dim"])
    src = imp.tensor(node, a["input"])
    chunks, dim = imp.value(a["chunks"]), imp.value(a.get("dim", 0))
    if "chunk" not in TYPE_NAMES:
        raise imp.unsupported(node)
    imp.values[node] = _Pieces(src, chunks, dim)


def _getitem(imp: _Importer, node: fx.Node) -> None:
    obj, idx = imp.value(node.args[0]), imp.value(node.args[1])
    if isinstance(obj, _Pieces):
        imp.emit(node, "chunk", {"chunks": obj.chunks, "index": idx, "dim": obj.dim}, [obj.src])
        return
    if isinstance(obj, _Tensor):
        _slice(imp, node, obj.name, idx)
        return
    if isinstance(obj, list | tuple) and not _contains(idx, lambda x: isinstance(x, _Tensor)):
        try:
            imp.values[node] = obj[idx]
        except (IndexError, TypeError) as e:
            raise imp.fail(node, f"indexing {_describe(obj)}: {e}") from None
        return
    raise imp.unsupported(node, f"indexing {_describe(obj)}")


def _slice(imp: _Importer, node: fx.Node, src: str, idx: Any) -> None:
    """``x[:, :, ::s, ::s]`` -> subsample; ``x[:, :, a:a+h, b:b+w]`` (centered, constant) -> crop."""
    shape = imp.shape(src)
    items = list(idx) if isinstance(idx, tuple) else [idx]
    if items.count(Ellipsis) > 1 or not all(isinstance(i, slice) or i is Ellipsis for i in items):
        raise imp.unsupported(node, "indexing other than slicing")
    if Ellipsis in items:
        k = items.index(Ellipsis)
        items = [*items[:k], *[slice(None)] * (len(shape) + 1 - (len(items) - 1)), *items[k + 1 :]]
    items += [slice(None)] * (len(shape) + 1 - len(items))
    if len(items) != len(shape) + 1:
        raise imp.unsupported(node, "more indices than axes")
    full = slice(None)
    if items[0] != full or items[1] != full:
        raise imp.unsupported(node, "slicing the batch or channel axis")
    spatial = items[2:]
    if all(s.start is None and s.stop is None for s in spatial):
        steps = [1 if s.step is None else s.step for s in spatial]
        if all(st == 1 for st in steps):
            imp.values[node] = _Tensor(src)  # x[:, :] is x
            return
        if "subsample" in TYPE_NAMES and all(isinstance(st, int) and st > 0 for st in steps):
            imp.emit(node, "subsample", {"stride": steps[0] if len(set(steps)) == 1 else steps}, [src])
            return
    elif "crop" in TYPE_NAMES and all(s.step in (None, 1) for s in spatial):
        sizes = []
        for s, h in zip(spatial, shape[1:], strict=True):
            hi = as_int(h)
            if hi is None or not all(v is None or isinstance(v, int) for v in (s.start, s.stop)):
                raise imp.unsupported(node, "slicing with symbolic or computed bounds")
            start, stop, _ = s.indices(hi)
            size = stop - start
            if size <= 0 or start != (hi - size) // 2:
                raise imp.unsupported(node, f"slice {start}:{stop} of {hi} is not a center crop")
            sizes.append(size)
        imp.emit(node, "crop", {"size": sizes[0] if len(set(sizes)) == 1 else sizes}, [src])
        return
    raise imp.unsupported(node, "slicing that is neither a strided subsample nor a center crop")


def _pad(imp: _Importer, node: fx.Node) -> None:
    a = imp.bind(node, ["input", "pad", "mode", "value"])
    src = imp.tensor(node, a["input"])
    pad = imp.value(a["pad"])
    mode, value = imp.value(a.get("mode", "constant")), imp.value(a.get("value"))
    if mode != "constant" or value not in (None, 0, 0.0):
        raise imp.unsupported(node, f"padding mode {mode!r} with value {value!r} (only zero padding)")
    if not isinstance(pad, list | tuple) or len(pad) % 2 or not all(isinstance(p, int) for p in pad):
        raise imp.unsupported(node, f"pad {pad!r}")
    shape = imp.shape(src)
    n = len(shape) - 1
    pairs = [(pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)]  # last axis first
    if len(pairs) <= n:
        kind = f"zeropad{n}d"
        if kind not in TYPE_NAMES:
            raise imp.unsupported(node, f"no zero-padding layer for {n} spatial axes")
        full = [p for pair in pairs for p in pair] + [0] * (2 * n - 2 * len(pairs))
        imp.emit(node, kind, {"padding": full[0] if len(set(full)) == 1 else full}, [src])
        return
    if len(pairs) == n + 1 and all(p == (0, 0) for p in pairs[:n]) and "channelpad" in TYPE_NAMES:
        before, after = pairs[n]
        if before != (before + after) // 2:
            raise imp.unsupported(node, f"channel padding {before} before and {after} after; channelpad puts (extra)//2 zeros before")
        imp.emit(node, "channelpad", {"out_channels": _spec_dim(shape[0] + before + after)}, [src])
        return
    raise imp.unsupported(node, f"padding {pad!r} covers the batch axis or both channels and space")


def _channel_shuffle(imp: _Importer, node: fx.Node) -> None:
    a = imp.bind(node, ["input", "groups"])
    imp.emit(node, "channelshuffle", imp.fields_of(node, "channelshuffle", {"groups": a["groups"]}), [imp.tensor(node, a["input"])])


def _interpolate(imp: _Importer, node: fx.Node) -> None:
    names = ["input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias"]
    a = imp.bind(node, names)
    if imp.value(a.get("antialias", False)):
        raise imp.unsupported(node, "antialias=True")
    given: dict[str, Any] = {k: a[k] for k in ("size", "scale_factor", "mode", "align_corners") if k in a and imp.value(a[k]) is not None}
    imp.emit(node, "upsample", imp.fields_of(node, "upsample", given), [imp.tensor(node, a["input"])])


# Functions user code calls in place of a parameter-free layer: (layer type, the name in torch.nn.functional /
# torch / Tensor, its parameters).  import reads them as layers; verify --module records them as calls.
ACTIVATION_FUNCTIONS: list[tuple[str, str, list[str]]] = [
    ("relu", "relu", ["input", "inplace"]),
    ("relu6", "relu6", ["input", "inplace"]),
    ("leakyrelu", "leaky_relu", ["input", "negative_slope", "inplace"]),
    ("tanh", "tanh", ["input"]),
    ("sigmoid", "sigmoid", ["input"]),
    ("gelu", "gelu", ["input", "approximate"]),
    ("silu", "silu", ["input", "inplace"]),
    ("hardswish", "hardswish", ["input", "inplace"]),
    ("hardsigmoid", "hardsigmoid", ["input", "inplace"]),
    ("softmax", "softmax", ["input", "dim", "_stacklevel", "dtype"]),
    ("dropout", "dropout", ["input", "p", "training", "inplace"]),
]
POOL_FUNCTIONS: list[tuple[str, str, list[str]]] = [
    row
    for n in (1, 2, 3)
    for row in (
        (f"maxpool{n}d", f"max_pool{n}d", ["input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"]),
        (f"avgpool{n}d", f"avg_pool{n}d", ["input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"]),
        (f"adaptiveavgpool{n}d", f"adaptive_avg_pool{n}d", ["input", "output_size"]),
        (f"adaptivemaxpool{n}d", f"adaptive_max_pool{n}d", ["input", "output_size", "return_indices"]),
    )
]


def _handlers() -> tuple[dict[Any, _Handler], dict[str, _Handler]]:
    """Handlers by call_function target and by call_method name, for the types that exist."""
    import torch
    from torch.nn import functional as F

    functions: dict[Any, _Handler] = {}
    methods: dict[str, _Handler] = {}

    def fn(name: str, owner: Any = F) -> Any:
        return getattr(owner, name, None)

    for kind, name, params in ACTIVATION_FUNCTIONS:
        if kind not in TYPE_NAMES:
            continue
        h = _activation(kind, params)
        h_inplace = _activation(kind, params, inplace=True)
        for owner in (F, torch):
            f = fn(name, owner)
            if f is not None:
                functions.setdefault(f, h if kind != "softmax" or owner is F else _activation(kind, ["input", "dim", "dtype"]))
            f_ = fn(name + "_", owner)
            if f_ is not None:
                functions.setdefault(f_, h_inplace)
        methods_params = ["input", "dim", "dtype"] if kind == "softmax" else params
        if hasattr(torch.Tensor, name):
            methods[name] = _activation(kind, methods_params)
        if hasattr(torch.Tensor, name + "_"):
            methods[name + "_"] = _activation(kind, methods_params, inplace=True)
    if "dropout" in TYPE_NAMES:
        functions[torch.dropout] = _activation("dropout", ["input", "p", "training"])

    for kind, name, params in POOL_FUNCTIONS:
        if kind not in TYPE_NAMES:
            continue
        for owner in (F, torch):
            f = fn(name, owner)
            if f is not None:
                functions.setdefault(f, _pool(kind, params))

    for f, kind, inplace in (
        (operator.add, "add", False),
        (operator.iadd, "add", True),
        (torch.add, "add", False),
        (operator.mul, "mul", False),
        (operator.imul, "mul", True),
        (torch.mul, "mul", False),
    ):
        functions[f] = _merge(kind, inplace)
    for name, kind, inplace in (
        ("add", "add", False),
        ("add_", "add", True),
        ("__add__", "add", False),
        ("__iadd__", "add", True),
        ("mul", "mul", False),
        ("mul_", "mul", True),
        ("__mul__", "mul", False),
    ):
        methods[name] = _merge(kind, inplace)
    for f, g in ((operator.sub, operator.sub), (operator.floordiv, operator.floordiv), (operator.truediv, operator.truediv)):
        functions[f] = _meta_arith(g)

    functions[operator.eq] = _meta_arith(operator.eq)
    functions[operator.ne] = _meta_arith(operator.ne)
    functions[torch._assert] = _guard
    from torch.fx import _symbolic_trace

    if hasattr(_symbolic_trace, "_assert_is_none"):
        functions[_symbolic_trace._assert_is_none] = _guard
    for name in ("cat", "concat", "concatenate"):
        f = fn(name, torch)
        if f is not None:
            functions[f] = _cat
    functions[torch.flatten] = _flatten
    methods["flatten"] = _flatten
    functions[torch.reshape] = _reshape
    methods["view"] = _reshape
    methods["reshape"] = _reshape
    methods["size"] = _size
    methods["dim"] = _dim
    methods["contiguous"] = _alias
    methods["expand_as"] = _alias  # a broadcast view; the elementwise layer after it (mul) broadcasts itself
    methods["expand"] = _alias
    functions[torch.mean] = _mean
    methods["mean"] = _mean
    functions[torch.transpose] = _transpose
    methods["transpose"] = _transpose
    functions[getattr] = _getattr
    functions[operator.getitem] = _getitem
    functions[torch.chunk] = _chunk
    methods["chunk"] = _chunk
    functions[F.pad] = _pad
    if "channelshuffle" in TYPE_NAMES:
        for f in (fn("channel_shuffle", F), fn("channel_shuffle", torch), fn("native_channel_shuffle", torch)):
            if f is not None:
                functions[f] = _channel_shuffle
    if "upsample" in TYPE_NAMES:
        functions[F.interpolate] = _interpolate
    return functions, methods


# ----- public API ---------------------------------------------------------------------------------
def _input_dims(input_shape: Sequence[int | str] | str) -> tuple[list[int | str], tuple[Dim, ...]]:
    if isinstance(input_shape, str):
        from ..quick import parse_shape

        raw = parse_shape(input_shape)
    else:
        raw = list(input_shape)
    if not raw:
        raise SpecError("the input shape is empty; give C,H,W (no batch axis)", field="input")
    dims: list[Dim] = []
    for x in raw:
        try:
            v = parse_dim(x) if isinstance(x, str) else x
        except DimError as e:
            raise SpecError(str(e), field="input") from None
        if isinstance(v, bool) or not isinstance(x, int | str) or (as_int(v) is not None and as_int(v) <= 0):  # type: ignore[operator]
            raise SpecError(f"input sizes must be positive integers or symbols, got {x!r}", field="input")
        dims.append(v)
    return raw, tuple(dims)


def _preferred_names(module: nn.Module) -> dict[str, str]:
    """Qualified module name -> spec layer name: a module built from a spec keeps its spec names."""
    from .build import SpecModule

    if isinstance(module, SpecModule):
        return {f"layers.{key}": name for key, name in module.spec_names.items()}
    return {}


def spec_from_module(module: nn.Module, input_shape: Sequence[int | str] | str, name: str | None = None) -> dict[str, Any]:
    """The spec (JSON-ready dict, accepted by :func:`archcalc.spec.parse_spec`) of ``module``.

    ``input_shape`` is the per-sample input (C, H, W), no batch axis: a sequence or ``"3,224,224"``.
    Raises :class:`SpecError` for a model fx cannot trace or a node archcalc has no layer for.
    """
    from torch import nn

    from ..graph import compile_spec
    from ..passes import shapes
    from ..spec import parse_spec

    if not isinstance(module, nn.Module):
        raise SpecError(f"expected a torch.nn.Module, got {type(module).__name__}", field="factory")
    raw, dims = _input_dims(input_shape)
    graph = trace(module)
    imp = _Importer(module, dims, _preferred_names(module))
    imp.run(graph)
    spec_name = name or str(getattr(module, "spec_name", "") or type(module).__name__)
    spec: dict[str, Any] = {
        "name": spec_name,
        "description": f"imported from {type(module).__name__} by archcalc import (torch.fx trace, eval mode)"
        + "".join(f"; {n}" for n in imp.notes),
        "input": raw,
        "layers": imp.layers,
    }
    try:  # the importer checked every layer; this checks the whole (names, graph) once more
        G = compile_spec(parse_spec(json.loads(json.dumps(spec))))
        shapes(G)
    except SpecError as e:
        raise SpecError(f"the imported spec is invalid (an archcalc bug): {e}") from None
    return spec


def dumps_spec(spec: Mapping[str, Any]) -> str:
    """JSON text of a spec in the zoo's layout: top-level keys indented, one layer per line."""
    lines = ["{"]
    items = list(spec.items())
    for i, (k, v) in enumerate(items):
        comma = "," if i + 1 < len(items) else ""
        if k == "layers":
            lines.append(f"  {json.dumps(k)}: [")
            for j, layer in enumerate(v):
                lines.append(f"    {json.dumps(layer)}" + ("," if j + 1 < len(v) else ""))
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {json.dumps(k)}: {json.dumps(v)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ----- the CLI ------------------------------------------------------------------------------------
def add_import_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``import PKG.MOD:FACTORY --input C,H,W [-o FILE] [--name NAME]``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "import",
        help="trace a torch model (torch.fx) into a spec (needs archcalc[torch])",
        description="Trace an nn.Module with torch.fx (eval mode, nothing runs) and write the equivalent spec: one layer per "
        "module call or supported function. Exit 0 on success, 2 when the model cannot be traced or has a node archcalc "
        "has no layer type for (nothing is written then).",
    )
    p.add_argument(
        "factory",
        metavar="PKG.MOD:FACTORY",
        help="the model: an nn.Module, an nn.Module class or a no-argument factory, importable (the current directory is on the import path)",
    )
    p.add_argument("--input", required=True, help="per-sample input shape, no batch axis, e.g. 3,224,224")
    p.add_argument("-o", "--output", help="write the spec to this file (atomically) instead of stdout")
    p.add_argument("--name", help="the spec's name (default: the model's class name)")
    p.set_defaults(func=run_import)
    return p


def _load_model(target: str) -> nn.Module:
    from .verify import load_module

    return load_module(target, field="factory", command="import")


def run_import(args: argparse.Namespace) -> int:
    """Run ``archcalc import``: write the spec; 0 on success.  Invalid input raises :class:`SpecError`."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SpecError("import needs torch: pip install 'archcalc[torch]'") from None
    shape = getattr(args, "input", None)
    if not shape:
        raise SpecError("--input C,H,W is required (the per-sample input shape)", field="--input")
    target = str(args.factory)
    model = _load_model(target)
    try:
        spec = spec_from_module(model, str(shape), getattr(args, "name", None))
    except SpecError as e:
        raise e.located(file=target) from None
    text = dumps_spec(spec)
    out = getattr(args, "output", None)
    if out and out != "-":
        write_output(text, out)
    else:
        sys.stdout.write(text)
    return 0


__all__ = ["add_import_parser", "dumps_spec", "module_type", "run_import", "spec_from_module", "trace"]
