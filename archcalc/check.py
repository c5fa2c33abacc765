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

from .dims import DimError, dim_text, is_symbolic, simplify
from .errors import SpecError
from .render import units
from .report import IN_PLACE_NOTE, Report, Row

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
# KB, KiB: 1024 bytes, as in the lecture notes.  kB, MB and GB are also written for powers of 1000
# (SI): a claim in those units is right if either reading matches, and the verdict says which.
BYTE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "kB": 1024}
SI_BYTE_UNITS = {"kB": 1000, "MB": 1000**2, "GB": 1000**3}
# after the multiplier, the quantity's own name may follow: 0.15GFLOPs, 72.86M MACs, 61M params
_COUNT_WORDS = re.compile(r"(?i)(flops?|macs?|madds?|mult-adds|params?|parameters|weights)$")
# digits with optional thousands separators (1,234,567 or 1_234_567: groups of three), a fraction, an exponent
_NUMBER = re.compile(r"^((?:[0-9]{1,3}(?:([,_])[0-9]{3})(?:\2[0-9]{3})*|[0-9]+)(?:\.[0-9]+)?)(?:[eE]([+-]?[0-9]+))?\s*([A-Za-z-]*)$")


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
    note: str | None = None  # the layer's own note (a linear layer acting on the last axis...)


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
        rows = [r for r in rep.rows[i : j + 1] if rep.include_training_only or not r.training_only]
        if not rows:
            raise SpecError(
                f"range {target!r} holds only training-only layers (an auxiliary head), left out unless you pass --include-training-only",
                field="CLAIM",
            )
        return rows
    try:
        return [rep.row(target)]
    except KeyError:
        import difflib

        near = difflib.get_close_matches(target, names, n=3)
        raise SpecError(
            f"no layer named {target!r} in {rep.name}" + (f"; did you mean {', '.join(map(repr, near))}?" if near else ""), field="CLAIM"
        ) from None


def _parse_number(value: str, quantity: str) -> list[tuple[Fraction, Fraction, str]]:
    """Readings of a written value: (claimed value in base units, tolerance, how it was read).

    One reading, except for kB, MB, GB, which are read both as powers of 1024 and of 1000."""
    m = _NUMBER.match(value.replace(" ", ""))
    if not m:
        raise ValueError(value)
    digits, exponent, unit = m.group(1).replace(",", "").replace("_", ""), int(m.group(3) or 0), m.group(4)
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    if quantity == "activation_bytes":
        if unit.endswith("b"):  # Mb, kb: bits
            raise SpecError(f"{unit!r} in {value!r} reads as bits; memory is in bytes (B, KB, MB, GB; KB = 1024 B)", field="CLAIM")
        key = unit if unit in BYTE_UNITS else {k.upper(): k for k in BYTE_UNITS if k != "kB"}.get(unit.upper() or "B")
        if key is None:
            raise SpecError(f"unknown memory unit {unit!r} in {value!r} (B, KB, MB, GB; KB = 1024 B)", field="CLAIM")
        scales = [(BYTE_UNITS[key], "")]
        if key in SI_BYTE_UNITS:
            power = {"kB": "", "MB": "\u00b2", "GB": "\u00b3"}[key]
            scales.append((SI_BYTE_UNITS[key], f"read as 1 {key} = 1000{power} B"))
    else:
        word = _COUNT_WORDS.search(unit)
        mult = unit[: word.start()] if word else unit
        scale = COUNT_UNITS.get(mult.upper() if len(mult) == 1 else mult)
        if scale is None:
            raise SpecError(f"unknown unit {unit!r} in {value!r} (K, M, G = powers of 1000)", field="CLAIM")
        scales = [(scale, "")]
    out = []
    for scale, reading in scales:
        claimed = Fraction(digits) * Fraction(10) ** exponent * scale
        step = Fraction(1, 10**decimals) * Fraction(10) ** exponent * scale  # the last written digit
        if step <= 1 and claimed.denominator == 1:
            out.append((claimed, Fraction(0), reading or "exact"))
            continue
        precision = f"written to {_plain(step / scale)} {unit or 'unit'}" if not exponent else f"written to {_plain(step)}"
        out.append((claimed, step / 2, f"{precision}, {reading}" if reading else precision))
    return out


def _plain(x: Fraction) -> str:
    """1/100 -> 0.01, 1000 -> 1,000."""
    if x.denominator == 1:
        return f"{x.numerator:,}"
    return f"{float(x):.{len(str(x.denominator)) - 1}f}"


def _shape_text(dims: Any) -> str:
    from .render import _shape

    return _shape(tuple(dims))


def judge(rep: Report, claim: Claim, derive: Any = None) -> Verdict:
    """Compare one claim with the report; ``derive(layer, quantity)`` gives the derivation text."""
    rows = _rows(rep, claim.target)
    verdict = _judge(rep, claim, rows, derive)
    if len(rows) == 1 and rows[0].note and rows[0].note != IN_PLACE_NOTE:
        verdict.note = rows[0].note
    return verdict


