"""Side-by-side comparison of architectures: totals, ratios to the first, symbolic where symbols remain.

    archcalc compare --stack CxHxW "conv C 3 p1" "conv C 3 p1" "conv C 3 p1" --stack CxHxW "conv C 7 p3"

gives params 27*C**2 vs 49*C**2, ratio 27/49 ~ 0.551 ("45% fewer"), the same receptive field 7,
and 3 nonlinearities against 1 (when the stacks have ReLUs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    kv_dtype: str = "float16"
    """The KV cache row's dtype: inference's (``archcalc inference`` defaults to float16), not the
    activations' float32; ``compare --dtype`` sets both."""
    notes: list[str] = field(default_factory=list)
    """More that makes the comparison not one of the models as published (--input grows a
    position table), shown with :func:`warnings`."""

    def value(self, rep: Report, key: str) -> Any:
        last = rep.field_row()  # RF and stride: the last spatial layer (before a global pool)
        if key == "input":
            return tuple(simplify(d) for d in rep.input_shape)
        if key == "rf":  # (a field the table calls whole is whole here too: its padded union is no window on the image)
            return ("whole",) if last.whole_input else tuple(simplify(d) for d in last.receptive_field)
        if key == "stride":  # (whole where the field is: the table writes both so)
            return ("whole",) if last.whole_input else tuple(simplify(d) for d in last.effective_stride)
        if key == "nonlin":
            return simplify(sum((r.repeat for r in rep.counted_rows if "act" in r.ops), start=0))
        if key == "kv":  # bytes of keys and values one position adds (shown where a spec has attention)
            return expand(rep.kv_cache_per_position * dtype_bytes(self.kv_dtype) * rep.batch)
        if key == "depth":
            # layers that multiply by weights, owned or shared: GPT-2's head tied to wte computes with a matrix all the same
            return simplify(sum((r.repeat for r in rep.counted_rows if (r.params != 0 or r.tied) and "mac" in r.ops), start=0))
        return rep.totals[key]


def ratio_text(a: Any, b: Any) -> str:
    """b relative to a: '27/49 ≈ 0.551 (45% fewer)', or a formula when symbols do not cancel.

    No general ``sympy.simplify`` (exponential in nested floors: ResNet-50 against ResNet-101 on a
    symbolic input took 12.6 s).  Polynomials are cancelled (fast and exact); with floors the
    ratio is evaluated exactly at many sizes: the same value everywhere is reported as that
    constant, else as the ratio at H=W=224 beside the sizes it was taken at.  Only an image's
    size is given a typical value: a ratio in other symbols (a language model's V, h, l, s) is
    said to vary with them (at V=h=l=s=224 it described a 224-layer model of 224 words)."""
    formula, text = ratio_parts(a, b)
    return text if formula is None else human_text(formula) + text  # (powers as ^, as every value)


def ratio_parts(a: Any, b: Any) -> tuple[Any, str]:
    """:func:`ratio_text` in two parts: a sympy formula (None where the ratio is a number or
    sampled) and the text after it (all of it where the formula is None); LaTeX typesets the formula."""
    a, b = simplify(a), simplify(b)
    if a == 0:
        return None, "" if b == 0 else "n/a (reference is 0)"
    if is_symbolic(a) or is_symbolic(b):
        import sympy

        ea, eb = sympy.sympify(a), sympy.sympify(b)
        if not any(e.has(sympy.floor, sympy.ceiling, sympy.Max, sympy.Min) for e in (ea, eb)):
            r = sympy.cancel(eb / ea)
            if not r.free_symbols:
                return None, _fraction_text(sympy.Rational(r))
            if not _image_sizes(r.free_symbols):
                return r, f" (varies with {_names(r.free_symbols)})"
            at = {x: sympy.Integer(TYPICAL) for x in r.free_symbols}
            return r, f" (\u2248 {float(r.xreplace(at)):.3g} at {_at(r.free_symbols)})"
        return None, _sampled_ratio(ea, eb)
    from fractions import Fraction

    return None, _fraction_text(Fraction(int(b), int(a)))


TYPICAL = 224  # the size an approximate symbolic ratio is shown at
IMAGE_SIZES = frozenset({"H", "W"})  # the symbols TYPICAL is a size for (an image's height and width)


def _image_sizes(symbols: Any) -> bool:
    return {str(x) for x in symbols} <= IMAGE_SIZES


def _names(symbols: Any) -> str:
    return ", ".join(sorted(map(str, symbols), key=lambda n: (n.lower(), n)))


def _at(symbols: Any) -> str:
    return "=".join(sorted(map(str, symbols))) + f"={TYPICAL}"


