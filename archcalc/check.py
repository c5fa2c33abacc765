"""Check claims against exact values: ``pool2.output=14x14`` -> wrong, it is 13x13, and why.

A claim is ``TARGET.QUANTITY=VALUE`` (or a budget, ``TARGET.QUANTITY<=VALUE``, ``<``, ``>=``, ``>``):

* TARGET: a layer name (dots allowed: ``layer1.0.conv1``), a block name (``layer1``, ``Mixed_5b``:
  the sum over the block; its last layer for output, rf and stride), ``total`` (for rf and stride:
  the last layer with spatial axes), or a range ``conv1..pool2`` (every row, inclusive, summed);
* QUANTITY: ``params``, ``macs``, ``flops``, ``memory`` (activation bytes), ``output`` (shape; the
  last len(claim) axes are compared, so ``14x14`` checks H and W; one size written in symbols is
  compared with the axis in the same symbols, ``(H-1)//2+1`` with H; one number that is only another
  axis's size, ``64`` for 64x56x56, is ambiguous: not judged), ``rf`` (receptive field),
  ``stride`` (effective stride);
* VALUE: as people write it, and the verdict says how it was read: ``16,781,312``, ``61M``,
  ``72.86M``, ``≈138M``, ``~140M``, ``about 0.5 MB``, ``138 million``, ``802,816 bytes``,
  ``3.2M activations`` (elements, not bytes), ``73 MFLOPs`` (a unit that names another quantity is
  judged as that quantity), ``182.25KB`` (KB = 1024 bytes, as in the lecture notes; also KiB/MiB;
  kB, MB, GB are also read as powers of 1000), ``13x13 pixels``, ``(192, 13, 13)``, ``13*13``,
  ``56x56x64`` (channels last: read in H×W×C order, and said so), arithmetic
  (``11*11*3*64+64``) or a formula (``27*C**2``, ``27C^2``, ``27C²``).

A rounded claim is judged against the precision it was written with: ``61M`` is right for any value
in [60.5M, 61.5M); ``72.86M`` needs [72.855M, 72.865M).  Trailing zeros of a whole number are not
significant (the textbook rule): ``60K`` is judged to one digit, [55K, 65K), ``140M`` to two; digits
written out in groups (``102,760K``) are all meant.  An unrounded integer with no unit must be exact.
A wrong figure gets a diagnosis when it is a known
slip: FLOPs for MACs (×2), elements for float32 bytes (×4), 1000 for 1024, the other counting
convention, the paper's ResNet v1 for torchvision's v1.5, the bias left out.

A claim that cannot be read gets its own verdict ("cannot read"); the others are still judged.
Symbolic claims are compared by :mod:`archcalc.decide`, without a general ``sympy.simplify`` (whose time grows exponentially
with nested floors): identical canonical forms or an expanded polynomial difference of 0 are
proofs, and so is a check class by class where both are polynomials in the symbols and in floors of
polynomials (every conv and pool size is): on each residue class of the floors' period, a polynomial
of known degree, fixed by that many points (``Mod(a, n)`` is ``a - n*floor(a/n)`` there); and, in one
symbol, Max and Min of such formulas (a receptive field where paths meet) are decided past the point
where the order of their arguments settles, and value by value before it.  Otherwise both sides are
evaluated exactly at many integer points, at and past every constant written in them: a difference
is a counterexample (WRONG), agreement is not a proof, and the verdict is "not proven" (neither
correct nor wrong; exit 2, as for a claim that cannot be judged).
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from .decide import exact_evaluator, fraction_text, same_formula
from .dims import CLAIM_FUNCTIONS, expand, human_text, is_symbolic, simplify
from .render import _shape, units
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
NAMES = {
    "params": "params",
    "macs": "MACs",
    "flops": "FLOPs",
    "activation_bytes": "memory",
    "output_shape": "output",
    "receptive_field": "receptive field",
    "effective_stride": "effective stride",
}
COUNT_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "B": 10**9, "T": 10**12}
# KB, KiB: 1024 bytes, as in the lecture notes.  kB, MB and GB are also written for powers of 1000
# (SI): an equality claim in those units is right if either reading matches, and the verdict says
# which; a budget gets a verdict only where both readings give the same one (else 'cannot judge').
BYTE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "kB": 1024}
SI_BYTE_UNITS = {"kB": 1000, "MB": 1000**2, "GB": 1000**3}
# words after a value that name what it counts: they must agree with the claim's quantity
WORD_QUANTITY = {
    "flop": "flops",
    "flops": "flops",
    "mac": "macs",
    "macs": "macs",
    "madds": "macs",
    "mult-adds": "macs",
    "multiply-adds": "macs",
    "multiply-accumulates": "macs",
    "param": "params",
    "params": "params",
    "parameters": "params",
    "weights": "params",
    "byte": "activation_bytes",
    "bytes": "activation_bytes",
}
ELEMENT_WORDS = {"activations", "activation", "values", "elements", "floats", "numbers", "neurons"}
SHAPE_WORDS = {"pixels", "pixel", "px", "rf", "receptive", "field", "output", "outputs", "map", "feature", "maps", "positions"}
SCALE_WORDS = {"thousand": "K", "million": "M", "millions": "M", "mio": "M", "billion": "G", "billions": "G", "trillion": "T"}
_APPROX = re.compile(r"^(?:\u2248|~|about\b|approx\.?|approximately\b|around\b|roughly\b|circa\b|ca\.)\s*", re.I)
# digits with optional thousands separators (1,234,567 or 1_234_567: groups of three), a fraction, an exponent
_NUMBER = re.compile(r"^((?:[0-9]{1,3}(?:([,_])[0-9]{3})(?:\2[0-9]{3})*|[0-9]+)(?:\.[0-9]+)?)(?:[eE]([+-]?[0-9]+))?\s*(.*)$")
_OPS = ("<=", ">=", "==", "\u2264", "\u2265", "=", "<", ">")
MAX_EXPONENT = 60  # 1e60 is beyond any network; 1e999999999 would build a billion-digit integer
MAX_VALUE_LEN = 200
MAX_POWER = 64  # the product of nested exponents in a formula: (C**8)**8 is C**64, and no further


class Unreadable(ValueError):
    """A claim (or its value) that cannot be read; the message says why."""


class Unjudgeable(Unreadable):
    """A claim that was read but cannot be judged (a receptive field where there are no spatial axes,
    a budget on a formula); the message says why."""


@dataclass
class Claim:
    text: str
    target: str  # a layer or block name, "total", or "first..last"
    quantity: str  # a Row attribute
    value: str
    op: str = "="  # "=", or a budget: "<=", "<", ">=", ">"


@dataclass
class Verdict:
    claim: Claim | None
    correct: bool
    exact: Any
    exact_text: str
    why: str  # how the claim was read and judged (precision, units)
    derivation: str
    note: str | None = None  # the layer's own note (a linear layer acting on the last axis...)
    hint: str | None = None  # the likely slip behind a wrong figure
    unreadable: bool = False
    text: str = ""
    unjudged: bool = False  # read, but nothing to judge it against (with unreadable: neither correct nor wrong)
    unproven: bool = False  # formulas that agree wherever they were evaluated, not proved equal: neither correct nor wrong

    @property
    def mark(self) -> str:
        if self.unjudged:
            return "cannot judge"
        if self.unproven:
            return "not proven"
        return "cannot read" if self.unreadable else ("correct" if self.correct else "WRONG")


_QUOTED = r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\""
_CLAIM = re.compile(rf"^\s*((?:{_QUOTED}|[^=<>\u2264\u2265\s'\"])+?)\s*(<=|>=|==|\u2264|\u2265|=|<|>)\s*(.*?)\s*$", re.S)
_NEEDS_QUOTES = re.compile(r"[\s=<>\u2264\u2265'\"]")


def claim_name(name: str) -> str:
    """A layer or block name as a claim writes it: as it is, or in quotes where it holds a space,
    ``=``, ``<``, ``>`` or a quote (``'conv 1'.params=...``; a quote inside is doubled, as in SQL)."""
    if not _NEEDS_QUOTES.search(name):
        return name
    q = "'" if "'" not in name or '"' in name else '"'
    return q + name.replace(q, q + q) + q


def _unquote_target(target: str) -> str:
    """A claim's target with its quoted names read (``'a b'..'c d'`` -> ``a b..c d``): a name in
    quotes is the whole name, between '..' (a range) or the ends."""
    if "'" not in target and '"' not in target:
        return target
    parts = re.findall(rf"{_QUOTED}|\.\.|[^'\".]+(?:\.(?!\.)[^'\".]*)*|\.", target)
    if "".join(parts) != target:
        raise Unreadable(f"an unclosed quote in {target!r}")
    names: list[str] = [""]
    for part in parts:
        if part == "..":
            names.append("")
        elif part[0] in "'\"":
            if names[-1]:
                raise Unreadable(f"quote the whole name in {target!r}: {claim_name(names[-1] + part[1:-1])}")
            names[-1] = part[1:-1].replace(part[0] * 2, part[0]) + "\0"  # (closed: nothing may follow it)
        elif names[-1].endswith("\0"):
            raise Unreadable(f"quote the whole name in {target!r}, or nothing of it")
        else:
            names[-1] += part
    return "..".join(n.removesuffix("\0") for n in names)


def _quote_hint(text: str) -> str:
    """For a claim whose name needs quotes but has none (``conv one.params=20``): how to write it."""
    ops = "<=|>=|==|\u2264|\u2265|=|<|>"
    m = re.match(rf"^\s*([^'\"]+?)\.({'|'.join(QUANTITIES)})\s*({ops})(.*)$", text, re.S | re.I)
    if m is None or not _NEEDS_QUOTES.search(m.group(1).strip()):
        return ""
    name = m.group(1).strip()
    return f" (a name with a space, '=', '<', '>' or a quote is written in quotes: {claim_name(name)}.{m.group(2)}{m.group(3)}{m.group(4)})"


def parse_claim(text: str) -> Claim:
    """``conv1.params=23,296`` -> Claim; raises :class:`Unreadable` (a ValueError) with the reason.
    A name with a space, ``=``, ``<``, ``>`` or a quote is written in quotes (:func:`claim_name`)."""
    m = _CLAIM.match(text)
    if not m:
        raise Unreadable(f"a claim is LAYER.QUANTITY=VALUE (or <=, <, >=, > for a budget), got {text!r}"
                         + _quote_hint(text))
    lhs, op, value = m.groups()
    op = {"\u2264": "<=", "\u2265": ">=", "==": "="}.get(op, op)
    target, _, q = lhs.rpartition(".")
    if not target or q.lower() not in QUANTITIES:
        raise Unreadable(f"unknown quantity {q!r}; use one of params, macs, flops, memory, output, rf, stride" + _quote_hint(text))
    target = _unquote_target(target)
    if not value:
        raise Unreadable("no value after the " + op)
    if len(value) > MAX_VALUE_LEN:
        raise Unreadable(f"a value longer than {MAX_VALUE_LEN} characters")
    quantity = QUANTITIES[q.lower()]
    if op != "=" and quantity in ("output_shape", "receptive_field", "effective_stride"):
        raise Unreadable(f"a budget ({op}) is for params, macs, flops or memory, not {NAMES[quantity]}")
    return Claim(text, target, quantity, value, op)


# ----- targets --------------------------------------------------------------------------------------


def _rows(rep: Report, target: str, quantity: str) -> tuple[list[Row], str]:
    """The rows a target names, and how it was read ('' for a single layer)."""
    names = [r.name for r in rep.rows]
    counted = [r for r in rep.rows if rep.include_training_only or not r.training_only]
    per_layer = quantity in ("output_shape", "receptive_field", "effective_stride")
    if target == "total":
        if quantity in ("receptive_field", "effective_stride"):
            last = rep.field_row()
            later = counted[counted.index(last) + 1 :] if last in counted else []
            pooled = any(r.whole_input for r in later)  # (it stopped before a global pool, or a flatten of the map)
            why = " before the map is pooled to one position (from there every output sees the whole input)" if pooled else ""
            seen = {r.name: r.whole_input for r in rep.rows}
            reads_a_map = not any(seen.get(i, False) for i in last.inputs)  # (ViT's encoder.ln reads tokens that already see it all)
            if last.whole_input and not reads_a_map:  # (ViT: its tokens see the whole image from the first attention on)
                why = f"the last layer with a receptive field, {last.name}, whose input already sees the whole input"
                return [last], f"total {NAMES[quantity]}: {why}"
            if last.whole_input and last.params:  # (LeNet-5's C5: a 5x5 conv over 5x5 maps)
                return [last], f"total {NAMES[quantity]}: the learned window that reads the last map down to one position, {last.name}"
            return [last], f"total {NAMES[quantity]}: the last layer with spatial axes{why}, {last.name}"
        if per_layer:
            spatial = [r for r in counted if len(r.output_shape) > 1 and r.receptive_field]
            last = (spatial or counted)[-1]
            return [last], f"total {NAMES[quantity]}: the last layer with spatial axes, {last.name}"
        return rep.counted_rows, ""
    if ".." in target:
        first, last_name = target.split("..", 1)
        for n in (first, last_name):
            if n not in names:
                raise Unreadable(f"no layer named {n!r} in {rep.name}")
        i, j = names.index(first), names.index(last_name)
        if i > j:
            raise Unreadable(f"range {target!r} runs backwards")
        rows = [r for r in rep.rows[i : j + 1] if rep.include_training_only or not r.training_only]
        if not rows:
            raise Unreadable(
                f"range {target!r} holds only training-only layers (an auxiliary head), left out unless you pass --include-training-only"
            )
        if per_layer:
            return [rows[-1]], f"the range's last layer, {rows[-1].name}"
        from .grouping import copies_per_copy

        a, b = first.split("."), last_name.split(".")
        shared = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        copies = copies_per_copy(rep, ".".join(a[:shared]))
        if copies != 1:  # transformer.h.*.ln_1..transformer.h.*.attn.c_attn: one copy, as the table prints its rows
            n = human_text(copies)
            return [replace(r, repeat=simplify(r.repeat / copies)) for r in rows], (
                f"one copy of a block repeated {n} times, as the table prints its rows (all {n} copies: {n} \u00d7 this)"
            )
        return rows, ""
    if target in names:
        row = rep.row(target)
        from .grouping import copies_per_copy

        copies = copies_per_copy(rep, target)
        if copies != 1 and not per_layer:  # transformer.h.*.attn.c_attn (×l): one copy, the row as the table prints it
            n = human_text(copies)
            return [replace(row, repeat=simplify(row.repeat / copies))], (
                f"one copy of a block repeated {n} times, as the table prints the row (all {n} copies: {n} \u00d7 this)"
            )
        return [row], ""
    from .grouping import block, block_names
    from .summary import stage

    group = block(rep, target)
    members, what = (list(group.rows), "block") if group is not None else (stage(rep, target), "stage")  # (explain reads them alike)
    if members:
        inside = [r for r in members if rep.include_training_only or not r.training_only] or members
        if per_layer:
            return [inside[-1]], f"{what} {target}: its last layer, {inside[-1].name}"
        return inside, f"{what} {target}: the sum over its {len(inside)} layers"
    import difflib

    if target == "input":
        raise Unreadable(f"'input' is the network's input ({_shape(rep.input_shape)}), not a layer; claims name a layer, a block or total")
    from .grouping import numbered_copy_hint

    hint = numbered_copy_hint(rep.repeats, target)
    if hint is not None:
        raise Unreadable(f"no layer or block named {target!r}: {hint}")
    blocks = block_names(rep)
    near = difflib.get_close_matches(target, [n for n in names + blocks if n != "input"], n=3)
    said = ", ".join(claim_name(n) if _NEEDS_QUOTES.search(n) else repr(n) for n in near)  # (as a claim writes them)
    raise Unreadable(f"no layer or block named {target!r} in {rep.name}" + (f"; did you mean {said}?" if near else ""))


# ----- values ---------------------------------------------------------------------------------------


@dataclass
class Reading:
    value: Fraction  # in the base unit of the quantity judged (count, bytes, or elements)
    tolerance: Fraction
    how: str  # "exact", "written to 1 M", ...
    quantity: str  # the quantity the value is a figure of (a unit word can name another one)
    elements: bool = False  # memory written as an element count
    approx: bool = False


def _normalise(value: str) -> tuple[str, bool]:
    """Strip an 'about'/'≈'/'~' and spell scale words as multipliers: ('138M', approx?)."""
    text = value.strip().replace("\u00a0", " ").replace("\u202f", " ")
    approx = False
    while True:
        m = _APPROX.match(text)
        if not m:
            break
        approx, text = True, text[m.end() :].strip()
    words = text.split()
    out = []
    for w in words:
        low = w.lower().rstrip(".")
        out.append(SCALE_WORDS.get(low, w))
    text = " ".join(out)
    text = re.sub(r"(\d)\s+([KMGT])\b", r"\1\2", text)  # "138 M" -> "138M"
    return text, approx


def _significant_step(digits: str, exponent: int, approx_or_unit: bool) -> Fraction:
    """The size of the last significant digit: 72.86 -> 1/100; 60 (rounded) -> 10; 16781312 -> 1."""
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    step = Fraction(1, 10**decimals) * Fraction(10) ** exponent
    if decimals == 0 and approx_or_unit and digits.strip("0"):
        zeros = len(digits) - len(digits.rstrip("0"))  # trailing zeros of a whole number: not significant
        step *= 10**zeros
    return step


def _read_count(value: str, quantity: str, rep: Report) -> list[Reading]:
    """Readings of a written count or size (the kB/MB/GB byte units read both ways)."""
    text, approx = _normalise(value)
    m = _NUMBER.match(text)
    if not m or re.search(r"[+*/()]|\d\s*-\s*\d", text):
        exact = _arithmetic(text)
        if exact is None:
            raise Unreadable(f"cannot read the value {value!r} (write 61M, 16,781,312, 182.25KB, 7.3e7, 11*11*3*64+64)")
        return [Reading(exact, Fraction(0), f"read as {text.strip()} = {fraction_text(exact)}", quantity, approx=approx)]
    grouped = m.group(2) is not None  # 102,760K: every digit written out is meant, trailing zeros too
    digits, exponent, rest = m.group(1).replace(",", "").replace("_", ""), int(m.group(3) or 0), m.group(4).strip()
    if abs(exponent) > MAX_EXPONENT:
        raise Unreadable(f"exponent {exponent} in {value!r} is out of range (|e| <= {MAX_EXPONENT})")
    if len(digits) > MAX_VALUE_LEN:
        raise Unreadable(f"more than {MAX_VALUE_LEN} digits in {value!r}")
    if re.match(r"^,\d{1,2}(?!\d)", rest):
        raise Unreadable(f"a decimal comma in {value!r}? write {digits}.{rest[1:]} (a comma separates groups of three digits)")
    words = rest.split()
    unit = words[0] if words else ""
    tail = [w.lower().strip(".,;") for w in words[1:]]
    judged = quantity
    elements = False
    scales: list[tuple[int, str]]
    if quantity == "activation_bytes":
        if unit.lower() in ELEMENT_WORDS:  # 802816 values
            unit, elements = "", True
        m2 = re.fullmatch(r"([kKMGT]?)([A-Za-z-]*)", unit)
        prefix, word = (m2.group(1), m2.group(2)) if m2 else ("", unit)
        if word.lower() in ELEMENT_WORDS:  # 3.2Mactivations
            unit, elements = prefix, True
        elif not word and words[1:] and words[1].lower().strip(".,") in ELEMENT_WORDS and prefix.upper() in COUNT_UNITS:  # 3.2M activations
            elements = True
        if elements:
            scale = COUNT_UNITS.get(unit.upper())
            if scale is None:
                raise Unreadable(f"unknown multiplier {unit!r} in {value!r} (K, M, G = powers of 1000)")
            scales = [(scale, "")]
        else:
            if unit.lower() in ("byte", "bytes"):
                unit = "B"
            if unit.endswith("b") and unit not in BYTE_UNITS:  # Mb, kb: bits
                raise Unreadable(f"{unit!r} in {value!r} reads as bits; memory is in bytes (B, KB, MB, GB; KB = 1024 B)")
            key = unit if unit in BYTE_UNITS else {k.upper(): k for k in BYTE_UNITS if k != "kB"}.get(unit.upper() or "B")
            if key is None:
                raise Unreadable(f"unknown memory unit {unit!r} in {value!r} (B, KB, MB, GB; KB = 1024 B; or 3.2M activations)")
            scales = [(BYTE_UNITS[key], "")]
            if key in SI_BYTE_UNITS:  # both readings, each said in the verdict (a budget needs both to agree)
                power = {"kB": "", "MB": "\u00b2", "GB": "\u00b3"}[key]
                scales = [(BYTE_UNITS[key], f"read as 1 {key} = 1024{power} B"), (SI_BYTE_UNITS[key], f"read as 1 {key} = 1000{power} B")]
            unit = key
    else:
        m2 = re.fullmatch(r"([kKMGBT]?)([A-Za-z-]*)", unit)
        if not m2:
            raise Unreadable(f"unknown unit {unit!r} in {value!r} (K, M, G = powers of 1000)")
        prefix, word = m2.groups()
        if prefix and not word and unit.lower() in WORD_QUANTITY:  # "B" alone after a count is a billion; "bytes" is not
            prefix, word = "", unit
        if word and word.lower() not in WORD_QUANTITY:
            if (prefix + word).lower() in WORD_QUANTITY:
                prefix, word = "", prefix + word
            else:
                raise Unreadable(f"unknown unit {unit!r} in {value!r} (K, M, G = powers of 1000, then MACs, FLOPs or params)")
        if word:
            judged = WORD_QUANTITY[word.lower()]
            if judged == "activation_bytes":
                raise Unreadable(f"{value!r} is a size in bytes, but {NAMES[quantity]} is a count")
        scale = COUNT_UNITS.get(prefix.upper())
        assert scale is not None
        scales = [(scale, "")]
        unit = prefix
    for w in tail:
        if w in WORD_QUANTITY and WORD_QUANTITY[w] != "activation_bytes" and quantity != "activation_bytes":
            judged = WORD_QUANTITY[w]
        elif w in ELEMENT_WORDS and quantity == "activation_bytes":
            elements = True
        elif w not in WORD_QUANTITY and w not in ELEMENT_WORDS and w not in SHAPE_WORDS:
            raise Unreadable(f"unknown word {w!r} after the value in {value!r}")
    rounded = (bool(unit) or approx or exponent != 0) and not grouped
    out = []
    for scale, reading in scales:
        claimed = Fraction(digits) * Fraction(10) ** exponent * scale
        step = _significant_step(digits, exponent, rounded) * scale
        what = " activations (elements)" if elements else ""
        if step <= 1 and claimed.denominator == 1:
            how = "exact" + (f", as {what.strip()}" if elements else "")
            out.append(Reading(claimed, Fraction(0), how if not reading else f"{how}, {reading}", judged, elements, approx))
            continue
        lo, hi = claimed - step / 2, claimed + step / 2
        sp = " " if quantity == "activation_bytes" and not elements else ""
        if exponent:
            precision = f"written to {fraction_text(step)}{what}: [{fraction_text(lo)}, {fraction_text(hi)})"
        else:
            lo_text, hi_text = fraction_text(lo / scale), fraction_text(hi / scale)
            precision = f"written to {fraction_text(step / scale)}{sp}{unit}{what}: [{lo_text}{sp}{unit}, {hi_text}{sp}{unit})"
        out.append(Reading(claimed, step / 2, f"{precision}, {reading}" if reading else precision, judged, elements, approx))
    return out


def _arithmetic(text: str) -> Fraction | None:
    """A value written as arithmetic on numbers (11*11*3*64+64), exactly; None if it is not that."""
    if not re.fullmatch(r"[0-9\s+\-*/().,x\u00d7]+", text) or not re.search(r"[+\-*/x\u00d7]", text):
        return None
    try:
        v = _formula(text, numbers_only=True)
    except Unreadable:
        return None
    return v if isinstance(v, Fraction) else None


def _formula(text: str, numbers_only: bool = False) -> Any:
    """A claimed formula or arithmetic: ``27C^2``, ``27C²``, ``11*11*3*64+64``, ``(H+1)//2``.

    Read with a whitelist over Python's ast (names, integers, decimals read exactly (1.5 = 3/2),
    + - * / // **, parentheses), never
    eval; exponents must be small integer constants and their nesting is bounded (MAX_POWER), and
    integers are bounded before multiplying, so no claim builds a huge number."""
    t = text.strip().replace("^", "**").replace("\u00b2", "**2").replace("\u00b3", "**3").replace("\u00d7", "*").replace("\u00b7", "*")
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)  # 802,816 inside a formula
    # a decimal is its exact fraction, as written (a stride of 1.5 is 3/2, never a float)
    t = re.sub(r"(?<![\w.])(\d+)\.(\d+)(?![\w.])", lambda m: f"({int(m.group(1) + m.group(2))}/{10 ** len(m.group(2))})", t)
    t = re.sub(r"(\d)\s*([A-Za-z_(])", r"\1*\2", t)  # 27C -> 27*C, 2(H+1) -> 2*(H+1)
    t = re.sub(r"\)\s*([A-Za-z_(\d])", r")*\1", t)  # (H+1)(W+1)
    if numbers_only:
        t = re.sub(r"(?<=[\d)\s])x(?=[\s\d(])", "*", t)
    try:
        tree = ast.parse(t, mode="eval").body
    except SyntaxError:
        raise Unreadable(f"{text!r} is not a number or a formula of names, integers, + - * / // ** and ( )") from None
    from .dims import symbol

    def power_depth(node: ast.AST) -> int:
        """The largest product of exponents along any path: (C**8)**8 -> 64."""
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and isinstance(node.right, ast.Constant):
            return int(node.right.value) * power_depth(node.left)  # type: ignore[arg-type]  # an int: checked by the walk
        return max((power_depth(c) for c in ast.iter_child_nodes(node)), default=1)

    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            if not (isinstance(node.right, ast.Constant) and type(node.right.value) is int and 0 <= node.right.value <= 8):
                raise Unreadable(f"{text!r}: an exponent must be a small integer (0 to 8)")
        elif isinstance(node, ast.Constant):
            if type(node.value) is not int:
                raise Unreadable(f"{text!r}: only integers")
        elif isinstance(node, ast.Name):
            if numbers_only or node.id.startswith("_"):
                raise Unreadable(f"{text!r}: a name where a number was expected")
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            fn = CLAIM_FUNCTIONS.get(name or "")
            if numbers_only or fn is None or node.keywords or not fn.arity[0] <= len(node.args) <= fn.arity[1]:
                said = f"{name}(...)" if name else "a call"
                raise Unreadable(f"{text!r} uses {said}; the functions a claim may use are those archcalc writes: "
                                 "floor(x), ceiling(x), Max(a, b, ...), Min(a, b, ...), Mod(a, n)")
        elif not isinstance(node, (ast.BinOp, ast.UnaryOp, ast.USub, ast.UAdd, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Pow, ast.Load)):
            raise Unreadable(f"{text!r} uses {type(node).__name__}; only names, integers, + - * / // ** and ( ) are allowed")
    if power_depth(tree) > MAX_POWER:
        raise Unreadable(f"{text!r}: powers nested past an exponent of {MAX_POWER}")
    limit = 4 * MAX_VALUE_LEN * 4  # bits: far past any count, far below a slow integer

    def bounded(v: Any) -> Any:
        if isinstance(v, Fraction) and max(abs(v.numerator).bit_length(), v.denominator.bit_length()) > limit:
            raise Unreadable(f"{text!r} is too large a number")
        return v

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return bounded(Fraction(node.value))  # type: ignore[arg-type]  # an int: checked by the walk
        if isinstance(node, ast.Name):
            return symbol(node.id)
        if isinstance(node, ast.UnaryOp):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.Call):
            return _call(node.func.id, [ev(a) for a in node.args], text)  # type: ignore[attr-defined]  # a Name: checked by the walk
        assert isinstance(node, ast.BinOp)
        a, b = ev(node.left), ev(node.right)
        if isinstance(node.op, ast.Pow):
            if isinstance(a, Fraction) and max(abs(a.numerator).bit_length(), a.denominator.bit_length()) * int(b) > limit:
                raise Unreadable(f"{text!r} is too large a number")
            return a ** int(b)
        if isinstance(a, Fraction) and isinstance(b, Fraction):
            if isinstance(node.op, ast.Add):
                return bounded(a + b)
            if isinstance(node.op, ast.Sub):
                return bounded(a - b)
            if isinstance(node.op, ast.Mult):
                return bounded(a * b)
            if b == 0:
                raise Unreadable(f"division by zero in {text!r}")
            return bounded(a / b) if isinstance(node.op, ast.Div) else Fraction(a // b)
        import sympy

        a, b = (sympy.Rational(x.numerator, x.denominator) if isinstance(x, Fraction) else x for x in (a, b))
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if b == 0:
            raise Unreadable(f"division by zero in {text!r}")
        return a / b if isinstance(node.op, ast.Div) else sympy.floor(a / b)

    return ev(tree)


def _call(name: str, args: list[Any], text: str) -> Any:
    """``name(*args)`` of :data:`CLAIM_FUNCTIONS`: its exact value on numbers (Fractions), sympy's function on formulas."""
    fn = CLAIM_FUNCTIONS[name]
    if fn.sympy_name == "Mod" and args[1] == 0:
        raise Unreadable(f"division by zero in {text!r}")
    if all(isinstance(a, Fraction) for a in args):
        return fn.exact(*args)
    import sympy

    values = [sympy.Rational(a.numerator, a.denominator) if isinstance(a, Fraction) else a for a in args]
    return getattr(sympy, fn.sympy_name)(*values)


