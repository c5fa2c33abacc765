"""Idioms: patterns of several torch calls that are one spec layer, found in a traced graph and
replaced there by one call before the importer reads it.

The one idiom so far is the rotary position embedding written inline, as Hugging Face's
``modeling_llama`` (``apply_rotary_pos_emb``), GPT-NeoX and lit-gpt write it::

    def rotate_half(x):
        x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
        return torch.cat((-x2, x1), dim=-1)

    q = q * cos + rotate_half(q) * sin     # cos, sin = emb.cos(), emb.sin() of one angle table

Read call by call it is a dozen layers (slices, a negation, a concatenation, two products, a sum,
and the table: arange, outer, cos, sin) and a buffer, which a spec cannot hold (it has no
constant tensors).  It is one ``rotary`` layer (RoFormer, Su et al. 2021, eq. 34), whose torch
module (:class:`archcalc.torch.extra_modules.Rotary`) is this very code.  The match is
structural and strict: ``x * C + rotate_half(x) * S`` with the halves of ``x``'s last axis, C and
S reached from ``cos(E)`` and ``sin(E)`` of one table E that depends on no tensor value of the
input (only on its sizes, buffers and constants).  The base of the angles is read from the table's
frequencies, ``1 / base ** (arange(0, d, 2) / d)``: a buffer of those values, or that expression
in ``forward``.  Anything else is left alone (the importer then reads the calls one by one and
refuses the buffer), so an unusual variant is refused, never imported as something else.

Grouped-query attention's repeat of k and v to every query head (Hugging Face's ``repeat_kv``,
``torch.repeat_interleave(k, n, dim=1)``) is read otherwise: whether it is that repeat depends on the
sizes, which the walk knows and the graph does not, so its handlers (``ops/shape.py``) carry it as a
value, :class:`archcalc.torch.importer.Repeated`, to the sdpa that reads it as ``enable_gqa``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import fx, nn


READ = "archcalc imports the rotary embeddings whose angles are p / base^(2i/d)"
"""What an import refused for a rotary embedding it could not read is told."""


def rotary_embedding(x: Any, base: int) -> Any:
    """What an inline rotary embedding is replaced by in the traced graph (never called: the
    importer reads the node; :class:`archcalc.torch.extra_modules.Rotary` is its module)."""
    from .extra_modules import Rotary

    return Rotary(base)(x)


_METADATA = frozenset({"shape", "dtype", "device", "ndim", "is_cuda"})


def _is_call(node: Any, functions: tuple[Any, ...], methods: tuple[str, ...]) -> bool:
    from torch import fx

    if not isinstance(node, fx.Node):
        return False
    if node.op == "call_function":
        return any(node.target is f for f in functions)
    return node.op == "call_method" and node.target in methods


def _nodes_in(arg: Any) -> Iterator[Any]:
    """The fx nodes in a node's arguments, in order (fx's own walk: tuples, lists, dicts, slices)."""
    from torch import fx

    found: list[Any] = []
    fx.node.map_arg(arg, found.append)
    yield from found


def _metadata(n: Any) -> bool:
    """A buffer or parameter, or a size / dtype / device read off a tensor (not its values)."""
    if n.op == "get_attr" or (n.op == "call_method" and n.target in ("size", "dim")):
        return True
    return bool(n.op == "call_function" and n.target is getattr and len(n.args) > 1 and n.args[1] in _METADATA)


def _data_free(node: Any, memo: dict[Any, bool]) -> bool:
    """Whether ``node``'s value depends on no tensor value of the model's input: only on its
    sizes (``x.shape``, ``x.size()``), buffers, parameters and constants.  (A walk with its own
    stack: the path back to the input can be thousands of calls long.)"""
    stack = [node]
    while stack:
        n = stack[-1]
        if n in memo:
            stack.pop()
            continue
        if n.op == "placeholder":
            memo[n] = bool(n.args)  # an argument fixed to its default is a constant
        elif _metadata(n):
            memo[n] = True
        else:
            deps = list(_nodes_in((n.args, n.kwargs)))
            waiting = [d for d in deps if d not in memo]
            if waiting:
                stack.extend(waiting)
                continue
            memo[n] = all(memo[d] for d in deps)
        stack.pop()
    return memo[node]


def _halves(a: Any, b: Any) -> Any:
    """``x`` when ``a`` is ``x[..., :h]`` and ``b`` is ``x[..., h:]`` (the same h: a node or an
    int), else None.  ``x.chunk(2, dim=-1)``'s two pieces too."""
    if _is_call(a, (operator.getitem,), ()) and _is_call(b, (operator.getitem,), ()):
        x, ia = a.args
        y, ib = b.args
        if x is not y or not isinstance(ia, tuple) or not isinstance(ib, tuple) or len(ia) != 2 or len(ib) != 2:
            return None
        if ia[0] is Ellipsis and ib[0] is Ellipsis and isinstance(ia[1], slice) and isinstance(ib[1], slice):
            sa, sb = ia[1], ib[1]
            if sa.start in (None, 0) and sa.step is None and sb.stop is None and sb.step is None and sa.stop is not None and _same(sa.stop, sb.start):
                return x
    return None


