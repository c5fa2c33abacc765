"""Worked derivations: every quantity of one layer, formula then numbers, the way lecture notes write it.

Nothing here restates a formula.  The layer's own methods run twice more: once on sympy symbols,
for the general formula (``floor((H_in + 2*P - K)/S) + 1``), and once on traced integers (see
:mod:`archcalc.trace`), which give the arithmetic with the numbers put in
(``(227 + 2 + 2 − 11) // 4 + 1 = 56``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .axis_roles import Roles, axis_labels, axis_roles, axis_symbols, known, sequence_roles
from .conventions import Convention, dtype_bytes, get_convention
from .dims import Dim, as_int, dim_text, human_text, is_symbolic, simplify
from .errors import escape_control
from .graph import Graph, node_table
from .layers.base import GENERAL_FORMULA, Layer, Partition, Shape, Window
from .passes.receptive import CAUSAL, AxisRF, widest_output
from .render import _shape, units
from .report import Report
from .trace import NAMED, Traced, leaf, text, untrace

# symbol names for a layer's dimension fields in the general formula
FIELD_SYMBOLS = {
    "out_channels": "C_out",
    "kernel_size": "K",
    "stride": "S",
    "padding": "P",
    "dilation": "D",
    "groups": "G",
    "out_features": "F_out",
    "output_size": "O",
}
# a field that means something else in one layer type: LRN's size is the n neighbouring channels of
# Krizhevsky et al.'s formula; a crop's or an upsample's size is a size, per spatial axis
KIND_SYMBOLS = {"localresponsenorm": {"size": "n"}}
SPATIAL_FIELDS = {*FIELD_SYMBOLS, "size", "scale_factor"}  # one entry per spatial axis when a list: K_h, K_w
# fields left as numbers when they hold their neutral value (they would only add noise)
NEUTRAL = {"dilation": 1, "groups": 1, "padding": 0}
AXES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


@dataclass
class Step:
    quantity: str
    general: str | None  # the formula in symbols (sympy syntax), when it is worth showing
    worked: str  # the arithmetic with the numbers substituted
    result: str  # the value with its unit


@dataclass
class Explanation:
    layer: str
    type: str
    inputs: list[str]
    input_shapes: list[tuple[Any, ...]]
    output_shape: tuple[Any, ...]
    convention: str
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    network: str | None = None  # the spec's display name (its title), named in the header when it has one


def _leafed(layer: Layer) -> Layer:
    """The layer with its numeric dimension fields as traced leaves."""
    updates: dict[str, Any] = {}
    for name in layer._dim_fields:
        v = layer.__dict__[name]
        if isinstance(v, int) and not isinstance(v, bool):
            updates[name] = leaf(v)
        elif isinstance(v, list):  # (a -1 in a shape is reshape's "the rest", not a size: it stays an int)
            updates[name] = [leaf(x) if isinstance(x, int) and not isinstance(x, bool) and x >= 0 else x for x in v]
    return layer.model_copy(update=updates) if updates else layer


def _symbolic(layer: Layer) -> Layer:
    """The layer with its dimension fields as symbols (neutral values kept as numbers)."""
    from .dims import symbol

    updates: dict[str, Any] = {}
    for name in layer._dim_fields:
        v = layer.__dict__[name]
        base = KIND_SYMBOLS.get(layer.kind, {}).get(name) or FIELD_SYMBOLS.get(name, name)
        if isinstance(v, int) and not isinstance(v, bool) and NEUTRAL.get(name) != v:
            updates[name] = symbol(base)
        elif isinstance(v, list):  # (a -1 in a shape is reshape's "the rest": it stays -1, and the formula says what the rest is)
            names = _list_names(name, base, len(v))
            updates[name] = [symbol(n) if isinstance(x, int) and not isinstance(x, bool) and x >= 0 else x for x, n in zip(v, names, strict=True)]
    return layer.model_copy(update=updates) if updates else layer


def _list_names(field: str, base: str, n: int) -> list[str]:
    """Symbols for a list field's entries: per spatial axis for a window's fields (``K_h, K_w``),
    by position for the rest (a reshape's ``shape_0, shape_1, shape_2``: no H or W in a sequence)."""
    if field in SPATIAL_FIELDS:
        axes = AXES.get(n, ())
        if len(axes) == n:
            return [f"{base}_{a.lower()}" for a in axes]
    return [f"{base}_{i}" for i in range(n)]


def _in_symbols(
    shapes: list[Shape], roles: list[Roles | None], names: tuple[str, ...] | None = None, unify: frozenset[str] = frozenset()
) -> list[Shape]:
    """Symbols for the inputs' axes, named by what each axis holds (``C_in, H_in, W_in``; ``L_in,
    F_in`` for a token sequence); several inputs are told apart by the layer's names for them
    (``L_q, F_q`` for attention's q) or by number.  ``unify``: symbol letters whose axes of equal
    size are one symbol across the inputs (a causal mask asks whether L_q <= L_k: one L when both
    are 1024)."""
    from .dims import symbol

    out: list[Shape] = []
    seen: dict[tuple[str, str], Any] = {}
    for k, (shape, r) in enumerate(zip(shapes, roles, strict=True)):
        suffix = "_in" if len(shapes) == 1 else f"_{names[k]}" if names and k < len(names) else f"_{k + 1}"
        syms = []
        for name, d in zip(axis_symbols(r, len(shape), suffix), shape, strict=True):
            letter = name[: -len(suffix)]
            key = (letter, str(d))
            if letter in unify and key in seen:
                syms.append(seen[key])
                continue
            sym = symbol(name)
            seen.setdefault(key, sym)
            syms.append(sym)
        out.append(tuple(syms))
    return out


def _out_symbols(shape: Shape, roles: Roles | None) -> Shape:
    from .dims import symbol

    return tuple(symbol(n) for n in axis_symbols(roles, len(shape), "_out"))


def _fmt_count(v: Any) -> str:
    v = simplify(untrace(v))
    if is_symbolic(v):
        return dim_text(v)
    human = units.count(v)
    return f"{int(v):,}" + ("" if human == f"{int(v):,}" else f" ({human})")


def _fmt_bytes(v: Any) -> str:
    v = simplify(untrace(v))
    if is_symbolic(v):
        return f"{dim_text(v)} B"
    human = units.size(v)
    return f"{int(v):,} B" + ("" if human.endswith(" B") else f" = {human}")


def _term_order(terms: list[Any]) -> list[Any]:
    """Sum terms as the lecture writes them: the input size first, then what is subtracted, then
    the rest, (W_in - K + 2*P), the same for every axis (sympy's own order is alphabetical, which
    puts H_in first but W_in last)."""

    def key(t: Any) -> tuple[bool, bool]:
        has_input = any(re.search(r"_(in|\d+|[qkvab])$", str(x)) for x in t.free_symbols)  # (C_in; L_q, F_k of attention's inputs)
        return not has_input, not t.could_extract_minus_sign()

    return sorted(terms, key=key)


def _formula(expr: Any, follow: Any = None) -> str:
    """A general formula as text (sympy syntax), its sums in lecture order.

    ``follow``: the same quantity computed on named traced values (:func:`_named`), whose text is
    the worked line with symbol names for the numbers (``C_out·H_out·W_out·(C_in·(K·K))``): the
    formula then lists its factors and terms in that order (``C_out*H_out*W_out*C_in*K**2``), so
    that the worked numbers below it read in the formula's order, whatever the layer's code."""
    from sympy.printing.precedence import precedence
    from sympy.printing.str import StrPrinter

    positions = _positions(follow)
    last = max(positions.values(), default=0)
    trace = follow.text if isinstance(follow, Traced) else ""

    def first(e: Any) -> int:
        return min((positions.get(x.name, last + 1) for x in e.free_symbols), default=last + 2)

    class Printer(StrPrinter):  # type: ignore[misc]  # sympy is untyped
        def _as_ordered_terms(self, expr: Any, order: Any = None) -> list[Any]:
            terms = _term_order(super()._as_ordered_terms(expr, order))
            return sorted(terms, key=first) if positions else terms

        def _print_Mul(self, expr: Any) -> str:
            coeff, rest = expr.as_coeff_Mul()
            factors = rest.as_ordered_factors() if rest != 1 else []
            plain = not positions or not coeff.is_Integer or any(f.is_Pow and f.exp.is_negative for f in factors)
            if plain or len(factors) + (coeff not in (1, -1)) < 2:  # (a fraction, or nothing to order)
                return str(super()._print_Mul(expr))
            texts = [(first(f), self.parenthesize(f, precedence(expr), strict=False)) for f in factors]
            if coeff not in (1, -1):  # a coefficient where the trace has it (elements·4 B), else first
                at = re.search(rf"(?<![\w.]){abs(int(coeff))}(?![\w.])", trace)
                texts.append((at.start() if at else -1, str(abs(int(coeff)))))
            body = "*".join(t for _, t in sorted(texts, key=lambda p: p[0]))
            return f"-{body}" if coeff < 0 else body

    return str(Printer().doprint(_factored(simplify(expr))))


def _factored(expr: Any) -> Any:
    """A polynomial with halves in it (causal attention's L*(L + 1)/2 pairs, which the layer
    expands for its totals) as its factors: A*L*(L + 1)*(F_q + F_v)/2 reads as the worked line does."""
    import sympy

    if not isinstance(expr, sympy.Add) or all(t.as_coeff_Mul()[0].is_Integer for t in expr.args):
        return expr
    factored = sympy.factor(expr)
    return factored if sympy.count_ops(factored) < sympy.count_ops(expr) else expr


def _positions(follow: Any) -> dict[str, int]:
    """Symbol name -> where it first appears in a named trace's text (empty without one)."""
    if not isinstance(follow, Traced):
        return {}
    order: dict[str, int] = {}
    for m in re.finditer(r"[A-Za-z_][A-Za-z0-9_]*", follow.text):
        order.setdefault(m.group(), m.start())
    return order


def _named(layer: Layer) -> Layer:
    """The layer with its dimension fields as traced values that print as their symbols (the names
    :func:`_symbolic` gives them): run through the layer's formula, they spell the worked line's
    order in names (see :func:`_formula`)."""
    updates: dict[str, Any] = {}
    for name in layer._dim_fields:
        v = layer.__dict__[name]
        base = KIND_SYMBOLS.get(layer.kind, {}).get(name) or FIELD_SYMBOLS.get(name, name)
        if isinstance(v, int) and not isinstance(v, bool):
            updates[name] = leaf(v) if NEUTRAL.get(name) == v else Traced(v, base, NAMED)
        elif isinstance(v, list):
            updates[name] = [
                Traced(x, n, NAMED) if isinstance(x, int) and not isinstance(x, bool) and x >= 0 else x
                for x, n in zip(v, _list_names(name, base, len(v)), strict=True)
            ]
    return layer.model_copy(update=updates) if updates else layer


def _named_shape(shape: Shape, names: Shape) -> tuple[Any, ...]:
    return tuple(Traced(d, str(n), NAMED) if isinstance(d, int) else d for d, n in zip(shape, names, strict=True))


def _general(fn: Any) -> str | None:
    try:
        return str(fn())
    except Exception:  # a formula that cannot run on symbols (ceil-mode rule, adaptive windows)
        return None


def _worked(v: Any) -> str:
    t = text(v)
    return t if t != str(untrace(v)) else ""


def explain_layer(G: Graph, name: str, *, convention: str | Convention = "lecture", dtype: str = "float32", batch: Dim = 1) -> Explanation:
    """Derive every quantity of layer ``name`` in an analysed graph (run the passes first)."""
    conv = convention if isinstance(convention, Convention) else get_convention(convention)
    nodes = node_table(G)
    if name not in nodes or nodes[name]["layer"] is None:
        import difflib

        from .errors import SpecError
        from .graph import INPUT

        if name == INPUT:
            first = G.graph["order"][0] if G.graph["order"] else None
            then = f": explain a layer that reads it, such as {first!r}" if first else ""
            raise SpecError(f"{INPUT!r} is the network's input ({_shape(tuple(nodes[INPUT]['shape']))}), not a layer{then}", field="LAYER")
        from .grouping import numbered_copy_hint

        hint = numbered_copy_hint(G.graph.get("repeats", {}), name)
        if hint is not None:
            raise SpecError(f"no layer or block named {name!r}: {hint}", field="LAYER")
        blocks = {s for n in nodes.values() for s in n.get("scope", ())}  # (explain takes block calls too)
        first = name.replace(".*", ".0", 1)
        if first != name and (first in nodes or first in blocks):  # transformer.h.*.attn.sdpa after --set l=12
            raise SpecError(
                f"no layer or block named {name!r}: here the repeat count is a number, so the copies are numbered: "
                f"{first!r} is the first copy's", field="LAYER"
            )
        near = difflib.get_close_matches(name, [n for n in (*nodes, *blocks) if n != INPUT], n=3)

        raise SpecError(f"no layer or block named {name!r}" + (f"; did you mean {', '.join(map(repr, near))}?" if near else ""), field="LAYER")
    node = nodes[name]
    layer: Layer = node["layer"]
    ins_num = [nodes[i]["shape"] for i in node["inputs"]]
    out_num = node["shape"]
    ex = Explanation(
        name, layer.kind, list(node["inputs"]), [tuple(simplify(d) for d in s) for s in ins_num], tuple(simplify(d) for d in out_num), conv.name
    )
    ex.network = G.graph.get("title")
    symbolic_input = any(is_symbolic(d) for s in ins_num for d in s)
    lay_t = _leafed(layer)
    ins_t = [tuple(leaf(d) if isinstance(d, int) else d for d in s) for s in ins_num]
    out_t = tuple(leaf(d) if isinstance(d, int) else d for d in out_num)
    roles = axis_roles(G)
    in_roles = [roles.get(i) for i in node["inputs"]]
    if layer.reads_sequences:  # attention's q, k, v are token sequences, however they were made (k, v from a learned table: not H_k, W_v)
        in_roles = [r if known(r, len(s)) else sequence_roles(len(s)) for r, s in zip(in_roles, ins_num, strict=True)]
    lay_s, out_s = _symbolic(layer), _out_symbols(out_num, roles.get(name))
    ins_s, unified = _runnable_symbols(lay_s, ins_num, in_roles, out_s)
    out_s = _field_named(lay_s, ins_s, out_s)
    # the same again with values that print as names: the order each formula follows
    lay_n, ins_n, out_n = _named(layer), [_named_shape(s, n) for s, n in zip(ins_num, ins_s, strict=True)], _named_shape(out_num, out_s)
    named = _try(lambda: {"out": lay_n.output_shape(ins_n), "weights": lay_n.weights(ins_n), "ops": lay_n.ops(ins_n, out_n)})

    # output shape, axis by axis
    traced_out = lay_t.output_shape(ins_t)
    flag = GENERAL_FORMULA.set(True)  # (a rule the symbols leave undecided, such as ceil mode's, gives its expression)
    try:
        general_out = _try(lambda: lay_s.output_shape(ins_s))
    finally:
        GENERAL_FORMULA.reset(flag)
    gen_axes: list[str | None] = [None] * len(out_num)
    if general_out is not None:
        named_out = named["out"] if named else [None] * len(out_num)
        gen_axes = [_formula(d, f) for d, f in zip(general_out, named_out, strict=True)]
    passthrough = {str(d) for s in ins_s for d in s}
    in_dims = {str(simplify(d)) for s in ins_num for d in s}
    for axis, (t, g) in enumerate(zip(traced_out, gen_axes, strict=True)):
        worked = _worked(t)
        changed = str(simplify(untrace(t))) not in in_dims  # e.g. a ceil-mode size of a symbolic input: no formula, but a new size
        if worked or (g is not None and g not in passthrough and g != str(untrace(t))) or (symbolic_input and changed):
            ex.steps.append(Step(f"output {axis_labels(roles.get(name), len(out_num))[axis]}", g, worked, str(simplify(untrace(t)))))

    # parameters
    weights_t = lay_t.weights(ins_t)
    if weights_t:
        weights_s = _general_dict(lambda: lay_s.weights(ins_s))
        weights_n = named["weights"] if named else {}
        total_t: Any = 0
        total_s: Any = 0
        total_n: Any = 0
        tied: dict[str, str] = dict(node.get("tied", {}))  # GPT-2's head: its weight is the token embedding's
        for wname, shape in weights_t.items():
            n = _prod(shape)
            follow = _prod(weights_n[wname]) if wname in weights_n else None
            shape_txt = "\u00d7".join(str(untrace(d)) for d in shape) or "scalar"
            g = _formula(_prod(weights_s[wname]), follow) if weights_s is not None else None
            if wname in tied:  # counted once, by its owner: 0 here, as the table and check count it
                label = f"params: {wname} ({shape_txt}), tied: counted at {tied[wname]}"
                ex.steps.append(Step(label, g, _worked(n), f"{_fmt_count(n)}, not counted here"))
                continue
            total_t = total_t + n
            total_n = total_n + follow if follow is not None and total_n is not None else None
            if weights_s is not None:
                total_s = total_s + _prod(weights_s[wname])
            ex.steps.append(Step(f"params: {wname} ({shape_txt})", g, _worked(n), _fmt_count(n)))
        if tied:
            owners = ", ".join(dict.fromkeys(tied.values()))
            ex.steps.append(Step("params", None, "", f"{_fmt_count(total_t)} (the tied weight is counted at {owners})"))
        elif len(weights_t) > 1:
            ex.steps.append(Step("params", _formula(total_s, total_n) if weights_s is not None else None, _worked(total_t), _fmt_count(total_t)))
    else:
        ex.steps.append(Step("params", None, "", "0 (no learnable tensors)"))
    if node.get("tie_note"):
        ex.notes.append(node["tie_note"])
    if node.get("training_only"):  # (the layer's own flag, or its block call's)
        ex.notes.append("training only (an auxiliary head): an eval forward does not run it; the totals leave it out unless --include-training-only")
    own = _try(lambda: layer.note(ins_num))  # what the table says with its row (learned positions, a causal mask)
    if own:
        ex.notes.append(own)
    called = conv.function_note(layer.function)  # a function call, which this peer counts apart from the module
    if called:
        ex.notes.append(called)
    buffers = layer.buffers(ins_num)
    if buffers:
        nb = sum(_prod(s) for s in buffers.values())
        ex.steps.append(
            Step("buffers (not params)", None, " + ".join(f"{k} {'×'.join(map(str, s)) or '1'}" for k, s in buffers.items()), _fmt_count(nb))
        )

    # operations, then MACs/FLOPs under the convention
    ops_t = lay_t.ops(ins_t, out_t)
    ops_s = _general_dict(lambda: lay_s.ops(ins_s, out_s))
    ops_n = dict(named["ops"]) if named else {}
    if batch != 1:
        ops_t = {k: v * batch for k, v in ops_t.items()}
        ops_n = {k: v * batch for k, v in ops_n.items()}
    for cat, v in ops_t.items():
        counted = conv.weight(cat, layer.kind, layer.function)
        g = _formula(ops_s[cat] * batch, ops_n.get(cat)) if ops_s is not None and cat in ops_s else None
        ex.steps.append(Step(f"ops: {cat}" + ("" if counted else f" (not MACs under '{conv.name}')"), g, _worked(v), _fmt_count(v)))
    if layer.input_names:  # a product of its inputs (attention): say what each count is
        from .layers.base import OP_CATEGORIES

        ex.notes += [f"{cat}: {OP_CATEGORIES[cat]}" for cat in ops_t if cat in OP_CATEGORIES]
    macs = conv.macs(ops_t, layer.kind, layer.function)
    macs_s = conv.macs({k: v * batch for k, v in ops_s.items()}, layer.kind, layer.function) if ops_s is not None else None
    if not is_symbolic(untrace(macs)) and untrace(macs) == 0:  # no "MACs 0 = 0" and "2*MACs = 2·0 = 0" lines
        ex.steps.append(Step(f"MACs ({conv.name})", None, "", "0"))
        ex.steps.append(Step("FLOPs", None, "", "0"))
    else:
        macs_n = _try(lambda: conv.macs(ops_n, layer.kind, layer.function)) if ops_n else None
        ex.steps.append(Step(f"MACs ({conv.name})", _formula(macs_s, macs_n) if macs_s is not None else None, _worked(macs), _fmt_count(macs)))
        ex.steps.append(
            Step(
                "FLOPs",
                f"{conv.flops_per_mac}*MACs",
                f"{conv.flops_per_mac}\u00b7{untrace(macs):,}" if not is_symbolic(untrace(macs)) else "",
                _fmt_count(conv.flops(untrace(macs))),
            )
        )

    # activation memory
    nbytes = dtype_bytes(dtype)
    if layer.in_place():
        storage = _try(lambda: layer.output_storage(ins_num))
        what = {
            "view": "a view of its input (the same storage), nothing new is allocated",
            "strided": "a view of its input (the same storage), nothing new is allocated",
            "reshape": "a reshape of its input, counted as a view (torch copies it where the input is not contiguous)",
            "param": "a learned tensor: counted in params, no activation",
        }.get(str(storage), "returns its input tensor (in place), nothing new is allocated")
        ex.steps.append(Step("memory", None, "", f"0 B: {what}"))
    else:
        mem = _prod(out_t) * nbytes * batch  # elements × bytes per element, as the lecture writes it (64·56·56·4 B)
        general = _formula(_prod(out_s) * nbytes * batch, _prod(out_n) * nbytes * batch) + " B"
        ex.steps.append(Step(f"memory ({dtype}, {nbytes} B per element)", general, _worked(mem) + " B" if _worked(mem) else "", _fmt_bytes(mem)))

    _explain_saved(ex, G, node, layer, ins_s, out_s, nbytes, batch, [c for _, c in _symbol_choices(lay_s, ins_num, in_roles, unified)])

    # receptive field
    before = len(ex.steps)
    _explain_rf(ex, node, nodes, layer, lay_t, ins_num)
    if node.get("rf_bound") is not None:  # an approximate field: its rules are worked, but no line may call the result exact (review s9 #12)
        ex.steps[before:] = [_not_exact(step) for step in ex.steps[before:]]
        if node.get("rf_note") and node["rf_note"] not in ex.notes:  # (which says from where)
            ex.notes.append(node["rf_note"])
    count = node.get("repeat", 1)
    if type(count) is not int or count != 1:
        n = human_text(count)
        ex.notes.append(
            f"this layer runs {n} times (one per copy of a block repeated {n} times): the values above are one copy's, "
            f"the totals count them {n} times; the receptive field is the last copy's"
        )
    if symbolic_input:
        ex.notes.append("the input has symbols: the worked lines show the general results")
    return ex


def _field_named(lay_s: Layer, ins_s: list[Shape], out_s: Shape) -> Shape:
    """The output's symbols, an axis that is one of the layer's fields by that field's symbol: a
    linear layer's output features are F_out (its out_features) whatever its input calls the axis
    (C on a channels-last map), so that its params F_out*C_in and MACs H_out*W_out*F_out*C_in agree."""
    general = _try(lambda: lay_s.output_shape(ins_s))
    if general is None or len(general) != len(out_s):
        return out_s
    given = {str(d) for s in ins_s for d in s}
    return tuple(g if getattr(g, "is_Symbol", False) and str(g) not in given else o for g, o in zip(general, out_s, strict=True))


def _runnable_symbols(lay_s: Layer, ins_num: list[Shape], in_roles: list[Roles | None], out_s: Shape) -> tuple[list[Shape], frozenset[str]]:
    """The inputs' symbols, each axis its own, unless the layer's formulas cannot run on them: then
    with the axes of one letter and equal size made one symbol, letter by letter (causal attention
    asks whether its L_q queries are at most its L_k keys: one L where both are 1024); and the
    letters so unified."""
    for unified, ins_s in _symbol_choices(lay_s, ins_num, in_roles):
        if _try(lambda ins_s=ins_s: (lay_s.output_shape(ins_s), lay_s.weights(ins_s), lay_s.ops(ins_s, out_s))) is not None:
            return ins_s, unified
    return _in_symbols(ins_num, in_roles, lay_s.input_names), frozenset()


def _symbol_choices(
    lay_s: Layer, ins_num: list[Shape], in_roles: list[Roles | None], base: frozenset[str] = frozenset()
) -> list[tuple[frozenset[str], list[Shape]]]:
    """(letters unified, the inputs' symbols): ``base`` unified (none: each axis its own); then, for
    several inputs, one more letter's equal sizes unified, letter by letter; then every letter's."""
    names = lay_s.input_names
    first = _in_symbols(ins_num, in_roles, names, base)
    if len(ins_num) < 2:
        return [(base, first)]
    letters = list(dict.fromkeys(str(d).rsplit("_", 1)[0] for s in first for d in s))
    sets = [base, *(base | {x} for x in letters if x not in base), frozenset(letters)]
    return [(u, _in_symbols(ins_num, in_roles, names, u)) for u in dict.fromkeys(sets)]


def _explain_saved(
    ex: Explanation, G: Graph, node: dict[str, Any], layer: Layer, ins_s: list[Shape], out_s: Shape, nbytes: int, batch: Dim,
    choices: list[list[Shape]] | None = None,
) -> None:
    """What autograd keeps for this layer's backward in training (``archcalc memory``), and why."""
    from .passes import saved_tensors

    if "saved" not in node:
        saved_tensors(G, nbytes, 1)
    kept = node["saved"]
    if kept is None:
        ex.steps.append(Step("saved for backward", None, "", "unknown: what its backward saves is not worked out for this layer type"))
        return
    if not kept:
        why = "no input requires grad and it has no parameters: no autograd node" if not node["grad"] else "nothing: its backward needs only sizes"
        ex.steps.append(Step("saved for backward", None, "", f"0 B ({why})"))
        return
    # the fused kernel's, where the pass above chose it for these numbers (on symbols it may not
    # be able to tell: flash needs E = Ev, so its inputs' symbols are unified until it can)
    fused = _try(lambda: layer.saved_fused(node["in_shapes"], node["shape"])) is not None
    if fused:
        ins_s = next((c for c in choices or [ins_s] if _try(lambda c=c: layer.saved_fused(c, out_s)) is not None), ins_s)
    kept_by = layer.saved_fused if fused else layer.saved
    general = _general_dict(lambda: {s.tensor + (str(s.input) if s.tensor == "input" else ""): s for s in (kept_by(ins_s, out_s) or [])})
    for st in kept:
        s = st.saved
        label = f"saved: {s.tensor}" + (f" {s.input}" if s.tensor == "input" and len(node["inputs"]) > 1 else "")
        if s.dtype != "act":  # (an embedding's input: its int64 token ids)
            label += f" ({s.dtype})"
        g = None
        copy = re.fullmatch(r"copy of input (\d+)", s.tensor)  # (a matmul's input copied for bmm: the layer's input, laid out anew)
        key = f"input{copy.group(1)}" if copy else s.tensor + (str(s.input) if s.tensor == "input" else "")
        sym = general.get(key) if general else None
        width = {"float32": 4, "int64": 8, "bool": 1}.get(s.dtype, nbytes)
        if sym is not None and s.tensor == "input" and not copy and st.storage != node["inputs"][s.input]:
            viewed = simplify(_prod(node["in_shapes"][s.input]) * width * (batch if s.batched else 1))
            if str(viewed) != str(simplify(st.nbytes(batch))):  # the backward keeps what its input is a part of, whole
                sym = None
                ex.notes.append(f"{label}: its input is a part of {st.storage}'s output, which the backward keeps whole")
        if sym is not None:
            shape = ins_s[s.input] if s.tensor == "input" else out_s if s.tensor == "output" else sym.shape
            if copy:
                shape = sym.shape or ins_s[sym.input]
            follow = _prod(Traced(2, str(d), NAMED) if is_symbolic(d) and getattr(d, "is_Symbol", False) else d for d in shape) * width
            g = _formula(_prod(shape) * width * (batch if s.batched else 1), follow) + " B"  # elements × bytes, as the memory line
        ex.steps.append(Step(label, g, "", _fmt_bytes(st.nbytes(batch))))
        shared = "" if st.first else f" (the same storage as what {st.counted_at} keeps: `archcalc memory` counts it there, once)"
        ex.notes.append(f"{label}: {s.why}{shared}")


def _try(fn: Any) -> Any:
    """fn(), or None where a formula cannot run on these values (then the formula keeps sympy's order)."""
    try:
        return fn()
    except Exception:
        return None


def _general_dict(fn: Any) -> dict[str, Any] | None:
    try:
        return dict(fn())
    except Exception:
        return None


def _prod(values: Any) -> Any:
    out: Any = 1
    for v in values:
        out = out * v
    return out


def _not_exact(step: Step) -> Step:
    """``step`` without its claims of exactness: on a row whose receptive field is approximate (its note says from where)."""
    def drop(text: str | None) -> str | None:
        if text is None:
            return None
        return text.replace("exact: ", "").replace("(exact: ", "(").replace("the exact interval rule", "the interval rule")

    return Step(step.quantity, drop(step.general), drop(step.worked) or "", step.result)


def _explain_rf(ex: Explanation, node: dict[str, Any], nodes: dict[str, Any], layer: Layer, lay_t: Layer, ins_num: list[Shape]) -> None:
    # (in a block repeated l times: what its last copy reads)
    srcs: list[tuple[AxisRF, ...]] = node.get("rf_inputs") or [nodes[i]["rf"] for i in node["inputs"] if nodes[i]["rf"]]
    if layer.source:
        ex.steps.append(Step("receptive field", None, "", "none (a learned tensor: it reads no input)"))
        return
    if not srcs:  # token ids [L] in: no (C, *spatial) axes for a receptive field
        ex.steps.append(Step("receptive field", None, "", "none (no spatial axis: a token sequence)"))  # (was '= ...: none computed = none')
        return
    if layer.mixes_positions(node["in_shapes"]):
        whole = "\u00d7".join(str(r.size) for r in node["rf"])
        worked = "mixes every position: the whole input (every pixel any position sees)"
        if layer.reads_pair(node["in_shapes"]):
            worked = "entry (i, j) reads query i and key j: the hull of the widest pair, (0, the last)"
        ex.steps.append(Step("receptive field", "every position of its input", worked, whole))
        if node.get("rf_note"):
            ex.notes.append(node["rf_note"])
        return
    axes = AXES.get(len(srcs[0]), tuple(f"axis{i}" for i in range(len(srcs[0]))))
    whole_why = node.get("rf_whole")
    who = "its last output sees" if whole_why and whole_why.startswith(CAUSAL) else "every output sees"  # (after causal attention: only the last)
    whole_note = f"{who} the whole input ({whole_why}): the tables write 'whole' for its receptive field and stride"
    if node.get("rf_bound"):  # (review s10 #1: where the field is approximate, 'whole' is an upper bound, not a claim)
        whole_note = f"at most the whole input ({whole_why}): the tables write 'whole' for its receptive field and stride, an upper bound here"
    layout = nodes[node["inputs"][0]].get("rf_layout") if node["inputs"] else None
    named = layer.axis_windows(node["in_shapes"])
    moved = layout is not None and layout != (None, *range(len(srcs[0]))) and layer.windows(node["in_shapes"]) is not None
    if len(srcs) == 1 and (named is not None or moved):
        _explain_named_rf(ex, node, axes, layout, named)
        if whole_why:
            ex.notes.append(whole_note)
        return
    if len(srcs) > 1:
        for a, axis in enumerate(axes):
            sizes = [s[a].size for s in srcs]
            out = node["rf"][a]
            regular = all(s[a].phases is None and type(s[a].size) is int and type(s[a].centre2) is int for s in srcs)
            if regular and out.size not in sizes:  # offset paths: the union of the fields (see passes/receptive.py)
                spans = [s[a].span() for s in srcs]
                lo, hi = min(x for x, _ in spans), max(y for _, y in spans)
                union = " \u222a ".join(f"[{_neg(x)}, {_neg(y)}]" for x, y in spans)
                worked = f"{union} = [{_neg(lo)}, {_neg(hi)}]: {_neg(hi)} \u2212 {_neg(lo, wrap=True)} + 1"
                general = "union of the inputs' fields [lo, hi] at output 0 (the paths are offset: each output sees both)"
                ex.steps.append(Step(f"receptive field {axis} (paths meet)", general, worked, str(out.size)))
                continue
            ex.steps.append(Step(f"receptive field {axis} (paths meet)", "max over inputs", f"max({', '.join(map(str, sizes))})", str(out.size)))
        if node.get("rf_note"):
            ex.notes.append(node["rf_note"])
        if whole_why:
            ex.notes.append(whole_note)
        return
    windows = lay_t.windows([tuple(leaf(d) if isinstance(d, int) else d for d in s) for s in ins_num])
    if windows is None:
        size = "\u00d7".join(str(r.size) for r in node["rf"])
        if whole_why:  # a fully connected layer after the flatten: no window on the image
            ex.steps.append(Step("receptive field", whole_why, "", f"the whole input ({size} with the padding counted)"))
            return
        pairs = list(zip(srcs[0], node["rf"], strict=True))
        grown = [a for a, (before, after) in enumerate(pairs) if before.size != after.size or before.whole != after.whole]
        if grown:  # a softmax, norm or linear over a spatial axis: every output reads every position along it
            for a, (before, after) in enumerate(pairs):
                if a in grown:
                    worked = f"every output reads every position along it: the union of their fields, {before.size} → {after.size}"
                else:
                    worked = "pointwise along it: unchanged"
                ex.steps.append(Step(f"receptive field {axes[a]}", None, worked, str(after.size)))
            if node.get("rf_note"):
                ex.notes.append(node["rf_note"])
            return
        ex.steps.append(Step("receptive field", None, "pointwise: unchanged", size))
        return
    if len(windows) != len(srcs[0]):  # (a 1-D window on a map whose axes reshapes regrouped, layout lost)
        _explain_named_rf(ex, node, axes, None, None)
        if whole_why:
            ex.notes.append(whole_note)
        return
    if whole_why:
        ex.notes.append(whole_note)
    out_sizes = tuple(node["shape"])[len(node["shape"]) - len(windows):]
    for a, (axis, r_in, w) in enumerate(zip(axes, srcs[0], windows, strict=True)):
        r_out: AxisRF = node["rf"][a]
        if r_out.whole and not r_in.whole:  # (circular padding: every output's window, round the map, reads every position)
            worked = (
                "every output reads every position along it (its window wraps round the map): "
                f"the union of their fields, {r_in.size} → {r_out.size}"
            )
            ex.steps.append(Step(f"receptive field {axis}", None, worked, str(r_out.size)))
            ex.steps.append(Step(f"effective stride {axis}", "j_in*S", "", str(r_out.jump)))
            continue
        ex.steps.extend(_rf_steps(axis, r_in, w, r_out, as_int(out_sizes[a]) if a < len(out_sizes) else None))
    if node.get("rf_note") and "circular padding" in node["rf_note"]:  # (where the rules' field wraps, or is only approximate)
        ex.notes.append(node["rf_note"])


def _explain_named_rf(
    ex: Explanation,
    node: dict[str, Any],
    axes: tuple[str, ...],
    layout: tuple[int | None, ...] | None,
    named: dict[int, Window | Partition | None] | None,
) -> None:
    """A layer on a channels-last (or permuted) map, or one that names its axes (slice, roll,
    window attention): per spatial axis, what it reads along the tensor axis that holds it."""
    for a, axis in enumerate(axes):
        r_out: AxisRF = node["rf"][a]
        t = layout.index(a) if layout is not None and a in layout else None
        # (an axis the layer does not name is untouched: a chunk or slice of the features leaves the tokens in place)
        op = named.get(t, "none") if named is not None and t is not None else "window" if named is None else "none"
        if isinstance(op, Partition):
            worked = (f"windows of {op.size} positions starting at {op.offset}: each output sees the union of the fields of its own "
                      f"window's positions (exact: outputs of one window share it)")
        elif isinstance(op, Window):
            worked = f"a window of {op.kernel} at stride {op.stride} along tensor axis {t}"
        elif op == "window" and layout is not None and t is None:
            worked = ("no tensor axis holds it alone (dropped by a select or mean, or merged with other axes): unchanged, or the union "
                      "where the layer reads all of the merged axis")
        elif op == "window":
            worked = f"its window along tensor axis {t} (the map is permuted)" if t else "its window, on a layout the pass could not follow"
        elif op == "none":
            worked = "pointwise along it: unchanged"
        else:
            worked = "a cyclic roll: positions wrap around, approximate"
        ex.steps.append(Step(f"receptive field {axis}", "what the layer reads along the axis holding it", worked, str(r_out.size)))
        ex.steps.append(Step(f"effective stride {axis}", None, "", str(r_out.jump)))
    if node.get("rf_note"):
        ex.notes.append(node["rf_note"])


def _rf_steps(axis: str, r_in: AxisRF, w: Window, r_out: AxisRF, n_out: int | None = None) -> list[Step]:
    """The receptive-field lines of one axis: the three rules on a regular grid; at an upsampling
    layer (transposed convolution, upsample) and downstream of one, the exact interval rule the
    receptive-field pass applies (see passes/receptive.py), worked on the widest output."""
    up = as_int(w.upsample)
    if r_in.whole:  # every position already sees the union of all their fields along this axis
        worked = "its input's field along it is already the union of every position's (a layer before read the whole axis): a window adds nothing"
        return [
            Step(f"receptive field {axis}", None, worked, str(r_out.size)),
            Step(f"effective stride {axis}", "j_in*S", "", str(r_out.jump)),
        ]
    if w.adaptive is not None:  # torch's uneven adaptive windows: mapped one by one (see passes/receptive.py)
        n, o = w.adaptive
        rounded = " (rounded up: outputs sit unevenly)" if r_out.phases is not None and r_out.shift % len(r_out.phases) else ""
        general = "exact: output i reads input positions floor(i*n/o)..ceil((i+1)*n/o) - 1; its field is the union of theirs"
        return [
            Step(f"receptive field {axis}", general, f"n = {n}, o = {o}: the widest such union", str(r_out.size)),
            Step(f"effective stride {axis}", "j_in*n/o on average", f"{r_in.jump}·{n}/{o}{rounded}", str(r_out.jump)),
        ]
    if r_in.phases is None and up == 1:  # the three rules, worked with the numbers substituted
        r_t = AxisRF(
            leaf(r_in.size) if isinstance(r_in.size, int) else r_in.size, leaf(r_in.jump) if isinstance(r_in.jump, int) else r_in.jump, r_in.centre2
        ).through(w)
        return [
            Step(f"receptive field {axis}", "r_in + (extent - 1)*j_in, extent = D*(K - 1) + 1", _worked(r_t.size), str(r_out.size)),
            Step(f"effective stride {axis}", "j_in*S", _worked(r_t.jump), str(r_out.jump)),
        ]
    widest = widest_output(r_in, w)
    if widest is None:  # symbols with upsampling: the pass's approximation on the average grid (its row says so)
        r_t = r_in.through(w)
        return [
            Step(f"receptive field {axis}", "approximate, on the average grid: r_in + (ceil(extent/U) - 1)*j_in", "", str(r_t.size)),
            Step(f"effective stride {axis}", "approximate, on the average grid: ceil(j_in*S/U)", "", str(r_t.jump)),
        ]
    o, units, lo, hi = widest
    reads = f"position {_neg(units[0])}" if len(units) == 1 else f"positions {_neg(units[0])}..{_neg(units[-1])}"
    if n_out is not None and o >= n_out:  # the widest output of the repeating pattern lies past this map's end (review s9 #12)
        o = f"{o} of the repeating pattern the fields follow (this map has {n_out} outputs along {axis})"
    if up != 1:
        why = "upsampling by U: the window slides on a grid U times finer, input position i at i*U"
    else:
        why = "the input grid is uneven after upsampling"
    rf = Step(
        f"receptive field {axis}",
        f"exact: hi - lo + 1, [lo, hi] = the input pixels seen by the positions the widest output reads ({why})",
        f"output {o} reads input {reads}, which {'sees' if len(units) == 1 else 'see'} pixels {_neg(lo)}..{_neg(hi)}: "
        f"{_neg(hi)} \u2212 {_neg(lo, wrap=True)} + 1",
        str(r_out.size),
    )
    rounded = " (rounded up: outputs sit unevenly)" if r_out.phases is not None and r_out.shift % len(r_out.phases) else ""
    if r_in.phases is None:
        stride, jump_in = as_int(w.stride), as_int(r_in.jump)
        worked = f"{jump_in}/{up}" if stride == 1 else f"{jump_in}\u00b7{stride}/{up}"
        return [rf, Step(f"effective stride {axis}", "j_in*S/U", worked + rounded, str(r_out.jump))]
    period, shift = (len(r_out.phases), r_out.shift) if r_out.phases is not None else (1, r_out.jump)
    general = "J/P: input pixels per period of P outputs (the average stride)"
    return [rf, Step(f"effective stride {axis}", general, f"{shift}/{period}{rounded}", str(r_out.jump))]


def _neg(v: int, wrap: bool = False) -> str:
    """An integer with a typographic minus, in parentheses after an operator if negative."""
    if v >= 0:
        return str(v)
    return f"(\u2212{-v})" if wrap else f"\u2212{-v}"


# ----- rendering -----------------------------------------------------------------------------------


def _power(text: str) -> str:
    """Formulas for people, not Python: K**2 -> K^2 (text and Markdown)."""
    return text.replace("**", "^")


def render_explanation(ex: Explanation, fmt: str = "text") -> str:
    # the network's input is named 'input': "input 3×227×227", not "input input 3×227×227"
    inputs = ", ".join(_shape(s) if n == "input" else f"{n} {_shape(s)}" for n, s in zip(ex.inputs, ex.input_shapes, strict=True))
    where = f" in {escape_control(ex.network)}" if ex.network else ""
    head = f"{ex.layer} ({ex.type}){where}: {f'input {inputs}' if inputs else 'no input'} \u2192 output {_shape(ex.output_shape)}"
    if fmt == "markdown":
        from .render import md_escape, md_text

        before, _, after = head.partition(where) if where else (head, "", "")
        shown = md_escape(before) + (f" in {md_text(escape_control(ex.network or ''))}" if where else "") + md_escape(after)
        lines = [f"**{shown}**", "", "| quantity | formula | worked | result |", "|---|---|---|---|"]
        for s in ex.steps:
            lines.append(
                f"| {s.quantity} | {('`' + _power(s.general) + '`') if s.general else ''} | {('`' + _power(s.worked) + '`') if s.worked else ''} "
                f"| {md_escape(_power(s.result))} |"
            )
        lines += [f"\n*{md_escape(n)}*" for n in ex.notes]
        return "\n".join(lines) + "\n"
    if fmt == "latex":  # (on a slide the frame's title names the network: the heading stays one line)
        return _latex(ex, head.replace(where, "", 1) if where else head)
    width = max(len(s.quantity) for s in ex.steps)
    lines = [head, ""]
    for s in ex.steps:
        lines.append(f"{s.quantity:<{width}}  {_power(s.general)}" if s.general else s.quantity)
        if s.worked:
            lines.append(f"{'':<{width}}  = {_power(s.worked)} = {_power(s.result)}")
        else:
            lines.append(f"{'':<{width}}  = {_power(s.result)}")
    lines += [f"note: {n}" for n in ex.notes]
    return "\n".join(lines) + "\n"


_UNIT = r"(KiB|MiB|GiB|TiB|B)"


def latex_number(txt: str) -> str:
    """Numbers and units in math: digit groups as 10\\,035\\,200, units upright and spaced (784\\,\\mathrm{KiB}, 23.3\\,\\mathrm{K})."""
    t = re.sub(r"(?<=\d),(?=\d{3})", r"\\,", txt)
    t = re.sub(rf"(\d)\s*{_UNIT}(?![A-Za-z])", r"\1\\,\\mathrm{\2}", t)
    t = re.sub(r"(\d)([KMGT])(?![A-Za-z])", r"\1\\,\\mathrm{\2}", t)
    return re.sub(r" \((?=[\d.]+\\,\\mathrm\{[KMGT]\}\))", r"\\ (", t)  # math drops spaces: 23,296 (23.3K) keeps its gap


def _latex(ex: Explanation, head: str) -> str:
    from .render import _latex_escape

    def quotes(txt: str) -> str:  # 'lecture' -> `lecture' (LaTeX's quotes)
        return re.sub(r"'([^']*)'", r"`\1'", txt)

    def math(txt: str) -> str:
        return latex_number(
            txt.replace("\u00b7", r" \cdot ")
            .replace("\u2212", "-")
            .replace("\u230a", r"\lfloor ")
            .replace("\u230b", r"\rfloor ")
            .replace("\u00d7", r" \times ")
            .replace("\u2308", r"\lceil ")
            .replace("\u2309", r"\rceil ")
            .replace("\u222a", r" \cup ")
            .replace("_", r"\_")
        )

    def prose(txt: str) -> bool:  # words, not a formula: set upright as text
        return re.search(r"[A-Za-z]{4,}", re.sub(r"\b(in|out|extent|MACs|KiB|MiB|GiB|TiB)\b", "", txt.replace("_in", ""))) is not None

    def sym(g: str) -> str:
        """A formula as the text writes it, in its order (the worked numbers follow that order:
        sympy's latex would sort the factors again), word-long symbols upright (2\\,\\mathrm{MACs})."""
        import sympy
        from sympy.parsing.sympy_parser import parse_expr

        names = {n: sympy.Symbol(n) for n in _names(g)}
        upright = {s: rf"\mathrm{{{n}}}" for n, s in names.items() if len(n) > 1 and "_" not in n}
        expr = parse_expr(g, local_dict=names, evaluate=False)
        out = str(sympy.latex(expr, order="none", symbol_names=upright, fold_short_frac=True))
        out = re.sub(r"(?<=[}A-Za-z]) (\d+)(?![\d.{])", r" {\\cdot} \1", out)  # C_{out} H_{out} W_{out} {\cdot} 4: a number after a symbol
        return re.sub(r"(\d) \\mathrm", r"\1\\,\\mathrm", out)

    def gen(g: str) -> str:
        if g == "r_in + (extent - 1)*j_in, extent = D*(K - 1) + 1":  # the same rule, slide-short, in the lecture's order
            return sym("r_in + D*(K - 1)*j_in")
        if g.endswith(" B"):  # bytes
            return gen(g[:-2]) + r"\,\mathrm{B}"
        try:
            if ", " in g or " = " in g:  # 'r_in + (extent - 1)*j_in, extent = D*(K - 1) + 1': each part in math
                return r",\quad ".join(" = ".join(sym(side) for side in part.split(" = ")) for part in g.split(", "))
            return sym(g)
        except Exception:
            return r"\text{" + quotes(_latex_escape(g)) + "}" if prose(g) else math(g)

    def formula(txt: str) -> bool:  # a result or worked line that is a sympy expression: 9*C**2, floor(H/4 - 7/4) + 1
        return re.search(r"[A-Za-z]", txt) is not None and not prose(txt) and re.fullmatch(r"[\w*+\-/(). ]+", txt) is not None

    def numeric(txt: str) -> bool:  # 23,296 (23.3K); 802,816 B = 784 KiB; 56
        return re.fullmatch(rf"[\d,.\s()=KMGT]*(\s?{_UNIT})?[\d,.\s()=KMGT]*(\s?{_UNIT})?", txt) is not None

    def value(txt: str) -> str:
        body, unit = (txt[:-2], r"\,\mathrm{B}") if txt.endswith(" B") and not numeric(txt) else (txt, "")
        if numeric(txt):
            return latex_number(txt)
        return gen(body) + unit if formula(body) else r"\text{" + quotes(_latex_escape(txt)) + "}"

    # the heading above the lines, not in their column (it would widen every line by the labels)
    lines = [rf"\noindent {_latex_escape(head)}", r"\begin{align*}"]
    for s in _merge_axes(ex.steps):
        # labels short enough for a slide: the convention is named once, in the MACs line
        label = re.sub(r" \(not MACs under '[^']*'\)", "", s.quantity)
        label = re.sub(r"^memory \(([^,]+), \d+ B per element\)", r"memory", label)  # the 4 B of float32 is in the formula
        q = quotes(_latex_escape(label))
        rhs = []
        if s.general:
            rhs.append(gen(s.general))
        if s.worked:
            rhs.append(value(s.worked) if prose(s.worked) or formula(s.worked.removesuffix(" B")) else math(s.worked))
        rhs.append(value(s.result))
        lines.append(rf"\text{{{q}}} &= " + " = ".join(rhs) + r" \\")
    lines.append(r"\end{align*}")
    return "\n".join(lines) + "\n"


def _merge_axes(steps: list[Step]) -> list[Step]:
    """One line for H and W when they are worked alike (a square layer on a square map): a slide
    has room for about a dozen lines."""
    out: list[Step] = []
    macs = next((s for s in steps if s.quantity.startswith("MACs")), None)
    for s in steps:
        if macs is not None and s.quantity.startswith("ops: ") and (s.general, s.worked, s.result) == (macs.general, macs.worked, macs.result):
            continue  # the MACs line says the same (a pool's window reads, a conv's multiply-adds)
        if s.quantity.endswith(" W"):
            twin = next((o for o in out if o.quantity == s.quantity[:-2] + " H"), None)
            swap = (lambda x: x.replace("H", "W")) if twin else None
            if twin and swap and (twin.general or "").replace("H", "W") == (s.general or "") and twin.worked == s.worked and twin.result == s.result:
                twin.quantity += ", W"
                continue
        out.append(Step(s.quantity, s.general, s.worked, s.result))
    return out


def _names(expr: str) -> set[str]:
    import re

    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr)) - {"floor", "ceiling", "Max", "max"}


