#!/usr/bin/env python3
"""Scale benchmark of the text table: a flat chain of N relu layers, analysed and rendered.

Run from the repository root:  python benchmarks/bench_table.py [--layers 100000] [--repeat 3]

Prints the best and median seconds of the analysis (the spec's validation included), of archcalc's
text table, and of the same table laid out by tabulate (what `archcalc table` used until issue 14:
23 s for 100,000 layers, nearly all tabulate's number sniffing), and their ratio in the same run.
Issue 14's target: the whole 100,000-layer table (analysis and text) in 3 s or less, judged on the
best of the runs (benchmarks/_timing.py says why).  Not a timed test: a shared machine's figures
are noisy, the ratio less so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _timing import host_speed, timed  # noqa: E402  (benchmarks/, the script's own folder)

from archcalc import analyze  # noqa: E402
from archcalc.render import HEADERS, TEXT_ALIGN, _cells, _totals_cells, render, units  # noqa: E402


def tabulate_text(rep: object) -> str:
    from tabulate import tabulate

    body = [_cells(r, units.count, units.size, "\u00d7") for r in rep.rows]  # type: ignore[attr-defined]
    body.append(_totals_cells(rep, units.count, units.size))  # type: ignore[arg-type]
    return str(tabulate(body, HEADERS, tablefmt="simple", colalign=TEXT_ALIGN))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    spec = {"name": "flat", "input": [16], "layers": [{"name": f"l{i}", "type": "relu"} for i in range(args.layers)]}
    reps = []
    speed = host_speed()
    t_analyse, med_analyse = timed(lambda: reps.append(analyze(spec)), args.repeat)
    rep = reps[-1]
    t_ours, med_ours = timed(lambda: render(rep, "text"), args.repeat)
    t_tabulate, _ = timed(lambda: tabulate_text(rep), args.repeat)
    ratio = t_tabulate / t_ours
    print(
        f"{args.layers:,} layers, best of {args.repeat}: analysis {t_analyse:.2f} s (median {med_analyse:.2f}); "
        f"text table {t_ours:.2f} s (median {med_ours:.2f}; tabulate's layout: {t_tabulate:.2f} s, {ratio:.1f}x)"
    )
    total = t_analyse + t_ours
    verdict = ("meets" if total <= 3 else "MISSES") + " the target: 3 s or less" if args.layers == 100_000 else "the target, 3 s, is"
    print(
        f"analysis + text table: best {total:.2f} s, median {med_analyse + med_ours:.2f} s ({verdict} "
        f"for 100,000 layers); host calibration loop {speed:.1f} ms (12-22 fast, 37-51 slow)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
