"""The fx-graph walk of ``archcalc import``: values along the graph, emitting layers, refusals.

:class:`Importer` visits the nodes of a torch.fx trace in order.  A ``call_module`` of a leaf
(:func:`archcalc.torch.leaves.classify`) becomes one layer whose fields are read from the module's
attributes; a composite module goes to its named handler; ``call_function`` / ``call_method``
nodes go to the handler registered for them (:mod:`archcalc.torch.registry`; the handlers live in
:mod:`archcalc.torch.ops`).  A node no handler takes is refused; the walk goes on past it so that
every refused node is reported in one error (the first one in full, then the others counted by
op), and nodes that only depend on a refused one are not counted again.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..dims import Dim, DimError, as_int, check_expr, is_symbolic, known_sign, parse_dim, prod
from ..errors import SpecError, user_failure
from ..layers import TYPE_NAMES
from ..layers.base import Layer, shape_str
from . import idioms
from .leaves import Composite, Leaf, classify
from .registry import MODULE_HANDLERS, table

if TYPE_CHECKING:
    from torch import fx, nn

INPUT = "input"
_COMMON_FIELDS = frozenset({"name", "type", "inputs", "when", "unless", "training_only", "function"})


# ----- values flowing along the fx graph ------------------------------------------------------------
class Batch:
    """The batch size (``x.size(0)``): known to exist, never a number here."""

    def __repr__(self) -> str:
        return "N"


BATCH = Batch()


@dataclass(frozen=True)
class TensorRef:
    """A tensor: the output of spec layer ``name`` (``"input"`` for the network input)."""

    name: str


@dataclass(frozen=True)
class Pieces:
    """The tuple ``torch.chunk`` returns; indexing it makes a ``chunk`` layer."""

    src: str
    chunks: int
    dim: int


@dataclass(frozen=True)
class Grouped:
    """``x.view(N, g, C // g, ...)`` of tensor ``src`` (the first step of a channel shuffle), maybe transposed."""

    src: str
    groups: int
    transposed: bool = False


@dataclass(frozen=True)
class NewAxis:
    """``x[:, :, None]`` of tensor ``src``: a new axis of 1 before its per-sample axis ``axis`` (0: the first after the
    batch), the first step of Hugging Face's ``repeat_kv``; only an ``expand`` of that axis reads it (:class:`Repeated`).
    ``unsqueezed``: made by ``x.unsqueeze(2)`` whose only readers are expands; an expand that is no repeat of it makes
    the ``reshape`` layer an unsqueeze otherwise is."""

    src: str
    axis: int
    unsqueezed: bool = False


@dataclass(frozen=True)
class Repeated:
    """Tensor ``src`` with each entry of its per-sample axis ``axis`` repeated ``times`` times in place:
    ``torch.repeat_interleave(x, times, dim)``, or ``x[:, :, None].expand(b, kv, times, s, d).reshape(b, kv * times, s, d)``
    (Hugging Face's ``repeat_kv``; also ``x.unsqueeze(2)`` for the new axis, ``.flatten(1, 2)`` or ``.view`` for the
    reshape; ``expanded``: before the reshape, the copies still on an axis of their own after ``axis``).  Grouped-query
    attention repeats k and v of fewer heads to every query head so: read only as the k and v of
    ``F.scaled_dot_product_attention``, which is then ``enable_gqa`` over ``src`` (torch's flag repeats them the same
    way), so the spec keeps (and the KV cache counts) the heads before the repeat."""

    src: str
    axis: int
    times: Any
    expanded: bool = False


@dataclass(frozen=True)
class Expanded:
    """``x.expand(...)`` or ``x.expand_as(y)`` (fx node ``call``) of tensor ``src`` to the larger per-sample ``shape``: axes
    of 1 broadcast to ``shape``'s sizes, a view of copies (an expand that changes only the batch axis is ``src`` itself).
    No spec layer makes those copies, so it is read as ``src`` only where torch's broadcasting makes that exact: an
    elementwise op whose other operand already has the expanded sizes (squeeze-and-excitation's ``x * s.expand_as(x)``);
    any other reader is refused (:meth:`Importer.tensor`)."""

    src: str
    src_shape: tuple[Any, ...]
    shape: tuple[Any, ...]
    call: str


def new_axis_at(idx: Any, rank: int) -> int:
    """Where ``x[idx]`` puts its one new axis, counted from the front (the batch axis 0), for ``x`` of ``rank`` axes
    with the batch's, when ``idx`` is one None among whole axes (``[:, :, None, :, :]``, ``[:, :, None]``,
    ``[..., None, :, :]``): repeat_kv's first step.  ValueError saying why where it is not that.  The one rule of
    import (:class:`NewAxis`) and of verify's measurement of the model's repeats."""
    items = list(idx) if isinstance(idx, tuple) else [idx]
    if items.count(None) != 1 or items.count(Ellipsis) > 1 or not all(i is None or i is Ellipsis or i == slice(None) for i in items):
        raise ValueError(f"indexing with None other than one new axis among whole axes ({index_text(items)})")
    given = len(items) - 1 - items.count(Ellipsis)
    if given > rank:
        raise ValueError(f"more indices than axes ({index_text(items)})")
    before = items[: items.index(None)]
    at = len(before) + (rank - given - 1 if Ellipsis in before else 0)  # the axes of x before the new one, the batch's included
    if at == 0:
        raise ValueError("a new axis before the batch axis")
    return at


def moved_axis(axis: int, dim0: int, dim1: int) -> int:
    """Where ``transpose(dim0, dim1)`` puts axis ``axis`` (all three counted from the front, in range): a repeat's axis
    moves with it (Meta's LLaMA transposes k and v after repeat_kv).  Import's rule and verify's."""
    return dim1 if axis == dim0 else dim0 if axis == dim1 else axis


def index_text(items: list[Any]) -> str:
    """An index as written: ``[:, :, None, ...]``."""

    def one(i: Any) -> str:
        if i is None or i is Ellipsis:
            return "None" if i is None else "..."
        if isinstance(i, slice):
            return ":".join("" if x is None else str(x) for x in (i.start, i.stop, *(() if i.step is None else (i.step,))))
        return repr(i)

    return "[" + ", ".join(one(i) for i in items) + "]"


@dataclass(frozen=True)
class Attr:
    """A tensor the model holds and reads in ``forward`` (an fx ``get_attr``): a parameter or buffer."""

    target: str
    shape: tuple[int, ...]
    """The full shape (no batch axis: a parameter has none)."""
    parameter: bool
    """True for an ``nn.Parameter`` (learned: counted as params), False for a buffer."""
    table: tuple[int, ...] | None = None
    """For a parameter read at constant positions (``table[index]``): the parameter's own shape."""

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class Moved:
    """``src.permute(dims)`` with the batch axis moved from the front (dims of torch, batch axis 0)."""

    src: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class Unbound:
    """``x.unbind(dim)``: indexing it selects entry i (of a :class:`Moved` tensor: axis ``dims[0]``)."""

    moved: Moved | None
    src: str | None
    dim: int


@dataclass(frozen=True)
class Split:
    """``x.split(...)``: piece i is the ``slice`` ``bounds[i]`` of axis ``dim``."""

    src: str
    dim: int
    bounds: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Positions:
    """``torch.arange(0, n)``: the positions 0..n-1 of a sequence of n (GPT-2's ``wpe(arange(t))``).
    An ``nn.Embedding`` that reads it is an ``embedding`` with ``indices: "positions"``."""

    length: Any
    """n: an int or a symbolic size (the sequence length read off a tensor's shape)."""


@dataclass(frozen=True)
class Refused:
    """The value of a node the importer refused: later nodes that read it are not reported again."""


class Downstream(Exception):
    """Raised when a node reads the value of a refused node (it is skipped, not reported)."""


@dataclass(frozen=True)
class Unusable:
    """A value archcalc cannot follow (an extra forward argument)."""

    why: str


def same(a: Any, b: Any) -> bool:
    if a is BATCH or b is BATCH:
        return a is b
    try:
        return known_sign(a - b) == 0
    except TypeError:
        return False


def _tracer(decisions: Sequence[bool] = (), sizes: SizeReader | None = None) -> fx.Tracer:
    from torch import fx

    table()  # registers the composite modules classify() knows by name

    class SizedProxy(fx.Proxy):
        """A traced value that Python may need as an int (``self.bias[:, :, :T, :T]``, ``range(T)``):
        its value for the given input, as the importer computes it (:class:`SizeReader`)."""

        def __index__(self) -> int:
            if sizes is None:
                raise TypeError(f"{self.node.name} is a traced value, not an int")
            try:
                return sizes.int_of(self.node)
            except TypeError:
                raise
            except Exception as e:  # (torch asks for ints while it parses arguments: any failure is "not an int")
                raise TypeError(f"the value of {self.node.name!r} could not be computed: {first_line(e)}") from None

    class Tracer(fx.Tracer):
        """fx's tracer with archcalc's leaf rule (:func:`archcalc.torch.leaves.classify`).

        A Python test of a traced value (``assert t <= block_size`` in nanoGPT, ``if new_h != H``
        in timm's MobileViT), which plain fx refuses, takes the i-th of ``decisions`` (true beyond
        them) and is marked :data:`DECIDED`; the importer computes each test for the given input
        and, where one went the other way, traces again with that decision turned
        (:func:`import_graph`), so the traced path is the one the model takes for that input."""

        tests = 0

        def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
            return classify(m) is not None

        def proxy(self, node: fx.Node) -> fx.Proxy:
            return SizedProxy(node, self)

        def to_bool(self, obj: fx.Proxy) -> bool:
            i = self.tests
            self.tests += 1
            if self.tests > MAX_TESTS:  # a `while` on a traced value would never end
                raise fx.proxy.TraceError(f"more than {MAX_TESTS} Python tests of traced values (a loop on one?)")
            decision = decisions[i] if i < len(decisions) else True
            obj.node.meta.setdefault(DECIDED, []).append((i, decision))
            return decision

    tracer = Tracer()
    if sizes is not None:
        sizes.tracer = tracer
    return tracer


class SizeUnknown(TypeError):
    """A traced value Python needs as an int is not a number for this input (a TypeError: what torch
    expects of a value that is no int); ``refusal``: the refused node it follows, reported instead."""

    def __init__(self, message: str, refusal: SpecError | None = None) -> None:
        super().__init__(message)
        self.refusal = refusal


class SizeReader:
    """The values of traced nodes for the given input, computed while fx traces: what Python needs
    as a plain int during the trace (a size that slices a tensor the model holds, nanoGPT's
    ``self.bias[:, :, :T, :T]``), which plain fx refuses ("slice indices must be integers").

    The nodes traced so far are read by an :class:`Importer` of their own, in order, as the import
    reads them afterwards, so the int is the size archcalc's formulas give.  Only a number is
    handed out: a symbolic size (``--input s``), the batch size or a value that is not a size is a
    TypeError naming it, and the trace fails in one line as before.  (The traced graph then holds
    what Python computed with it, a constant: the import is for this input, as every numeric one is.)"""

    def __init__(self, root: nn.Module, dims: tuple[Dim, ...]) -> None:
        self.root, self.dims = root, dims
        self.tracer: fx.Tracer | None = None
        self.imp: Importer | None = None
        self.last: fx.Node | None = None

    def int_of(self, node: fx.Node) -> int:
        v, refusal = self.value_of(node)
        n = as_int(v) if not isinstance(v, bool) and (isinstance(v, int) or is_symbolic(v)) else None
        if n is None:
            why = describe(v) if not is_symbolic(v) else f"{v} for this input (give the sizes numbers)"
            where = module_path(node)
            raise SizeUnknown(f"the model{f' (in {where!r})' if where else ''} uses {node.name!r} as a Python int (to index, slice or count), "
                              f"but it is {why}", refusal)
        return n

    def value_of(self, node: fx.Node) -> tuple[Any, SpecError | None]:
        """The importer's value of ``node`` (the graph read up to it, once: later calls go on from
        there), and the first refusal before it when it follows a refused node.  Such a value is
        read again on a copy of the graph so far with the idioms replaced (an inline rotary
        embedding of an earlier layer is refused call by call until :func:`idioms.rewrite` makes it one)."""
        if self.imp is None:
            self.imp = Importer(self.root, self.dims, {})
        assert self.tracer is not None
        imp = self.imp
        n = self.last.next if self.last is not None else next(iter(self.tracer.graph.nodes))
        with _untraced():
            while node not in imp.values and n.op != "root":
                if n.op != "output":
                    imp.visit(n)
                self.last, n = n, n.next
            v = imp.values.get(node, Refused())
            if isinstance(v, Refused) and imp.refused:
                return self._rewritten(node)
        return v, None

    def _rewritten(self, node: fx.Node) -> tuple[Any, SpecError | None]:
        """``node``'s value read on a copy of the graph up to it, its idioms replaced."""
        from torch import fx

        assert self.tracer is not None
        graph, copies = fx.Graph(), {}  # type: ignore[var-annotated]
        for n in self.tracer.graph.nodes:
            if n.op == "output":
                continue
            copies[n] = graph.node_copy(n, lambda a: copies[a])
            if n is node:
                break
        graph.output(copies[node])
        problems = idioms.rewrite(graph, self.root)
        if problems:
            return Refused(), SpecError(f"{problems[0]}; {idioms.READ}", field="factory")
        imp = Importer(self.root, self.dims, {})
        for n in graph.nodes:
            if n.op != "output":
                imp.visit(n)
        v = imp.values.get(copies[node], Refused())
        return v, imp.refused[0][1] if isinstance(v, Refused) and imp.refused else None


@contextlib.contextmanager
def _untraced() -> Iterator[None]:
    """nn.Module's own ``__getattr__`` and ``__call__`` while fx traces, which patches them (a
    parameter read would be a proxy, and a new node of the graph): the importer reads the model as it is."""
    from torch import nn
    from torch.fx import _symbolic_trace as st

    patched = nn.Module.__getattr__, nn.Module.__call__
    nn.Module.__getattr__, nn.Module.__call__ = st._orig_module_getattr, st._orig_module_call  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.__getattr__, nn.Module.__call__ = patched  # type: ignore[method-assign]


DECIDED = "archcalc_decided"
"""fx node meta key: [(i, decision)] for the Python tests (``if``/``assert``) the trace took on this node's value."""
MAX_TESTS = 1000


class WrongBranch(Exception):
    """The trace took the i-th Python test the way the input does not: trace again with it turned."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


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


def trace(module: nn.Module, training: bool = False, decisions: Sequence[bool] = (), dims: tuple[Dim, ...] | None = None) -> fx.Graph:
    """Symbolically trace ``module`` in eval mode (or training mode: auxiliary heads run there);
    its train/eval flags are restored afterwards.  ``decisions``: how to take the Python tests of
    traced values, in the order the trace meets them (default: true)."""
    from torch import fx

    from ..usercode import user_code

    flags = {m: m.training for m in module.modules()}
    module.train(training)
    try:
        with user_code():  # its forward runs on proxies: no os._exit, no print into the spec written to stdout
            sizes = SizeReader(module, dims) if dims is not None else None
            return _tracer(decisions, sizes).trace(module, concrete_args=_concrete_args(module) or None)
    except SpecError:
        raise
    except fx.proxy.TraceError as e:
        raise SpecError(f"torch.fx cannot trace {type(module).__name__}: {first_line(e)}", field="factory") from None
    except SizeUnknown as e:
        if e.refusal is not None:  # a size after a node import refuses: that node's refusal, as the import would give it
            raise e.refusal from None
        raise SpecError(f"torch.fx cannot trace {type(module).__name__}: {first_line(e)}", field="factory") from None
    except Exception as e:  # user code runs during the trace and can fail in any way
        raise SpecError(f"torch.fx cannot trace {type(module).__name__}: {type(e).__name__}: {first_line(e)}", field="factory") from None
    except SystemExit as e:  # and it may exit: an error, never archcalc's exit status
        raise SpecError(f"tracing {type(module).__name__} exited: {user_failure(e)}", field="factory") from None
    finally:
        for m, flag in flags.items():
            m.training = flag


def module_path(node: fx.Node) -> str:
    """The qualified name of the module whose ``forward`` made ``node`` (fx's ``nn_module_stack``), '' at the top."""
    stack = node.meta.get("nn_module_stack") or {}
    return str(next(reversed(stack.values()))[0]) if stack else ""


def first_line(e: BaseException) -> str:
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
            return f"operator.{getattr(t, '__name__', t)}"  # not "<built-in function add>"
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
    if isinstance(v, float):  # (never truncated: 1.5 is not a size, and int(1.5) is 1)
        if v.is_integer():
            return int(v)
        raise SpecError(f"{what}: {v!r} is not an integer (archcalc sizes and factors are integers)")
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


def field_value(cls: type[Layer], fname: str, raw: Any) -> Any:
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


class Importer:
    def __init__(self, root: nn.Module, input_shape: tuple[Dim, ...], preferred: Mapping[str, str], output_key: str | None = None,
                 training: bool = False) -> None:
        self.root = root
        self.output_key = output_key
        self.training = training  # a training-mode trace: extra outputs (auxiliary heads) are allowed
        self.aux_outputs: list[str] = []
        self.used_params: set[int] = set()  # ids of the parameters the imported layers hold
        self.params_emitted: dict[tuple[str, tuple[int, ...], tuple[int, ...] | None], str] = {}
        self.preferred = dict(preferred)
        self.called_with_weights: set[str] = set()  # modules with parameters already called once
        self.weight_owners: dict[int, str] = {}  # id of a module weight -> the spec layer that owns it (tied weights)
        self.param_owners: dict[int, str] = {}  # id of every parameter a spec layer holds -> that layer (counted there)
        self.notes: list[str] = []  # what the spec cannot say, for its description
        self.layers: list[dict[str, Any]] = []
        self.calling: tuple[fx.Node, str] | None = None  # the call_function/call_method node being handled, and its function
        self.shapes: dict[str, tuple[Dim, ...]] = {INPUT: input_shape}
        self.values: dict[fx.Node, Any] = {}
        self.taken: set[str] = {INPUT, "total"}  # (a module named total: check reserves the name)
        self.prev = INPUT
        self.input_seen = False
        self.table = table()
        self.refused: list[tuple[fx.Node, SpecError]] = []  # refused nodes, in graph order
        self.mask_buffers: set[int] = set()  # ids of the causal-mask buffers a causal_mask counts (buffer_size), each once

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
        if isinstance(arg, dict):
            return {k: self.value(a) for k, a in arg.items()}
        return arg

    def tensor(self, node: fx.Node, arg: Any) -> str:
        """The spec name of the tensor ``arg`` (an fx argument), or an error naming ``node``."""
        v = self.value(arg)
        if isinstance(v, TensorRef):
            return v.name
        if isinstance(v, Unusable):
            raise self.fail(node, v.why)
        if isinstance(v, Refused):
            raise Downstream
        if isinstance(v, Positions):
            raise self.unsupported(node, f"{describe(v)} used as a tensor (only an nn.Embedding may read it: learned positions)")
        if isinstance(v, Expanded):
            raise self.unsupported(node, f"reads {describe(v)}: archcalc has no layer that makes the copies, and reads an expand as its "
                                   "input only where broadcasting makes that exact (an elementwise op whose other operand has the "
                                   "expanded shape)")
        if isinstance(v, Attr) and "parameter" in TYPE_NAMES:
            return self.parameter(node, v)
        if isinstance(v, Attr):
            raise self.unsupported(
                node, f"reads the {'parameter' if v.parameter else 'buffer'} {v.target!r} directly (a functional layer "
                "with its own weights, e.g. F.conv2d(x, self.weight)); write it as a module to import it"
            )
        raise self.unsupported(node, f"expected a tensor argument, got {describe(v)}")

    def parameter(self, node: fx.Node, v: Attr, rank: int | None = None) -> str:
        """The ``parameter`` layer of a tensor the model reads in ``forward`` (emitted once per view of
        it); a ``positionbias`` for a parameter read at constant positions (``table[index]``).

        Its per-sample shape: torch's, right-aligned to the ``rank`` of the tensor it meets (torch
        broadcasts it over the batch), else without a leading 1 (the class token (1, 1, D) is (1, D)).
        A buffer (not learned) is refused: the spec has no constant tensors."""
        if not v.parameter:
            raise self.unsupported(node, f"reads the buffer {v.target!r} (a constant tensor; archcalc specs have none)")
        owner = self.param_owners.get(id(self.tensor_of(v)))
        if owner is not None and owner not in self.params_emitted.values():
            raise self.fail(node, f"reads {v.target!r}, which {owner!r} holds, as a tensor of its own: it would be counted twice")
        shape = list(v.shape)
        if rank is not None:
            while len(shape) > rank and shape[0] == 1:
                shape.pop(0)
            if len(shape) > rank:
                raise self.unsupported(node, f"the {v.target!r} of shape {v.shape} has more axes than the per-sample tensor it meets")
            shape = [1] * (rank - len(shape)) + shape
        elif len(shape) >= 2 and shape[0] == 1:
            shape = shape[1:]
        key = (v.target, tuple(shape), v.table)
        if key not in self.params_emitted:
            if v.table is not None:
                name = self.emit(node, "positionbias", {"shape": shape, "table": list(v.table)}, [], self.fresh(v.target))
            else:
                name = self.emit(node, "parameter", {"shape": shape}, [], self.fresh(v.target))
            self.params_emitted[key] = name
            self.param_owners.setdefault(id(self.tensor_of(v)), name)
        return self.params_emitted[key]

    def positions_of(self, node: fx.Node, v: Positions) -> str:
        """The tensor whose first axis ``v`` counts (an embedding of positions reads its length): the
        model input when it is that long, else the latest layer whose first axis is."""
        names: list[str] = [INPUT, *reversed([str(d["name"]) for d in self.layers])]
        for name in names:
            shape = self.shapes[name]
            if shape and same(shape[0], v.length):
                return name
        raise self.unsupported(node, f"{describe(v)}: no tensor has a first axis of {v.length} to take the positions of")

    def shape(self, name: str) -> tuple[Dim, ...]:
        return self.shapes[name]

    # ----- emitting layers -------------------------------------------------------------------
    def scoped(self, node: fx.Node) -> str:
        """The name of a layer a call makes: inside a module's ``forward``, under that module's name (fx's
        ``nn_module_stack``: nanoGPT's block's ``F.layer_norm`` is ``transformer.h.0.layer_norm``, its residual adds
        ``transformer.h.0.add`` and ``transformer.h.0.add_2``), so that ``memory --checkpoint transformer.h.0`` and the
        block's claims hold every layer its forward computes; at the top, fx's node name (``add_2``).  fx's own numbering
        (global: ``layer_norm_3``) is left off a scoped name; :meth:`fresh` numbers it within its module."""
        stack = [str(path) for path, _ in (node.meta.get("nn_module_stack") or {}).values()]
        if node.op == "call_module" and stack and stack[-1] == str(node.target):
            stack.pop()  # (a module's own call: fx lists the module itself last; it is named in its parent's scope)
        where = stack[-1] if stack else ""
        return f"{where}.{re.sub(r'_[0-9]+$', '', node.name)}" if where else node.name

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
        lname = name or self.fresh(self.scoped(node))
        data: dict[str, Any] = {"name": lname, "type": kind}
        clean = {k: v for k, v in fields.items() if not _is_default(cls, k, v)}
        if len(inputs) != 1 or inputs[0] != self.prev or (cls.source and inputs):  # a source reads no layer unless it names one
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
            layer = layer.bind({})  # size expressions of symbols ("s - 1"), as the spec's compile will read them
            out = tuple(layer.output_shape([self.shapes[i] for i in inputs]))
        except SpecError as e:
            raise self.fail(node, f"{kind} layer {lname!r}: {e.message}" + (f" (field {e.field!r})" if e.field else "")) from None
        if self.calling is not None and self.calling[0] is node and not cls.source:
            fn = self.calling[1]
            if counted_apart(layer, [self.shapes[i] for i in inputs], out, fn):
                data["function"] = fn  # a peer that counts modules counts this call otherwise (thop, ptflops)
        self.layers.append(data)
        self.shapes[lname] = out
        self.prev = lname
        self.values[node] = TensorRef(lname)
        return lname

    # ----- the walk --------------------------------------------------------------------------
    def run(self, graph: fx.Graph) -> str:
        """Turn every node into layers; return the name of the output layer."""
        output: str | None = None
        for node in graph.nodes:
            if node.op == "output":
                if not self.refused:
                    output = self.output(node)
            else:
                self.visit(node)
        self.check_decisions(graph)
        if self.refused:
            raise self.refusal()
        if output is None:
            raise SpecError("the traced graph has no output")
        return output

    def visit(self, node: fx.Node) -> None:
        """Read one node (not the output): its value, and the layers it makes; a refused node is recorded."""
        if node.op == "placeholder":
            if not self.input_seen:
                self.values[node] = TensorRef(INPUT)
                self.input_seen = True
            elif node.args:  # an argument bound to its default (concrete_args): a constant
                self.values[node] = node.args[0]
            else:
                self.values[node] = Unusable(f"forward argument {node.name!r} is not the model input; archcalc imports models with one input")
        elif node.op == "get_attr":
            self.values[node] = self.get_attr(node)
        else:
            try:
                if contains(self.value([*node.args, *node.kwargs.values()]), lambda x: isinstance(x, Refused)):
                    raise Downstream
                if node.op == "call_module":
                    self.call_module(node)
                else:
                    self.call(node)
            except Downstream:
                self.values[node] = Refused()
            except SpecError as e:
                self.refused.append((node, e))
                self.values[node] = Refused()

    def check_decisions(self, graph: fx.Graph) -> None:
        """Each Python test the trace decided must come out that way for this input: the first that
        does not raises :class:`WrongBranch`; one that cannot be computed (tensor values, a symbolic
        size) is refused."""
        wrong: list[int] = []
        for node in graph.nodes:
            for i, decision in node.meta.get(DECIDED, ()):
                v = self.values.get(node)
                truth = _truth(v)
                if truth is None and not isinstance(v, Refused) and node not in {n for n, _ in self.refused}:
                    self.refused.append((node, self.fail(node, f"the model tests it in Python (an assert or if), but it is {describe(v)} "
                                                               "for this input, neither true nor false (give the sizes numbers)")))
                elif truth is not None and truth != decision:
                    wrong.append(i)
        if wrong:
            raise WrongBranch(min(wrong))

    def refusal(self) -> SpecError:
        """One error for every refused node: the first in full, the others counted by op."""
        first = self.refused[0][1]
        if len(self.refused) == 1:
            return first
        counts: dict[str, int] = {}
        for node, _ in self.refused[1:]:
            op = _target_str(node, self.root)
            if node.op == "call_module":
                op = op.split(": ", 1)[-1]
            counts[op] = counts.get(op, 0) + 1
        more = ", ".join(f"{op} ({n})" if n > 1 else op for op, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        return SpecError(f"{first.message}; {len(self.refused) - 1} more node(s) refused: {more}", field=first.field)

    def tensor_of(self, v: Attr) -> Any:
        """The parameter or buffer an :class:`Attr` reads."""
        obj: Any = self.root
        for part in v.target.split("."):
            obj = getattr(obj, part, None)
        return obj

    def held_by_another(self, node: fx.Node, kind: str, weight: Attr, bias: Attr | None) -> dict[str, Any]:
        """A functional layer over tensors the model holds (``F.linear(x, self.wte.weight)``): when
        its weight is another layer's, the ``tie_weight`` field that counts it once, there (GPT-2's
        head written functionally); refused when a tensor would otherwise be counted twice."""
        w = self.tensor_of(weight)
        b = self.tensor_of(bias) if bias is not None else None
        if b is not None and id(b) in self.param_owners:
            holder = self.param_owners[id(b)]
            raise self.fail(node, f"uses the bias of {holder!r} again: it would be counted twice (archcalc specs share weights only)")
        owner = self.param_owners.get(id(w))
        if owner is None:
            return {}
        if "tie_weight" not in TYPE_NAMES[kind].model_fields:
            raise self.fail(node, f"uses the weight of {owner!r} again, which a {kind} layer cannot say (no tie_weight): it would be counted twice")
        return {"tie_weight": owner}

    def hold(self, name: str, *tensors: Attr | None) -> None:
        """Record that spec layer ``name`` holds (counts) these tensors of the model."""
        for t in tensors:
            if t is not None:
                self.param_owners.setdefault(id(self.tensor_of(t)), name)

    def get_attr(self, node: fx.Node) -> Any:
        """A parameter or buffer read in ``forward`` (class token, position embedding, a scale)."""
        import torch

        obj: Any = self.root
        for part in str(node.target).split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, torch.nn.Parameter):
            self.used_params.add(id(obj))
        if isinstance(obj, torch.Tensor):
            return Attr(str(node.target), tuple(int(d) for d in obj.shape), isinstance(obj, torch.nn.Parameter))
        return Unusable(f"reads the attribute {node.target!r}, which is not a tensor")

    def output(self, node: fx.Node) -> str:
        (res,) = node.args
        v = self.value(res)
        if isinstance(v, dict):
            v = self.dict_output(node, v)
        if self.training and isinstance(v, list | tuple) and v and all(isinstance(x, TensorRef) for x in v):
            self.aux_outputs = [x.name for x in v[1:]]  # GoogLeNetOutputs(logits, aux2, aux1)
            v = v[0]
        if isinstance(v, list | tuple) and sum(isinstance(x, TensorRef) for x in v) == 1 and all(isinstance(x, TensorRef) or x is None for x in v):
            self.notes.append(f"the model returns a {type(v).__name__} of {len(v)} whose only tensor (the others are None) is the spec's output")
            v = next(x for x in v if isinstance(x, TensorRef))  # nanoGPT's (logits, loss) with no targets: (logits, None)
        if not isinstance(v, TensorRef):
            what = f"{len(v)} values" if isinstance(v, list | tuple) else describe(v)
            raise SpecError(f"the model returns {what}; archcalc specs have one output tensor (node {node.name!r})")
        if v.name != self.prev or not self.layers:  # the spec's output is its last layer
            self.emit(node, "identity", {}, [v.name], self.fresh("output"))
        return v.name

    def dict_output(self, node: fx.Node, out: Mapping[Any, Any]) -> Any:
        """The tensor of a dict output (torchvision's segmentation models return ``{"out": ...}``):
        the key ``--output`` names, or the only tensor-valued key (said in the spec's description)."""
        from .outputs import dict_output_key

        key, note = dict_output_key(out, self.output_key, lambda x: isinstance(x, TensorRef), f" (node {node.name!r})")
        if note is not None:
            self.notes.append(note)
        return out[key]

    def call_module(self, node: fx.Node) -> None:
        target = str(node.target)
        module = self.root.get_submodule(target)
        leaf = classify(module)
        if isinstance(leaf, Composite):
            MODULE_HANDLERS[leaf.qualname](self, node, module)
            return
        kind = leaf.kind if isinstance(leaf, Leaf) else None
        if kind is None:
            raise self.unsupported(node)
        if kind == "reshape" and getattr(module, "view", None) is True and "view" in TYPE_NAMES:
            kind = "view"  # archcalc's Reshape module of a 'view' layer
        if target in self.called_with_weights:  # shared weights: each spec layer owns its weights
            raise self.fail(
                node, f"calls {target!r} a second time: its weights are shared between the calls, and each spec layer "
                "has its own, so its parameters would be counted twice (archcalc specs have no weight sharing)"
            )
        if any(True for _ in module.parameters(recurse=False)):
            self.called_with_weights.add(target)
        weight = getattr(module, "weight", None)
        owner = self.weight_owners.get(id(weight)) if weight is not None else None  # a tied weight (GPT-2's head and wte)
        self.used_params.update(id(p) for p in module.parameters())
        if node.kwargs and kind != "multiheadattention":
            raise self.unsupported(node, f"called with keyword arguments {sorted(node.kwargs)}")
        cls = TYPE_NAMES[kind]
        args = list(node.args)
        if cls.source:  # a learned tensor (archcalc's Parameter module) is called with the batch size, not a tensor
            args = [a for a in args if self.value(a) is not BATCH]
        positions = kind == "embedding" and len(args) == 1 and isinstance(self.value(args[0]), Positions)
        inputs = [self.positions_of(node, self.value(args[0]))] if positions else [self.tensor(node, a) for a in args]
        fields: dict[str, Any] = {}
        for fname in cls.model_fields:
            if fname in _COMMON_FIELDS or not hasattr(module, fname) or (kind == "upsample" and fname in ("size", "scale_factor")):
                continue
            try:
                fields[fname] = field_value(cls, fname, getattr(module, fname))
            except SpecError as e:
                raise self.fail(node, e.message) from None
        ins = [self.shapes[i] for i in inputs]
        self._module_specials(node, module, kind, fields, ins)
        call = module.__dict__.get("_call")  # a module built from a spec layer with a function (archcalc.torch.build.called_as)
        if call is not None:
            fields["function"] = call.function
        if positions:
            fields["indices"] = "positions"
        if owner is not None:
            if "tie_weight" not in cls.model_fields:
                raise self.fail(node, f"uses the weight of {owner!r} (tied), which a {kind} layer cannot say: it would be counted twice")
            fields["tie_weight"] = owner
        preferred = self.preferred.get(target, target)
        name = self.fresh(preferred, self.scoped(node))
        if weight is not None and owner is None:
            self.weight_owners[id(weight)] = name
        for p in module.parameters():
            if p is not weight or owner is None:
                self.param_owners.setdefault(id(p), name)
        if kind == "multiheadattention":
            from .ops.attention import multihead_attention

            multihead_attention(self, node, inputs, name, fields)
            return
        self._check_params(node, module, kind, fields, ins, None if owner is None else weight)
        self.emit(node, kind, fields, inputs, name)

    def _check_params(self, node: fx.Node, module: nn.Module, kind: str, fields: Mapping[str, Any], ins: list[tuple[Dim, ...]],
                      tied: Any) -> None:
        """Refuse a module holding other parameters than the spec layer would count: weight
        normalisation (torch.nn.utils.weight_norm's weight_g and weight_v;
        parametrizations.weight_norm's original0 and original1, where the layer has one weight) or
        another parametrization with parameters of its own.  The published count is what
        model.parameters() sums; a spec layer cannot hold the extra tensors.  (spectral_norm's u
        and v are buffers: nothing to refuse.)"""
        held = [(n, p) for n, p in module.named_parameters() if p is not tied]
        try:
            layer = TYPE_NAMES[kind].model_validate({"name": "x", "type": kind, **fields}).bind({})
            weights = {k: v for k, v in layer.weights(ins).items() if k not in layer.tied_weights()}
        except (SpecError, ValueError):
            return  # (emit names what is wrong with the layer)
        counted = [as_int(prod(s)) for s in weights.values()]
        if any(c is None for c in counted):
            return  # symbolic sizes: a module holds numbers; nothing to compare
        mine, theirs = sum(c for c in counted if c is not None), sum(p.numel() for _, p in held)
        if mine == theirs:
            return
        names = ", ".join(f"{n} {p.numel():,}" for n, p in held)
        spec = ", ".join(f"{k} {c:,}" for k, c in zip(weights, counted, strict=True)) or "none"
        what = ("weight normalisation" if any(n.endswith(("weight_g", "weight_v")) or ".weight.original" in n for n, _ in held)
                else "a parametrization" if hasattr(module, "parametrizations") else "parameters beyond the layer's own")
        raise self.fail(node, f"holds {theirs:,} parameters ({names}) where a {kind} layer holds {mine:,} ({spec}): {what} "
                        f"cannot be said in a spec (its count would be off by {abs(theirs - mine):,})")

    def _module_specials(self, node: fx.Node, module: nn.Module, kind: str, fields: dict[str, Any], ins: list[tuple[Dim, ...]]) -> None:
        """Fields a module does not hold under the spec's name, and consistency with the input."""
        if getattr(module, "return_indices", False):
            raise self.unsupported(node, "return_indices=True returns a tuple")
        if kind == "upsample" and ins:
            fields.update(self.upsample_size(node, ins[0], getattr(module, "size", None), getattr(module, "scale_factor", None),
                                             getattr(module, "recompute_scale_factor", None), getattr(module, "align_corners", None)))
        if kind == "softmax" and fields.get("dim") is None:
            fields["dim"] = implicit_softmax_dim(ins[0])
        held: Any = module  # archcalc's own module classes: their attributes by name
        if kind == "parameter":  # archcalc's Parameter module holds (1, *shape); given an input, it takes its shape
            shape = [int(d) for d in held.weight.shape[1:]]
            if not (ins and len(ins[0]) == len(shape) and all(same(a, b) for a, b in zip(ins[0], shape, strict=True))):
                fields["shape"] = shape
        if kind == "layerscale" and ins:  # archcalc's LayerScale module holds gamma as torch broadcasts it: (C, 1, 1) or (D,)
            g = tuple(held.gamma.shape)
            fields["dim"] = -1 if len(g) == 1 and len(ins[0]) > 1 else len(ins[0]) - len(g) + 1
        if kind == "positionbias":  # archcalc's PositionBias module: the table and the per-sample shape it hands out
            fields["table"] = [int(d) for d in held.table.shape]
            fields["shape"] = [int(d) for d in held.shape]
        if kind == "channelpad":
            before, after = int(getattr(module, "before", 0)), int(getattr(module, "after", 0))
            if before != (before + after) // 2:
                raise self.unsupported(node, f"channel padding {before} before and {after} after; channelpad puts (extra)//2 zeros before")
            fields["out_channels"] = spec_dim(ins[0][0] + before + after)
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
        t = node.target
        if node.op == "call_function" and isinstance(t, type) and issubclass(t, tuple):  # a namedtuple of outputs
            self.values[node] = tuple(self.value([*node.args, *node.kwargs.values()]))
            return
        found = self.table.lookup(node)
        if found is None:
            raise self.unsupported(node)
        name, handler = found
        if handler is None:  # an ignored call (registry.IGNORED): the same tensor, no layer
            v = self.value(node.args[0])
            self.values[node] = v if not isinstance(v, TensorRef) else TensorRef(self.tensor(node, node.args[0]))
            return
        self.calling = (node, spelled(name))
        try:
            handler(self, node)
        finally:
            self.calling = None

    # ----- helpers for the handlers ----------------------------------------------------------
    def upsample_size(self, node: fx.Node, shape: tuple[Dim, ...], size: Any, scale: Any, recompute: Any, align_corners: Any) -> dict[str, Any]:
        """An upsample's ``size`` or ``scale_factor`` (values as torch holds them) as the spec's upsample
        can say it, exactly.  An integral factor stays a factor.  A fractional one (1.5) gives torch's
        output size, floor(in * scale) (torch.nn.functional.interpolate), written as ``size`` when the
        sampling is then the same: torch steps through the input by 1/scale when it was given the
        factor and by in/out when given a size (aten's area_pixel_compute_scale), so the size is
        exact with ``recompute_scale_factor=True`` or ``align_corners=True`` (torch uses in/out or
        (in-1)/(out-1) either way), or where 1/scale == in/out on every axis (1.5 on 8: 12).  Any
        other fractional factor (1.5 on 7 pixels), or one on a symbolic size, is refused: never truncated."""
        size, scale = self.value(size), self.value(scale)
        if size is not None:
            return self.fields_of(node, "upsample", {"size": size})
        if scale is None:
            return {}
        n = len(shape) - 1
        scales = list(scale) if isinstance(scale, list | tuple) else [scale] * n
        if not all(isinstance(s, int | float) and not isinstance(s, bool) for s in scales):
            raise self.fail(node, f"scale_factor {scale!r}: expected numbers")
        if all(float(s).is_integer() for s in scales):
            return self.fields_of(node, "upsample", {"scale_factor": scale})
        if len(scales) != n:
            raise self.fail(node, f"scale_factor {scale!r} has {len(scales)} values for {n} spatial axes")
        known = [as_int(h) for h in shape[1:]]
        ins = [h for h in known if h is not None]
        if len(ins) != len(known):
            raise self.fail(node, f"scale_factor {scale!r} is not an integer and the input {shape_str(shape)} is symbolic: the spec's "
                            "upsample takes integer factors or an output size (give --input in numbers)")
        import math

        outs = [math.floor(float(h * s)) for h, s in zip(ins, scales, strict=True)]  # torch's own formula (F.interpolate)
        exact = bool(self.value(recompute)) or bool(self.value(align_corners)) or all(
            1.0 / s == h / o for h, s, o in zip(ins, scales, outs, strict=True) if o)
        if not exact:
            raise self.fail(node, f"scale_factor {scale!r} on {shape_str(shape)} gives {shape_str((shape[0], *outs))} (floor(in·scale)) "
                            f"sampled in steps of 1/{scale!r}, where a size samples in steps of in/out: the spec's upsample takes integer "
                            "factors or an output size (recompute_scale_factor=True makes the two the same)")
        where = str(node.target) if node.op == "call_module" else node.name
        self.notes.append(f"{where} upsamples by {scale!r}: written as torch's output size {outs}, floor(in·scale) (the spec's factors are integers)")
        return {"size": outs}

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
            if contains(v, lambda x: isinstance(x, TensorRef | Batch | Pieces | Unusable)):
                raise self.unsupported(node, f"argument {k!r} depends on tensor values or the batch size")
            if v is None and k in ("stride",):
                continue
            if k == "stride" and isinstance(v, list | tuple) and not v:
                continue  # torch's stride=[] means "the kernel size"
            try:
                out[k] = field_value(cls, k, v)
            except SpecError as e:
                raise self.fail(node, e.message) from None
        return out


def spelled(name: str) -> str:
    """A registered function name as a spec's ``function`` field writes it: ``torch.nn.functional.relu`` is ``F.relu``."""
    return "F." + name.removeprefix("torch.nn.functional.") if name.startswith("torch.nn.functional.") else name


def counted_apart(layer: Layer, ins: list[tuple[Dim, ...]], out: tuple[Dim, ...], function: str) -> bool:
    """True when a peer convention that counts modules (thop, ptflops) counts ``layer`` computed by ``function``
    otherwise than as its module (a count, or a refusal): then the spec must say how the model computes it."""
    from ..conventions import CONVENTIONS

    ops = layer.ops(ins, out)

    def outcome(conv: Any, fn: str | None) -> Any:
        try:
            return conv.macs(ops, layer.kind, fn)
        except SpecError:
            return "refused"

    return any(outcome(c, None) != outcome(c, function) for c in CONVENTIONS.values() if c.functions is not None)


def _truth(v: Any) -> bool | None:
    """The value of a Python test of sizes: a bool (sympy's true and false too), or None when it
    is not known (a symbolic ``s <= 1024``, tensor values)."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v != 0
    if is_symbolic(v):
        import sympy

        return True if v is sympy.true else False if v is sympy.false else None
    return None


def contains(v: Any, pred: Callable[[Any], bool]) -> bool:
    if pred(v):
        return True
    if isinstance(v, list | tuple):
        return any(contains(x, pred) for x in v)
    return False


def describe(v: Any) -> str:
    if isinstance(v, TensorRef):
        return f"the tensor {v.name!r}"
    if isinstance(v, Pieces):
        return "the tuple of torch.chunk (index it)"
    if isinstance(v, Grouped):
        return f"a view of {v.src!r} with its channels split into {v.groups} groups"
    if v is BATCH:
        return "the batch size"
    if isinstance(v, Unusable):
        return f"a value archcalc cannot follow ({v.why})"
    if isinstance(v, Attr):
        return f"the {'parameter' if v.parameter else 'buffer'} {v.target!r}"
    if isinstance(v, Moved):
        return f"a permute of {v.src!r} that moves the batch axis (index it, or unbind it, to bring the batch axis back)"
    if isinstance(v, NewAxis):
        return (f"{v.src!r} with a new axis (x[:, :, None], x.unsqueeze(2); archcalc reads it only as repeat_kv's first step, expanded "
                "along that axis)")
    if isinstance(v, Repeated):
        how = ", expanded along a new axis (not yet reshaped)" if v.expanded else ""
        return (f"{v.src!r} with each entry of axis {v.axis + 1} repeated {v.times} times{how} (repeat_kv, repeat_interleave): archcalc "
                "reads such a repeat only as the k and v of F.scaled_dot_product_attention, repeated along the heads to q's (grouped-query "
                "attention)")
    if isinstance(v, Expanded):
        return f"{v.src!r} of shape {_dims_text(v.src_shape)} expanded to {_dims_text(v.shape)} (node {v.call!r})"
    if isinstance(v, Unbound | Split):
        return "the pieces of an unbind or split (index them)"
    if isinstance(v, Refused):
        return "the value of a refused node"
    if isinstance(v, Positions):
        return f"the positions torch.arange(0, {v.length})"
    if isinstance(v, list | tuple):
        return f"a {type(v).__name__} of {len(v)}"
    return f"the constant {v!r}"


def _dims_text(per_sample: Sequence[Any]) -> str:
    return "(" + ", ".join(str(d) for d in (BATCH, *per_sample)) + ")"


def spec_dim(v: Dim) -> Any:
    """A computed size as a spec value: an int, or an expression string the spec parser reads."""
    i = as_int(v)
    if i is not None:
        return i
    text = str(v)
    check_expr(text)
    return text


def implicit_softmax_dim(shape: tuple[Dim, ...]) -> int:
    """torch's ``_get_softmax_dim`` for ``dim=None`` (the rank counts the batch axis)."""
    return 0 if len(shape) + 1 in (0, 1, 3) else 1


# ----- public API ---------------------------------------------------------------------------------
MAX_RETRACES = 64


def import_graph(module: nn.Module, dims: tuple[Dim, ...], output_key: str | None = None, training: bool = False) -> Importer:
    """Trace ``module`` and import the graph, tracing again while a Python test of a traced value
    went the way this input does not (each time with that test, the first wrong one, turned)."""
    decisions: list[bool] = []
    for _ in range(MAX_RETRACES):
        imp = Importer(module, dims, _preferred_names(module), output_key, training=training)
        try:
            graph = trace(module, training=training, decisions=decisions, dims=dims)
            problems = idioms.rewrite(graph, module)  # an inline rotary embedding is one layer
            if problems:
                raise SpecError(f"{problems[0]}; {idioms.READ}", field="factory")
            imp.run(graph)
        except WrongBranch as e:
            decisions = [*decisions[: e.index], *[True] * (e.index - len(decisions)), not _decision(decisions, e.index)]
            continue
        return imp
    raise SpecError(f"{type(module).__name__} takes more than {MAX_RETRACES} Python branches on sizes: archcalc gave up following them")


def _decision(decisions: Sequence[bool], i: int) -> bool:
    return decisions[i] if i < len(decisions) else True


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


def _layer_signature(layer: Mapping[str, Any]) -> tuple[str, str]:
    return layer["type"], json.dumps({k: v for k, v in layer.items() if k not in ("name", "inputs")}, sort_keys=True)


def _with_training_heads(module: nn.Module, dims: tuple[Dim, ...], imp: Importer, output_key: str | None) -> Importer:
    """The import with the auxiliary heads an eval forward skips (GoogLeNet's aux1/aux2, Inception
    v3's AuxLogits), marked ``training_only``, when the model holds parameters the eval trace never
    used and a training-mode trace returns them as extra outputs; else the eval import unchanged."""
    try:
        timp = import_graph(module, dims, output_key, training=True)
    except SpecError:
        return imp
    if not timp.aux_outputs:
        return imp
    main = _ancestors(timp.layers, timp.layers[-1]["name"])
    prev, prev_main = INPUT, INPUT
    for layer in timp.layers:  # a layer without inputs reads the last layer that is not training-only: say them
        inputs = list(layer.get("inputs", [prev]))
        layer.pop("inputs", None)
        if layer["name"] not in main:
            layer["training_only"] = True
        if layer["name"] not in main or inputs != [prev_main]:
            layer["inputs"] = inputs
            layer.update({k: layer.pop(k) for k in [k for k in layer if k not in ("name", "type", "inputs")]})  # inputs after name, type
        if layer["name"] in main:
            prev_main = layer["name"]
        prev = layer["name"]
    inference = [_layer_signature(d) for d in timp.layers if not d.get("training_only")]
    if inference != [_layer_signature(d) for d in imp.layers]:
        return imp  # the training-mode graph differs elsewhere too: keep the eval import
    timp.notes.append("auxiliary heads that only a training forward runs are marked training_only")
    return timp


def _ancestors(layers: Sequence[Mapping[str, Any]], last: str) -> set[str]:
    """Names of ``last`` and every layer it depends on (a layer without ``inputs`` reads the one before)."""
    inputs: dict[str, list[str]] = {}
    prev = INPUT
    for d in layers:
        inputs[d["name"]] = list(d.get("inputs", [prev]))
        prev = d["name"]
    seen, todo = set(), [last]
    while todo:
        n = todo.pop()
        if n in seen or n == INPUT:
            continue
        seen.add(n)
        todo.extend(inputs.get(n, []))
    return seen


def spec_from_module(module: nn.Module, input_shape: Sequence[int | str] | str, name: str | None = None,
                     output_key: str | None = None) -> dict[str, Any]:
    """The spec (JSON-ready dict, accepted by :func:`archcalc.spec.parse_spec`) of ``module``.

    ``input_shape`` is the per-sample input (C, H, W), no batch axis: a sequence or ``"3,224,224"``.
    ``output_key``: for a model that returns a dict, the key of the spec's output (default: the
    only tensor-valued key).
    Raises :class:`SpecError` for a model fx cannot trace or a node archcalc has no layer for.
    """
    from torch import nn

    from ..graph import compile_spec
    from ..passes import shapes
    from ..spec import parse_spec

    if not isinstance(module, nn.Module):
        raise SpecError(f"expected a torch.nn.Module, got {type(module).__name__}", field="factory")
    raw, dims = _input_dims(input_shape)
    held = set(vars(module))
    try:
        imp = import_graph(module, dims, output_key)
        if any(id(p) not in imp.used_params for p in module.parameters()):
            imp = _with_training_heads(module, dims, imp, output_key)
    finally:  # fx keeps each constant tensor of a trace (a causal mask sliced from a buffer) on the model: not left there
        for k in set(vars(module)) - held:
            if k.startswith("_tensor_constant"):
                delattr(module, k)
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


