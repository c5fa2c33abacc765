"""Assert in your own tests that a model matches its archcalc spec.

    from archcalc.assertions import assert_matches

    def test_my_net_matches_its_spec():
        assert_matches("specs/mynet.json", MyNet())

With the pytest plugin (``archcalc.pytest_plugin``) the same function is the ``archcalc_verify``
fixture.  Needs torch (``archcalc[torch]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .spec import Architecture
    from .torch.verify import VerifyResult


def assert_matches(
    spec_path: str | Path | Architecture | Mapping[str, Any],
    module: Any = None,
    input_shape: Sequence[int | str] | str | None = None,
    **options: Any,
) -> VerifyResult:
    """Raise ``AssertionError`` unless every layer of ``module`` matches the spec.

    Compares output shapes, parameter counts and MACs (convention ``torch``) layer by layer, as
    :func:`archcalc.torch.verify.verify_spec` does (its docstring gives the matching rule); the
    message names the first wrong layer and lists every wrong value.  ``module=None`` checks the
    spec against the module built from it.  ``options`` go to ``verify_spec`` (``values``,
    ``batch``, ``device``, ``output_key`` for a model that returns a dict).  Returns the :class:`~archcalc.torch.verify.VerifyResult` when all match.
    """
    __tracebackhide__ = True
    from .torch.verify import verify_spec

    result = verify_spec(spec_path, module, input_shape, **options)
    if not result.ok:
        raise AssertionError(result.failure_message())
    return result


__all__ = ["assert_matches"]
