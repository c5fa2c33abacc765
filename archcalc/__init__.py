"""archcalc: static architecture analysis and exact cost calculator for neural networks.

>>> from archcalc import analyze
>>> analyze("specs/alexnet.json").totals["params"]
61100840

The names below load on first use (PEP 562), so that ``import archcalc.entry`` (the command's
entry point) costs nothing and a Ctrl-C pressed while the rest loads is caught there.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import SpecError
    from .report import Report, Row, analyze
    from .spec import Architecture, load_spec, parse_spec

__version__ = "0.1.0"
__all__ = ["Architecture", "Report", "Row", "SpecError", "analyze", "load_spec", "parse_spec"]
_HOME = {
    "SpecError": ".errors",
    **dict.fromkeys(("Report", "Row", "analyze"), ".report"),
    **dict.fromkeys(("Architecture", "load_spec", "parse_spec"), ".spec"),
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'archcalc' has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value