def shown_name(name: str, known: Any) -> str:
    """A name as a table shows it, its copies' count taken off where what is left is known
    (``transformer.h ×12``, ``layer3 ×36``, ``transformer.h.*.attn.c_attn (×l)``): ``known(n)`` says
    whether n is a layer or block; any other name is returned as it is."""
    m = re.fullmatch(r"(.+?) (?:\(\u00d7[^()]+\)|\u00d7\S+)", name.strip())
    return m.group(1) if m and known(m.group(1)) else name


def explain_block(rep: Report, name: str, fmt: str = "text") -> str:
    """A block call (``layer1``, ``layer1.0``, ``Mixed_5b``): its summed params, MACs, FLOPs and
    memory, each as the sum of its rows (the sums ``check layer1.params=...`` judges: the same
    :func:`archcalc.grouping.block`), its output, receptive field and stride (its last layer's), and
    its rows as a table."""
    from .conventions import get_convention
    from .errors import SpecError
    from .grouping import Group, block, group_totals, one_copy_of, parts_text
    from .render import _latex_escape, md_escape, md_text, render
    from .summary import stage

    group, kind = block(rep, name), "block"
    if group is None and ".." in name:  # a run of layers table --depth shows as one row (conv5.dw..conv5.pw_relu), check's range
        start, _, end = name.partition("..")
        names = [r.name for r in rep.rows]
        for n in (start, end):
            if n not in names:
                raise SpecError(f"no layer named {n!r} (in the range {name!r})", field="LAYER")
        i, j = names.index(start), names.index(end)
        if i > j:
            raise SpecError(f"range {name!r} runs backwards: {end!r} comes before {start!r}", field="LAYER")
        run = rep.rows[i : j + 1]
        group, kind = Group(name, tuple(run), True, 1, group_totals(run, rep.include_training_only)), "layers"
    if group is None:  # a stage of table --depth 1 (stem, stage3, head)
        rows, kind = stage(rep, name), "stage"
        if not rows:
            raise SpecError(f"no layer or block named {name!r}", field="LAYER")
        group = Group(name, tuple(rows), True, 1, group_totals(rows, rep.include_training_only))
    counted = [r for r in group.rows if rep.include_training_only or not r.training_only] or list(group.rows)
    last = group.output
    first = group.rows[0]
    source = [i for i in first.inputs if i != "input"]
    inputs = ", ".join(f"{i} {_shape(rep.row(i).output_shape)}" for i in source) if source else _shape(rep.input_shape)
    call = one_copy_of(rep, name)
    copies = "" if type(group.repeat) is int and group.repeat == 1 else f", {human_text(group.repeat)} copies"
    if call is not None:
        copies = f", one copy of {human_text(rep.repeats[call])}"
    where = f" in {escape_control(rep.title)}" if rep.title and fmt != "latex" else ""
    aux = ", training only" if group.training_only else ""
    head = (
        f"{escape_control(name)} ({kind}{copies}{aux}, {len(group.rows)} layers){where}: input {inputs} \u2192 "
        f"output {_shape(last.output_shape)} ({escape_control(last.name)})"
    )
    t = group.totals
    conv = get_convention(rep.convention)

    def parts(quantity: str) -> str:
        return parts_text(counted, name, quantity)

    lines = [
        ("params", parts("params"), _fmt_count(t["params"])),
        (f"MACs ({rep.convention})", parts("macs"), _fmt_count(t["macs"])),
        ("FLOPs", f"{conv.flops_per_mac}\u00b7MACs" if t["flops"] == conv.flops_per_mac * t["macs"] else parts("flops"), _fmt_count(t["flops"])),
        (f"memory ({rep.dtype})", parts("activation_bytes"), _fmt_bytes(t["activation_bytes"])),
    ]
    if last.receptive_field:
        rf = "whole" if last.whole_input else _shape(last.receptive_field)
        stride = "whole" if last.whole_input else _shape(last.effective_stride)
        lines.append(("receptive field", f"its last layer's, {last.name}", rf))
        lines.append(("effective stride", f"its last layer's, {last.name}", stride))
    in_shape = rep.row(source[0]).output_shape if len(source) == 1 else rep.input_shape if not source else ()
    sub = Report(
        rep.name, in_shape, rep.convention, rep.dtype, rep.batch, list(group.rows),
        rep.include_training_only or group.training_only, rep.repeats, f"{rep.display_name}, {kind} {group.label}",
    )  # fmt: skip
    table = render(sub, {"text": "text", "markdown": "markdown", "latex": "latex"}[fmt], **({"bare": True} if fmt == "latex" else {}))
    if fmt == "markdown":
        before, _, after = head.partition(where) if where else (head, "", "")
        shown = md_escape(before) + (f" in {md_text(escape_control(rep.title or ''))}" if where else "") + md_escape(after)
        out = [f"**{shown}**", "", "| quantity | sum | result |", "|---|---|---|"]
        out += [f"| {q} | {md_escape(_power(s))} | {md_escape(_power(v))} |" for q, s, v in lines]
        return "\n".join(out) + "\n\n" + table
    if fmt == "latex":
        out = [rf"\noindent {_latex_escape(head)}", r"\begin{itemize}"]
        def cell(v: str) -> str:  # numbers as in the worked derivations (215\,808\ (216\,\mathrm{K})), the rest as text
            if re.fullmatch(r"[\d,.]+( B)?( = [\d.]+ [KMGT]?i?B)?( \([\d.]+[KMGT]\))?", v):
                return f"${latex_number(v)}$"
            return _latex_escape(_power(v))

        out += [rf"\item {_latex_escape(q)}: {cell(v)}" for q, _, v in lines]
        return "\n".join([*out, r"\end{itemize}"]) + "\n" + table
    width = max(len(q) for q, _, _ in lines)
    out = [head, ""]
    for q, s, v in lines:
        out.append(f"{q:<{width}}  {_power(s)}")
        out.append(f"{'':<{width}}  = {_power(v)}")
    return "\n".join(out) + "\n\n" + table


