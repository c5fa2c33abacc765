"""Traced integers: run a layer's own formula and get back the arithmetic it performed.

``explain`` needs "W' = ⌊(227 + 2 + 2 − 11) / 4⌋ + 1 = 56", the lecture's worked form, for
exactly the formula archcalc uses.  Rather than writing each formula a second time as text,
the layer's methods run on :class:`Traced` values: ints that carry the expression text that
produced them.  The formula stays written once, in its layer class.
"""

from __future__ import annotations

import operator
from typing import Any

# precedence: higher binds tighter
_ATOM, _MUL, _ADD = 3, 2, 1
NAMED = 4
"""Precedence of a leaf that prints as a name (explain's formula order): an atom that is never
dropped as a 0 or a 1, so that every symbol of the formula shows where the code uses it."""
MUL_SIGN, MINUS_SIGN = "\u00b7", "\u2212"


class Traced:
    """An int together with the text of the arithmetic that produced it."""

    __slots__ = ("ceil_of", "neg_of", "prec", "text", "value")

    def __init__(self, value: int, text: str | None = None, prec: int = _ATOM) -> None:
        self.value = value
        self.text = f"{value}" if text is None else text
        self.prec = prec
        self.neg_of: Traced | None = None  # set on -x: lets -((-a) // b), i.e. ceil(a / b), print as such
        self.ceil_of: tuple[Traced, Traced] | None = None

    # -- building text ---------------------------------------------------------------------------
    @staticmethod
    def _wrap(x: Any) -> Traced:
        if isinstance(x, Traced):
            return x
        if isinstance(x, bool) or not isinstance(x, int):
            raise TypeError(f"cannot trace {type(x).__name__}")
        return Traced(x, str(x) if x >= 0 else f"({MINUS_SIGN}{-x})")

    @staticmethod
    def _par(t: Traced, need: int) -> str:
        return f"({t.text})" if t.prec < need else t.text

    def _bin(self, other: Any, op: str, swap: bool = False) -> Any:
        """A Traced result; with a symbol on the other side (a symbolic input size or batch), the
        plain sympy result: that line of the derivation then shows the general result."""
        if not isinstance(other, (Traced, int)) or isinstance(other, bool):  # a symbol: plain arithmetic, no text
            a_, b_ = (other, self.value) if swap else (self.value, other)
            return {"+": operator.add, "-": operator.sub, "*": operator.mul, "//": operator.floordiv}[op](a_, b_)
        a, b = (self._wrap(other), self) if swap else (self, self._wrap(other))
        if op == "+":
            if b.value == 0 and b.prec == _ATOM:
                return a
            if a.value == 0 and a.prec == _ATOM:
                return b
            return Traced(a.value + b.value, f"{a.text} + {b.text}", _ADD)  # a + (b ± c) reads the same unbracketed
        if op == "-":
            if b.value == 0 and b.prec == _ATOM:
                return a
            return Traced(a.value - b.value, f"{a.text} {MINUS_SIGN} {self._par(b, _ADD + 1)}", _ADD)
        if op == "*":
            if (a.value == 0 and a.prec == _ATOM) or (b.value == 0 and b.prec == _ATOM):
                return Traced(0)  # a zero term (padding 0): nothing to show, and + 0 / - 0 then vanish
            if b.value == 1 and b.prec == _ATOM:
                return a
            if a.value == 1 and a.prec == _ATOM:
                return b
            return Traced(a.value * b.value, f"{self._par(a, _MUL)}{MUL_SIGN}{self._par(b, _MUL + 1)}", _MUL)
        if op == "//":
            if b.value == 1 and b.prec == _ATOM:
                return a
            # ⌊a / b⌋ as the lecture notes write it (and as the formula above it reads: floor(.../S)),
            # not Python's a // b; the brackets delimit it, so it needs no parentheses around it
            out = Traced(a.value // b.value, f"\u230a{self._par(a, _MUL)} / {self._par(b, _MUL + 1)}\u230b", _ATOM)
            if a.neg_of is not None:
                out.ceil_of = (a.neg_of, b)
            return out
        raise AssertionError(op)

    def __add__(self, o: Any) -> Any:
        return self._bin(o, "+")

    def __radd__(self, o: Any) -> Any:
        return self._bin(o, "+", swap=True)

    def __sub__(self, o: Any) -> Any:
        return self._bin(o, "-")

    def __rsub__(self, o: Any) -> Any:
        return self._bin(o, "-", swap=True)

    def __mul__(self, o: Any) -> Any:
        return self._bin(o, "*")

    def __rmul__(self, o: Any) -> Any:
        return self._bin(o, "*", swap=True)

    def __floordiv__(self, o: Any) -> Any:
        return self._bin(o, "//")

    def __rfloordiv__(self, o: Any) -> Any:
        return self._bin(o, "//", swap=True)

    def __neg__(self) -> Traced:
        if self.ceil_of is not None:  # -((-a) // b) is ceil(a / b)
            a, b = self.ceil_of
            return Traced(-self.value, f"\u2308{self._par(a, _MUL)} / {self._par(b, _MUL + 1)}\u2309")
        if self.neg_of is not None:  # -(-x) is x: a ceiling by a stride of 1 (whose // 1 drops out) read -(-(15 + 2 - 2))
            return self.neg_of
        out = Traced(-self.value, f"{MINUS_SIGN}{self._par(self, _MUL + 1)}", _MUL)
        out.neg_of = self
        return out

    # -- behaving like an int where formulas compare or convert -------------------------------------
    def __int__(self) -> int:
        return self.value

    __index__ = __int__

    def __eq__(self, o: object) -> bool:
        return self.value == (o.value if isinstance(o, Traced) else o)

    def __hash__(self) -> int:
        return hash(self.value)

    def __lt__(self, o: Any) -> Any:
        return self.value < untrace(o)

    def __le__(self, o: Any) -> Any:
        return self.value <= untrace(o)

    def __gt__(self, o: Any) -> Any:
        return self.value > untrace(o)

    def __ge__(self, o: Any) -> Any:
        return self.value >= untrace(o)

    def __mod__(self, o: Any) -> int:
        return self.value % int(o)

    def __rmod__(self, o: Any) -> int:
        return int(o) % self.value

    def _sympy_(self) -> Any:  # sympy's conversion hook: a symbol meeting a traced int takes its value
        import sympy

        return sympy.Integer(self.value)

    def __repr__(self) -> str:
        return f"Traced({self.value}, {self.text!r})"

    def __str__(self) -> str:
        return str(self.value)


def leaf(value: int) -> Traced:
    return Traced(int(value))


def untrace(x: Any) -> Any:
    """Plain values back from (nested) traced results."""
    if isinstance(x, Traced):
        return x.value
    if isinstance(x, tuple):
        return tuple(untrace(v) for v in x)
    if isinstance(x, list):
        return [untrace(v) for v in x]
    if isinstance(x, dict):
        return {k: untrace(v) for k, v in x.items()}
    return x


def text(x: Any) -> str:
    return x.text if isinstance(x, Traced) else str(x)
