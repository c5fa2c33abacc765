"""Check claims against exact values: ``pool2.output=14x14`` -> wrong, it is 13x13, and why.

A claim is ``TARGET.QUANTITY=VALUE``:

* TARGET: a layer name (dots allowed: ``layer1.0.conv1``), ``total``, or a range ``conv1..pool2``
  (every row from the first to the last, inclusive, summed);
* QUANTITY: ``params``, ``macs``, ``flops``, ``memory`` (activation bytes), ``output`` (shape; the
  last len(claim) axes are compared, so ``14x14`` checks H and W), ``rf`` (receptive field),
  ``stride`` (effective stride);
* VALUE: as people write it: ``16,781,312``, ``61M``, ``72.86M``, ``182.25KB`` (KB = 1024 bytes,
  as in the lecture notes; also KiB/MiB), ``7.5MB``, ``13x13``, or a formula ``27*C**2``.

A rounded claim is judged against the precision it was written with: ``61M`` is right for any
value in [60.5M, 61.5M); ``72.86M`` needs [72.855M, 72.865M).  An unrounded integer must be exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .dims import DimError, is_symbolic, simplify, to_json
from .errors import SpecError
from .render import units
from .report import Report, Row

QUANTITIES = {
    "params": "params",
    "parameters": "params",
    "weights": "params",
    "macs": "macs",
    "mac": "macs",
    "madds": "macs",
    "flops": "flops",
    "flop": "flops",
    "memory": "activation_bytes",
    "mem": "activation_bytes",
    "activation_bytes": "activation_bytes",
    "bytes": "activation_bytes",
    "output": "output_shape",
    "shape": "output_shape",
    "output_shape": "output_shape",
    "size": "output_shape",
    "rf": "receptive_field",
    "receptive_field": "receptive_field",
    "stride": "effective_stride",
    "effective_stride": "effective_stride",
}
COUNT_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "B": 10**9, "T": 10**12}
BYTE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}
_NUMBER = re.compile(r"^([0-9][0-9,_]*(?:\.[0-9]+)?)\s*([A-Za-z]*)$")


@dataclass
class Claim:
    text: str
    target: str  # a layer name, "total", or "first..last"
    quantity: str  # a Row attribute
    value: str


@dataclass
class Verdict:
    claim: Claim
    correct: bool
    exact: Any
    exact_text: str
    why: str  # how the claim was judged (precision, units)
    derivation: str


def parse_claim(text: str) -> Claim:
    if "=" not in text:
        raise SpecError(f"a claim is LAYER.QUANTITY=VALUE, got {text!r}", field="CLAIM")
    lhs, value = (s.strip() for s in text.split("=", 1))
    target, _, q = lhs.rpartition(".")
    if not target or q.lower() not in QUANTITIES:
        raise SpecError(f"unknown quantity in {text!r}; use one of params, macs, flops, memory, output, rf, stride", field="CLAIM")
    return Claim(text, target, QUANTITIES[q.lower()], value)


def _rows(rep: Report, target: str) -> list[Row]:
    if target == "total":
        return rep.counted_rows
    names = [r.name for r in rep.rows]
    if ".." in target:
        first, last = target.split("..", 1)
        for n in (first, last):
            if n not in names:
                raise SpecError(f"no layer named {n!r} in {rep.name}", field="CLAIM")
        i, j = names.index(first), names.index(last)
        if i > j:
            raise SpecError(f"range {target!r} runs backwards", field="CLAIM")
        return [r for r in rep.rows[i : j + 1] if rep.include_training_only or not r.training_only]
    try:
        return [rep.row(target)]
    except KeyError:
        import difflib

        near = difflib.get_close_matches(target, names, n=3)
        raise SpecError(
            f"no layer named {target!r} in {rep.name}" + (f"; did you mean {', '.join(map(repr, near))}?" if near else ""), field="CLAIM"
        ) from None


def _parse_number(value: str, quantity: str) -> tuple[Fraction, Fraction, str]:
    """(claimed value in base units, tolerance, description of the precision)."""
    m = _NUMBER.match(value.replace(" ", ""))
    if not m:
        raise ValueError(value)
    digits, unit = m.group(1).replace(",", "").replace("_", ""), m.group(2)
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    if quantity == "activation_bytes":
        scale = BYTE_UNITS.get(unit.upper() or "B")
        if scale is None:
            raise SpecError(f"unknown memory unit {unit!r} in {value!r} (B, KB, MB, GB; KB = 1024 B)", field="CLAIM")
    else:
        scale = COUNT_UNITS.get(unit.upper() if len(unit) == 1 else unit)
        if scale is None:
            raise SpecError(f"unknown unit {unit!r} in {value!r} (K, M, G = powers of 1000)", field="CLAIM")
    claimed = Fraction(digits) * scale
    if decimals == 0 and scale == 1:
        return claimed, Fraction(0), "exact"
    tol = Fraction(1, 2) * Fraction(1, 10**decimals) * scale
    return claimed, tol, f"written to {'0.' + '0' * (decimals - 1) + '1' if decimals else '1'} {unit or 'unit'}"


def _shape_text(dims: Any) -> str:
    return "\u00d7".join(str(to_json(d)) for d in dims)


def judge(rep: Report, claim: Claim, derive: Any = None) -> Verdict:
    """Compare one claim with the report; ``derive(layer, quantity)`` gives the derivation text."""
    rows = _rows(rep, claim.target)
    if claim.quantity in ("output_shape", "receptive_field", "effective_stride"):
        if len(rows) != 1:
            raise SpecError(f"{claim.quantity} is per layer; {claim.target!r} is not one layer", field="CLAIM")
        exact_shape = tuple(simplify(d) for d in getattr(rows[0], claim.quantity))
        parts = [p for p in re.split(r"[x\u00d7, ]+", claim.value.strip()) if p]
        if not parts or not all(p.isdigit() for p in parts):
            raise SpecError(f"a shape is written like 13x13 or 192x13x13, got {claim.value!r}", field="CLAIM")
        want = tuple(int(p) for p in parts)
        got = exact_shape[-len(want) :] if len(want) <= len(exact_shape) else exact_shape
        why = f"compared the last {len(want)} axes" if len(want) < len(exact_shape) else "compared every axis"
        deriv = derive(rows[0].name, claim.quantity) if derive else ""
        return Verdict(claim, got == want, exact_shape, _shape_text(exact_shape), why, deriv)

    values = [getattr(r, claim.quantity) for r in rows]
    exact = simplify(sum(values, start=0))
    if is_symbolic(exact):
        import sympy

        from .dims import parse_dim

        try:
            formula = parse_dim(claim.value.replace("^", "**"), allow_pow=True)
        except DimError as e:
            raise SpecError(f"cannot read {claim.value!r}: {e}", field="CLAIM") from None
        ok = sympy.simplify(sympy.sympify(formula) - exact) == 0
        return Verdict(claim, ok, exact, str(exact), "compared as formulas", _sum_text(rows, claim.quantity) if len(rows) > 1 else "")
    try:
        claimed, tol, why = _parse_number(claim.value, claim.quantity)
    except ValueError:
        raise SpecError(f"cannot read the value {claim.value!r} (write 61M, 16,781,312, 182.25KB, 13x13)", field="CLAIM") from None
    ok = abs(Fraction(int(exact)) - claimed) <= tol
    fmt = units.size if claim.quantity == "activation_bytes" else units.count
    exact_text = f"{int(exact):,}" + ("" if fmt(exact) == f"{int(exact):,}" else f" ({fmt(exact)})")
    deriv = _sum_text(rows, claim.quantity) if len(rows) > 1 else (derive(rows[0].name, claim.quantity) if derive else "")
    return Verdict(claim, ok, exact, exact_text, why, deriv)


def _sum_text(rows: list[Row], quantity: str) -> str:
    fmt = units.size if quantity == "activation_bytes" else units.count
    parts = [f"{r.name} {fmt(getattr(r, quantity))}" for r in rows if getattr(r, quantity) != 0]
    if len(parts) > 12:
        parts = [*parts[:5], f"... ({len(parts) - 10} more)", *parts[-5:]]
    return " + ".join(parts)


def render_verdicts(verdicts: list[Verdict]) -> str:
    out = []
    for v in verdicts:
        mark = "correct" if v.correct else "WRONG"
        line = f"{mark:7s} {v.claim.text}: exact {v.exact_text}"
        if not v.correct:
            line += f" (claimed {v.claim.value})"
        out.append(line + f"  [{v.why}]")
        if v.derivation:
            out += ["        " + d for d in v.derivation.splitlines()]
    wrong = sum(not v.correct for v in verdicts)
    out.append(f"{len(verdicts) - wrong} correct, {wrong} wrong")
    return "\n".join(out) + "\n"
