"""Shared helpers: build small specs inline, run the CLI in-process."""

from __future__ import annotations

import io
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from archcalc import Report, analyze, parse_spec
from archcalc.cli import main

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
ZOO = sorted(SPECS.glob("*.json"))


def net(layers: list[dict[str, Any]], input: Sequence[int | str] = (3, 32, 32), **kw: Any) -> Report:
    """Analyse a small inline spec."""
    return analyze(parse_spec({"name": "t", "input": list(input), "layers": layers}), **kw)


def conv(n: int | str, k: Any, **kw: Any) -> dict[str, Any]:
    return {"type": "conv2d", "out_channels": n, "kernel_size": k, **kw}


class CLIResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


def cli(*args: str) -> CLIResult:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse usage errors
            code = int(e.code or 0)
    return CLIResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def spec_file(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write text to a spec file and return its path."""

    def write(text: str, name: str = "spec.json") -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p

    return write
