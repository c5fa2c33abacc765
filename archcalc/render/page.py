"""The HTML report: one self-contained page (inline CSS, JS and SVG; no request leaves it).

It holds the totals, the diagram (when Graphviz is installed), bar charts per block with the
cumulative share of MACs and memory along depth, and the per-layer table: sortable, with the
counting convention and units stated.  A click on a diagram node selects its rows; a click on a
row highlights its node.  Every name is escaped (``html.escape`` in the markup, ``<`` written as
``\\u003c`` in the embedded JSON), so a layer called ``</script><img onerror=...>`` is text.

The table keeps the layout of :func:`archcalc.render.to_html` (a ``<table>`` with its caption,
header, one row per layer and the totals row); rows and cells carry the exact values as
``data-`` attributes, which is what sorting reads and what the browser tests compare with the
JSON report.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..conventions import get_convention
from ..dims import to_json
from ..errors import escape_control
from ..report import Report, Row
from . import HEADERS, _caption, _cells, _footer, _totals_cells, units

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.5em;margin:0 0 .2em} h2{font-size:1.15em;margin:1.4em 0 .4em;border-bottom:1px solid #ddd}
.note{color:#555;font-size:.92em} dl.totals{display:flex;flex-wrap:wrap;gap:.5em 2em;margin:.6em 0}
dl.totals div{background:#f5f5f5;border-radius:6px;padding:.35em .8em} dt{font-size:.8em;color:#666} dd{margin:0;font-weight:600}
#diagram{overflow:auto;max-height:80vh;border:1px solid #ddd;border-radius:6px;padding:.3em;background:#fff}
#diagram svg{height:auto;max-width:none} #diagram g.node{cursor:pointer}
#diagram g.node.hl path,#diagram g.node.hl polygon{stroke:#0b62d6;stroke-width:4px}
table{border-collapse:collapse;font-size:.9em;width:100%} caption{text-align:left;color:#555;padding:.3em 0}
th,td{padding:.2em .55em;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th:nth-child(-n+2),td:nth-child(-n+2){text-align:left} thead th{position:sticky;top:0;background:#fafafa;cursor:pointer;user-select:none}
thead th[aria-sort=ascending]::after{content:" \\25B2"} thead th[aria-sort=descending]::after{content:" \\25BC"}
tbody tr{cursor:pointer} tbody tr:hover{background:#f3f7ff} tbody tr.sel{background:#dbe9ff} tr.train td{color:#777;font-style:italic}
tfoot th{border-top:2px solid #999;text-align:right} tfoot th:first-child{text-align:left}
.bars{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:1em}
.bar{display:grid;grid-template-columns:11em 1fr 6.5em;gap:.4em;align-items:center;font-size:.85em;margin:1px 0}
.bar span:first-child{overflow:hidden;text-overflow:ellipsis;white-space:nowrap} .bar i{display:block;height:.9em;border-radius:2px}
.bar span:last-child{text-align:right;font-variant-numeric:tabular-nums}
svg.cum{width:100%;max-width:800px;height:auto;background:#fcfcfc;border:1px solid #eee}
"""

_JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var table = document.getElementById("layers");
  var body = table.tBodies[0];
  var rowsByName = {};
  Array.prototype.forEach.call(body.rows, function (tr) { rowsByName[tr.dataset.name] = tr; });
  var unitOf = {};
  Object.keys(data.units).forEach(function (id) { data.units[id].forEach(function (n) { unitOf[n] = id; }); });

  function key(tr, col) {
    var td = tr.cells[col], v = td.dataset.value;
    if (v === undefined) { return { num: false, text: td.textContent }; }
    if (/^-?\d+$/.test(v)) { return { num: true, big: BigInt(v) }; }
    return { num: false, text: v };
  }
  function compare(a, b) {
    if (a.num && b.num) { return a.big < b.big ? -1 : a.big > b.big ? 1 : 0; }
    if (a.num !== b.num) { return a.num ? -1 : 1; }
    return a.text.localeCompare(b.text, undefined, { numeric: true });
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
    th.tabIndex = 0;
    th.title = "sort";
    function sort() {
      var dir = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending";
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir);
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (x, y) {
        var c = compare(key(x, col), key(y, col));
        if (c === 0) { c = Number(x.dataset.index) - Number(y.dataset.index); return c; }
        return dir === "ascending" ? c : -c;
      });
      rows.forEach(function (tr) { body.appendChild(tr); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sort(); } });
  });

  function clear() {
    Array.prototype.forEach.call(document.querySelectorAll("tr.sel"), function (tr) { tr.classList.remove("sel"); });
    Array.prototype.forEach.call(document.querySelectorAll("#diagram g.hl"), function (g) { g.classList.remove("hl"); });
  }
  function node(id) { return document.getElementById(id); }
  function selectUnit(id) {
    clear();
    var names = data.units[id] || [];
    names.forEach(function (n) { var tr = rowsByName[n]; if (tr) { tr.classList.add("sel"); } });
    var g = node(id);
    if (g) { g.classList.add("hl"); }
    var first = rowsByName[names[0]];
    if (first) { first.scrollIntoView({ block: "center" }); }
  }
  Array.prototype.forEach.call(document.querySelectorAll("#diagram g.node"), function (g) {
    if (!data.units[g.id]) { return; }
    g.addEventListener("click", function (e) { e.preventDefault(); selectUnit(g.id); });
  });
  Array.prototype.forEach.call(body.rows, function (tr) {
    tr.addEventListener("click", function () {
      clear();
      tr.classList.add("sel");
      var g = node(unitOf[tr.dataset.name]);
      if (g) { g.classList.add("hl"); g.scrollIntoView({ block: "center", inline: "center" }); }
    });
  });
})();
"""


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _script_json(doc: Any) -> str:
    """JSON safe inside <script>: '<', '>' and '&' as \\u escapes (no '</script>' can close it early)."""
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _value_attr(v: Any) -> str:
    return _esc(str(to_json(v)))


def _row(r: Row, index: int) -> str:
    cells = _cells(r, units.count, units.size, "\u00d7")
    exact = [None, None, None, r.params, r.macs, r.activation_bytes, None, None]
    tds = []
    for text, v in zip(cells, exact, strict=True):
        attr = f' data-value="{_value_attr(v)}"' if v is not None else ""
        tds.append(f"<td{attr}>{_esc(text)}</td>")
    cls = ' class="train"' if r.training_only else ""
    return f'<tr data-name="{_esc(r.name)}" data-index="{index}"{cls}>' + "".join(tds) + "</tr>"


def _strip_svg(svg: str) -> str:
    """Graphviz's SVG file made fit to inline: no XML declaration, doctype or comments."""
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    return svg.strip()


def diagram_section(rep: Report) -> tuple[str, dict[str, list[str]]]:
    """The inline SVG diagram and its node -> rows map; without Graphviz, a note instead."""
    from ..diagram import DiagramError, draw, layout, to_dot

    lay = layout(rep)
    unit_rows = {u.id: [r.name for r in u.rows] for u in lay.units}
    try:
        svg = draw(to_dot(rep, lay=lay), "svg").decode("utf-8")
    except DiagramError as e:
        return f'<p class="note" id="no-diagram">No diagram: {_esc(e.message)}</p>', unit_rows
    return f'<figure id="diagram">{_strip_svg(svg)}</figure>', unit_rows


def _bars(rep: Report) -> str:
    from ..grouping import group_rows, resolve_depth

    depth = resolve_depth(rep, None)
    groups = [g for g in group_rows(rep, depth) if not g.training_only or rep.include_training_only]
    if rep.symbolic:
        return '<p class="note">Symbolic totals: no bars (give the symbols values with --set).</p>'
    out = []
    for q, title, color, fmt in (
        ("macs", f"MACs ('{rep.convention}')", "#55A868", units.count),
        ("params", "params", "#DD8452", units.count),
        ("activation_bytes", "activation memory", "#4C72B0", units.size),
    ):
        vals = [(g, int(g.totals[q])) for g in groups]
        vals = [(g, v) for g, v in vals if v]
        top = max((v for _, v in vals), default=0)
        lines = [f'<div class="chart" data-quantity="{q}"><h3 class="note">{_esc(title)} per {"layer" if depth is None else "block"}</h3>']
        for g, v in vals:
            pct = 100 * v / top if top else 0
            lines.append(
                f'<div class="bar" title="{_esc(g.label)}: {v:,}"><span>{_esc(g.label)}</span>'
                f'<span><i style="width:{pct:.2f}%;background:{color}"></i></span><span>{_esc(fmt(v))}</span></div>'
            )
        lines.append("</div>")
        out.append("\n".join(lines))
    return '<div class="bars">' + "\n".join(out) + "</div>\n" + _cumulative(rep)


