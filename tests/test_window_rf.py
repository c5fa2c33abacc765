"""Receptive fields on channels-last maps and inside windows (Swin, Liu et al. 2021, Sec. 3.2).

Swin works on (H, W, C) maps: the receptive-field pass follows the spatial axes through permutes
(``rf_layout``), reads a strided slice as a window of 1 at that stride, and maps each input
position's field through window attention exactly (a ``Partition`` of each axis into windows; the
shifted block's windows start ``shift`` positions in).  Where it cannot follow (a cyclic roll, a
reshape that loses the spatial axes, attention over hand-cut windows) the field is marked
approximate: a note on the row and ``receptive_field_approximate`` in the JSON.  The exact figures
are checked against torch's own gradients: an input pixel is in an output's field iff the output's
gradient there is not zero.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import SPECS, net

from archcalc import analyze, parse_spec

STEM = [
    {"name": "patch", "type": "conv2d", "out_channels": 8, "kernel_size": 4, "stride": 4},
    {"name": "last", "type": "permute", "dims": [0, 2, 3, 1]},
]
SWIN_PAIR = [
    *STEM,
    {"name": "wmsa", "type": "shiftedwindowattention", "num_heads": 2, "window_size": 7},
    {"name": "swmsa", "type": "shiftedwindowattention", "num_heads": 2, "window_size": 7, "shift_size": 3},
]


def test_window_attention_sees_its_window() -> None:
    # 4x4 patches (field 4, stride 4); a window of 7 patches: 4 + (7 - 1)*4 = 28 pixels
    rep = net(SWIN_PAIR, (3, 56, 56))
    assert rep.row("last").receptive_field == (4, 4)
    assert rep.row("wmsa").receptive_field == (28, 28)
    assert rep.row("wmsa").effective_stride == (4, 4)
    # the shifted windows start 3 patches in: patch 3's window holds patches 3..9, which saw the
    # unshifted windows 0..6 and 7..13: 14 patches, 14*4 = 56 pixels (the cross-window connection)
    assert rep.row("swmsa").receptive_field == (56, 56)
    assert not any(r.rf_approximate for r in rep.rows)


def test_a_window_covering_the_map_sees_all_of_it_and_is_not_shifted() -> None:
    # 28/4 = 7 patches a side: one window of 7 covers the map; torchvision drops the shift there
    rep = net(SWIN_PAIR, (3, 28, 28))
    assert rep.row("wmsa").receptive_field == (28, 28)
    assert rep.row("swmsa").receptive_field == (28, 28)


def test_a_strided_slice_doubles_the_stride_channels_first_or_last() -> None:
    # x[:, :, 1::2] after a 3x3 conv: each output reads one position, every other one (stride 2)
    first = net([{"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 3},
                 {"name": "s", "type": "slice", "dim": 2, "start": 1, "step": 2}], (3, 16, 16))
    assert first.row("s").receptive_field == (3, 3)
    assert first.row("s").effective_stride == (2, 1)
    # Swin's patch merging on (H, W, C): rows 0::2 and 1::2, then a 3x3-conv-like union of both
    last = net([*STEM, {"name": "x0", "type": "slice", "dim": 1, "step": 2},
                {"name": "x1", "type": "slice", "dim": 1, "start": 1, "step": 2, "inputs": ["last"]},
                {"name": "cat", "type": "concat", "inputs": ["x0", "x1"], "dim": -1}], (3, 32, 32))
    assert last.row("x0").effective_stride == (8, 4)
    assert last.row("cat").receptive_field == (8, 4)  # patches 2i and 2i + 1: 4 + 4 pixels of rows
    assert last.row("cat").effective_stride == (8, 4)


def test_a_window_on_a_permuted_layout_follows_the_axes() -> None:
    # a 5x1 conv after swapping H and W slides along the input's W: field (1, 5)
    rep = net([{"name": "t", "type": "transpose", "dim0": 2, "dim1": 3},
               {"name": "c", "type": "conv2d", "out_channels": 2, "kernel_size": [5, 1]}], (3, 16, 16))
    assert rep.row("c").receptive_field == (1, 5)
    assert not rep.row("c").rf_approximate


def test_what_cannot_be_followed_is_marked_approximate(tmp_path: Any) -> None:
    # a roll wraps positions around; a reshape loses which axis is spatial; attention over hand-cut
    # windows of 16 positions reads 16 of the 64 the 8x8 map holds: "the whole input" overstates it
    rolled = net([*STEM, {"name": "roll", "type": "roll", "shifts": 3, "dims": 1},
                  {"name": "w", "type": "shiftedwindowattention", "num_heads": 2, "window_size": 4}], (3, 32, 32))
    assert rolled.row("last").rf_approximate is False
    assert rolled.row("roll").rf_approximate and rolled.row("w").rf_approximate
    assert "cyclic roll" in (rolled.row("roll").note or "")
    windows = [  # (8, 8, 8) cut into 4 windows of 4x4: (2, 4, 2, 4, 8) -> (2, 2, 4, 4, 8) -> (4, 16, 8)
        *STEM,
        {"name": "split", "type": "reshape", "shape": [2, 4, 2, 4, 8]},
        {"name": "order", "type": "permute", "dims": [0, 1, 3, 2, 4, 5]},
        {"name": "win", "type": "reshape", "shape": [4, 16, 8]},
        {"name": "attn", "type": "scaled_dot_product_attention", "inputs": ["win", "win", "win"]},
        {"name": "back", "type": "reshape", "shape": [8, 8, 8]},
        {"name": "first", "type": "permute", "dims": [0, 3, 1, 2]},
        {"name": "conv", "type": "conv2d", "out_channels": 8, "kernel_size": 3},
    ]
    rep = net(windows, (3, 32, 32))
    assert rep.row("attn").rf_approximate
    assert "16 of the 64 positions" in (rep.row("attn").note or "")
    assert rep.row("conv").rf_approximate  # and every row after it
    data = rep.to_json()
    flags = {r["name"]: r.get("receptive_field_approximate", False) for r in data["layers"]}
    assert flags["win"] is False and flags["attn"] is True and flags["conv"] is True
    # ViT's attention reads every token (197 >= the 196 patches): exact, not flagged
    vit = analyze(SPECS / "vit_b_16.json")
    assert not any(r.rf_approximate for r in vit.rows)


def test_swin_t_fields_are_exact_and_flag_nothing() -> None:
    rep = analyze(SPECS / "swin_t.json")
    assert not any(r.rf_approximate for r in rep.rows)
    # stage 1: the first block's windows of 7 patches of 4 pixels, then the shifted block's 56
    assert rep.row("features.1.0.attn").receptive_field == (28, 28)
    assert rep.row("features.1.1.attn").receptive_field == (56, 56)
    # patch merging reads 2x2 patches: stride 8
    assert rep.row("features.2.reduction").effective_stride == (8, 8)
    assert rep.row("head").effective_stride == (224, 224)


# ----- against torch's gradients --------------------------------------------------------------------
def _intervals(spec: dict[str, Any], layer: str, n: int) -> list[tuple[int, int]]:
    """[lo, hi] of input rows seen by output rows 0..n-1 of ``layer``, from the pass (unclipped)."""
    from archcalc.graph import compile_spec, node_table
    from archcalc.passes import receptive_field, shapes

    G = compile_spec(parse_spec(spec))
    shapes(G)
    receptive_field(G)
    r = node_table(G)[layer]["rf"][0]
    if r.phases is None:
        lo, hi = r.span()
        return [(lo + o * r.jump, hi + o * r.jump) for o in range(n)]
    return [(r.phases[o % len(r.phases)][0] + o // len(r.phases) * r.shift, r.phases[o % len(r.phases)][1] + o // len(r.phases) * r.shift)
            for o in range(n)]


@pytest.mark.parametrize("shift", [0, 3])
def test_window_fields_match_torch_gradients(shift: int) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    from archcalc.graph import compile_spec
    from archcalc.torch.build import build_module

    size = 88  # 22 patches a side: windows of 7 pad the map to 28 (the last window cut short)
    spec = {"name": "swin_rf", "input": [3, size, size], "layers": [
        *SWIN_PAIR[:3],
        {"name": "mlp", "type": "linear", "out_features": 8},
        {"name": "merge0", "type": "slice", "dim": 1, "step": 2},
        {"name": "merge1", "type": "slice", "dim": 1, "start": 1, "step": 2, "inputs": ["mlp"]},
        {"name": "cat", "type": "concat", "inputs": ["merge0", "merge1"], "dim": -1},
        {"name": "swmsa", "type": "shiftedwindowattention", "num_heads": 2, "window_size": 7, "shift_size": shift},
    ]}
    torch.manual_seed(0)
    model = build_module(compile_spec(parse_spec(spec)), device="cpu", dtype=torch.float64).eval()
    x = torch.randn(1, 3, size, size, dtype=torch.float64, requires_grad=True)
    y = model(x)  # (1, 11, 22, 16)
    rows = y.shape[1]
    want = _intervals(spec, "swmsa", rows)
    for o in range(rows):
        (g,) = torch.autograd.grad(y[0, o, 10].sum(), x, retain_graph=True)
        seen = g.abs().sum(dim=(0, 1, 3))
        # the shifted windows' masked scores weigh exp(-100) of the others: not seen
        rows_seen = torch.nonzero(seen > 1e-20 * seen.max()).flatten().tolist()
        lo, hi = want[o]
        assert (rows_seen[0], rows_seen[-1]) == (max(lo, 0), min(hi, size - 1)), o
        assert len(rows_seen) == rows_seen[-1] - rows_seen[0] + 1  # one interval


def test_a_concat_along_a_spatial_axis_is_marked_approximate() -> None:
    # review s6, finding 6: a = 3x3 conv (padding 1) of the 8x8 input, u = x2 upsampling of a 2x2
    # average pool of it (the review's max pool routes a gradient to one pixel of its window);
    # cat along H gives 16 rows (a's 8, then u's 8), then a 3x3 conv (padding 1).
    # Output row 8 reads cat rows 7..9: a's row 7 (input rows 6..8, 8 being padding) and u's rows
    # 0..1 (input rows 0..1): input rows 0..7, 8 rows, where the one-grid rules would say 3 + 2 = 5.
    torch = pytest.importorskip("torch")
    from archcalc.graph import compile_spec
    from archcalc.torch.build import build_module

    spec = {"name": "cat2", "input": [1, 8, 8], "layers": [
        {"name": "a", "type": "conv2d", "out_channels": 1, "kernel_size": 3, "padding": 1, "inputs": ["input"]},
        {"name": "p", "type": "avgpool2d", "kernel_size": 2, "inputs": ["input"]},
        {"name": "u", "type": "upsample", "scale_factor": 2, "inputs": ["p"]},
        {"name": "c", "type": "concat", "inputs": ["a", "u"], "dim": 2},
        {"name": "d", "type": "conv2d", "out_channels": 1, "kernel_size": 3, "padding": 1}]}
    rep = analyze(parse_spec(spec))
    assert rep.row("c").rf_approximate and rep.row("d").rf_approximate
    assert "concatenation along a spatial axis" in (rep.row("c").note or "")
    assert not rep.row("a").rf_approximate and not rep.row("u").rf_approximate
    torch.manual_seed(0)
    model = build_module(compile_spec(parse_spec(spec)), device="cpu", dtype=torch.float64).eval()
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(model(x)[0, 0, 8, 4], x)
    rows = torch.nonzero(g.abs().sum(dim=(0, 1, 3))).flatten().tolist()
    assert (rows[0], rows[-1]) == (0, 7)  # 8 rows > the 5 a single grid would give
    # along channels (torch.cat's dim 1, Inception's and DenseNet's) the positions stay put: exact
    chan = net([{"name": "a", "type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1},
                {"name": "b", "type": "conv2d", "out_channels": 2, "kernel_size": 5, "padding": 2, "inputs": ["input"]},
                {"name": "c", "type": "concat", "inputs": ["a", "b"], "dim": 1}], (3, 8, 8))
    assert not chan.row("c").rf_approximate and chan.row("c").receptive_field == (5, 5)


def _partition_by_definition(phases: list[tuple[int, int]], shift: int, size: int, offset: int, period: int) -> list[tuple[int, int]]:
    """Partition's definition read literally: output o reads the positions of its window (first .. first + size - 1),
    position i's field is phase i mod P moved by (i div P) shifts; the union of theirs, output by output."""
    n, out = len(phases), []
    for o in range(period):
        first = size * ((o - offset) // size) + offset
        spans = [(phases[i % n][0] + i // n * shift, phases[i % n][1] + i // n * shift) for i in range(first, first + size)]
        out.append((min(lo for lo, _ in spans), max(hi for _, hi in spans)))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_window_attention_on_a_periodic_field_matches_its_definition(seed: int) -> None:
    # a field whose outputs sit on a pattern of P phases (after an upsampling): the pass computes one span per window
    import random
    from math import gcd

    from archcalc.layers.base import Partition
    from archcalc.passes.receptive import AxisRF, _from_phases, through_partition

    rnd = random.Random(seed)
    n, shift = rnd.randint(1, 4), rnd.randint(1, 6)
    phases = sorted((lo, lo + rnd.randint(0, 5)) for lo in rnd.sample(range(shift + 3), n))
    size, offset = rnd.randint(1, 9), rnd.randint(0, 8)
    r = _from_phases(phases, shift)[0]
    if r.phases is None:
        phases, shift = list(r._periodic()[0]), r._periodic()[1]
    got = through_partition(r, Partition(size, offset))
    period = len(phases) * size // gcd(len(phases), size)
    assert got == _from_phases(_partition_by_definition(list(phases), shift, size, offset % size, period), period // len(phases) * shift)
    assert isinstance(got[0], AxisRF) and got[2]


class _CountingPhases(list):  # type: ignore[type-arg]
    reads = 0

    def __getitem__(self, i: Any) -> Any:
        _CountingPhases.reads += 1
        return super().__getitem__(i)


def test_a_window_as_large_as_the_map_is_one_span_per_window_not_per_output() -> None:
    # review s8 (left): 3,000-wide windows took 6.6 s, 30,000 about 11 minutes (every output walked its window again);
    # the outputs of one window share their span: about 2 reads per position, whatever the window's size
    from archcalc.layers.base import Partition
    from archcalc.passes.receptive import AxisRF, through_partition

    phases = _CountingPhases([(0, 2), (1, 3)])  # two phases (an upsampled grid), 2 pixels a period
    r = AxisRF(3, 1, 2, phases=phases, shift=2)
    _CountingPhases.reads = 0
    field, why, exact = through_partition(r, Partition(3000, 0))
    assert exact and why is None
    assert _CountingPhases.reads <= 4 * 3000  # was 2 * 3000 * 3000
    # window 0 holds positions 0..2999: phases (0, 2) and (1, 3) moved by up to 1,499 periods of 2 pixels: pixels 0..3001
    assert field.size == 3002
    assert analyze(parse_spec({"name": "w", "input": [8, 30000, 30000], "layers": [
        {"name": "last", "type": "permute", "dims": [0, 2, 3, 1]},
        {"name": "w", "type": "shiftedwindowattention", "num_heads": 1, "window_size": 30000}]})).row("w").whole_input
