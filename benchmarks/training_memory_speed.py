#!/usr/bin/env python3
"""What the training-memory analysis adds to a table's analysis time (issue 13: at most 30%).

Run from the repository root:  python benchmarks/training_memory_speed.py [--repeat 15]

For each network, in one process: the table's analysis (compile + the table's passes, what
``analyze`` does) and then the saved-tensors pass on the same graph (what ``archcalc memory``
adds: the passes before it are the table's own).  The fastest of ``--repeat`` runs of each, with
the collector paused as ``analyze`` runs; every graph is kept until the end, so no run pays for
freeing the one before.  The ratio is the figure, not the milliseconds (the host is shared).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archcalc.conventions import dtype_bytes  # noqa: E402
from archcalc.graph import compile_graph  # noqa: E402
from archcalc.passes import saved_tensors  # noqa: E402
from archcalc.report import gc_paused, report_from_graph  # noqa: E402
from archcalc.spec import load_spec  # noqa: E402

NETS = ("resnet50", "resnet152", "densenet121", "inception_v3", "vit_b_16", "gpt2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    print("| network | table analysis (ms) | saved-tensors pass (ms) | added |")
    print("|---|---:|---:|---:|")
    for name in NETS:
        arch = load_spec(ROOT / "specs" / f"{name}.json")
        table: list[float] = []
        extra: list[float] = []
        keep = []
        with gc_paused():  # as analyze() and training_memory() run
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                G = compile_graph(arch)
                report_from_graph(G)
                t1 = time.perf_counter()
                saved_tensors(G, dtype_bytes("float32"), 1)
                t2 = time.perf_counter()
                table.append(t1 - t0)
                extra.append(t2 - t1)
                keep.append(G)
        a, b = min(table), min(extra)
        print(f"| {name} | {a * 1e3:.2f} | {b * 1e3:.2f} | {100 * b / a:+.1f}% |")



if __name__ == "__main__":
    main()
