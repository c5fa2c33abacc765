"""Named counting conventions: which operations count as a MAC, and what a FLOP is.

Every layer reports its operations by category (``Layer.ops``; categories in
``archcalc.layers.base.OP_CATEGORIES``).  A convention is the one place that decides which
categories are MACs.  Tools disagree on the same network because each silently picks a different
rule; archcalc names the rule on every row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .dims import Dim
from .errors import SpecError


@dataclass(frozen=True)
class Convention:
    name: str
    description: str
    counts: Mapping[str, int] = field(default_factory=dict)
    """Category -> MACs per counted operation (categories absent here count zero)."""
    flops_per_mac: int = 2

    def macs(self, ops: Mapping[str, Dim]) -> Dim:
        total: Dim = 0
        for category, n in ops.items():
            w = self.counts.get(category, 0)
            if w:
                total = total + w * n
        return total

    def flops(self, macs: Dim) -> Dim:
        return self.flops_per_mac * macs


CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention(
            "lecture",
            "The lecture tables' rule: MACs of conv/linear = output elements x (C_in/groups x k_h x k_w) "
            "or in_features, bias not counted; pooling = output elements x window size; activations, "
            "normalisation and adds not counted. FLOPs = 2 x MACs.",
            {"mac": 1, "pool": 1},
        ),
        Convention(
            "torch",
            "What torch.utils.flop_counter.FlopCounterMode reports, halved into MACs: conv, linear and "
            "matmul multiply-accumulates only (no bias, pooling, normalisation, activations or adds). "
            "FLOPs = 2 x MACs.",
            {"mac": 1},
        ),
    )
}


def get_convention(name: str) -> Convention:
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise SpecError(f"unknown convention {name!r}; choose from {', '.join(CONVENTIONS)}", field="--convention") from None


DTYPE_BYTES: dict[str, int] = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}


def dtype_bytes(name: str) -> int:
    try:
        return DTYPE_BYTES[name]
    except KeyError:
        raise SpecError(f"unknown dtype {name!r}; choose from {', '.join(DTYPE_BYTES)}", field="--dtype") from None
