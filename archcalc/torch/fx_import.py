"""Import a torch model as a spec: ``archcalc import pkg.mod:factory --input C,H,W -o spec.json``.

The model is traced with ``torch.fx`` (a symbolic trace: nothing runs, no memory is used) in
eval mode, so what is imported is the inference graph.  When the model holds parameters that the
eval graph never uses and a training-mode trace returns them as extra outputs (GoogLeNet's
``aux1``/``aux2``, Inception v3's ``AuxLogits``), those auxiliary heads are imported too, marked
``training_only``.  A model that returns a dict (torchvision's segmentation models) gives the
tensor under ``--output-key`` (default: its only tensor-valued key).  What is a layer and what is
traced into is :func:`archcalc.torch.leaves.classify`; the handlers of functions and methods are
in :mod:`archcalc.torch.ops` (:mod:`archcalc.torch.registry`).  Each fx node that computes
becomes a spec layer:

* ``call_module`` of a module whose class (or a torch.nn / archcalc base class of it) is an
  archcalc layer type (torch's class name lowercased: ``nn.Conv2d`` is ``conv2d``;
  :data:`archcalc.layers.TYPE_NAMES`): the layer's fields are read from the module's attributes
  of the same names, since the spec fields are torch.nn's argument names (``bias`` is whether the
  module has one).  archcalc's own modules (:mod:`archcalc.torch.modules`,
  :mod:`archcalc.torch.extra_modules`: ``Add``, ``Concat``, ``Subsample``, ``ChannelPad``, ``Mul``,
  ``Chunk``, ``Crop``) are leaves of the trace and map back to their types, so a module built from
  a spec (:func:`archcalc.torch.build.build_module`) imports as that spec.
* ``call_function`` / ``call_method`` of the functions user code writes inline: ``a + b``,
  ``torch.add``, ``Tensor.add``/``add_`` -> ``add``; ``a * b`` -> ``mul``; ``torch.cat`` -> ``concat``;
  ``torch.flatten``, ``x.flatten(1)``, ``x.view(x.size(0), -1)`` and other reshapes that merge
  adjacent axes -> ``flatten``; ``F.relu`` and friends -> the activation; ``F.max_pool2d``,
  ``F.avg_pool2d``, ``F.adaptive_avg_pool2d`` (and their 1d/3d forms) -> the pool;
  ``F.dropout``, ``F.softmax``, ``x.chunk(n, dim)[i]``, ``F.channel_shuffle``, ``F.pad`` with zeros
  (spatial: ``zeropad``; channels only: option-A ``channelpad``), ``F.interpolate``, and slicing
  ``x[:, :, ::2, ::2]`` (``subsample``) or a center crop with constant bounds (``crop``).
  ``x.mean([2, 3])`` is global average pooling (``adaptiveavgpool2d`` + ``flatten`` unless
  ``keepdim``); torchvision's ``channel_shuffle`` (view into groups, transpose, view back) is one
  ``channelshuffle``.  ``x.size()``, ``x.shape``, ``x.contiguous()`` and a reshape to the same
  shape make no layer.  fx records ``x += y`` as ``x + y``, so an in-place add imports as a plain
  ``add``; module flags (``nn.ReLU(inplace=True)``) are kept.  A computed but unused tensor still
  becomes a layer (torch computes it); when the output is not the last layer, an ``identity``
  named ``output`` ends the spec.

Language models: ``nn.Embedding`` of ``torch.arange(0, t)`` (learned positions, nanoGPT's
``wpe(pos)``) is an ``embedding`` with ``indices: "positions"``; a weight shared by two modules
(``wte.weight = lm_head.weight``) is written once, the second layer saying ``tie_weight``; sizes
read off shapes may be symbols (``--input s``), and ``view``/``reshape`` take them.  A Python
``if``/``assert`` on a traced size (``assert t <= block_size``) is decided for the given input
(:func:`archcalc.torch.importer.import_graph`), one on tensor values refused.

Names: a module call is named after its qualified name (``layer1.0.conv1``; the layers of a
built spec module after their spec names); a module called again (torchvision's shared ``relu``)
gets one layer per call, the later ones named after fx's node (``relu_1``); other nodes take fx's
node name (``add``, ``cat``, ``flatten``).  ``inputs`` is written only when a layer's input is not
the layer before it.  Shapes are archcalc's own (the formulas of the produced layers), so a
module whose ``in_channels``/``in_features``/``num_features`` disagree with its input is an error,
as torch would fail there.

Anything else is a :class:`~archcalc.errors.SpecError` naming the node, its op and its target;
a model fx cannot trace is a one-line SpecError too.  Nothing is written unless the whole model
imported.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from ..options import parse_input
from ..output import write_output
from .importer import spec_from_module, trace
from .leaves import module_type
from .ops.elementwise import ACTIVATION_FUNCTIONS
from .ops.pool import POOL_FUNCTIONS

if TYPE_CHECKING:
    from torch import nn


def dumps_spec(spec: Mapping[str, Any]) -> str:
    """JSON text of a spec in the zoo's layout: top-level keys indented, one layer per line."""
    lines = ["{"]
    items = list(spec.items())
    for i, (k, v) in enumerate(items):
        comma = "," if i + 1 < len(items) else ""
        if k == "layers":
            lines.append(f"  {json.dumps(k)}: [")
            for j, layer in enumerate(v):
                lines.append(f"    {json.dumps(layer)}" + ("," if j + 1 < len(v) else ""))
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {json.dumps(k)}: {json.dumps(v)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ----- the CLI ------------------------------------------------------------------------------------
def add_import_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``import PKG.MOD:FACTORY --input C,H,W [-o FILE] [--name NAME]``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "import",
        help="trace a torch model (torch.fx) into a spec (needs archcalc[torch])",
        description="Trace an nn.Module with torch.fx (eval mode, nothing runs) and write the equivalent spec: one layer per "
        "module call or supported function. Exit 0 on success, 2 when the model cannot be traced or has a node archcalc "
        "has no layer type for (nothing is written then).",
    )
    p.add_argument(
        "factory",
        metavar="PKG.MOD:FACTORY",
        help="the model: an nn.Module, an nn.Module class or a no-argument factory, importable (the current directory is on the import path)",
    )
    p.add_argument("--input", required=True, help="per-sample input shape, no batch axis, e.g. 3,224,224")
    p.add_argument("-o", "--output", help="write the spec to this file (atomically) instead of stdout")
    p.add_argument("--name", help="the spec's name (default: the model's class name)")
    p.add_argument(
        "--output-key",
        metavar="KEY",
        help="for a model that returns a dict (torchvision's segmentation models: {'out': ...}), the key of the tensor that is the "
        "spec's output (default: the only tensor-valued key)",
    )
    p.set_defaults(func=run_import)
    return p


