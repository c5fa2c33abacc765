"""Reading command-line values shared by the commands: ``--set``, ``--batch``, and the check of ``--set`` names.

Below both the CLI and the torch commands (``archcalc.torch.*``): library code imports this module,
never ``archcalc.cli``.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

from .errors import SpecError


def parse_set(items: Sequence[str]) -> dict[str, int]:
    """``--set H=224 --set W=224`` -> {'H': 224, 'W': 224}.  Digits 0-9 only, at most
    :data:`~archcalc.dims.MAX_DIGITS` of them (a long value is refused before it is converted)."""
    from .dims import DimError, parse_int_text

    values: dict[str, int] = {}
    for item in items:
        m = re.fullmatch(r"\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*([0-9]+)\s*", item, re.ASCII)
        if not m:
            raise SpecError(f"--set needs SYMBOL=POSITIVE_INTEGER (digits 0-9, as H=224), got {_shown(item)}{_write_instead(item)}", field="--set")
        try:
            value = parse_int_text(m.group(2), f"--set {m.group(1)}")
        except DimError as e:
            raise SpecError(str(e), field="--set") from None
        if value <= 0:
            raise SpecError(f"--set needs SYMBOL=POSITIVE_INTEGER (1 or more), got {_shown(item)}", field="--set")
        values[m.group(1)] = value
    return values


def _write_instead(item: str) -> str:
    """For --set H=1e3, H=224.0 or H=1,000: what to write instead (H=1000), or ''."""
    m = re.fullmatch(r"\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*([0-9.eE+,_]{1,40})\s*", item, re.ASCII)
    if not m:
        return ""
    text = m.group(2).replace(",", "").replace("_", "")
    try:
        value = float(text)
    except ValueError:
        return ""
    return f" (write {m.group(1)}={int(value)})" if value.is_integer() and 1 <= value < 1e18 else ""


def whole_number(text: str) -> int:
    """An argparse ``type`` for counts (bench's --batch, --repeat): digits 0-9, at most
    :data:`~archcalc.dims.MAX_DIGITS`; '1e3' is refused as the sizes are ('is not a whole number
    written with the digits 0-9 (write 1000)'), not as argparse's "invalid int value".  A sign is
    read, so that the command's own range check names the bound."""
    from .dims import MAX_DIGITS

    t = text.strip()
    if re.fullmatch(rf"-?[0-9]{{1,{MAX_DIGITS}}}", t, re.ASCII):
        return int(t)
    try:
        value = float(t.replace(",", "").replace("_", "")) if len(t) <= 40 else None
    except ValueError:
        value = None
    hint = f" (write {int(value)})" if value is not None and value.is_integer() and abs(value) < 1e18 else ""
    raise argparse.ArgumentTypeError(f"{_shown(text)} is not a whole number written with the digits 0-9{hint}")


def _shown(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def check_shape_text(text: str, field: str) -> None:
    """A typed shape (3x224x224, C,H,W) before it is read: every number in ASCII digits 0-9 and at
    most :data:`~archcalc.dims.MAX_DIGITS` long ('²' passed str.isdigit and then failed int(), an
    internal error), at most :data:`~archcalc.spec.MAX_RANK` axes."""
    from .dims import MAX_DIGITS
    from .spec import MAX_RANK

    parts = [p for p in re.split(r"[x\u00d7,\s]+", text.strip()) if p]
    if len(parts) > MAX_RANK:
        raise SpecError(f"the input has {len(parts):,} axes; archcalc's limit is {MAX_RANK}", field=field)
    for p in parts:
        if any(c.isdigit() and not c.isascii() for c in p):
            raise SpecError(f"{_shown(p)} is not a size: write numbers with the digits 0-9 (and symbols as names: H, W)", field=field)
        if p.isdigit() and len(p.lstrip("0")) > MAX_DIGITS:
            raise SpecError(f"a size of {len(p)} digits; archcalc reads at most {MAX_DIGITS}", field=field)


def parse_input(text: str, field: str = "--input") -> list[int | str]:
    """``--input 3,224,224`` (or ``3x224x224``, ``C,H,W``): the shape, each size checked here, so
    that every command says the same of a bad one, naming the flag (``'1e3' is not a whole number
    written with the digits 0-9 (write 1000)``), before any spec or model is read."""
    from .dims import DimError, as_int, parse_dim
    from .quick import parse_shape

    check_shape_text(text, field)
    try:
        shape = parse_shape(text)
    except SpecError as e:
        raise SpecError(e.message, field=field) from None
    for x in shape:
        try:
            v = parse_dim(x) if isinstance(x, str) else x
        except DimError as e:
            raise SpecError(str(e), field=field) from None
        n = as_int(v)
        if n is not None and n <= 0:
            raise SpecError(f"input sizes must be positive whole numbers or names (C, H, W), got {x!r}", field=field)
    return shape


def parse_batch(text: str, values: dict[str, int]) -> Any:
    """``--batch 8`` or ``--batch B``: a positive integer or a dimension expression."""
    from .dims import DimError, as_int, parse_dim

    try:
        b = parse_dim(text, values)
    except DimError as e:
        raise SpecError(str(e), field="--batch") from None
    if isinstance(b, bool) or (as_int(b) is not None and as_int(b) <= 0):  # type: ignore[operator]
        raise SpecError(f"--batch must be positive, got {text!r}", field="--batch")
    return b


def check_set_names(values: dict[str, int], arch: Any, file: str, args: argparse.Namespace) -> None:
    """--set of a name the spec never uses is a typo (h for H), not a no-op."""
    from .dims import names_in
    from .spec import spec_symbols

    known = spec_symbols(arch)
    for extra in (getattr(args, "input", None), getattr(args, "batch", None)):
        known |= {n for part in str(extra or "").split(",") if part.strip() and not part.strip().isdigit() for n in names_in(part.strip())}
    for name in values:
        if name not in known:
            import difflib

            near = difflib.get_close_matches(name, sorted(known), n=1) or [k for k in sorted(known) if k.lower() == name.lower()]
            hint = f"; did you mean {near[0]!r}?" if near else (f" (its symbols: {', '.join(sorted(known))})" if known else " (it has no symbols)")
            raise SpecError(f"--set {name}: the spec uses no symbol {name!r}{hint}", file=file, field="--set")


__all__ = ["check_set_names", "check_shape_text", "parse_batch", "parse_input", "parse_set", "whole_number"]
