"""Architecture diagrams: a Report drawn as a Graphviz graph, each node with its shape and cost.

One node per layer, or per block where the network is drawn collapsed (``archcalc.grouping``: the
rule the summary tables and plots use too).  A collapsed block called once is a box around its
branches, each branch (a chain of layers, one reading the other) one node, so an Inception module
shows its four paths and the concat; a repeated call (ResNet's ``layer3 x36``) is one node.  Edges
carry the tensor's per-sample shape; training-only heads are dashed; nodes are filled on a log
colour scale of the chosen quantity; symbolic values are written as formulas (and left white).

The DOT source is written here, deterministically, without Graphviz; drawing it (SVG, PDF, PNG)
runs Graphviz's ``dot`` through the ``graphviz`` package (``pip install 'archcalc[diagram]'`` and
the Graphviz program, e.g. ``apt-get install graphviz``).  Every name is escaped: nodes are
``n0, n1...``, labels are Graphviz HTML labels built from ``html.escape``d text.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .dims import Dim, human_text, is_symbolic, simplify
from .errors import SpecError
from .grouping import group_rows, resolve_depth
from .render import units
from .report import Report, Row

COLORS = ("macs", "params", "memory", "none")
RANKDIRS = ("TB", "LR")
DRAWN = ("svg", "pdf", "png")
FORMATS = (*DRAWN, "dot")

# ColorBrewer YlOrRd, 9 classes (light to dark); text turns white on the last three
PALETTE = ("#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#bd0026", "#800026")
_QUANTITY = {"macs": ("macs", "MACs"), "params": ("params", "params"), "memory": ("activation_bytes", "memory")}


@dataclass
class Unit:
    """One drawn node: a layer, a branch (chain of layers) inside a collapsed block, or a repeated block."""

    id: str
    rows: list[Row]
    title: str  # the bold first line
    kind: str  # the second line: a layer's type, 'conv2d → relu' for a branch, 'block ×36' for a call
    values: dict[str, Dim]
    cluster: str | None = None  # the collapsed block it is drawn inside
    training_only: bool = False
    inputs: list[str] = field(default_factory=list)  # row names it reads from outside itself

    @property
    def output(self) -> Row:
        main = [r for r in self.rows if not r.training_only]
        return (main or self.rows)[-1]


@dataclass
class Layout:
    """What a diagram draws: units in report order, clusters (name -> totals, training-only), edges."""

    units: list[Unit]
    clusters: dict[str, tuple[dict[str, Dim], bool]]
    depth: int | None


def _sum(rows: Sequence[Row], q: str) -> Dim:
    total: Any = 0
    for r in rows:
        total = total + getattr(r, q)
    return simplify(total)


def _values(rows: Sequence[Row], include_training_only: bool) -> dict[str, Dim]:
    counted = [r for r in rows if include_training_only or not r.training_only] or list(rows)
    return {q: _sum(counted, q) for q in ("params", "macs", "flops", "activation_bytes")}


def _local(name: str, prefix: str) -> str:
    return name[len(prefix) + 1 :] if prefix and name.startswith(prefix + ".") else name


def _chains(rows: Sequence[Row], consumers: dict[str, list[str]]) -> list[list[Row]]:
    """The rows split into branches: a row joins its input's chain when that input is in the same
    group, is its only input and has no other reader (and both are, or are not, training-only)."""
    names = {r.name for r in rows}
    chain_of: dict[str, list[Row]] = {}
    chains: list[list[Row]] = []
    for r in rows:
        ins = list(dict.fromkeys(r.inputs))
        prev = ins[0] if len(ins) == 1 else None
        if prev in names and prev in chain_of and consumers.get(prev) == [r.name] and chain_of[prev][-1].training_only == r.training_only:
            chain = chain_of[prev]
            if chain[-1].name == prev:
                chain.append(r)
                chain_of[r.name] = chain
                continue
        chain_of[r.name] = [r]
        chains.append(chain_of[r.name])
    return chains


def _branch_title(chain: Sequence[Row], prefix: str) -> str:
    costed = [r for r in chain if r.macs != 0] or [r for r in chain if r.params != 0] or list(chain)  # conv, not its batchnorm
    names = [_local(r.name, prefix) for r in costed]
    return " \u2192 ".join(names if len(names) <= 3 else [names[0], "\u2026", names[-1]])


def _branch_kind(chain: Sequence[Row]) -> str:
    kinds: list[str] = []
    for r in chain:
        if not kinds or kinds[-1] != r.type:
            kinds.append(r.type)
    return " \u2192 ".join(kinds if len(kinds) <= 4 else [*kinds[:2], "\u2026", kinds[-1]])


def layout(rep: Report, depth: int | None = None) -> Layout:
    """The units to draw at ``depth`` (None: the default, collapsed past ``grouping.MAX_EXPANDED`` layers)."""
    depth = resolve_depth(rep, depth)
    consumers: dict[str, list[str]] = {}
    for r in rep.rows:
        for src in dict.fromkeys(r.inputs):
            consumers.setdefault(src, []).append(r.name)
    units_: list[Unit] = []
    clusters: dict[str, tuple[dict[str, Dim], bool]] = {}
    inc = rep.include_training_only

    def add(rows: list[Row], title: str, kind: str, values: dict[str, Dim], cluster: str | None = None) -> None:
        units_.append(Unit(f"n{len(units_)}", rows, title, kind, values, cluster, all(r.training_only for r in rows)))

    for g in group_rows(rep, depth):
        if not g.block:
            r = g.rows[0]
            add([r], r.name, r.type, _values([r], True))
        elif g.repeat > 1:
            add(list(g.rows), g.label, f"block \u00d7{g.repeat}, {len(g.rows)} layers", g.totals)
        else:
            chains = _chains(g.rows, consumers)
            if len(chains) == 1:
                add(list(g.rows), g.name, f"block: {_branch_kind(g.rows)}", g.totals)
                continue
            clusters[g.name] = (g.totals, g.training_only)
            for chain in chains:
                add(chain, _branch_title(chain, g.name), _branch_kind(chain), _values(chain, inc or g.training_only), g.name)
    for u in units_:
        mine = {r.name for r in u.rows}
        u.inputs = list(dict.fromkeys(src for r in u.rows for src in r.inputs if src not in mine))
    return Layout(units_, clusters, depth)


# -- text of labels -------------------------------------------------------------------------------


def _clean(text: str) -> str:
    """Label text: control characters (a newline in a name) shown as spaces, then HTML-escaped; a
    backslash doubled, since Graphviz expands ``\\N`` (the node's id) and ``\\G`` even in HTML labels."""
    text = html.escape("".join(" " if ord(c) < 32 or c == "\x7f" else c for c in text), quote=True)
    return text.replace("\\", "&#92;&#92;")


def shape_text(dims: Sequence[Dim]) -> str:
    out = []
    for raw in dims:
        d: Any = simplify(raw)
        out.append(f"({d})" if is_symbolic(d) and d.is_Add else str(d))
    return "\u00d7".join(out)


def value_text(v: Dim, quantity: str) -> str:
    """'118.01M MACs', '1.38MB memory', or the formula when symbols remain."""
    v = simplify(v)
    word = _QUANTITY[quantity][1]
    if is_symbolic(v):
        return f"{human_text(v)} {'B' if quantity == 'memory' else word}"  # 9*C^2*H*W MACs, as the tables write it
    text = units.size(v) if quantity == "memory" else units.count(v)
    return f"{text} {word}"


def _number(v: Dim) -> int | None:
    v = simplify(v)
    return None if is_symbolic(v) else int(v)


def color_scale(values: Sequence[Dim]) -> Callable[[Dim], int | None]:
    """A value's class on a 9-step log scale between the smallest and largest positive values
    (None: zero or symbolic, left unfilled)."""
    nums = [n for n in (_number(v) for v in values) if n and n > 0]
    if not nums:
        return lambda v: None
    lo, hi = math.log(min(nums)), math.log(max(nums))

    def cls(v: Dim) -> int | None:
        n = _number(v)
        if not n or n <= 0:
            return None
        if hi == lo:
            return len(PALETTE) - 1
        return min(len(PALETTE) - 1, int((math.log(n) - lo) / (hi - lo) * len(PALETTE)))

    return cls


def _dot_string(text: str) -> str:
    """A DOT double-quoted string that Graphviz reads back as ``text`` (no escapes expanded)."""
    text = "".join(" " if ord(c) < 32 else c for c in text)
    # the lexer keeps backslashes, then escString turns '\\\\' into one: four in the source, one in the picture
    return '"' + text.replace("\\", "\\" * 4).replace('"', '\\"') + '"'


def _quantity_key(color: str) -> str:
    return _QUANTITY[color][0] if color != "none" else "macs"


def to_dot(rep: Report, *, depth: int | None = None, color: str = "macs", rankdir: str = "TB", lay: Layout | None = None) -> str:
    """The diagram as DOT source (deterministic: the same report gives the same text)."""
    if color not in COLORS:
        raise SpecError(f"--color must be one of {', '.join(COLORS)}, got {color!r}", field="--color")
    if rankdir not in RANKDIRS:
        raise SpecError(f"--rankdir must be TB or LR, got {rankdir!r}", field="--rankdir")
    lay = lay or layout(rep, depth)
    shown = color if color != "none" else "macs"
    q = _quantity_key(shown)
    cls = color_scale([u.values[q] for u in lay.units]) if color != "none" else (lambda v: None)
    where = {r.name: u for u in lay.units for r in u.rows}
    lines = [
        "digraph archcalc {",
        f"  graph [rankdir={rankdir}, fontname=Helvetica, fontsize=11, nodesep=0.25, ranksep=0.35, newrank=true];",
        '  node [shape=box, style="rounded,filled", fillcolor=white, fontname=Helvetica, fontsize=10, margin="0.12,0.05"];',
        "  edge [fontname=Helvetica, fontsize=8, color=gray35, fontcolor=gray25, arrowsize=0.6];",
        f'  input [id="input", shape=ellipse, style=filled, fillcolor=gray95, label=<<b>input</b><br/>{_clean(shape_text(rep.input_shape))}>];',
    ]

    def node(u: Unit, indent: str) -> str:
        c = cls(u.values[q])
        fill = PALETTE[c] if c is not None else "white"
        font = "white" if c is not None and c >= len(PALETTE) - 3 else "black"
        style = "rounded,filled,dashed" if u.training_only else "rounded,filled"
        label = (
            f"<b>{_clean(u.title)}</b><br/><font point-size='9'>{_clean(u.kind)}</font><br/>{_clean(shape_text(u.output.output_shape))}"
            f"<br/>{_clean(value_text(u.values[q], shown))}"
        )
        tip = ", ".join(r.name for r in u.rows[:8]) + (f" and {len(u.rows) - 8} more" if len(u.rows) > 8 else "")
        return (
            f'{indent}{u.id} [id="{u.id}", class="layer", fillcolor="{fill}", fontcolor="{font}", style="{style}", '
            f"tooltip={_dot_string(tip)}, label=<{label}>];"
        )

    done: set[str] = set()
    for i, u in enumerate(lay.units):
        if u.cluster is None:
            lines.append(node(u, "  "))
            continue
        if u.cluster in done:
            continue
        done.add(u.cluster)
        totals, training = lay.clusters[u.cluster]
        members = [w for w in lay.units[i:] if w.cluster == u.cluster]
        lines.append(f"  subgraph cluster_{len(done)} {{")
        lines.append(
            f'    graph [id="c{len(done)}", style="rounded{",dashed" if training else ""}", color=gray50, fontsize=10, labeljust=l, '
            f"label=<<b>{_clean(u.cluster)}</b> &#8212; {_clean(value_text(totals[q], shown))}>];"
        )
        lines += [node(w, "    ") for w in members]
        lines.append("  }")

    for u in lay.units:
        for src in u.inputs:
            if src == "input":
                tail, tshape = "input", rep.input_shape
            else:
                su = where[src]
                tail, tshape = su.id, next(r for r in su.rows if r.name == src).output_shape
            dashed = ", style=dashed" if u.training_only else ""
            lines.append(f"  {tail} -> {u.id} [label=<{_clean(shape_text(tshape))}>{dashed}];")
    lines.append(f"  graph [labelloc=b, fontsize=10, label=<{'<br/>'.join(_clean(part) for part in legend(rep, color, lay))}>];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def legend(rep: Report, color: str, lay: Layout) -> list[str]:
    t = rep.totals
    parts = [
        f"{rep.name}: {value_text(t['params'], 'params')}, {value_text(t['macs'], 'macs')} ('{rep.convention}' convention), "
        f"{value_text(t['activation_bytes'], 'memory')} of {rep.dtype} outputs"
    ]
    notes = []
    if color != "none":
        notes.append(f"fill: {_QUANTITY[color][1]} on a log scale, light to dark")
    notes.append("edges: per-sample tensor shapes")
    if any(u.training_only for u in lay.units):
        notes.append("dashed: training-only" + ("" if rep.include_training_only else ", not in the totals"))
    if lay.depth is not None:
        notes.append(f"blocks collapsed at depth {lay.depth} (--depth to open them)")
    return [*parts, "; ".join(notes)]


class DiagramError(SpecError):
    """Drawing needs something that is not installed (one line, exit 2)."""


INSTALL = "apt-get install graphviz (or brew install graphviz)"
PACKAGE = "pip install 'archcalc[diagram]'"


def need_graphviz(alternative: str = "-o NAME.dot needs none") -> None:
    """Raise the one-line DiagramError unless the graphviz package and Graphviz's dot are installed."""
    import shutil

    try:
        import graphviz  # noqa: F401
    except ImportError:
        raise DiagramError(f"drawing a diagram needs the graphviz package ({PACKAGE}); {alternative}", field="--output") from None
    if shutil.which("dot") is None:
        raise DiagramError(f"drawing a diagram needs Graphviz's dot program: {INSTALL}; {alternative}", field="--output")


def draw(dot_source: str, fmt: str) -> bytes:
    """Run Graphviz's dot on the source: SVG, PDF or PNG bytes."""
    if fmt not in DRAWN:
        raise SpecError(f"a diagram is drawn as {', '.join(DRAWN)} (or written as .dot), not {fmt!r}", field="--output")
    try:
        import graphviz
    except ImportError:
        raise DiagramError(f"drawing a diagram needs the graphviz package ({PACKAGE}); -o NAME.dot needs none", field="--output") from None
    try:
        out: bytes = graphviz.pipe("dot", fmt, dot_source.encode("utf-8"), quiet=True)
    except graphviz.ExecutableNotFound:
        raise DiagramError(f"drawing a diagram needs Graphviz's dot program: {INSTALL}; -o NAME.dot needs none", field="--output") from None
    except graphviz.CalledProcessError as e:  # pragma: no cover - our DOT is well formed; a broken Graphviz install
        raise DiagramError(f"Graphviz's dot failed: {(e.stderr or b'').decode(errors='replace').strip()[:200]}", field="--output") from None
    if fmt == "svg":
        out = _stamp(out, dot_source)
    return out


def source_digest(dot_source: str) -> str:
    import hashlib

    return hashlib.sha256(dot_source.encode("utf-8")).hexdigest()


def _stamp(svg: bytes, dot_source: str) -> bytes:
    """The SVG with the DOT source's SHA-256 in a comment before ``<svg``: Graphviz's layout is the
    same for the same source and Graphviz version (its version is in its own comment), so a
    gallery's diagram can be checked for staleness where another Graphviz would lay it out anew."""
    stamp = f"<!-- archcalc dot source sha256 {source_digest(dot_source)} -->\n".encode()
    at = svg.find(b"<svg")
    return svg[:at] + stamp + svg[at:] if at >= 0 else svg


def diagram_bytes(rep: Report, fmt: str, *, depth: int | None = None, color: str = "macs", rankdir: str = "TB") -> bytes:
    src = to_dot(rep, depth=depth, color=color, rankdir=rankdir)
    return src.encode("utf-8") if fmt == "dot" else draw(src, fmt)


def format_of(path: str | None) -> str:
    """svg, pdf, png or dot from the file name (default svg)."""
    import os

    ext = os.path.splitext(path or "")[1].lower().lstrip(".")
    if not path or path == "-":
        return "svg"
    if ext not in FORMATS:
        raise SpecError(f"{path}: a diagram is written as .svg, .pdf, .png or .dot", field="--output")
    return ext
