"""Training-step peak memory: `archcalc memory` against torch.cuda.max_memory_allocated (gpu_check.sh step 5).

    python benchmarks/gpu_memory.py specs/resnet50.json --device cuda --batch 64 -o memory_resnet50.json

Runs `archcalc memory SPEC --batch B --device D --format json` (its peak: the first number under a
key named ``peak_bytes``, ``peak`` or ``total_bytes``, searched depth first: ``totals.peak_bytes``
today), then builds the spec's module on the device and measures a training step (forward,
backward, SGD) at that batch as `archcalc memory` models it: after one step, with the gradients
kept (``zero_grad(set_to_none=False)``), the allocator's peak over the next step. On a CPU (the dry
run) there is no allocator peak: ``measured_bytes`` is null.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

PEAK_KEYS = ("peak_bytes", "peak", "total_bytes")


def find_peak(data: Any) -> int | None:
    """The first integer under one of PEAK_KEYS, depth first (None if there is none)."""
    if isinstance(data, dict):
        for key in PEAK_KEYS:
            if isinstance(data.get(key), int) and not isinstance(data.get(key), bool):
                return int(data[key])
        for value in data.values():
            found = find_peak(value)
            if found is not None:
                return found
    if isinstance(data, list):
        for value in data:
            found = find_peak(value)
            if found is not None:
                return found
    return None


def measured_peak(spec: str, device: str, batch: int) -> int | None:
    import torch

    from archcalc.graph import compile_spec
    from archcalc.spec import load_spec
    from archcalc.torch.build import build_module

    if not device.startswith("cuda"):
        return None
    dev = torch.device(device)
    model = build_module(compile_spec(load_spec(spec)), device=dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(batch, *model.input_shape, device=dev)

    def step() -> None:
        opt.zero_grad(set_to_none=False)  # the gradients of the last step stay allocated, as archcalc's peak assumes
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        out.float().sum().backward()
        opt.step()

    step()  # the gradients now exist
    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    step()
    torch.cuda.synchronize(dev)
    return int(torch.cuda.max_memory_allocated(dev))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="gpu_memory.py")
    p.add_argument("spec")
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args(argv)
    device = args.device.split(":")[0]
    run = subprocess.run(
        [sys.executable, "-m", "archcalc", "memory", args.spec, "--batch", str(args.batch), "--device", device, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if run.returncode != 0:
        print(f"archcalc memory failed ({run.returncode}): {run.stderr.strip()}", file=sys.stderr)
        return 1
    analytic = find_peak(json.loads(run.stdout))
    result = {
        "network": Path(args.spec).stem,
        "batch": args.batch,
        "device": args.device,
        "archcalc_bytes": analytic,
        "measured_bytes": measured_peak(args.spec, args.device, args.batch),
    }
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result))
    return 0 if analytic is not None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