def _same(a: Any, b: Any, depth: int = 0) -> bool:
    """Whether two arguments compute the same value: the same node, equal constants, or calls of
    the same function on the same arguments (``x.shape[-1] // 2`` written twice is two nodes)."""
    from torch import fx

    if a is b:
        return True
    if isinstance(a, fx.Node) and isinstance(b, fx.Node):
        return (
            depth < 8 and a.op == b.op and a.target == b.target and a.op in ("call_function", "call_method")
            and len(a.args) == len(b.args) and a.kwargs == b.kwargs
            and all(_same(x, y, depth + 1) for x, y in zip(a.args, b.args, strict=True))
        )
    if isinstance(a, fx.Node) or isinstance(b, fx.Node):
        return False
    return type(a) is type(b) and bool(a == b)


def _pieces(a: Any, b: Any) -> Any:
    """``x`` when ``a``, ``b`` are pieces 0 and 1 of ``x.chunk(2, dim=-1)`` / ``torch.chunk(x, 2, -1)``."""
    if not (_is_call(a, (operator.getitem,), ()) and _is_call(b, (operator.getitem,), ())):
        return None
    ca, ia = a.args
    cb, ib = b.args
    if ca is not cb or (ia, ib) != (0, 1):
        return None
    import torch

    if _is_call(ca, (torch.chunk,), ("chunk",)):
        args = [*ca.args, *ca.kwargs.values()]
        if len(args) == 3 and args[1] == 2 and args[2] in (-1,):
            return args[0]
    return None


def _rotate_half_of(node: Any) -> Any:
    """``x`` when ``node`` is ``torch.cat((-x2, x1), dim=-1)`` of the halves x1, x2 of x."""
    import torch

    if not _is_call(node, (torch.cat, torch.concat), ()):
        return None
    args = [*node.args, *node.kwargs.values()]
    if len(args) != 2 or args[1] != -1 or not isinstance(args[0], list | tuple) or len(args[0]) != 2:
        return None
    neg, x1 = args[0]
    if not _is_call(neg, (operator.neg, torch.neg), ("neg",)) or len(neg.args) != 1:
        return None
    x2 = neg.args[0]
    return _halves(x1, x2) or _pieces(x1, x2)


_PASS_THROUGH = ("unsqueeze", "to", "type_as", "float", "half", "bfloat16", "type", "view", "reshape", "contiguous", "__getitem__")


def _trig_source(node: Any, kind: str, memo: dict[Any, bool]) -> Any:
    """The angle table E when ``node`` is ``cos(E)`` (``kind``) reached through casts, unsqueezes
    and indexing by sizes (``cos[:T]``, ``cos[None, None]``, ``cos.to(x.dtype)``), E free of data."""
    import torch

    fn = {"cos": torch.cos, "sin": torch.sin}[kind]
    for _ in range(16):
        if _is_call(node, (fn,), (kind,)):
            table = node.args[0]
            return table if _data_free(table, memo) else None
        if _is_call(node, (operator.getitem,), _PASS_THROUGH) or _is_call(node, (torch.unsqueeze,), ()):
            rest = [*node.args[1:], *node.kwargs.values()]
            if not all(_data_free(a, memo) for a in _nodes_in(rest)):
                return None
            node = node.args[0]
            continue
        return None
    return None


def _products(add: Any) -> tuple[Any, Any] | None:
    import torch

    if not _is_call(add, (operator.add, torch.add), ("add",)) or len(add.args) != 2 or add.kwargs:
        return None
    m1, m2 = add.args
    if not all(_is_call(m, (operator.mul, torch.mul), ("mul",)) and len(m.args) == 2 and not m.kwargs for m in (m1, m2)):
        return None
    return m1, m2


