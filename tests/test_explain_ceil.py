"""explain of a ceil-mode pool gives its general formula, with torch's last-window rule written out,
and says in words where that rule takes a window away (review s6, finding 17)."""

from __future__ import annotations

from conftest import cli


def test_a_ceil_mode_pool_shows_its_general_formula_and_the_dropped_window() -> None:
    # torch.nn.MaxPool2d docs (ceil_mode): out = ceil((in + 2p - k)/s) + 1, less 1 if the last window
    # would start in the right padding.  7x7, k 2, s 2, p 1: ceil((7 + 2 - 2)/2) + 1 = 4 + 1 = 5; window
    # 5 would start at (5 - 1)*2 = 8 >= 7 + 1, so torch drops it: 4
    out = cli("explain", "--stack", "3x7x7", "maxpool 2 s2 p1 ceil_mode=true").out
    lines = out.splitlines()
    h = next(i for i, line in enumerate(lines) if line.startswith("output H"))
    assert lines[h].split(None, 2)[2] == "ceiling((H_in + 2*P - K)/S) + 1 - (1 if ceiling((H_in + 2*P - K)/S)*S >= H_in + P else 0)"
    assert lines[h + 1].strip() == "= \u2308(7 + 2 \u2212 2) / 2\u2309 + 1 \u2212 1 = 4"
    assert "note: ceil_mode: torch drops a last window that would start in the right padding, the \u2212 1 of the output size" in out
    assert "H: the last window would start at (5 \u2212 1)\u00b72 = 8 \u2265 7 + 1" in out
    # the same pool on 8x8: ceil((8 + 2 - 2)/2) + 1 = 5, window 5 starts at 8 < 8 + 1: kept, no note
    out = cli("explain", "--stack", "3x8x8", "maxpool 2 s2 p1 ceil_mode=true").out
    assert "ceiling((H_in + 2*P - K)/S) + 1 - (1 if" in out and "= \u2308(8 + 2 \u2212 2) / 2\u2309 + 1 = 5" in out
    assert "ceil_mode: torch drops" not in out


def test_the_torch_module_agrees() -> None:
    import pytest

    torch = pytest.importorskip("torch")
    pool = torch.nn.MaxPool2d(2, 2, padding=1, ceil_mode=True)
    assert pool(torch.zeros(1, 3, 7, 7)).shape[-2:] == (4, 4) and pool(torch.zeros(1, 3, 8, 8)).shape[-2:] == (5, 5)
    r = cli("check", "--stack", "3x7x7", "maxpool 2 s2 p1 ceil_mode=true", "total.output=3x4x4")
    assert r.code == 0
