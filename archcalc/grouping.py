"""Rows grouped by block call: the one rule behind collapsed diagrams, per-stage plots and summary tables.

A row's ``scope`` is the block calls it sits in, outermost first: ResNet-152's ``layer3.5.conv1``
has ``("layer3", "layer3.5")`` (a call with ``repeat`` contributes its name, then its copy's);
GoogLeNet's ``inception_3a.1x1`` has ``("inception_3a",)``; a top-level layer has ``()``.

Grouping at depth ``d`` puts a row into the call at level ``d`` of its scope, ``scope[d - 1]``; a
row whose scope is shallower stays a group of its own.  So depth 1 is the network as written at the
top level (ResNet-152: conv1, bn1, relu, maxpool, layer1 x3, layer2 x8, layer3 x36, layer4 x3,
avgpool, flatten, fc); depth 2 opens each call one level (every bottleneck a group); a depth past
the deepest scope gives one group per layer.

Each group carries its totals over the rows that count (training-only rows count in a group that
is wholly training-only, as an auxiliary head's own cost, and not in a group that is not), so the
groups that are not training-only add up to the report's totals, exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from .dims import Dim, dim_text, expand, simplify
from .report import QUANTITIES, Report, Row

#: a network with more layers than this is shown with its blocks collapsed by default
MAX_EXPANDED = 60


@dataclass(frozen=True)
class Group:
    """One block call (or one layer) at the chosen depth, with its rows in report order."""

    name: str  # the call's name ('layer3', 'layer3.5', 'inception_3a') or the layer's
    rows: tuple[Row, ...]
    block: bool  # a block call (False: a single layer shown as itself)
    repeat: Dim  # copies for a call with `repeat` (layer3: 36; transformer.h: l), else 1
    totals: dict[str, Dim]

    @property
    def label(self) -> str:
        """'layer3 ×36' for a repeated call, the bare name otherwise."""
        if type(self.repeat) is not int:  # a symbolic repeat: 'transformer.h ×l'
            return f"{self.name} \u00d7{dim_text(self.repeat)}"
        return f"{self.name} \u00d7{self.repeat}" if self.repeat > 1 else self.name

    @property
    def type(self) -> str:
        return "block" if self.block else self.rows[0].type

    @property
    def training_only(self) -> bool:
        return all(r.training_only for r in self.rows)

    @property
    def output(self) -> Row:
        """The row whose output leaves the group: its last row that is not a training-only side branch."""
        main = [r for r in self.rows if not r.training_only]
        return (main or list(self.rows))[-1]

    @property
    def output_shape(self) -> tuple[Dim, ...]:
        return self.output.output_shape


def group_key(row: Row, depth: int | None) -> tuple[str, bool]:
    """(group name, is a block call) of ``row`` at ``depth`` (None: every row alone)."""
    if depth is None or len(row.scope) < depth:
        return row.name, False
    return row.scope[depth - 1], True


def group_totals(rows: Sequence[Row], include_training_only: bool) -> dict[str, Dim]:
    counted = [r for r in rows if include_training_only or not r.training_only] or list(rows)
    out: dict[str, Dim] = {}
    for q in QUANTITIES:
        total: Any = 0
        for r in counted:
            total = total + getattr(r, q) * r.repeat  # a row of a block repeated l times counts l times
        out[q] = expand(total)
    return out


def group_rows(rep: Report, depth: int | None) -> list[Group]:
    """The report's rows grouped at ``depth`` (see the module docstring), groups in the order of
    their first row.  ``depth=None`` gives one group per row."""
    if depth is not None and depth < 1:
        raise ValueError(f"depth must be 1 or more, got {depth}")
    members: dict[tuple[str, bool], list[Row]] = {}
    for r in rep.rows:
        members.setdefault(group_key(r, depth), []).append(r)
    return [
        Group(name, tuple(rows), block, rep.repeats.get(name, 1) if block else 1, group_totals(rows, rep.include_training_only))
        for (name, block), rows in members.items()
    ]


def block(rep: Report, name: str) -> Group | None:
    """The block call ``name`` (``layer1``, ``layer1.0``, ``Mixed_5b``: any scope a row sits in), with
    its rows and totals; None if no row sits in it.  ``check`` and ``explain`` both take a block by
    this rule, so they agree on its sums.  A name that only prefixes layer names (ResNet's
    ``layer1.0.downsample``: its ``.0`` conv and ``.1`` batchnorm, written inside the block) holds
    those layers, as ``memory --checkpoint`` reads it."""
    rows = tuple(r for r in rep.rows if name in r.scope)
    if not rows:
        rows = tuple(r for r in rep.rows if r.name.startswith(name + "."))
    if not rows:
        return None
    copies = copies_per_copy(rep, name)
    if copies != 1:  # transformer.h.*: one copy of a call repeated l times, each row counted once
        rows = tuple(replace(r, repeat=simplify(r.repeat / copies)) for r in rows)
    return Group(name, rows, True, rep.repeats.get(name, 1), group_totals(rows, rep.include_training_only))


def one_copy_of(rep: Report, name: str) -> str | None:
    """The call ``name`` is one copy of (``transformer.h.*`` of ``transformer.h``, repeated a
    symbolic number of times, the table's ``transformer.h.*.attn (×l)`` rows; ``transformer.h.*.attn``,
    a part of that copy, is of it too), or None."""
    if ".*" not in name:
        return None
    call = name[: name.index(".*")]
    if call not in rep.repeats or type(rep.repeats[call]) is int:
        return None
    return call


def copies_per_copy(rep: Report, name: str) -> Dim:
    """How many times the rows under ``name`` run for each time one copy of them is counted: the
    product of the repeat counts of the symbolically repeated calls its ``.*`` parts stand for
    (``transformer.h.*.attn.c_attn``: l; a name without ``.*``: 1).  A ``.*`` name is one copy, as the
    table prints its ``(×l)`` rows."""
    copies: Any = 1
    at = name.find(".*")
    while at != -1:
        call = name[:at]
        if call in rep.repeats and type(rep.repeats[call]) is not int:
            copies = copies * rep.repeats[call]
        at = name.find(".*", at + 2)
    return simplify(copies) if copies != 1 else 1


def numbered_copy_hint(repeats: Any, name: str) -> str | None:
    """For ``transformer.h.0`` (a numbered copy of a call repeated a symbolic number of times, whose
    copies have no numbers): what to write instead, one copy or all; None for any other name."""
    import re

    m = re.fullmatch(r"(.+?)\.(\d+)((?:\..+)?)", name)
    if m is None:
        return None
    call, rest = m.group(1), m.group(3)
    if call not in repeats or type(repeats[call]) is int:
        return None
    copies = dim_text(repeats[call])
    return (
        f"{call} repeats {copies} times, a symbolic count, so its copies have no numbers: "
        f"one copy is {call + '.*' + rest!r} (the table's row, ×{copies})" if rest else
        f"{call} repeats {copies} times, a symbolic count, so its copies have no numbers: "
        f"one copy is {call + '.*'!r}, all {copies} copies {call!r}"
    )


def block_names(rep: Report) -> list[str]:
    """Every block call of the report, in order (for a did-you-mean)."""
    return list(dict.fromkeys(s for r in rep.rows for s in r.scope))


def sum_text(rows: Sequence[Row], quantity: str, limit: int = 12) -> str:
    """A sum over rows as people check it: 'conv1 23.3K + conv2 307K + ...', a row of a block
    repeated l times written '× l'; past ``limit`` terms, the first and last five."""
    from .render import units

    fmt = units.size if quantity == "activation_bytes" else units.count

    def term(r: Row) -> str:
        value = fmt(getattr(r, quantity))
        if type(r.repeat) is int and r.repeat == 1:
            return f"{r.name} {value}"
        if " + " in value or " - " in value:  # (3*h^2 + 3*h) × l, not 3*h^2 + 3*h × l
            value = f"({value.removesuffix(' B')})" + (" B" if value.endswith(" B") else "")
        return f"{r.name} {value} \u00d7 {units.count(r.repeat)}"

    parts = [term(r) for r in rows if getattr(r, quantity) != 0]
    if len(parts) > limit:
        parts = [*parts[:5], f"... ({len(parts) - 10} more)", *parts[-5:]]
    return " + ".join(parts)


def parts_text(rows: Sequence[Row], name: str, quantity: str) -> str:
    """A block's sum by its parts one level down: its copies (``layer1.0 75.0K + layer1.1 70.4K +
    layer1.2 70.4K``), or its layers where it has no inner blocks (or one copy laid out for l)."""
    by: dict[str, Any] = {}
    for r in rows:
        if name in r.scope:
            i = r.scope.index(name)
            part = r.scope[i + 1] if len(r.scope) > i + 1 else r.name
        else:  # a name that prefixes layer names (ViT's encoder): the block calls under it, and its own layers
            part = next((s for s in r.scope if s.startswith(name + ".")), r.name)
        by[part] = by.get(part, 0) + getattr(r, quantity) * r.repeat
    if len(by) == 1 or len(by) == len(rows):  # its own layers: as they are (a row of a block repeated l times '× l')
        return sum_text(rows, quantity)
    parts = [Row(part, "", [], (), 0, 0, 0, 0, (), (), {}) for part in by]  # (sum_text formats rows)
    for row, v in zip(parts, by.values(), strict=True):
        setattr(row, quantity, expand(v))
    return sum_text(parts, quantity)


def max_depth(rep: Report) -> int:
    """How deeply block calls nest in this report (0: no blocks)."""
    return max((len(r.scope) for r in rep.rows), default=0)


def default_depth(rep: Report, limit: int = MAX_EXPANDED) -> int | None:
    """None (every layer) for a network of at most ``limit`` layers, else 1 (top-level blocks collapsed)."""
    if len(rep.rows) <= limit or max_depth(rep) == 0:
        return None
    return 1


def resolve_depth(rep: Report, depth: int | None) -> int | None:
    """A ``--depth`` as asked (None: the default); a depth past the deepest block is every layer."""
    if depth is None:
        return default_depth(rep)
    return None if depth > max_depth(rep) else depth