def _match(add: Any, memo: dict[Any, bool]) -> tuple[Any, Any] | None:
    """(x, the angle table E) when ``add`` is ``x * cos(E) + rotate_half(x) * sin(E)``, operands of
    the products and of the sum in either order."""
    found = _products(add)
    if found is None:
        return None
    for m_cos, m_sin in (found, found[::-1]):
        for x, c in (m_cos.args, m_cos.args[::-1]):
            for r, s in (m_sin.args, m_sin.args[::-1]):
                if _rotate_half_of(r) is not x:
                    continue
                table = _trig_source(c, "cos", memo)
                if table is not None and table is _trig_source(s, "sin", memo):
                    return x, table
    return None


class RotaryBaseUnknown(ValueError):
    """An inline rotary embedding whose angle table is not p / base^(2i/d)."""


def _base(table: Any, root: nn.Module) -> int:
    """The base of the angles of ``table`` (an fx node): the frequencies it multiplies the
    positions by are ``1 / base ** (arange(0, d, 2) / d)``, read from a buffer or from that
    expression in forward (``base ** (...)``); an exact integer, else :class:`RotaryBaseUnknown`."""
    import torch

    seen: set[Any] = set()
    stack = [table]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node.op == "get_attr":
            value = _attr(root, str(node.target))
            if isinstance(value, torch.Tensor) and value.dim() == 1 and value.numel() >= 2 and value.is_floating_point():
                if not value.is_meta:
                    return _base_of_frequencies(value)
                # on the meta device the buffer holds no values: the module that owns it may say its base
                owner = _attr(root, str(node.target).rpartition(".")[0]) if "." in str(node.target) else root
                for name in _BASE_NAMES:
                    b = getattr(owner, name, None)
                    if isinstance(b, int | float) and not isinstance(b, bool):
                        return _whole_base(float(b))
                raise RotaryBaseUnknown(
                    f"its frequencies are the buffer {node.target!r}, on the meta device (no values), and its module has no "
                    f"{' / '.join(_BASE_NAMES)} attribute: build the model on the CPU, or give that module the base"
                )
        if node.op == "call_function" and node.target in (operator.pow, torch.pow) and isinstance(node.args[0], int | float):
            return _forward_base(node, node.args[0], node.args[1])
        stack.extend(_nodes_in((node.args, node.kwargs)))
    raise RotaryBaseUnknown("its frequencies are neither a buffer nor base ** (arange(0, d, 2) / d) in forward")


_CASTS = ("float", "to", "type", "double", "half", "bfloat16")


def _through_casts(node: Any) -> Any:
    while _is_call(node, (), _CASTS):
        node = node.args[0]
    return node


def _forward_base(pw: Any, base: float, exponent: Any) -> int:
    """The base of frequencies written in forward, read only from the exact form
    ``1.0 / (base ** (arange(0, d, 2) / d))`` (casts allowed), whose inverse nothing rescales
    before the angles are made (an outer product or a product with the positions): a wider
    denominator (base ** (i / 4d): another base) or a later ``/ 8`` (scaled frequencies) is refused,
    never read as this base."""
    import torch

    refused = RotaryBaseUnknown("its frequencies are computed in forward in a form other than 1 / base ** (arange(0, d, 2) / d)")
    ratio = _through_casts(exponent)
    if not _is_call(ratio, (operator.truediv, torch.div, torch.true_divide), ("div", "__truediv__")) or len(ratio.args) != 2:
        raise refused
    steps, d = _through_casts(ratio.args[0]), ratio.args[1]
    if not isinstance(d, int) or not _is_call(steps, (torch.arange,), ()):
        raise refused
    bounds = list(steps.args)
    if bounds[:1] == [0]:
        bounds = bounds[1:]
    if bounds != [d, 2] and not (bounds == [d] and steps.kwargs.get("step") == 2):
        raise refused
    users = list(pw.users)
    if len(users) != 1:
        raise refused
    inverse: Any = users[0]
    if not (_is_call(inverse, (operator.truediv,), ()) and inverse.args[0] in (1, 1.0) and inverse.args[1] is pw):
        raise refused
    after = [_through_cast_users(u) for u in inverse.users]
    if not after or not all(_is_call(u, (torch.outer, torch.ger, operator.mul, torch.mul, torch.einsum, operator.getitem), ("mul", "outer"))
                            for u in after):
        raise refused
    return _whole_base(float(base))


def _through_cast_users(node: Any) -> Any:
    while _is_call(node, (), _CASTS) and len(node.users) == 1:
        node = next(iter(node.users))
    return node


_BASE_NAMES = ("base", "rope_theta", "theta")
"""Attributes that hold the base on the module owning the frequencies (Hugging Face: ``rope_theta``)."""


