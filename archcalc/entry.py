"""The ``archcalc`` command's entry point: nothing but the standard library is loaded before the
KeyboardInterrupt guard, so Ctrl-C at any moment (even while pydantic and sympy load, the first
few tenths of a second) ends with one line and exit 130, never a traceback."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    try:
        from .cli import main as run
    except KeyboardInterrupt:
        print("archcalc: interrupted", file=sys.stderr)
        return 130  # 128 + SIGINT, as shells report it
    return run(argv)
