"""Import handlers, one module per family; importing this package registers them all
(:mod:`archcalc.torch.registry`)."""

from . import elementwise, modules, pool, shape

__all__ = ["elementwise", "modules", "pool", "shape"]
