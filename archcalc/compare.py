"""Side-by-side comparison of architectures: totals, ratios to the first, symbolic where symbols remain.

    archcalc compare --stack CxHxW "conv C 3 p1" "conv C 3 p1" "conv C 3 p1" --stack CxHxW "conv C 7 p3"

gives params 27*C**2 vs 49*C**2, ratio 27/49 ~ 0.551 ("45% fewer"), the same receptive field 7,
and 3 nonlinearities against 1 (when the stacks have ReLUs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .conventions import dtype_bytes
from .dims import expand, human_text, is_symbolic, simplify, to_json
from .render import _shape, units
from .report import Report

ROWS = [
    ("input", "input"),
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
        last = rep.field_row()  # RF and stride: the last spatial layer (before a global pool)
        if key == "input":
            return tuple(simplify(d) for d in rep.input_shape)
        if key == "rf":  # (a field the table calls whole is whole here too: its padded union is no window on the image)
            return ("whole",) if last.whole_input else tuple(simplify(d) for d in last.receptive_field)
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
    """b relative to a: '27/49 ≈ 0.551 (45% fewer)', or a formula when symbols do not cancel.

    No general ``sympy.simplify`` (exponential in nested floors: ResNet-50 against ResNet-101 on a
    symbolic input took 12.6 s).  Polynomials are cancelled (fast and exact); with floors the
    ratio is evaluated exactly at many sizes: the same value everywhere is reported as that
    constant, else as the ratio at 224 beside the sizes it was taken at."""
    a, b = simplify(a), simplify(b)
    if a == 0:
        return "" if b == 0 else "n/a (reference is 0)"
    if is_symbolic(a) or is_symbolic(b):
        import sympy

        ea, eb = sympy.sympify(a), sympy.sympify(b)
        if not any(e.has(sympy.floor, sympy.ceiling, sympy.Max, sympy.Min) for e in (ea, eb)):
            r = sympy.cancel(eb / ea)
            if not r.free_symbols:
                return _fraction_text(sympy.Rational(r))
            at = {x: sympy.Integer(TYPICAL) for x in r.free_symbols}
            return f"{human_text(r)} (\u2248 {float(r.xreplace(at)):.3g} at {_at(r.free_symbols)})"  # (powers as ^, as every value)
        return _sampled_ratio(ea, eb)
    from fractions import Fraction

    return _fraction_text(Fraction(int(b), int(a)))


TYPICAL = 224  # the size an approximate symbolic ratio is shown at


def _at(symbols: Any) -> str:
    return "=".join(sorted(map(str, symbols))) + f"={TYPICAL}"


def _sampled_ratio(a: Any, b: Any) -> str:
    from fractions import Fraction

    from .check import exact_evaluator

    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    fa, fb = exact_evaluator(a), exact_evaluator(b)
    ratios = set()
    for v in [*range(256, 320), *range(1 << 12, (1 << 12) + 32), 1 << 20]:
        at = dict.fromkeys((s.name for s in symbols), v)
        da = fa(at)
        if da != 0:
            ratios.add(fb(at) / da)
    typical = dict.fromkeys((s.name for s in symbols), TYPICAL)
    if len(ratios) == 1:
        return _fraction_text(ratios.pop()) + " (at every size tested)"
    den = fa(typical)
    if den == 0:
        return "varies with " + ", ".join(map(str, symbols))
    r: Fraction = fb(typical) / den
    return f"varies with {', '.join(map(str, symbols))}: \u2248 {float(r):.3g} at {_at(symbols)}"


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
        return units.size(v)
    if key in ("nonlin", "depth"):
        return human_text(v)
    return human_text(v) if is_symbolic(v) else f"{int(v):,}"


def _rows(c: Comparison) -> list[tuple[str, str]]:
    """The rows to show: the KV cache only where some spec has attention."""
    return [(t, k) for t, k in ROWS if k != "kv" or any(c.value(r, "kv") != 0 for r in c.reports)]


def warnings(c: Comparison) -> list[str]:
    """What makes the comparison not one of designs: inputs that differ."""
    shapes = [tuple(map(str, r.input_shape)) for r in c.reports]
    if len(set(shapes)) > 1:
        listed = " vs ".join(f"{lab} {_shape(r.input_shape)}" for lab, r in zip(c.labels, c.reports, strict=True))
        return [
            f"the inputs differ ({listed}): the totals compare the networks at their own inputs, "
            "not the designs at one input (pass --input to compare like with like)"
        ]
    return []


def render_comparison(c: Comparison, fmt: str = "text") -> str:
    if fmt == "latex":
        return _latex(c)
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
        if warnings(c):
            out["warnings"] = warnings(c)
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
    rf = "receptive field and stride of the last layer with spatial axes (before a global pool)"
    foot = f"MACs by the '{conv}' convention; {rf}; nonlinearities = activation layers."
    notes = "".join(f"\nnote: {w}" for w in warnings(c))
    if fmt == "markdown":
        from .render import md_escape

        notes = "".join(f"\n\n*Note: {md_escape(w)}*" for w in warnings(c))
    return table + f"\n\n{foot}{notes}\n"


def _latex(c: Comparison) -> str:
    """A bare booktabs tabular (no float: it goes on a slide or into a figure as it is)."""
    import sympy

    from .render import _latex_escape, _latex_value

    def cell(key: str, v: Any) -> str:
        if isinstance(v, tuple):
            from .render import _latex_value_shape

            return _latex_value_shape(v)
        if key in ("activation_bytes", "kv"):
            return _latex_value(v, units.size, "B")
        if key in ("nonlin", "depth"):
            return str(v)
        return f"${sympy.latex(v)}$" if is_symbolic(v) else f"{int(v):,}".replace(",", r"\,")

    cols = "l" + "r" * (2 * len(c.labels) - 1)
    head = ["", *(_latex_escape(lab) for lab in c.labels), *(_latex_escape(f"{lab} vs {c.labels[0]}") for lab in c.labels[1:])]
    lines = [rf"\begin{{tabular}}{{{cols}}}", r"\toprule", " & ".join(head) + r" \\", r"\midrule"]
    for title, key in _rows(c):  # (the rows of the text and Markdown tables: the KV cache only where some spec has attention)
        vals = [c.value(r, key) for r in c.reports]
        ratios = [("same" if v == vals[0] else "differs") if isinstance(v, tuple) else ratio_text(vals[0], v) for v in vals[1:]]
        ratio_cells = [_latex_escape(r).replace("\u2248", r"$\approx$") for r in ratios]
        lines.append(" & ".join([_latex_escape(title), *(cell(key, v) for v in vals), *ratio_cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [rf"\par\footnotesize Note: {_latex_escape(w)}" for w in warnings(c)]
    return "\n".join(lines) + "\n"
