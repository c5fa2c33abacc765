"""Build a runnable ``torch.nn.Module`` from a compiled spec graph.

    G = compile_spec(load_spec("specs/resnet50.json"))
    shapes(G)
    model = build_module(G, device="meta")   # no memory for the weights
    y = model(torch.zeros(1, 3, 224, 224, device="meta"))

The module holds one submodule per spec layer (each made by the layer's own ``build_torch``) in
an ordered ``nn.ModuleDict``.  Torch forbids dots in submodule names, so the keys are sanitized
spec names (``layer1.0.conv1`` -> ``layer1_0_conv1``); ``keys`` maps a spec name to its key and
``spec_names`` maps back.  ``forward`` runs the layers in ``G.graph["order"]``, feeding each one
its inputs in the node's order (``"input"`` is the network input), and returns the output of
``G.graph["output"]``.

Training-only layers (auxiliary heads) are built but run only in training mode, or when
``run_training_only`` is set (the measurement uses that to measure them in eval mode).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any, NamedTuple

import networkx as nx
import torch
from torch import nn

from ..dims import as_int
from ..errors import SpecError
from ..functions import FUNCTIONS, function_kind_error, split
from ..graph import INPUT
from ..layers.base import shape_str
from .extra_modules import retyped

_RESERVED = set(dir(nn.ModuleDict()))


def sanitize(name: str, taken: set[str]) -> str:
    """A ModuleDict key for spec name ``name``: no dots, not an attribute, unique among ``taken``."""
    key = re.sub(r"[^0-9A-Za-z_]", "_", name) or "layer"
    if key in _RESERVED or key.startswith("_"):
        key = "l_" + key
    base, n = key, 2
    while key in taken:
        key = f"{base}_{n}"
        n += 1
    taken.add(key)
    return key


def numeric_shape(shape: Any, name: str) -> tuple[int, ...]:
    out = []
    for d in shape:
        v = as_int(d)
        if v is None:
            raise SpecError(
                f"output shape {shape_str(shape)} is symbolic; torch needs numbers (give the input or symbols numbers: --input/--set)",
                layer=name,
            )
        out.append(v)
    return tuple(out)


class SpecModule(nn.Module):
    """A spec graph as a torch module (see the module docstring)."""

    def __init__(
        self,
        name: str,
        input_shape: tuple[int, ...],
        order: list[str],
        inputs: dict[str, list[str]],
        modules: dict[str, nn.Module],
        training_only: set[str],
        output: str,
    ) -> None:
        super().__init__()
        self.spec_name = name
        self.input_shape = input_shape
        self.order = list(order)
        self.inputs = {k: list(v) for k, v in inputs.items()}
        self.training_only = set(training_only)
        self.output = output
        self.run_training_only = False
        self.input_dtype: torch.dtype | None = None  # the input's dtype when it is not the weights' (token ids: torch.long)
        self.layers = nn.ModuleDict()
        self.keys: dict[str, str] = {}
        taken: set[str] = set()
        for spec_name in self.order:
            key = sanitize(spec_name, taken)
            self.keys[spec_name] = key
            self.layers[key] = modules[spec_name]
        self.spec_names = {k: n for n, k in self.keys.items()}
        # free each intermediate result after its last consumer (real-tensor runs of big nets)
        last: dict[str, int] = {}
        for step, n in enumerate(self.order):
            for src in self.inputs[n]:
                last[src] = step
        self._free_after: list[list[str]] = [[] for _ in self.order]
        for src, step in last.items():
            if src != self.output:
                self._free_after[step].append(src)

    def layer(self, spec_name: str) -> nn.Module:
        """The submodule of spec layer ``spec_name``."""
        return self.layers[self.keys[spec_name]]

    def named_layers(self) -> Iterator[tuple[str, nn.Module]]:
        """(spec name, submodule) in execution order."""
        for n in self.order:
            yield n, self.layers[self.keys[n]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        run_aux = self.training or self.run_training_only
        values: dict[str, torch.Tensor] = {INPUT: x}
        for step, name in enumerate(self.order):
            if run_aux or name not in self.training_only:
                try:
                    args = [values[i] for i in self.inputs[name]] if self.inputs[name] else [x.shape[0]]  # a source: the batch size
                except KeyError as e:
                    raise RuntimeError(f"layer {name!r} needs {e.args[0]!r}, a training-only layer that did not run") from None
                values[name] = self.layers[self.keys[name]](*args)
            for src in self._free_after[step]:
                values.pop(src, None)
        return values[self.output]

    def extra_repr(self) -> str:
        return f"spec={self.spec_name!r}, input={shape_str(self.input_shape)}"


def build_module(G: nx.DiGraph[str], device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> SpecModule:
    """The torch module of compiled graph ``G``; ``device="meta"`` allocates no weights.

    Runs the shape pass if it has not run yet.  Every shape must be a number (bind symbols with
    ``compile_spec(..., values=..., input_shape=...)``), else :class:`SpecError`.
    """
    from ..passes import shapes

    if "shape" not in G.nodes[INPUT]:
        shapes(G)
    input_shape = numeric_shape(G.graph["input_shape"], INPUT)
    modules: dict[str, nn.Module] = {}
    inputs: dict[str, list[str]] = {}
    training: set[str] = set()
    ctx = torch.device(device) if device is not None else contextlib.nullcontext()
    with ctx:
        for name in G.graph["order"]:
            node = G.nodes[name]
            ins = [numeric_shape(G.nodes[i]["shape"], i) for i in node["inputs"]]
            numeric_shape(node["shape"], name)
            try:
                mod = node["layer"].build_torch(ins)
            except SpecError as e:
                raise e.located(layer=name) from None
            except NotImplementedError as e:
                raise SpecError(str(e), layer=name) from None
            if node["layer"].function is not None:
                mod = called_as(mod, node["layer"], name)
            if dtype is not None:
                mod = mod.to(dtype)
            modules[name] = mod
            inputs[name] = list(node["inputs"])
            if node["training_only"]:
                training.add(name)
    for name in G.graph["order"]:
        for wname, src in G.nodes[name].get("tied", {}).items():  # one tensor for both layers (GPT-2: lm_head.weight = wte.weight)
            setattr(modules[name], wname, modules[src].weight)
    model = SpecModule(str(G.graph["name"]), input_shape, G.graph["order"], inputs, modules, training, G.graph["output"])
    if reads_token_ids(G):
        model.input_dtype = torch.long
    return model


class _Call(NamedTuple):
    """How a module built for a layer with a ``function`` computes it: ``getattr(owner, attr)(*xs, *operands, **kwargs)``,
    the operands from the module's ``function_args(*xs)`` where it holds one (``operand``)."""

    function: str
    owner: Any
    attr: str
    operand: bool
    kwargs: dict[str, Any]


