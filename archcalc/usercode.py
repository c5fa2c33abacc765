"""Guards around a user's own code (``verify --module``, ``import``): it runs inside archcalc's
process, and must neither end that process with a status archcalc did not choose nor write into
archcalc's output.

* ``os._exit(0)`` ends a process at once, past every ``except`` and ``finally``: a factory or a
  forward calling it made ``verify`` exit 0 with nothing checked (a false pass in CI).  While
  user code runs, ``os._exit`` raises ``SystemExit`` instead, which the callers report as an
  error naming the factory (exit 2).
* ``print`` in a module's top level, a factory or a forward went to standard output, into the
  spec that ``archcalc import`` writes there (invalid JSON, exit 0).  While user code runs,
  standard output is standard error.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import NoReturn


def _no_hard_exit(status: int = 0) -> NoReturn:
    raise SystemExit(f"os._exit({status})")


@contextlib.contextmanager
def user_code() -> Iterator[None]:
    """Run the body as a user's code: ``os._exit`` raises SystemExit, stdout goes to stderr."""
    hard_exit, stdout = os._exit, sys.stdout
    os._exit = _no_hard_exit
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        os._exit, sys.stdout = hard_exit, stdout
