"""Property tests of the shape and receptive-field formulas against independent brute force."""

from __future__ import annotations

import sympy
from conftest import net
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from archcalc import SpecError

window = st.fixed_dictionaries({"k": st.integers(1, 7), "s": st.integers(1, 4), "p": st.integers(0, 3), "d": st.integers(1, 3)})


def brute_positions(size: int, k: int, s: int, p: int, d: int) -> int:
    """Count window starts x = 0, s, 2s, ... whose extent fits inside the padded input."""
    extent = d * (k - 1) + 1
    return sum(1 for x in range(0, size + 2 * p, s) if x + extent <= size + 2 * p)


@given(size=st.integers(1, 60), w=window)
def test_conv_output_counts_window_positions(size: int, w: dict) -> None:
    expected = brute_positions(size, w["k"], w["s"], w["p"], w["d"])
    layer = {"name": "c", "type": "conv2d", "out_channels": 2, "kernel_size": w["k"], "stride": w["s"], "padding": w["p"], "dilation": w["d"]}
    if expected == 0:
        try:
            net([layer], (1, size, size))
        except SpecError as e:
            assert e.field == "kernel_size"
            return
        raise AssertionError("a kernel larger than the padded input must be an error")
    row = net([layer], (1, size, size)).row("c")
    assert row.output_shape == (2, expected, expected)
    assert row.macs == 2 * expected * expected * w["k"] * w["k"]


def brute_ceil_pool(size: int, k: int, s: int, p: int) -> int:
    """torch docs: with ceil_mode, windows may go off-bounds if they start within the left padding
    or the input; windows that would start in the right padded region are ignored."""
    padded = size + 2 * p
    starts = [x for x in range(0, padded, s) if x + k <= padded]  # full windows
    uncovered = starts[-1] + k < padded  # elements left over after the last full window
    if uncovered and starts[-1] + s < size + p:  # one partial window, if it starts inside
        starts.append(starts[-1] + s)
    return len(starts)


@given(size=st.integers(1, 60), k=st.integers(1, 6), s=st.integers(1, 4), p=st.integers(0, 3))
def test_ceil_mode_pool_matches_brute_force(size: int, k: int, s: int, p: int) -> None:
    assume(2 * p <= k and size + 2 * p >= k)
    n = brute_ceil_pool(size, k, s, p)
    layer = {"name": "m", "type": "maxpool2d", "kernel_size": k, "stride": s, "padding": p, "ceil_mode": True}
    assert net([layer], (1, size, size)).row("m").output_shape == (1, n, n)


@settings(max_examples=200)
@given(st.lists(window, min_size=1, max_size=6))
def test_rf_equals_back_propagated_interval(ws: list[dict]) -> None:
    """The RF of output 0 is the span of input pixels it reads, traced back layer by layer."""
    layers = [
        {"name": f"c{i}", "type": "conv2d", "out_channels": 1, "kernel_size": w["k"], "stride": w["s"], "padding": w["p"], "dilation": w["d"]}
        for i, w in enumerate(ws)
    ]
    try:
        rep = net(layers, (1, 400, 400))
    except SpecError:
        assume(False)
        return
    lo, hi, jump = 0, 0, 1
    for w in reversed(ws):  # output index interval [lo, hi] -> input interval
        extent = w["d"] * (w["k"] - 1) + 1
        lo, hi = lo * w["s"] - w["p"], hi * w["s"] - w["p"] + extent - 1
    for w in ws:
        jump *= w["s"]
    assert rep.rows[-1].receptive_field == (hi - lo + 1, hi - lo + 1)
    assert rep.rows[-1].effective_stride == (jump, jump)


@settings(max_examples=60, deadline=None)
@given(st.lists(window, min_size=1, max_size=3), st.integers(20, 90))
def test_symbolic_shapes_agree_with_numbers(ws: list[dict], size: int) -> None:
    layers = [
        {"name": f"c{i}", "type": "conv2d", "out_channels": 2, "kernel_size": w["k"], "stride": w["s"], "padding": w["p"], "dilation": w["d"]}
        for i, w in enumerate(ws)
    ]
    try:
        num = net(layers, (2, size, size))
    except SpecError:
        assume(False)
        return
    sym = net(layers, (2, "H", "H"))
    H = sympy.Symbol("H", integer=True, positive=True)
    for a, b in zip(sym.rows, num.rows, strict=True):
        assert tuple(sympy.sympify(d).xreplace({H: size}) for d in a.output_shape) == b.output_shape
        assert sympy.sympify(a.macs).xreplace({H: size}) == b.macs