_CALLING: dict[type, type] = {}


def _owner(name: str) -> Any:
    """The object holding the functions of owner ``name`` (one of archcalc.functions.OWNERS), by this fixed table: a
    spec's text is never imported.  None where this installation lacks it (torchvision)."""
    import operator

    from . import idioms

    fixed: dict[str, Any] = {"F": nn.functional, "Tensor": torch.Tensor, "torch": torch, "operator": operator,
                             "archcalc.torch.idioms": idioms}
    if name in fixed:
        return fixed[name]
    try:
        if name == "torchvision.models.swin_transformer":
            import torchvision.models.swin_transformer as swin
            return swin
        if name == "torchvision.ops.stochastic_depth":
            import torchvision.ops.stochastic_depth as sd
            return sd
    except ImportError:
        return None
    return None


def _call_forward(self: nn.Module, *xs: torch.Tensor) -> Any:
    # the function is looked up at each call, as user code's F.relu(x) is: a peer that patches it (ptflops) sees the call
    call: _Call = self.__dict__["_call"]
    held: Any = getattr(self, "function_args", None)
    operands = held(*xs) if call.operand else ()  # (read now: x's rank, the module's current tensors)
    return getattr(call.owner, call.attr)(*xs, *operands, **call.kwargs)


def _call_repr(self: nn.Module) -> str:
    torch_class: Any = type(self).__mro__[1]
    base = torch_class.extra_repr(self)  # the torch class's own settings
    return ", ".join(x for x in (base, f"called as {self.__dict__['_call'].function}") if x)


def called_as(mod: nn.Module, layer: Any, name: str) -> nn.Module:
    """``mod`` computing its layer by the layer's ``function`` (``F.relu(x)``, ``x.softmax(1)``), as the imported model
    did: a subclass of its class (the same layer type to verify) whose ``forward`` makes that call with the layer's
    settings that are parameters of the function, read from the module (torch's types).  Peers that hook modules by
    exact class (thop, ptflops) then see no module, only the function, as on the user's model."""
    from . import ops  # noqa: F401  (registers the handlers, and the parameters of their functions)
    from .registry import PARAMS

    function = str(layer.function)
    if function not in FUNCTIONS:  # (a layer validated at spec load cannot get here; one made otherwise must not either)
        raise SpecError(f"{function!r} is not a function archcalc knows", layer=name, field="function")
    owner_name, attr = split(function)
    qualified = "torch.nn.functional." + attr if owner_name == "F" else function
    owner = _owner(owner_name)
    if owner is None or getattr(owner, attr, None) is None:
        raise SpecError(f"function {function!r} is not a function of this torch", layer=name, field="function")
    params = PARAMS.get(qualified, ())
    wrong = function_kind_error(function, layer.kind)  # (checked at spec load too: a layer made otherwise must not pass either)
    if wrong is not None:
        raise SpecError(wrong, layer=name, field="function")
    held: Any = getattr(mod, "function_args", None)
    if held is not None:  # an operand the layer holds (x * 0.5, gamma * x): the module says it
        try:
            held(torch.empty(0))
        except NotImplementedError as e:
            raise SpecError(f"cannot build it as a call of {function}: {e}", layer=name, field="function") from None
    settings = layer.model_fields_set - {"name", "type", "inputs", "when", "unless", "training_only", "function"}
    if held is None and not params and settings:  # (a + b, torch.add(a, b): tensors only)
        raise SpecError(f"cannot build a call of {function} with {', '.join(sorted(settings))}: archcalc does not know its "
                        "arguments", layer=name, field="function")
    # the layer's settings (defaults too: softmax's dim) and the tensors the module holds (a norm's weight and running mean)
    kwargs = {k: getattr(mod, k) for k in params if hasattr(mod, k) and (k in type(layer).model_fields or isinstance(getattr(mod, k), torch.Tensor))}
    retyped(mod, _CALLING, forward=_call_forward, extra_repr=_call_repr)
    mod.__dict__["_call"] = _Call(function, owner, attr, held is not None, kwargs)
    return mod


def reads_token_ids(G: nx.DiGraph[str]) -> bool:
    """True when the spec's input is token ids (a layer that reads it takes indices: an embedding)."""
    return any(G.nodes[n]["layer"].takes_indices for n in G.graph["order"] if INPUT in G.nodes[n]["inputs"])


__all__ = ["SpecModule", "build_module", "numeric_shape", "reads_token_ids", "sanitize"]
