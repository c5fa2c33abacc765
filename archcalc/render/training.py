"""Render a TrainingMemory (``archcalc memory``) and a Fit (``archcalc fit``).  Format only."""

from __future__ import annotations

import csv
import html
import io
import json
from typing import TYPE_CHECKING, Any

from ..dims import dim_text, is_symbolic, simplify, to_json
from ..errors import escape_control
from . import units

if TYPE_CHECKING:
    from ..training import Fit, MemoryRow, TrainingMemory

HEADERS = ["layer", "type", "output", "saved for backward", "what is kept"]
TOTAL_LABELS = {
    "saved_bytes": "saved for backward",
    "param_bytes": "parameters",
    "grad_bytes": "gradients",
    "optimizer_bytes": "optimizer state",
    "peak_bytes": "peak of a training step",
}


def _shape(dims: tuple[Any, ...], sep: str = "\u00d7") -> str:
    return sep.join(str(simplify(d)) for d in dims)


def _size(v: Any) -> str:
    return "unknown" if v is None else units.size(v)


def _exact(v: Any) -> str:
    if v is None:
        return "unknown"
    if type(v).__name__ == "Piecewise":  # a block repeated l times whose first copies differ: "at l = 1: ...; from l = 2: ..."
        cases = [(value, cond) for value, cond in v.args]
        known = [f"at {cond.lhs} = {cond.rhs}: {_exact(value)}" for value, cond in cases[:-1]]  # each Eq(l, k); the last: True
        first = 1 + max(int(cond.rhs) for _, cond in cases[:-1])
        return "; ".join([*known, f"from {cases[0][1].lhs} = {first}: {_exact(cases[-1][0])}"])
    v = simplify(v)
    return f"{_linear(v) or v} bytes" if is_symbolic(v) else f"{int(v):,} bytes ({units.size(v)})"


def _linear(v: Any) -> str | None:
    """``a + b*N`` with digit groups, as the totals write a peak in the batch N (review s9 #12: a piecewise peak's
    last line read ``360528*N + 47760``); None where ``v`` is not whole numbers times one symbol, plus a whole number."""
    symbols = list(v.free_symbols)
    poly = v.as_poly(symbols[0]) if len(symbols) == 1 else None
    if poly is None or poly.degree() != 1 or not all(c.is_Integer for c in poly.all_coeffs()):
        return None
    b, a = (int(c) for c in poly.all_coeffs())
    return f"{a:,} + {b:,}*{symbols[0]}" if a else f"{b:,}*{symbols[0]}"


def _caption(m: TrainingMemory) -> str:
    opt = "no optimizer" if m.optimizer == "none" else f"optimizer {m.optimizer}"
    ck = f", checkpointing {', '.join(m.checkpoint)}" if m.checkpoint else ""
    return f"{escape_control(m.display_name)}: training memory, input {_shape(m.input_shape)}, batch {m.batch}, {m.dtype}, {opt}, {m.device}{ck}"


def _name(r: MemoryRow) -> str:
    times = "" if type(r.repeat) is int and r.repeat == 1 else f" (\u00d7{dim_text(r.repeat)})"  # one copy of a block repeated l times
    return r.name + (" (train)" if r.training_only else "") + times


def _rows(m: TrainingMemory) -> list[list[str]]:
    return [
        [_name(r), r.type, _shape(r.output_shape), _size(r.saved_bytes), r.describe(units.size)]
        for r in m.rows
    ]


def _total(m: TrainingMemory, key: str) -> str:
    """A total; with a symbolic batch N, as a + b*N (the part that does not grow with the batch first)."""
    v = m.totals[key]
    lines = m.peak_lines if key == "peak_bytes" and len(m.peak_lines) > 1 else [(m.fixed[key], m.per_sample[key])]
    numbers = all(isinstance(a, int) and isinstance(b, int) and b for a, b in lines)
    piecewise = type(v).__name__ == "Piecewise"  # at batch 1 another conv kernel: the lines hold from 2
    if v is not None and not piecewise and is_symbolic(m.batch) and getattr(m.batch, "is_Symbol", False) and numbers:
        terms = [f"{a:,} + {b:,}*{m.batch}" if a else f"{b:,}*{m.batch}" for a, b in lines]
        return f"{terms[0]} bytes" if len(terms) == 1 else f"max({', '.join(terms)}) bytes"
    return _exact(v)