def _cumulative(rep: Report) -> str:
    """Cumulative share of MACs and of activation memory, layer by layer in order (inline SVG)."""
    rows = rep.counted_rows
    tm, tb = int(rep.totals["macs"]), int(rep.totals["activation_bytes"])
    if not rows or not (tm or tb):
        return ""
    w, h, pad = 800, 180, 30
    n = len(rows)

    def path(values: list[int], total: int) -> str:
        acc, pts = 0, [f"{pad},{h - pad}"]
        for i, v in enumerate(values, start=1):
            acc += v
            x = pad + (w - 2 * pad) * i / n
            y = (h - pad) - (h - 2 * pad) * (acc / total if total else 0)
            pts.append(f"{x:.1f},{y:.1f}")
        return " ".join(pts)

    macs = path([int(r.macs) for r in rows], tm)
    mem = path([int(r.activation_bytes) for r in rows], tb)
    return (
        f'<svg class="cum" viewBox="0 0 {w} {h}" role="img" aria-label="cumulative share of MACs and memory along the layers">'
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#999"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#999"/>'
        f'<text x="{pad - 4}" y="{pad + 4}" font-size="10" text-anchor="end">100%</text>'
        f'<text x="{pad - 4}" y="{h - pad}" font-size="10" text-anchor="end">0</text>'
        f'<text x="{w / 2}" y="{h - 8}" font-size="11" text-anchor="middle">layers in order ({n} counted)</text>'
        f'<polyline fill="none" stroke="#55A868" stroke-width="2" points="{macs}"/>'
        f'<polyline fill="none" stroke="#4C72B0" stroke-width="2" points="{mem}"/>'
        f'<text x="{pad + 8}" y="{pad + 12}" font-size="11" fill="#55A868">cumulative MACs</text>'
        f'<text x="{pad + 8}" y="{pad + 26}" font-size="11" fill="#4C72B0">cumulative activation memory</text>'
        "</svg>"
    )


def to_page(rep: Report, *, diagram: bool = True) -> str:
    """The report as one self-contained HTML page."""
    conv = get_convention(rep.convention)
    t = rep.totals
    totals = "".join(
        f'<div><dt>{_esc(label)}</dt><dd id="total-{q}" data-value="{_value_attr(t[q])}">{_esc(text)}</dd></div>'
        for q, label, text in (
            ("params", "params", units.exact(t["params"])),
            ("macs", f"MACs ('{rep.convention}')", units.exact(t["macs"])),
            ("flops", "FLOPs", units.exact(t["flops"])),
            ("activation_bytes", "activation memory (bytes)", units.exact(t["activation_bytes"])),
        )
    )
    if diagram:
        figure, unit_rows = diagram_section(rep)
    else:
        figure, unit_rows = '<p class="note" id="no-diagram">No diagram in this page.</p>', {}
    head = "".join(f"<th>{_esc(h)}</th>" for h in HEADERS)
    body = "\n".join(_row(r, i) for i, r in enumerate(rep.rows))
    foot = "<tr>" + "".join(f"<th>{_esc(c)}</th>" for c in _totals_cells(rep, units.count, units.size)) + "</tr>"
    notes, legend = _footer(rep)
    foot_notes = "".join(f'<p class="note">{_esc(line)}</p>\n' for line in [*(f"Note: {n}" for n in notes), *([legend] if legend else [])])
    doc = {**rep.to_json(), "units": unit_rows}
    batch = "" if rep.batch == 1 else f", batch {_esc(str(rep.batch))}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<link rel="icon" href="data:,">
