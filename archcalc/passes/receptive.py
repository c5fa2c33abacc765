"""Receptive field per spatial axis, correct across branches.

The three rules (Araujo et al., "Computing receptive fields of CNNs", Distill 2019; the
google-research/receptive_field library), for a window of extent e = d(k-1)+1, stride s, left
padding p, applied to the RF of the layer's input (size r, jump j = effective stride, centre c):

    r' = r + (e - 1) * j        j' = j * s        c' = c + ((e - 1)/2 - p) * j

Centres are kept doubled (c2 = 2c) so they stay integers.  Where paths meet (add, concat) the
larger RF wins; if the paths' jumps or centres differ, the graph is *misaligned* there and the
node gets a note (the RF is still the largest, but outputs no longer sit on one regular grid).
"""

from __future__ import annotations

from typing import NamedTuple

import networkx as nx

from ..dims import Dim, dmax, known_sign
from ..graph import INPUT, node_table
from ..layers.base import Window


class AxisRF(NamedTuple):
    """Receptive field along one spatial axis."""

    size: Dim = 1
    jump: Dim = 1  # effective stride: input pixels between neighbouring outputs
    centre2: Dim = 0  # twice the input coordinate of the first output's RF centre

    def through(self, w: Window) -> AxisRF:
        e = w.extent
        return AxisRF(self.size + (e - 1) * self.jump, self.jump * w.stride, self.centre2 + (e - 1 - 2 * w.pad_before) * self.jump)


def _differ(a: Dim, b: Dim) -> bool:
    return known_sign(a - b) not in (0, None)


def receptive_field(G: nx.DiGraph[str]) -> None:
    """Set ``rf`` (tuple of AxisRF, one per input spatial axis) and ``rf_note`` on every node."""
    nodes = node_table(G)
    n_axes = len(G.graph["input_shape"]) - 1
    nodes[INPUT]["rf"] = tuple(AxisRF() for _ in range(n_axes))
    window_memo: dict[tuple[object, ...], list[Window] | None] = {}
    for name in G.graph["order"]:
        node = nodes[name]
        srcs = [nodes[i]["rf"] for i in node["inputs"]]
        note = None
        rf = srcs[0]
        for other, src_name in zip(srcs[1:], node["inputs"][1:], strict=True):
            merged = []
            for axis, (a, b) in enumerate(zip(rf, other, strict=True)):
                if note is None and (_differ(a.jump, b.jump) or _differ(a.centre2, b.centre2)):
                    note = (
                        f"misaligned paths on axis {axis}: {node['inputs'][0]} has stride {a.jump}, centre {a.centre2}/2; "
                        f"{src_name} has stride {b.jump}, centre {b.centre2}/2"
                    )
                merged.append(
                    a
                    if known_sign(a.size - b.size) in (0, 1)
                    else b
                    if known_sign(a.size - b.size) == -1
                    else AxisRF(dmax(a.size, b.size), a.jump, a.centre2)
                )
            rf = tuple(merged)
        ins = [nodes[i]["shape"] for i in node["inputs"]]
        key = (id(node["layer"]), *ins)
        if key not in window_memo:
            window_memo[key] = node["layer"].windows(ins)
        windows = window_memo[key]
        if windows is not None and len(windows) == len(rf):
            rf = tuple(r.through(w) for r, w in zip(rf, windows, strict=True))
        node["rf"] = rf
        node["rf_note"] = note
