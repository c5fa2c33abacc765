"""The modelled peak of a training step against the peak torch's CPU allocator reaches, per network.

    python benchmarks/training_peak.py [SPEC:BATCH[:INPUT] ...]

For each spec, builds its torch model, runs one forward and ``output.backward(gradient)`` with the
parameters' gradients allocated (archcalc.torch.peak: torch.profiler's allocator events, every
allocation and free of the CPU allocator), and prints the measured peak, archcalc's modelled peak
(``archcalc memory``'s), and their difference.  CPU only; a few seconds to a minute each.
"""

from __future__ import annotations

import sys

DEFAULT = [
    "resnet18:2",
    "resnet50:4",
    "vgg16:2",
    "alexnet:4",
    "vit_b_16:2",
    "gpt2:2:64",
    "unet:1",
    "densenet121:2:3,64,64",
    "lenet5:4",
    "resnet18:2:3,64,64",
]


def main(argv: list[str]) -> int:
    import torch

    from archcalc.graph import compile_graph
    from archcalc.spec import load_spec
    from archcalc.torch.build import build_module
    from archcalc.torch.peak import measure_peak
    from archcalc.training import training_memory_from_graph

    print("| network | batch | input | measured (torch.profiler, CPU) | archcalc | difference |")
    print("|---|---:|---|---:|---:|---:|")
    for item in argv or DEFAULT:
        name, batch_text, *rest = item.split(":")
        batch = int(batch_text)
        shape = [int(v) for v in rest[0].split(",")] if rest else None
        torch.manual_seed(0)
        G = compile_graph(load_spec(f"specs/{name}.json"), input_shape=shape)
        model = build_module(G)
        dims = tuple(G.graph["input_shape"])
        x = torch.randint(0, 100, (batch, *dims)) if model.input_dtype == torch.long else torch.randn(batch, *dims)
        measured = measure_peak(model, x).peak
        modelled = training_memory_from_graph(G, batch=batch).totals["peak_bytes"]
        assert isinstance(modelled, int)
        diff = modelled - measured
        where = "x".join(map(str, dims))
        print(f"| {name} | {batch} | {where} | {measured:,} | {modelled:,} | {diff:+,} ({diff / measured:+.2%}) |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