def _load_model(target: str) -> nn.Module:
    from .verify import load_module

    return load_module(target, field="factory", command="import")


def run_import(args: argparse.Namespace) -> int:
    """Run ``archcalc import``: write the spec; 0 on success.  Invalid input raises :class:`SpecError`."""
    import importlib.util

    from .verify import check_target

    if importlib.util.find_spec("torch") is None:  # (not imported: the refusals that need no torch come first)
        raise SpecError("import needs torch: pip install 'archcalc[torch]'")
    shape = getattr(args, "input", None)
    if not shape:
        raise SpecError("--input C,H,W is required (the per-sample input shape)", field="--input")
    parse_input(str(shape))  # a bad size is named before the model is loaded
    target = str(args.factory)
    check_target(target, field="factory")
    model = _load_model(target)
    try:
        spec = spec_from_module(model, str(shape), getattr(args, "name", None), getattr(args, "output_key", None))
    except SpecError as e:
        raise e.located(file=target) from None
    text = dumps_spec(spec)
    out = getattr(args, "output", None)
    if out and out != "-":
        write_output(text, out)
    else:
        sys.stdout.write(text)
    return 0


__all__ = ["ACTIVATION_FUNCTIONS", "POOL_FUNCTIONS", "add_import_parser", "dumps_spec", "module_type", "run_import", "spec_from_module", "trace"]