def _shape_text(dims: Any) -> str:
    from .render import _shape

    return _shape(tuple(dims))


# ----- judging --------------------------------------------------------------------------------------

Alternatives = Callable[[str], "Report | None"]  # a report of the same network under another reading ('torch', 'v1')


def judge(rep: Report, claim: Claim, derive: Any = None, alternatives: Alternatives | None = None) -> Verdict:
    """Compare one claim with the report; ``derive(layer, quantity)`` gives the derivation text,
    ``alternatives(kind)`` another report to diagnose a wrong figure ('torch' or 'lecture': the other
    convention; 'v1': the paper's ResNet v1)."""
    try:
        rows, target_how = _rows(rep, claim.target, claim.quantity)
        verdict = _judge(rep, claim, rows, derive)
    except Unjudgeable as e:
        v = unreadable(claim.text, str(e), claim)
        v.unjudged = True
        return v
    except Unreadable as e:
        return unreadable(claim.text, str(e), claim)
    if target_how:
        verdict.why = f"{target_how}; {verdict.why}"
    if len(rows) == 1 and rows[0].note and rows[0].note != IN_PLACE_NOTE:
        verdict.note = rows[0].note
    judged_as_a_number = claim.quantity not in ("output_shape", "receptive_field", "effective_stride")
    if not verdict.correct and not verdict.unproven and claim.op == "=" and judged_as_a_number:
        verdict.hint = _diagnose(rep, claim, rows, alternatives)
    return verdict


