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

Upsampling (transposed convolution, upsample: ``Window.upsample`` > 1) breaks the regular grid:
a 2x2 stride-2 up-convolution gives two neighbouring outputs the same input pixel, so outputs no
longer sit one jump apart, and the three rules would be wrong for the layers after it (a 3x3 conv
after a x3 nearest upsampling reads 2 input pixels, not 2/3 of one).  From such a layer on, an
axis's RF is kept exactly, as the interval [lo(o), hi(o)] of input pixels output o depends on
(padding counted as pixels, as the rules do), which is periodic: with period P outputs and shift
J input pixels per period, lo(o + P) = lo(o) + J.  Each layer maps it exactly: output o's interval
spans those of the inputs its window reads; paths that meet take the union (and are misaligned
only if the straight lines through their outputs' centres differ: U-Net's crops are placed so they
agree).  The row reports the largest interval (the RF), the average stride J/P, and output 0's
centre; where J/P is not a whole number (upsampling by 2 right at the input) the stride is rounded
up and the row says so.  This exact form needs numbers: with symbols (or ratios whose pattern
would not repeat within MAX_PERIOD outputs) upsampling falls back to the average grid, which is
only an approximation: that row says so, and so does every row after it (``rf_bound``).

Layouts: a layer's ``windows`` slide along axes 1.. of a (C, *spatial) input.  An (L, F) input of
float vectors (two axes that no window slides over before a permute: README's token layout) holds
its positions on axis 0 (a 2-axis input that a later window reads as (C, L) after a layer that is no
window gets a note saying so, and an approximate field).  The pass follows where each spatial axis
of the network's input sits (``rf_layout``: per axis of the tensor, the spatial axis it holds, or
None): a permute or transpose moves them (Swin and ConvNeXt work on channels-last (H, W, C) maps),
a layer that keeps the rank keeps them, a reshape, flatten, select or mean regroups them
(``_relayout``: an axis kept keeps its place; a spatial axis merged with others is recorded as
merged into that axis, so a layer reading all of it, a linear over H*S as in Vision Permutator or a
conv1d reading the channels of (C*H, W), sees every position along it; a merged axis split again,
or sizes that fit more than one way, lose the layout: fields after that are approximate).  Layers
that name their axes (``axis_windows``: a slice with a step, Swin's window attention as a
:class:`~archcalc.layers.base.Partition` of each axis into windows) are applied where the spatial
axes are; a sliding window on a layout the pass has lost, or a cyclic roll, makes the field
approximate from that row on (``rf_bound``), and so does attention whose output reads fewer
positions than the map before it had (``positions_read``: attention inside hand-cut windows, where
"the whole input" would overstate the field).

After causal attention, output i sees positions 0..i (``prefix``): that is followed through layers
that map position j to position j along the tokens (the heads' reshape and transpose, a linear over
the features, residual adds, norms), so that a select or slice of tokens sees its prefix.  Tokens
taken that way see prefixes of different lengths, which no sliding grid describes: a window over
them is approximate (``ragged``).  With a symbolic length, positions are compared by their sign, and
a slice's positions are taken to lie within the axis, as its shape takes them (slice 0:3 of s tokens:
3).  Where the prefix is not followed (a reshape, view or unflatten regrouping the tokens with the
features, a conv over them), the row is whole while its last element holds the last token
(``unfollowed``); a layer that then takes positions short of it (a select of row 0 of the regrouped
tokens) may see less than the whole input, and its field is approximate.  Attention written out
(``q @ k^T`` marked ``causal: "scores"``, a ``causal_mask``, the softmax over the keys, ``@ v`` marked
``causal: "weights"``) gives the same prefixes as sdpa's ``is_causal``: score (i, j) reads query i and
key j (``pairs``: the fields of the queries' and keys' positions), so the weights' row i, masked, reads
query i and keys 0..i, not the scores' hull; where that is not followed (a softmax before the mask, a
layer moving the scores), the weights' prefix is not either.  Circular ``padding_mode`` wraps: where the positions before it
wrap around the input like a ring (``torus``: no padding read, n positions one jump apart spanning
the N pixels), the field is the rules' interval taken round the ring, exact; elsewhere approximate.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from math import gcd
from typing import TYPE_CHECKING, Any, NamedTuple

from ..axis_roles import SPATIAL, Roles, axis_roles, input_is_sequence
from ..dims import Dim, as_int, ceildiv, dmax, expand, known_sign, prod
from ..graph import INPUT, Graph, SymbolicRepeat, node_table
from ..layers.base import Partition, Window, traits

if TYPE_CHECKING:
    from fractions import Fraction

Phases = tuple[tuple[int, int], ...]
MAX_PERIOD = 100_000  # longest output pattern tracked exactly; beyond it, an approximation with a note
MAX_WORK = 4_000_000  # most spans walked for one layer's pattern (outputs x kernel) where no shortcut applies; beyond it, the same


