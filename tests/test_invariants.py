"""Invariants on every zoo spec: rows sum to totals, the numeric path stays numeric, and more."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, ZOO

from archcalc import analyze
from archcalc.dims import expand
from archcalc.report import QUANTITIES, Report


@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
@pytest.mark.parametrize("convention", ["lecture", "torch"])
def test_rows_sum_to_totals(path: Path, convention: str) -> None:
    rep = analyze(path, convention=convention)
    for q in QUANTITIES:
        # (a row of a block repeated l times counts l times: transformer_lm)
        assert expand(sum(getattr(r, q) * r.repeat for r in rep.counted_rows)) == rep.totals[q], q
        assert type(rep.totals[q]) is int or rep.symbolic, q  # exact integers, never floats
    assert rep.totals["flops"] == 2 * rep.totals["macs"]
    assert len({r.name for r in rep.rows}) == len(rep.rows), "layer names are unique"


@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
def test_numeric_rows_hold_python_ints_once_sympy_is_loaded(path: Path) -> None:
    """With sympy imported (a symbolic analysis ran earlier in the process), a numeric spec's rows
    still hold Python ints: the report skips its fold of sympy Integers when no input size, batch,
    layer field or repeat count is a symbol, so no formula may return a sympy number on ints."""
    import sympy  # noqa: F401

    rep = analyze(path)
    if rep.symbolic:
        pytest.skip("a symbolic spec (transformer_lm)")
    for r in rep.rows:
        values = (r.params, r.macs, r.flops, r.activation_bytes, r.buffers, r.repeat, r.cache)
        values += (*r.output_shape, *r.receptive_field, *r.effective_stride, *r.ops.values())
        assert {type(v) for v in values} == {int}, (r.name, [v for v in values if type(v) is not int])


@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
def test_zoo_spec_is_documented(path: Path) -> None:
    data = json.loads(path.read_text())
    assert data.get("description") and data.get("source"), "each zoo spec says what it is and where it is published"
    assert data["name"] == path.stem


def test_numeric_path_never_imports_sympy_or_networkx() -> None:
    # sympy's import alone costs more than the analysis; networkx's too (DESIGN.md: LayerGraph)
    code = (
        "import sys; from archcalc.cli import main; main(['table', 'specs/resnet50.json', '--format', 'json']); "
        "sys.stderr.write(repr(sorted(m for m in ('sympy', 'networkx', 'torch') if m in sys.modules)))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0 and p.stderr.strip() == "[]", p.stderr


def test_core_runs_without_torch() -> None:
    code = "import sys; sys.modules['torch'] = None; from archcalc import analyze; print(analyze('specs/resnet50.json').totals['params'])"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0 and p.stdout.strip() == "25557032", p.stderr


@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
def test_symbolic_equals_numeric_after_substitution(path: Path) -> None:
    # the same formula code on symbols: every row of every zoo network, its spatial sizes left free
    # (H, W; L for 1-D; D, H, W for 3-D), then set to the spec's numbers, gives the numeric analysis
    import sympy

    num = analyze(path)
    if num.symbolic:
        pytest.skip("a symbolic spec (transformer_lm): nothing to substitute")
    if len(num.input_shape) == 1:  # token ids [L]: the sequence length is the size left free
        check_tokens(path, num)
        return
    spatial = {2: ["L"], 3: ["H", "W"], 4: ["D", "H", "W"]}[len(num.input_shape)]
    # symbolic SE-ResNet-50 once grew an expression per gate without bound: a hang fails here, not CI's clock
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError(f"symbolic {path.stem} took over 60 s")))
    signal.alarm(60)
    try:
        sym = analyze(path, input_shape=[num.input_shape[0], *spatial])
    finally:
        signal.alarm(0)
    at = {sympy.Symbol(s, integer=True, positive=True): v for s, v in zip(spatial, num.input_shape[1:], strict=True)}

    def value(x: object) -> int:
        return x if isinstance(x, int) else int(sympy.sympify(x).xreplace(at))

    for n, s in zip(num.rows, sym.rows, strict=True):
        quantities = ["output_shape", "params", "macs", "activation_bytes"]
        if not s.rf_approximate:  # symbolic upsampling keeps the average grid, symbolic windows one window's field: flagged
            quantities += ["receptive_field", "effective_stride"]
        for q in quantities:
            a, b = getattr(n, q), getattr(s, q)
            assert (tuple(map(value, b)) if isinstance(b, tuple) else value(b)) == a, (path.stem, n.name, q)


def test_set_binds_symbols() -> None:
    a = analyze(ROOT / "specs" / "resnet50.json", input_shape=[3, "H", "H"], values={"H": 224})
    assert a.totals == analyze(ROOT / "specs" / "resnet50.json").totals


def test_batch_symbol_scales_macs_and_memory() -> None:
    import sympy

    N = sympy.Symbol("N", integer=True, positive=True)
    rep = analyze(ROOT / "specs" / "alexnet.json", batch=N)
    one = analyze(ROOT / "specs" / "alexnet.json")
    assert rep.totals["macs"] == N * one.totals["macs"]
    assert rep.totals["params"] == one.totals["params"]


def check_tokens(path: Path, num: Report) -> None:
    """A language model with its sequence length a symbol s, then s set back: the numeric analysis."""
    import sympy

    sym = analyze(path, input_shape=["s"])
    at = {sympy.Symbol("s", integer=True, positive=True): num.input_shape[0]}
    for n, s in zip(num.rows, sym.rows, strict=True):
        for q in ("params", "macs", "activation_bytes"):
            assert int(sympy.sympify(getattr(s, q)).xreplace(at)) == getattr(n, q), (n.name, q)
        assert tuple(int(sympy.sympify(d).xreplace(at)) for d in s.output_shape) == n.output_shape, n.name
