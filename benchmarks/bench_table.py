#!/usr/bin/env python3
"""Scale benchmark of the text table: a flat chain of N relu layers, analysed and rendered.

Run from the repository root:  python benchmarks/bench_table.py [--layers 100000] [--repeat 3]

Prints the median seconds of the analysis, of archcalc's text table, and of the same table laid
out by tabulate (what `archcalc table` used until issue 14: 23 s for 100,000 layers, nearly all
tabulate's number sniffing), and their ratio in the same run.  Issue 14's target: the whole
100,000-layer table (analysis and text) in 3 s or less.  Not a timed test: a shared machine's
figures are noisy, the ratio less so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archcalc import analyze  # noqa: E402
from archcalc.render import HEADERS, TEXT_ALIGN, _cells, _totals_cells, render, units  # noqa: E402


def tabulate_text(rep: object) -> str:
    from tabulate import tabulate

    body = [_cells(r, units.count, units.size, "\u00d7") for r in rep.rows]  # type: ignore[attr-defined]
    body.append(_totals_cells(rep, units.count, units.size))  # type: ignore[arg-type]
    return str(tabulate(body, HEADERS, tablefmt="simple", colalign=TEXT_ALIGN))


def timed(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    spec = {"name": "flat", "input": [16], "layers": [{"name": f"l{i}", "type": "relu"} for i in range(args.layers)]}
    reps = []
    t_analyse = timed(lambda: reps.append(analyze(spec)), args.repeat)
    rep = reps[-1]
    t_ours = timed(lambda: render(rep, "text"), args.repeat)
    t_tabulate = timed(lambda: tabulate_text(rep), args.repeat)
    ratio = t_tabulate / t_ours
    print(f"{args.layers:,} layers: analysis {t_analyse:.2f} s; text table {t_ours:.2f} s (tabulate's layout: {t_tabulate:.2f} s, {ratio:.1f}x)")
    print(f"analysis + text table: {t_analyse + t_ours:.2f} s (target: 3 s or less for 100,000 layers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