class AxisRF(NamedTuple):
    """Receptive field along one spatial axis."""

    size: Dim = 1
    jump: Dim = 1  # effective stride: input pixels between neighbouring outputs (the average, if irregular)
    centre2: Dim = 0  # twice the input coordinate of the first output's RF centre
    phases: Phases | None = None  # irregular grid: (lo, hi) of outputs 0..P-1 (see the module docstring)
    shift: int = 0  # irregular grid: input pixels per period of P outputs
    whole: bool = False  # every output sees every input pixel any position sees (after attention): size and centre2 are that union

    def span(self) -> tuple[int, int]:
        """[lo, hi]: the input pixels output 0 sees, on a regular numeric grid (c2 and size - 1 share parity)."""
        c2, size = int(self.centre2), int(self.size)
        return (c2 - size + 1) // 2, (c2 + size - 1) // 2

    def through(self, w: Window) -> AxisRF:
        return self.through_noted(w)[0]

    def through_noted(self, w: Window) -> tuple[AxisRF, str | None, bool]:
        """The RF after window ``w``, a note for the row (None if nothing to say), and whether it is exact."""
        if w.adaptive is not None:
            return self._adaptive(w, *w.adaptive)
        regular_window = type(w.upsample) is int and w.upsample == 1
        if self.whole:  # nothing is left to see: the field stays the whole input, on the window's grid
            return self._replace(jump=ceildiv(self.jump * w.stride, w.upsample)), None, True
        if self.phases is None and regular_window:
            e = w.extent
            return AxisRF(self.size + (e - 1) * self.jump, self.jump * w.stride, self.centre2 + (e - 1 - 2 * w.pad_before) * self.jump), None, True
        periodic = self._periodic()
        window = _int_window(w)
        if periodic is None or window is None:
            return (*self._bound(w), False)
        phases, shift = periodic
        s, u = window[1], window[4]
        outputs = u * len(phases) // gcd(s, u * len(phases))
        if outputs > MAX_PERIOD:  # resizes by ratios that never repeat soon
            return (*self._bound(w), False)
        if outputs * window[0] > MAX_WORK and not (window[3] == 1 and _monotone(phases, shift)):  # each output's units walked one by one
            return (*self._bound(w), False)
        return _from_phases(*_map_phases(phases, shift, window))

    def _adaptive(self, w: Window, n: Dim, o: Dim) -> tuple[AxisRF, str | None, bool]:
        """Through torch's adaptive pooling of n positions to o (o not dividing n): output i reads
        positions floor(i n / o) .. ceil((i + 1) n / o) - 1, a pattern that repeats every o/g outputs
        and n/g positions (g = gcd(n, o)), mapped exactly on numbers like any periodic field."""
        n_i, o_i, periodic = as_int(n), as_int(o), self._periodic()
        if self.whole:
            return self._replace(jump=ceildiv(self.jump * n, o)), None, True
        approx = (
            f"adaptive pooling of {n} positions to {o}: its windows are uneven, and here they are only bounded (the longest "
            "window, the average stride rounded up): the receptive field is approximate from here on"
        )
        if n_i is None or o_i is None or periodic is None or n_i < 1 or o_i < 1:
            bound = AxisRF(self.size + (w.extent - 1) * self.jump, ceildiv(self.jump * n, o), self.centre2 + (w.extent - 1) * self.jump)
            return bound, approx, False
        phases, shift = periodic
        p = len(phases)
        g = gcd(n_i, o_i)
        per_o, per_n = o_i // g, n_i // g
        k = p // gcd(p, per_n)  # repeats of the window pattern until its positions fall on the field's period again
        if per_o * k > MAX_PERIOD:
            bound = AxisRF(self.size + (w.extent - 1) * self.jump, ceildiv(self.jump * n_i, o_i), self.centre2 + (w.extent - 1) * self.jump)
            return bound, approx, False
        out = []
        monotone = _monotone(phases, shift)
        if not monotone and per_o * k * min(p, ceildiv(n_i, o_i) + 1) > MAX_WORK:
            bound = AxisRF(self.size + (w.extent - 1) * self.jump, ceildiv(self.jump * n_i, o_i), self.centre2 + (w.extent - 1) * self.jump)
            return bound, approx, False
        for i in range(per_o * k):
            first, last = i * n_i // o_i, -(-(i + 1) * n_i // o_i) - 1
            if monotone:  # (see output_fields)
                lo, hi = phases[first % p][0] + first // p * shift, phases[last % p][1] + last // p * shift
            elif last - first + 1 >= p:  # every phase is read: the lowest and highest of them
                lo = min(phases[(first + t) % p][0] + (first + t) // p * shift for t in range(p))
                hi = max(phases[(last - t) % p][1] + (last - t) // p * shift for t in range(p))
            else:
                lo = min(phases[u % p][0] + u // p * shift for u in range(first, last + 1))
                hi = max(phases[u % p][1] + u // p * shift for u in range(first, last + 1))
            out.append((lo, hi))
        return _from_phases(out, per_n * k // p * shift)

    def _periodic(self) -> tuple[Phases, int] | None:
        """(phases, shift) of this RF; a regular grid is period 1.  None if symbolic."""
        if self.phases is not None:
            return self.phases, self.shift
        size, jump, c2 = as_int(self.size), as_int(self.jump), as_int(self.centre2)
        if size is None or jump is None or c2 is None:
            return None
        return (AxisRF(size, jump, c2).span(),), jump

    def _bound(self, w: Window) -> tuple[AxisRF, str]:
        """Where the exact form is out of reach: a window of e fine positions reads at most ceil(e/u) pixels, on the average grid."""
        e, u = w.extent, w.upsample
        num = self.jump * w.stride
        return (
            AxisRF(self.size + (ceildiv(e, u) - 1) * self.jump, ceildiv(num, u), self.centre2 + ceildiv((e - 1 - 2 * w.pad_before) * self.jump, u)),
            "upsampling with symbols (or by ratios whose pattern does not repeat within 100,000 outputs, or a pattern times a kernel "
            "past 4,000,000 steps): the receptive field and stride are approximate from here on (the average grid, rounded up)",
        )


def through_partition(r: AxisRF, part: Partition) -> tuple[AxisRF, str | None, bool]:
    """The field after attention within non-overlapping windows of ``part.size`` positions
    (offset ``part.offset``): output o reads the positions of its own block, and its field is the
    union of theirs.  Exact on numbers (a periodic field: the outputs of one window share theirs);
    with symbols, the size of one window's field on the input's grid, marked approximate."""
    if r.whole:
        return r, None, True
    size, offset, periodic = as_int(part.size), as_int(part.offset), r._periodic()
    if size is None or offset is None or periodic is None:
        grown = AxisRF(expand(r.size + (part.size - 1) * r.jump), r.jump, expand(r.centre2 + (part.size - 1) * r.jump))
        return grown, f"attention within windows of {part.size} with symbols: the field of one window on the average grid (approximate)", False
    phases, shift = periodic
    period = len(phases) * size // gcd(len(phases), size)
    if period > MAX_PERIOD:
        grown = AxisRF(r.size + (size - 1) * r.jump, r.jump, r.centre2 + (size - 1) * r.jump)
        return grown, f"attention within windows of {size}: the pattern does not repeat within {MAX_PERIOD:,} outputs (approximate)", False
    offset %= size
    n = len(phases)
    out = []
    block: dict[int, tuple[int, int]] = {}  # first position of a window -> the span its outputs share: O(period) work, not O(period * size)
    for o in range(period):
        first = size * ((o - offset) // size) + offset
        span = block.get(first)
        if span is None:
            span = block[first] = (
                min(phases[i % n][0] + i // n * shift for i in range(first, first + size)),
                max(phases[i % n][1] + i // n * shift for i in range(first, first + size)),
            )
        out.append(span)
    return _from_phases(out, period // n * shift)


def _int_window(w: Window) -> tuple[int, int, int, int, int] | None:
    vals = [as_int(v) for v in (w.kernel, w.stride, w.pad_before, w.dilation, w.upsample)]
    k, s, p, d, u = (v if v is not None else 0 for v in vals)
    if None in vals or min(k, s, d, u) < 1:
        return None
    return k, s, p, d, u


def _map_phases(phases: Phases, shift: int, window: tuple[int, int, int, int, int]) -> tuple[list[tuple[int, int]], int, bool]:
    """Map a periodic RF through a window: (new phases, new shift, whether every output reads something)."""
    s, u = window[1], window[4]
    period = len(phases)
    new_period = u * period // gcd(s, u * period)  # outputs after which the pattern repeats
    new_shift = new_period * s // (u * period) * shift
    fields = list(output_fields(phases, shift, window))
    return [(lo, hi) for _, _, lo, hi, _ in fields], new_shift, all(reads for *_, reads in fields)


def output_fields(
    phases: Phases, shift: int, window: tuple[int, int, int, int, int]
) -> Iterator[tuple[int, range | list[int], int, int, bool]]:
    """Each output o of one period of the pattern after ``window`` (kernel, stride, pad_before,
    dilation, upsample): the input units it reads, the interval [lo, hi] of input pixels they see,
    and False if it reads no unit (a kernel smaller than the stride: it is given the nearest one)."""
    k, s, p, d, u = window
    period = len(phases)
    # the fields of neighbouring units rarely step back (every window, union and partition of this
    # pass keeps lo and hi non-decreasing): then a run of units sees from its first unit's lo to its
    # last one's hi, found in O(1) (an upsampled grid's period of 99,221 outputs, each reading a
    # 10,000-unit window, is a billion spans walked one by one)
    monotone = _monotone(phases, shift)
    for o in range(u * period // gcd(s, u * period)):
        start = o * s - p  # output o reads fine positions start + t*d; input unit i sits at fine position i*u
        if d == 1:
            units: range | list[int] = range(ceildiv(start, u), (start + k - 1) // u + 1)
        else:
            units = [q // u for t in range(k) if (q := start + t * d) % u == 0]
        reads = bool(units)
        if not reads:
            units = [(start + d * (k - 1) // 2) // u]
        if monotone:
            first, last = units[0], units[-1]
            yield o, units, phases[first % period][0] + first // period * shift, phases[last % period][1] + last // period * shift, reads
            continue
        spans = [(phases[i % period][0] + i // period * shift, phases[i % period][1] + i // period * shift) for i in units]
        yield o, units, min(lo for lo, _ in spans), max(hi for _, hi in spans), reads


def widest_output(r_in: AxisRF, w: Window) -> tuple[int, range | list[int], int, int] | None:
    """For a worked derivation: (o, units, lo, hi) of an output o whose field is the widest, the
    input units it reads and the pixels [lo, hi] they see; None where symbols rule the exact form out."""
    periodic, window = r_in._periodic(), _int_window(w)
    if periodic is None or window is None:
        return None
    o, units, lo, hi, _ = max(output_fields(*periodic, window), key=lambda f: f[3] - f[2])
    return o, units, lo, hi


def _reduce(phases: list[tuple[int, int]], shift: int) -> tuple[list[tuple[int, int]], int]:
    """The shortest period that repeats the same pattern."""
    n = len(phases)
    for m in range(1, n):
        if n % m or (shift * m) % n:
            continue
        step = shift * m // n
        if all(phases[i + m] == (phases[i][0] + step, phases[i][1] + step) for i in range(n - m)):
            return phases[:m], step
    return phases, shift


def _from_phases(phases: list[tuple[int, int]], shift: int, reads_all: bool = True) -> tuple[AxisRF, str | None, bool]:
    phases, shift = _reduce(phases, shift)
    size = max(hi - lo + 1 for lo, hi in phases)
    centre2 = phases[0][0] + phases[0][1]
    period = len(phases)
    why = None
    if not reads_all:
        why = "some outputs read no input pixel (a kernel smaller than the stride): they are given their nearest pixel's field"
    if period == 1:  # a regular grid again
        return AxisRF(size, shift, centre2), why, reads_all
    jump = shift // period
    if shift % period:
        jump = ceildiv(shift, period)
        why = why or f"outputs sit {shift}/{period} input pixels apart on average: the stride shown is rounded up{EXACT_FIELD}"
    return AxisRF(size, jump, centre2, tuple(phases), shift), why, reads_all


def _whole(grid: tuple[tuple[tuple[AxisRF, ...], tuple[Dim, ...]], ...], rf: tuple[AxisRF, ...]) -> tuple[AxisRF, ...]:
    """The field of an output that reads every position: per axis, the union of the fields of all
    positions of the last spatial layout(s) ``grid`` ((field, positions per axis) pairs) feeding it."""
    out = []
    for axis, r in enumerate(rf):
        spans = []  # (2 lo, 2 hi) per candidate
        for fields, sizes in grid:
            f, n = fields[axis], sizes[axis]
            if f.whole:
                spans.append((f.centre2 - f.size + 1, f.centre2 + f.size - 1))
            elif f.phases is None:  # output 0 spans [lo, hi]; the last one, (n - 1) jumps further
                spans.append((f.centre2 - f.size + 1, f.centre2 + f.size - 1 + 2 * (n - 1) * f.jump))
            else:
                q, rem = divmod(int(n) - 1, len(f.phases))
                spans.append((2 * f.phases[0][0], 2 * (f.phases[rem][1] + q * f.shift)))
        lo2, hi2 = spans[0]
        for a, b in spans[1:]:
            if all(type(v) is int for v in (a, b, lo2, hi2)):
                lo2, hi2 = min(lo2, a), max(hi2, b)
            else:
                lo2, hi2 = lo2 - dmax(0, lo2 - a), dmax(hi2, b)
        out.append(AxisRF(_half(hi2 - lo2) + 1, r.jump, _half(lo2 + hi2), whole=True))
    return tuple(out)


def _half(v: Dim) -> Dim:
    """v / 2 for an even v: exact on ints and on sympy expressions (no floor around it)."""
    return v // 2 if type(v) is int else v / 2


def _differ(a: Dim, b: Dim) -> bool:
    return known_sign(a - b) not in (0, None)


def receptive_field(G: Graph) -> None:
    """Set ``rf`` (tuple of AxisRF, one per input spatial axis), ``rf_note``, ``rf_bound`` (the
    first layer upstream whose RF is not exact, or None) and ``rf_whole`` on every node.

    ``rf_whole`` says why every output of the layer sees the whole input, or is None: the layer
    mixes every position (attention, a mean over tokens); its window spans the whole map down to
    one position (a flatten of the map, a global pool, a conv as large as the map); or it reads a
    layer that sees the whole input (the linear layers after the flatten, a residual add after
    attention, squeeze-and-excitation's gated map).  There the receptive field is no window on the
    image, and the tables say "whole" (the exact union stays in ``rf``)."""
    nodes = node_table(G)
    n_axes = len(G.graph["input_shape"]) - 1
    start = tuple(AxisRF() for _ in range(n_axes))
    # grids: the last spatial layout(s) upstream, as (field, positions per axis) pairs: what a layer that mixes every position sees
    standard = (None, *range(n_axes))  # (C, *spatial): where a layer's windows apply
    # an (L, F) sequence of vectors (README: the token layout): positions run along its first axis
    first = n_axes == 1 and input_is_sequence(G)
    in_layout: Layout = (0, None) if first else standard
    # read as a (C, L) map because a window slides along its last axis later, though a layer that is
    # no window reads it first (a linear on the last axis, as on tokens): say which reading is used
    guessed = n_axes == 1 and not first and not any(nodes[n]["layer"].takes_indices for n in G.successors(INPUT))
    in_sizes = _grid_sizes(tuple(G.graph["input_shape"]), in_layout, n_axes)
    # the pass's own state per node, kept apart (a node's dict holds 20 entries; a 22nd would make every one grow to 128 slots):
    grids: dict[str, tuple[tuple[tuple[AxisRF, ...], tuple[Dim, ...]], ...]] = {INPUT: ((start, in_sizes),)}
    covs: dict[str, tuple[Cover, ...]] = {}
    nodes[INPUT].update(rf=start, rf_bound=None)
    nodes[INPUT]["rf_layout"] = in_layout
    tangles: dict[str, Tangle] = {INPUT: (NO_TANGLE,) * len(in_layout)}
    # after causal attention on a sequence: the fields of the positions it read (output i sees those of 0..i)
    prefix: dict[str, tuple[tuple[tuple[AxisRF, ...], tuple[Dim, ...]], ...]] = {}  # per node, spatial axes merged into its axes (see _relayout)
    # after tokens taken from causal attention (a slice 0..2): output j sees the prefix 0..j, fields of different lengths that no
    # sliding grid describes: kept through layers that map token j to token j; a window over them makes the field approximate
    ragged: set[str] = set()
    # after causal attention, where the prefix is not followed: whether the layer's last element (the last index along every
    # axis) is known to see the whole input (False: some output does, which one is not followed; see _causal_last)
    unfollowed: dict[str, bool] = {}
    # attention written out: per scores' matmul (q @ k^T, causal), the fields of the queries' and keys' positions (entry (i, j)
    # reads query i and key j: not the scores' hull); the weights' matmul looks back to it (see _weights_rows)
    pairs: dict[str, tuple[tuple[tuple[AxisRF, ...], tuple[Dim, ...]], ...]] = {}
    # per node and spatial axis: whether its positions wrap around the input like a ring (no padding read before, every
    # position's field one jump from the last's, and n positions spanning the N pixels: n * jump = N), so that circular
    # padding reads the far side exactly where the interval rules put a padding position (see _circular)
    rings = G.graph["circular"] if "circular" in G.graph else any(  # (else nothing to follow; compile says, else look)
        nodes[n]["layer"].__dict__.get("padding_mode") == "circular" for n in G.graph["order"]
    )
    torus: dict[str, tuple[bool, ...]] = {INPUT: (True,) * n_axes} if rings else {}
    covs[INPUT] = tuple((0, n - 1, ((AxisRF(), 0, n - 1),) if type(n) is int else (), False) for n in in_sizes)
    roles: dict[str, Roles | None] | None = None  # what each axis holds, where the layout is lost (computed when first needed)
    window_memo: dict[int, tuple[list[Window] | None, list[tuple[Dim, Dim, Dim]] | None, dict[str, Any]]] = {}
    regular: set[int] = set()  # ids of fields known to lie on a regular grid
    repeats = G.graph.get("symbolic_repeats", ())
    if repeats:  # a block repeated l times: its fields are moved on to the last copy once its layers are done
        position = {n: i for i, n in enumerate(G.graph["order"])}
        done_at: dict[str, list[SymbolicRepeat]] = {}
        for rep in sorted(repeats, key=lambda r: len(r.members)):  # inner blocks first
            done_at.setdefault(max(rep.members, key=position.__getitem__), []).append(rep)
    for name in G.graph["order"]:
        node = nodes[name]
        inputs = node["inputs"]
        note = None
        layer = node["layer"]
        hooks = traits(type(layer))
        if hooks.source:  # a learned tensor sees no input pixel, even when it takes its shape from one
            node.update(rf=(), rf_note=None, rf_bound=None, rf_layout=None, rf_whole=None)
            grids[name], covs[name] = (), ()
            continue
        tangle: Tangle | None
        if len(inputs) == 1 and not hooks.field_hooks:  # a pointwise layer (relu, dropout, a norm over channels): its input's field, unchanged
            src_name = inputs[0]
            src = nodes[src_name]
            rf = src["rf"]
            memo = window_memo.get(node["formula_key"])
            if memo is not None and memo[0] is None and id(rf) in regular and not (guessed and src_name == INPUT):
                seen = src.get("rf_whole")
                layout = src["rf_layout"]
                bound = src["rf_bound"]
                node["rf"] = rf
                covs[name] = covs[src_name]
                node["rf_note"] = None if bound is None else f"receptive field approximate from {bound} on (see that row)"
                node["rf_bound"] = bound
                grids[name] = grids[src_name]
                if src_name in prefix and layout is not None and 0 in layout:
                    prefix[name] = prefix[src_name]
                tangle = tangles.get(src_name)
                shape_in, shape = node["in_shapes"][0], node["shape"]
                if not (shape_in is shape and layout is not None and tangle is not None and len(layout) == len(tangle) == len(shape)):
                    layout, tangle = _next_layout(layout, tangle, tuple(shape_in), tuple(shape))  # (an unchanged shape keeps both: the usual case)
                node["rf_layout"] = layout
                if layout is not None and tangle is not None:
                    tangles[name] = tangle
                if src_name in ragged and layout is not None and 0 in layout:
                    ragged.add(name)
                if unfollowed and src_name in unfollowed:
                    unfollowed[name] = unfollowed[src_name]
                if src_name in torus and shape_in == shape:
                    torus[name] = torus[src_name]
                node["rf_whole"] = (
                    None
                    if not seen or not rf
                    else f"{CAUSAL}: it reads {src_name}, whose last output sees the whole input (output i sees positions 0..i)"
                    if seen.startswith(CAUSAL)
                    else f"it reads {src_name}, which sees the whole input"
                )
                if repeats and name in done_at:
                    for rep in done_at[name]:
                        _last_copy(rep, nodes, grids)
                continue
        whole = None
        inherited = None
        for i in inputs:
            if seen := nodes[i].get("rf_whole"):
                whole = (
                    f"{CAUSAL}: it reads {i}, whose last output sees the whole input (output i sees positions 0..i)"
                    if seen.startswith(CAUSAL)
                    else f"it reads {i}, which sees the whole input"
                )
                inherited = i
                break
        if len(inputs) == 1:  # most layers: the input's field, and its bound
            src = nodes[inputs[0]]
            rf, bound, layout = src["rf"], src["rf_bound"], src["rf_layout"]
            tangle = tangles.get(inputs[0]) if layout is not None else None
            grid, cov = grids[inputs[0]], covs[inputs[0]]
        else:
            seeing = [i for i in inputs if nodes[i]["rf"]]  # a learned tensor (parameter) sees no input
            layout = _merged_layout([nodes[i]["rf_layout"] for i in seeing], len(node["shape"]))
            same = {tangles.get(i) for i in seeing if nodes[i]["rf_layout"] == layout} if layout is not None else set()
            tangle = same.pop() if len(same) == 1 else None
            if tangle is None:
                layout = None
            if not seeing:
                node.update(rf=(), rf_note=None, rf_bound=None, rf_layout=None, rf_whole=None)
                grids[name], covs[name] = (), ()
                for rep in done_at.get(name, ()) if repeats else ():
                    _last_copy(rep, nodes, grids)
                continue
            grid = tuple({id(g): g for i in seeing for g in grids[i]}.values())
            sizes = [_grid_sizes(s, nodes[i]["rf_layout"], n_axes) for i, s in zip(inputs, node["in_shapes"], strict=True) if nodes[i]["rf"]]
            cov = _cov_union([covs[i] for i in seeing], sizes, _grid_sizes(node["shape"], layout, n_axes), in_sizes)
            if len(seeing) == 1:
                rf, bound = nodes[seeing[0]]["rf"], nodes[seeing[0]]["rf_bound"]
            else:
                in_shapes = [s for i, s in zip(inputs, node["in_shapes"], strict=True) if nodes[i]["rf"]]
                rf, note, merged_exactly = _merge([nodes[i]["rf"] for i in seeing], in_shapes, node["shape"], seeing)
                bound = next((b for b in (nodes[i]["rf_bound"] for i in seeing) if b), None) or (None if merged_exactly else name)
                side = _side_by_side(sizes, _grid_sizes(node["shape"], layout, n_axes))
                if side is not None:  # (a concat along H or W): output positions come from different inputs, on no one grid
                    note = (
                        f"axis {side}: the inputs' positions are placed side by side along it (a concatenation along a spatial axis): "
                        "where they meet, an output's window reads fields from different inputs, which no single grid describes: "
                        "the receptive field is approximate from here on"
                    )
                    bound = bound or name
        key = node["formula_key"]  # set by the shapes pass
        memo = window_memo.get(key)
        if memo is None:
            windows = node["layer"].windows(node["in_shapes"])
            memo = window_memo[key] = (windows, _regular_steps(windows), {})
        windows, steps, asked = memo  # asked: the layer's other hooks' answers for this formula key (a pydantic method call costs)
        ins = node["in_shapes"]
        named = None
        if rf and hooks.axis_windows:
            named = asked.get("axis_windows", _UNASKED)
            if named is _UNASKED:
                named = asked["axis_windows"] = layer.axis_windows(ins)
        if guessed and INPUT in inputs and windows is None and named is None:
            shape_in = G.graph["input_shape"]
            note = note or (
                f"the {shape_in[0]}\u00d7{shape_in[1]} input is read channels first, as a (C, L) map (a later layer slides a window "
                f"along its last axis), not as {shape_in[0]} tokens of {shape_in[1]} features: the receptive field runs along the "
                "last axis, and is approximate from here on"
            )
            bound = bound or name
        tangled = tangle is not None and any(tangle)
        other = windows is not None and (len(windows) != len(rf) and (layout is not None or _moves(windows)))  # (a 1-D window on a 2-D field)
        if named is not None or (windows is not None and rf and (layout != standard or tangled or other)):
            cov = _cov_through_axes(cov, layout, named, windows, node["in_shapes"][0], node["shape"])
            grid_in = grid
            taken_grid = None
            rf, why, exact = _through_axes(rf, layout, named, windows, name)
            if layer.__dict__.get("padding_mode", "zeros") == "circular":  # (on a permuted map: where the padding wraps is not followed)
                exact = False
                why = why or (
                    "circular padding on a permuted map: where its border windows wrap is not followed, "
                    "the receptive field is approximate from here on"
                )
                cov = (None,) * len(cov)
            if inherited in prefix and whole is not None and whole.startswith(CAUSAL) and layout is not None and 0 in layout:
                t = layout.index(0)
                in0 = node["in_shapes"][0]
                taken = _causal_taken(named, t, in0, node["shape"])
                symbolic_phases = taken is not None and type(taken[2]) is not int and any(
                    r.phases is not None for f, _ in prefix[inherited] for r in f
                )  # (a field on an uneven grid is mapped on numbers only)
                if taken is not None and taken[0]:  # its first output reads the last position: every output sees the whole input
                    whole = f"it reads the last position of {inherited}, which sees the whole input"
                elif taken is not None and not taken[1] and not symbolic_phases:  # its outputs read a prefix of the positions, short of the last
                    reach = taken[2]
                    # what its outputs see together: the fields of positions 0..reach (a layer mixing them sees that union)
                    taken_grid = tuple((f, (reach + 1,)) for f, _ in prefix[inherited])
                    rf = tuple(r._replace(whole=False) for r in _whole(taken_grid, rf))
                    if len(node["shape"]) == len(in0) and as_int(node["shape"][t]) != 1:
                        ragged.add(name)  # output j sees positions up to its own: prefixes of different lengths, on no sliding grid
                    whole, inherited = None, None
                    within = f" (its positions taken to lie within the {in0[t]} positions, as its shape takes them)" if taken[3] else ""
                    note = note or (
                        f"after causal attention (output i sees positions 0..i), its outputs read positions up to {reach}{within}: "
                        f"they see the fields of positions 0..{reach}, not the whole input"
                    )
                elif (
                    _identity((named or {}).get(t), in0, node["shape"], t)
                    if taken is not None
                    else len(in0) == len(node["shape"]) and _same_size(in0[t], node["shape"][t]) and _token_wise(t, in0[t], named, windows)
                ):  # position j to position j along the tokens
                    prefix[name] = prefix[inherited]
                else:  # its last output reads the last position, but the others are moved or strided: which prefix each sees is not followed
                    exact = False
                    op_t = (named or {}).get(t)
                    how = (
                        "it takes positions short of the last, whose fields lie on an uneven grid, with symbols"
                        if symbolic_phases
                        else "it rolls the positions cyclically (its first outputs hold the last positions)"
                        if named is not None and t in named and op_t is None
                        else "it takes positions with a stride or an offset"
                        if isinstance(op_t, Window) or named is None
                        else "it regroups the positions"
                    )
                    note = note or (
                        f"after causal attention (output i sees positions 0..i), {how}: "
                        "which positions each of its outputs sees is not followed here, the receptive field is approximate from here on"
                    )
            if why is not None and note is None:
                note = why
            if tangled and tangle is not None and named is None and tangle[0]:  # spatial axes merged into the axis read as channels
                if not layer.weights(ins):  # (a pool, an upsampling: channel by channel) unchanged along them
                    pass
                elif as_int(getattr(layer, "groups", 1)) == 1:  # every output reads all of that axis: the union along them
                    union = _whole(grid_in, rf)
                    rf = tuple(union[m] if m in tangle[0] else r for m, r in enumerate(rf))
                    cov = tuple(_cov_everywhere(c) if m in tangle[0] else c for m, c in enumerate(cov))
                else:
                    exact = False
                    note = note or f"{name} reads groups of an axis that holds spatial axes merged with others: the field is approximate from here on"
            if tangled and tangle is not None and named is None and any(tangle[1:]):
                exact = False
                note = note or f"{name} slides a window along an axis holding spatial axes merged with others: the field is approximate from here on"
            bound = bound or (None if exact else name)
            shape = node["shape"]
            grid = ((rf, _grid_sizes(shape, layout, len(rf))),) if taken_grid is None else taken_grid
            if taken_grid is not None:  # (which pixels each position sees is a prefix's: not the coverage of one field)
                cov = (None,) * len(rf)
            if whole is None and exact and named and _one_window(named, layout, node["in_shapes"][0], len(rf)):
                whole = "one window covers the whole map: every output sees every input pixel any position sees"
        elif windows is not None and len(windows) == len(rf):
            in0, out_shape = node["in_shapes"][0], node["shape"]
            mode = layer.__dict__.get("padding_mode", "zeros")
            rf_in, outs = rf, out_shape[1:] if len(out_shape) == len(rf) + 1 else (1,) * len(rf)
            wraps = tuple(mode == "circular" and _reads_outside(w, n, m) is not False for w, n, m in zip(windows, in0[1:], outs, strict=True)) if (
                len(in0) == len(rf) + 1
            ) else (mode == "circular",) * len(rf)
            if len(in0) == len(rf) + 1:  # (a flatten of the map: one output position)
                cov = tuple(
                    _cov_wrapped(c, w, n, m) if wrap else _cov_through(c, w, n, m)
                    for c, w, n, m, wrap in zip(cov, windows, in0[1:], outs, wraps, strict=True)
                )
            else:
                cov = (None,) * len(rf)
            if steps is not None and all(r.phases is None and not r.whole for r in rf):  # the usual case: a regular grid through a regular window
                rf = tuple([AxisRF(r.size + e1 * r.jump, r.jump * s, r.centre2 + q * r.jump) for r, (e1, s, q) in zip(rf, steps, strict=True)])
            else:
                out = []
                for axis, (r_in, w) in enumerate(zip(rf, windows, strict=True)):
                    r_out, why, exact = r_in.through_noted(w)
                    if why is not None and note is None:
                        note = f"axis {axis}: {why}"
                    bound = bound or (None if exact else name)
                    out.append(r_out)
                rf = tuple(out)
            if any(wraps):  # circular padding: border windows read the far side of the map
                every = tuple(
                    wrap and (reads := _wrapped_reads(w, n, m)) is not None and reads[1]
                    for w, n, m, wrap in zip(windows, in0[1:], outs, wraps, strict=True)
                )
                rf, why, exact = _circular(rf_in, rf, wraps, torus.get(inputs[0]), in_sizes, _whole(grid, rf) if any(every) else None, every)
                if why is not None:
                    note = note or why
                if not exact:
                    bound = bound or name
            elif mode in ("reflect", "replicate") and len(in0) == len(rf) + 1:
                # (the padding copies pixels next to the border, which the window's own positions hold: no pixel beyond
                # the zeros case, no output reading none; the interval rules count those positions as padding, as for zeros)
                pass
            shape = node["shape"]
            grid = ((rf, tuple(shape[1:]) if len(shape) == len(rf) + 1 else (1,) * len(rf)),)
            if whole is None and _spans_the_map(windows, node["in_shapes"][0], grid[0][1], wraps):
                whole = "its window spans the whole map: every output position sees every input pixel any position sees"
            elif whole is None and rf and all(r.whole for r in rf) and any(wraps):
                whole = "circular padding wraps every output's field around the whole map: every output sees every input pixel"
            if rings and len(in0) == len(rf) + 1 and len(inputs) == 1:
                torus[name] = _torus_after(torus.get(inputs[0]), rf, windows, in0[1:], outs, wraps, mode, in_sizes)
        if inherited is not None and rf and (named is not None or windows is not None) and layer.__dict__.get("padding_mode", "zeros") == "zeros":
            blank = _reads_only_padding(named, windows, layout, node["in_shapes"][0], node["shape"], len(rf))
            if blank is not None:  # (a whole field is no field for an output that reads only padding)
                whole, inherited = None, None
                note = note or (
                    f"axis {blank}: some outputs read only padding and see no input pixel (the others see every pixel "
                    f"{inputs[0]} saw): not every output sees the whole input"
                )
        mixed: tuple[int, ...] = ()
        if rf and hooks.mixed_axes and whole is None:
            mixed = asked.get("mixed_axes", _UNASKED)
            if mixed is _UNASKED:
                mixed = asked["mixed_axes"] = layer.mixed_axes(ins)
        if mixed and not all(r.whole for r in rf):
            if layout is not None and tangle is not None:
                alone = {m for t in mixed if t < len(layout) and (m := layout[t]) is not None}
                merged = {m for t in mixed if t < len(tangle) for m in tangle[t]}
                # (a merged axis of one position, a flattened map its window already spanned: nothing more to see)
                axes = sorted(alone | {m for m in merged if any(known_sign(sizes[m] - 1) != 0 for _, sizes in grid)})
            else:  # reshapes lost the layout (ViT's patches, MLP-Mixer's): what each axis holds, followed by sizes (rarely needed)
                if roles is None:
                    roles = axis_roles(G)
                axes, lost = _spatial_axes(roles.get(inputs[0]) if inputs else None, mixed, len(rf))
                if lost or axes:  # (guessed from sizes: a reshape that splits a merged axis is not followed)
                    note = note or (
                        f"every output reads every position along axis {', '.join(map(str, mixed))} of its input, and what that axis "
                        "holds after the reshapes before it is not known (guessed from the sizes): the receptive field is approximate from here on"
                    )
                    bound = bound or name
            if axes:
                union = _whole(grid, rf)
                rf = tuple(union[m] if m in axes else r for m, r in enumerate(rf))
                cov = tuple(_cov_everywhere(c) if m in axes else c for m, c in enumerate(cov))
                if all(r.whole for r in rf) and layout is not None:
                    whole = "it reads every position of the map: every output sees every input pixel any position sees"
                    note = note or "reads every position of the map (a softmax, norm or linear over its axes): every output sees the whole input"
                else:
                    note = note or (
                        f"every output reads every position along axis {', '.join(map(str, axes))} (a softmax, norm or linear over it): "
                        "its field there is the union of theirs"
                    )
                grid = ((rf, _grid_sizes(node["shape"], layout, len(rf))),)
        mixes = False
        if rf and hooks.mixes_positions:
            mixes = asked.get("mixes_positions", _UNASKED)
            if mixes is _UNASKED:
                mixes = asked["mixes_positions"] = layer.mixes_positions(ins)
                asked["positions_read"], asked["sees_prefix"] = (layer.positions_read(ins), layer.sees_prefix(ins)) if mixes else (None, False)
                asked["reads_pair"] = mixes and layer.reads_pair(ins)
        if mixes:
            rf = _whole(grid, rf)
            reads, held = asked["positions_read"], _positions(grid)
            if reads is not None and held is not None and type(reads) is int and reads < held:
                learned = len(inputs) > 1 and all(not nodes[i]["rf"] for i in inputs[1:])  # keys and values from no input pixel
                why = ("its keys and values are learned tensors made from no input pixel, so output i reads only its own query's "
                       "positions" if learned else "attention inside windows?")
                note = note or (
                    f"each output reads at most {reads:,} of the {held:,} positions before it ({why}): "
                    "the whole input shown is an upper bound, approximate"
                )
                bound = bound or name
            elif asked["reads_pair"]:  # attention's scores written out: entry (i, j) reads query i and key j
                note = note or (
                    "entry (i, j) of the scores reads query i and key j: the field shown is the hull of the widest pair (0, the last), "
                    "not every output sees the whole input (after the causal mask and softmax, row i reads keys 0..i)"
                )
                if len(rf) == 1 and len(inputs) == 2:
                    read = _score_fields(inputs, ins, nodes, prefix, grids)
                    if read is not None:
                        pairs[name] = read
            elif asked["sees_prefix"]:  # causal attention
                if len(rf) == 1 and layout is not None and 0 in layout and layout.index(0) == len(ins[0]) - 2:  # (the tokens where it reads them)
                    # output i reads positions 0..i of every input: the fields those positions see (where an input came after an
                    # earlier causal layer, position j sees that one's prefix 0..j; attention's weights written out and masked, row
                    # i reads query i and keys 0..i: the fields of those positions (pairs); else its own field).  An input whose
                    # positions are not tokens (the scores' hull with no mask before the softmax, a layout lost) is not followed
                    read_p: list[tuple[tuple[AxisRF, ...], tuple[Dim, ...]]] = []
                    for i in inputs:
                        if not nodes[i]["rf"]:
                            continue
                        if i in prefix:
                            read_p += prefix[i]
                        elif pairs and (rows := _weights_rows(i, nodes, pairs)) is not None:
                            read_p += rows
                        elif (lay := nodes[i]["rf_layout"]) is not None and 0 in lay:
                            read_p += grids[i]
                        else:
                            break
                    else:
                        prefix[name] = tuple({id(g): g for g in read_p}.values())
                    if name not in prefix:  # (its last output still reads every position: whole, exact; which ones the others read is not followed)
                        why = (
                            "its weights are not followed back to the queries and keys each row reads (a softmax before the causal mask, "
                            "a layer moving the scores, no causal_mask, or their positions not tokens)"
                            if layer.__dict__.get("causal") == "weights"
                            else "an input's positions are not followed as tokens"
                        )
                        note = note or (
                            f"{CAUSAL}: output i is meant to read positions 0..i, but {why}: its last output sees the whole input, "
                            "which positions the others see is not followed"
                        )
                whole = f"{CAUSAL}: output i reads positions 0..i: the last output sees every input pixel any position sees, the first its own"
                note = note or f"{CAUSAL}: output i sees positions 0..i (the last one the whole input, the first only its own position)"
            else:
                whole = "it mixes every position: every output sees every input pixel any position sees"
            grid = ((rf, (1,) * len(rf)),)
            note = note or "mixes every position: every output sees the whole input"
        layout_in = layout
        perm = None
        if layout is not None and hooks.permutation:
            perm = asked.get("permutation", _UNASKED)
            if perm is _UNASKED:
                perm = asked["permutation"] = layer.permutation(ins)
        if perm is not None and tangle is not None:
            layout, tangle = tuple(layout[p] for p in perm), tuple(tangle[p] for p in perm)
        elif layout is not None and len(inputs) == 1:  # (a reshape, flatten, select: see _relayout)
            layout, tangle = _next_layout(layout, tangle, tuple(node["in_shapes"][0]), tuple(node["shape"]))
        elif layout is not None and len(layout) != len(node["shape"]):
            layout = None
        if rings and name not in torus and len(inputs) > 1 and windows is None and named is None and not mixes and rf:
            seen_t = [torus.get(i) for i, s in zip(inputs, ins, strict=True) if nodes[i]["rf"] and s == node["shape"]]
            if seen_t and all(t is not None for t in seen_t) and len(seen_t) == sum(1 for i in inputs if nodes[i]["rf"]):
                torus[name] = tuple(
                    all(t[a] for t in seen_t if t is not None) and _ring(r, n, big)
                    for a, (r, n, big) in enumerate(zip(rf, _grid_sizes(node["shape"], layout, len(rf)), in_sizes, strict=True))
                )
        if whole is not None and bound is None and name not in prefix and whole.startswith(CAUSAL):
            if len(rf) == 1:
                mixed_in = ()
                if hooks.mixed_axes:
                    mixed_in = asked.get("mixed_axes", _UNASKED)
                    if mixed_in is _UNASKED:
                        mixed_in = asked["mixed_axes"] = layer.mixed_axes(ins)
                carried = _carried_prefix(
                    [(i, s, nodes[i]) for i, s in zip(inputs, ins, strict=True) if nodes[i]["rf"]],
                    node["shape"], layout_in, layout, named, windows, mixed_in, prefix, grids,
                )
                if carried is not None:
                    prefix[name] = carried
            # where the prefix each position sees is not followed past here (review s10 #1: a reshape regrouping the tokens
            # with the features, a conv over them), the row is whole while some output reads the last token's position
            if name in prefix:
                pass
            elif mixes and asked["sees_prefix"]:
                unfollowed[name] = True  # (its last query reads every key)
            else:
                status = [i in prefix or unfollowed.get(i, False) for i in inputs if (w := nodes[i].get("rf_whole")) and w.startswith(CAUSAL)]
                keeps = _causal_last(status, ins, node["shape"], named, windows)
                if keeps is None:
                    bound = name
                    note = note or (
                        "it takes positions from a tensor made after causal attention (output i sees positions 0..i) whose tokens "
                        "were regrouped, read by a window, or weighed by attention weights not followed to their queries and keys, "
                        "before it: which tokens its outputs read is not followed, so its field "
                        "may be less than the whole input shown: the receptive field is approximate from here on"
                    )
                else:
                    unfollowed[name] = keeps
        if ragged and name not in ragged and any(i in ragged for i in inputs) and rf:  # (ragged: nearly always empty)
            mixed_r = asked.get("mixed_axes", ()) if hooks.mixed_axes else ()
            if mixed_r is _UNASKED:
                mixed_r = asked["mixed_axes"] = layer.mixed_axes(ins)
            t_r = layout_in.index(0) if layout_in is not None and 0 in layout_in else None
            if mixes or (t_r is not None and t_r in mixed_r):
                pass  # every output reads all the positions: the union of their prefixes (the grid the take left), exact
            elif (
                t_r is not None
                and layout is not None
                and 0 in layout
                and all(i in ragged or not nodes[i]["rf"] for i in inputs)
                and _token_wise(t_r, node["shape"][layout.index(0)], named, windows)
                and all(
                    len(s) == len(layout_in) and _same_size(s[t_r], node["shape"][layout.index(0)])
                    for i, s in zip(inputs, ins, strict=True)
                    if nodes[i]["rf"]
                )
            ):
                ragged.add(name)
            else:
                bound = bound or name
                note = note or (
                    "it reads tokens taken after causal attention, whose outputs see prefixes of different lengths (output j sees "
                    "positions 0..j): a window over them, or a regrouping, is not followed: the receptive field is approximate from here on"
                )
        if note is None and id(rf) not in regular:
            for r in rf:
                if r.phases is not None:  # on an upsampled grid, the average stride may be fractional
                    odd = [(i, r.shift, len(r.phases)) for i, r in enumerate(rf) if r.phases is not None and r.shift % len(r.phases)]
                    if odd:
                        note = f"axis {odd[0][0]}: outputs sit {odd[0][1]}/{odd[0][2]} input pixels apart on average: the stride shown is rounded up"
                    break
            else:
                regular.add(id(rf))  # (every rf stays alive on its node: ids are not reused during the pass)
        if note is None and bound is not None:
            note = f"receptive field approximate from {bound} on (see that row)"
        elif note is not None and bound is not None:  # (a note on the grid says nothing of exactness where the field is approximate)
            note = note.replace(EXACT_FIELD, "")
            if "approximate" not in note and bound == name:
                note = f"{note}: the receptive field is approximate from here on"
            elif "approximate" not in note:
                note = f"{note}; receptive field approximate from {bound} on (see that row)"
        if inherited is not None:
            cov = covs[inherited]  # every output sees all that input saw
        elif whole is not None and rf:
            short = _short_of_whole(cov, in_sizes)
            if short is not None:  # every output reads every position, but those positions miss input pixels
                whole = None
                mixing = "mixes every position: every output sees the whole input"
                note = f"every output reads every position before it, but {short}" if note in (None, mixing) else note
        if layout is not None and any(r.phases is not None for r in rf):
            rf = _existing(rf, _grid_sizes(node["shape"], layout, len(rf)))
        node["rf"] = rf
        covs[name] = cov
        node["rf_note"] = note
        node["rf_bound"] = bound
        grids[name] = grid
        node["rf_layout"] = layout
        if layout is not None and tangle is not None:
            tangles[name] = tangle
        node["rf_whole"] = whole if rf else None
        if repeats and name in done_at:
            for rep in done_at[name]:
                _last_copy(rep, nodes, grids)
    G.graph["field_layer"] = _field_layer(G, nodes, grids)


def _field_layer(G: Graph, nodes: dict[str, dict[str, Any]], grids: dict[str, Any]) -> str | None:
    """The layer whose receptive field is "the network's", as textbooks give it: the last one whose
    map still has more than one position (ResNet-18's layer4, 435 pixels; after it a global pool's
    padded window, 627, is no field a reader expects; ConvNeXt's channels-last norm after its pool
    holds one position, whatever its shape says), or, after it, a learned window that reads that
    map down to one position (LeNet-5's C5, a 5x5 conv over S4's 5x5 maps: 32, the whole image; a
    DCGAN discriminator's last conv).  A squeeze-and-excitation pool in the middle pools only its
    gate: the map goes on.  Training-only heads do not count; None without a spatial layer."""

    n_axes = len(G.graph["input_shape"]) - 1

    def many(name: str) -> bool:  # more than one position (a symbol may be more)
        if not any(known_sign(n - 1) != 0 for _, sizes in grids.get(name, ()) for n in sizes):
            return False
        node = nodes[name]
        layout, shape = node.get("rf_layout"), node["shape"]
        if layout is not None and len(layout) == len(shape):  # its own positions, where its layout is known (after a permute)
            return any(known_sign(n - 1) != 0 for n in _grid_sizes(shape, layout, n_axes))
        return len(shape) > 1  # (a vector holds no map, whatever came before it)

    order: list[str] = [n for n in G.graph["order"] if (d := nodes[n])["rf"] and not d["training_only"]]
    last = next((i for i in range(len(order) - 1, -1, -1) if many(order[i])), None)
    if last is None:
        return order[-1] if order else None
    field = order[last]
    for name in order[last + 1 :]:
        node = nodes[name]
        if (
            not many(name)
            and any(many(i) for i in node["inputs"] if i in grids)
            and node["layer"].windows(node["in_shapes"]) is not None
            and node["layer"].weights(node["in_shapes"])  # a conv as large as the map (a pool there is the global pool: not the network's field)
        ):
            field = name
    return field


# ----- which input pixels the positions of a map see at all (for "whole") --------------------------
# covs (the pass's), per node and spatial axis, a Cover (a, b, refs, holes) or None where nothing is known.
# Without holes: the positions of the map see together exactly the input pixels a..b, all of them
# (padding not counted), and with refs, any run of neighbouring positions sees one unbroken run of
# pixels.  refs: (f, ra, rb) triples, each a regular field f with ra >= f's lo at position 0 and
# rb <= its hi at the last position, such that position u's own field spans
# [max(lo_f(u), ra), min(hi_f(u), rb)] where that is not empty (the padded field clipped to the
# pixels that exist; true along chains of undilated windows, by induction: a window's lowest real
# unit is its lowest one, or unit 0 where it starts in the padding); where paths of the same
# positions meet, each path's triples still hold.
# With holes: each position's field is as the refs say, but neighbours' fields do not meet (a 1x1
# conv with stride 2 reads every other position: the pixels only the others saw are seen by none);
# where paths meet, their fields may fill each other's holes (Swin's patch merging: x[0::2] beside
# x[1::2]), else no later window fills them.
# "whole" (every output sees every input pixel) needs [a, b] = [0, n - 1] and no holes: the padding
# that a field counts is no input, so a 3x3 conv with padding 1 on the 1x1 map left by a 3x3 conv
# with stride 2 of a 4x4 image reads pixels 0..2, not the whole 0..3.
Refs = tuple[tuple[AxisRF, int, int], ...]
Cover = tuple[Dim, Dim, Refs, bool] | None
MAX_REFS = 8


def _reads(w: Window, n: Dim, m: Dim) -> tuple[Dim, Dim] | None:
    """The lowest and highest input units (0..n-1) that some output of window ``w`` reads, (0, n - 1)
    where undilated windows reach both ends (decided with symbols too); None if undecided or none."""
    if known_sign(w.upsample - 1) == 0 and known_sign(w.dilation - 1) == 0:
        p, e, s = w.pad_before, w.extent, w.stride
        starts = known_sign(p) in (0, 1) and known_sign(e - 1 - p) in (0, 1)  # output 0's window holds unit 0
        last = (m - 1) * s - p  # the last output's first unit
        if starts and known_sign(last + e - 1 - (n - 1)) in (0, 1) and known_sign(last - (n - 1)) in (0, -1):
            return 0, n - 1
    window = _int_window(w)
    n_i, m_i = as_int(n), as_int(m)
    if window is None or n_i is None or m_i is None:
        return None
    k, s, p, d, u = window

    def units(o: int) -> list[int]:
        return [q // u for t in range(k) if (q := o * s - p + t * d) % u == 0 and 0 <= q // u < n_i]

    lo = next((min(us) for o in range(m_i) if (us := units(o))), None)
    hi = next((max(us) for o in reversed(range(m_i)) if (us := units(o))), None)
    return None if lo is None or hi is None else (lo, hi)


def _cov_through(c: Cover, w: Window, n: Dim, m: Dim) -> Cover:
    """The pixels the outputs of window ``w`` see together (see Cover), from those of its input map."""
    if c is None:
        return None
    a, b, refs, holes = c
    if w.adaptive is not None:  # torch's adaptive windows read every position, each run touching the next: the same pixels, fields not followed
        return None if holes else (a, b, (), False)
    k, s, p = w.kernel, w.stride, w.pad_before
    if holes:  # no window fills a gap: one that reads every position sees the same pixels (the fields of its outputs unknown), else nothing is known
        if all(as_int(v) == 1 for v in (k, s, w.dilation, w.upsample)) and as_int(p) == 0:
            return c
        return (a, b, (), True) if _units_all_read(w, n, m, 0, n - 1) else None
    if type(n) is int and type(m) is int and type(k) is int and type(s) is int and type(p) is int and w.upsample == 1 and w.dilation == 1:
        last = (m - 1) * s - p  # the last output's first unit (the general case below, on numbers: nearly every layer of a CNN)
        if 0 <= p <= k - 1 and last <= n - 1 <= last + k - 1 and k >= s:  # dense windows from unit 0 to unit n - 1: the hull stays
            e1, q = k - 1, k - 1 - 2 * p
            if all(f.phases is None and not f.whole and type(f.size) is int and type(f.jump) is int and type(f.centre2) is int for f, _, _ in refs):
                return a, b, tuple([(AxisRF(f.size + e1 * f.jump, f.jump * s, f.centre2 + q * f.jump), ra, rb) for f, ra, rb in refs]), False
    reads = _reads(w, n, m)
    plain = as_int(w.upsample) == 1 and as_int(w.dilation) == 1
    dense = plain and known_sign(w.extent - w.stride) in (0, 1)  # undilated windows that leave no unit unread between them
    if reads is None:
        return None
    lo_u, hi_u = reads
    first, last = known_sign(lo_u) == 0, known_sign(hi_u - (n - 1)) == 0
    if first and last and dense:
        new = (a, b)
    elif type(lo_u) is int and type(hi_u) is int and refs:  # the hull holds the fields of units lo_u and hi_u
        los = [lo for f, ra, rb in refs if (lo := max(f.span()[0] + lo_u * int(f.jump), ra)) <= min(f.span()[1] + lo_u * int(f.jump), rb)]
        his = [hi for f, ra, rb in refs if (hi := min(f.span()[1] + hi_u * int(f.jump), rb)) >= max(f.span()[0] + hi_u * int(f.jump), ra)]
        if not los or not his:
            return None
        new = (min(los), max(his))
    else:
        return None
    if not plain:  # (dilated or upsampled) each output's own field has holes: only the whole map's is known, if no unit goes unread
        return (new[0], new[1], (), False) if _units_all_read(w, n, m, lo_u, hi_u) else None
    e, s, p = w.extent, w.stride, w.pad_before
    fast = type(e) is int and type(s) is int and type(p) is int  # (ResNet-152: 2,000 refs a table, nearly all this case)
    out = []
    for f, ra, rb in refs:
        if fast and f.phases is None and not f.whole and type(f.size) is int and type(f.jump) is int:  # AxisRF.through's regular step
            g = AxisRF(f.size + (e - 1) * f.jump, f.jump * s, f.centre2 + (e - 1 - 2 * p) * f.jump)
        else:
            g = f.through(w)
        if type(g.size) is int and type(g.jump) is int and type(g.centre2) is int:
            # (clipped to the pixels the map sees: a position past the last real one reads only padding there)
            out.append((g, max(ra, lo) if type(lo := new[0]) is int else ra, min(rb, hi) if type(hi := new[1]) is int else rb))
    if not dense and known_sign(m - 1) != 0:
        # outputs read k units in a row, s > k apart: the units between are read by none, and the
        # pixels that only they see are seen by no output, unless each output's field reaches the
        # next's (a field at least as large as its stride)
        if len(out) != len(refs) or not out:
            return None
        if not _solid(tuple(out)):
            return new[0], new[1], tuple(out), True
    return new[0], new[1], tuple(out), False


def _solid(refs: Refs) -> bool:
    """Whether the fields ``refs`` give each position join into one run of pixels that meets the
    next position's: on one regular grid of stride J, the runs [lo, hi] at position 0 overlap
    or touch one another, and together span at least J pixels."""
    if not refs or any(f.phases is not None or f.whole or type(f.jump) is not int for f, _, _ in refs):
        return False
    jump = refs[0][0].jump
    if any(f.jump != jump for f, _, _ in refs):
        return False
    spans = sorted(f.span() for f, _, _ in refs)
    lo, hi = spans[0]
    for a, b in spans[1:]:
        if a > hi + 1:
            return False
        hi = max(hi, b)
    return hi - lo + 1 >= jump


def _units_all_read(w: Window, n: Dim, m: Dim, lo: Dim, hi: Dim) -> bool:
    """Whether the ``m`` outputs of window ``w`` on ``n`` units read together every unit from ``lo``
    to ``hi`` (a dilated window reads every d-th unit: its neighbours may or may not read those
    between).  Decided on numbers, counting up to about a million reads; False where undecided."""
    window = _int_window(w)
    n_i, m_i, lo_i, hi_i = as_int(n), as_int(m), as_int(lo), as_int(hi)
    if window is None or n_i is None or m_i is None or lo_i is None or hi_i is None or m_i * window[0] > 1 << 20 or n_i > 1 << 22:
        return False
    k, s, p, d, u = window
    seen = bytearray(n_i)
    for o in range(m_i):
        for t in range(k):
            q = o * s - p + t * d
            if q % u == 0 and 0 <= q // u < n_i:
                seen[q // u] = 1
    return all(seen[lo_i : hi_i + 1])


def _cov_through_axes(
    cov: tuple[Cover, ...],
    layout: Layout | None,
    named: dict[int, Window | Partition | None] | None,
    windows: list[Window] | None,
    in_shape: tuple[Dim, ...],
    shape: tuple[Dim, ...],
) -> tuple[Cover, ...]:
    """:func:`_cov_through` on a layout other than (C, *spatial), or for a layer that names its axes."""
    if layout is None:
        return (None,) * len(cov)
    out: list[Cover] = []
    for m, c in enumerate(cov):
        t = layout.index(m) if m in layout else None
        if t is None or (named is not None and t not in named):  # untouched (or gone)
            out.append(c)
            continue
        op = named[t] if named is not None else windows[t - 1] if windows is not None and t > 0 else None
        if isinstance(op, Window):
            out.append(_cov_through(c, op, in_shape[t], shape[t]) if len(in_shape) == len(shape) else None)
        elif isinstance(op, Partition):  # attention within windows: each position sees more, every position is still read
            out.append(c)
        else:  # rolled, or read as channels: every position is still read, but no longer in its place
            out.append(None if c is None else (c[0], c[1], (), c[3]))
    return tuple(out)


def _cov_union(covs: list[tuple[Cover, ...]], ins: list[tuple[Dim, ...]], out: tuple[Dim, ...], pixels: tuple[Dim, ...]) -> tuple[Cover, ...]:
    """Where paths meet, the positions of the output see what those of every input saw; position u
    sees at least what position u of an input with as many positions saw (``ins``, ``out``: positions
    per axis; ``pixels``: the input image's size per axis).  Gaps are claimed only where proved (one
    path's); where what the paths see together is not decided, None."""
    if len(covs) == 1:
        return covs[0]
    merged: list[Cover] = []
    for axis in range(max(len(c) for c in covs)):
        paths = [(c[axis], s[axis] == out[axis]) for c, s in zip(covs, ins, strict=True) if len(c) > axis]
        known = [(cv, same) for cv, same in paths if cv is not None]
        if not known:
            merged.append(None)
            continue
        a, b, _, _ = known[0][0]
        for (a2, b2, _, _), _same in known[1:]:
            if known_sign(a2 - a) == -1:
                a = a2
            if known_sign(b2 - b) == 1:
                b = b2
        unbroken = [(cv[0], cv[1]) for cv, _ in known if not cv[3]]
        if len(known) < len(paths):  # what the other paths see is not known: only a proof of every pixel is kept
            full = (0, pixels[axis] - 1)
            merged.append((*full, (), False) if _chained(unbroken, full) else None)
            continue
        refs = _undominated(tuple(dict.fromkeys(r for cv, same in known if same for r in cv[2])))[:MAX_REFS]
        others = [cv for cv, same in known if not same]  # (broadcast: one position added to every one of the output)
        if others:
            if type(a) is int and type(b) is int and any(not cv[3] and (cv[0], cv[1]) == (a, b) for cv in others):
                # every output position sees all the pixels (squeeze-and-excitation's gate): one field, the same at every position
                merged.append((a, b, ((AxisRF(b - a + 1, 0, a + b), a, b),), False))
                continue
            refs = ()  # what each position sees beside the broadcast input's pixels is not said by the fields alone
        if refs and all(cv[2] for cv, same in known if same) and _solid(refs):
            merged.append((a, b, refs, False))  # the paths' fields make one unbroken run per position, meeting the next
        elif _chained(unbroken, (a, b)) or _filled(known, out[axis], (a, b)):
            merged.append((a, b, (), False))  # the paths see every pixel of a..b together: only the whole map's is known
        else:
            merged.append(None)
    return tuple(merged)


def _filled(known: Sequence[tuple[tuple[Dim, Dim, Refs, bool], Any]], positions: Dim, span: tuple[Dim, Dim]) -> bool:
    """Whether what the paths are known to see (an unbroken path's pixels a..b, each position's own
    field for the others) covers every pixel of ``span`` (counted on numbers, up to 2^16 positions)."""
    m, lo, hi = as_int(positions), as_int(span[0]), as_int(span[1])
    if m is None or lo is None or hi is None or m > 1 << 16:
        return False
    runs: list[tuple[int, int]] = []
    for cv, same in known:
        a, b, refs, holes = cv
        if not holes and type(a) is int and type(b) is int:
            runs.append((a, b))
            continue
        if not same or any(f.phases is not None or f.whole or type(f.jump) is not int for f, _, _ in refs):
            continue
        for f, ra, rb in refs:
            f_lo, f_hi = f.span()
            runs += [(max(f_lo + u * f.jump, ra), min(f_hi + u * f.jump, rb)) for u in range(m)]
    reach = lo - 1
    for a, b in sorted(r for r in runs if r[0] <= r[1]):
        if a > reach + 1:
            break
        reach = max(reach, b)
    return reach >= hi


def _spatial_axes(roles: Roles | None, mixed: tuple[int, ...], n_axes: int) -> tuple[list[int], bool]:
    """The spatial axes (0-based) that tensor axes ``mixed`` hold, by their roles: a spatial axis
    itself, or tokens (the spatial axes flattened together: all of them); and whether some axis's
    role is unknown.  Channels, features and heads hold none."""
    names = SPATIAL.get(n_axes, ())
    axes: set[int] = set()
    lost = False
    for t in mixed:
        role = roles[t] if roles is not None and t < len(roles) else None
        if role == "tokens":
            axes.update(range(n_axes))
        elif role in names:
            axes.add(names.index(role))
        elif role is None:
            lost = True
    return sorted(axes), lost and not axes


def _cov_everywhere(c: Cover) -> Cover:
    """The cover after a layer whose every output reads every position along the axis: the same
    pixels together, and each position sees them all (one field, the same at every position)."""
    if c is None:
        return None
    a, b, _, holes = c
    return (a, b, ((AxisRF(b - a + 1, 0, a + b), a, b),) if type(a) is int and type(b) is int else (), holes)


def _chained(hulls: list[tuple[Dim, Dim]], span: tuple[Dim, Dim]) -> bool:
    """Whether unbroken runs of pixels [a, b] make together the one unbroken run ``span`` (decided
    on numbers, or where one run is the span)."""
    if any(known_sign(a - span[0]) == 0 and known_sign(b - span[1]) == 0 for a, b in hulls):
        return True
    ints = sorted((a, b) for a, b in ((as_int(a), as_int(b)) for a, b in hulls) if a is not None and b is not None)
    if not ints or len(ints) < len(hulls) or (ints[0][0], max(b for _, b in ints)) != (as_int(span[0]), as_int(span[1])):
        return False
    hi = ints[0][1]
    for a, b in ints[1:]:
        if a > hi + 1:
            return False
        hi = max(hi, b)
    return True


def _undominated(refs: tuple[tuple[AxisRF, int, int], ...]) -> tuple[tuple[AxisRF, int, int], ...]:
    """``refs`` without those another one contains at every position: (f, ra, rb) adds nothing
    beside (g, ra', rb') when both lie on one regular grid (the same jump) and g's field and
    bounds hold f's (g.lo <= f.lo, g.hi >= f.hi, ra' <= ra, rb' >= rb).  A window moves both the
    same way, so the one left answers every later question the pair would: where a residual
    block's paths meet, the longer path's field holds the shortcut's, and ResNet-152 kept 8 refs an
    axis on nearly every layer (the work of the coverage), not 1 or 2."""
    if len(refs) < 2:
        return refs
    spans = [f.span() if f.phases is None and not f.whole and type(f.jump) is int else None for f, _, _ in refs]
    kept = []
    for i, (f, ra, rb) in enumerate(refs):
        si = spans[i]
        if si is not None and any(
            j != i
            and (sj := spans[j]) is not None
            and g.jump == f.jump
            and sj[0] <= si[0]
            and sj[1] >= si[1]
            and ra2 <= ra
            and rb2 >= rb
            and (sj != si or ra2 != ra or rb2 != rb or j < i)  # of equal ones, the first stays
            for j, (g, ra2, rb2) in enumerate(refs)
        ):
            continue
        kept.append(refs[i])
    return tuple(kept)


def _side_by_side(ins: list[tuple[Dim, ...]], out: tuple[Dim, ...]) -> int | None:
    """The first spatial axis along which the inputs' positions are stacked to make the output's
    (an input with more than one position there, but not as many as the output), or None."""
    for axis, n in enumerate(out):
        if any(len(s) > axis and known_sign(s[axis] - 1) == 1 and known_sign(s[axis] - n) == -1 for s in ins):
            return axis
    return None


def _short_of_whole(cov: tuple[Cover, ...], sizes: tuple[Dim, ...]) -> str | None:
    """None if the positions of the map see every input pixel on every axis, else what they miss."""
    for axis, (c, n) in enumerate(zip(cov, sizes, strict=True)):
        if c is None:
            return (
                f"whether they see every input pixel along axis {axis} is not decided here (sizes with symbols, or windows that "
                "skip pixels or positions: dilated, or strided past their size): the receptive field is shown, not 'whole'"
            )
        a, b, _, holes = c
        if holes:
            return (
                f"along axis {axis} those positions see input pixels {a}..{b} with gaps between neighbours (a strided window "
                "skips positions, or reads fewer than its stride): the pixels in the gaps are seen by none"
            )
        if known_sign(a) != 0 or known_sign(b - (n - 1)) != 0:
            return f"those positions see input pixels {a}..{b} along axis {axis}, not all of 0..{n - 1} (the padding a field counts is no input)"
    return None


Layout = tuple[int | None, ...]
EXACT_FIELD = " (the receptive field is exact)"  # said of a field on an uneven grid; dropped where the row's field is approximate
CAUSAL = "causal"  # how an rf_whole reason begins where output i sees only positions 0..i

_UNASKED: Any = object()  # a hook not yet asked for a formula key


def _one_window(named: dict[int, Window | Partition | None], layout: Layout | None, in_shape: tuple[Dim, ...], n_axes: int) -> bool:
    """Whether a partition into windows leaves one window covering every spatial axis (Swin's last stage)."""
    if layout is None or not n_axes:
        return False
    for m in range(n_axes):
        t = layout.index(m) if m in layout else None
        op = named.get(t) if t is not None else None
        if t is None or not isinstance(op, Partition) or known_sign(op.size - in_shape[t]) not in (0, 1):
            return False
    return True


def _merged_layout(layouts: list[Layout | None], rank: int) -> Layout | None:
    """Where paths meet: their layout if those of the output's rank agree (a broadcast gate of
    another rank does not count), else None."""
    same = {lay for lay in layouts if lay is not None and len(lay) == rank}
    return same.pop() if len(same) == 1 else None


def _grid_sizes(shape: tuple[Dim, ...], layout: Layout | None, n_axes: int) -> tuple[Dim, ...]:
    """Positions per spatial axis of a tensor with this layout (1 where the axis is gone)."""
    if layout is None or len(layout) != len(shape):
        return tuple(shape[1:]) if len(shape) == n_axes + 1 else (1,) * n_axes
    return tuple(shape[layout.index(m)] if m in layout else 1 for m in range(n_axes))


def _positions(grid: tuple[tuple[tuple[AxisRF, ...], tuple[Dim, ...]], ...]) -> int | None:
    """How many positions the last spatial layout held (the most, where paths with different
    layouts met: each is a layout of the same input), if numeric."""
    most = 0
    for _, sizes in grid:
        n = 1
        for s in sizes:
            if type(s) is not int:
                return None
            n *= s
        most = max(most, n)
    return most


def _through_axes(
    rf: tuple[AxisRF, ...], layout: Layout | None, named: dict[int, Window | Partition | None] | None, windows: list[Window] | None, name: str
) -> tuple[tuple[AxisRF, ...], str | None, bool]:
    """The field after a layer on a layout other than (C, *spatial), or one that names its axes:
    each spatial axis gets what the layer does along the tensor axis that holds it."""
    if layout is None and rf and all(r.whole for r in rf) and named is not None:  # (a token taken after attention: still the whole input)
        return rf, None, True
    if layout is None:  # the rank changed upstream: which axis is spatial is unknown
        lost = f"{name} slides a window, but reshapes before it lost which axis is spatial: the receptive field is approximate from here on"
        if named is None and windows is not None and len(windows) == len(rf):  # best guess: the (C, *spatial) layout
            return tuple(r.through(w) for r, w in zip(rf, windows, strict=True)), lost, False
        return rf, lost, False
    out: list[AxisRF] = []
    note: str | None = None
    exact = True
    for m, r in enumerate(rf):
        t = layout.index(m) if m in layout else None
        if t is None:
            out.append(r)  # the axis is gone (selected or averaged away): nothing more to see along it
            continue
        op: Window | Partition | None
        if named is not None:
            if t not in named:
                out.append(r)
                continue
            op = named[t]
        elif t == 0:  # a spatial axis where the layer expects channels: it reads all of it
            op = None
        else:
            op = windows[t - 1] if windows is not None else None
        if op is None:
            exact = False
            note = note or (
                f"axis {m}: moved by a cyclic roll (or a window shift the sizes leave undecided), or read as channels: "
                "the receptive field is approximate from here on"
            )
            out.append(r)
            continue
        r_out, why, ok = through_partition(r, op) if isinstance(op, Partition) else r.through_noted(op)
        exact = exact and ok
        if why is not None and note is None:
            note = f"axis {m}: {why}"
        out.append(r_out)
    return tuple(out), note, exact


def _reads_outside(w: Window, n: Dim, m: Dim) -> bool | None:
    """Whether some of the ``m`` outputs of window ``w`` on ``n`` units reads a unit outside 0..n-1
    (padding); None where symbols leave it undecided."""
    window, n_i, m_i = _int_window(w), as_int(n), as_int(m)
    if window is None or n_i is None or m_i is None or w.adaptive is not None:
        return None
    k, s, p, d, u = window
    return p > 0 or ((m_i - 1) * s - p + (k - 1) * d) // u > n_i - 1


def _wrapped_reads(w: Window, n: Dim, m: Dim) -> tuple[bool, bool] | None:
    """Under circular padding (unit q read as q mod n): (the outputs together read every unit, each
    output reads every unit); None where symbols (or more than about a million reads) leave it undecided."""
    window, n_i, m_i = _int_window(w), as_int(n), as_int(m)
    if window is None or n_i is None or m_i is None or w.adaptive is not None or window[4] != 1 or m_i * window[0] > 1 << 20:
        return None
    k, s, p, d, _ = window
    seen: set[int] = set()
    each = True
    for o in range(m_i):
        units = {(o * s - p + t * d) % n_i for t in range(k)}
        each = each and len(units) == n_i
        seen |= units
    return len(seen) == n_i, each


def _cov_wrapped(c: Cover, w: Window, n: Dim, m: Dim) -> Cover:
    """:func:`_cov_through` for a window under circular padding: if its outputs read every unit
    (around the ring), the map sees together what its input saw (each position's own field, which
    wraps, not followed); else nothing is known."""
    reads = _wrapped_reads(w, n, m)
    if c is None or reads is None or not reads[0]:
        return None
    return c[0], c[1], (), c[3]


def _ring(r: AxisRF, n: Dim, big: Dim) -> bool:
    """Whether ``n`` positions on the regular grid of ``r`` span the ``big`` input pixels once around (n * jump = N)."""
    return r.phases is None and not r.whole and type(r.jump) is int and type(n) is int and type(big) is int and n * r.jump == big


def _circular(
    rf_in: tuple[AxisRF, ...],
    rf: tuple[AxisRF, ...],
    wraps: tuple[bool, ...],
    ring: tuple[bool, ...] | None,
    pixels: tuple[Dim, ...],
    union: tuple[AxisRF, ...] | None = None,
    every: tuple[bool, ...] = (),
) -> tuple[tuple[AxisRF, ...], str | None, bool]:
    """The field after a window whose circular padding wraps along the axes ``wraps``: where its
    input's positions wrap around the input as a ring (``torus``), the position the interval rules
    count as padding left of position 0 is position n - 1, whose field is the same interval taken
    around the ring: the rules' field is exact as the run of pixels each output sees, going round
    the border (a run of N or more is every pixel along the axis: whole there).  Elsewhere (the input
    was zero-padded, strided unevenly, or upsampled before) the far side's fields are not where the
    rules put them: the field is approximate, with a note.  Along an axis where every output's window,
    taken round the ring, reads every position (``every``; a 3x3 window padded by 2 on a 2x2 map), each
    output sees the union of all their fields (``union``): exact, whatever came before."""
    out = list(rf)
    why = None
    exact = True
    for a, (r_in, r, wrap) in enumerate(zip(rf_in, rf, wraps, strict=True)):
        if not wrap:
            continue
        if union is not None and a < len(every) and every[a]:
            out[a] = union[a]
            why = why or f"axis {a}: circular padding: every output's window, taken round the map, reads every position along it"
            continue
        big = as_int(pixels[a])
        if ring is None or not ring[a] or r_in.phases is not None or r_in.whole or big is None or type(r.size) is not int:
            exact = False
            why = why or (
                f"axis {a}: circular padding wraps: its border windows read the far side of the map, whose fields the interval "
                "rules do not follow here (zero padding, an uneven stride or upsampling before it, or sizes with symbols): "
                "the receptive field is approximate from here on"
            )
            continue
        if r.size >= big:  # the run goes round the whole ring: every output sees every pixel along the axis
            out[a] = AxisRF(big, r.jump, big - 1, whole=True)
            why = why or f"axis {a}: circular padding: every output's field wraps around all {big} pixels along it"
        else:
            why = why or (
                f"axis {a}: circular padding: border windows read the far side of the map, so the field of a border output "
                "runs round the edge (the same number of pixels as inside)"
            )
    return tuple(out), why, exact


def _torus_after(
    ring: tuple[bool, ...] | None,
    rf: tuple[AxisRF, ...],
    windows: list[Window],
    ins: tuple[Dim, ...],
    outs: tuple[Dim, ...],
    wraps: tuple[bool, ...],
    mode: str,
    pixels: tuple[Dim, ...],
) -> tuple[bool, ...]:
    """Per axis, whether the outputs of this window still wrap around the input as a ring (see
    ``torus``): its input did, it reads no padding (or circular padding, which wraps), and its m
    outputs, one jump apart, span the N pixels once (m * jump = N)."""
    out = []
    for a, (r, w, n, m) in enumerate(zip(rf, windows, ins, outs, strict=True)):
        inside = _reads_outside(w, n, m) is False or (wraps[a] and mode == "circular")
        plain = known_sign(w.upsample - 1) == 0 and w.adaptive is None
        out.append(bool(ring is not None and ring[a] and inside and plain and _ring(r, m, pixels[a])))
    return tuple(out)


def _spans_the_map(windows: list[Window], in_shape: tuple[Dim, ...], positions: tuple[Dim, ...], wraps: tuple[bool, ...] = ()) -> bool:
    """Whether every output position reads every input position: on each axis no upsampling, and
    each output's window from at or before position 0 to at or past the last one (a flatten of the
    map, a global pool, a conv as large as the map; a padded 3x3 conv on a 2x2 map: ResNet's layer4
    on a 64x64 image)."""
    if len(in_shape) != len(windows) + 1 or len(positions) != len(windows):
        return False
    for a, (w, n, m) in enumerate(zip(windows, in_shape[1:], positions, strict=True)):
        if a < len(wraps) and wraps[a] and (reads := _wrapped_reads(w, n, m)) is not None and reads[1]:
            continue  # circular padding: each output's window, taken around the ring, reads every position
        if known_sign(w.upsample - 1) != 0 or w.adaptive is not None:
            return False
        if known_sign(m - 1) != 0 and (  # more outputs: each must read from pixel 0 (the last one starts at or before it), undilated
            known_sign(w.dilation - 1) != 0 or known_sign((m - 1) * w.stride - w.pad_before) not in (0, -1)
        ):
            return False
        covers = known_sign(w.extent - w.pad_before - n)  # the window's last pixel, e - 1 - p, is at or past n - 1
        if covers is None or covers < 0 or known_sign(w.pad_before) not in (0, 1):
            return False
    return True


def _last_copy(rep: SymbolicRepeat, nodes: dict[str, dict[str, object]], grids: dict[str, Any]) -> None:
    """Move the fields of a symbolically repeated block from its first copy to its last.

    Laid out once, the block's layers hold the fields of the first copy, which reads the field r of
    the block's input.  Where every path through the block starts at its input, on a regular grid
    whose stride the block leaves unchanged (it maps its shape to itself), each layer's field is r
    grown by a constant (windows add (e - 1) x stride; merges compare sizes that all grow with r):
    one copy grows the field by D = r_out - r_in and moves its centre by d, so copy k reads
    r + k D, and the last (k = count - 1) shows r + (count - 1) D.  Three 3x3 convolutions, each
    D = 2: 1 + 2n after n of them (the stack of n 3x3 convs sees 2n + 1 pixels)."""
    r_in, r_out = nodes[rep.start]["rf"], nodes[rep.output]["rf"]
    assert isinstance(r_in, tuple) and isinstance(r_out, tuple)
    if not r_in:  # no spatial axis (a token sequence): nothing to move
        return
    steps = []
    exact = not rep.reads_outside
    for a, b in zip(r_in, r_out, strict=True):
        if a.phases is not None or b.phases is not None or known_sign(b.jump - a.jump) != 0:
            exact = False
            steps.append((0, 0))
            continue
        steps.append((b.size - a.size, b.centre2 - a.centre2))
    k = rep.times - 1

    def last(rf: tuple[AxisRF, ...]) -> tuple[AxisRF, ...]:
        return tuple(
            r if r.phases is not None else r._replace(size=expand(r.size + k * ds), centre2=expand(r.centre2 + k * dc))
            for r, (ds, dc) in zip(rf, steps, strict=True)
        )

    moved = any(known_sign(x) != 0 for step in steps for x in step)
    if moved:  # the fields each layer's last copy reads (explain works from them), then the layers' own
        reads = {m: nodes[m].get("rf_inputs") or [nodes[i]["rf"] for i in nodes[m]["inputs"]] for m in rep.members}  # type: ignore[attr-defined]
        for m in rep.members:
            nodes[m]["rf_inputs"] = [last(r) for r in reads[m]]  # type: ignore[attr-defined]
            nodes[m]["rf"] = last(nodes[m]["rf"])  # type: ignore[arg-type]
            grids[m] = tuple((last(f), n) for f, n in grids[m])
    for m in rep.members:
        node = nodes[m]
        if not exact and node["rf_note"] is None:
            why = "reads layers outside the block" if rep.reads_outside else "changes the grid (stride or upsampling)"
            node["rf_note"] = f"receptive field of {rep.call}'s last copy approximate: the block {why}; give {rep.times} a number for the exact field"
            node["rf_bound"] = node["rf_bound"] or rep.call


def _regular_steps(windows: list[Window] | None) -> list[tuple[Dim, Dim, Dim]] | None:
    """Per axis (extent - 1, stride, extent - 1 - 2 pad): what a regular window adds to a regular
    field (see AxisRF.through_noted), or None if some window upsamples."""
    if windows is None or not all(type(w.upsample) is int and w.upsample == 1 and w.adaptive is None for w in windows):
        return None
    return [(w.extent - 1, w.stride, w.extent - 1 - 2 * w.pad_before) for w in windows]


def _broadcast(shape: tuple[Dim, ...], out: tuple[Dim, ...], axis: int) -> bool:
    """True if ``shape`` is broadcast along spatial ``axis``: size 1 there, the output's larger."""
    if len(shape) != len(out) or axis + 1 >= len(out):
        return False
    return as_int(shape[axis + 1]) == 1 and as_int(out[axis + 1]) != 1


def _union(a: AxisRF, b: AxisRF) -> AxisRF | None:
    """Exact union of two RFs on the same average grid, one of them irregular; None if not possible."""
    pa, pb = a._periodic(), b._periodic()
    if pa is None or pb is None:
        return None
    (ph_a, sh_a), (ph_b, sh_b) = pa, pb
    if sh_a * len(ph_b) != sh_b * len(ph_a):  # different average strides
        return None
    period = len(ph_a) * len(ph_b) // gcd(len(ph_a), len(ph_b))

    def at(ph: Phases, sh: int, o: int) -> tuple[int, int]:
        q, r = divmod(o, len(ph))
        return ph[r][0] + q * sh, ph[r][1] + q * sh

    phases = []
    for o in range(period):
        (la, ha), (lb, hb) = at(ph_a, sh_a, o), at(ph_b, sh_b, o)
        phases.append((min(la, lb), max(ha, hb)))
    return _from_phases(phases, sh_a * period // len(ph_a))[0]


def _average_grid(r: AxisRF) -> tuple[Fraction, Fraction] | None:
    """(average stride, twice the centre of output 0 on the straight line through all centres)."""
    from fractions import Fraction

    periodic = r._periodic()
    if periodic is None:
        return None
    phases, shift = periodic
    n = len(phases)
    jump = Fraction(shift, n)
    return jump, sum((Fraction(lo + hi) - 2 * i * jump for i, (lo, hi) in enumerate(phases)), start=Fraction(0)) / n


def _merge(
    srcs: list[tuple[AxisRF, ...]], ins: list[tuple[Dim, ...]], out: tuple[Dim, ...], names: list[str]
) -> tuple[tuple[AxisRF, ...], str | None, bool]:
    """Where paths meet: the larger RF per axis, a note if the paths' grids differ, and whether it is exact."""
    if all(s == out for s in ins):
        fast = _merge_regular_ints(srcs, names)
        if fast is not None:
            return fast
    note, exact = None, True
    rf = list(srcs[0])
    bcast = [_broadcast(ins[0], out, axis) for axis in range(len(rf))]
    for k in range(1, len(srcs)):
        for axis, (a, b) in enumerate(zip(rf, srcs[k], strict=True)):
            if a.whole or b.whole:  # a field of the whole input contains every other field of it
                rf[axis] = a if a.whole and (not b.whole or known_sign(a.size - b.size) != -1) else b
                continue
            sign = known_sign(a.size - b.size)
            size = a.size if sign in (0, 1) else b.size if sign == -1 else dmax(a.size, b.size)
            b_bcast = _broadcast(ins[k], out, axis)
            if bcast[axis] != b_bcast:  # one side is a single value seen by every output: the grid is the other's
                grid = b if bcast[axis] else a
                rf[axis] = AxisRF(size, grid.jump, grid.centre2)
                bcast[axis] = False
                if grid.phases is not None:
                    exact = False
                    note = note or f"axis {axis}: a broadcast input meets an upsampled path: the larger receptive field is kept, as on a regular grid"
                continue
            if a.phases is None and b.phases is None:
                misaligned = _differ(a.jump, b.jump) or _differ(a.centre2, b.centre2)
            else:  # an upsampled path: compare the grids its outputs sit on on average
                misaligned = _average_grid(a) != _average_grid(b)
            ints = all(type(v) is int for v in (a.size, a.jump, a.centre2, b.size, b.jump, b.centre2))
            offset = a.phases is None and b.phases is None and ints and a.jump == b.jump and a.centre2 != b.centre2
            if offset:
                rf[axis] = _offset_union(a, b)
                note = note or _misaligned(axis, names[0], a, names[k], b, rf[axis])
                continue
            merged = _union(a, b) if (a.phases is not None or b.phases is not None) else None
            if note is None and misaligned and merged is None:  # (an exact union needs no warning: each output sees both)
                note = _misaligned(axis, names[0], a, names[k], b, None)
            rf[axis] = merged if merged is not None else a if sign in (0, 1) else b if sign == -1 else AxisRF(size, a.jump, a.centre2)
    return tuple(rf), note, exact


def _merge_regular_ints(srcs: list[tuple[AxisRF, ...]], names: list[str]) -> tuple[tuple[AxisRF, ...], str | None, bool] | None:
    """:func:`_merge` where every input has the output's shape and a regular, numeric field (a
    residual add): the same result by plain integer comparisons; None when that does not apply."""
    for src in srcs:
        for r in src:
            if r.whole or r.phases is not None or type(r.size) is not int or type(r.jump) is not int or type(r.centre2) is not int:
                return None
    note = None
    rf = list(srcs[0])
    for k in range(1, len(srcs)):
        for axis, b in enumerate(srcs[k]):
            a = rf[axis]
            if a.jump == b.jump and a.centre2 != b.centre2:
                rf[axis] = _offset_union(a, b)
                note = note or _misaligned(axis, names[0], a, names[k], b, rf[axis])
                continue
            if note is None and a.jump != b.jump:
                note = _misaligned(axis, names[0], a, names[k], b, None)
            if b.size > a.size:
                rf[axis] = b
    return tuple(rf), note, True


def _offset_union(a: AxisRF, b: AxisRF) -> AxisRF:
    """Two regular fields with the same stride, centred apart: every output sees both, the same
    offset apart at every output, so its field is exactly their union."""
    (lo_a, hi_a), (lo_b, hi_b) = a.span(), b.span()
    lo, hi = min(lo_a, lo_b), max(hi_a, hi_b)
    return AxisRF(hi - lo + 1, a.jump, lo + hi)


def _misaligned(axis: int, name_a: str, a: AxisRF, name_b: str, b: AxisRF, union: AxisRF | None) -> str:
    where = f"misaligned paths on axis {axis}: {name_a} has stride {a.jump}, centre {a.centre2}/2; {name_b} has stride {b.jump}, centre {b.centre2}/2"
    if union is not None:
        return f"{where}: each output sees both fields, {union.size} pixels in all (their union)"
    return f"{where}: the fields drift apart from output to output; the larger one is shown"


Tangle = tuple[frozenset[int], ...]  # per tensor axis, the spatial axes merged into it with other axes (its layout entry is None)
NO_TANGLE: frozenset[int] = frozenset()


def _same_size(a: Dim, b: Dim) -> bool:
    return a == b or known_sign(a - b) == 0


def _relayout(layout: Layout, tangle: Tangle, ins: tuple[Dim, ...], out: tuple[Dim, ...]) -> tuple[Layout, Tangle] | None:
    """Where the spatial axes sit after a layer that changes the shape without a window over it (a
    reshape, flatten, squeeze; a select or mean that drops axes): axes kept whole keep their place;
    a spatial axis merged with others into one axis is recorded as merged there (``tangle``: a layer
    that reads all of that axis reads every position along it); None where the pass cannot tell (a
    merged axis split again, sizes that match in more than one way): the layout is lost."""
    if known_sign(prod(ins) - prod(out)) == 0:  # the same elements, regrouped
        big_in = [i for i, n in enumerate(ins) if not _same_size(n, 1)]
        big_out = [o for o, n in enumerate(out) if not _same_size(n, 1)]
        new: list[int | None] = [None] * len(out)
        tan: list[frozenset[int]] = [NO_TANGLE] * len(out)
        i = o = 0
        while i < len(big_in) or o < len(big_out):
            if i >= len(big_in) or o >= len(big_out):
                return None
            gi, go = [big_in[i]], [big_out[o]]
            pi, po = ins[big_in[i]], out[big_out[o]]
            i, o = i + 1, o + 1
            while not _same_size(pi, po):
                sign = known_sign(pi - po)
                if sign == -1 and i < len(big_in):
                    pi, i = pi * ins[big_in[i]], i + 1
                    gi.append(big_in[i - 1])
                elif sign == 1 and o < len(big_out):
                    po, o = po * out[big_out[o]], o + 1
                    go.append(big_out[o - 1])
                else:
                    return None
            spatial = {m for k in gi for m in (*((layout[k],) if layout[k] is not None else ()), *tangle[k])}
            if len(go) == 1:  # (a merge, or one axis kept)
                if len(gi) == 1:
                    new[go[0]], tan[go[0]] = layout[gi[0]], tangle[gi[0]]
                elif spatial:
                    tan[go[0]] = frozenset(spatial)
            elif spatial:  # an axis holding a spatial one, split: where its positions went is not followed
                return None
        return tuple(new), tuple(tan)
    if len(out) < len(ins):  # axes dropped (select, mean): the ones left, if their sizes place them in one way only
        fits: list[tuple[int, ...]] = []

        def place(k: int, start: int, got: tuple[int, ...]) -> None:
            if len(fits) > 1:
                return
            if k == len(out):
                fits.append(got)
                return
            for j in range(start, len(ins) - (len(out) - k) + 1):
                if _same_size(ins[j], out[k]):
                    place(k + 1, j + 1, (*got, j))

        place(0, 0, ())
        if len(fits) != 1:
            return None
        kept = fits[0]
        dropped = set(range(len(ins))) - set(kept)
        if any(tangle[k] for k in dropped):  # (a merged axis dropped: its positions, partly read, are not followed)
            return None
        return tuple(layout[k] for k in kept), tuple(tangle[k] for k in kept)
    return None


def _next_layout(layout: Layout | None, tangle: Tangle | None, ins: tuple[Dim, ...], out: tuple[Dim, ...]) -> tuple[Layout | None, Tangle | None]:
    """The layout (and merged axes) after a one-input layer that is no permutation: unchanged where
    the shape is, or where the rank is and the elements are not (a linear, a channel split: a layer
    that keeps the rank keeps the axes), else regrouped (:func:`_relayout`)."""
    if layout is None or tangle is None or len(layout) != len(ins) or len(tangle) != len(ins):
        return None, None
    if ins == out:
        return layout, tangle
    if len(ins) == len(out) and known_sign(prod(ins) - prod(out)) != 0:
        return layout, tangle
    moved = _relayout(layout, tangle, ins, out)
    return moved if moved is not None else (None, None)


def _moves(windows: list[Window]) -> bool:
    """Whether some window reads more than its own position, or strides (a slice of features is neither)."""
    return any(known_sign(w.extent - 1) != 0 or known_sign(w.stride - 1) != 0 or known_sign(w.upsample - 1) != 0 for w in windows)


def _existing(rf: tuple[AxisRF, ...], positions: tuple[Dim, ...]) -> tuple[AxisRF, ...]:
    """On an uneven grid, the field shown is the widest of the outputs the map holds: a period of
    the pattern may be longer than the map (adaptive pooling of 7 to 3 repeats after 3 outputs, but
    the conv after it has one), and its fields past the map are no output's."""
    return tuple(
        r._replace(size=max(hi - lo + 1 for lo, hi in r.phases[:m])) if r.phases is not None and type(m) is int and 0 < m < len(r.phases) else r
        for r, m in zip(rf, positions, strict=True)
    )


def _monotone(phases: Phases, shift: int) -> bool:
    """Whether the fields of neighbouring units never step back (lo and hi non-decreasing, across
    the period's end too): a run of units then sees from its first unit's lo to its last one's hi."""
    return all(phases[i][0] <= phases[i + 1][0] and phases[i][1] <= phases[i + 1][1] for i in range(len(phases) - 1)) and (
        phases[-1][0] <= phases[0][0] + shift and phases[-1][1] <= phases[0][1] + shift
    )


def _causal_taken(
    named: dict[int, Window | Partition | None] | None, t: int, ins: tuple[Dim, ...], out: tuple[Dim, ...]
) -> tuple[bool, bool, Dim, bool] | None:
    """For a layer after causal attention that takes positions along tensor axis ``t`` (a select, a
    slice): (its first output reads the last position, its last output does, the last position
    any output reads, whether that rests on the layer's own bounds); None where it takes none along it.

    With symbols (review s10 #0: a slice 0:3 of ``s`` tokens), positions are compared by their sign
    where it is known (token s-2 is short of the last, s-1); where it is not (2 against s-1), the
    layer's positions are taken to lie within the axis, as its shape takes them (a slice 0:3 of s
    tokens has 3: ``Slice``'s shape): its last output then reads position 2, short of the last
    unless s = 3, where the field, 3 = s, is the same number."""
    op = named.get(t) if named is not None else None
    if not isinstance(op, Window) or op.adaptive is not None or known_sign(op.dilation - 1) != 0 or known_sign(op.upsample - 1) != 0:
        return None
    n = ins[t]
    m = out[t] if len(out) == len(ins) else 1
    first, last = op.extent - 1 - op.pad_before, (m - 1) * op.stride - op.pad_before + op.extent - 1
    first_sign, last_sign = known_sign(first - (n - 1)), known_sign(last - (n - 1))
    if last_sign is not None and last_sign >= 0:
        last = n - 1
    return first_sign is not None and first_sign >= 0, last_sign is not None and last_sign >= 0, last, last_sign is None


def _identity(op: Window | Partition | None, ins: tuple[Dim, ...], out: tuple[Dim, ...], t: int) -> bool:
    """Whether ``op`` along tensor axis ``t`` maps position j to position j (or there is none)."""
    if op is None:
        return len(ins) == len(out) and known_sign(ins[t] - out[t]) == 0
    if not isinstance(op, Window) or op.adaptive is not None:
        return False
    return (
        all(known_sign(v) == 0 for v in (op.extent - 1, op.stride - 1, op.pad_before, op.upsample - 1))
        and len(ins) == len(out)
        and known_sign(ins[t] - out[t]) == 0
    )


def _token_wise(t: int, n: Dim, named: dict[int, Window | Partition | None] | None, windows: list[Window] | None) -> bool:
    """Whether a layer (mixing no axis) maps position j along tensor axis ``t`` (``n`` positions) to position j."""
    if named is not None:
        return t not in named
    return windows is None or (t > 0 and t - 1 < len(windows) and _identity(windows[t - 1], (n,), (n,), 0))


def _causal_last(
    status: list[bool],
    ins: list[tuple[Dim, ...]] | tuple[tuple[Dim, ...], ...],
    out: tuple[Dim, ...],
    named: dict[int, Window | Partition | None] | None,
    windows: list[Window] | None,
) -> bool | None:
    """After causal attention, where the prefix each position sees is no longer followed (a reshape
    regrouped the tokens with the features, a window slid over them): whether the layer's last
    element (the last index along every axis) is known to see the whole input (True: it holds the
    last token, as after the attention, a reshape, a permute, a linear, an add, a conv whose last
    window reads the last position), some output sees it but which is not followed (False: after a
    concatenation), or a layer taking positions may have dropped the last token (None: the field
    shown, the whole input, is an upper bound).  ``status``: per input seeing the causal whole, its
    own answer (True for one whose prefix is followed: its last token sits last)."""
    ops: dict[int, Window | Partition | None] = {}
    if named is not None:
        ops = dict(named)
    elif windows is not None:
        if len(ins) != 1 or len(ins[0]) != len(out) or len(windows) != len(out) - 1:
            return None
        ops = {k + 1: w for k, w in enumerate(windows)}
    if len(ins) > 1:
        if ops and not all(_identity(op, ins[0], out, t) for t, op in ops.items()):
            return None
        # an element-wise layer (add, mul, with broadcasting) or a matmul of like shapes: its last element reads theirs
        alike = all(
            len(s) <= len(out) and all(_same_size(a, b) or _same_size(a, 1) for a, b in zip(reversed(s), reversed(out), strict=False)) for s in ins
        )
        return alike and any(status)
    last = bool(status) and status[0]
    for t, op in ops.items():
        n, m = ins[0][t], out[t] if len(out) == len(ins[0]) else 1
        if not (_reads_last(op, n, m) if last else _identity(op, ins[0], out, t)):
            return None
    return last


def _reads_last(op: Window | Partition | None, n: Dim, m: Dim) -> bool:
    """Whether the last of ``m`` outputs of ``op`` along an axis of ``n`` positions reads the last position."""
    if isinstance(op, Partition):
        return True  # (as many outputs as positions: the last one's block holds the last position)
    if op is None:
        return False  # (a cyclic roll: its last output holds another position)
    if op.adaptive is not None:
        return True  # (its last window ends at the last position)
    window, n_i, m_i = _int_window(op), as_int(n), as_int(m)
    if window is not None and n_i is not None and m_i is not None:
        k, s, p, d, u = window
        gap = (n_i - 1) * u - ((m_i - 1) * s - p)  # from the last output's first fine position to the last position's
        return gap >= 0 and gap % d == 0 and gap // d < k
    if known_sign(op.dilation - 1) != 0 or known_sign(op.upsample - 1) != 0:
        return False
    lo = (m - 1) * op.stride - op.pad_before
    return known_sign(n - 1 - lo) in (0, 1) and known_sign(lo + op.extent - n) in (0, 1)


def _carried_prefix(
    sources: list[tuple[str, tuple[Dim, ...], dict[str, Any]]],
    shape: tuple[Dim, ...],
    layout_in: Layout | None,
    layout_out: Layout | None,
    named: dict[int, Window | Partition | None] | None,
    windows: list[Window] | None,
    mixed: tuple[int, ...],
    prefix: dict[str, tuple[tuple[tuple[AxisRF, ...], tuple[Dim, ...]], ...]],
    grids: dict[str, tuple[tuple[tuple[AxisRF, ...], tuple[Dim, ...]], ...]],
) -> tuple[tuple[tuple[AxisRF, ...], tuple[Dim, ...]], ...] | None:
    """After causal attention, the fields a layer's output position j sees through positions 0..j
    of the attention's inputs (see ``prefix``), where the layer maps position j of each input to
    position j along the tokens (a permute, a reshape that keeps the tokens' axis, a linear over the
    features, a residual add); None where it does not (a window or a mix along the tokens, a
    broadcast, a layout lost): the caller keeps its upper bound, the whole input."""
    if layout_in is None or layout_out is None or 0 not in layout_in or 0 not in layout_out or not sources:
        return None
    t = layout_in.index(0)
    n = shape[layout_out.index(0)]
    if t in mixed or not _token_wise(t, n, named, windows):
        return None
    grid: list[tuple[tuple[AxisRF, ...], tuple[Dim, ...]]] = []
    for i, s, node in sources:
        if node["rf_layout"] != layout_in or len(s) != len(layout_in) or known_sign(s[t] - n) != 0:
            return None  # (broadcast along the tokens, or regrouped: not followed)
        if i in prefix:
            grid += prefix[i]
        elif node.get("rf_whole") or any(len(sizes) != 1 or known_sign(sizes[0] - n) != 0 for _, sizes in grids[i]):
            return None  # (an input that sees every position, or whose positions are not these tokens)
        else:  # its position j sees its own field: among positions 0..j's
            grid += grids[i]
    return tuple({id(g): g for g in grid}.values())


def _score_fields(
    inputs: list[str],
    ins: list[tuple[Dim, ...]] | tuple[tuple[Dim, ...], ...],
    nodes: dict[str, dict[str, Any]],
    prefix: dict[str, tuple[tuple[tuple[AxisRF, ...], tuple[Dim, ...]], ...]],
    grids: dict[str, tuple[tuple[tuple[AxisRF, ...], tuple[Dim, ...]], ...]],
) -> tuple[tuple[tuple[AxisRF, ...], tuple[Dim, ...]], ...] | None:
    """Attention's scores written out (``q @ k^T``): the fields of the positions entry (i, j) reads, query
    i's and key j's (each input's prefix where it came after causal attention, else its own fields), where
    the queries run along the first input's second-to-last axis and the keys along the second's last;
    None where they do not (a layout lost, other axes): the weights' prefix is then not followed."""
    grid: list[tuple[tuple[AxisRF, ...], tuple[Dim, ...]]] = []
    for i, s, at in zip(inputs, ins, (2, 1), strict=True):
        node = nodes[i]
        if not node["rf"]:
            continue  # (learned keys: no input pixel)
        lay = node["rf_layout"]
        if lay is None or len(lay) != len(s) or 0 not in lay or lay.index(0) != len(s) - at:
            return None
        grid += prefix[i] if i in prefix else grids[i]
    return tuple({id(g): g for g in grid}.values()) if grid else None


def _weights_rows(
    name: str, nodes: dict[str, dict[str, Any]], pairs: dict[str, tuple[tuple[tuple[AxisRF, ...], tuple[Dim, ...]], ...]]
) -> tuple[tuple[tuple[AxisRF, ...], tuple[Dim, ...]], ...] | None:
    """Attention written out: where ``name`` holds the masked weights of the scores ``q @ k^T`` (a node of
    ``pairs``), so that its row i reads query i and keys 0..i, the fields of those positions; else None.
    Followed back from the weights to the scores through layers that keep entry (i, j) where it is (an
    element-wise layer: a scale, a learned bias, a dropout), a ``causal_mask``, and after the mask (not
    before: row i would read every key) a layer with no weights mixing a row's keys (the softmax)."""
    masked = False
    while name not in pairs:
        node = nodes[name]
        layer, ins, out = node["layer"], node["in_shapes"], node["shape"]
        seeing = [i for i in node["inputs"] if nodes[i]["rf"]]
        if len(seeing) != 1 or any(s != out for i, s in zip(node["inputs"], ins, strict=True) if i == seeing[0]):
            return None
        hooks = traits(type(layer))
        if layer.windows(ins) is not None or (hooks.axis_windows and layer.axis_windows(ins) is not None):
            return None
        if (hooks.permutation and layer.permutation(ins) is not None) or (hooks.mixes_positions and layer.mixes_positions(ins)):
            return None
        mixed = layer.mixed_axes(ins) if hooks.mixed_axes else ()
        if mixed and (masked or layer.weights(ins) or set(mixed) != {len(out) - 1}):
            return None  # (a softmax before the mask reads every key of the row; a linear over them moves weight onto later ones)
        masked = masked or layer.type == "causal_mask"
        name = seeing[0]
    return pairs[name] if masked else None


def _reads_only_padding(
    named: dict[int, Window | Partition | None] | None,
    windows: list[Window] | None,
    layout: Layout | None,
    ins: tuple[Dim, ...],
    out: tuple[Dim, ...],
    n_axes: int,
) -> int | None:
    """The first spatial axis along which some output of the layer's window reads no input position
    (only padding, or the zeros a transposed convolution inserts), or None (decided on numbers,
    up to about a million reads; None where undecided)."""
    if layout is None or len(layout) != len(ins):
        return None
    for m in range(n_axes):
        if m not in layout:
            continue
        t = layout.index(m)
        op = named.get(t) if named is not None else windows[t - 1] if windows is not None and 0 < t <= len(windows) else None
        window = _int_window(op) if isinstance(op, Window) and op.adaptive is None else None
        n, m_out = as_int(ins[t]), as_int(out[t]) if len(out) == len(ins) else 1
        if window is None or n is None or m_out is None or m_out * window[0] > 1 << 20:
            continue
        k, s, p, d, u = window
        for o in range(m_out):
            if not any((q := o * s - p + j * d) % u == 0 and 0 <= q // u < n for j in range(k)):
                return m
    return None
