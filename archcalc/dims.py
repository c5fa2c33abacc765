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
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Any, NamedTuple, Union

if TYPE_CHECKING:  # pragma: no cover
    import sympy

Dim = Union[int, "sympy.Expr"]
"""A size or count: an exact int, or a sympy expression in positive-integer symbols."""

MAX_EXPR_LEN = 200
MAX_DIGITS = 100
"""The most decimal digits of any integer archcalc reads (a size in a spec, an integer in an
expression, ``--set``, ``--input``, ``--batch``) and of any dimension it evaluates (a block
parameter ``p1 = p0*p0``): a dimension of 10^100 describes no network, and refusing it keeps every
count a product of a few bounded factors, so that reading and printing stay fast (CPython's
int <-> str conversion is quadratic in the digits)."""
DIM_LIMIT = 10**MAX_DIGITS  # every dimension is below this
_ALLOWED_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv)


class DimError(ValueError):
    """A symbolic dimension string is not a valid expression."""


def too_big(value: int) -> bool:
    """True when an integer has more than :data:`MAX_DIGITS` digits (checked without printing it)."""
    return not -DIM_LIMIT < value < DIM_LIMIT


def size_error(value: Any) -> str:
    """The message for a dimension past the limit (its digit count, never the digits)."""
    if type(value) is int:
        return f"a size of about 10^{len(str(abs(value) // 10**MAX_DIGITS)) + MAX_DIGITS - 1} is past archcalc's limit of {MAX_DIGITS} digits"
    return f"a size expression with a number past archcalc's limit of {MAX_DIGITS} digits"


def check_size(value: Any) -> Any:
    """Raise :class:`DimError` when ``value`` (an int or a sympy expression) holds a number of more
    than :data:`MAX_DIGITS` digits (a coefficient, or an exponent: ``X**(2**400)``)."""
    if type(value) is int:
        if too_big(value):
            raise DimError(size_error(value))
    elif is_symbolic(value):
        sp = _sympy()
        if any(too_big(int(a)) for a in value.atoms(sp.Integer)):
            raise DimError(size_error(value))
    return value


def parse_int_text(text: str, what: str = "integer") -> int:
    """An ASCII decimal integer from user text, at most :data:`MAX_DIGITS` digits (``int()`` alone
    reads '٣' and, beyond the digits limit, takes quadratic time)."""
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit()):
        raise DimError(f"{what} {_shown(text)} is not a whole number written with the digits 0-9")
    if len(digits.lstrip("0")) > MAX_DIGITS:
        raise DimError(f"{what} has {len(digits)} digits; archcalc reads at most {MAX_DIGITS}")
    return int(digits)


