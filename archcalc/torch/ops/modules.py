"""Handlers of composite modules: classes archcalc imports as a whole, keyed by qualified name
(strings: no third-party package is imported to register them; :mod:`archcalc.torch.leaves`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..registry import handles_module

if TYPE_CHECKING:
    from torch import fx, nn

    from ..importer import Importer


@handles_module("torchvision.models.swin_transformer.ShiftedWindowAttention", "torchvision.models.swin_transformer.ShiftedWindowAttentionV2")
def shifted_window_attention(imp: Importer, node: fx.Node, module: nn.Module) -> None:
    """torchvision's Swin attention (its forward is the fx-wrapped ``shifted_window_attention``, which
    folds the windows into the batch axis): one ``shiftedwindowattention`` layer."""
    if node.kwargs or len(node.args) != 1:
        raise imp.unsupported(node, "expected one input")
    src = imp.tensor(node, node.args[0])
    m: Any = module  # torchvision's class: its attributes by name
    fields: dict[str, Any] = {
        "num_heads": int(m.num_heads),
        "window_size": [int(x) for x in m.window_size],
        "shift_size": [int(x) for x in m.shift_size],
        "qkv_bias": m.qkv.bias is not None,
        "proj_bias": m.proj.bias is not None,
        "v2": type(module).__name__.endswith("V2"),
    }
    imp.used_params.update(id(p) for p in module.parameters())
    target = str(node.target)  # (a module built from a spec keeps its spec name)
    imp.emit(node, "shiftedwindowattention", fields, [src], imp.fresh(imp.preferred.get(target, target), imp.scoped(node)))