def explain_total(rep: Report, quantity: str = "flops", fmt: str = "text") -> str:
    """Where each term of a total comes from: the total, then each of its terms with the rows that
    make it up (a row of a block repeated l times counts l times).  For a numeric total, the rows
    that make up most of it.  ``fmt``: text, markdown or latex (as explain's other targets)."""
    from .dims import expand

    titles = {"flops": f"FLOPs ({rep.convention})", "macs": f"MACs ({rep.convention})", "params": "params"}
    title = titles[quantity]
    total = rep.totals[quantity]
    name = escape_control(rep.display_name)
    parts = [(r, expand(getattr(r, quantity) * r.repeat)) for r in rep.counted_rows]
    parts = [(r, v) for r, v in parts if v != 0]
    if not is_symbolic(total):
        parts.sort(key=lambda p: -int(p[1]))
        top = [(escape_control(r.name), int(v), 100 * int(v) / int(total) if total else 0.0) for r, v in parts[:12]]
        more = f"... {len(parts) - 12} more rows, {int(total) - sum(v for _, v, _ in top):,} in all" if len(parts) > 12 else ""
        return _total_numeric(name, title, int(total), top, more, fmt)
    import sympy

    by_term: dict[Any, list[tuple[Any, Any]]] = {}
    for r, v in parts:
        for term in sympy.Add.make_args(sympy.expand(v)):
            _, monomial = term.as_coeff_Mul()
            by_term.setdefault(monomial, []).append((r, term))
    # (term or None for one that cancels, [(part, row name, copies of what or None)])
    terms: list[tuple[Any, Any, list[tuple[Any, str, Any]]]] = []
    for term in _printed_terms(total):
        _, monomial = term.as_coeff_Mul()
        rows = by_term.pop(monomial, [])
        each = [(p, escape_control(r.name), None if r.repeat == 1 else (r.repeat, sympy.expand(p / r.repeat))) for r, p in rows]
        terms.append((term, monomial, each))
    for monomial, rest in by_term.items():  # terms that cancel in the total
        terms.append((None, monomial, [(p, escape_control(r.name), None) for r, p in rest]))
    return _total_symbolic(name, title, total, terms, fmt)


