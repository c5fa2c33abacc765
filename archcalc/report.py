"""The report: one row per layer and the totals, every value exact (int or sympy expression).

Renderers (``archcalc.render``) only format a Report; they never compute.
"""

from __future__ import annotations

import gc
import operator
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from .conventions import dtype_bytes, get_convention
from .dims import Dim, assume_multiples, dim_text, expand, free_symbols, provably_positive, simplify, sympy_loaded, to_json
from .errors import SpecError
from .graph import Graph, compile_graph, node_table
from .layers.base import Layer
from .passes import compute, memory, params, receptive_field, shapes
from .spec import Architecture, load_spec, parse_spec

QUANTITIES = ("params", "macs", "flops", "activation_bytes")
_SIZE, _JUMP = operator.itemgetter(0), operator.itemgetter(1)  # AxisRF.size, AxisRF.jump
_COLUMN = {q: operator.attrgetter(q) for q in QUANTITIES}
_REPEAT = operator.attrgetter("repeat")
IN_PLACE_NOTE = "returns its input tensor (in place): no new activation memory"


@dataclass(slots=True)
class Row:
    name: str
    type: str
    inputs: list[str]
    output_shape: tuple[Dim, ...]
    params: Dim
    macs: Dim
    flops: Dim
    activation_bytes: Dim
    receptive_field: tuple[Dim, ...]
    effective_stride: tuple[Dim, ...]
    ops: dict[str, Dim]
    buffers: Dim = 0
    weights: dict[str, tuple[Dim, ...]] = field(default_factory=dict)
    training_only: bool = False
    note: str | None = None
    repeat: Dim = 1
    """How many times the layer runs: a symbol for a block repeated a symbolic number of times
    (its layers shown once, ``<call>.*.<layer>``); the totals count the row that many times."""
    scope: tuple[str, ...] = ()  # the block calls it sits in, outermost first (archcalc.grouping)
    cache: Dim = 0
    """Elements the layer keeps per position for decoding (attention's keys and values: the KV cache)."""
    rf_approximate: bool = False
    """The receptive field is not exact (this layer or one upstream could not be followed exactly; the note says which)."""
    whole_input: bool = False
    """Every output sees the whole input (after a flatten of the map, a global pool, attention): the
    tables write "whole" for its receptive field and stride; ``receptive_field`` keeps the exact union."""
    causal_field: bool = False
    """With ``whole_input``: output i sees only positions 0..i (causal attention, or a layer after
    it): the last output sees the whole input, the first only its own position."""
    tied: tuple[str, ...] = ()
    """The layers whose weights it uses without owning them (GPT-2's head: ``transformer.wte``)."""
    stride_exact: tuple[Fraction | Dim, ...] | None = None
    """On an upsampled grid where outputs sit unevenly: the average stride per axis, exactly (1/2 after a
    x2 upsampling), where ``effective_stride`` shows it rounded up (1); None where the two are the same."""

    def to_json(self, convention: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "inputs": self.inputs,
            "output_shape": [to_json(d) for d in self.output_shape],
            "params": to_json(self.params),
            "macs": to_json(self.macs),
            "flops": to_json(self.flops),
            "activation_bytes": to_json(self.activation_bytes),
            "receptive_field": [to_json(d) for d in self.receptive_field],
            "effective_stride": [to_json(d) for d in self.effective_stride],
            "convention": convention,
            "ops": {k: to_json(v) for k, v in self.ops.items()},
            "buffers": to_json(self.buffers),
        }
        if self.training_only:
            out["training_only"] = True
        if type(self.repeat) is not int or self.repeat != 1:
            out["repeat"] = to_json(self.repeat)
        if type(self.cache) is not int or self.cache != 0:
            out["kv_cache_per_position"] = to_json(self.cache)
        if self.rf_approximate:
            out["receptive_field_approximate"] = True
        if self.whole_input:
            out["sees_whole_input"] = True
        if self.stride_exact is not None:  # (a fraction as sympy reads it back: "1/2")
            out["effective_stride_exact"] = [f"{d.numerator}/{d.denominator}" if isinstance(d, Fraction) else to_json(d) for d in self.stride_exact]
        if self.causal_field:
            out["causal_field"] = True
        if self.note:
            out["note"] = self.note
        return out


