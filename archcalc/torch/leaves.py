"""What a torch module is to archcalc: one rule, used by ``archcalc import`` and ``archcalc verify``.

:func:`classify` answers, for one module object:

* :class:`Leaf` -- a known layer: the class that defines the module's ``forward`` lives in
  torch.nn (or torch.ao.nn, or archcalc itself) and the module maps to an archcalc layer type
  (torch's class name lowercased: ``nn.Conv2d`` is ``conv2d``; a user subclass that keeps torch's
  ``forward`` is its base's type).  Import reads its fields from its attributes; verify hooks it.
  A torch.nn class archcalc has no type for is a leaf of unknown type (``kind`` None): import
  refuses it by name rather than tracing torch's internals.
* :class:`Composite` -- a module archcalc knows by its qualified class name (a string, so that
  timm is never imported) and handles as a whole: :data:`COMPOSITES`.
* ``None`` -- anything else: import traces into its ``forward`` and verify looks at its children
  and at the functions its ``forward`` calls.  A subclass of a torch layer with its own
  ``forward`` is *not* that layer: timm's ``BatchNormAct2d`` subclasses ``nn.BatchNorm2d`` but
  runs batch norm, dropout and an activation, so it is traced, and its activation is imported.

This mirrors torch.fx's own rule (``Tracer.is_leaf_module``: classes defined in torch.nn) with the
``forward`` test of fvcore's ``_has_forward``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..layers import TYPE_NAMES

if TYPE_CHECKING:
    from torch import nn

OWN_PREFIXES = ("torch.nn", "torch.ao.nn", "archcalc.")
"""Modules whose classes archcalc takes at their word: torch's layers and archcalc's own."""
CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict", "Module"})
"""torch.nn classes whose ``forward`` only calls their children (or that have none of their own:
``ModuleList`` inherits ``nn.Module``'s): traced through, never leaves."""
ALIASES = {
    "scaleddotproductattention": "scaled_dot_product_attention",  # archcalc's module for the sdpa layer
    "causalmask": "causal_mask",
    "dropout1d": "dropout", "dropout2d": "dropout", "dropout3d": "dropout", "alphadropout": "dropout", "featurealphadropout": "dropout"}
"""torch.nn classes that are another archcalc type (no extra fields, or fields the type has)."""
COMPOSITES: dict[str, str] = {}
"""Qualified class name -> the name of the handler (:mod:`archcalc.torch.ops.modules`) that
imports such a module as a whole (filled in by :func:`archcalc.torch.registry.handles_module`)."""


@dataclass(frozen=True)
class Leaf:
    """A module that is one layer: ``kind`` is its archcalc type (None: a torch.nn class archcalc has no type for)."""

    kind: str | None


@dataclass(frozen=True)
class Composite:
    """A module handled as a whole by name (:data:`COMPOSITES`)."""

    qualname: str


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def forward_owner(module: nn.Module) -> type:
    """The class in the module's MRO that defines the ``forward`` it runs."""
    for cls in type(module).__mro__:
        if "forward" in cls.__dict__:
            return cls
    return type(module)


def _own(cls: type) -> bool:
    return cls.__module__.startswith(OWN_PREFIXES)


def module_type(module: nn.Module) -> str | None:
    """The archcalc layer type of a torch.nn or archcalc module class (or a subclass that keeps its ``forward``).

    A user class is never taken for a layer by its name alone (a user ``Add`` module is traced
    through, not trusted); nor is a subclass that overrides ``forward``.
    """
    leaf = classify(module)
    return leaf.kind if isinstance(leaf, Leaf) else None


def classify(module: nn.Module) -> Leaf | Composite | None:
    """:class:`Leaf`, :class:`Composite` or None (trace into it): see the module docstring."""
    owner = forward_owner(module)
    if _own(owner):
        for cls in type(module).__mro__:
            if not issubclass(cls, owner):
                break
            kind = ALIASES.get(cls.__name__.lower(), cls.__name__.lower())
            if _own(cls) and kind in TYPE_NAMES:
                return Leaf(kind)
        if owner.__name__ not in CONTAINERS:
            return Leaf(None)
    name = qualified_name(type(module))
    if name in COMPOSITES:
        return Composite(name)
    return None


__all__ = ["ALIASES", "COMPOSITES", "CONTAINERS", "OWN_PREFIXES", "Composite", "Leaf", "classify", "forward_owner", "module_type", "qualified_name"]