def unreadable(text: str, why: str, claim: Claim | None = None) -> Verdict:
    return Verdict(claim, False, None, "", why, "", unreadable=True, text=text)


def _judge(rep: Report, claim: Claim, rows: list[Row], derive: Any) -> Verdict:
    if claim.quantity in ("output_shape", "receptive_field", "effective_stride"):
        return _judge_shape(claim, rows[0], derive, rep)
    values = [getattr(r, claim.quantity) * r.repeat for r in rows]  # a row of a block repeated l times counts l times
    exact = simplify(sum(values, start=0))
    if len(rows) > 1 and any(claim.target in r.scope for r in rows):  # a block: by its copies, as explain sums it
        from .grouping import parts_text

        deriv = parts_text(rows, claim.target, claim.quantity)
    else:
        deriv = _sum_text(rows, claim.quantity) if len(rows) > 1 else (derive(rows[0].name, claim.quantity) if derive else "")
    if is_symbolic(exact):
        return _judge_formula(claim, exact, deriv, rep)
    readings = _read_count(claim.value, claim.quantity, rep)
    judged = readings[0].quantity
    if judged != claim.quantity:  # "73 MFLOPs" for conv1.macs: judged as the FLOP count, and said so
        exact = simplify(sum((getattr(r, judged) * r.repeat for r in rows), start=0))
    nbytes = _dtype_bytes(rep)
    fmt = units.size if judged == "activation_bytes" else units.count
    unit = " B" if judged == "activation_bytes" else ""  # 802,816 B (784 KiB)
    exact_text = f"{int(exact):,}{unit}" + ("" if fmt(exact) in (f"{int(exact):,}", f"{int(exact):,} B") else f" ({fmt(exact)})")
    if claim.op != "=":
        bound = budget_reading(readings)
        have = Fraction(int(exact)) / (nbytes if bound.elements else 1)
        ok = {"<=": have <= bound.value, "<": have < bound.value, ">=": have >= bound.value, ">": have > bound.value}[claim.op]
        if len(readings) > 1:  # kB/MB/GB: read both ways, as an equality claim is; a verdict only where both readings agree
            binary = readings[0].value
            ok_binary = {"<=": have <= binary, "<": have < binary, ">=": have >= binary, ">": have > binary}[claim.op]
            if ok_binary != ok:
                holds = "holds" if ok_binary else "fails"
                raise Unjudgeable(
                    f"{int(exact):,} B against {claim.value.strip()}: the budget {holds} with 1024-based units (the lecture notes' "
                    f"KB = 1024 B: {fraction_text(binary)} B) and {'fails' if ok_binary else 'holds'} with powers of 1000 "
                    f"({fraction_text(bound.value)} B); "
                    "write KiB, MiB or GiB (1024-based) or the bytes, to say which"
                )
        ratio = have / bound.value if bound.value else None
        share = "" if ratio is None else (f"{float(ratio) * 100:.0f}% of it" if ratio <= 1 else f"{_times(ratio)} times it")
        unit_how = bound.how.rpartition(", read as ")[2] if ", read as " in bound.how else ""  # 1 GB = 1000³ B
        why = f"budget {claim.op} {fraction_text(bound.value)}{' activations' if bound.elements else ''}" + (f" ({unit_how})" if unit_how else "")
        why += f": {share}" if share else ""
        if len(readings) > 1:
            why += f"; {'within' if ok else 'over'} {fraction_text(readings[0].value)} with 1024-based units too"
        return Verdict(claim, ok, exact, exact_text, why, deriv)
    matching = []
    for r in readings:
        have = Fraction(int(exact)) / (nbytes if r.elements else 1) if r.elements else Fraction(int(exact))
        if abs(have - r.value) <= r.tolerance:
            matching.append(r)
    ok = bool(matching)
    r0 = (matching or readings)[0]
    why = r0.how
    if r0.elements:
        elems = Fraction(int(exact)) / nbytes
        why += f"; {fraction_text(elems)} elements = {int(exact):,} B / {nbytes} B per {rep.dtype} value"
    if judged != claim.quantity:
        why = f"the unit names {NAMES[judged]}: judged as {NAMES[judged]}, not {NAMES[claim.quantity]}; {why}"
        if ok:
            ok = False  # the figure is right for the quantity it names, not for the one claimed
            why += f" (right as {NAMES[judged]}; the claim is about {NAMES[claim.quantity]})"
    if r0.approx:
        why += "; 'about' judged at the precision written"
    return Verdict(claim, ok, exact, exact_text, why, deriv)