def _attr(root: nn.Module, target: str) -> Any:
    obj: Any = root
    for part in target.split("."):
        obj = getattr(obj, part, None)
    return obj


def _base_of_frequencies(freq: Any) -> int:
    """``base`` from the frequencies ``base ** -(2i/d)``, i = 0 .. d/2 - 1 (d = 2 * len), checked on every one."""
    values = [float(v) for v in freq.double().tolist()]
    d = 2 * len(values)
    if values[0] != 1.0 or not 0 < values[1] < 1:
        raise RotaryBaseUnknown(f"its frequencies start {values[:2]}, not 1, base^(-2/{d})")
    base = _whole_base(values[1] ** (-d / 2))
    for i, v in enumerate(values):
        want = base ** (-2 * i / d)
        if not math.isclose(v, want, rel_tol=1e-4):
            raise RotaryBaseUnknown(f"frequency {i} is {v:.6g}, not {base}^(-{2 * i}/{d}) = {want:.6g} (scaled or interpolated positions?)")
    return base


def _whole_base(b: float) -> int:
    n = round(b)
    if n < 2 or not math.isclose(b, n, rel_tol=1e-3):
        raise RotaryBaseUnknown(f"its base is {b:.6g}, not a whole number")
    return n


FREQUENCY_BUFFERS = ("inv_freq",)
"""Buffer names of rotary frequencies a module holds (Hugging Face's ``LlamaRotaryEmbedding``, GPT-NeoX, lit-gpt's LLaMA)."""


def held_bases(model: nn.Module) -> dict[str, int | str]:
    """The rotary bases a model exposes, by module name (verify compares a ``rotary`` layer's base
    with them): a module holding a frequencies buffer (:data:`FREQUENCY_BUFFERS`) has the base its
    values give (``1 / base ** (arange(0, d, 2) / d)``, read as import reads them), or on the meta
    device (no values) its ``base`` / ``rope_theta`` / ``theta`` attribute or its ``config.rope_theta``;
    a module without such a buffer, its ``rope_theta``.  Where the base cannot be read, why (a string)."""
    import torch

    out: dict[str, int | str] = {}
    for name, module in model.named_modules():
        buffers = dict(module.named_buffers(recurse=False))
        freq = next((b for n, b in buffers.items() if n in FREQUENCY_BUFFERS), None)
        stated = next((v for v in (*(getattr(module, n, None) for n in _BASE_NAMES), getattr(getattr(module, "config", None), "rope_theta", None))
                       if isinstance(v, int | float) and not isinstance(v, bool)), None)
        if isinstance(freq, torch.Tensor) and freq.dim() == 1 and freq.numel() >= 2 and freq.is_floating_point():
            try:
                if not freq.is_meta:
                    out[name] = _base_of_frequencies(freq)
                elif stated is not None:
                    out[name] = _whole_base(float(stated))
                else:
                    out[name] = "its frequencies are on the meta device (no values) and it has no base / rope_theta / theta attribute"
            except RotaryBaseUnknown as e:
                out[name] = str(e)
        elif isinstance(getattr(module, "rope_theta", None), int | float) and not isinstance(module.rope_theta, bool):
            try:
                out[name] = _whole_base(float(module.rope_theta))
            except RotaryBaseUnknown as e:
                out[name] = str(e)
    return out


def rewrite(graph: fx.Graph, root: nn.Module) -> list[str]:
    """Replace every inline rotary embedding of ``graph`` by one call of :func:`rotary_embedding`;
    the calls that made it and nothing else reads are removed.  Returns why a match could not be
    replaced, per match (its base unreadable), for the importer's error."""
    memo: dict[Any, bool] = {}
    problems: list[str] = []
    for add in list(graph.nodes):
        found = _match(add, memo)
        if found is None:
            continue
        x, table = found
        try:
            base = _base(table, root)
        except RotaryBaseUnknown as e:
            problems.append(f"{add.name}: an inline rotary embedding, but {e}")
            continue
        with graph.inserting_before(add):
            call = graph.call_function(rotary_embedding, (x, base))
        add.replace_all_uses_with(call)
        _erase_unused(add, graph)
    return problems


def _erase_unused(node: Any, graph: fx.Graph) -> None:
    """Erase ``node`` and, transitively, what only it read (placeholders and buffers stay)."""
    stack = [node]
    erased: set[Any] = set()
    while stack:
        n = stack.pop()
        if n in erased or n.users or n.op in ("placeholder", "output", "get_attr"):
            continue
        erased.add(n)
        inputs = list(_nodes_in((n.args, n.kwargs)))
        graph.erase_node(n)
        stack.extend(inputs)
