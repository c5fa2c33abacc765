"""The ``archcalc`` command.

Exit codes (DESIGN.md): 0 ok; 1 a check/verify found a wrong number; 2 invalid input.
Errors are one line on stderr naming the file, layer and field; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .conventions import CONVENTIONS
from .dims import MAX_DIGITS
from .errors import SpecError, escape_control
from .options import check_set_names, parse_batch, parse_input, parse_set
from .output import EXTENSIONS, drop_stream, format_for, write_output

FORMATS = ("text", "markdown", "latex", "csv", "json", "html")


def _analysis_options(p: argparse.ArgumentParser, formats: Sequence[str] = FORMATS) -> None:
    p.add_argument("--input", help="override the input shape, e.g. 3,224,224 or C,H,W")
    p.add_argument("--set", action="append", default=[], metavar="SYM=VALUE", help="give a symbol a number (repeatable)")
    p.add_argument(
        "--convention", default="lecture", help=f"counting convention: {', '.join(CONVENTIONS)} (default lecture; README: why tools differ)"
    )
    p.add_argument("--dtype", default="float32", help="activation dtype: float32, float16, bfloat16, int8, float64")
    p.add_argument("--batch", default="1", help="batch size (int or symbol) scaling MACs and memory")
    p.add_argument("--include-training-only", action="store_true", help="count auxiliary training-only heads in the totals")
    written = ", ".join(sorted(ext for ext, fmt in EXTENSIONS.items() if fmt in formats))  # only what this command writes
    p.add_argument("--format", choices=formats, help=f"default: from -o's extension ({written}), else text")
    p.add_argument("-o", "--output", help="write to this file (atomically) instead of stdout")
    p.set_defaults(formats=formats)


TORCH_COMMANDS = {
    "verify": "analytic vs instantiated torch model (or your own), per layer; exit 1 on any mismatch",
    "bench": "measured throughput and the per-layer roofline on cpu or cuda",
    "import": "trace an nn.Module with torch.fx into a spec",
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the message and where to read more, no usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def _print_message(self, message: str, file: Any = None) -> None:
        """As argparse's, but a failed write is not swallowed: ``--help > /dev/full`` is one error
        line and exit 2 (argparse's own exit 0 said the help was shown); a closed pipe stays quiet."""
        if message:
            stream = file or sys.stderr
            stream.write(message)
            stream.flush()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The CLI parser; the torch commands' modules are imported only when ``command`` is one of them (or unknown)."""
    p = _Parser(prog="archcalc", description="Exact static cost analysis of neural network architectures.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("table", help="per-layer table: shape, params, MACs, FLOPs, memory, receptive field")
    t.add_argument("spec", help="spec file (JSON)")
    _analysis_options(t)
    t.add_argument("--depth", type=_depth, help="one row per block at this depth, with its totals (1: ResNet's stem, layer1..layer4, head)")
    t.add_argument("--bare", action="store_true", help="LaTeX: the tabular alone, no table float (for a beamer frame)")
    t.add_argument("--columns", help="LaTeX: the columns to show, from layer,type,output,params,macs,memory,rf,stride")
    t.add_argument("--hide-free", action="store_true", help="LaTeX: leave out parameter-free rows (the totals still count them)")

    q = sub.add_parser(
        "quick",
        help="a layer or short stack from the command line, no file needed",
        description='e.g. archcalc quick 3x227x227 "conv 64 11x11 s4 p2" "maxpool 3 s2"',
    )
    q.add_argument("input_shape", help="input shape, e.g. 3x227x227 or CxHxW")
    q.add_argument("layers", nargs="+", help='layers: "conv 64 3x3 p1", "maxpool 2", "fc 10", or a JSON object')
    q.add_argument("--save", metavar="SPEC.json", help="also write the stack as a spec file that table, check and explain read")
    _analysis_options(q)

    e = sub.add_parser(
        "explain",
        help="worked derivation of one layer: formulas, numbers substituted, results",
        description='e.g. archcalc explain specs/alexnet.json conv1, or archcalc explain --stack 3x227x227 "conv 64 11x11 s4 p2"',
    )
    e.add_argument("spec", nargs="?", help="spec file (JSON)")
    e.add_argument("layer", nargs="?", help="layer name (with --stack: default every layer)")
    _stack_option(e, single=True)
    _analysis_options(e, formats=("text", "markdown", "latex"))

    c = sub.add_parser(
        "check",
        help="verdicts on claims like pool2.output=14x14 or total.params=61M; exit 1 if any is wrong",
        description="archcalc check SPEC CLAIM... (or --stack SHAPE LAYER... CLAIM...). A claim is "
        "LAYER.QUANTITY=VALUE, BLOCK.QUANTITY=VALUE, total.QUANTITY=VALUE or FIRST..LAST.QUANTITY=VALUE, "
        "or a budget with <=, <, >= or > for = (total.params<=1M); quantities: "
        "params, macs, flops, memory, output, rf, stride; values like 61M, 16,781,312, 182.25KB, 13x13.",
    )
    c.add_argument("items", nargs="*", metavar="SPEC_OR_CLAIM", help="the spec file, then claims (with --stack: claims only)")
    _stack_option(c, single=True)
    _analysis_options(c, formats=("text",))

    m = sub.add_parser("compare", help="architectures side by side: totals and ratios, symbolic where symbols remain")
    m.add_argument("specs", nargs="*", help="spec files")
    _stack_option(m, single=False)
    _analysis_options(m, formats=("text", "markdown", "latex", "json"))
    m.set_defaults(dtype=None)  # (float32 for activations; the KV cache row in inference's float16, unless --dtype is given)

    i = sub.add_parser(
        "inference",
        help="prefill vs one decode step with a KV cache: MACs, bytes per generated token, the cache, memory- or compute-bound",
        description="e.g. archcalc inference specs/gpt2.json --cache 1024, or archcalc inference specs/transformer_lm.json --cache S",
    )
    i.add_argument("spec", help="spec file (JSON) of a decoder: token ids in, attention layers inside")
    i.add_argument("--cache", help="S: positions in the KV cache when the decode step runs (int or symbol; default the spec's input length)")
    i.add_argument("--set", action="append", default=[], metavar="SYM=VALUE", help="give a symbol a number (repeatable)")
    i.add_argument("--convention", default="torch", help=f"counting convention: {', '.join(CONVENTIONS)} (default torch)")
    i.add_argument("--dtype", default="float16", help="weights and cache dtype (default float16)")
    i.add_argument("--batch", default="1", help="sequences decoded together (int or symbol)")
    i.add_argument("--format", choices=("text", "json"), help="default: from -o's extension, else text")
    i.add_argument("-o", "--output", help="write to this file (atomically) instead of stdout")
    i.set_defaults(formats=("text", "json"))

    g = sub.add_parser("reports", help="write the reports gallery: md, tex, csv, json tables and png plots per spec, and an index")
    g.add_argument("specs", nargs="+", help="spec files")
    g.add_argument("-o", "--output", default="reports", help="folder (default: reports)")
    g.add_argument("--no-plots", action="store_true", help="no png plots (no matplotlib needed)")
    g.add_argument("--no-diagrams", action="store_true", help="no svg diagrams (no Graphviz needed)")
    g.add_argument("--convention", default="lecture", help=f"counting convention: {', '.join(CONVENTIONS)} (default lecture)")

    d = sub.add_parser(
        "diagram",
        help="the architecture drawn: SVG, PDF, PNG (Graphviz) or DOT, shapes on the edges, each node's cost",
        description="e.g. archcalc diagram specs/googlenet.json -o googlenet.svg. A network of more than 60 layers is "
        "drawn with its blocks collapsed (a repeated block one node, a block called once a box around its branches); "
        "--depth opens them. SVG, PDF and PNG need Graphviz (apt-get install graphviz); .dot needs nothing.",
    )
    d.add_argument("spec", nargs="?", help="spec file (JSON)")
    _stack_option(d, single=True)
    d.add_argument("--color", default="macs", choices=("macs", "params", "memory", "none"), help="fill nodes on a log scale of this (default macs)")
    d.add_argument("--depth", type=_depth, help="open blocks nested this deep (1: the top-level blocks; more: inside them)")
    d.add_argument("--rankdir", default="TB", choices=("TB", "LR"), help="top to bottom (default) or left to right")
    _analysis_options(d, formats=("svg", "pdf", "png", "dot"))

    from .training_cli import add_memory_parsers

    add_memory_parsers(sub)

    s = sub.add_parser("schema", help="print the JSON Schema of the spec format")
    s.add_argument("-o", "--output")

    # the torch commands: their full parsers (and modules) only when needed; torch itself is imported
    # only when one of them runs
    if command in (None, *TORCH_COMMANDS):
        from .torch.bench import add_bench_parser
        from .torch.fx_import import add_import_parser
        from .torch.verify import add_verify_parser

        add_verify_parser(sub)
        add_bench_parser(sub)
        add_import_parser(sub)
    else:
        for name, text in TORCH_COMMANDS.items():
            sub.add_parser(name, help=text)
    return p


def _depth(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number, 1 or more, got {text!r}")
    return int(text)


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in argv (the first word that is not an option), if it is a known one."""
    known = {"table", "quick", "explain", "check", "compare", "reports", "schema", "diagram", "memory", "fit", "inference"}
    for word in argv:
        if not word.startswith("-"):
            return word if word in known | set(TORCH_COMMANDS) else None
    return None


def _stack_option(p: argparse.ArgumentParser, single: bool) -> None:
    p.add_argument(
        "--stack",
        nargs="+",
        action="store" if single else "append",
        metavar="SHAPE LAYER",
        help='a quick stack instead of a file: input shape, then layers ("conv 64 3x3 p1" ...)' + ("" if single else "; repeatable"),
    )


def _report(args: argparse.Namespace) -> Any:
    """Analyse what the command names: a spec file, a quick stack, or ``args.stack_now``.

    Leaves the compiled graph on ``args.graph`` for commands that explain single layers.
    """
    from .graph import compile_graph
    from .quick import quick_spec, two_axis_note
    from .report import gc_paused, report_from_graph
    from .spec import load_spec

    with gc_paused():
        values = parse_set(args.set)
        stack = getattr(args, "stack_now", None)
        if args.command == "quick" or stack:
            shape_text, layers = (args.input_shape, args.layers) if args.command == "quick" else (stack[0], stack[1:])  # type: ignore[index]
            parse_input(shape_text, "input" if args.command == "quick" else "--stack")
            arch, file = quick_spec(shape_text, layers), "<quick>" if args.command == "quick" else "<stack>"
            hint = _channels_first_hint(arch.input) or two_axis_note(list(arch.input), list(layers))
        else:
            arch, file, hint = load_spec(args.spec), args.spec, None
        if values:
            check_set_names(values, arch, file, args)
        shape = None
        try:
            shape = parse_input(args.input) if args.input else None
            G = compile_graph(arch, values=values, input_shape=shape)
            rep = report_from_graph(
                G,
                convention=args.convention,
                dtype=args.dtype,
                batch=parse_batch(args.batch, values),
                include_training_only=args.include_training_only,
            )
        except SpecError as e:
            if hint and shape is None and e.field != "--input":
                e.message = f"{e.message} (note: {hint})"
            elif shape is not None and e.field != "--input" and _channels_first_hint(shape):  # --input 224,224,3
                e.message = f"{e.message} (note: --{_channels_first_hint(shape)})"
            raise e.located(file=file) from None
        if hint and shape is None:
            print(f"archcalc: note: {hint}", file=sys.stderr)
        args.graph = G
        # the command's process ends after rendering: the analysis (millions of objects for 100,000
        # layers) need not be scanned by the collections the rendering triggers, nor by the one that
        # re-enabling the collector starts.  Frozen while the collector is still paused; CLI only,
        # and main() unfreezes them when the command is done (main called in-process: tests, scripts).
        import gc

        gc.freeze()
    return rep


def run(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command == "check" and not any(x.startswith("-") for x in extra):
            args.items = [*args.items, *extra]  # claims after an option: check SPEC --dtype float16 CLAIM...
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "diagram":
        return _diagram(args)
    if "format" in args and args.format is None:  # -o table.md writes markdown
        if args.command in ("table", "quick", "explain", "check", "compare"):
            _check_extension(args.command, getattr(args, "output", None), args.formats)
        args.format = format_for(getattr(args, "output", None), getattr(args, "formats", ("text", "json")))
    if args.command == "schema":
        from .spec import json_schema

        write_output(json.dumps(json_schema(), indent=2) + "\n", args.output)
        return 0
    if args.command in ("table", "quick"):
        from .render import render

        rep = _report(args)
        if getattr(args, "depth", None) is not None:
            if args.depth < 1:
                raise SpecError(f"--depth must be 1 or more, got {args.depth}", field="--depth")
            from .summary import summarise

            rep = summarise(rep, args.depth)
        if getattr(args, "save", None):
            from .quick import quick_dict

            name = os.path.splitext(os.path.basename(args.save))[0]
            write_output(json.dumps(quick_dict(args.input_shape, args.layers, name=name), indent=1) + "\n", args.save, field="--save")
        write_output(render(rep, args.format, **_latex_options(args)), args.output)
        return 0
    if args.command in ("memory", "fit"):
        from .training_cli import run_fit, run_memory

        return run_memory(args) if args.command == "memory" else run_fit(args)
    if args.command == "bench":
        from .torch.bench import run_bench

        return int(run_bench(args))
    if args.command == "import":
        from .torch.fx_import import run_import

        return int(run_import(args))
    if args.command == "verify":
        from .torch.verify import run_verify

        return int(run_verify(args))
    if args.command == "reports":
        from .reports import generate

        if not args.no_plots:
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                raise SpecError("plots need matplotlib: pip install 'archcalc[plot]', or pass --no-plots", field="--no-plots") from None
        if not args.no_diagrams:
            from .diagram import need_graphviz

            need_graphviz("or pass --no-diagrams")
        files = generate(args.specs, args.output, plots=not args.no_plots, convention=args.convention, diagrams=not args.no_diagrams)
        print(f"wrote {len(files)} files to {str(args.output).rstrip('/')}/")
        return 0
    if args.command == "explain":
        return _explain(args)
    if args.command == "inference":
        return _inference(args)
    if args.command == "check":
        return _check(args)
    if args.command == "compare":
        return _compare(args)
    raise AssertionError(args.command)  # pragma: no cover


# extensions of files no command writes: -o x.pdf would get a text table under a .pdf name
NOT_WRITTEN = {".pdf", ".png", ".svg", ".jpg", ".jpeg", ".eps", ".ps", ".xlsx", ".xls", ".docx", ".doc", ".odt", ".pptx"}


def _check_extension(command: str, output: str | None, formats: Sequence[str]) -> None:
    """-o with an extension the command cannot write is an error (check -o x.json, table -o x.pdf), not a text file so named."""
    ext = os.path.splitext(output or "")[1].lower()
    if not ext or output == "-":
        return
    fmt = EXTENSIONS.get(ext)
    if (fmt is not None and fmt not in formats) or (fmt is None and ext in NOT_WRITTEN):
        can = ", ".join(sorted(e for e, f in EXTENSIONS.items() if f in formats))
        raise SpecError(f"{command} cannot write {ext} files; it writes {can} (or give --format)", field="--output")


def _latex_options(args: argparse.Namespace) -> dict[str, Any]:
    """table's LaTeX options (--bare, --columns, --hide-free): refused with any other format."""
    from .render import LATEX_COLUMNS

    given: dict[str, Any] = {name: getattr(args, name, None) for name in ("bare", "columns", "hide_free")}
    if not any(given.values()):
        return {}
    if args.format != "latex":
        flag = next(f"--{k.replace('_', '-')}" for k, v in given.items() if v)
        raise SpecError(f"{flag} is a LaTeX option: add --format latex (or -o FILE.tex)", field=flag)
    if given["columns"] is not None:
        cols = tuple(c.strip().lower() for c in given["columns"].split(",") if c.strip())
        bad = [c for c in cols if c not in LATEX_COLUMNS]
        if bad or not cols:
            raise SpecError(f"unknown column {(bad or [''])[0]!r}; choose from {','.join(LATEX_COLUMNS)}", field="--columns")
        given["columns"] = cols
    return given


def _channels_first_hint(shape: Sequence[Any]) -> str | None:
    """What to say when a typed input reads like an image written H x W x C (224x224x3)."""
    if len(shape) == 3 and all(isinstance(d, int) for d in shape) and shape[2] <= 4 and shape[0] >= 8 * shape[2]:
        c, h, w = shape
        return f"input {c}x{h}x{w} is read channels first (C x H x W, as torch): for a {w}-channel {c}x{h} image write {w}x{c}x{h}"
    return None


def _need_stack_shape(stack: list[str]) -> None:
    if len(stack) < 2:
        raise SpecError("--stack needs an input shape and at least one layer", field="--stack")


def _explain(args: argparse.Namespace) -> int:
    from .explain import explain_layer, render_explanation

    if args.stack:
        _need_stack_shape(args.stack)
        if args.layer is not None or args.spec is not None:
            raise SpecError("with --stack, give no SPEC or LAYER: every layer of the stack is explained", field="LAYER")
        args.stack_now = args.stack
    elif args.spec is None or args.layer is None:
        raise SpecError("explain needs SPEC LAYER (or --stack SHAPE LAYER...)", field="LAYER")
    elif not args.layer.strip():
        raise SpecError("an empty layer name: name a layer, a block or total", file=args.spec, field="LAYER")
    rep = _report(args)
    if args.layer in ("total", "total.flops", "total.macs", "total.params") and args.layer not in args.graph.nodes:
        from .explain import explain_total

        write_output(explain_total(rep, args.layer.partition(".")[2] or "flops", args.format), args.output)
        return 0
    if args.layer and args.layer.startswith("total.") and args.layer not in args.graph.nodes:  # total.memory, total.rf: no such derivation
        raise SpecError(
            f"explain derives the totals total.params, total.macs and total.flops ('total' alone: FLOPs), not {args.layer!r}; "
            "the table's total row has the others",
            file=args.spec, field="LAYER",
        )
    if args.layer and args.layer not in args.graph.nodes:  # a block call: its sums and its rows
        from .explain import explain_block, shown_name
        from .grouping import block
        from .summary import stage

        args.layer = shown_name(args.layer, lambda n: n in args.graph.nodes or block(rep, n) is not None)  # as the table shows it
        if args.layer not in args.graph.nodes and (block(rep, args.layer) is not None or stage(rep, args.layer) or ".." in args.layer):
            try:
                text = explain_block(rep, args.layer, args.format)
            except SpecError as e:
                raise e.located(file=args.spec) from None
            write_output(text, args.output)
            return 0
    names = [args.layer] if args.layer else [r.name for r in rep.rows]
    batch = rep.batch
    try:
        parts = [
            render_explanation(explain_layer(args.graph, n, convention=args.convention, dtype=args.dtype, batch=batch), args.format) for n in names
        ]
    except SpecError as e:
        raise e.located(file=args.spec or "<stack>") from None
    write_output("\n".join(parts), args.output)
    return 0


def _diagram(args: argparse.Namespace) -> int:
    from .diagram import diagram_bytes, format_of
    from .output import atomic_write

    if args.stack:
        _need_stack_shape(args.stack)
        if args.spec is not None:
            raise SpecError("with --stack, give no SPEC", field="--stack")
        args.stack_now = args.stack
    elif args.spec is None:
        raise SpecError("diagram needs SPEC (or --stack SHAPE LAYER...)", field="SPEC")
    fmt = args.format or format_of(args.output)
    rep = _report(args)
    data = diagram_bytes(rep, fmt, depth=args.depth, color=args.color, rankdir=args.rankdir)
    if args.output is None or args.output == "-":
        if fmt in ("svg", "dot"):
            sys.stdout.write(data.decode("utf-8"))
        else:  # PDF, PNG: bytes
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
    else:
        atomic_write(args.output, data)
    return 0


def _inference(args: argparse.Namespace) -> int:
    from .dims import DimError, as_int, parse_dim
    from .inference import inference_costs, render_inference
    from .spec import load_spec

    values = parse_set(args.set)
    arch = load_spec(args.spec)
    if values:
        check_set_names(values, arch, args.spec, args)
    cache = None
    if args.cache is not None:
        try:
            cache = parse_dim(args.cache, values)
        except DimError as e:
            raise SpecError(str(e), field="--cache") from None
        if isinstance(cache, bool) or (as_int(cache) is not None and as_int(cache) < 0):  # type: ignore[operator]
            raise SpecError(f"--cache is a number of positions, 0 or more, got {args.cache!r}", field="--cache")  # (was a negative cache, exit 0)
    try:
        costs = inference_costs(arch, cache, convention=args.convention, dtype=args.dtype, batch=parse_batch(args.batch, values), values=values)
    except SpecError as e:
        raise e.located(file=args.spec) from None
    write_output(render_inference(costs, args.format), args.output)
    return 0


def _looks_like_claim(text: str) -> bool:
    from .check import QUANTITIES

    # LAYER.QUANTITY before '=' (or a budget's <=, <) has no spaces; the value may ("4*C*H*W B")
    m = re.match(r"\s*([\w.]+)\s*(<=|>=|\u2264|\u2265|==|=|<|>)", text)
    return m is not None and m.group(1).rpartition(".")[2].lower() in QUANTITIES


def _check(args: argparse.Namespace) -> int:
    from .check import Claim, Unreadable, judge, parse_claim, render_verdicts, unreadable
    from .explain import explain_layer

    items = list(args.items)
    if args.stack:
        # argparse's --stack swallows what follows: claims (no spaces, LAYER.QUANTITY=VALUE) go back
        stack = [x for x in args.stack if not _looks_like_claim(x)]
        items = [x for x in args.stack if _looks_like_claim(x)] + items
        _need_stack_shape(stack)
        args.stack_now, args.spec = stack, None
    else:
        if len(items) < 2:
            raise SpecError("check needs SPEC and at least one CLAIM", field="CLAIM")
        args.spec = items.pop(0)
    claims: list[Any] = []
    for c in items:
        try:
            claims.append(parse_claim(c))
        except Unreadable as e:
            claims.append(unreadable(c, str(e)))
    rep = _report(args)
    picks = {
        "output_shape": "output",
        "params": "params",
        "macs": "MACs",
        "flops": "FLOPs",
        "activation_bytes": "memory",
        "receptive_field": "receptive field",
        "effective_stride": "effective stride",
    }

    def derive(layer: str, quantity: str) -> str:
        ex = explain_layer(args.graph, layer, convention=args.convention, dtype=args.dtype, batch=rep.batch)
        key = picks[quantity]
        steps = [s for s in ex.steps if s.quantity == key or s.quantity.startswith(key + " ") or s.quantity.startswith(key + ":")]
        if quantity == "params":
            steps = [s for s in ex.steps if s.quantity == "params"] or steps
        lines = []
        for st in steps:
            lines.append(f"{st.quantity}: " + " = ".join(x.replace("**", "^") for x in (st.general, st.worked, st.result) if x))
        return "\n".join(lines)

    others: dict[str, Any] = {}

    def alternatives(kind: str) -> Any:
        """The same network under the other convention, or the paper's v1 beside a v1.5 ResNet spec."""
        if kind not in others:
            alt = argparse.Namespace(**vars(args))
            others[kind] = None
            if kind == "v1":
                if args.spec is None or args.spec.endswith("_v1.json") or not os.path.isfile(args.spec.removesuffix(".json") + "_v1.json"):
                    return None
                alt.spec = args.spec.removesuffix(".json") + "_v1.json"
            else:
                alt.convention = kind
            with contextlib.suppress(SpecError):  # no alternative: no diagnosis from it
                others[kind] = _report(alt)
        return others[kind]

    try:
        verdicts = [judge(rep, c, derive, alternatives) if isinstance(c, Claim) else c for c in claims]
    except SpecError as e:
        raise e.located(file=args.spec or "<stack>") from None
    write_output(render_verdicts(verdicts), args.output)
    unread = [v for v in verdicts if v.unreadable and not v.unjudged]
    if unread:
        first = unread[0]
        more = f" (and {len(unread) - 1} more)" if len(unread) > 1 else ""
        raise SpecError(f"cannot read {first.text!r}: {first.why}{more}", file=args.spec or "<stack>", field="CLAIM")
    if any(v.unjudged or v.unproven for v in verdicts):  # read, but not judged (or not decided): its verdict line says why, once
        return 2
    return 0 if all(v.correct for v in verdicts) else 1


def _compare(args: argparse.Namespace) -> int:
    from .compare import Comparison, render_comparison

    sources: list[tuple[str, Any]] = [(path, None) for path in args.specs] + [(f"stack{i + 1}", st) for i, st in enumerate(args.stack or [])]
    if len(sources) < 2:
        raise SpecError("compare needs at least two specs or stacks", field="SPEC")
    kv_dtype = args.dtype or "float16"  # a KV cache is an inference quantity: inference's dtype, float16, unless one is given
    args.dtype = args.dtype or "float32"
    labels, reports = [], []
    grown: list[str | None] = []
    for source, stack_given in sources:
        label, stack = source, stack_given
        if stack is not None:
            m = re.fullmatch(r"\s*([^=\s][^=]*?)\s*=\s*(\S+)\s*", stack[0])  # a named stack: "3x3 stack=CxHxW"
            if m:
                label, stack = m.group(1), [m.group(2), *stack[1:]]
            _need_stack_shape(stack)
        args.stack_now, args.spec = stack, label
        rep = _report(args)
        labels.append(rep.name if stack is None else label)
        reports.append(rep)
        if args.input and stack is None:
            grown.append(_params_that_follow_the_input(args, rep))
    labels = _distinct_labels(labels, [source for source, _ in sources])
    notes = [f"{lab}'s {text}" for lab, text in zip(labels, grown, strict=False) if text]
    write_output(render_comparison(Comparison(labels, reports, kv_dtype=kv_dtype, notes=notes), args.format), args.output)
    return 0


def _params_that_follow_the_input(args: argparse.Namespace, rep: Any) -> str | None:
    """Where --input changes a spec's parameters (ViT's position table, sized by the image: 197 rows
    at 224, 785 at 448), the totals are another model's: what to say about it, else None."""
    from .dims import is_symbolic, simplify
    from .render import _shape, units

    given, args.input = args.input, None
    try:
        own = _report(args)
    finally:
        args.input = given
    if simplify(rep.totals["params"] - own.totals["params"]) == 0 or any(map(is_symbolic, own.input_shape)):
        return None  # (a spec of symbols given numbers is one of the models it describes)
    mine = {r.name: r.params for r in own.rows}
    rows = [r.name for r in rep.rows if r.name in mine and simplify(r.params - mine[r.name]) != 0]
    where = f" ({', '.join(rows)})" if rows else ""
    return (
        f"params follow the input{where}: {units.exact(own.totals['params'])} at its own {_shape(own.input_shape)}, "
        f"{units.exact(rep.totals['params'])} at {_shape(rep.input_shape)}: another model (one built for its own size refuses another, "
        "or is fine-tuned with the table resized)"
    )


def _distinct_labels(labels: list[str], sources: list[str]) -> list[str]:
    """Column labels that tell the networks apart: a spec's name, or where two share it (two copies
    of lenet5 edited differently) the file's name, then its path as given, then a number."""
    out = list(labels)
    for pick in (os.path.basename, str):
        dup = {lab for lab in out if out.count(lab) > 1}
        out = [pick(src) if lab in dup and src.endswith(".json") else lab for lab, src in zip(out, sources, strict=True)]
    seen: dict[str, int] = {}
    dup = {lab for lab in out if out.count(lab) > 1}  # (the same file twice)
    for i, lab in enumerate(out):
        if lab in dup:
            seen[lab] = seen.get(lab, 0) + 1
            out[i] = f"{lab} #{seen[lab]}"
    return out


MAX_STR_DIGITS = 50_000
"""CPython's bound on int <-> str conversion (its default, 4,300, refuses exact results that
archcalc's limits allow: a product of 45 sizes of 99 digits).  Inputs are bounded to 100 digits
and 64 axes before they are converted, so no result comes near this; it is kept finite so that no
path can reopen the quadratic conversion of a million digits."""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    sys.set_int_max_str_digits(MAX_STR_DIGITS)
    debug = "--debug" in argv
    if debug:  # accepted anywhere on the line, not only before the command
        argv = ["--debug", *(a for a in argv if a != "--debug")]
    code = None
    try:
        code = run(argv)
        sys.stdout.flush()  # a full disk or a closed pipe fails here, inside the handlers below
        return code
    except SpecError as e:
        return _fail(debug, f"error: {e}", 2)  # --debug adds the traceback; the exit code stays the bad-input one
    except BrokenPipeError:  # `archcalc table x | head -1`: the reader has what it wanted, quietly;
        _drop_stdout()  # a verdict already reached (check's wrong claim: 1) stands
        return 0 if code is None else code
    except KeyboardInterrupt:
        _drop_stdout()
        print("archcalc: interrupted", file=sys.stderr)
        return 130  # 128 + SIGINT, as shells report it
    except RecursionError:
        return _fail(debug, "error: expression or graph nested too deeply", 2)
    except OSError as e:
        if e.errno in _OUTPUT_ERRNOS:  # (files are written through output.atomic_write, whose errors are SpecErrors: this is stdout)
            _drop_stdout()
            return _fail(debug, f"error: cannot write the output: {e.strerror}", 2)
        return _fail(debug, _internal(e), 3)
    except Exception as e:  # a bug, not bad input: still one line, and a way to see more
        if _from_interrupt(e):  # Ctrl-C while a class is made: Python wraps it ("Error calling __set_name__ ...")
            _drop_stdout()
            print("archcalc: interrupted", file=sys.stderr)
            return 130
        if isinstance(e, ValueError) and "integer string conversion" in str(e):  # CPython's guard, met on a path that reads digits unbounded
            return _fail(debug, f"error: a number of more than {MAX_STR_DIGITS:,} digits (archcalc reads sizes of at most {MAX_DIGITS})", 2)
        return _fail(debug, _internal(e), 3)
    finally:
        import gc

        gc.unfreeze()  # what _report froze is collectable again (main called in-process: tests, scripts)


_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EPIPE, errno.EBADF, errno.EIO, errno.EDQUOT, errno.EFBIG}


def _from_interrupt(e: BaseException) -> bool:
    """Whether a KeyboardInterrupt caused ``e`` (its ``__cause__``/``__context__`` chain): a Ctrl-C that lands
    while pydantic builds a model class comes out as RuntimeError("Error calling __set_name__ ...")."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _internal(e: BaseException) -> str:
    return f"internal error: {type(e).__name__}: {escape_control(str(e))} (rerun with --debug for the traceback; please report it)"


def _fail(debug: bool, message: str, code: int) -> int:
    try:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"archcalc: {message}", file=sys.stderr)
        sys.stderr.flush()
    except OSError:  # stderr is closed or full too (> /dev/full 2>&1): the exit status is all that is left
        drop_stream(sys.stderr)
    return code


def _drop_stdout() -> None:
    """Point standard output at /dev/null, so that the interpreter's last flush at exit does not
    fail a second time (with a traceback, exit 120)."""
    drop_stream(sys.stdout)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