def _floor_note(m: TrainingMemory) -> str:
    """Why the peak is a lower bound (some layer's workspace not all counted), or ''."""
    if not m.not_counted or m.totals["peak_bytes"] is None:
        return ""
    some = ", ".join(list(m.not_counted)[:4]) + (f" and {len(m.not_counted) - 4} more" if len(m.not_counted) > 4 else "")
    return f"the workspace of {some} is not all counted (see the assumptions)"


def _total_lines(m: TrainingMemory) -> list[str]:
    lines = [f"{TOTAL_LABELS[k]}: {_total(m, k)}" for k in TOTAL_LABELS]
    floor = _floor_note(m)
    if floor:  # the peak is then a lower bound: say so on it
        lines[-1] += f"; at least: {floor}"
    if m.checkpoint:
        lines.append(f"without checkpointing, saved for backward: {_exact(m.saved_without_checkpoint)}")
        lines.append(
            f"recomputation: one more forward of the checkpointed blocks, {units.exact(simplify(m.recompute_flops * m.batch))} FLOPs per step"
        )
    for i, (block, (count, v)) in enumerate(m.per_copy.items(), start=1):  # under the saved total
        first = m.first_copy.get(block)
        if first is None:
            lines.insert(i, f"  of which one copy of {block} (\u00d7{dim_text(count)}): {'unknown' if v is None else _exact(v)}")
        else:  # the first copy keeps its input, which later copies read already kept (the previous copy's output)
            lines.insert(i, f"  of which each copy of {block} after the first (\u00d7({dim_text(count)} - 1)): {_exact(v)}")
            lines.insert(i + 1, f"  and its first copy (it reads the block's input): {_exact(first)}")
    if m.unknown:
        some = ", ".join(m.unknown[:5]) + ("..." if len(m.unknown) > 5 else "")
        lines.append(f"unknown: {some} keep tensors not worked out for their type (or, under --amp, for autocast)")
    return lines


def _text(m: TrainingMemory) -> str:
    from tabulate import tabulate

    table = tabulate(_rows(m), HEADERS, tablefmt="simple", colalign=("left", "left", "right", "right", "left"))
    return "\n".join([_caption(m), "", table, "", *_total_lines(m), "assumptions:", *(f"  {a}" for a in m.assumptions)]) + "\n"


def _markdown(m: TrainingMemory) -> str:
    from tabulate import tabulate

    from . import md_escape

    body = [[md_escape(c) for c in row] for row in _rows(m)]
    out = f"*{md_escape(_caption(m))}*\n\n" + tabulate(body, HEADERS, tablefmt="github", disable_numparse=True) + "\n\n"
    out += "".join(f"- {md_escape(line)}\n" for line in _total_lines(m))
    return out + "\nAssumptions:\n\n" + "".join(f"- {md_escape(a)}\n" for a in m.assumptions)


def _latex(m: TrainingMemory) -> str:
    from . import _latex_escape

    lines = [r"\begin{table}", r"\centering", r"\begin{tabular}{llrrl}", r"\toprule", " & ".join(HEADERS) + r" \\", r"\midrule"]
    for row in _rows(m):
        lines.append(" & ".join(_latex_escape(c) for c in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_latex_escape(_caption(m))}}}", r"\end{table}", ""]
    lines += [_latex_escape(line) + r"\\" for line in _total_lines(m)]
    return "\n".join(lines) + "\n"


def _csv(m: TrainingMemory) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "type", "output_shape", "saved_bytes", "kept"])
    for r in m.rows:
        w.writerow([r.name, r.type, _shape(r.output_shape, "x"), "unknown" if r.saved_bytes is None else to_json(r.saved_bytes), r.describe(str)])
    for k, v in m.totals.items():
        w.writerow([k, "", "", "unknown" if v is None else to_json(v), ""])
    return buf.getvalue()


