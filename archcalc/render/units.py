"""Human units for the text/markdown/LaTeX tables (JSON and CSV stay exact integers).

Every human figure keeps three significant digits, trailing zeros included (23.3K, 307K, 4.10M,
37.8M), rounded half up from the exact integer.  Counts use K/M/G/T (powers of 1000); bytes use the
binary units KiB/MiB/GiB/TiB (powers of 1024), labelled as such so that nobody reads 1000.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from ..dims import is_symbolic, simplify

COUNT_STEPS = (("", 1), ("K", 10**3), ("M", 10**6), ("G", 10**9), ("T", 10**12))
SIZE_STEPS = ((" B", 1), (" KiB", 1024), (" MiB", 1024**2), (" GiB", 1024**3), (" TiB", 1024**4))


def three_digits(x: Fraction) -> str:
    """A positive fraction to three significant digits, exactly, half up: 4.1 -> '4.10', 999.96 -> '1,000'.

    Whole numbers of 1,000 and more keep every digit (the caller changes unit before that)."""
    e = 0  # 10**e <= x < 10**(e + 1)
    while x >= 10 ** (e + 1):
        e += 1
    while x < Fraction(10) ** e:
        e -= 1
    digits = max(2 - e, 0)
    q = (x * 10**digits + Fraction(1, 2)).__floor__()
    if digits and q >= 1000:  # 9.996 rounds to 10.0, not 10.00
        digits -= 1
        q = (x * 10**digits + Fraction(1, 2)).__floor__()
    whole, frac = divmod(q, 10**digits)
    return f"{whole:,}" + (f".{frac:0{digits}d}" if digits else "")


def _human(v: int, steps: tuple[tuple[str, int], ...]) -> str:
    a = abs(v)
    sign = "-" if v < 0 else ""
    i = max((k for k, (_, scale) in enumerate(steps) if a >= scale), default=0)
    if i == 0 and a < 1000:
        return f"{sign}{a}{steps[0][0]}"
    text = three_digits(Fraction(a, steps[i][1]))
    if Fraction(text.replace(",", "")) >= 1000 and i + 1 < len(steps):  # 999.9K is 1.00M; 1,010 KiB is 0.986 MiB
        i += 1
        text = three_digits(Fraction(a, steps[i][1]))
    return sign + text + steps[i][0]


def count(value: Any) -> str:
    """Counts in K/M/G/T (powers of 1000), three significant digits: 23296 -> '23.3K', 4097000 -> '4.10M'."""
    value = simplify(value)
    if is_symbolic(value):
        return str(value)
    return _human(int(value), COUNT_STEPS)


def size(value: Any) -> str:
    """Bytes in KiB/MiB/GiB (powers of 1024), three significant digits: 802816 -> '784 KiB', 186624 -> '182 KiB'."""
    value = simplify(value)
    if is_symbolic(value):
        return f"{value} B"
    return _human(int(value), SIZE_STEPS)


def exact(value: Any) -> str:
    value = simplify(value)
    return str(value) if is_symbolic(value) else f"{int(value):,}"