def _average_strides(rf: tuple[Any, ...]) -> tuple[Fraction | Dim, ...] | None:
    """The exact average stride per axis where some axis's outputs sit unevenly (an upsampled grid
    whose period of P outputs spans a shift of pixels P does not divide), else None."""
    if not any(r.phases is not None and not r.whole and r.shift % len(r.phases) for r in rf):
        return None
    return tuple(Fraction(r.shift, len(r.phases)) if r.phases is not None and not r.whole else r.jump for r in rf)


@dataclass(frozen=True)
class Report:
    name: str
    input_shape: tuple[Dim, ...]
    convention: str
    dtype: str
    batch: Dim
    rows: list[Row]
    include_training_only: bool = False
    repeats: Mapping[str, Dim] = field(default_factory=dict)  # block call -> copies, for calls with `repeat` (a symbol: see Row.repeat)
    title: str | None = None  # the spec's display name ("AlexNet (Krizhevsky et al. 2012)"), for captions
    field_layer: str | None = None  # the layer whose receptive field is the network's (see passes.receptive._field_layer)
    assumes: tuple[Any, ...] = ()
    """Formulas the network needs 0 to run (an add's or concat's input sizes, ``a - b``) that archcalc
    could not prove 0 for every value of the symbols: stated on the layer's row, and ``check`` judges
    claims on the sizes where they hold (review s9 #4)."""

    def field_row(self) -> Row:
        """The row whose receptive field is the network's (``total.rf``, ``compare``)."""
        counted = self.counted_rows
        if self.field_layer is not None:
            for r in counted:
                if r.name == self.field_layer:
                    return r
        return field_row(counted)

    @property
    def display_name(self) -> str:
        """What captions and headers call the network: its title, else its name."""
        return self.title if self.title and self.title.strip() else self.name

    @property
    def counted_rows(self) -> list[Row]:
        """Rows that make up the totals (auxiliary training-only heads excluded unless asked for)."""
        return list(self.rows) if self.include_training_only else [r for r in self.rows if not r.training_only]

    @property
    def totals(self) -> dict[str, Dim]:
        rows = self.counted_rows
        if set(map(_REPEAT, rows)) <= {1}:  # (a symbolic count is no 1)
            return {q: _total(list(map(_COLUMN[q], rows))) for q in QUANTITIES}
        return {q: expand(_total([getattr(r, q) * r.repeat for r in rows])) for q in QUANTITIES}  # a row of a block repeated l times counts l times

    def row(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def kv_cache_per_position(self) -> Dim:
        """Elements every attention layer together keeps per position and sample (keys and values)."""
        return expand(sum((r.cache * r.repeat for r in self.counted_rows if r.cache != 0), start=0))

    @property
    def symbolic(self) -> bool:
        from .dims import is_symbolic

        return any(is_symbolic(v) for v in self.totals.values())

    def to_json(self) -> dict[str, Any]:
        """The JSON report contract (DESIGN.md).

        ``symbols`` names every symbol left in the values: sympy gives some names a meaning of
        their own (N, I, E, S, O, Q, pi, ...), so read values back with them as locals:
        ``sympy.sympify(v, locals={s: sympy.Symbol(s) for s in doc["symbols"]})``."""
        doc: dict[str, Any] = {"name": self.name}
        if self.title is not None:
            doc["title"] = self.title
        return doc | {
            "input_shape": [to_json(d) for d in self.input_shape],
            "convention": self.convention,
            "dtype": self.dtype,
            "batch": to_json(self.batch),
            "symbols": self.symbols(),
            "layers": [r.to_json(self.convention) for r in self.rows],
            "totals": {k: to_json(v) for k, v in self.totals.items()},
        }

    def symbols(self) -> list[str]:
        """Names of the symbols left anywhere in the report, sorted (none on the numeric path)."""
        if not sympy_loaded():  # no symbol can exist without sympy
            return []
        names: set[str] = set()
        for v in (*self.input_shape, self.batch, *self.totals.values()):
            names |= free_symbols(v)
        for r in self.rows:
            for v in (*r.output_shape, r.params, r.macs, r.flops, r.activation_bytes, *r.receptive_field, *r.effective_stride, r.buffers, r.repeat):
                names |= free_symbols(v)
            for v in r.ops.values():
                names |= free_symbols(v)
        return sorted(names)

    def render(self, fmt: str = "text") -> str:
        """The table in one of the formats: text, markdown, latex, csv, json, html."""
        from .render import render

        return render(self, fmt)

    def __str__(self) -> str:  # print(report) prints the table
        return self.render("text")

    # Jupyter: a report shows itself as a table
    def _repr_markdown_(self) -> str:
        from .render import render

        return render(self, "markdown")

    def _repr_html_(self) -> str:  # the table alone (a notebook cell is no place for a page with scripts)
        from .render import to_html

        return to_html(self)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a large graph and report.

    An analysis allocates many small objects and no reference cycles worth collecting; with the
    collector on, repeated full scans make a 10,000-layer chain grow superlinearly in time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def field_row(rows: Sequence[Row]) -> Row:
    """The row whose receptive field is "the network's", as textbooks give it: the last row whose
    map still has more than one position (ResNet-18's layer4, 435 pixels; after it the global
    pool's padded window, 627, is no field a reader expects, and the table says "whole" there).
    A squeeze-and-excitation pool in the middle pools only its gate: the map goes on.  Without
    such a row (token layers), the last row with more than one axis."""
    spatial = [r for r in rows if len(r.output_shape) > 1 and r.receptive_field]
    maps = [r for r in spatial if any(d != 1 for d in r.output_shape[1:])]
    return (maps or spatial or list(rows))[-1]


def _unrepeated(nodes: dict[str, dict[str, Any]], src: str) -> Any:
    """The shape of ``src`` before a repeat of its heads: a concat of one tensor with itself (k, v repeated to every
    query head, as grouped-query attention written without ``enable_gqa`` does), looked through a transpose or
    permute after it; else its own shape."""
    n = nodes.get(src)
    if n is None:
        return None
    if n.get("layer") is None:  # (the network's input)
        return n.get("shape")
    kind = n["layer"].kind
    if kind == "concat" and len(n["inputs"]) > 1 and len(set(n["inputs"])) == 1:
        return _unrepeated(nodes, n["inputs"][0])
    if kind in ("transpose", "permute"):
        inner = _unrepeated(nodes, n["inputs"][0])
        if inner is not None and tuple(inner) != tuple(n["in_shapes"][0]):
            return tuple(n["layer"].output_shape([tuple(inner)]))
    return n["shape"]


def reads_tokens(nodes: dict[str, dict[str, Any]], name: str, memo: dict[str, bool] | None = None) -> bool:
    """Whether ``name``'s value depends on the network's input (the tokens), through any path; a learned memory (a
    ``parameter``, and layers of parameters only) does not.  ``memo`` keeps every node's answer: a caller asking of
    many nodes (each attention of a 32-layer decoder) walks the graph once, not once per question."""
    memo = {} if memo is None else memo
    path: list[str] = []
    n = name  # first, along first inputs: one path to the input settles it (every attention of a decoder)
    while True:
        if memo.get(n):
            break
        node = nodes[n]
        if node.get("layer") is None:  # (the network's input)
            break
        ins = node["inputs"]
        if not ins:  # a learned tensor: the other inputs on the way decide (below)
            path = []
            break
        path.append(n)
        n = ins[0]
    if path or memo.get(n) or nodes[n].get("layer") is None:
        for p in path:
            memo[p] = True
        memo[name] = True
        return True
    stack = [name]
    while stack:
        n = stack[-1]
        if n in memo:
            stack.pop()
            continue
        node = nodes[n]
        if node.get("layer") is None:  # (the network's input)
            memo[n] = True
            stack.pop()
            continue
        todo = [src for src in node["inputs"] if src not in memo]
        if todo:
            stack.extend(todo)
            continue
        memo[n] = any(memo[src] for src in node["inputs"])
        stack.pop()
    return memo[name]


def memory_attention(nodes: dict[str, dict[str, Any]], name: str, memo: dict[str, bool] | None = None) -> bool:
    """Whether the attention ``name`` attends to a learned memory: its keys and values (every input after the
    queries) are weights, the same at every position, not read off the tokens (review s10 #9).  ``memo``: as
    :func:`reads_tokens`."""
    keys_values = nodes[name]["inputs"][1:]
    memo = {} if memo is None else memo
    return bool(keys_values) and not any(reads_tokens(nodes, src, memo) for src in keys_values)


def cached_per_position(nodes: dict[str, dict[str, Any]], name: str, memo: dict[str, bool] | None = None) -> Dim:
    """What layer ``name`` keeps of each position in a KV cache (``Layer.cached_per_position``), read off the k and v
    a decoder caches: before a repeat of their heads (review s8 #19: a GQA spec that concatenates k and v to every
    head was priced at the group size times its cache; Hugging Face caches before ``repeat_kv``).  Attention over a
    learned memory keeps nothing: its keys and values are weights, not positions (review s10 #9); ``memo``: as
    :func:`reads_tokens`."""
    n = nodes[name]
    ins = n["in_shapes"]
    if n["layer"].cached_per_position(ins) == 0 or memory_attention(nodes, name, memo):
        return 0
    before = [_unrepeated(nodes, i) for i in n["inputs"]]
    if all(b is not None for b in before) and any(tuple(b) != tuple(s) for b, s in zip(before, ins, strict=True)):
        ins = [tuple(b) for b in before]
    return n["layer"].cached_per_position(ins)


def report_from_graph(
    G: Graph,
    *,
    convention: str = "lecture",
    dtype: str = "float32",
    batch: Dim = 1,
    include_training_only: bool = False,
) -> Report:
    conv = get_convention(convention)
    nbytes = dtype_bytes(dtype)
    if not provably_positive(batch):  # 0-B would give negative MACs and memory
        raise SpecError(f"the batch must be a positive whole number for every value of its symbols, got {batch}", field="--batch")
    shapes(G)
    params(G)
    compute(G, conv, batch)
    memory(G, nbytes, batch)
    receptive_field(G)
    rows = []
    assumes: tuple[Any, ...] = ()
    nodes = node_table(G)
    per_rf: dict[int, tuple[tuple[Dim, ...], tuple[Dim, ...], tuple[Fraction | Dim, ...] | None]] = {}  # pointwise layers pass their input's field on
    base_note, base_cache = Layer.note, Layer.cached_per_position
    says: dict[type, tuple[bool, bool]] = {}  # per layer type: has a note of its own, keeps something per position (attention)
    own_of: dict[int, tuple[str | None, str | None, bool, Dim, str]] = {}  # per formula key: own note, peer note, in place, cache, type
    token_memo: dict[str, bool] = {}  # which nodes read the tokens (attention over a learned memory caches nothing): one walk for every attention
    for name in G.graph["order"]:
        n = nodes[name]
        rf = n["rf"]
        sizes_jumps = per_rf.get(id(rf))
        if sizes_jumps is None:
            sizes_jumps = per_rf[id(rf)] = (tuple(map(_SIZE, rf)), tuple(map(_JUMP, rf)), _average_strides(rf))
        layer = n["layer"]
        said = own_of.get(n["formula_key"])
        if said is None:
            kind = type(layer)
            noted, caching = says.get(kind) or says.setdefault(kind, (kind.note is not base_note, kind.cached_per_position is not base_cache))
            ins = n["in_shapes"]  # (only the types that have something to say are asked)
            called = conv.function_note(layer.__dict__["function"])  # a function call, which a peer counts apart from the module
            said = own_of[n["formula_key"]] = (
                layer.note(ins) if noted else None, called, layer.in_place(), layer.cached_per_position(ins) if caching else 0, layer.__dict__["type"]
            )
        own, called, in_place, cache, kind_name = said
        if cache != 0:  # (attention: its k and v read before a repeat of their heads, which the formula key does not see)
            cache = cached_per_position(nodes, name, token_memo)
        note = n["rf_note"]
        if own:
            note = f"{note}; {own}" if note else own
        if "tie_note" in n:
            note = f"{note}; {n['tie_note']}" if note else n["tie_note"]
        if called:
            note = f"{note}; {called}" if note else called
        if note is None and in_place:
            note = IN_PLACE_NOTE
        rows.append(
            Row(
                name,
                kind_name,  # layer.kind (asked once per formula key: a pydantic model's attributes cost)
                n["inputs"],  # (the graph is the analysis's own: its lists become the rows')
                n["shape"],
                n["params"],
                n["macs"],
                n["flops"],
                n["activation_bytes"],
                sizes_jumps[0],
                sizes_jumps[1],
                n["ops"],
                n["buffers"],
                n["weights"],
                n["training_only"],
                note,
                n.get("repeat", 1),
                n.get("scope", ()),
                cache,
                n["rf_bound"] is not None,
                bool(whole := n.get("rf_whole")),
                whole is not None and whole.startswith("causal"),  # (a str, or None)
                tuple(n["tied"].values()) if "tied" in n else (),
                sizes_jumps[2] if n["rf_bound"] is None else None,  # (an approximate field has no exact average stride to give)
            )
        )
    if "sympy" in sys.modules:  # (if sympy was never imported, no value can be symbolic)
        numeric = all(type(d) is int for d in (*G.graph["input_shape"], batch))
        # numbers in, no symbol in any layer's fields, no symbolic repeat count: every value is an int already
        if not numeric or _note_stray_symbols(rows, nodes) or G.graph.get("symbolic_repeats"):
            multiples = G.graph.get("multiples")
            exact = assume_multiples(multiples) if multiples else None
            for row in rows:
                if exact is not None:
                    _apply(row, exact)
                _fold_integers(row)
            if not numeric and not free_symbols_of((*G.graph["input_shape"], batch)):
                _note_stray_symbols(rows, nodes)  # (sympy Integers in, numbers all the same)
            assumes = _merge_assumptions(rows, nodes, exact)
    return Report(
        G.graph["name"],
        tuple(G.graph["input_shape"]),
        conv.name,
        dtype,
        batch,
        rows,
        include_training_only,
        dict(G.graph.get("repeats", {})),
        G.graph.get("title"),
        G.graph.get("field_layer"),
        assumes,
    )


def _merge_assumptions(rows: list[Row], nodes: Mapping[str, Any], exact: Callable[[Dim], Dim] | None) -> tuple[Any, ...]:
    """The sizes an add or concat needs equal, where the shapes pass could not compare them
    (:func:`archcalc.layers.merge.agreements`): each pair proved equal for every value of the
    symbols is dropped; any other is stated on the row ("assumes ...") and returned as ``a - b``
    for :attr:`Report.assumes`.  (torch raises where they differ: the network runs only there.)"""
    from .decide import equal_somewhere, same_formula_everywhere
    from .layers.merge import agreements

    found: list[Any] = []
    decided: dict[Any, str | None] = {}  # a - b -> None (proved equal), else where it is not 0 ('' if not known)
    nowhere: set[Any] = set()  # the differences 0 at no size tried (none proved never 0: the shapes pass refuses those)
    for row in rows:
        pairs: dict[tuple[str, str], tuple[list[str], list[str], list[bool]]] = {}  # (first, other) -> equalities, where not so, held nowhere tried
        for first, other, _axis, size, other_size in agreements(nodes[row.name]["layer"], nodes[row.name]["in_shapes"]):
            a, b = (exact(size), exact(other_size)) if exact is not None else (size, other_size)
            diff = expand(a - b)
            if diff not in decided:
                ok, _, at = same_formula_everywhere(diff, 0)
                decided[diff] = None if ok is True else ", ".join(f"{x}={v}" for x, v in at.items()) if ok is False and at else ""
                if ok is not True:
                    found.append(diff)
                    if equal_somewhere(size, other_size)[0] is not True:  # (review s10 #10: "not so at H=2" implied other sizes work)
                        nowhere.add(diff)
            where = decided[diff]
            if where is not None:
                eqs, nots, held = pairs.setdefault((first, other), ([], [], []))
                eqs.append(f"{dim_text(a)} = {dim_text(b)}")
                held.append(diff not in nowhere)
                if where and where not in nots:
                    nots.append(where)
        said = [f"assumes {first} and {other} agree ({' and '.join(eqs)}; "
                + (f"not so at {' or '.join(nots)}" if nots and all(held) else
                   "it holds at no size archcalc tried" + (f", e.g. not at {nots[0]}" if nots else "") + ", though that it never holds is not proved"
                   if not all(held) else "not proved for every size")
                + "): torch needs it, and check judges claims where it holds" for (first, other), (eqs, nots, held) in pairs.items()]
        if said:
            text = "; ".join(said)
            row.note = f"{row.note}; {text}" if row.note and row.note != IN_PLACE_NOTE else text
    return tuple(found)


def _total(values: list[Dim]) -> Dim:
    """The sum of a column: ints added as ints, symbolic terms in one sympy Add (adding them one by
    one re-flattens a growing sum each time: a symbolic ViT's totals took most of its analysis)."""
    if set(map(type, values)) <= {int}:  # the numeric case, summed in C
        return sum(values)
    ints = sum(v for v in values if type(v) is int)
    terms = [v for v in values if type(v) is not int]
    if not terms:
        return ints
    import sympy

    return simplify(sympy.Add(ints, *terms))


def _apply(row: Row, f: Callable[[Dim], Dim]) -> None:
    """Rewrite every value of ``row`` with ``f`` (symbolic ones; ints pass through)."""
    row.output_shape, row.receptive_field, row.effective_stride = (
        tuple(f(d) for d in t) for t in (row.output_shape, row.receptive_field, row.effective_stride)
    )
    row.params, row.macs, row.flops, row.activation_bytes, row.buffers = (
        f(v) for v in (row.params, row.macs, row.flops, row.activation_bytes, row.buffers)
    )
    row.ops = {k: f(v) for k, v in row.ops.items()}


def free_symbols_of(values: Sequence[Any]) -> set[str]:
    return {name for v in values for name in free_symbols(v)}


def _note_stray_symbols(rows: list[Row], nodes: Mapping[str, Any]) -> bool:
    """The input is numeric, yet symbols remain: name each one, and the layer field it came from,
    on the first row that has it ("padding": "smae" is a symbol named smae, not an error).
    Whether any layer holds a symbol."""
    seen: set[str] = set()
    per_layer: dict[int, list[tuple[str, set[str]]]] = {}  # id(layer) -> (field, its symbols): copies of a block share their layers
    for row in rows:
        layer = nodes[row.name]["layer"]
        fields = per_layer.get(id(layer))
        if fields is None:
            fields = per_layer[id(layer)] = []
            for field_name in layer._dim_fields:
                value = layer.__dict__[field_name]
                symbols = free_symbols_of(value if isinstance(value, list) else [value])
                if symbols:
                    fields.append((field_name, symbols))
        if not fields:
            continue
        found, names = [], []
        for field_name, symbols in fields:
            new = sorted(symbols - seen)
            if new:
                seen.update(new)
                names += new
                found.append(f"field {field_name!r} holds the symbol{'s' if len(new) > 1 else ''} {', '.join(new)}")
        if found:
            them = "them" if len(names) > 1 else "it"
            stray = f"the input is numeric, but {', '.join(found)}: values that depend on {them} are formulas (a typo? else --set {names[0]}=N)"
            row.note = f"{row.note}; {stray}" if row.note and row.note != IN_PLACE_NOTE else stray
    return any(per_layer.values())


_INT = {int}


def _fold_integers(row: Row) -> None:
    """A symbolic row's values that came out as sympy Integers become ints (exact either way)."""
    values = (row.params, row.macs, row.flops, row.activation_bytes, row.buffers)
    if set(map(type, (*values, row.repeat, *row.output_shape, *row.receptive_field, *row.effective_stride))) <= _INT:
        return
    row.output_shape, row.receptive_field, row.effective_stride = (
        tuple(simplify(d) for d in t) for t in (row.output_shape, row.receptive_field, row.effective_stride)
    )
    row.params, row.macs, row.flops, row.activation_bytes, row.buffers = (simplify(v) for v in values)
    row.repeat, row.cache = simplify(row.repeat), simplify(row.cache)
    row.ops = {k: simplify(v) for k, v in row.ops.items()}  # a new dict: ops dicts are shared between rows


def analyze(
    spec: Architecture | Mapping[str, Any] | str | Path,
    *,
    convention: str = "lecture",
    dtype: str = "float32",
    batch: Dim = 1,
    values: Mapping[str, int] | None = None,
    input_shape: Sequence[int | str] | None = None,
    include_training_only: bool = False,
) -> Report:
    """Analyse a spec (model, dict or path): shapes, params, MACs/FLOPs, memory, receptive fields.

    >>> r = analyze("specs/alexnet.json")
    >>> r.row("conv1").output_shape
    (64, 56, 56)
    """
    with gc_paused():
        if isinstance(spec, Mapping):  # a spec as Python data, as json.load gives it
            spec = parse_spec(dict(spec))
        arch = spec if isinstance(spec, Architecture) else load_spec(spec)
        G = compile_graph(arch, values=values, input_shape=input_shape)
        rep = report_from_graph(G, convention=convention, dtype=dtype, batch=batch, include_training_only=include_training_only)
        del G  # freed before the collector resumes, so that its first pass has only the report to scan
    return rep