def _times(ratio: Fraction) -> str:
    """A ratio above 1 to three significant digits, more where those would print 1 (1.0035 -> 1.0035)."""
    for digits in range(3, 12):
        text = f"{float(ratio):.{digits}g}"
        if text != "1":
            return text
    return f"{float(ratio):.12g}"


def budget_reading(readings: list[Reading]) -> Reading:
    """The reading of a budget's bound it is judged by: kB, MB and GB as powers of 1000 (as ``fit --memory``
    and the SI reading of an equality claim take them; the budget is judged only where the 1024-based
    reading, listed first, gives the same verdict), KB/KiB/MiB/GiB as powers of 1024; an exact Fraction."""
    return readings[-1]  # (_read_count lists the SI reading of kB/MB/GB last)


def _dtype_bytes(rep: Report) -> int:
    from .conventions import dtype_bytes

    return dtype_bytes(rep.dtype) * (int(rep.batch) if not is_symbolic(rep.batch) else 1)


def spec_symbols(rep: Report) -> set[str]:
    """The names of the symbols the network has (its input's, its sizes', its repeat counts')."""
    names: set[str] = set()
    values: list[Any] = [*rep.input_shape, rep.batch, *rep.repeats.values()]
    for r in rep.rows:
        values += [*r.output_shape, r.params, r.macs, r.flops, r.activation_bytes, *r.receptive_field, *r.effective_stride, r.repeat]
    for v in values:
        names.update(str(x) for x in getattr(v, "free_symbols", ()))
    return names


