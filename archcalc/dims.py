"""Dimensions: plain ints on the numeric path, sympy expressions on the symbolic one.

Every formula in archcalc is written once with ordinary operators (``+ - * //``) and runs on
both kinds of value.  sympy is imported only when a symbol actually appears, so numeric analysis
never pays its import cost (about 0.5 s).

Symbolic strings from a spec (``"C"``, ``"2*planes"``, ``"H//2"``) are parsed here by a small
whitelist parser over Python's ``ast``: identifiers, non-negative integer literals, ``+ - * //``,
unary minus and parentheses.  Nothing is ever passed to ``eval`` or ``sympify``.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # pragma: no cover
    import sympy

Dim = Union[int, "sympy.Expr"]
"""A size or count: an exact int, or a sympy expression in positive-integer symbols."""

MAX_EXPR_LEN = 200
_ALLOWED_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv)


class DimError(ValueError):
    """A symbolic dimension string is not a valid expression."""


def _sympy() -> Any:
    import sympy

    return sympy


def symbol(name: str) -> Any:
    """The sympy symbol for a dimension name: integer and positive, so floors simplify."""
    return _sympy().Symbol(name, integer=True, positive=True)


def is_symbolic(value: object) -> bool:
    """True if ``value`` is a sympy object (checked without importing sympy)."""
    return type(value) is not int and type(value).__module__.startswith("sympy")


@functools.lru_cache(maxsize=4096)
def check_expr(text: str, allow_pow: bool = False) -> ast.expr:
    """Parse ``text`` and check it uses only the whitelisted grammar; return its AST."""
    if len(text) > MAX_EXPR_LEN:
        raise DimError(f"expression longer than {MAX_EXPR_LEN} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise DimError(f"{text!r} is not an expression of names, integers, + - * // and ( )") from None
    allowed = (*_ALLOWED_BINOPS, ast.Pow) if allow_pow else _ALLOWED_BINOPS
    for node in ast.walk(tree.body):
        ok = isinstance(
            node,
            (ast.BinOp, ast.UnaryOp, ast.Name, ast.Load, ast.USub, ast.UAdd, *allowed),
        ) or (isinstance(node, ast.Constant) and type(node.value) is int)
        if isinstance(node, ast.BinOp) and not isinstance(node.op, allowed):
            ok = False
        if allow_pow and isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            ok = isinstance(node.right, ast.Constant) and type(node.right.value) is int and 0 <= node.right.value <= 8
        if isinstance(node, ast.Name) and (node.id.startswith("_") or not node.id.isidentifier()):
            ok = False
        if not ok:
            what = type(node).__name__
            if isinstance(node, ast.BinOp):
                what = type(node.op).__name__
            raise DimError(f"{text!r} uses {what}; only names, integers, + - * // and ( ) are allowed")
    return tree.body


def names_in(text: str) -> set[str]:
    """The identifiers an expression string refers to."""
    return {n.id for n in ast.walk(check_expr(text)) if isinstance(n, ast.Name)}


def parse_dim(text: str, env: Mapping[str, Any] | None = None, allow_pow: bool = False) -> Dim:
    """Evaluate a whitelisted expression string.

    Names found in ``env`` take their bound value (int, sympy expression or bool); other names
    become positive-integer sympy symbols.  All-integer expressions stay Python ints.

    >>> parse_dim("2*planes", {"planes": 64})
    128
    >>> parse_dim("(7 - 1)//2")
    3
    """
    env = env or {}

    def ev(node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in env:
                return env[node.id]
            return symbol(node.id)
        if isinstance(node, ast.UnaryOp):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        assert isinstance(node, ast.BinOp)
        a, b = ev(node.left), ev(node.right)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(node.op, ast.Pow):  # only in claims (check), small constant exponents
            return a**b
        if b == 0:  # 0 or a symbolic expression that is identically 0 (C - C)
            raise DimError(f"division by zero in {text!r}")
        return a // b

    value = ev(check_expr(text, allow_pow))
    if is_symbolic(value) and value.has(*_non_finite()):
        raise DimError(f"{text!r} is not a finite size (division by zero?)")
    return value


def _non_finite() -> tuple[Any, ...]:
    sp = _sympy()
    return (sp.zoo, sp.nan, sp.oo, -sp.oo)


def ceildiv(a: Dim, b: Dim) -> Dim:
    """Ceiling division that is exact on ints and sympy expressions (written ceiling(...), not -floor(-...))."""
    if is_symbolic(a) or is_symbolic(b):
        return _sympy().ceiling(a / b)
    return -((-a) // b)


def prod(values: Iterable[Dim]) -> Dim:
    out: Dim = 1
    for v in values:
        out = out * v
    return out


def dmax(a: Dim, b: Dim) -> Dim:
    """max() on ints, sympy.Max when symbols are involved.

    When neither side is known to be larger it is ``a + Max(0, b - a)``, unevaluated: written
    ``Max(a, b)``, both sides carry what they share (a receptive field and that field grown by a
    branch), so each squeeze-and-excitation gate doubled the expression, and sympy's own Max
    simplification (pairwise comparisons, factoring) made it worse: a symbolic SE-ResNet-50 did
    not finish in minutes."""
    if is_symbolic(a) or is_symbolic(b):
        d = b - a
        sign = known_sign(d)
        if sign is not None:
            return b if sign > 0 else a
        return a + _sympy().Max(0, d, evaluate=False)
    return max(a, b)


def assume_multiples(multiples: Mapping[str, int]) -> Callable[[Dim], Dim]:
    """A rewrite of values that knows symbol ``name`` is a multiple of ``multiples[name]``: each
    floor(x) or ceiling(x) whose x is then an integer becomes x (floor(H/16) -> H/16 when H is a
    multiple of 16), so a ViT's cost reads as a polynomial in H and W.  Memoised per expression."""
    sp = _sympy()
    steps = {symbol(n): m * sp.Symbol(f"_{n}_over_{m}", integer=True, positive=True) for n, m in multiples.items()}
    memo: dict[Any, Any] = {}

    def exact(e: Any) -> bool:
        return isinstance(e, (sp.floor, sp.ceiling)) and e.args[0].xreplace(steps).is_integer is True

    def rewrite(value: Dim) -> Dim:
        if not is_symbolic(value) or not value.has(sp.floor, sp.ceiling):  # type: ignore[union-attr]
            return value
        got = memo.get(value)
        if got is None:
            got = value.replace(exact, lambda e: e.args[0])  # type: ignore[union-attr]
            got = memo[value] = sp.expand(got) if got != value else got  # a polynomial: (HW)^2 terms in sight
        return got

    return rewrite


