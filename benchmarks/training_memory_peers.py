#!/usr/bin/env python3
"""torchinfo's "Forward/backward pass size" against the exact saved bytes, on three zoo networks.

Run from the repository root:  python benchmarks/training_memory_peers.py [--batch 1]

For each network: torchinfo 1.8's estimate (it sums every layer's output size, twice: "forward/
backward pass"), what autograd actually keeps (measured with torch.autograd.graph.saved_tensors_hooks
on the model built from the spec, meta device) and archcalc's figure (`archcalc memory`), which must
equal the measurement.  The README's table is this script's output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torchinfo  # noqa: E402

from archcalc.graph import compile_graph  # noqa: E402
from archcalc.spec import load_spec  # noqa: E402
from archcalc.torch.build import build_module  # noqa: E402
from archcalc.torch.saved import measure_saved  # noqa: E402
from archcalc.training import training_memory_from_graph  # noqa: E402

NETS = ("resnet50", "vgg16", "mobilenet_v2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    print('| network | torchinfo "Forward/backward pass size" | saved by autograd (measured) | archcalc `memory` | torchinfo / exact |')
    print("|---|---:|---:|---:|---:|")
    for name in NETS:
        G = compile_graph(load_spec(ROOT / "specs" / f"{name}.json"))
        exact = training_memory_from_graph(G, batch=args.batch).totals["saved_bytes"]
        model = build_module(G)  # real weights on CPU: torchinfo runs the forward
        stats = torchinfo.summary(model, input_size=(args.batch, *G.graph["input_shape"]), verbose=0)
        est = stats.total_output_bytes  # torchinfo prints this as "Forward/backward pass size (MB)"
        meas = measure_saved(build_module(G, device="meta"), torch.zeros(args.batch, *G.graph["input_shape"], device="meta")).total
        assert meas == exact, (name, meas, exact)
        print(f"| {name} | {est:,} B ({est / 1e6:.2f} MB) | {meas:,} B | {exact:,} B ({exact / 1e6:.2f} MB) | {est / exact:.2f} |")


if __name__ == "__main__":
    main()
