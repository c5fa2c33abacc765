"""Human units for the text/markdown/LaTeX tables (JSON and CSV stay exact integers)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from ..dims import dim_text, is_symbolic, simplify


def _trim(x: Fraction, digits: int) -> str:
    """x to ``digits`` decimals, exactly (no float: 10**30 channels keep every digit), trailing zeros dropped."""
    q = (abs(x) * 10**digits + Fraction(1, 2)).__floor__()  # half up, as people round by hand: 1.015K -> 1.02K
    whole, frac = divmod(q, 10**digits)
    return ("-" if x < 0 and q else "") + f"{whole:,}" + (f".{frac:0{digits}d}".rstrip("0") if frac else "")


def count(value: Any) -> str:
    """Counts in K/M/G (powers of 1000): 23296 -> '23.3K', 72855552 -> '72.86M'."""
    value = simplify(value)
    if is_symbolic(value):
        return dim_text(value)
    v = int(value)
    for unit, scale in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(v) >= scale:
            return _trim(Fraction(v, scale), 2) + unit
    return f"{v:,}"


def size(value: Any) -> str:
    """Bytes in KB/MB/GB (powers of 1024, as the lecture notes): 802816 -> '784 KB'."""
    value = simplify(value)
    if is_symbolic(value):
        return f"{dim_text(value)} B"
    v = int(value)
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if abs(v) >= scale:
            return _trim(Fraction(v, scale), 2) + " " + unit
    return f"{v} B"


def exact(value: Any) -> str:
    value = simplify(value)
    return dim_text(value) if is_symbolic(value) else f"{int(value):,}"