_SUFFIXED = re.compile(r"(?<![A-Za-z_\d.])(\d+(?:\.\d+)?)([KMGT])(?![A-Za-z_\d])")


def claim_formula(text: str, rep: Report) -> Any:
    """A claimed formula read with the spec's symbols only: ``1K`` is 1,000 (a number with a K, M, G
    or T suffix is a number), and a name the network does not have is refused, named."""

    def number(m: re.Match[str]) -> str:
        v = Fraction(m.group(1)) * COUNT_UNITS[m.group(2)]
        return f"({v.numerator}/{v.denominator})" if v.denominator != 1 else f"({v.numerator})"

    t = _SUFFIXED.sub(number, text)
    v = _formula(t)
    known = spec_symbols(rep)
    unknown = sorted(str(x) for x in getattr(v, "free_symbols", ()) if str(x) not in known)
    if unknown:
        have = ", ".join(sorted(known)) or "none"
        raise Unreadable(f"unknown symbol {', '.join(map(repr, unknown))} in {text!r}; {rep.name} has the symbols {have}")
    return v


def _judge_formula(claim: Claim, exact: Any, deriv: str, rep: Report) -> Verdict:
    if claim.op != "=":
        what = NAMES[claim.quantity]
        within = _budget_range(claim, exact)
        formula = human_text(expand(exact))
        raise Unjudgeable(f"a budget ({claim.op}) needs numbers; {what} here is a formula, {formula}{within}: give the symbols values with --set")
    text = claim.value.strip()
    if claim.quantity == "activation_bytes":
        text = re.sub(r"\s*(B|bytes)$", "", text)  # "4*C*H*W B": the formula counts bytes
    text = re.sub(r"\s+(params|parameters|MACs|FLOPs|weights)$", "", text, flags=re.I)
    v = claim_formula(text, rep)
    import sympy

    formula = sympy.Rational(v.numerator, v.denominator) if isinstance(v, Fraction) else v
    ok, why = same_formula(formula, exact, rep.assumes)
    return Verdict(claim, ok is True, exact, human_text(expand(exact)), why, deriv, unproven=ok is None)


