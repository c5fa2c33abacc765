"""Side-by-side comparison of architectures: totals, ratios to the first, symbolic where symbols remain.

    archcalc compare --stack CxHxW "conv C 3 p1" "conv C 3 p1" "conv C 3 p1" --stack CxHxW "conv C 7 p3"

gives params 27*C**2 vs 49*C**2, ratio 27/49 ~ 0.551 ("45% fewer"), the same receptive field 7,
and 3 nonlinearities against 1 (when the stacks have ReLUs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .conventions import dtype_bytes
from .dims import dim_text, expand, is_symbolic, simplify, to_json
from .render import _shape, units
from .report import Report

ROWS = [
    ("params", "params"),
    ("MACs", "macs"),
    ("FLOPs", "flops"),
    ("activation memory", "activation_bytes"),
    ("receptive field", "rf"),
    ("effective stride", "stride"),
    ("nonlinearities", "nonlin"),
    ("weighted layers", "depth"),
    ("KV cache per position", "kv"),
]


@dataclass
class Comparison:
    labels: list[str]
    reports: list[Report]

    def value(self, rep: Report, key: str) -> Any:
        last = rep.counted_rows[-1]
        if key == "rf":
            return tuple(simplify(d) for d in last.receptive_field)
        if key == "stride":
            return tuple(simplify(d) for d in last.effective_stride)
        if key == "nonlin":
            return simplify(sum((r.repeat for r in rep.counted_rows if "act" in r.ops), start=0))
        if key == "kv":  # bytes of keys and values one position adds (shown where a spec has attention)
            return expand(rep.kv_cache_per_position * dtype_bytes(rep.dtype) * rep.batch)
        if key == "depth":
            return simplify(sum((r.repeat for r in rep.counted_rows if r.params != 0 and "mac" in r.ops), start=0))
        return rep.totals[key]


def ratio_text(a: Any, b: Any) -> str:
    """b relative to a: '27/49 ~ 0.551 (45% fewer)', or a formula when symbols do not cancel."""
    a, b = simplify(a), simplify(b)
    if a == 0:
        return "" if b == 0 else "n/a (reference is 0)"
    if is_symbolic(a) or is_symbolic(b):
        import sympy

        r = sympy.simplify(sympy.sympify(b) / sympy.sympify(a))
        if not r.free_symbols:
            return _fraction_text(sympy.Rational(r))
        return str(r)
    from fractions import Fraction

    return _fraction_text(Fraction(int(b), int(a)))


def _fraction_text(r: Any) -> str:
    f = float(r)
    if f == 1:
        return "same"
    small = r.denominator != 1 and r.denominator < 1000 and abs(r.numerator) < 1000  # 27/49 says something; 670789/532549 does not
    exact = f"{r.numerator}/{r.denominator} \u2248 " if small else ""
    if f >= 2:
        return f"{exact}{f:.3g}x"
    pct = abs(1 - f) * 100
    digits = 0
    while digits < 4 and round(pct, digits) in (0, 100):  # 99.92% fewer, not "100% fewer"
        digits += 1
    return f"{exact}{f:.3g} ({pct:.{digits}f}% {'fewer' if f < 1 else 'more'})"


def _cell(key: str, v: Any) -> str:
    if isinstance(v, tuple):
        return _shape(v)
    if key in ("activation_bytes", "kv"):
        return units.size(v) if not is_symbolic(v) else f"{dim_text(v)} B"
    if key in ("nonlin", "depth"):
        return dim_text(v)
    return dim_text(v) if is_symbolic(v) else f"{int(v):,}"


def _rows(c: Comparison) -> list[tuple[str, str]]:
    """The rows to show: the KV cache only where some spec has attention."""
    return [(t, k) for t, k in ROWS if k != "kv" or any(c.value(r, "kv") != 0 for r in c.reports)]


def render_comparison(c: Comparison, fmt: str = "text") -> str:
    if fmt == "json":
        import json

        rows: dict[str, Any] = {}
        out = {"specs": c.labels, "rows": rows}
        for title, key in _rows(c):
            vals = [c.value(r, key) for r in c.reports]
            rows[title] = {
                "values": [list(map(to_json, v)) if isinstance(v, tuple) else to_json(v) for v in vals],
                "vs_first": [ratio_text(vals[0], v) if not isinstance(v, tuple) else None for v in vals[1:]],
            }
        return json.dumps(out, indent=2) + "\n"
    from tabulate import tabulate

    headers = ["", *c.labels] + [f"{lab} vs {c.labels[0]}" for lab in c.labels[1:]]
    body = []
    for title, key in _rows(c):
        vals = [c.value(r, key) for r in c.reports]
        ratios = [("same" if v == vals[0] else "differs") if isinstance(v, tuple) else ratio_text(vals[0], v) for v in vals[1:]]
        body.append([title, *(_cell(key, v) for v in vals), *ratios])
    if fmt == "markdown":
        from .render import md_escape

        body = [[md_escape(str(c)) for c in row] for row in body]
        headers = [md_escape(h) for h in headers]
    table = tabulate(body, headers, tablefmt="github" if fmt == "markdown" else "simple")
    conv = c.reports[0].convention
    return table + f"\n\nMACs by the '{conv}' convention; receptive field and stride of the last layer; nonlinearities = activation layers.\n"
