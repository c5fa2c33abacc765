"""Import handlers, one module per family; importing this package registers them all
(:mod:`archcalc.torch.registry`)."""

from . import elementwise, modules, norm, pool, shape

__all__ = ["elementwise", "modules", "norm", "pool", "shape"]