def _total_numeric(name: str, title: str, total: int, top: list[tuple[str, int, float]], more: str, fmt: str) -> str:
    """explain total of a numeric network: its largest rows and their shares."""
    if fmt == "markdown":
        from .render import md_escape, md_text

        out = [f"**{md_text(name)}: total {md_escape(title)} = {total:,}**", "", f"| layer | {md_escape(title)} | share |", "|---|---:|---:|"]
        out += [f"| {md_text(n)} | {v:,} | {share:.1f}% |" for n, v, share in top]
        return "\n".join(out + ([f"\n*{md_escape(more)}*"] if more else [])) + "\n"
    if fmt == "latex":
        from .render import _latex_escape

        out = [rf"\noindent {_latex_escape(name)}: total {_latex_escape(title)} = ${latex_number(f'{total:,}')}$", "", r"\begin{tabular}{lrr}"]
        out += [r"\toprule", rf"Layer & {_latex_escape(title)} & Share \\", r"\midrule"]
        out += [rf"{_latex_escape(n)} & ${latex_number(f'{v:,}')}$ & {share:.1f}\% \\" for n, v, share in top]
        out += [r"\bottomrule", r"\end{tabular}"]
        if more:
            out.append(rf"\par\footnotesize {_latex_escape(more)}")
        return "\n".join(out) + "\n"
    lines = [f"{name}: total {title} = {total:,}", ""]
    lines += [f"  {n:40s} {v:>22,}  {share:5.1f}%" for n, v, share in top]
    return "\n".join(lines + ([f"  {more}"] if more else [])) + "\n"


