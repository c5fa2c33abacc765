"""Renderers: a Report to text, markdown, LaTeX (booktabs), CSV, JSON or HTML.  Format only."""

from __future__ import annotations

import functools
import io
import itertools
import json
import operator
import re
from collections.abc import Callable
from typing import Any

from ..dims import dim_text, human_text, is_symbolic, simplify, to_json
from ..errors import escape_control
from ..report import IN_PLACE_NOTE, QUANTITIES, Report, Row
from . import units

FORMATS = ("text", "markdown", "latex", "csv", "json", "html")

HEADERS = ["layer", "type", "output", "params", "MACs", "memory", "RF", "stride"]
WHOLE = "whole"  # the RF and stride of a row whose every output sees the whole input (Row.whole_input)
WHOLE_LEGEND = (
    "RF and stride 'whole': every output sees the whole input (a flatten of the map, a global pool, attention, "
    "and the layers after them); the JSON and CSV reports keep the exact field (sees_whole_input)."
)


def _dim_text(d: Any, plain_sep: bool = False) -> str:
    """One dimension; a symbolic sum is bracketed so that '×' cannot bind into it.  With a plain
    'x' between dimensions (CSV), every expression that is not a single symbol is bracketed: 'x'
    could be read as part of it."""
    d = simplify(d)
    if not is_symbolic(d):
        return str(d)
    text = dim_text(d) if plain_sep else human_text(d)  # (CSV keeps sympy's syntax)
    return f"({text})" if d.is_Add or (plain_sep and not d.is_Symbol) else text


def _shape(dims: tuple[Any, ...], sep: str = "\u00d7") -> str:
    return _shape_text(tuple(dims), sep)


@functools.lru_cache(maxsize=1 << 14)
def _shape_text(dims: tuple[Any, ...], sep: str) -> str:
    """A shape as text (cached: rows repeat shapes, receptive fields and strides)."""
    return sep.join(_dim_text(d, plain_sep=sep == "x") for d in dims)


def _cells(r: Row, fmt: Callable[[Any], str], size: Callable[[Any], str], sep: str) -> list[str]:
    name = r.name if r.name.isprintable() else escape_control(r.name)
    if r.training_only:
        name += " (train)"
    if r.repeat != 1 or type(r.repeat) is not int:
        name += f" (\u00d7{human_text(r.repeat)})"
    if r.whole_input:
        rf = stride = WHOLE
    else:
        rf, stride = _shape_text(r.receptive_field, sep), _shape_text(r.effective_stride, sep)
    return [name, r.type, _shape_text(r.output_shape, sep), fmt(r.params), fmt(r.macs), size(r.activation_bytes), rf, stride]


_TRAINING_ONLY, _WHOLE_INPUT, _REPEAT = (operator.attrgetter(a) for a in ("training_only", "whole_input", "repeat"))


def _once(r: Row) -> bool:
    return type(r.repeat) is int and r.repeat == 1


def _totals_cells(rep: Report, fmt: Callable[[Any], str], size: Callable[[Any], str], t: dict[str, Any] | None = None) -> list[str]:
    t = rep.totals if t is None else t
    return ["total", "", "", fmt(t["params"]), fmt(t["macs"]), size(t["activation_bytes"]), "", ""]


def _caption(rep: Report, name_fmt: Callable[[str], str] = str, rest_fmt: Callable[[str], str] = str) -> str:
    """The table's caption; ``name_fmt`` and ``rest_fmt`` escape the network's name and the rest for a format."""
    batch = "" if rep.batch == 1 else f", batch {rep.batch}"
    name = name_fmt(escape_control(rep.display_name))
    rest = f": input {_shape(rep.input_shape)}{batch}, MACs by the '{rep.convention}' convention, memory of each output in {rep.dtype}"
    return name + rest_fmt(rest)


TEXT_ALIGN = ("left", "left", "right", "right", "right", "right", "right", "right")


def simple_table(body: list[list[str]], headers: list[str], colalign: tuple[str, ...]) -> str:
    """The layout of tabulate's "simple" table, every cell a string, in one linear pass.

    tabulate sniffs every cell for a number first (its type inference): a flat 100,000-layer table
    took 23 s, nearly all of it there.  This writes what tabulate writes (a column is as wide as
    its widest cell and at least its header plus 2; cells are stripped; two spaces between
    columns; trailing spaces dropped), which tests/test_render.py checks against tabulate on the
    whole zoo.  ``body`` must not be empty (a table always has its totals row)."""
    cols = [list(map(str.strip, col)) for col in zip(*body, strict=True)]  # column by column: str methods mapped over lists, in C
    if len(cols) != len(headers):
        raise ValueError(f"{len(headers)} headers for rows of {len(cols)} cells")
    widths = [max(len(h) + 2, *map(len, col)) for h, col in zip(headers, cols, strict=True)]
    pads = [str.rjust if a == "right" else str.ljust for a in colalign]
    lines = ["  ".join([pad(h, w) for h, w, pad in zip(headers, widths, pads, strict=True)]).rstrip(), "  ".join("-" * w for w in widths)]
    step = 4096  # rows padded a slice at a time: the padded cells of a 100,000-row table are not all alive at once
    for i in range(0, len(body), step):
        padded = [list(map(pad, col[i : i + step], itertools.repeat(w))) for col, w, pad in zip(cols, widths, pads, strict=True)]
        lines += [line.rstrip() for line in map("  ".join, zip(*padded, strict=True))]
    return "\n".join(lines)


