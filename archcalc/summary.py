"""Stage summaries: ``table --depth N`` shows a network by its blocks, each with its totals.

The blocks come from :mod:`archcalc.grouping` (one rule for diagrams, plots and tables).  What the
grouping leaves as single top-level layers is folded into stages, the way lectures draw them:

* with blocks (ResNet-50 at depth 1): the layers before the first block are the ``stem``
  (conv1, bn1, relu, maxpool), those after the last the ``head`` (avgpool, flatten, fc); a run
  between two blocks is one row named ``first..last`` (a range ``check`` reads);
* without blocks (VGG-16, AlexNet): a stage ends at each pooling layer that shrinks the map
  (``stage1`` is conv1_1..pool1), and what follows the last spatial layer is the ``head``.

Each summary row has the totals of its rows (so the rows add up to the report's totals) and the
output, receptive field and stride of its last row.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from .dims import Dim, simplify
from .grouping import Group, group_rows, max_depth, resolve_depth
from .report import QUANTITIES, Report, Row


def _sum(rows: Sequence[Row], attr: str) -> Dim:
    total: Any = 0
    for r in rows:
        total = total + getattr(r, attr)
    return simplify(total)


def _row(name: str, kind: str, rows: Sequence[Row], rep: Report, totals: dict[str, Dim] | None = None) -> Row:
    counted = [r for r in rows if rep.include_training_only or not r.training_only] or list(rows)
    last = counted[-1]
    t = totals or {q: _sum(counted, q) for q in QUANTITIES}
    ops: dict[str, Any] = {}
    for r in counted:
        for k, v in r.ops.items():
            ops[k] = simplify(ops.get(k, 0) + v)
    return Row(
        name=name,
        type=kind,
        inputs=list(rows[0].inputs),
        output_shape=last.output_shape,
        params=t["params"],
        macs=t["macs"],
        flops=t["flops"],
        activation_bytes=t["activation_bytes"],
        receptive_field=last.receptive_field,
        effective_stride=last.effective_stride,
        ops=ops,
        buffers=_sum(counted, "buffers"),
        training_only=all(r.training_only for r in rows),
        whole_input=last.whole_input,
    )


def _shrinks(row: Row, before: tuple[Dim, ...]) -> bool:
    """A pooling layer whose map is smaller than its input's (a stage ends there)."""
    if "pool" not in row.type or len(row.output_shape) < 2 or len(before) != len(row.output_shape):
        return False
    return [str(d) for d in row.output_shape[1:]] != [str(d) for d in before[1:]]


Part = tuple[str, str, list[Row], "Group | None"]  # (name, kind, member rows, the block's group)


def _stages(rep: Report) -> list[Part]:
    """A network without blocks, by stages that end at each downsampling pool, then its head (all
    that follows the last one: VGG-16's adaptive pool, flatten and classifier)."""
    shapes = {r.name: r.output_shape for r in rep.rows}
    ends = [
        i for i, r in enumerate(rep.rows) if _shrinks(r, tuple(shapes.get(r.inputs[0], rep.input_shape) if r.inputs else rep.input_shape))
    ]
    if not ends:
        return [("stage1", "stage", list(rep.rows), None)]
    out: list[Part] = []
    start = 0
    for end in ends:
        out.append((f"stage{len(out) + 1}", "stage", rep.rows[start : end + 1], None))
        start = end + 1
    if start < len(rep.rows):
        out.append(("head", "head", rep.rows[start:], None))
    return out


def parts(rep: Report, depth: int = 1) -> list[Part]:
    """What ``table --depth`` shows, before it is summed: each summary row's name, kind and rows."""
    if depth < 1:
        raise ValueError(f"depth must be 1 or more, got {depth}")
    groups = group_rows(rep, resolve_depth(rep, depth) or depth)
    if not any(g.block for g in groups):
        if max_depth(rep):  # past the deepest block of a network with blocks: every layer (not stages cut at its SE pools)
            return [(r.name, r.type, [r], None) for r in rep.rows]
        return _stages(rep)
    first = next(i for i, g in enumerate(groups) if g.block)
    last = max(i for i, g in enumerate(groups) if g.block)
    out: list[Part] = []
    run: list[Group] = []

    def flush(where: str) -> None:
        if not run:
            return
        members = [r for g in run for r in g.rows]
        name = where if where else (run[0].name if len(run) == 1 else f"{run[0].name}..{run[-1].name}")
        kind = where if where else (members[0].type if len(members) == 1 else "layers")
        out.append((name, kind, members, None))
        run.clear()

    for i, g in enumerate(groups):
        if g.block:
            flush("stem" if i == first else "")
            out.append((g.label, "block", list(g.rows), g))
        else:
            run.append(g)
    flush("head" if groups and last < len(groups) - 1 else "")
    return out


def stage(rep: Report, name: str) -> list[Row] | None:
    """The rows of a stage ``table --depth 1`` names (``stem``, ``head``, VGG-16's ``stage3``), or
    None: ``check`` and ``explain`` read these names as ``table --depth 1`` prints them."""
    if name not in ("stem", "head") and not (name.startswith("stage") and name[5:].isdigit()):
        return None
    return next((rows for n, _, rows, g in parts(rep) if n == name and g is None), None)


def summarise(rep: Report, depth: int) -> Report:
    """The report with one row per block (or stage) at ``depth``; totals unchanged."""
    rows = [_row(name, kind, members, rep, g.totals if g is not None else None) for name, kind, members, g in parts(rep, depth)]
    main = [r for r in rows if not r.training_only]
    for before, r in itertools.pairwise(main):  # a chain of stages: each reads the one before (diagrams follow the rows)
        r.inputs = [before.name]
    for r in rows:
        if r.training_only:  # an auxiliary head reads the stage it branches from
            r.inputs = [next((m.name for m in reversed(main) if rows.index(m) < rows.index(r)), main[0].name if main else "input")]
    return Report(rep.name, rep.input_shape, rep.convention, rep.dtype, rep.batch, rows, rep.include_training_only, rep.repeats, rep.title)
