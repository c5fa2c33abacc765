"""Whether two formulas agree: the decisions ``check`` judges symbolic claims by, and ``report`` the sizes
an add or concat needs equal (``assumes ...``), and the exact evaluation of archcalc's formulas at integer sizes.

Two formulas in positive-integer symbols are compared without a general ``sympy.simplify`` (whose time
grows exponentially with nested floors): identical canonical forms or an expanded polynomial difference
of 0 are proofs, and so is a check class by class where both are polynomials in the symbols and in floors
of polynomials (every conv and pool size is): on each residue class of the floors' period, a polynomial of
known degree, fixed by that many points (``Mod(a, n)`` is ``a - n*floor(a/n)`` there); and, in one symbol,
Max and Min of such formulas (a receptive field where paths meet) are decided past the point where the
order of their arguments settles, and value by value before it.  Otherwise both sides are evaluated
exactly at many integer points, at and past every constant written in them: a difference is a
counterexample, agreement is not a proof, and the answer says so (None).

Below check and report alike (report is core, check one of its readers): it imports neither.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

from .dims import CLAIM_FUNCTIONS


def same_formula(claimed: Any, exact: Any, assumes: Sequence[Any] = ()) -> tuple[bool | None, str]:
    """Whether two formulas agree where the network runs: :func:`same_formula_everywhere`, and where
    that finds them different, compared again on the sizes where every formula in ``assumes`` is 0
    (the sizes an add or concat needs equal, :attr:`Report.assumes`): a difference only where the
    network cannot run is none (review s9 #4: a kernel of k with padding k//2 beside a 3x3 conv
    runs for odd k only, and a claim right for every odd k was WRONG "at k=2")."""
    ok, how, at = _same_formula(claimed, exact)
    if ok is True or not assumes or at == {}:  # (at == {}: two different numbers)
        return ok, how
    import sympy

    exprs = [sympy.sympify(c) for c in assumes]
    checks = [exact_evaluator(c) for c in exprs]
    needed = {x.name for c in exprs for x in c.free_symbols}
    if ok is False and at is not None and needed <= set(at) and all(c(at) == 0 for c in checks):
        return ok, how  # they differ at a size where the network runs
    return _same_where(sympy.sympify(claimed), sympy.sympify(exact), exprs, checks)


def same_formula_everywhere(claimed: Any, exact: Any) -> tuple[bool | None, str, dict[str, int] | None]:
    """:func:`same_formula` for every value of the symbols (no assumption), and where they differ (see :func:`_same_formula`)."""
    return _same_formula(claimed, exact)


def _same_formula(claimed: Any, exact: Any) -> tuple[bool | None, str, dict[str, int] | None]:
    """Whether two formulas in positive-integer symbols agree (True), differ (False) or agree
    wherever they were evaluated, without a proof (None), how that was decided, and where they
    differ (None where that is not known; {} for two different numbers).

    No general ``sympy.simplify`` (its time grows exponentially with nested floors).  Proofs first:
    the same canonical form, or, without floors, a difference that expands to 0, or, with floors of
    polynomials, a decision class by class (:func:`_decide_quasi_polynomial`; ``Mod(a, n)`` for a
    whole n is ``a - n*floor(a/n)`` there), or, with Max and Min in one symbol, the same past the
    point where the order of their arguments settles and value by value before it
    (:func:`_decide_piecewise`).  Otherwise both are evaluated exactly at integer values: a
    difference anywhere is a counterexample; agreement everywhere tested is not a proof, and the
    answer (None) says so.  Sizes run over 64 consecutive values from 256 (every zoo network is
    valid there, and 64 covers the residues of five stride-2 stages), 200 random mixes of them, then
    100 far sizes up to 2**20 (same-valued and mixed), and sizes at and past every constant in
    either formula (C//10**7 is 0 below 10**7)."""
    import sympy

    claimed, exact = sympy.sympify(claimed), sympy.sympify(exact)
    if claimed == exact:
        return True, "compared as formulas: equal", None
    symbols = sorted(claimed.free_symbols | exact.free_symbols, key=str)
    if not symbols:
        return False, "compared as numbers", {}
    plain = not any(e.has(sympy.floor, sympy.ceiling, sympy.Max, sympy.Min, sympy.Mod) for e in (claimed, exact))
    if plain and sympy.expand(claimed - exact) == 0:
        return True, "compared as formulas: equal", None
    claimed, exact = _without_mod(claimed), _without_mod(exact)
    decided = _decide_quasi_polynomial(claimed, exact, symbols)
    if decided is None and len(symbols) == 1:
        decided = _decide_piecewise(claimed, exact, symbols[0])
    if decided is not None:
        return decided
    points = _sample_points(symbols, (claimed, exact))
    f, g = exact_evaluator(claimed), exact_evaluator(exact)
    for point in points:
        at = {x.name: v for x, v in point.items()}
        try:
            a, b = f(at), g(at)
        except ZeroDivisionError:
            continue  # (a size in a denominator, at 0: no value there to compare)
        if a != b:
            where = ", ".join(f"{x}={v}" for x, v in point.items())
            return False, f"compared as formulas: they differ at {where} (claimed {fraction_text(a)}, exact {fraction_text(b)})", at
    names = ", ".join(map(str, symbols))
    why = "not of a form archcalc decides (polynomials in the symbols and in floors of them; Max and Min in one symbol)"
    classes = _classes(claimed, exact, symbols)
    if classes is not None:  # (C+7)//(10**8+1): decidable class by class, but the classes are too many to check
        mods = ", ".join(f"{p:,} in {x}" for x, p in zip(symbols, classes[0], strict=True) if p > 1)
        why = (f"its floors have the period {mods}: a proof would compare "
               f"{math.prod(p * (d + 1) for p, d in zip(*classes, strict=True)):,} values, more than the {MAX_DECISION_POINTS:,} archcalc compares")
    return None, f"compared as formulas: they agree at {len(points)} sampled values of {names} (not proven: {why})", None


def _sample_points(symbols: list[Any], exprs: Sequence[Any]) -> list[dict[Any, int]]:
    """The sizes :func:`same_formula` evaluates at when it cannot decide (its docstring says which)."""
    import random

    import sympy

    values = range(256, 320)
    rng = random.Random(0)
    points = [dict.fromkeys(symbols, v) for v in values]  # all symbols equal (square inputs, C = H)
    points += [{x: rng.choice(values) for x in symbols} for _ in range(0 if len(symbols) == 1 else 200)]
    # and far sizes (a claim of 1 for twelve halvings holds at 256..319 only): same-valued, then mixed
    far = [rng.randrange(320, 1 << 20) for _ in range(100)]
    points += [dict.fromkeys(symbols, v) for v in far]
    points += [{x: rng.randrange(320, 1 << 20) for x in symbols} for _ in range(0 if len(symbols) == 1 else 100)]
    # past every constant in either formula: a term C//10**7 is 0 below 10**7 (review s7 #17)
    constants = sorted({abs(int(n)) for e in exprs for q in e.atoms(sympy.Rational) for n in (q.p, q.q) if 2 <= abs(int(n)) <= 10**60})
    points += [dict.fromkeys(symbols, m) for n in constants for m in (n - 1, n, n + 1, 2 * n + 1, 3 * n + 2) if m >= 1]
    points += [dict.fromkeys(symbols, v) for v in range(1, 17)]  # and the smallest sizes, where Max and Min turn
    return points


def _same_where(claimed: Any, exact: Any, assumes: list[Any],
                checks: list[Callable[[dict[str, int]], Fraction]]) -> tuple[bool | None, str]:
    """:func:`same_formula` on the sizes where every formula of ``assumes`` is 0 (``checks`` evaluate them).

    Decided where all are quasi-polynomials (:func:`_decide_quasi_polynomial`'s classes, with the
    assumptions' periods and degrees): on each class every assumption is a polynomial, fixed by the
    same grid of points, so it is 0 on the whole class (the network runs there: compared) or a
    nonzero constant (it never runs there: skipped); a class where it is neither (the network runs
    at a few sizes of it) is not decided.  Otherwise, or then, the sampled sizes where the network runs."""
    import itertools

    symbols = sorted(set().union(claimed.free_symbols, exact.free_symbols, *(c.free_symbols for c in assumes)), key=str)
    where = "where the network runs (where its merged inputs agree)"
    f, g = exact_evaluator(claimed), exact_evaluator(exact)

    def differ(at: dict[str, int]) -> str | None:
        a, b = f(at), g(at)
        if a == b:
            return None
        said = ", ".join(f"{x}={v}" for x, v in at.items())
        return f"compared as formulas: they differ at {said}, a size {where} (claimed {fraction_text(a)}, exact {fraction_text(b)})"

    claimed, exact = _without_mod(claimed), _without_mod(exact)
    classes = _classes(claimed, exact, symbols, assumes)
    if classes is not None and math.prod(p * (d + 1) for p, d in zip(*classes, strict=True)) <= MAX_DECISION_POINTS:
        periods, degrees = classes
        runs = 0
        for residues in itertools.product(*(range(p) for p in periods)):
            axes = ([p * k + r for k in range(1, d + 2)] for p, r, d in zip(periods, residues, degrees, strict=True))
            grid = [dict(zip((x.name for x in symbols), values, strict=True)) for values in itertools.product(*axes)]
            held = [[c(at) for at in grid] for c in checks]
            if any(len(set(v)) == 1 and v[0] != 0 for v in held):
                continue  # an assumption is a nonzero constant on this class: the network never runs there
            if not all(set(v) == {0} for v in held):
                break  # the network runs at some sizes of this class only: not decided class by class
            runs += 1
            for at in grid:
                why = differ(at)
                if why is not None:
                    return False, why
        else:
            if runs:
                mods = ", ".join(f"{x} mod {p}" for x, p in zip(symbols, periods, strict=True) if p > 1)
                return True, (f"compared as formulas: equal {where} (proved: on each class of {mods} where they agree, "
                              f"both are polynomials of degree <= {max(degrees)} in each symbol, equal at the points that fix them)")
    tested = 0
    for point in _sample_points(symbols, (claimed, exact, *assumes)):
        at = {x.name: v for x, v in point.items()}
        try:
            if any(c(at) != 0 for c in checks):
                continue
            tested += 1
            why = differ(at)
        except ZeroDivisionError:
            continue
        if why is not None:
            return False, why
    names = ", ".join(map(str, symbols))
    if not tested:
        return None, f"compared as formulas: no size sampled is one {where}, so nothing was compared (symbols {names})"
    return None, f"compared as formulas: they agree at {tested} sampled values of {names} {where} (not proven)"


def equal_somewhere(a: Any, b: Any) -> tuple[bool | None, dict[str, int] | None, str]:
    """Whether two sizes in positive-integer symbols are equal for some value of them (an add or concat
    runs only there): (True, a size where they are, ''), (False, None, how it was proved that they never
    are), or (None, None, '') where no size tried has them equal and no proof was found.

    Sizes are tried first (every value up to 64 of one symbol, up to 12 of each of two or three, then
    :func:`same_formula`'s samples).  Where none has them equal and the difference is a quasi-polynomial
    (:func:`_decide_quasi_polynomial`), it is decided class by class of the floors' period: on each class
    x = P*k + r the difference is a polynomial in k, fixed by its values at D + 1 points per symbol; a
    nonzero constant there is never 0 on that class; in one symbol, a polynomial that is not constant has
    its real roots below Cauchy's bound 1 + max|c_i/c_D|, and every k up to it is tried (review s10 #10:
    2*floor(H/2) = H + 1, an add of an upsampled pool and a padded input, holds for no H)."""
    import itertools

    import sympy

    diff = _without_mod(sympy.expand(sympy.sympify(a) - sympy.sympify(b)))
    symbols = sorted(diff.free_symbols, key=str)
    if not symbols:
        return (True, {}, "") if diff == 0 else (False, None, "compared as numbers")
    d = exact_evaluator(diff)

    def zero(point: dict[str, int]) -> bool:
        try:
            return d(point) == 0
        except (ArithmeticError, AttributeError, TypeError, ValueError):  # (a size in a denominator at 0; a form not evaluated exactly)
            return False

    names = [x.name for x in symbols]
    small = range(1, 65) if len(symbols) == 1 else range(1, 13) if len(symbols) <= 3 else range(1, 3)
    tried = (dict(zip(names, v, strict=True)) for v in itertools.product(small, repeat=len(symbols)))
    sampled = ({x.name: v for x, v in p.items()} for p in _sample_points(symbols, (diff,)))
    for point in itertools.chain(tried, sampled):
        if zero(point):
            return True, point, ""
    try:
        return _roots_by_class(diff, d, symbols)
    except (ArithmeticError, AttributeError, TypeError, ValueError):  # (a form the exact evaluation does not take: no proof)
        return None, None, ""


def _roots_by_class(diff: Any, d: Callable[[dict[str, int]], Fraction], symbols: list[Any]) -> tuple[bool | None, dict[str, int] | None, str]:
    """:func:`equal_somewhere`'s decision class by class, where no size tried is a root of ``diff``."""
    import itertools

    import sympy

    names = [x.name for x in symbols]

    def zero(point: dict[str, int]) -> bool:
        try:
            return d(point) == 0
        except ZeroDivisionError:
            return False

    classes = _classes(diff, sympy.Integer(0), symbols)
    if classes is None:
        return None, None, ""
    periods, degrees = classes
    if math.prod(p * (g + 1) for p, g in zip(periods, degrees, strict=True)) > MAX_DECISION_POINTS:
        return None, None, ""
    for residues in itertools.product(*(range(p) for p in periods)):
        axes = [[p * k + r for k in range(1, g + 2)] for p, r, g in zip(periods, residues, degrees, strict=True)]
        values = {d(dict(zip(names, v, strict=True))) for v in itertools.product(*axes)}
        if len(values) == 1 and 0 not in values:
            continue  # a nonzero constant on this class
        if len(symbols) > 1:
            found = _linear_roots(d, names, periods, residues, degrees)
            if found is None or found:
                return (True, None, "") if found else (None, None, "")
            continue  # a linear form with no root of positive sizes on this class
        (p,), (r,), (g,) = periods, residues, degrees
        bound = _class_root_bound(d, names[0], p, r, g)
        if bound is None:
            return None, None, ""  # (0 on the whole class, yet no sampled size found it: not expected; no proof claimed)
        if bound > MAX_DECISION_POINTS:
            return None, None, ""
        for k in range(0 if r else 1, bound + 1):  # (sizes are positive: x = P*k + r >= 1)
            if zero({names[0]: p * k + r}):
                return True, {names[0]: p * k + r}, ""
    mods = ", ".join(f"{x} mod {p}" for x, p in zip(symbols, periods, strict=True) if p > 1)
    where = f" class by class of {mods}" if mods else ""
    return False, None, f"proved{where}: the difference has no root of positive sizes"


def _linear_roots(d: Callable[[dict[str, int]], Fraction], names: list[str], periods: list[int], residues: tuple[int, ...],
                  degrees: list[int]) -> bool | None:
    """Whether the quasi-polynomial ``d`` has a root of positive sizes on the class x_i = P_i*k_i + r_i, where
    it is linear there, c0 + sum c_i*k_i (read off the points k = 1 and 2 of each symbol, and checked on
    all of them): a linear Diophantine equation, which has an integer root iff the gcd of the c_i divides c0;
    with c_i of both signs every k can then be made as large as needed; with one sign the k are bounded
    and tried.  None where it is not linear or the bounded k are too many."""
    import itertools

    if any(g > 1 for g in degrees):
        return None
    n = len(names)

    def at(ks: Sequence[int]) -> Fraction:
        return d({x: p * k + r for x, p, r, k in zip(names, periods, residues, ks, strict=True)})

    base = at([0] * n)
    coeffs = [at([1 if j == i else 0 for j in range(n)]) - base for i in range(n)]
    if any(at(ks) != base + sum(c * k for c, k in zip(coeffs, ks, strict=True)) for ks in itertools.product((1, 2), repeat=n)):
        return None  # (a product of symbols: not linear)
    scale = math.lcm(base.denominator, *(c.denominator for c in coeffs))
    c0, cs = int(base * scale), [int(c * scale) for c in coeffs]
    g = math.gcd(*cs)
    if g == 0:  # constant on the class: every size of it is a root, or none is (code review s10 #1)
        return c0 == 0
    if c0 % g != 0:
        return False
    if any(c > 0 for c in cs) and any(c < 0 for c in cs):
        return True
    if c0 and (c0 > 0) == (max(cs) > 0):
        return False  # (every term has c0's sign, and every k is >= 0: never 0)
    lows = [0 if r else 1 for r in residues]  # (sizes are positive: x = P*k + r >= 1)
    ranges = [range(lo, lo + 1) if c == 0 else range(lo, abs(c0) // abs(c) + 1) for c, lo in zip(cs, lows, strict=True)]
    if math.prod(len(r) for r in ranges) > MAX_DECISION_POINTS:
        return None
    return any(c0 + sum(c * k for c, k in zip(cs, ks, strict=True)) == 0 for ks in itertools.product(*ranges))


def _without_mod(e: Any) -> Any:
    """``Mod(a, n)`` for a whole number n > 0 as ``a - n*floor(a/n)`` (sympy's Mod is that, for n > 0),
    so that the decision by residue classes takes it; any other Mod stays."""
    import sympy

    if not e.has(sympy.Mod):
        return e
    return e.replace(lambda m: isinstance(m, sympy.Mod) and m.args[1].is_Integer and int(m.args[1]) > 0,
                     lambda m: m.args[0] - m.args[1] * sympy.floor(m.args[0] / m.args[1]))


MAX_DECISION_POINTS = 20_000


def _period(e: Any, x: Any) -> int | None:
    """The P the floors in ``e`` need for symbol x (1 where x is in none): on each class x = P*k + r
    every floor of a polynomial is a polynomial in k; None where ``e`` is not made of polynomials,
    floors (ceilings) of them, Max and Min."""
    import sympy

    if e.is_Number or e.is_Symbol:
        return 1
    if e.is_Pow:
        if not (e.exp.is_Integer and int(e.exp) >= 0):
            return None
        return _period(e.base, x)
    if isinstance(e, (sympy.floor, sympy.ceiling)):
        arg = sympy.expand(e.args[0])
        if x not in arg.free_symbols:
            return 1
        p = 1
        for term in sympy.Add.make_args(arg):
            coeff, rest = term.as_coeff_Mul()
            if not coeff.is_Rational:
                return None
            if x in rest.free_symbols:
                inner = _period(rest, x)
                if inner is None:
                    return None
                p = sympy.ilcm(p, int(coeff.q) * inner)
        return int(p)
    if e.is_Add or e.is_Mul or isinstance(e, (sympy.Max, sympy.Min)):
        p = 1
        for a in e.args:
            q = _period(a, x)
            if q is None:
                return None
            p = int(sympy.ilcm(p, q))
        return p
    return None


def _degree(e: Any, x: Any) -> int:
    """The degree in x with floors read as their arguments, and a Max or Min as its largest argument's."""
    import sympy

    if e.is_Symbol:
        return 1 if e == x else 0
    if e.is_Number:
        return 0
    if e.is_Pow:
        return int(e.exp) * _degree(e.base, x)
    if isinstance(e, (sympy.floor, sympy.ceiling)):
        return _degree(sympy.expand(e.args[0]), x)
    if e.is_Add or isinstance(e, (sympy.Max, sympy.Min)):
        return max(_degree(a, x) for a in e.args)
    return sum(_degree(a, x) for a in e.args)  # a Mul


def _classes(claimed: Any, exact: Any, symbols: list[Any], more: Sequence[Any] = ()) -> tuple[list[int], list[int]] | None:
    """Per symbol, the period of the floors in both formulas (and in ``more``) and their degree (floors
    read as their arguments), where all are quasi-polynomials (:func:`_decide_quasi_polynomial`); else None."""
    import sympy

    more = [_without_mod(e) for e in more]
    if any(e.has(sympy.Max, sympy.Min, sympy.Mod, sympy.Abs) for e in (claimed - exact, *more)):
        return None
    periods, degrees = [], []
    for x in symbols:
        p = [_period(e, x) for e in (claimed, exact, *more)]
        if None in p:
            return None
        periods.append(int(sympy.ilcm(*p)))
        degrees.append(max(_degree(e, x) for e in (claimed, exact, *more)))
    return periods, degrees


def _decide_quasi_polynomial(claimed: Any, exact: Any, symbols: list[Any]) -> tuple[bool, str, dict[str, int] | None] | None:
    """Decide exactly whether two formulas agree for every integer value of their symbols, where both
    are polynomials in the symbols and in floors (ceilings) of such polynomials with rational
    coefficients (every conv, pool and stride formula is).  Such a formula is a quasi-polynomial:
    writing each symbol x = P*k + r (P a multiple of the denominators inside its floors, multiplied
    along nested floors), every floor becomes a polynomial in k with integer coefficients, so on each
    residue class r the difference is a polynomial in k of degree at most D (the degree with floors
    read as their arguments) and is 0 if it is 0 at D + 1 values of k per symbol.  None where the
    formulas are not of that kind or the classes are too many to check (> MAX_DECISION_POINTS points)."""
    import itertools

    classes = _classes(claimed, exact, symbols)
    if classes is None:
        return None
    periods, degrees = classes
    count = math.prod(p * (d + 1) for p, d in zip(periods, degrees, strict=True))
    if count > MAX_DECISION_POINTS:
        return None
    f, g = exact_evaluator(claimed), exact_evaluator(exact)
    axes = [[p * k + r for r in range(p) for k in range(1, d + 2)] for p, d in zip(periods, degrees, strict=True)]
    for values in itertools.product(*axes):
        at = {x.name: v for x, v in zip(symbols, values, strict=True)}
        a, b = f(at), g(at)
        if a != b:
            where = ", ".join(f"{x}={v}" for x, v in at.items())
            return False, f"compared as formulas: they differ at {where} (claimed {fraction_text(a)}, exact {fraction_text(b)})", at
    mods = ", ".join(f"{x} mod {p}" for x, p in zip(symbols, periods, strict=True) if p > 1)
    how = f"on every class of {mods} " if mods else ""
    top = max(degrees)
    shape = f"polynomials of degree <= {top} in each symbol"
    return True, f"compared as formulas: equal (proved: {how}both are {shape}, equal at {count:,} points that fix them)", None


def _decide_piecewise(claimed: Any, exact: Any, x: Any) -> tuple[bool, str, dict[str, int] | None] | None:
    """Decide exactly, for every positive integer x, two formulas in one symbol x made of polynomials,
    floors of them, and Max and Min of such (a receptive field where paths meet: ``k + Max(0, 3 - k)``).

    Each difference of two arguments of a Max or Min is a quasi-polynomial: on each class x = P*k + r
    a polynomial in k, found from D + 1 values, whose roots lie below Cauchy's bound 1 + max|c_i/c_D|.
    Past the largest such bound T the order of every Max's and Min's arguments is fixed on each class,
    so there each formula is a quasi-polynomial and their difference, on each class of the common
    period, a polynomial of degree <= D: 0 if it is 0 at D + 1 points past T.  Below T every value is
    compared.  None where the formulas are not of that kind (nested Max, a Max of a Max) or the points
    are too many (> MAX_DECISION_POINTS)."""
    import sympy

    nodes = [n for e in (claimed, exact) for n in sympy.preorder_traversal(e) if isinstance(n, (sympy.Max, sympy.Min))]
    if not nodes or any(a.has(sympy.Max, sympy.Min) for n in nodes for a in n.args):
        return None
    if any(e.has(sympy.Mod, sympy.Abs) for e in (claimed, exact)):
        return None
    settle = 0  # past it, no argument difference changes sign
    for node in set(nodes):
        for i, a in enumerate(node.args):
            for b in node.args[i + 1 :]:
                d = a - b
                p = _period(d, x)
                if p is None:
                    return None
                at = _settles(exact_evaluator(d), x.name, p, _degree(d, x))
                if at is None:
                    return None
                settle = max(settle, at)
    periods = [_period(e, x) for e in (claimed, exact)]
    if None in periods:
        return None
    period = int(sympy.ilcm(*periods))
    degree = max(_degree(e, x) for e in (claimed, exact))
    count = settle + period * (degree + 1)
    if count > MAX_DECISION_POINTS:
        return None
    f, g = exact_evaluator(claimed), exact_evaluator(exact)
    past = [settle + 1 + period * k + r for r in range(period) for k in range(degree + 1)]
    for v in [*range(1, settle + 1), *past]:
        try:
            a, b = f({x.name: v}), g({x.name: v})
        except ZeroDivisionError:
            return None
        if a != b:
            return False, f"compared as formulas: they differ at {x}={v} (claimed {fraction_text(a)}, exact {fraction_text(b)})", {x.name: v}
    where = f"every {x} up to {settle}, where the order of the Max and Min arguments settles, then " if settle else ""
    classes = f"on every class of {x} mod {period} " if period > 1 else ""
    return True, (f"compared as formulas: equal (proved: {where}{classes}past it both are polynomials of degree <= {degree}, "
                  f"equal at {count:,} points that fix them)"), None


def _settles(d: Callable[[dict[str, int]], Fraction], name: str, period: int, degree: int) -> int | None:
    """The x (>= 0) past which the quasi-polynomial ``d`` keeps its sign on each class x = period*k + r:
    the polynomial in k on each class, interpolated from degree + 1 values, has its real roots below
    Cauchy's bound; None where that point is past MAX_DECISION_POINTS."""
    last = 0
    for r in range(period):
        bound = _class_root_bound(d, name, period, r, degree)
        if not bound:
            continue  # constant on this class: its sign never changes
        x = period * bound + r
        if x > MAX_DECISION_POINTS:
            return None
        last = max(last, x)
    return last


def _class_root_bound(d: Callable[[dict[str, int]], Fraction], name: str, period: int, residue: int, degree: int) -> int | None:
    """On the class x = period*k + residue, ``d`` is a polynomial in k of degree <= ``degree``, interpolated
    from its values at k = 1 .. degree + 1: Cauchy's bound ceil(1 + max|c_i/c_D|) on its real roots (no k at
    or above it is one); 0 where it is a nonzero constant (no root, no change of sign), None where it is 0 on
    the whole class.  Used by :func:`_settles` and :func:`equal_somewhere` (one symbol)."""
    ks = list(range(1, degree + 2))
    coeffs = _interpolate(ks, [d({name: period * k + residue}) for k in ks])
    while coeffs and coeffs[-1] == 0:
        coeffs.pop()
    if not coeffs:
        return None
    if len(coeffs) == 1:
        return 0
    return math.ceil(1 + max(abs(c / coeffs[-1]) for c in coeffs[:-1]))


def _interpolate(ks: list[int], values: list[Fraction]) -> list[Fraction]:
    """Coefficients (constant first) of the polynomial of degree < len(ks) through (ks[i], values[i]):
    Newton's divided differences, expanded."""
    n = len(ks)
    table = list(values)
    newton = [table[0]]
    for j in range(1, n):
        table = [(table[i + 1] - table[i]) / (ks[i + j] - ks[i]) for i in range(n - j)]
        newton.append(table[0])
    coeffs = [Fraction(0)] * n
    for j in range(n - 1, -1, -1):  # Horner: c = c * (k - ks[j]) + newton[j]
        shifted = [Fraction(0), *coeffs[:-1]]
        coeffs = [s - ks[j] * c for s, c in zip(shifted, coeffs, strict=True)]
        coeffs[0] += newton[j]
    return coeffs


def exact_evaluator(expr: Any) -> Callable[[dict[str, int]], Fraction]:
    """A function evaluating a sympy expression exactly (Fractions) at integer symbol values.

    Walks the expression tree once per point with shared subexpressions cached, so a ResNet's
    nested floors cost microseconds per point (``xreplace`` re-simplifies every node)."""
    import sympy

    functions = {getattr(sympy, f.sympy_name): f.exact for f in CLAIM_FUNCTIONS.values()}

    def ev(e: Any, at: dict[str, int], memo: dict[Any, Fraction]) -> Fraction:
        hit = memo.get(e)
        if hit is not None:
            return hit
        if e.is_Symbol:
            v = Fraction(at[e.name])
        elif e.is_Integer or e.is_Rational:
            v = Fraction(int(e.p), int(e.q))
        elif e.is_Add:
            v = sum((ev(a, at, memo) for a in e.args), Fraction(0))
        elif e.is_Mul:
            v = Fraction(1)
            for a in e.args:
                v *= ev(a, at, memo)
        elif e.is_Pow and e.exp.is_Integer:
            v = ev(e.base, at, memo) ** int(e.exp)
        elif type(e) in functions:  # floor, ceiling, Max, Min, Mod
            v = functions[type(e)](*(ev(a, at, memo) for a in e.args))
        else:  # anything else: sympy's own exact evaluation
            r = e.xreplace({s: sympy.Integer(at[s.name]) for s in e.free_symbols})
            v = Fraction(int(r.p), int(r.q))
        memo[e] = v
        return v

    return lambda at: ev(expr, at, {})


def fraction_text(x: Fraction) -> str:
    """1/100 -> 0.01, 1000 -> 1,000, 2/3 -> 0.6667."""
    if x.denominator == 1:
        return f"{x.numerator:,}"
    d = x.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    if d == 1:  # a terminating decimal: every digit
        places = 0
        while (x * 10**places).denominator != 1:
            places += 1
        whole, frac = divmod(abs(x.numerator) * 10**places // x.denominator, 10**places)
        return ("-" if x < 0 else "") + f"{whole:,}.{frac:0{places}d}"
    return f"{float(x):.4g}"
