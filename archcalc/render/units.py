"""Human units for the text/markdown/LaTeX tables (JSON and CSV stay exact integers)."""

from __future__ import annotations

from typing import Any

from ..dims import dim_text, is_symbolic, simplify


def _scaled(v: int, scale: int, digits: int = 2) -> str:
    """v / scale to ``digits`` decimals, exactly, in integers (no float: 10**30 channels keep every
    digit; no Fraction: a 100,000-row table formats in a fraction of the time), rounded half up as
    people round by hand (1.015K -> 1.02K), trailing zeros dropped."""
    unit = 10**digits
    q = (2 * abs(v) * unit + scale) // (2 * scale)  # floor(|v|/scale * 10^digits + 1/2)
    whole, frac = divmod(q, unit)
    return ("-" if v < 0 and q else "") + f"{whole:,}" + (f".{frac:0{digits}d}".rstrip("0") if frac else "")


def count(value: Any) -> str:
    """Counts in K/M/G (powers of 1000): 23296 -> '23.3K', 72855552 -> '72.86M'."""
    if type(value) is not int:
        value = simplify(value)
        if is_symbolic(value):
            return dim_text(value)
    v = int(value)
    for unit, scale in _COUNT_UNITS:
        if abs(v) >= scale:
            return _scaled(v, scale) + unit
    return f"{v:,}"


def size(value: Any) -> str:
    """Bytes in KB/MB/GB (powers of 1024, as the lecture notes): 802816 -> '784 KB'."""
    if type(value) is not int:
        value = simplify(value)
        if is_symbolic(value):
            return f"{dim_text(value)} B"
    v = int(value)
    for unit, scale in _SIZE_UNITS:
        if abs(v) >= scale:
            return _scaled(v, scale) + unit
    return f"{v} B"


_COUNT_UNITS = (("G", 10**9), ("M", 10**6), ("K", 10**3))
_SIZE_UNITS = ((" GB", 1024**3), (" MB", 1024**2), (" KB", 1024))


def exact(value: Any) -> str:
    value = simplify(value)
    return dim_text(value) if is_symbolic(value) else f"{int(value):,}"
