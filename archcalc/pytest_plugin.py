"""pytest plugin: the ``archcalc_verify`` fixture.

Registered as a ``pytest11`` entry point, so it is active wherever archcalc is installed::

    def test_net_matches_spec(archcalc_verify):
        archcalc_verify("specs/mynet.json", MyNet(), input_shape=(3, 32, 32))

The fixture is :func:`archcalc.assertions.assert_matches`: it fails the test with a per-layer
message naming the first layer whose output shape, params or MACs differ from the spec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def archcalc_verify() -> Callable[..., Any]:
    """``archcalc_verify(spec_path, module, input_shape=None, **options)``: assert the model matches
    its spec (``options``: ``values``, ``batch``, ``device``, ``output_key`` for a dict output)."""
    from .assertions import assert_matches

    return assert_matches
