#!/usr/bin/env python3
"""Bench every zoo spec on the CPU and write a markdown table (default reports/bench_cpu.md).

Run from the repository root:  python benchmarks/bench_zoo.py [--batch 1] [--repeat 5] [--warmup 2]

Each spec: ``archcalc.torch.bench.bench_spec`` in eval mode, float32, a few timed runs, no
per-layer (hooked) runs: the whole network's roofline share needs only the analytic per-layer
roofline times and the measured median.  The probe comes from the cache (measured once).
Figures on a shared machine are noisy: the CV column says how much.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archcalc.torch.bench import BUSY_LIMIT, bench_spec  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--specs", nargs="*", help="spec files (default: specs/*.json)")
    ap.add_argument("-o", "--output", default=str(ROOT / "reports" / "bench_cpu.md"))
    args = ap.parse_args(argv)

    specs = [Path(s) for s in args.specs] if args.specs else sorted((ROOT / "specs").glob("*.json"))
    rows: list[str] = []
    first = None
    t_all = time.perf_counter()
    for path in specs:
        t0 = time.perf_counter()
        try:
            r = bench_spec(
                path, device="cpu", batch=args.batch, warmup=args.warmup, repeat=args.repeat, per_layer=False, progress=False, threads=args.threads
            )
        except Exception as e:  # one broken spec must not sink the table
            rows.append(f"| {path.stem} | failed: {type(e).__name__}: {str(e).splitlines()[0][:120]} |  |  |  |  |  |  |  |  |  |")
            print(f"{path.stem}: failed: {e}", file=sys.stderr)
            continue
        first = first or r
        p25, med, p75 = r.stats.rates(r.batch)
        nmem = sum(lr.bound == "memory" for lr in r.layers)
        ncomp = sum(lr.bound == "compute" for lr in r.layers)
        busy = r.environment.get("cpu_busy_before")
        flag = " ⚠" if r.cv > 0.10 or r.violations() or (busy is not None and busy > BUSY_LIMIT) else ""
        rows.append(
            f"| {r.name} | {r.params / 1e6:,.2f} | {r.flops_per_image / 1e9:,.3f} | {med:,.2f}{flag} | {p25:,.2f}–{p75:,.2f} | {r.cv:.1%} "
            f"| {r.stats.median * 1e3:,.2f} | {r.achieved_flops / 1e9:,.2f} | {_pct(r.fraction_of_peak)} | {_pct(r.roofline_fraction)} "
            f"| {ncomp} / {nmem} |"
        )
        print(
            f"{r.name}: {med:,.2f} images/s (CV {r.cv:.1%}), {r.achieved_flops / 1e9:,.2f} GFLOP/s, {time.perf_counter() - t0:.1f} s", file=sys.stderr
        )

    lines = ["# CPU throughput of the zoo", ""]
    if first is not None:
        pr = first.probe
        lines += [
            f"- machine: {first.device_name}, {first.threads} torch threads, torch {first.torch_version}",
            f"- run: batch {first.batch}, float32, eval, inference_mode; {first.warmup} warm-up + {first.repeat} timed runs per spec; "
            f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}; {time.perf_counter() - t_all:,.0f} s in all",
        ]
        if pr is not None:
            lines.append(
                f"- probe (measured, cached): peak {pr.peak_flops / 1e9:,.1f} GFLOP/s, bandwidth {pr.bandwidth / 1e9:,.1f} GB/s "
                f"(DRAM copy {pr.dram_bandwidth / 1e9:,.1f} GB/s), ridge {pr.ridge:,.2f} FLOP/B"
            )
        load = first.environment.get("load_average_1min")
        if load is not None:
            lines.append(
                f"- load average at the start: {load:.2f} on {first.environment.get('cpu_count')} CPUs (a shared machine: figures are noisy)"
            )
    lines += [
        "- GFLOP: analytic, `torch` convention (2 x conv/linear MACs) per image; achieved = GFLOP x median images/s",
        "- roofline: the sum of the layers' max(FLOPs / peak, bytes / bandwidth) over the median measured time (<= 100%)",
        f"- ⚠: CV above 10%, a figure above the roof, or other processes using more than {BUSY_LIMIT:.0%} of the CPUs just before the runs",
        "",
        "| spec | params (M) | GFLOP/image | images/s (median) | p25–p75 | CV | ms/batch | achieved GFLOP/s | of peak | of roofline "
        "| compute / memory-bound layers |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        *rows,
    ]
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


if __name__ == "__main__":
    sys.exit(main())