def _judge(rep: Report, claim: Claim, rows: list[Row], derive: Any) -> Verdict:
    if claim.quantity in ("output_shape", "receptive_field", "effective_stride"):
        if len(rows) != 1:
            raise SpecError(f"{claim.quantity} is per layer; {claim.target!r} is not one layer", field="CLAIM")
        exact_shape = tuple(simplify(d) for d in getattr(rows[0], claim.quantity))
        parts = [p for p in re.split(r"[x\u00d7, ]+", claim.value.strip()) if p]
        if not parts:
            raise SpecError(f"a shape is written like 13x13 or 192x13x13, got {claim.value!r}", field="CLAIM")
        last = "axis" if len(parts) == 1 else f"{len(parts)} axes"
        why = "compared every axis" if len(parts) >= len(exact_shape) else f"compared the last {last}"
        deriv = derive(rows[0].name, claim.quantity) if derive else ""
        got = exact_shape[-len(parts) :] if len(parts) <= len(exact_shape) else exact_shape
        if all(p.isdigit() for p in parts) and not any(is_symbolic(d) for d in got):
            return Verdict(claim, got == tuple(int(p) for p in parts), exact_shape, _shape_text(exact_shape), why, deriv)
        from .dims import parse_dim

        try:
            want = [parse_dim(p) for p in parts]
        except DimError as e:
            raise SpecError(f"a shape is written like 13x13, 192x13x13 or CxHxW; cannot read {claim.value!r}: {e}", field="CLAIM") from None
        if len(want) != len(got):
            return Verdict(claim, False, exact_shape, _shape_text(exact_shape), f"{len(want)} axes claimed, the output has {len(got)}", deriv)
        import sympy

        for w, g in zip(want, got, strict=True):
            ok, how = same_formula(sympy.sympify(w), sympy.sympify(g))
            if not ok:
                return Verdict(claim, False, exact_shape, _shape_text(exact_shape), f"{why}; axis {g}: {how}", deriv)
        return Verdict(claim, True, exact_shape, _shape_text(exact_shape), f"{why} as formulas", deriv)

    values = [getattr(r, claim.quantity) * r.repeat for r in rows]  # a row of a block repeated l times counts l times
    exact = simplify(sum(values, start=0))
    if is_symbolic(exact):
        import sympy

        from .dims import parse_dim

        try:
            text = claim.value.replace("^", "**")
            if claim.quantity == "activation_bytes":
                text = re.sub(r"\s*B$", "", text)  # "4*C*H*W B": the formula counts bytes
            formula = parse_dim(text, allow_pow=True)
        except DimError as e:
            raise SpecError(f"cannot read {claim.value!r}: {e}", field="CLAIM") from None
        ok, why = same_formula(sympy.sympify(formula), exact)
        return Verdict(claim, ok, exact, str(exact), why, _sum_text(rows, claim.quantity) if len(rows) > 1 else "")
    try:
        readings = _parse_number(claim.value, claim.quantity)
    except SpecError:
        raise
    except ValueError:
        raise SpecError(f"cannot read the value {claim.value!r} (write 61M, 16,781,312, 182.25KB, 7.3e7, 13x13)", field="CLAIM") from None
    matching = [r for r in readings if abs(Fraction(int(exact)) - r[0]) <= r[1]]
    ok = bool(matching)
    why = (matching or readings)[0][2]
    fmt = units.size if claim.quantity == "activation_bytes" else units.count
    exact_text = f"{int(exact):,}" + ("" if fmt(exact) == f"{int(exact):,}" else f" ({fmt(exact)})")
    deriv = _sum_text(rows, claim.quantity) if len(rows) > 1 else (derive(rows[0].name, claim.quantity) if derive else "")
    return Verdict(claim, ok, exact, exact_text, why, deriv)


def same_formula(claimed: Any, exact: Any) -> tuple[bool, str]:
    """Whether two formulas in positive-integer symbols agree, and how that was decided.

    sympy first: a difference that simplifies to 0 is proof.  Floors often don't simplify
    (floor(H/2 - 1/2) + 1 is (H + 1)//2, which sympy leaves as is), so then both are evaluated
    exactly at integer values: a difference anywhere is a counterexample; agreement everywhere tested
    is reported as what it is, a test and not a proof.  Sizes run over 64 consecutive values from
    256 (every zoo network is valid there, and 64 covers the residues of five stride-2 stages)."""
    import random

    import sympy

    if sympy.simplify(claimed - exact) == 0:
        return True, "compared as formulas: equal"
    symbols = sorted(sympy.sympify(claimed).free_symbols | sympy.sympify(exact).free_symbols, key=str)
    if not symbols:
        return False, "compared as numbers"
    values = range(256, 320)
    rng = random.Random(0)
    points = [dict.fromkeys(symbols, v) for v in values]  # all symbols equal (square inputs, C = H)
    points += [{x: rng.choice(values) for x in symbols} for _ in range(0 if len(symbols) == 1 else 200)]
    for point in points:
        at = {x: sympy.Integer(v) for x, v in point.items()}
        a, b = sympy.sympify(claimed).xreplace(at), sympy.sympify(exact).xreplace(at)
        if a != b:
            where = ", ".join(f"{x}={v}" for x, v in point.items())
            return False, f"compared as formulas: they differ at {where} (claimed {_num(a)}, exact {_num(b)})"
    tested = "every one of" if len(symbols) == 1 else "all"
    names = ", ".join(map(str, symbols))
    return True, f"compared as formulas: equal at {tested} {len(points)} tested values of {names} (sympy could not reduce the difference to 0)"


def _num(v: Any) -> str:
    return f"{int(v):,}" if getattr(v, "is_Integer", False) else dim_text(v)


def _sum_text(rows: list[Row], quantity: str) -> str:
    fmt = units.size if quantity == "activation_bytes" else units.count
    parts = [
        f"{r.name} {fmt(getattr(r, quantity))}" + ("" if r.repeat == 1 else f" \u00d7 {_num(r.repeat)}")  # a repeated block's row counts l times
        for r in rows
        if getattr(r, quantity) != 0
    ]
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
        if v.note:
            out.append(f"        note: {v.note}")
    wrong = sum(not v.correct for v in verdicts)
    out.append(f"{len(verdicts) - wrong} correct, {wrong} wrong")
    return "\n".join(out) + "\n"
