"""Receptive field per spatial axis, correct across branches.

The three rules (Araujo et al., "Computing receptive fields of CNNs", Distill 2019; the
google-research/receptive_field library), for a window of extent e = d(k-1)+1, stride s, left
padding p, applied to the RF of the layer's input (size r, jump j = effective stride, centre c):

    r' = r + (e - 1) * j        j' = j * s        c' = c + ((e - 1)/2 - p) * j

Centres are kept doubled (c2 = 2c) so they stay integers.  Where paths meet (add, concat) the
larger RF wins; if the paths' jumps or centres differ, the graph is *misaligned* there and the
node gets a note (the RF is still the largest, but outputs no longer sit on one regular grid).
An input broadcast along an axis (size 1 there, e.g. the (C, 1, 1) gate of squeeze-and-excitation)
is seen whole by every output: its RF size counts, but the grid (jump, centre) is the other input's.

Upsampling (transposed convolution, upsample): the window slides on a grid ``u`` times finer than
the input (``Window.upsample``).  Only the input pixels a window actually reads count:

    r' = r + span * j           j' = j * s / u        c2' = c2 + (first + last) * j

where span is the largest distance, in input pixels, between the first and last input pixel one
output reads (over all output positions), and first, last are those of output 0.  Output 0's RF
centre is exact; the outputs sit u to an input pixel, so j' is their average spacing.  When j*s/u
is not a whole number (upsampling by 2 right at the input) integers cannot hold it: j' is rounded
up, the row says so, and every row after it says its RF is an upper bound.
"""

from __future__ import annotations

from math import gcd
from typing import NamedTuple

import networkx as nx

from ..dims import Dim, as_int, ceildiv, dmax, known_sign
from ..graph import INPUT, node_table
from ..layers.base import Window


