"""Import handlers, one module per family; importing this package registers them all
(:mod:`archcalc.torch.registry`)."""

from . import attention, elementwise, modules, norm, pool, shape

__all__ = ["attention", "elementwise", "modules", "norm", "pool", "shape"]