def to_text(rep: Report) -> str:
    t = rep.totals  # (once: a sum over every row)
    body = [_cells(r, units.count, units.size, "\u00d7") for r in rep.rows]
    body.append(_totals_cells(rep, units.count, units.size, t))
    table = simple_table(body, HEADERS, TEXT_ALIGN)
    lines = [_caption(rep), "", table]
    lines.append("")
    lines.append(
        f"total params {units.exact(t['params'])}, MACs {units.exact(t['macs'])}, "
        f"FLOPs {units.exact(t['flops'])}, activation memory {units.exact(t['activation_bytes'])} bytes"
    )
    notes, legend = _footer(rep)
    if notes:
        lines += ["notes:", *(f"  {n}" for n in notes)]
    if legend:
        lines.append(legend)
    return "\n".join(lines) + "\n"


def _footer(rep: Report) -> tuple[list[str], str | None]:
    """The rows' notes ('name: note', the in-place one left out) and the (train) legend, for every format."""
    notes = [escape_control(f"{r.name}: {r.note}") for r in rep.rows if r.note and r.note != IN_PLACE_NOTE]
    legends = []
    if any(map(_TRAINING_ONLY, rep.rows)):
        counted = "; these totals count them" if rep.include_training_only else " and are not in the totals"
        legends.append(f"(train) rows are training-only (auxiliary heads){counted}.")
    if any(map(_WHOLE_INPUT, rep.rows)):
        legends.append(WHOLE_LEGEND)
    counts = set(map(_REPEAT, rep.rows))  # (the usual case, {1}, found without a Python call per row)
    repeated = None if counts <= {1} and all(type(n) is int for n in counts) else next((r for r in rep.rows if not _once(r)), None)
    if repeated is not None:
        n = human_text(repeated.repeat)
        legends.append(
            f"(\u00d7{n}) rows are one copy of a block repeated {n} times ('*' in their names stands for the copy's index): "
            f"the totals count each of them {n} times; their receptive field is the last copy's."
        )
    return notes, " ".join(legends) or None


def md_escape(text: str) -> str:
    """Markdown text: '*' in formulas (9*C**2) would otherwise open emphasis, '|' end a table cell,
    '<' open HTML (a layer named '<script>' in a note), '`' a code span, '[' a link, '\\' escape the next.
    '_' is escaped where a run of it starts or ends a word (a layer named ``_z_`` would be italics);
    inside a word (conv1_1, ln_1) it opens no emphasis and is kept as written."""
    out = re.sub(r"([\\`*\[\]<>|])", r"\\\1", text)
    if "_" not in out:
        return out

    def underscores(m: re.Match[str]) -> str:
        a, b = m.start(), m.end()
        inside = a > 0 and out[a - 1].isalnum() and b < len(out) and out[b].isalnum()
        return m.group(0) if inside else m.group(0).replace("_", "\\_")

    return re.sub(r"_+", underscores, out)


def md_text(text: str) -> str:
    """Free text (a network's title or name) as Markdown shows it literally: every character that
    could open emphasis, code, a link, HTML or a table cell escaped with a backslash."""
    return re.sub(r"([\\`*_\[\]<>|])", r"\\\1", text)


def to_markdown(rep: Report) -> str:
    from tabulate import tabulate

    # md_escape covers HTML, code spans and links, as the caption's md_text does (review s7 #18: a layer named
    # '<script>' went out as HTML); '_' inside names (conv1_1) opens no emphasis and is left as written
    body = [[md_escape(c) for c in _cells(r, units.count, units.size, "\u00d7")] for r in rep.rows]
    body.append([f"**{md_escape(c)}**" if c else "" for c in _totals_cells(rep, units.count, units.size)])
    out = f"*{_caption(rep, md_text, md_escape)}*\n\n" + tabulate(body, HEADERS, tablefmt="github", disable_numparse=True) + "\n"
    notes, legend = _footer(rep)
    return out + "".join(f"\n{md_escape(line)}\n" for line in [*(f"Note: {n}" for n in notes), *([legend] if legend else [])])


