"""Handlers of composite modules: classes archcalc imports as a whole, keyed by qualified name
(strings: no third-party package is imported to register them; :mod:`archcalc.torch.leaves`)."""

from __future__ import annotations