def _total_symbolic(name: str, title: str, total: Any, terms: list[tuple[Any, Any, list[tuple[Any, str, Any]]]], fmt: str) -> str:
    """explain total of a formula: each term, then the rows that make it up."""
    if fmt == "markdown":
        from .render import md_escape, md_text

        def code(v: Any) -> str:
            return f"`{human_text(v)}`"

        out = [f"**{md_text(name)}: total {md_escape(title)} = {code(total)}**", "", "| term | part | layer | copies |", "|---|---|---|---|"]
        for term, monomial, rows in terms:
            head = code(term) if term is not None else f"{code(monomial)} (cancels in the total)"
            for i, (part, row, copies) in enumerate(rows or [(None, "", None)]):
                each = f"{human_text(copies[0])} copies of {code(copies[1])}" if copies else ""
                out.append(f"| {head if i == 0 else ''} | {code(part) if part is not None else ''} | {md_text(row)} | {each} |")
        return "\n".join(out) + "\n"
    if fmt == "latex":
        import sympy

        from .render import _latex_escape

        def m(v: Any) -> str:
            return f"${sympy.latex(v)}$"

        out = [rf"\noindent {_latex_escape(name)}: total {_latex_escape(title)} = {m(total)}", "", r"\begin{tabular}{llll}"]
        out += [r"\toprule", r"Term & Part & Layer & Copies \\", r"\midrule"]
        for term, monomial, rows in terms:
            head = m(term) if term is not None else f"{m(monomial)} (cancels)"
            for i, (part, row, copies) in enumerate(rows or [(None, "", None)]):
                each = f"{m(copies[0])} of {m(copies[1])}" if copies else ""
                out.append(rf"{head if i == 0 else ''} & {m(part) if part is not None else ''} & {_latex_escape(row)} & {each} \\")
        return "\n".join([*out, r"\bottomrule", r"\end{tabular}"]) + "\n"
    lines = [f"{name}: total {title} = {human_text(total)}", ""]
    for term, monomial, rows in terms:
        if term is None:
            lines.append(f"{human_text(monomial)} (cancels in the total)")
            lines += [f"  {human_text(p):26s} {row}" for p, row, _ in rows]
            continue
        lines.append(human_text(term))
        for p, row, copies in rows:
            times = f"  ({human_text(copies[0])} copies of {human_text(copies[1])})" if copies else ""
            lines.append(f"  = {human_text(p):24s} {row}{times}")
    return "\n".join(lines) + "\n"


def _printed_terms(total: Any) -> list[Any]:
    """The total's terms in the order its text shows them."""
    import sympy

    terms = list(sympy.Add.make_args(total))
    text = dim_text(total)
    return sorted(terms, key=lambda t: text.find(dim_text(t).lstrip("-")) if dim_text(t).lstrip("-") in text else len(text))