def _latex_value(v: Any, fmt: Callable[[Any], str], unit: str = "") -> str:
    v = simplify(v)
    if is_symbolic(v):
        import sympy

        return f"${sympy.latex(v)}$" + (f"~{unit}" if unit else "")
    return fmt(v).replace("%", r"\%")


_LATEX = str.maketrans(
    {
        "\\": r"\textbackslash{}",
        "_": r"\_",
        "&": r"\&",
        "%": r"\%",
        "#": r"\#",
        "$": r"\$",
        "{": r"\{",
        "}": r"\}",
        "^": r"\textasciicircum{}",
        "~": r"\textasciitilde{}",
        # OT1 (LaTeX's default font encoding) sets < > | " as the glyphs ¡ ¿ — ” (review s9 #12): the text commands,
        # which pick a font that has them, in any encoding
        "<": r"\textless{}",
        ">": r"\textgreater{}",
        "|": r"\textbar{}",
        '"': r"\texttt{\char34}",
        "\u00d7": r"$\times$",
        "\u2212": "$-$",
        "\u00b7": r"$\cdot$",
        "\u2192": r"$\to$",
        "\u2308": r"$\lceil$",
        "\u2309": r"$\rceil$",
        "\u222a": r"$\cup$",
    }
)


def _latex_quotes(s: str) -> str:
    """'lecture' as LaTeX's quotes, `lecture' (a closing quote alone stays an apostrophe: it's)."""
    import re

    return re.sub(r"(?<![\w`])'([^'\n]*)'(?!\w)", r"`\1'", s)


def _latex_escape(s: str) -> str:
    """Text for LaTeX, each special character replaced once (in one pass: the braces that
    \\textbackslash{} brings are not escaped again)."""
    return s.translate(_LATEX)


def csv_text(s: str) -> str:
    """A text cell for CSV, as OWASP recommends against formula injection: a cell that starts with
    = + - @ (or a tab or carriage return) gets a leading ' so that a spreadsheet shows it as text
    (a layer named '=HYPERLINK(...)' is not run).  Control characters are escaped."""
    s = escape_control(s)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


LATEX_COLUMNS = ("layer", "type", "output", "params", "macs", "memory", "rf", "stride")
_LATEX_HEADS = {
    "layer": "Layer",
    "type": "Type",
    "output": "Output",
    "params": "Params",
    "macs": "MACs",
    "memory": "Memory",
    "rf": "RF",
    "stride": "Stride",
}


def to_latex(rep: Report, bare: bool = False, columns: tuple[str, ...] | None = None, hide_free: bool = False) -> str:
    """A booktabs table (``\\usepackage{booktabs}``), symbols typeset by sympy.latex.

    ``bare``: the ``tabular`` alone, no floating ``table`` (a beamer frame or a figure takes it as it
    is); ``columns``: which of LATEX_COLUMNS, in that order; ``hide_free``: leave out the rows without
    parameters (ReLU, pooling, flatten: the slide shows the weighted layers), the totals still the
    whole network's, and a note says so."""
    cols = tuple(columns or LATEX_COLUMNS)
    align = "".join("l" if c in ("layer", "type") else "r" for c in cols)
    rows = [r for r in rep.rows if not hide_free or r.params != 0]
    lines = [] if bare else [r"\begin{table}[ht]", r"\centering", rf"\caption{{{_latex_quotes(_latex_escape(_caption(rep)))}}}"]
    lines += [rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(_LATEX_HEADS[c] for c in cols) + r" \\", r"\midrule"]

    def cell(r: Row, c: str) -> str:
        if c == "layer":
            times = "" if _once(r) else f" (\u00d7{dim_text(r.repeat)})"
            return _latex_escape(escape_control(r.name) + (" (train)" if r.training_only else "") + times)
        if c == "type":
            return _latex_escape(r.type)
        if c == "output":
            return _latex_value_shape(r.output_shape)
        if c == "params":
            return _latex_value(r.params, units.count)
        if c == "macs":
            return _latex_value(r.macs, units.count)
        if c == "memory":
            return _latex_value(r.activation_bytes, units.size, "B")
        if r.whole_input and c in ("rf", "stride"):
            return WHOLE
        if c == "rf":
            return _latex_value_shape(r.receptive_field)
        return _latex_value_shape(r.effective_stride)

    lines += [" & ".join(cell(r, c) for c in cols) + r" \\" for r in rows]
    t = rep.totals
    total = {
        "layer": "Total",
        "params": _latex_value(t["params"], units.count),
        "macs": _latex_value(t["macs"], units.count),
        "memory": _latex_value(t["activation_bytes"], units.size, "B"),
    }
    lines += [r"\midrule", " & ".join(total.get(c, "") for c in cols) + r" \\", r"\bottomrule", r"\end{tabular}"]
    notes, legend = _footer(rep)
    if hide_free and len(rows) < len(rep.rows):
        notes = [*notes, f"{len(rep.rows) - len(rows)} parameter-free layers (activations, pooling, reshapes) not shown; the totals count them"]
    for line in [*(f"Note: {n}" for n in notes), *([legend] if legend else [])]:
        lines.append(rf"\par\footnotesize {_latex_quotes(_latex_escape(line))}")
    if not bare:
        lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _latex_value_shape(dims: tuple[Any, ...]) -> str:
    if any(is_symbolic(simplify(d)) for d in dims):
        import sympy

        def one(d: Any) -> str:
            d = simplify(d)
            text = sympy.latex(d)
            return rf"\left({text}\right)" if is_symbolic(d) and d.is_Add else str(text)

        return "$" + r" \times ".join(one(d) for d in dims) + "$"
    return r"$\times$".join(str(d) for d in dims)