def _sampled_ratio(a: Any, b: Any) -> str:
    from fractions import Fraction

    from .decide import exact_evaluator

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
    den = fa(typical) if _image_sizes(symbols) else 0
    if den == 0:
        return "varies with " + _names(symbols)
    r: Fraction = fb(typical) / den
    return f"varies with {', '.join(map(str, symbols))}: \u2248 {float(r):.3g} at {_at(symbols)}"


def _fraction_text(r: Any) -> str:
    f = float(r)
    if f == 1:
        return "same"
    if r == 0:
        return "none"  # (review s10 §11: "0 (100.0000% fewer)")
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


def _shown_title(c: Comparison, title: str, key: str) -> str:
    """A row's title in the tables: the KV cache row names its dtype (it is not the activations')."""
    return f"{title} ({c.kv_dtype})" if key == "kv" else title


def warnings(c: Comparison) -> list[str]:
    """What makes the comparison not one of designs: inputs that differ."""
    shapes = [tuple(map(str, r.input_shape)) for r in c.reports]
    if len(set(shapes)) > 1:
        listed = " vs ".join(f"{lab} {_shape(r.input_shape)}" for lab, r in zip(c.labels, c.reports, strict=True))
        return [
            f"the inputs differ ({listed}): the totals compare the networks at their own inputs, "
            "not the designs at one input (pass --input to compare like with like)",
            *c.notes,
        ]
    return list(c.notes)


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
            if key == "kv":
                rows[title]["dtype"] = c.kv_dtype
        if warnings(c):
            out["warnings"] = warnings(c)
        return json.dumps(out, indent=2) + "\n"
    from tabulate import tabulate

    headers = ["", *c.labels] + [f"{lab} vs {c.labels[0]}" for lab in c.labels[1:]]
    body = []
    for title, key in _rows(c):
        vals = [c.value(r, key) for r in c.reports]
        ratios = [("same" if v == vals[0] else "differs") if isinstance(v, tuple) else ratio_text(vals[0], v) for v in vals[1:]]
        body.append([_shown_title(c, title, key), *(_cell(key, v) for v in vals), *ratios])
    if fmt == "markdown":
        from .render import md_escape

        body = [[md_escape(str(c)) for c in row] for row in body]
        headers = [md_escape(h) for h in headers]
    table = tabulate(body, headers, tablefmt="github" if fmt == "markdown" else "simple")
    conv = c.reports[0].convention
    rf = "receptive field and stride of the last layer with spatial axes (before a global pool)"
    dtypes = f"activation memory in {c.reports[0].dtype}"
    if any(k == "kv" for _, k in _rows(c)):
        dtypes += f", the KV cache in {c.kv_dtype}" + (" (as inference; --dtype sets both)" if c.kv_dtype != c.reports[0].dtype else "")
    foot = f"MACs by the '{conv}' convention; {rf}; nonlinearities = activation layers; {dtypes}."
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
            return f"${sympy.latex(v)}$" if is_symbolic(v) else str(v)
        return f"${sympy.latex(v)}$" if is_symbolic(v) else f"{int(v):,}".replace(",", r"\,")

    cols = "l" + "r" * (2 * len(c.labels) - 1)
    head = ["", *(_latex_escape(lab) for lab in c.labels), *(_latex_escape(f"{lab} vs {c.labels[0]}") for lab in c.labels[1:])]
    lines = [rf"\begin{{tabular}}{{{cols}}}", r"\toprule", " & ".join(head) + r" \\", r"\midrule"]
    for title, key in _rows(c):  # (the rows of the text and Markdown tables: the KV cache only where some spec has attention)
        vals = [c.value(r, key) for r in c.reports]
        ratio_cells = [("same" if v == vals[0] else "differs") if isinstance(v, tuple) else latex_ratio(vals[0], v) for v in vals[1:]]
        lines.append(" & ".join([_latex_escape(_shown_title(c, title, key)), *(cell(key, v) for v in vals), *ratio_cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [rf"\par\footnotesize Note: {_latex_escape(w)}" for w in warnings(c)]
    return "\n".join(lines) + "\n"


def latex_ratio(a: Any, b: Any) -> str:
    """:func:`ratio_text` for LaTeX: a formula typeset as the cells are (``$\\frac{...}{...}$``), not code."""
    import sympy

    from .render import _latex_escape

    formula, text = ratio_parts(a, b)
    tail = _latex_escape(text).replace("\u2248", r"$\approx$")
    return tail if formula is None else f"${sympy.latex(formula)}${tail}"