class AxisRF(NamedTuple):
    """Receptive field along one spatial axis."""

    size: Dim = 1
    jump: Dim = 1  # effective stride: input pixels between neighbouring outputs
    centre2: Dim = 0  # twice the input coordinate of the first output's RF centre

    def through(self, w: Window) -> AxisRF:
        return self.through_noted(w)[0]

    def through_noted(self, w: Window) -> tuple[AxisRF, str | None]:
        """The RF after window ``w``, and why it is only an upper bound (None when exact)."""
        e = w.extent
        if type(w.upsample) is int and w.upsample == 1:
            return AxisRF(self.size + (e - 1) * self.jump, self.jump * w.stride, self.centre2 + (e - 1 - 2 * w.pad_before) * self.jump), None
        taps = fine_taps(w)
        why = None
        if taps is None:  # symbolic window: a window of e fine positions reads at most ceil(e/u) pixels
            span, centre2 = ceildiv(e, w.upsample) - 1, ceildiv((e - 1 - 2 * w.pad_before) * self.jump, w.upsample)
            why = "a symbolic window on a finer grid: the receptive field is rounded up (an upper bound)"
        else:
            span, first_last = taps
            if isinstance(first_last, int):
                centre2 = first_last * self.jump
            else:  # output 0 reads no pixel: the centre of its window, if it falls on the integer grid
                centre2 = ceildiv(first_last[0] * self.jump, first_last[1])
                if known_sign(centre2 * first_last[1] - first_last[0] * self.jump) != 0:
                    why = "the first output's window centre falls between input pixels: rounded up"
        num = self.jump * w.stride
        exact = known_sign(num - (num // w.upsample) * w.upsample) == 0
        if not exact:
            why = why or (
                f"effective stride {self.jump}\u00b7{w.stride}/{w.upsample} is not a whole number of input pixels: "
                "rounded up, so this receptive field and those after it are upper bounds"
            )
        return AxisRF(self.size + span * self.jump, num // w.upsample if exact else ceildiv(num, w.upsample), self.centre2 + centre2), why


def fine_taps(w: Window) -> tuple[int, int | tuple[int, int]] | None:
    """For a window on a finer grid (``Window.upsample``): the largest span, in input pixels, between
    the first and last input pixel one output reads, and first + last for output 0 (twice its centre).

    Output 0 may read no input pixel (a transposed conv whose kernel is smaller than its stride):
    then its centre is its window's, given as (numerator, denominator) of twice that centre.
    None when the window is symbolic.
    """
    vals = [as_int(v) for v in (w.kernel, w.stride, w.pad_before, w.dilation, w.upsample)]
    k, s, p, d, u = (v if v is not None else 0 for v in vals)
    if None in vals or min(k, s, d, u) < 1:
        return None
    span, first_last = 0, None
    for o in range(u // gcd(s, u)):  # the pattern of which fine positions hold pixels repeats
        lo = o * s - p
        if d == 1:  # positions lo..lo+k-1: the pixels are the multiples of u among them
            first, last = ceildiv(lo, u), (lo + k - 1) // u
        else:
            read = [q // u for t in range(k) if (q := lo + t * d) % u == 0]
            first, last = (read[0], read[-1]) if read else (1, 0)
        if first <= last:
            span = max(span, last - first)
            if o == 0:
                first_last = first + last
    if first_last is None:
        return span, (2 * -p + d * (k - 1), u)
    return span, first_last


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
        ins = [nodes[i]["shape"] for i in node["inputs"]]
        note = None
        rf = srcs[0]
        if len(srcs) > 1:
            rf, note = _merge(srcs, ins, node["shape"], node["inputs"])
        key = (id(node["layer"]), *ins)
        if key not in window_memo:
            window_memo[key] = node["layer"].windows(ins)
        windows = window_memo[key]
        bound = next((b for b in (nodes[i].get("rf_bound") for i in node["inputs"]) if b), None)
        if windows is not None and len(windows) == len(rf):
            out = []
            for axis, (r_in, w) in enumerate(zip(rf, windows, strict=True)):
                r_out, why = r_in.through_noted(w)
                if why is not None:
                    note = note or f"axis {axis}: {why}"
                    bound = bound or name
                out.append(r_out)
            rf = tuple(out)
        if note is None and bound is not None:
            note = f"receptive field rounded up (an upper bound): {bound} makes the effective stride fractional"
        node["rf"] = rf
        node["rf_note"] = note
        node["rf_bound"] = bound


def _broadcast(shape: tuple[Dim, ...], out: tuple[Dim, ...], axis: int) -> bool:
    """True if ``shape`` is broadcast along spatial ``axis``: size 1 there, the output's larger."""
    if len(shape) != len(out) or axis + 1 >= len(out):
        return False
    return as_int(shape[axis + 1]) == 1 and as_int(out[axis + 1]) != 1


def _merge(
    srcs: list[tuple[AxisRF, ...]], ins: list[tuple[Dim, ...]], out: tuple[Dim, ...], names: list[str]
) -> tuple[tuple[AxisRF, ...], str | None]:
    """Where paths meet: the larger RF per axis, and a note if the paths' grids differ."""
    note = None
    rf = list(srcs[0])
    bcast = [_broadcast(ins[0], out, axis) for axis in range(len(rf))]
    for k in range(1, len(srcs)):
        for axis, (a, b) in enumerate(zip(rf, srcs[k], strict=True)):
            sign = known_sign(a.size - b.size)
            size = a.size if sign in (0, 1) else b.size if sign == -1 else dmax(a.size, b.size)
            b_bcast = _broadcast(ins[k], out, axis)
            if bcast[axis] != b_bcast:  # one side is a single value seen by every output: the grid is the other's
                grid = b if bcast[axis] else a
                rf[axis] = AxisRF(size, grid.jump, grid.centre2)
                bcast[axis] = False
                continue
            if note is None and (_differ(a.jump, b.jump) or _differ(a.centre2, b.centre2)):
                note = (
                    f"misaligned paths on axis {axis}: {names[0]} has stride {a.jump}, centre {a.centre2}/2; "
                    f"{names[k]} has stride {b.jump}, centre {b.centre2}/2"
                )
            rf[axis] = a if sign in (0, 1) else b if sign == -1 else AxisRF(size, a.jump, a.centre2)
    return tuple(rf), note
