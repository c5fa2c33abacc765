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


def brute_adaptive_windows(n: int, o: int) -> list[int]:
    """torch's adaptive pooling (aten/src/ATen/native/AdaptiveAveragePooling.cpp): output i reads
    [floor(i*n/o), ceil((i+1)*n/o))."""
    return [-((-(i + 1) * n) // o) - (i * n) // o for i in range(o)]


@settings(deadline=None, max_examples=80)
@given(n=st.integers(1, 200), o=st.integers(1, 200))
def test_adaptive_pool_window_closed_forms(n: int, o: int) -> None:
    from archcalc.layers.pool import adaptive_max_window, adaptive_window_sum

    windows = brute_adaptive_windows(n, o)
    row = net([{"name": "p", "type": "adaptiveavgpool1d", "output_size": o}], (2, n)).row("p")
    assert row.receptive_field == (max(windows),)
    assert adaptive_window_sum(n, o, None) == sum(windows)  # type: ignore[arg-type]
    # the same closed forms on a symbol, then the symbol given n: the same numbers
    H = sympy.Symbol("H", integer=True, positive=True)
    assert adaptive_window_sum(H, o, None).subs(H, n) == sum(windows)  # type: ignore[arg-type, union-attr]
    assert adaptive_max_window(H, o, None).subs(H, n) == max(windows)  # type: ignore[arg-type, union-attr]


def test_adaptive_pool_of_a_billion_outputs_is_closed_form() -> None:
    # one window per output position was a loop of 10^9 steps (a hang); n = 10^9 + 7 over o = 10^9:
    # q = 1, r = 7, and 7 does not divide 10^9: the longest window is q + 2 = 3 pixels
    n, o = 10**9 + 7, 10**9
    row = net([{"name": "p", "type": "adaptiveavgpool2d", "output_size": [o, 1]}], (3, n, 8)).row("p")
    assert row.output_shape == (3, o, 1)
    assert row.receptive_field == (1 + 2, 8)
    assert row.macs == 3 * (n + o - 1) * 8  # window sum n + o - gcd(n, o), gcd = 1; times 8 on the other axis


def test_adaptive_pool_on_a_symbolic_input_stays_small() -> None:
    # the receptive field doubled per output position (output_size 14: 10 s; 20: over a minute)
    rep = net([{"name": "p", "type": "adaptiveavgpool2d", "output_size": 20}], (3, "H", "W"))
    rf = rep.row("p").receptive_field[0]
    assert not rf.has(sympy.Max) and sympy.count_ops(rf) < 200
    H = sympy.Symbol("H", integer=True, positive=True)
    for n in (20, 21, 24, 30, 39, 40, 41, 227):
        assert rf.subs(H, n) == max(brute_adaptive_windows(n, 20))
