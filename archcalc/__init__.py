"""archcalc: static architecture analysis and exact cost calculator for neural networks.

>>> from archcalc import analyze
>>> analyze("specs/alexnet.json").totals["params"]
61100840
"""

from .errors import SpecError
from .report import Report, Row, analyze
from .spec import Architecture, load_spec, parse_spec

__version__ = "0.1.0"
__all__ = ["Architecture", "Report", "Row", "SpecError", "analyze", "load_spec", "parse_spec"]
