"""The reports gallery: for each spec, Markdown, LaTeX, CSV and JSON tables, PNG plots and an SVG
diagram, plus an index (Markdown, and a self-contained HTML page).

    archcalc reports specs/*.json -o reports/

Regenerating is one command; tests/test_reports.py fails when a committed text report is stale.
Plots need matplotlib (the ``plot`` extra): per-layer activation memory, params and MACs, the
picture that shows memory in the early convolutions, parameters in the fully connected layers and
compute in the convolutions.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path

from .grouping import Group
from .output import atomic_write, atomic_write_all
from .render import md_escape, render, units
from .render.page import IndexEntry
from .report import Report, analyze

TABLES = {"md": "markdown", "tex": "latex", "csv": "csv", "json": "json"}


def plot_groups(rep: Report, depth: int | None = None) -> list[Group]:
    """The bars of a plot: layers (a small network) or blocks (``grouping.resolve_depth``) that count
    towards the totals and have memory, params or MACs."""
    from .grouping import group_rows, resolve_depth

    groups = [g for g in group_rows(rep, resolve_depth(rep, depth)) if not g.training_only or rep.include_training_only]
    return [g for g in groups if g.totals["activation_bytes"] or g.totals["params"] or g.totals["macs"]]


def plot_png(rep: Report, depth: int | None = None) -> bytes:
    """Bar charts of activation memory, params and MACs, and their cumulative share along depth.

    A small network gets one bar per layer (those with any of the three); a deep one one bar per
    block at the collapsed depth (``archcalc.grouping``, the rule the diagrams use): ResNet-152's
    stem layers, ``layer1 ×3`` ... ``layer4 ×3`` and its head.  The last panel follows every layer
    in order: the share of all MACs and of all activation memory reached by that layer, so a reader
    sees where along the network the compute and the memory sit.  PNG bytes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from .grouping import resolve_depth

    depth = resolve_depth(rep, depth)
    groups = plot_groups(rep, depth)
    names = [g.label for g in groups]
    series = [
        ("activation memory (KiB)", [int(g.totals["activation_bytes"]) / 1024 for g in groups], "#4C72B0"),
        ("params (K)", [int(g.totals["params"]) / 1000 for g in groups], "#DD8452"),
        (f"MACs (M, '{rep.convention}')", [int(g.totals["macs"]) / 1e6 for g in groups], "#55A868"),
    ]
    n = len(groups)
    width = min(max(8.0, 0.24 * n + 2.5), 18.0)
    fig, axes = plt.subplots(4, 1, figsize=(width, 10), layout="constrained", gridspec_kw={"height_ratios": [1, 1, 1, 1.1]})
    label_size = 8 if n <= 40 else 7
    for ax, (title, values, color) in zip(axes[:3], series, strict=True):
        ax.bar(range(n), values, color=color)
        ax.set_ylabel(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.set_xlim(-0.6, n - 0.4)
        ax.set_xticks(range(n))
        ax.tick_params(axis="y", labelsize=8)
        ax.tick_params(axis="x", labelbottom=ax is axes[2])  # one set of labels, under the last bar panel
    axes[2].set_xticklabels(names, rotation=60 if n > 12 else 0, ha="right" if n > 12 else "center", fontsize=label_size)
    rows = rep.counted_rows
    total_macs, total_mem = int(rep.totals["macs"]), int(rep.totals["activation_bytes"])
    macs, mem, acc_m, acc_b = [], [], 0, 0
    for r in rows:
        acc_m += int(r.macs)
        acc_b += int(r.activation_bytes)
        macs.append(100 * acc_m / total_macs if total_macs else 0.0)
        mem.append(100 * acc_b / total_mem if total_mem else 0.0)
    ax = axes[3]
    x = range(1, len(rows) + 1)
    ax.step(x, macs, where="post", color="#55A868", label="MACs")
    ax.step(x, mem, where="post", color="#4C72B0", label="activation memory")
    ax.set_ylim(0, 101)
    ax.set_xlim(0, len(rows) + 1)
    ax.set_ylabel("cumulative %", fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer, in order (counted layers)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8, loc="lower right")
    if depth is not None:  # where each block starts along the layers, labelled
        index = {r.name: i for i, r in enumerate(rows, start=1)}
        for g in groups:
            if g.block and g.rows[0].name in index:
                i = index[g.rows[0].name]
                ax.axvline(i - 0.5, color="gray", lw=0.6, ls=":")
                ax.text(i, 2, g.label, fontsize=7, rotation=90, va="bottom", ha="left", color="dimgray")
    t = rep.totals
    what = "per layer" if depth is None else f"per block (depth {depth})"
    fig.suptitle(
        f"{rep.name}: {units.count(t['params'])} params, {units.count(t['macs'])} MACs, {units.size(t['activation_bytes'])} activations; bars {what}",
        fontsize=11,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def diagram_svg(rep: Report) -> bytes:
    """The default diagram (archcalc.diagram) as SVG, as the gallery commits it."""
    from .diagram import diagram_bytes

    return diagram_bytes(rep, "svg")


def plot_report(rep: Report, path: Path, depth: int | None = None) -> None:
    """Write :func:`plot_png` to ``path`` (atomically)."""
    atomic_write(path, plot_png(rep, depth))


def _generated_line(convention: str) -> str:
    return f"Generated by `archcalc reports` (convention '{convention}', float32, batch 1)."


def index_entries(
    reports: Sequence[tuple[str, Report]], *, plots: bool | Sequence[bool], diagrams: bool | Sequence[bool], earlier: Sequence[IndexEntry] = ()
) -> list[IndexEntry]:
    """The index's rows, one per network: this run's, with the ``earlier`` ones (:func:`earlier_entries`) merged
    in by name (this run's order alone where there are none)."""
    has_plot = [plots] * len(reports) if isinstance(plots, bool) else list(plots)
    has_svg = [diagrams] * len(reports) if isinstance(diagrams, bool) else list(diagrams)
    entries = [IndexEntry.of_report(stem, rep, plot=p, svg=v) for (stem, rep), p, v in zip(reports, has_plot, has_svg, strict=True)]
    return sorted([*entries, *earlier], key=lambda e: e.stem) if earlier else entries


def index_markdown(
    reports: Sequence[tuple[str, Report]],
    *,
    plots: bool | Sequence[bool] = True,
    convention: str = "lecture",
    diagrams: bool | Sequence[bool] = False,
    earlier: Sequence[IndexEntry] = (),
) -> str:
    """The gallery's index.md; ``earlier``: networks an earlier run listed and this one keeps (:func:`earlier_entries`)."""
    from .render.page import exact_text, size_text

    lines = [
        "# archcalc reports",
        "",
        _generated_line(convention),
        "",
        "| network | input | params | MACs | activation memory | files |",
        "|---|---|---:|---:|---:|---|",
    ]
    for e in index_entries(reports, plots=plots, diagrams=diagrams, earlier=earlier):
        exts = [*TABLES, *(["png"] if e.plot else []), *(["svg"] if e.svg else [])]
        links = " ".join(f"[{ext}]({e.stem}.{ext})" for ext in exts)
        cells = [e.name, e.input_text, exact_text(e.params), exact_text(e.macs), size_text(e.activation_bytes)]
        lines.append("| " + " | ".join(md_escape(c) for c in cells) + f" | {links} |")
    lines += ["", "[index.html](index.html): the same list in a page, sortable, with the diagrams."]
    return "\n".join(lines) + "\n"


def index_html(
    reports: Sequence[tuple[str, Report]],
    *,
    diagrams: Sequence[bool],
    plots: Sequence[bool],
    convention: str = "lecture",
    earlier: Sequence[IndexEntry] = (),
) -> str:
    """The gallery as one self-contained page: every network's totals (sortable) and its diagram."""
    from .render.page import gallery_page

    entries = index_entries(reports, plots=plots, diagrams=diagrams, earlier=earlier)
    return gallery_page(entries, convention=convention, tables=tuple(TABLES))


def _md_stem(line: str) -> str | None:
    """STEM of an index.md row ``| ... | [md](STEM.md) [tex](STEM.tex) ... |``, else None.  Read with
    ``str.partition`` in time linear in the line: the backtracking regex it replaces took quadratic time on a
    long hostile line (2.2 s at 108 KB; a run with a 300 KB one took 38 s; code review s10 #3)."""
    if not (line.startswith("| ") and line.endswith("|")):
        return None
    _, bar, links = line.rpartition(" | [md](")  # the files cell is the last one ('|' in a name is escaped)
    stem, tex, rest = links.partition(".md) [tex](")
    return stem if bar and tex and stem and rest.startswith(f"{stem}.tex) ") else None


def _html_stem(line: str) -> str | None:
    """STEM of an index.html row ``<tr data-name="STEM">...</tr>`` (unescaped), else None; linear in the line."""
    head = '<tr data-name="'
    if not (line.startswith(head) and line.endswith("</tr>")):
        return None
    stem, quote, rest = line[len(head) :].partition('"')
    return html.unescape(stem) if quote and rest.startswith(">") else None


def _json_value(v: object) -> bool:
    return type(v) is int or isinstance(v, str)


def _entry_from_json(out: Path, stem: str, convention: str) -> IndexEntry:
    """The index row of a network an earlier run listed, from its JSON report ``out/STEM.json`` (the JSON report
    contract, DESIGN.md): its name, input, totals and layer count; the links from the files on disk."""
    from .errors import SpecError

    path = out / f"{stem}.json"
    redo = f"give this run {stem}'s spec to regenerate it, or remove {stem}.* from the folder"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SpecError(f"cannot read {stem}'s JSON report, which the index lists: {e}; {redo}", file=str(path)) from None
    totals = doc.get("totals") if isinstance(doc, dict) else None
    shape = doc.get("input_shape") if isinstance(doc, dict) else None
    if not (
        isinstance(doc, dict)
        and isinstance(doc.get("name"), str)
        and isinstance(shape, list)
        and all(map(_json_value, shape))
        and isinstance(doc.get("layers"), list)
        and isinstance(totals, dict)
        and all(_json_value(totals.get(q)) for q in ("params", "macs", "activation_bytes"))
    ):
        raise SpecError(f"not a JSON report (name, input_shape, layers and totals expected), yet the index lists {stem}; {redo}", file=str(path))
    if (doc.get("convention"), doc.get("dtype"), doc.get("batch")) != (convention, "float32", 1):
        raise SpecError(
            f"{stem}'s report is for convention {doc.get('convention')!r}, dtype {doc.get('dtype')!r}, batch {doc.get('batch')!r}; "
            f"the index states convention '{convention}', float32, batch 1: {redo}",
            file=str(path),
            field="--convention",
        )
    return IndexEntry(
        stem, doc["name"], tuple(shape), totals["params"], totals["macs"], totals["activation_bytes"], len(doc["layers"]),
        plot=(out / f"{stem}.png").exists(), svg=(out / f"{stem}.svg").exists(),
    )


def earlier_entries(out: Path, stems: set[str], convention: str) -> list[IndexEntry]:
    """The networks an earlier run listed in ``out``'s index.md and index.html that this run does not write
    (``stems``) and whose JSON report is still there (review s10: adding one network to the gallery unlisted
    the others), read from that JSON report: of the old indexes only the names are used, so neither a hand-made
    edit nor a script in an old row reaches the new ones (code review s10 #3).  An index of another convention
    is refused: one index states one convention."""
    from .errors import SpecError

    md_path, html_path = out / "index.md", out / "index.html"
    try:
        md_text = md_path.read_text(encoding="utf-8") if md_path.is_file() else ""
        html_text = html_path.read_text(encoding="utf-8") if html_path.is_file() else ""
        # a listed name is kept only where it names a JSON file in out (never a path: "../x" names none there)
        reports = {p.name[: -len(".json")] for p in out.iterdir() if p.name.endswith(".json")}
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"cannot read the existing index in {out}: {e}", field="--output") from None
    md = {s for line in md_text.splitlines() if (s := _md_stem(line)) is not None}
    pages = {s for line in html_text.splitlines() if (s := _html_stem(line)) is not None}
    kept = sorted(s for s in md & pages & reports if s not in stems and (out / f"{s}.json").is_file())
    if kept and _generated_line(convention) not in md_text.splitlines():
        raise SpecError(
            f"{md_path} lists {', '.join(kept[:3])}{' ...' if len(kept) > 3 else ''} under another convention than '{convention}': "
            "one index states one convention; regenerate those too, or write to another folder",
            field="--convention",
        )
    return [_entry_from_json(out, s, convention) for s in kept]


def generate(specs: Sequence[str | Path], out: str | Path, *, plots: bool = True, convention: str = "lecture", diagrams: bool = False) -> list[Path]:
    """Write every table (and plot) for each spec into ``out``, and the index (keeping the networks an earlier
    run listed there, :func:`earlier_entries`); return the files written."""
    from .errors import SpecError

    out = Path(out)
    reports = []
    stems: dict[str, Path] = {}
    for spec in sorted(Path(s) for s in specs):
        if spec.stem in stems and spec.resolve() != stems[spec.stem].resolve():
            raise SpecError(f"{stems[spec.stem]} and {spec} would both write {spec.stem}.*: rename one", file=str(spec))
        stems[spec.stem] = spec
    for spec in sorted({p.resolve(): p for p in stems.values()}.values()):  # every spec analysed before anything is written
        try:
            reports.append((spec.stem, analyze(spec, convention=convention)))
        except SpecError as e:
            raise e.located(file=str(spec)) from None
    # everything is rendered first, then written all or none (temp files, synced, renamed), the index last:
    # a full disk or a failing plot leaves the previous gallery whole, never half of a new one
    files: list[tuple[Path, str | bytes]] = []
    for stem, rep in reports:
        files += [(out / f"{stem}.{ext}", render(rep, fmt)) for ext, fmt in TABLES.items()]
        if plots and not rep.symbolic:  # a bar needs a number: symbolic specs get tables only
            files.append((out / f"{stem}.png", plot_png(rep)))
        if diagrams:
            files.append((out / f"{stem}.svg", diagram_svg(rep)))
    # tables-only runs keep existing plots and diagrams
    has_plot = [(plots and not rep.symbolic) or (out / f"{stem}.png").exists() for stem, rep in reports]
    has_svg = [diagrams or (out / f"{stem}.svg").exists() for stem, _ in reports]
    if out.exists() and not out.is_dir():
        raise SpecError(f"{out} exists and is not a folder", field="--output")
    # the networks an earlier run listed and this one does not write stay in the index, rendered from their JSON reports
    earlier = earlier_entries(out, {stem for stem, _ in reports}, convention) if out.is_dir() else []
    files.append((out / "index.html", index_html(reports, diagrams=has_svg, plots=has_plot, convention=convention, earlier=earlier)))
    files.append((out / "index.md", index_markdown(reports, plots=has_plot, convention=convention, diagrams=has_svg, earlier=earlier)))
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SpecError(f"cannot create {out}: {e.strerror or e}", field="--output") from None
    try:
        atomic_write_all(files)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # the folder this run made, still empty: no trace of a failed run
        raise
    return [p for p, _ in files]
