"""``archcalc memory`` and ``archcalc fit``: training memory per layer, and the largest batch that fits."""

from __future__ import annotations

import argparse
from typing import Any

from .errors import SpecError
from .training import CPU_CONV16, DEVICES, MAX_THREADS, OPTIMIZER_STATES

FORMATS = ("text", "markdown", "latex", "csv", "json", "html")

MEMORY_HELP = "training memory: what autograd saves per layer, gradients, optimizer state, the peak; a + b*N in the batch"
FIT_HELP = "the largest batch whose training step fits in --memory (e.g. 24GiB), with the headroom"


def _options(p: argparse.ArgumentParser) -> None:
    from .output import EXTENSIONS

    p.add_argument("spec", help="spec file (JSON)")
    p.add_argument("--input", help="override the input shape, e.g. 3,224,224")
    p.add_argument("--set", action="append", default=[], metavar="SYM=VALUE", help="give a symbol a number (repeatable)")
    p.add_argument(
        "--dtype",
        help="dtype of parameters and activations: float32 (default), float16, bfloat16, float64; with --amp, of the activations "
        "(default: torch.autocast's, float16 on --device cuda, bfloat16 on cpu)",
    )
    p.add_argument(
        "--optimizer", default="sgd", choices=list(OPTIMIZER_STATES), help="state per parameter: sgd none, momentum 1x, adam/adamw 2x (default sgd)"
    )
    p.add_argument(
        "--amp", action="store_true", help="mixed precision (torch.autocast): fp32 parameters, 16-bit activations (--dtype float16 or bfloat16)"
    )
    p.add_argument(
        "--checkpoint",
        nargs="+",
        default=[],
        metavar="BLOCK",
        help="activation checkpointing of these blocks (names of block calls, e.g. layer1 layer2.0)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        choices=list(DEVICES),
        help="where the step runs (dropout's mask: fp on CPU, bool on CUDA; Adam's step tensors stay on CPU)",
    )
    p.add_argument(
        "--cpu-conv16",
        choices=list(CPU_CONV16),
        help="how this CPU runs bf16/fp16 convs, which decides their workspace: onednn (torch.ops.mkldnn._is_mkldnn_bf16_supported(), "
        "or _fp16_, is True: AVX-512, AMX) or slow (it is False: torch's im2col kernel, _slow_conv2d); default: the larger of the two",
    )
    p.add_argument(
        "--cpu-threads",
        type=_threads,
        metavar="N",
        help="torch's CPU threads (torch.get_num_threads()), which decides the buffers kernels allocate per thread (flash "
        "attention's backward); default: one thread's counted and the peak marked 'at least'",
    )
    p.add_argument(
        "--attention",
        default="fused",
        choices=["fused", "math"],
        help="attention kernel: fused (flash: keeps a logsumexp per query, as torch picks on CPU and CUDA) or math (keeps the s x s probabilities)",
    )
    p.add_argument(
        "--loss",
        default="none",
        choices=["none", "cross_entropy"],
        help="the loss after the model: none (output.backward(gradient): the output and its gradient held through the step) or "
        "cross_entropy (its log-softmax, the targets, and in its backward the log-softmax's and the logits' gradients)",
    )
    p.add_argument("--convention", default="lecture", help="counting convention for the recomputation's FLOPs (default lecture)")
    p.add_argument("--format", choices=FORMATS, help=f"default: from -o's extension ({', '.join(sorted(EXTENSIONS))}), else text")
    p.add_argument("-o", "--output", help="write to this file (atomically) instead of stdout")
    p.set_defaults(formats=FORMATS)


def _threads(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 6 or not 1 <= int(text) <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"needs a whole number of threads from 1 to {MAX_THREADS:,}, got {text!r}")
    return int(text)


def add_memory_parsers(sub: Any) -> None:
    m = sub.add_parser("memory", help=MEMORY_HELP, description=MEMORY_HELP + ". --batch N (a symbol) prints every total as a + b*N.")
    _options(m)
    m.add_argument("--batch", default="1", help="batch size: a number, or a symbol (N) for formulas a + b*N")
    f = sub.add_parser("fit", help=FIT_HELP, description=FIT_HELP)
    _options(f)
    f.add_argument(
        "--memory", required=True, help="memory of the device: 24GiB, 80GB, 40000000000 (bytes); KiB/MiB/GiB powers of 1024, KB/MB/GB of 1000"
    )


def _analyse(args: argparse.Namespace, batch: Any) -> Any:
    from .graph import compile_graph
    from .options import check_set_names, parse_input, parse_set
    from .report import gc_paused
    from .spec import load_spec
    from .training import training_memory_from_graph

    values = parse_set(args.set)
    arch = load_spec(args.spec)
    if values:
        check_set_names(values, arch, args.spec, args)
    try:
        with gc_paused():
            shape = parse_input(args.input) if args.input else None
            G = compile_graph(arch, values=values, input_shape=shape)
            return training_memory_from_graph(
                G,
                expand=lambda more: compile_graph(arch, values={**values, **more}, input_shape=shape),
                dtype=args.dtype,
                batch=batch(values) if callable(batch) else batch,
                optimizer=args.optimizer,
                amp=args.amp,
                device=args.device,
                checkpoint=args.checkpoint,
                convention=args.convention,
                attention=args.attention,
                loss=args.loss,
                cpu_conv16=args.cpu_conv16,
                cpu_threads=args.cpu_threads,
            )
    except SpecError as e:
        raise e.located(file=args.spec) from None


def run_memory(args: argparse.Namespace) -> int:
    from .options import parse_batch
    from .output import write_output

    m = _analyse(args, lambda values: parse_batch(args.batch, values))
    write_output(m.render(args.format), args.output)
    return 0


def _fit(args: argparse.Namespace, memory: int) -> Any:
    """The largest batch: the peak's lines worked out at batch 2 hold for every batch from 2 (torch
    may pick another conv kernel at batch 1: float32 convs on small maps run its slow kernel
    there), and those at batch 1 for batch 1."""
    from .training import max_batch

    fit = max_batch(_analyse(args, 2), memory)
    return fit if fit.max_batch >= 2 else max_batch(_analyse(args, 1), memory)


def run_fit(args: argparse.Namespace) -> int:
    from .output import write_output
    from .render.training import render_fit
    from .training import parse_memory

    memory = parse_memory(args.memory)
    try:
        fit = _fit(args, memory)
        if args.checkpoint:
            args_plain = argparse.Namespace(**{**vars(args), "checkpoint": []})
            fit.without_checkpoint = _fit(args_plain, memory)
    except SpecError as e:
        raise e.located(file=args.spec) from None
    write_output(render_fit(fit, args.format), args.output)
    return 0 if fit.max_batch > 0 else 1  # nothing fits: the question has no answer (exit 1, as check's claim that does not hold)
