"""Human units for the text/markdown/LaTeX tables (JSON and CSV stay exact integers).

Formulas print as people write them, powers as ``^`` (``27*C^2``; JSON and CSV keep sympy's ``**``).

Every human figure keeps three significant digits, trailing zeros included (23.3K, 307K, 4.10M,
37.8M), rounded half up from the exact integer.  Counts use K/M/G/T (powers of 1000); bytes use the
binary units KiB/MiB/GiB/TiB (powers of 1024), labelled as such so that nobody reads 1000.
Arithmetic in integers only (no float: 10**30 channels keep every digit; no Fraction: a
100,000-row table formats in a fraction of the time).
"""

from __future__ import annotations

import functools
from typing import Any

from ..dims import human_text, is_symbolic, simplify

COUNT_STEPS = (("", 1), ("K", 10**3), ("M", 10**6), ("G", 10**9), ("T", 10**12))
SIZE_STEPS = ((" B", 1), (" KiB", 1024), (" MiB", 1024**2), (" GiB", 1024**3), (" TiB", 1024**4))


def three_digits(a: int, scale: int) -> tuple[str, bool]:
    """a/scale (a >= 0, a/scale > 0.1) to three significant digits, half up: (text, reached 1000).

    4,100,000/10**6 -> '4.10'; 999,960/1000 -> '1,000' (the caller then takes the next unit)."""
    whole = a // scale
    digits = 0 if whole >= 100 else 1 if whole >= 10 else 2 if whole >= 1 else 3
    q = (2 * a * 10**digits + scale) // (2 * scale)  # floor(a/scale * 10^digits + 1/2)
    if digits and q >= 1000:  # 9.996 rounds to 10.0, not 10.00
        digits -= 1
        q = (2 * a * 10**digits + scale) // (2 * scale)
    w, frac = divmod(q, 10**digits)
    return f"{w:,}" + (f".{frac:0{digits}d}" if digits else ""), w >= 1000


@functools.lru_cache(maxsize=1 << 14)
def _human(v: int, steps: tuple[tuple[str, int], ...]) -> str:
    """(cached: a table's rows repeat the same few values; 300,000 cells of a flat 100k-layer table)"""
    a = abs(v)
    sign = "-" if v < 0 else ""
    i = 0
    for k in range(len(steps) - 1, 0, -1):
        if a >= steps[k][1]:
            i = k
            break
    if i == 0 and a < 1000:
        return f"{sign}{a}{steps[0][0]}"
    text, big = three_digits(a, steps[i][1])
    if big and i + 1 < len(steps):  # 999.9K is 1.00M; 1,010 KiB is 0.986 MiB
        i += 1
        text, _ = three_digits(a, steps[i][1])
    return sign + text + steps[i][0]


@functools.lru_cache(maxsize=1 << 12)  # (a table repeats its values: a flat 100,000-layer table has a handful)
def count(value: Any) -> str:
    """Counts in K/M/G/T (powers of 1000), three significant digits: 23296 -> '23.3K', 4097000 -> '4.10M'."""
    if type(value) is not int:
        value = simplify(value)
        if is_symbolic(value):
            return human_text(value)
    return _human(int(value), COUNT_STEPS)


@functools.lru_cache(maxsize=1 << 12)  # (a table repeats its values: a flat 100,000-layer table has a handful)
def size(value: Any) -> str:
    """Bytes in KiB/MiB/GiB (powers of 1024), three significant digits: 802816 -> '784 KiB', 186624 -> '182 KiB'."""
    if type(value) is not int:
        value = simplify(value)
        if is_symbolic(value):
            return f"{human_text(value)} B"
    return _human(int(value), SIZE_STEPS)


def exact(value: Any) -> str:
    value = simplify(value)
    return human_text(value) if is_symbolic(value) else f"{int(value):,}"