def _inputs_cell(inputs: list[str]) -> str:
    """A layer's inputs in one CSV cell, separated by spaces; a name that holds a space (or a quote)
    is quoted as a shell word (``'a b' c``, read back by ``shlex.split``), so that ``["a b", "c"]``
    and ``["a", "b", "c"]`` print differently (review s7 #19)."""
    import shlex

    return " ".join(shlex.quote(n) if not n or re.search(r"[\s'\"]", n) else n for n in inputs)


def to_csv(rep: Report) -> str:
    """Exact integers (or sympy strings); one row per layer and a final 'total' row."""
    buf = io.StringIO()
    import csv

    w = csv.writer(buf, lineterminator="\n")
    repeats = not all(_once(r) for r in rep.rows)  # a 'repeat' column only where some block repeats a symbolic number of times
    # sees_whole_input (1: every output sees the whole input, the tables' 'whole') was added after
    # the others: last, so that every earlier column keeps its place
    w.writerow(
        ["name", "type", "inputs", "output_shape", *QUANTITIES, "receptive_field", "effective_stride", "training_only", "convention"]
        + (["repeat"] if repeats else [])
        + ["sees_whole_input"]
    )
    for r in rep.rows:
        w.writerow(
            [
                csv_text(r.name),
                r.type,
                csv_text(_inputs_cell(r.inputs)),
                _shape(r.output_shape, "x"),
                *(to_json(getattr(r, q)) for q in QUANTITIES),
                _shape(r.receptive_field, "x"),
                _shape(r.effective_stride, "x"),
                int(r.training_only),
                rep.convention,
            ]
            + ([to_json(r.repeat)] if repeats else [])
            + [int(r.whole_input)]
        )
    t = rep.totals
    w.writerow(["total", "", "", "", *(to_json(t[q]) for q in QUANTITIES), "", "", "", rep.convention] + ([""] if repeats else []) + [""])
    return buf.getvalue()


def to_json_text(rep: Report) -> str:
    """The JSON report, one layer per line: easy to read, to diff and to grep.

    (``json.dumps(indent=...)`` runs the pure-Python encoder; this layout keeps the C one and
    takes a fifth of the time on ResNet-50.)
    """
    doc = rep.to_json()
    layers, totals = doc.pop("layers"), doc.pop("totals")
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in doc.items()]
    rows = ",\n".join(f"    {json.dumps(row)}" for row in layers)
    return "{\n" + "\n".join(lines) + f'\n  "layers": [\n{rows}\n  ],\n  "totals": {json.dumps(totals)}\n}}\n'


def to_html(rep: Report) -> str:
    import html

    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    body = []
    for r in rep.rows:
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(r, units.count, units.size, "\u00d7")) + "</tr>")
    body.append("<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in _totals_cells(rep, units.count, units.size)) + "</tr>")
    notes, legend = _footer(rep)
    foot = "".join(f"<p>{html.escape(line)}</p>\n" for line in [*(f"Note: {n}" for n in notes), *([legend] if legend else [])])
    return (
        f"<table>\n<caption>{html.escape(_caption(rep))}</caption>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + "\n</tbody>\n</table>\n"
        + foot
    )


def to_html_page(rep: Report) -> str:
    """The self-contained HTML report (archcalc.render.page): diagram, plots, sortable table, totals."""
    from .page import to_page

    return to_page(rep)


RENDERERS: dict[str, Callable[[Report], str]] = {
    "text": to_text,
    "markdown": to_markdown,
    "latex": to_latex,
    "csv": to_csv,
    "json": to_json_text,
    "html": to_html_page,
}


def render(rep: Report, fmt: str = "text", **latex: Any) -> str:
    """``latex``: to_latex's options (bare, columns, hide_free), for the LaTeX format only."""
    if fmt == "latex":
        return to_latex(rep, **latex)
    return RENDERERS[fmt](rep)
