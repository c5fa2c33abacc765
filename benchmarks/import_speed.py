#!/usr/bin/env python3
"""``archcalc import`` against FlopCounterMode's own pass over the same model (issue 11, item 7).

Target: importing any torchvision classifier (torch.fx trace + handlers + the spec's own check) is
no slower than one forward of that model under ``torch.utils.flop_counter.FlopCounterMode`` (what
a user runs to count it with torch).  Both run in this process on the same model object, its
parameters on the ``meta`` device (no weights, no memory), with batch 1 and the model's input
size; each figure is the median of ``--repeat`` runs, the two alternating so that a busy host
slows both alike.  Prints one line per model and the worst ratio.

Run from the repository root:  python benchmarks/import_speed.py [--all] [--repeat 3] [MODEL ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402
import torchvision.models as tv_models  # noqa: E402
from test_model_sweep import TORCHVISION_INPUT, meta_parameters  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from archcalc.torch.importer import spec_from_module  # noqa: E402

DEFAULT = ["resnet50", "densenet121", "efficientnet_b0", "convnext_tiny", "vit_b_16", "swin_t", "maxvit_t", "inception_v3",
           "mobilenet_v3_large", "regnet_y_400mf"]


def flop_pass(model: torch.nn.Module, shape: tuple[int, ...]) -> None:
    x = torch.zeros((1, *shape), device="meta")
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False):
        model(x)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", help=f"torchvision model names (default: {' '.join(DEFAULT)})")
    p.add_argument("--all", action="store_true", help="every torchvision classifier")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    names = sorted(tv_models.list_models(module=tv_models)) if args.all else (args.models or DEFAULT)
    worst = 0.0
    print(f"{'model':24s} {'import s':>9s} {'FlopCounterMode s':>18s} {'ratio':>6s}")
    for name in names:
        kwargs = {"weights": None, **({"init_weights": False} if name in ("googlenet", "inception_v3") else {})}
        with meta_parameters():
            model = tv_models.get_model(name, **kwargs)
        shape = TORCHVISION_INPUT.get(name, (3, 224, 224))
        spec_from_module(model, shape)  # warm: imports of torch.fx and the handler table, once per process
        flop_pass(model, shape)
        imp, ref = [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            spec_from_module(model, shape)
            imp.append(time.perf_counter() - t)
            t = time.perf_counter()
            flop_pass(model, shape)
            ref.append(time.perf_counter() - t)
        a, b = statistics.median(imp), statistics.median(ref)
        worst = max(worst, a / b)
        print(f"{name:24s} {a:9.3f} {b:18.3f} {a / b:6.2f}", flush=True)
    print(f"worst ratio import / FlopCounterMode: {worst:.2f} (target <= 1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
