"""The ``archcalc`` command.

Exit codes (DESIGN.md): 0 ok; 1 a check/verify found a wrong number; 2 invalid input.
Errors are one line on stderr naming the file, layer and field; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from .errors import SpecError

FORMATS = ("text", "markdown", "latex", "csv", "json", "html")


def _parse_set(items: Sequence[str]) -> dict[str, int]:
    values: dict[str, int] = {}
    for item in items:
        m = re.fullmatch(r"\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*(\d+)\s*", item)
        if not m or int(m.group(2)) <= 0:
            raise SpecError(f"--set needs SYMBOL=POSITIVE_INTEGER, got {item!r}", field="--set")
        values[m.group(1)] = int(m.group(2))
    return values


def _parse_batch(text: str, values: dict[str, int]) -> Any:
    from .dims import DimError, as_int, parse_dim

    try:
        b = parse_dim(text, values)
    except DimError as e:
        raise SpecError(str(e), field="--batch") from None
    if isinstance(b, bool) or (as_int(b) is not None and as_int(b) <= 0):  # type: ignore[operator]
        raise SpecError(f"--batch must be positive, got {text!r}", field="--batch")
    return b


def write_output(text: str, path: str | None) -> None:
    """Print, or write ``path`` atomically (a temp file renamed into place: never half-written)."""
    if path is None or path == "-":
        sys.stdout.write(text)
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".archcalc-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _analysis_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", help="override the input shape, e.g. 3,224,224 or C,H,W")
    p.add_argument("--set", action="append", default=[], metavar="SYM=VALUE", help="give a symbol a number (repeatable)")
    p.add_argument("--convention", default="lecture", help="counting convention: lecture (default) or torch")
    p.add_argument("--dtype", default="float32", help="activation dtype: float32, float16, bfloat16, int8, float64")
    p.add_argument("--batch", default="1", help="batch size (int or symbol) scaling MACs and memory")
    p.add_argument("--include-training-only", action="store_true", help="count auxiliary training-only heads in the totals")
    p.add_argument("--format", default="text", choices=FORMATS)
    p.add_argument("-o", "--output", help="write to this file (atomically) instead of stdout")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="archcalc", description="Exact static cost analysis of neural network architectures.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("table", help="per-layer table: shape, params, MACs, FLOPs, memory, receptive field")
    t.add_argument("spec", help="spec file (JSON)")
    _analysis_options(t)

    q = sub.add_parser(
        "quick",
        help="a layer or short stack from the command line, no file needed",
        description='e.g. archcalc quick 3x227x227 "conv 64 11x11 s4 p2" "maxpool 3 s2"',
    )
    q.add_argument("input_shape", help="input shape, e.g. 3x227x227 or CxHxW")
    q.add_argument("layers", nargs="+", help='layers: "conv 64 3x3 p1", "maxpool 2", "fc 10", or a JSON object')
    _analysis_options(q)

    s = sub.add_parser("schema", help="print the JSON Schema of the spec format")
    s.add_argument("-o", "--output")
    return p


def _report(args: argparse.Namespace) -> Any:
    from .graph import compile_spec
    from .quick import parse_shape, quick_spec
    from .report import gc_paused, report_from_graph
    from .spec import load_spec

    with gc_paused():
        return _report_inner(args, compile_spec, parse_shape, quick_spec, report_from_graph, load_spec)


def _report_inner(args: argparse.Namespace, compile_spec: Any, parse_shape: Any, quick_spec: Any, report_from_graph: Any, load_spec: Any) -> Any:
    values = _parse_set(args.set)
    if args.command == "quick":
        arch, file = quick_spec(args.input_shape, args.layers), "<quick>"
    else:
        arch, file = load_spec(args.spec), args.spec
    try:
        shape = parse_shape(args.input) if args.input else None
        G = compile_spec(arch, values=values, input_shape=shape)
        return report_from_graph(
            G, convention=args.convention, dtype=args.dtype, batch=_parse_batch(args.batch, values), include_training_only=args.include_training_only
        )
    except SpecError as e:
        raise e.located(file=file) from None


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "schema":
        from .spec import json_schema

        write_output(json.dumps(json_schema(), indent=2) + "\n", args.output)
        return 0
    if args.command in ("table", "quick"):
        from .render import render

        write_output(render(_report(args), args.format), args.output)
        return 0
    raise AssertionError(args.command)  # pragma: no cover


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        return run(argv)
    except SpecError as e:
        if debug:
            raise
        print(f"archcalc: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except RecursionError:
        if debug:
            raise
        print("archcalc: error: expression or graph nested too deeply", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
