"""The report: one row per layer and the totals, every value exact (int or sympy expression).

Renderers (``archcalc.render``) only format a Report; they never compute.
"""

from __future__ import annotations

import gc
import operator
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .conventions import dtype_bytes, get_convention
from .dims import Dim, free_symbols, simplify, sympy_loaded, to_json
from .graph import Graph, compile_graph, node_table
from .layers.base import Layer
from .passes import compute, memory, params, receptive_field, shapes
from .spec import Architecture, load_spec, parse_spec

QUANTITIES = ("params", "macs", "flops", "activation_bytes")
_SIZE, _JUMP = operator.itemgetter(0), operator.itemgetter(1)  # AxisRF.size, AxisRF.jump
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
    scope: tuple[str, ...] = ()  # the block calls it sits in, outermost first (archcalc.grouping)

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
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class Report:
    name: str
    input_shape: tuple[Dim, ...]
    convention: str
    dtype: str
    batch: Dim
    rows: list[Row]
    include_training_only: bool = False
    repeats: Mapping[str, int] = field(default_factory=dict)  # block call -> copies, for calls with `repeat`

    @property
    def counted_rows(self) -> list[Row]:
        """Rows that make up the totals (auxiliary training-only heads excluded unless asked for)."""
        return [r for r in self.rows if self.include_training_only or not r.training_only]

    @property
    def totals(self) -> dict[str, Dim]:
        rows = self.counted_rows
        return {q: simplify(sum((getattr(r, q) for r in rows), start=0)) for q in QUANTITIES}

    def row(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def symbolic(self) -> bool:
        from .dims import is_symbolic

        return any(is_symbolic(v) for v in self.totals.values())

    def to_json(self) -> dict[str, Any]:
        """The JSON report contract (DESIGN.md).

        ``symbols`` names every symbol left in the values: sympy gives some names a meaning of
        their own (N, I, E, S, O, Q, pi, ...), so read values back with them as locals:
        ``sympy.sympify(v, locals={s: sympy.Symbol(s) for s in doc["symbols"]})``."""
        return {
            "name": self.name,
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
            for v in (*r.output_shape, r.params, r.macs, r.flops, r.activation_bytes, *r.receptive_field, *r.effective_stride, r.buffers):
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

    def _repr_html_(self) -> str:
        from .render import render

        return render(self, "html")


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
    shapes(G)
    params(G)
    compute(G, conv, batch)
    memory(G, nbytes, batch)
    receptive_field(G)
    rows = []
    nodes = node_table(G)
    per_rf: dict[int, tuple[tuple[Dim, ...], tuple[Dim, ...]]] = {}  # pointwise layers pass their input's field on
    base_note = Layer.note
    for name in G.graph["order"]:
        n = nodes[name]
        rf = n["rf"]
        sizes_jumps = per_rf.get(id(rf))
        if sizes_jumps is None:
            sizes_jumps = per_rf[id(rf)] = (tuple(map(_SIZE, rf)), tuple(map(_JUMP, rf)))
        layer = n["layer"]
        note = n["rf_note"]
        if type(layer).note is not base_note:  # only the types that have something to say are asked
            own = layer.note(n["in_shapes"])
            note = f"{note}; {own}" if note and own else note or own
        if note is None and layer.in_place():
            note = IN_PLACE_NOTE
        rows.append(
            Row(
                name,
                layer.__dict__["type"],  # layer.kind, without the property call
                list(n["inputs"]),
                n["shape"],
                n["params"],
                n["macs"],
                n["flops"],
                n["activation_bytes"],
                *sizes_jumps,
                n["ops"],
                n["buffers"],
                n["weights"],
                n["training_only"],
                note,
                n.get("scope", ()),
            )
        )
    if "sympy" in sys.modules:  # (if sympy was never imported, no value can be symbolic)
        for row in rows:
            _fold_integers(row)
    return Report(
        G.graph["name"], tuple(G.graph["input_shape"]), conv.name, dtype, batch, rows, include_training_only, dict(G.graph.get("repeats", {}))
    )


def _fold_integers(row: Row) -> None:
    """A symbolic row's values that came out as sympy Integers become ints (exact either way)."""
    values = (row.params, row.macs, row.flops, row.activation_bytes, row.buffers)
    if all(type(v) is int for v in (*values, *row.output_shape, *row.receptive_field, *row.effective_stride)):
        return
    row.output_shape, row.receptive_field, row.effective_stride = (
        tuple(simplify(d) for d in t) for t in (row.output_shape, row.receptive_field, row.effective_stride)
    )
    row.params, row.macs, row.flops, row.activation_bytes, row.buffers = (simplify(v) for v in values)
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