def _budget_range(claim: Claim, exact: Any) -> str:
    """For a budget on a total in one symbol (a repeat count l, with the other sizes set): the values
    of that symbol for which it holds: ``872*l + 224 <= 1M`` for l up to 1,146; ``>= 1M`` for l from
    1,147 on (the total grows with l: one boundary, found by bisection); or ''."""
    import sympy

    symbols = list(getattr(exact, "free_symbols", ()))
    if len(symbols) != 1 or claim.op not in ("<=", "<", ">=", ">"):
        return ""
    try:
        bound = budget_reading(_read_count(claim.value, claim.quantity, Report("", (), "", "float32", 1, [])))
    except Unreadable:
        return ""
    if bound.elements or bound.quantity != claim.quantity:
        return ""
    x = symbols[0]
    poly = sympy.Poly(sympy.expand(exact), x) if sympy.expand(exact).is_polynomial(x) else None
    if poly is None or any(c < 0 or not c.is_Integer for c in poly.all_coeffs()):
        return ""  # (a non-decreasing polynomial in a positive integer only)
    value = exact_evaluator(exact)
    import operator

    holds = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}[claim.op]
    below = claim.op in ("<=", "<")  # an upper bound holds up to some n; a lower bound from some n on

    def within(n: int) -> bool:  # true for 1..last (an upper bound), false for 1..first-1 (a lower one)
        return bool(holds(value({x.name: n}), bound.value)) == below

    if not within(1):
        return f", over the budget already at {x} = 1" if below else f", true for every {x} (already at {x} = 1)"
    lo, hi = 1, 2
    while within(hi):
        lo, hi = hi, hi * 2
        if hi > 10**30:
            return ""
    while hi - lo > 1:  # the boundary lies in [lo, hi): lo is the last n where an upper bound holds, a lower one fails
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if within(mid) else (lo, mid)
    return f", within the budget for {x} up to {lo:,}" if below else f", true for {x} from {lo + 1:,} on"


def _masked(text: str, names: set[str]) -> str:
    """``text`` with what no shape separator can be in blanked out, character for character: every
    character inside parentheses or brackets (``Max(0, 3 - k)``'s comma), and each name that is one of
    the spec's symbols or a function a claim may call (the x of ``nx`` or ``Max`` is no 13x13 separator)."""
    out, depth = [], 0
    for ch in text:
        if ch in ")]":
            depth = max(depth - 1, 0)
        if ch in "([":
            depth += 1
        out.append(ch if depth == 0 or (depth == 1 and ch in "([") else "#")
    known = sorted({*names, *CLAIM_FUNCTIONS}, key=len, reverse=True)

    def word(m: re.Match[str]) -> str:
        w = m.group()
        if w in known:
            return "_" * len(w)
        kept, i = [], 0  # HxW, xMax: known names masked where they start, leftmost and longest first
        while i < len(w):
            hit = next((k for k in known if w.startswith(k, i)), None)
            kept.append("_" * len(hit) if hit else w[i])
            i += len(hit) if hit else 1
        return "".join(kept)

    return re.sub(r"[A-Za-z_]\w*", word, "".join(out))