<title>{_esc(escape_control(rep.display_name))}: archcalc report</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{_esc(escape_control(rep.display_name))}</h1>
<p class="note">Input {_esc("×".join(str(to_json(d)) for d in rep.input_shape))}{batch}. Convention '{_esc(conv.name)}': {_esc(conv.description)}
Memory is each layer's output in {_esc(rep.dtype)}; KB, MB and GB are powers of 1024; K, M and G counts are powers of 1000.
RF is the receptive field in input pixels, stride the effective stride.</p>
<dl class="totals" id="totals">{totals}</dl>
<h2>Diagram</h2>
<p class="note">Click a node to select its rows in the table; click a row to find its node.</p>
{figure}
<h2>Where the cost sits</h2>
{_bars(rep)}
<h2>Layers</h2>
<p class="note">Click a column header to sort (again to reverse); sorting uses the exact values.</p>
<table id="layers">
<caption>{_esc(_caption(rep))}</caption>
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
<tfoot>{foot}</tfoot>
</table>
{foot_notes}<script type="application/json" id="report-data">{_script_json(doc)}</script>
<script>{_JS}</script>
</body>
</html>
"""


_SORT_JS = r"""
(function () {
  "use strict";
  var table = document.getElementById("networks"), body = table.tBodies[0];
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
    th.addEventListener("click", function () {
      var dir = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending";
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir);
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (x, y) {
        var a = x.cells[col].dataset.value, b = y.cells[col].dataset.value, c;
        if (a !== undefined && b !== undefined && /^\d+$/.test(a) && /^\d+$/.test(b)) {
          c = BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0;
        } else { c = x.cells[col].textContent.localeCompare(y.cells[col].textContent, undefined, { numeric: true }); }
        return dir === "ascending" ? c : -c;
      });
      rows.forEach(function (tr) { body.appendChild(tr); });
    });
  });
})();
"""


@dataclass(frozen=True)
class IndexEntry:
    """One network's row in the gallery index (index.md and index.html), in the JSON report's terms: counts as
    ints, formulas as their text (:func:`archcalc.dims.to_json`).  Made from this run's report
    (:meth:`of_report`) or, for a network an earlier run listed, from its JSON report
    (archcalc.reports.earlier_entries): both indexes render their rows from it, so an earlier index's text is
    never copied into a new one (code review s10 #3)."""

    stem: str  # the files' name: STEM.md, STEM.json, ...
    name: str
    input_shape: tuple[int | str, ...]
    params: int | str
    macs: int | str
    activation_bytes: int | str
    layers: int
    plot: bool  # STEM.png is there
    svg: bool  # STEM.svg is there

    @classmethod
    def of_report(cls, stem: str, rep: Report, *, plot: bool, svg: bool) -> IndexEntry:
        t = rep.totals
        return cls(stem, rep.name, tuple(to_json(d) for d in rep.input_shape), to_json(t["params"]), to_json(t["macs"]),
                   to_json(t["activation_bytes"]), len(rep.rows), plot, svg)

    @property
    def input_text(self) -> str:
        return "×".join(map(str, self.input_shape))


def exact_text(v: int | str) -> str:
    """:func:`units.exact` of a JSON value: digits with thousands separators, or the formula with powers as '^'."""
    return f"{v:,}" if isinstance(v, int) else v.replace("**", "^")


def size_text(v: int | str) -> str:
    """:func:`units.size` of a JSON value."""
    return units.size(v) if isinstance(v, int) else f"{v.replace('**', '^')} B"


def gallery_row(e: IndexEntry, tables: Sequence[str]) -> str:
    """The index.html row of one network (every text escaped)."""
    links = [f'<a href="{_esc(e.stem)}.svg">diagram</a>'] if e.svg else []
    links += [f'<a href="{_esc(e.stem)}.png">plot</a>'] if e.plot else []
    links += [f'<a href="{_esc(e.stem)}.{ext}">{ext}</a>' for ext in tables]
    cells = [
        f"<td>{_esc(e.name)}</td>",
        f"<td>{_esc(e.input_text)}</td>",
        *(f'<td data-value="{_esc(str(v))}">{_esc(exact_text(v))}</td>' for v in (e.params, e.macs)),
        f'<td data-value="{_esc(str(e.activation_bytes))}">{_esc(size_text(e.activation_bytes))}</td>',
        f"<td>{e.layers}</td>",
        f"<td>{' '.join(links)}</td>",
    ]
    return f'<tr data-name="{_esc(e.stem)}">' + "".join(cells) + "</tr>"


def gallery_page(entries: Sequence[IndexEntry], *, convention: str, tables: Sequence[str]) -> str:
    """reports/index.html: every network's totals in one sortable table, with links to its files (one row per
    entry, in their order: archcalc.reports.index_entries)."""
    head = "".join(f"<th>{h}</th>" for h in ("network", "input", "params", "MACs", "activation memory", "layers", "files"))
    conv = get_convention(convention)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<link rel="icon" href="data:,">
<title>archcalc reports</title>
<style>{_CSS}</style>
</head>
<body>
<h1>archcalc reports</h1>
<p class="note">Generated by <code>archcalc reports</code>: float32, batch 1, convention '{_esc(conv.name)}': {_esc(conv.description)}
Activation memory is the sum of every layer's output (KB, MB, GB: powers of 1024). Click a header to sort.
Each network's own page: <code>archcalc table specs/NAME.json -o NAME.html</code>.</p>
<table id="networks">
<thead><tr>{head}</tr></thead>
<tbody>
{chr(10).join(gallery_row(e, tables) for e in entries)}
</tbody>
</table>
<script>{_SORT_JS}</script>
</body>
</html>
"""


__all__ = ["IndexEntry", "gallery_page", "to_page"]