def _json(m: TrainingMemory) -> str:
    doc = m.to_json()
    layers = doc.pop("layers")
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in doc.items()]
    rows = ",\n".join(f"    {json.dumps(row)}" for row in layers)
    return "{\n" + "\n".join(lines) + f'\n  "layers": [\n{rows}\n  ]\n}}\n'


def _html(m: TrainingMemory) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in _rows(m))
    foot = "".join(f"<p>{html.escape(line)}</p>\n" for line in [*_total_lines(m), *m.assumptions])
    return f"<table>\n<caption>{html.escape(_caption(m))}</caption>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n{foot}"


RENDERERS = {"text": _text, "markdown": _markdown, "latex": _latex, "csv": _csv, "json": _json, "html": _html}


def render_memory(m: TrainingMemory, fmt: str = "text") -> str:
    return RENDERERS[fmt](m)


def render_fit(fit: Fit, fmt: str = "text") -> str:
    m = fit.report
    if fmt == "json":
        return json.dumps(fit.to_json(), indent=2) + "\n"
    lines_ab = m.peak_lines if len(m.peak_lines) > 1 else [(fit.fixed_bytes, fit.per_sample_bytes)]
    terms = [f"{units.exact(a)} + {units.exact(b)}*N" for a, b in lines_ab]
    formula = f"{terms[0]} bytes" if len(terms) == 1 else f"max({', '.join(terms)}) bytes"
    lines = [
        f"{escape_control(m.display_name)} on {fit.memory:,} bytes: {m.dtype}, optimizer {m.optimizer}, {m.device}"
        + (f", checkpointing {', '.join(m.checkpoint)}" if m.checkpoint else ""),
        f"peak of a training step = {formula}",
    ]
    floor = _floor_note(m)
    if floor:  # the peak counted is a lower bound: the batch found is an upper bound, and may not fit (review s9 #3)
        lines[-1] += f"; at least: {floor}"
    if fit.max_batch == 0:
        lines.append(f"nothing fits: even batch 1 needs {units.exact(fit.fixed_bytes + fit.per_sample_bytes)} bytes"
                     + (" or more" if floor else ""))
    elif floor:
        peak = f"{fit.peak_bytes:,} bytes counted, {units.size(fit.peak_bytes)}"
        lines.append(
            f"largest batch: at most {fit.max_batch:,} (peak at least {peak}; headroom at most {fit.headroom_bytes:,} bytes): "
            f"batch {fit.max_batch:,} may not fit, as what is not counted can take more than the headroom"
        )
    else:
        peak, room = f"{fit.peak_bytes:,} bytes, {units.size(fit.peak_bytes)}", f"{fit.headroom_bytes:,} bytes, {units.size(fit.headroom_bytes)}"
        lines.append(f"largest batch: {fit.max_batch:,} (peak {peak}; headroom {room})")
    if fit.without_checkpoint is not None:
        w = fit.without_checkpoint
        lines.append(
            f"without checkpointing: largest batch {w.max_batch:,}; checkpointing buys {fit.max_batch - w.max_batch:,} more samples "
            f"for one more forward of the checkpointed blocks, {units.exact(m.recompute_flops)} FLOPs per sample "
            f"({units.exact(m.recompute_flops * fit.max_batch)} per step at batch {fit.max_batch:,})"
        )
    lines += ["assumptions:", *(f"  {a}" for a in m.assumptions)]
    out = "\n".join(lines) + "\n"
    if fmt == "markdown":
        from . import md_escape

        return "".join(f"{md_escape(line)}\n\n" for line in lines)
    if fmt == "html":
        return "".join(f"<p>{html.escape(line)}</p>\n" for line in lines)
    if fmt == "latex":
        from . import _latex_escape

        return "".join(_latex_escape(line) + "\\\\\n" for line in lines)
    if fmt == "csv":
        buf = io.StringIO()
        out_csv = csv.writer(buf, lineterminator="\n")
        out_csv.writerow(["name", "memory", "max_batch", "peak_bytes", "headroom_bytes", "fixed_bytes", "per_sample_bytes"])
        fixed, per = to_json(fit.fixed_bytes), to_json(fit.per_sample_bytes)
        out_csv.writerow([m.name, fit.memory, fit.max_batch, fit.peak_bytes, fit.headroom_bytes, fixed, per])
        return buf.getvalue()
    return out
