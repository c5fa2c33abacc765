"""The table of import handlers: one decorator, one table, a duplicate is an error.

A handler turns one fx node (a ``call_function`` or ``call_method``) into spec layers, or into a
value that later nodes read (a size, a tuple of pieces)::

    @handles("torch.permute", "Tensor.permute")
    def permute(imp: Importer, node: fx.Node) -> None: ...

Names are strings, spelled as user code reaches the function: ``"torch.permute"``,
``"torch.nn.functional.relu"``, ``"operator.add"`` (``a + b``), ``"Tensor.permute"`` (the method
``x.permute``).  They are resolved to torch's objects on first use, so a name this torch does not
have is skipped, and nothing here imports torch.  ``records=`` names the layer type a function
stands for when ``verify --module`` meets it in a model's own code (``F.relu`` is a ``relu``
layer); verify's recorder reads that table (:func:`recorded_kinds`).

:data:`IGNORED` lists the calls that make no layer and pass their tensor through unchanged
(``x.contiguous()``): free at inference and in every convention.

Composite modules (:mod:`archcalc.torch.leaves`) register with :func:`handles_module` under
their qualified class name, also a string.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .leaves import COMPOSITES

if TYPE_CHECKING:
    from torch import fx, nn

    from .importer import Importer

Handler = Callable[["Importer", "fx.Node"], None]
ModuleHandler = Callable[["Importer", "fx.Node", "nn.Module"], None]

HANDLERS: dict[str, Handler] = {}
"""Handler by name (``"torch.permute"``, ``"Tensor.permute"``)."""
RECORDS: dict[str, str] = {}
"""Name -> the layer type verify records a call of it as."""
PARAMS: dict[str, tuple[str, ...]] = {}
"""Name -> its parameters after the tensor, as the handler binds them: the model built from a spec calls a layer's
``function`` with those of them the layer sets, read from the layer's module (:mod:`archcalc.torch.build`)."""
MODULE_HANDLERS: dict[str, ModuleHandler] = {}
"""Qualified class name -> the handler of such a module (a composite)."""
IGNORED = frozenset({"Tensor.contiguous", "Tensor.clone", "Tensor.detach", "torch.Tensor.contiguous"})
"""Calls that make no layer: their value is their first argument."""

_ALIASES = {"F": "torch.nn.functional", "Tensor": "torch.Tensor"}
_EAGER = frozenset({"torch", "operator", "builtins", "Tensor", "F"})
"""Packages whose functions are resolved to objects when the table is built (already imported)."""


def register(name: str, handler: Handler, records: str | None = None, params: Sequence[str] | None = None) -> None:
    """Put ``handler`` in the table under ``name``; a name registered twice is an error.  ``params``: the
    function's parameter names, the tensor first (what the handler binds), for building its calls back."""
    if name in HANDLERS or name in IGNORED:
        raise ValueError(f"import handler for {name!r} registered twice")
    HANDLERS[name] = handler
    if records is not None:
        RECORDS[name] = records
    if params is not None:
        PARAMS[name] = tuple(params[1:])


def handles(*names: str, records: str | None = None, params: Sequence[str] | None = None) -> Callable[[Handler], Handler]:
    """Decorator: the function handles every call spelled by ``names``."""

    def deco(fn: Handler) -> Handler:
        for n in names:
            register(n, fn, records, params)
        return fn

    return deco


def handles_module(*qualnames: str) -> Callable[[ModuleHandler], ModuleHandler]:
    """Decorator: the function imports modules of these classes (qualified names) as a whole."""

    def deco(fn: ModuleHandler) -> ModuleHandler:
        for q in qualnames:
            if q in MODULE_HANDLERS:
                raise ValueError(f"module handler for {q!r} registered twice")
            MODULE_HANDLERS[q] = fn
            COMPOSITES[q] = fn.__name__
        return fn

    return deco


def resolve(name: str) -> Any:
    """The object ``name`` spells (``"torch.nn.functional.relu"``), or None if this torch lacks it."""
    head, _, rest = name.partition(".")
    head = _ALIASES.get(head, head)
    parts = f"{head}.{rest}".split(".") if rest else [head]
    for k in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        for attr in parts[k:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


class Table:
    """The registered handlers, resolved: by function object (``call_function``) and by method name."""

    def __init__(self) -> None:
        from . import ops  # noqa: F401  (registers every handler)

        self.functions: dict[Any, tuple[str, Handler | None]] = {}
        self.methods: dict[str, tuple[str, Handler | None]] = {}
        self.by_name: dict[str, tuple[str, Handler | None]] = {}
        for name, h in HANDLERS.items():
            self._add(name, h)
        for name in IGNORED:
            self._add(name, None)

    def _add(self, name: str, h: Handler | None) -> None:
        if name.startswith("Tensor."):
            self.methods.setdefault(name.removeprefix("Tensor."), (name, h))
            return
        self.by_name.setdefault(name, (name, h))
        if name.split(".", 1)[0] not in _EAGER:
            return  # torchvision's and timm's functions are found by their qualified name: neither is imported here
        obj = resolve(name)
        if obj is not None:
            self.functions.setdefault(obj, (name, h))

    def lookup(self, node: fx.Node) -> tuple[str, Handler | None] | None:
        """(registered name, handler) of the node; handler None: an ignored call; None: no handler."""
        if node.op == "call_method":
            return self.methods.get(str(node.target))
        try:
            found = self.functions.get(node.target)
        except TypeError:  # an unhashable target
            return None
        if found is None:
            t = node.target
            found = self.by_name.get(f"{getattr(t, '__module__', '')}.{getattr(t, '__qualname__', '')}")
        return found


@functools.cache
def table() -> Table:
    """The resolved table (built once per process)."""
    return Table()


def recorded_kinds() -> dict[Any, str]:
    """Function object (``F.relu``, ``torch.Tensor.relu``) -> the layer type verify records it as."""
    from . import ops  # noqa: F401

    out: dict[Any, str] = {}
    for name, kind in RECORDS.items():
        if name.split(".", 1)[0] not in _EAGER:
            continue
        obj = resolve(name)
        if obj is not None:
            out.setdefault(obj, kind)
    return out


__all__ = ["HANDLERS", "IGNORED", "MODULE_HANDLERS", "PARAMS", "RECORDS", "Handler", "ModuleHandler", "Table", "handles", "handles_module",
           "recorded_kinds", "register", "resolve", "table"]
