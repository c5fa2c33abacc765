"""Summarise a gpu_check.sh run: one row per network and dtype (images/s, fraction of the probed peak).

    python benchmarks/gpu_summary.py RESULTS_FOLDER     # writes summary.md and summary.json there

Reads the bench_NET_DTYPE.json files `archcalc bench --format json` wrote, memory_NET.json where the
memory step ran, and steps.tsv (each step's exit status and seconds).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _bench_row(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    roof = data.get("roofline") or {}
    layers = roof.get("layers") or []
    return {
        "network": data["name"],
        "dtype": data["dtype"],
        "device": data["device_name"],
        "batch": data["batch"],
        "images_per_s": data["images_per_s"]["median"],
        "cv": data["cv"],
        "achieved_gflops": data["achieved_flops"] / 1e9,
        "probed_peak_gflops": (data.get("peak_flops") or 0) / 1e9 or None,
        "fraction_of_peak": data.get("fraction_of_peak"),
        "roofline_fraction": roof.get("fraction"),
        "memory_bound_layers": sum(layer["bound"] == "memory" for layer in layers),
        "compute_bound_layers": sum(layer["bound"] == "compute" for layer in layers),
        "warnings": data.get("warnings", []),
    }


def _fmt(v: Any, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def summarise(folder: Path) -> tuple[str, dict[str, Any]]:
    rows = [_bench_row(p) for p in sorted(folder.glob("bench_*.json"))]
    memory = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("memory_*.json"))]
    steps_file = folder / "steps.tsv"
    steps = [line.split("\t") for line in steps_file.read_text().splitlines()[1:]] if steps_file.exists() else []
    lines = [
        "# archcalc on a GPU: gpu_check.sh",
        "",
        f"Device: {rows[0]['device'] if rows else 'n/a'}. images/s: median of the timed runs; fraction of peak: achieved FLOP/s "
        "(analytic 'torch' FLOPs) over the probe's best GEMM/conv FLOP/s in that dtype.",
        "",
        "| network | dtype | batch | images/s | CV | achieved GFLOP/s | peak GFLOP/s | of peak | of roofline | layers compute/memory |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['network']} | {r['dtype']} | {r['batch']} | {r['images_per_s']:,.1f} | {r['cv']:.1%} | {r['achieved_gflops']:,.1f} | "
            f"{_fmt(r['probed_peak_gflops'], ',.1f')} | {_fmt(r['fraction_of_peak'], '.1%')} | {_fmt(r['roofline_fraction'], '.1%')} | "
            f"{r['compute_bound_layers']}/{r['memory_bound_layers']} |"
        )
    if memory:
        lines += ["", "| network | batch | archcalc memory peak | torch.cuda.max_memory_allocated | ratio |", "|---|---:|---:|---:|---:|"]
        for m in memory:
            ratio = m["measured_bytes"] / m["archcalc_bytes"] if m.get("measured_bytes") and m.get("archcalc_bytes") else None
            lines.append(f"| {m['network']} | {m['batch']} | {m.get('archcalc_bytes')} | {m.get('measured_bytes')} | {_fmt(ratio, '.3f')} |")
    lines += ["", "| step | exit | seconds |", "|---|---:|---:|", *(f"| {' | '.join(s)} |" for s in steps)]
    warned = [(r["network"], r["dtype"], w) for r in rows for w in r["warnings"]]
    if warned:
        lines += ["", "Warnings:", *(f"- {n} {d}: {w}" for n, d, w in warned)]
    return "\n".join(lines) + "\n", {"bench": rows, "memory": memory, "steps": steps}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: gpu_summary.py RESULTS_FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    text, data = summarise(folder)
    (folder / "summary.md").write_text(text, encoding="utf-8")
    (folder / "summary.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(text, end="")
    return 0 if data["bench"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