def _shown(text: str, limit: int = 40) -> str:
    """A piece of user text for a message: escaped (repr), and cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


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
        if ok and isinstance(node, ast.Constant) and type(node.value) is int and too_big(node.value):
            raise DimError(f"an integer in {_shown(text)} has more than {MAX_DIGITS} digits")
        if isinstance(node, ast.BinOp) and not isinstance(node.op, allowed):
            ok = False
        if allow_pow and isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            ok = isinstance(node.right, ast.Constant) and type(node.right.value) is int and 0 <= node.right.value <= 8
        if isinstance(node, ast.Name) and (node.id.startswith("_") or not node.id.isidentifier() or node.id in RESERVED_NAMES):
            ok = False
        if not ok:
            grammar = _GRAMMAR_POW if allow_pow else _GRAMMAR
            number = _not_whole(text.strip(), tree.body, node)
            if number is not None:  # 1e3, 32.0, 2.5, 1,000: the user's own text, and what to write instead
                raise DimError(f"{number}; {grammar}")
            raise DimError(f"{_shown(text)} uses {_describe(node, allow_pow)}; {grammar}")
    return tree.body


def _not_whole(source: str, body: ast.expr, node: ast.AST) -> str | None:
    """What to say of a number that is not written as a whole number (``1e3``, ``32.0``, ``2.5``,
    ``1,000``), quoting the text as written (not Python's reading of it, 1000.0), or None."""
    written = ast.get_source_segment(source, node) or source
    whole = None
    if isinstance(node, ast.Constant) and type(node.value) is float:
        if node.value.is_integer() and abs(node.value) < 10**MAX_DIGITS:
            whole = f"{int(node.value)}"
    elif isinstance(node, ast.Tuple) and node is body and all(isinstance(e, ast.Constant) and type(e.value) is int for e in node.elts):
        parts = source.replace(" ", "").split(",")  # 1,000 or 16,781,312: digit groups
        if len(parts) > 1 and all(p.isdigit() for p in parts) and all(len(p) == 3 for p in parts[1:]) and 1 <= len(parts[0]) <= 3:
            return f"{_shown(source)} has ',' in it: write the size without digit groups, {''.join(parts)}"
        return None
    else:
        return None
    shown = _shown(written)
    if written == source:
        return f"{shown} is not a whole number written with the digits 0-9" + (f" (write {whole})" if whole else "")
    return f"{_shown(source)} uses {shown}, which is not a whole number written with the digits 0-9" + (f" (write {whole})" if whole else "")


_GRAMMAR = "a size expression may hold only names (letters, digits and _, not starting with _), whole numbers, + - * // and ( )"
_GRAMMAR_POW = _GRAMMAR.replace("( )", "( ), and ** with an exponent from 0 to 8")
_OPERATORS = {ast.Div: "'/' (write // for whole-number division)", ast.Pow: "'**'", ast.Mod: "'%'", ast.MatMult: "'@'"}


class FormulaFunction(NamedTuple):
    """A function archcalc's formulas call: sympy's name for it, its numbers of arguments (fewest, most), and its
    exact value on numbers (Fractions; ZeroDivisionError where it has none)."""

    sympy_name: str
    arity: tuple[int, int]
    exact: Callable[..., Fraction]


def _mod(a: Fraction, n: Fraction) -> Fraction:
    """sympy's ``Mod(a, n)``: the remainder with the sign of n."""
    return a - n * math.floor(a / n)


_FLOOR = FormulaFunction("floor", (1, 1), lambda x: Fraction(math.floor(x)))
_CEILING = FormulaFunction("ceiling", (1, 1), lambda x: Fraction(math.ceil(x)))
_MAX = FormulaFunction("Max", (2, 16), lambda *xs: max(xs))
_MIN = FormulaFunction("Min", (2, 16), lambda *xs: min(xs))

CLAIM_FUNCTIONS: dict[str, FormulaFunction] = {
    "floor": _FLOOR, "ceiling": _CEILING, "ceil": _CEILING, "Max": _MAX, "max": _MAX, "Min": _MIN, "min": _MIN,
    "Mod": FormulaFunction("Mod", (2, 2), _mod),
}
"""The functions a claimed formula may call (``archcalc check``): those archcalc writes in its formulas
(``k + Max(0, 3 - k)``, ``floor(H/2)``), so that a formula copied from its output reads back (review s9 #9), and
the spellings ceil, max and min.  Their ``exact`` values are the ones every exact evaluation uses (check's
numbers, :func:`archcalc.decide.exact_evaluator`)."""

RESERVED_NAMES = frozenset({*CLAIM_FUNCTIONS, "Piecewise", "Eq", "Abs"})
"""Names no size may have: the functions a claim may call (a size named ``max`` would make ``max(k, 3)`` unreadable),
and every function archcalc writes in its formulas (``324*floor(H/2 - 3/2) + 324``: a size named so could not be read
back, as sympify with the report's symbols as locals makes ``floor`` a symbol, then calls it; review s9 #10)."""


def _describe(node: ast.AST, allow_pow: bool) -> str:
    """What a disallowed piece of an expression is, in the words a spec writer uses."""
    if isinstance(node, ast.Name) and node.id in RESERVED_NAMES:
        return (f"the name {node.id!r}, which archcalc's formulas use as a function, or a claim may call "
                f"({', '.join(sorted(RESERVED_NAMES, key=lambda n: (n.lower(), n)))}): name the size otherwise")
    if isinstance(node, ast.BinOp):
        op = _OPERATORS.get(type(node.op))
        if isinstance(node.op, ast.Pow) and allow_pow:
            return f"{op} with an exponent other than a whole number from 0 to 8"
        return op or "an operator other than + - * //"
    if isinstance(node, ast.Name):
        return f"the name {node.id!r}, which starts with '_'"
    if isinstance(node, ast.Constant):
        return f"the constant {repr(node.value)[:20]}, which is not a whole number"
    if isinstance(node, ast.Attribute):
        return "'.' (attribute access)"
    if isinstance(node, ast.Call):
        return "a function call"
    if isinstance(node, ast.Subscript):
        return "'[ ]' (indexing)"
    if isinstance(node, ast.Tuple):
        return "',' (one size is expected here, not a list)"
    return f"a {type(node).__name__} construct"


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
            return check_size(a * b) if type(a) is int and type(b) is int else a * b
        if isinstance(node.op, ast.Pow):  # only in claims (check), small constant exponents
            if type(a) is int and abs(a) > 1 and b * (a.bit_length() - 1) > 3.33 * MAX_DIGITS:  # nested: ((9**8)**8)**8...
                raise DimError(f"{_shown(text)} is past archcalc's limit of {MAX_DIGITS} digits")
            return a**b
        if b == 0:  # 0 or a symbolic expression that is identically 0 (C - C)
            raise DimError(f"division by zero in {text!r}")
        return a // b

    value = ev(check_expr(text, allow_pow))
    if is_symbolic(value) and value.has(*_non_finite()):
        raise DimError(f"{text!r} is not a finite size (division by zero?)")
    return check_size(value)


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


def provably_positive(value: Dim) -> bool:
    """True when ``value`` is at least 1 for every value of its symbols (positive integers):
    ``B`` and ``2*B`` are, ``B - 1`` (0 at B = 1) and ``0 - B`` are not."""
    if not is_symbolic(value):
        return type(value) is int and value >= 1
    return bool((value - 1).is_nonnegative)  # type: ignore[union-attr]


def simplify(value: Dim) -> Dim:
    """Return an int if a sympy value is a number, else the expression."""
    if type(value) is int or not is_symbolic(value):
        return value
    if value.is_Integer:  # type: ignore[union-attr]
        return int(value)
    return value


def expand(value: Dim) -> Dim:
    """A sum of products multiplied out into a polynomial (l*(12*h**2 + 2*s*h) -> 12*h**2*l + 2*h*l*s), an int if it is a number."""
    value = simplify(value)
    if not is_symbolic(value):
        return value
    return simplify(value.expand())  # type: ignore[union-attr]


# The transformer symbols (DESIGN: s sequence, h hidden, l layers, a heads, V vocabulary) in the
# order the literature writes their products: 24*l*s*h**2, not sympy's alphabetical 24*h**2*l*s.
CONVENTIONAL_ORDER = ("l", "s", "S", "h", "a", "V")  # (S: positions in a KV cache)
# sums of such products, largest first: total degree, then the power of h, l, s, a, V
_TERM_RANK = ("h", "l", "s", "S", "a", "V")


@functools.cache
@functools.lru_cache(maxsize=1)
def _printer() -> Any:
    from sympy.printing.str import StrPrinter

    class ConventionalPrinter(StrPrinter):  # type: ignore[misc]
        """sympy's str(), except that a polynomial in the transformer symbols is written in the
        literature's order (``24*l*s*h**2 + 4*l*s**2*h + 2*s*h*V``); expressions without those
        symbols print exactly as sympy prints them.  One printer for the process, which keeps
        the text of every sum, product and function it printed: a symbolic table's nested
        floors share their inner terms, and sorting a sum's terms is most of the printing."""

        def __init__(self) -> None:
            super().__init__()
            self.memo: dict[Any, str] = {}

        def _print(self, expr: Any, **kwargs: Any) -> str:
            if kwargs or not (expr.is_Add or expr.is_Mul or expr.is_Function):
                return str(super()._print(expr, **kwargs))
            text = self.memo.get(expr)
            if text is None:
                if len(self.memo) > 1 << 16:
                    self.memo.clear()
                text = self.memo[expr] = str(super()._print(expr))
            return text

        def _print_Add(self, expr: Any, order: Any = None) -> str:
            terms = list(expr.as_ordered_terms())
            powers = [_monomial(t) for t in terms]
            if all(p is not None for p in powers) and any(n in CONVENTIONAL_ORDER for p in powers for n in p[1]):  # type: ignore[index]
                rank = {id(t): _term_key(p[1]) for t, p in zip(terms, powers, strict=True)}  # type: ignore[index]
                terms.sort(key=lambda t: rank[id(t)])
                return _join_terms([self._print(t) for t in terms])
            return str(super()._print_Add(expr, order))

        def _print_Mul(self, expr: Any) -> str:
            mono = _monomial(expr)
            if mono is None or not any(n in CONVENTIONAL_ORDER for n in mono[1]):
                return str(super()._print_Mul(expr))
            coeff, powers = mono
            others = sorted(n for n in powers if n not in CONVENTIONAL_ORDER)
            names = [*others, *(n for n in CONVENTIONAL_ORDER if n in powers)]
            factors = [n if powers[n] == 1 else f"{n}**{powers[n]}" for n in names]
            lead = "" if coeff == 1 else "-" if coeff == -1 else f"{coeff}*"
            return lead + "*".join(factors)

    return ConventionalPrinter()


def _monomial(term: Any) -> tuple[int, dict[str, int]] | None:
    """(integer coefficient, symbol name -> positive integer power) of a monomial, else None."""
    coeff, rest = term.as_coeff_Mul()
    if not coeff.is_Integer:
        return None
    powers: dict[str, int] = {}
    for f in rest.as_ordered_factors() if rest != 1 else ():
        base, exp = f.as_base_exp()
        if not base.is_Symbol or not exp.is_Integer or exp < 1:
            return None
        powers[base.name] = int(exp)
    return int(coeff), powers


def _term_key(powers: dict[str, int]) -> tuple[int, ...]:
    return (-sum(powers.values()), *(-powers.get(n, 0) for n in _TERM_RANK))


def _join_terms(texts: list[str]) -> str:
    out = texts[0]
    for t in texts[1:]:
        out += f" - {t[1:]}" if t.startswith("-") else f" + {t}"
    return out


def dim_text(value: Any) -> str:
    """A Dim as text: digits, or the sympy expression (``sympify`` reads it back), products of the
    transformer symbols in the literature's order."""
    value = simplify(value)
    if not is_symbolic(value):
        return str(value)
    return _printed(value)


@functools.lru_cache(maxsize=4096)
def _printed(value: Any) -> str:
    """sympy's text of a formula, once per formula: sorting a sum's terms is most of a symbolic
    table's time (DenseNet-121 at 3xHxW prints 577 formula cells, 156 of them different: 2.3 s of
    CPU before, about a quarter after)."""
    return str(_printer().doprint(value))


def human_text(value: Any) -> str:
    """A Dim as people write it in text and Markdown: :func:`dim_text` with powers as ``^``
    (``27*C^2``, not Python's ``27*C**2``).  Machine formats (JSON, CSV) keep :func:`dim_text`."""
    return dim_text(value).replace("**", "^")


def to_json(value: Any) -> Any:
    """JSON form of a Dim: an int, or the sympy expression as a string ``sympify`` reads back."""
    value = simplify(value)
    if is_symbolic(value):
        return dim_text(value)
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
    "check_size",
    "dim_text",
    "dmax",
    "expand",
    "free_symbols",
    "human_text",
    "known_sign",
    "names_in",
    "parse_dim",
    "parse_int_text",
    "prod",
    "provably_positive",
    "simplify",
    "symbol",
    "to_json",
]