def _split_at(text: str, masked: str, sep: str) -> list[str]:
    """``text`` split where ``sep`` matches its masked copy."""
    parts, start = [], 0
    for m in re.finditer(sep, masked):
        parts.append(text[start : m.start()])
        start = m.end()
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def _shape_parts(value: str, names: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """The sizes of a claimed shape: ``192x13x13``, ``(192, 13, 13)``, ``8*(H-4)*(W-4)``; ``names``: the
    spec's symbols, whose letters (an x in ``nx``) never split it, nor does anything in parentheses."""
    text = value.strip()
    words = text.split()
    while words and words[-1].lower().strip(".") in SHAPE_WORDS:  # 13x13 pixels, 7x7 RF
        words.pop()
    text = " ".join(words).strip()
    names = set(names)
    if text[:1] in "([" and text[-1:] in ")]" and re.fullmatch(r"[(\[]#*[)\]]", _masked(text, names)) and "," in _masked(text[1:-1], names):
        text = text[1:-1]  # (192, 13, 13); not (2*n+1)x(2*n+1), nor (k + Max(0, 3 - k))x(...)
    masked = _masked(text, names)
    if "," in masked:  # (4, H + 1, W): commas only, whatever the sizes hold
        return _split_at(text, masked, ",")
    if not re.search(r"[x\u00d7X,]", masked) and re.search(r"\S\s*[-+/]\s*\S", masked):
        return [text]  # 2*n+3 (or 2*2 + 1): one size written as arithmetic, not a shape split at '*' (8*(H-4)*(W-4) is)
    sep = r"[x\u00d7X,]+|\s+" if "*" not in masked or re.search(r"[x\u00d7,]", masked) else r"\*"
    # numbers only (13x13 even where a size is named x); not where a size named x1 or xx stands alone (review s10 §11: 4×x1×xx was 4, 1)
    if re.fullmatch(r"[\d\sx\u00d7X*,]+", text) and not any(w in names for w in re.findall(r"[A-Za-z_]\w*", text)):
        sep, masked = r"[x\u00d7X*,\s]+", text  # 13*13 is a shape, not a product (but (2*2+1)x(2*2+1) splits at x only); 13x13 of numbers
    return _split_at(text, masked, sep)


WHOLE_WORDS = {"whole", "whole input", "whole image", "the whole image", "the whole input", "entire image", "the entire image", "all"}


def _judge_shape(claim: Claim, row: Row, derive: Any, rep: Report) -> Verdict:
    if claim.quantity == "effective_stride" and row.stride_exact is not None and not row.whole_input and not row.rf_approximate:
        # outputs sit unevenly (an upsampled grid): judged against the exact average stride, 1/2, not the
        # value the table shows rounded up, 1 (review s7 #21)
        v = _judge_shape_of(claim, row, derive, rep, tuple(row.stride_exact))
        v.exact_text = f"{v.exact_text} on average (the table shows it rounded up, {_shape_text(row.effective_stride)})"
        return v
    return _judge_shape_of(claim, row, derive, rep)


def _judge_shape_of(claim: Claim, row: Row, derive: Any, rep: Report, exact: tuple[Any, ...] | None = None) -> Verdict:
    exact_shape = exact if exact is not None else tuple(simplify(d) for d in getattr(row, claim.quantity))
    if not exact_shape and claim.quantity in ("receptive_field", "effective_stride"):  # a token sequence: no windows to measure
        raise Unjudgeable(f"no {NAMES[claim.quantity]} (no spatial axes)")
    if row.rf_approximate and claim.quantity in ("receptive_field", "effective_stride"):  # the table flags it: no verdict it cannot back
        why = row.note or "see the table"
        raise Unjudgeable(f"{row.name}'s {NAMES[claim.quantity]} is only approximate here, so a claim about it cannot be decided: {why}")
    if claim.quantity == "receptive_field" and claim.value.strip().lower().rstrip(".") in WHOLE_WORDS:  # fc6.rf=whole image
        deriv = derive(row.name, claim.quantity) if derive else ""
        exact_text = ("the whole input, " if row.whole_input else "") + _shape_text(exact_shape)
        why = "every output sees the whole input" if row.whole_input else "its outputs see windows of the input, not all of it"
        if row.causal_field:
            why = "its last output sees the whole input; output i sees positions 0..i only (causal attention)"
        return Verdict(claim, row.whole_input, exact_shape, exact_text, why, deriv)
    parts = [p.strip() for p in _shape_parts(claim.value, spec_symbols(rep))]
    if not parts:
        raise Unreadable(f"a shape is written like 13x13 or 192x13x13, got {claim.value!r}")
    if len(parts) == 1 and len(exact_shape) > 1 and claim.quantity == "output_shape":
        return _judge_one_size(claim, parts[0], exact_shape, derive(row.name, claim.quantity) if derive else "", rep)
    last = "axis" if len(parts) == 1 else f"{len(parts)} axes"
    why = "compared every axis" if len(parts) >= len(exact_shape) else f"compared the last {last}"
    deriv = derive(row.name, claim.quantity) if derive else ""
    got = exact_shape[-len(parts) :] if len(parts) <= len(exact_shape) else exact_shape
    exact_text = _shape_text(exact_shape)
    if all(p.isdigit() for p in parts) and not any(is_symbolic(d) for d in got):
        want = tuple(int(p) for p in parts)
        if len(want) > len(exact_shape):
            return Verdict(claim, False, exact_shape, exact_text, f"{len(want)} axes claimed, the output has {len(exact_shape)}", deriv)
        if got == want:
            return Verdict(claim, True, exact_shape, exact_text, why, deriv)
        if claim.quantity == "output_shape" and len(want) == len(exact_shape) == 3 and want == (*exact_shape[1:], exact_shape[0]):
            c, h, w = exact_shape
            note = f"read in H\u00d7W\u00d7C order (channels last): torch writes C\u00d7H\u00d7W = {c}\u00d7{h}\u00d7{w}"
            return Verdict(claim, True, exact_shape, exact_text, note, deriv)
        return Verdict(claim, False, exact_shape, exact_text, why, deriv)
    want_f = []
    for p in parts:
        v = claim_formula(p, rep)
        want_f.append(v)
    if len(want_f) != len(got):
        return Verdict(claim, False, exact_shape, exact_text, f"{len(want_f)} axes claimed, the output has {len(got)}", deriv)
    wrong, unproven = _compare_axes(want_f, got, len(exact_shape) - len(got), rep)
    if wrong is not None and claim.quantity == "output_shape" and len(want_f) == len(exact_shape) == 3:
        # H×W×C (channels last), read as the numbers are (56x56x64): review s10 §11 judged HxWx4 WRONG where 56x56x64 is correct
        c, h, w = exact_shape
        last_wrong, last_unproven = _compare_axes(want_f, (h, w, c), 0, rep)
        note = f"read in H\u00d7W\u00d7C order (channels last): torch writes C\u00d7H\u00d7W = {_shape_text(exact_shape)}"
        if last_wrong is None and not last_unproven:
            return Verdict(claim, True, exact_shape, exact_text, f"{note}, compared as formulas", deriv)
        if last_wrong is None:
            return Verdict(claim, False, exact_shape, exact_text, f"{note}; " + "; ".join(last_unproven), deriv, unproven=True)
    if wrong is not None:
        return Verdict(claim, False, exact_shape, exact_text, f"{why}; {wrong}", deriv)
    if unproven:
        return Verdict(claim, False, exact_shape, exact_text, f"{why}; " + "; ".join(unproven), deriv, unproven=True)
    return Verdict(claim, True, exact_shape, exact_text, f"{why} as formulas", deriv)


def _compare_axes(want: list[Any], got: Sequence[Any], first: int, rep: Report) -> tuple[str | None, list[str]]:
    """Claimed sizes against the exact ones, axis by axis (axis numbers from ``first``): the first that differs
    (None where none does) and those only sampled."""
    import sympy

    unproven: list[str] = []
    for axis, (w0, g) in enumerate(zip(want, got, strict=True), start=first):
        w = sympy.Rational(w0.numerator, w0.denominator) if isinstance(w0, Fraction) else w0
        ok, how = same_formula(w, sympy.sympify(g), rep.assumes)
        if ok is False:
            return f"axis {axis} (exact {g}): {how}", unproven
        if ok is None:
            unproven.append(f"axis {axis} (exact {g}): {how}")
    return None, unproven


def _judge_one_size(claim: Claim, part: str, exact_shape: tuple[Any, ...], deriv: str, rep: Report) -> Verdict:
    """One size claimed for an output of several axes (review s7 #6).  A formula is compared with the
    axis written in the same symbols (``(H-1)//2+1`` with the output's H axis, not its last, W); a
    number with the last axis (``pool5.output=6`` for 256×6×6), and where it is another axis's size
    only (``conv1.output=64`` for 64×55×55), the claim is ambiguous: 'cannot judge', never WRONG."""
    import sympy

    from .dims import free_symbols

    exact_text = _shape_text(exact_shape)
    v = claim_formula(part, rep)
    w = sympy.Rational(v.numerator, v.denominator) if isinstance(v, Fraction) else v
    names = sorted(str(x) for x in getattr(w, "free_symbols", ()))
    letters = {2: "CxL", 3: "CxHxW", 4: "CxDxHxW"}.get(len(exact_shape), "AxBx...")
    whole = f"write the whole shape ({letters})" + (" or the last two axes (HxW)" if len(exact_shape) >= 3 else "")
    if names:
        said = " and ".join(names)
        axes = [i for i, d in enumerate(exact_shape) if free_symbols(d) == set(names)]
        if not axes:
            raise Unjudgeable(f"{part} is one size in {said}, and no axis of the output ({exact_text}) is a formula in {said} alone: {whole}")
        judged = [(i, *same_formula(w, sympy.sympify(exact_shape[i]), rep.assumes)) for i in axes]
        which = f"axis {axes[0]}" if len(axes) == 1 else "axes " + " and ".join(map(str, axes))
        where = f"one size in {said}: compared {which}, the {'one' if len(axes) == 1 else 'ones'} written in {said}"
        if all(ok is True for _, ok, _ in judged):
            return Verdict(claim, True, exact_shape, exact_text, f"{where}; {judged[0][2]}", deriv)
        if all(ok is False for _, ok, _ in judged):
            return Verdict(claim, False, exact_shape, exact_text, f"{where}; axis {judged[0][0]}: {judged[0][2]}", deriv)
        if all(ok is not False for _, ok, _ in judged):  # some only sampled
            how = next(h for _, ok, h in judged if ok is None)
            return Verdict(claim, False, exact_shape, exact_text, f"{where}; {how}", deriv, unproven=True)
        hit = [i for i, ok, _ in judged if ok]
        raise Unjudgeable(f"{part} is axis {hit[0]}'s size but not that of {which.replace('axes', 'every one of axes')}, all in {said}: {whole}")
    value = Fraction(int(w.p), int(w.q))
    same = [i for i, d in enumerate(exact_shape) if not is_symbolic(d) and Fraction(int(d)) == value]
    last = len(exact_shape) - 1
    if last in same or not same:
        why = "compared the last axis" + ("" if same else f"; no axis of the output is {fraction_text(value)}")
        return Verdict(claim, bool(same), exact_shape, exact_text, why, deriv)
    raise Unjudgeable(
        f"{part} is the size of axis {same[0]}{' (the channels)' if same[0] == 0 else ''}, not of the last axis, which one size is read as: {whole}"
    )


def _diagnose(rep: Report, claim: Claim, rows: list[Row], alternatives: Alternatives | None) -> str | None:
    """The known slip a wrong figure matches, if any (checked in this order, the first that fits)."""
    try:
        readings = _read_count(claim.value, claim.quantity, rep)
    except Unreadable:
        return None
    judged = readings[0].quantity

    def fits(value: Any, elements: bool | None = None) -> bool:
        value = simplify(value)
        if is_symbolic(value):
            return False
        v = Fraction(int(value))
        chosen = [r for r in readings if elements is None or r.elements == elements]
        return any(abs((v / _dtype_bytes(rep) if r.elements else v) - r.value) <= r.tolerance for r in chosen)

    def total(q: str) -> Any:
        return simplify(sum((getattr(r, q) * r.repeat for r in rows), start=0))

    if is_symbolic(total(judged)):  # a formula has no slips to match a figure against
        return None

    if judged == "macs" and fits(total("flops")):
        return "that is the FLOP count (2 \u00d7 MACs): one multiply-accumulate is two floating-point operations"
    if judged == "flops" and fits(total("macs")):
        return "that is the MAC count: FLOPs are 2 \u00d7 MACs (a multiply and an add)"
    if judged == "activation_bytes":
        nbytes = _dtype_bytes(rep)
        b = int(total("activation_bytes"))
        if nbytes > 1 and any(abs(Fraction(b, nbytes) - r.value) <= r.tolerance for r in readings if not r.elements):
            return f"that is the element count: in {rep.dtype} each value takes {nbytes} B (\u00d7{nbytes})"
        if any(r.elements for r in readings) and fits(b * nbytes, elements=True):
            return f"that is the size in bytes; as elements it is {b // nbytes:,}"
        if any(abs(Fraction(b) * 1024 / 1000 - r.value) <= r.tolerance for r in readings if not r.elements):
            kib = fraction_text(Fraction(b, 1024))
            return f"1 KB here is 1024 B (as the lecture notes write it): the figure divides by 1000 ({b:,} B / 1024 = {kib} KB)"
    if judged == "params":
        shapes = [shape for r in rows for k, shape in r.weights.items() if k == "bias" and not any(is_symbolic(d) for d in shape)]
        bias = sum(math.prod(int(d) for d in shape) for shape in shapes)
        if bias and fits(int(total("params")) - bias):
            return f"the weights alone: the bias ({bias:,}, one per output) is left out"
    if alternatives is not None:
        other = "torch" if rep.convention != "torch" else "lecture"
        for kind, say in (
            (other, f"that is the '{other}' convention's count; this check uses '{rep.convention}' (pass --convention {other})"),
            (
                "v1",
                "that is ResNet v1, the paper's network (stride 2 in the first 1\u00d71 conv); "
                "this spec is torchvision's v1.5 (stride in the 3\u00d73): check against specs/{stem}_v1.json",
            ),
        ):
            alt = alternatives(kind)
            if alt is None:
                continue
            try:
                alt_rows, _ = _rows(alt, claim.target, judged)
            except Unreadable:
                continue
            if fits(simplify(sum((getattr(r, judged) * r.repeat for r in alt_rows), start=0))):
                return say.replace("{stem}", alt.name.removesuffix("_v1") if kind == "v1" else "")
    return None


# ----- output ---------------------------------------------------------------------------------------


def _sum_text(rows: list[Row], quantity: str) -> str:
    from .grouping import sum_text

    return sum_text(rows, quantity)  # (a repeated block's row counts l times: '× l')


def render_verdicts(verdicts: list[Verdict]) -> str:
    out = []
    for v in verdicts:
        if v.unreadable:
            out.append(f"{v.mark} {v.text}: {v.why}")
            continue
        assert v.claim is not None
        line = f"{v.mark:7s} {v.claim.text}: exact {v.exact_text}"
        if not v.correct and not v.unproven:
            line += f" (claimed {v.claim.value})" if v.claim.op == "=" else f" (budget {v.claim.op} {v.claim.value})"
        out.append(line + f"  [{v.why}]")
        if v.hint:
            out.append(f"        likely slip: {v.hint}")
        if v.derivation:
            out += ["        " + d for d in v.derivation.splitlines()]
        if v.note:
            out.append(f"        note: {v.note}")
    unproven = sum(v.unproven for v in verdicts)
    wrong = sum(not v.correct and not v.unreadable for v in verdicts) - unproven
    unjudged = sum(v.unjudged for v in verdicts)
    unread = sum(v.unreadable for v in verdicts) - unjudged
    out.append(
        f"{len(verdicts) - wrong - unread - unjudged - unproven} correct, {wrong} wrong"
        + (f", {unproven} not proven" if unproven else "")
        + (f", {unread} not read" if unread else "")
        + (f", {unjudged} not judged" if unjudged else "")
    )
    return "\n".join(out) + "\n"