def known_sign(value: Dim) -> int | None:
    """-1, 0 or 1 when the sign of ``value`` is decidable (always for ints), else None."""
    if not is_symbolic(value):
        return (value > 0) - (value < 0)
    if value.has(_sympy().Max):  # type: ignore[union-attr]  # (asking sympy re-evaluates every Max inside, without bound)
        return None
    if value.is_positive:  # type: ignore[union-attr]
        return 1
    if value.is_zero:  # type: ignore[union-attr]
        return 0
    if value.is_negative:  # type: ignore[union-attr]
        return -1
    return None


def simplify(value: Dim) -> Dim:
    """Return an int if a sympy value is a number, else the expression."""
    if type(value) is int or not is_symbolic(value):
        return value
    if value.is_Integer:  # type: ignore[union-attr]
        return int(value)
    return value


def to_json(value: Any) -> Any:
    """JSON form of a Dim: an int, or the sympy expression as a string ``sympify`` reads back."""
    value = simplify(value)
    if is_symbolic(value):
        return str(value)
    return value


def sympy_loaded() -> bool:
    return "sympy" in sys.modules


def free_symbols(value: Dim) -> set[str]:
    if not is_symbolic(value):
        return set()
    return {s.name for s in value.free_symbols}  # type: ignore[union-attr]


def as_int(value: Dim) -> int | None:
    value = simplify(value)
    return None if is_symbolic(value) else int(value)


__all__ = [
    "Dim",
    "DimError",
    "as_int",
    "assume_multiples",
    "ceildiv",
    "check_expr",
    "dmax",
    "free_symbols",
    "known_sign",
    "names_in",
    "parse_dim",
    "prod",
    "simplify",
    "symbol",
    "to_json",
]
