"""The ``archcalc`` command's entry point: nothing but the standard library is loaded before the
KeyboardInterrupt guard, so Ctrl-C at any moment (even while pydantic and sympy load, the first
few tenths of a second) ends with one line and exit 130, never a traceback.

A Ctrl-C inside a compiled extension's own import is worse: pydantic_core (Rust, pyo3) imports
``datetime`` while it loads, and a KeyboardInterrupt there makes pyo3 panic, print a Rust panic
message and raise its ``PanicException`` (a BaseException, not a KeyboardInterrupt).  So the guard
loads pydantic_core first with the signal held back (it takes effect once the import is done), and
any exception that follows a SIGINT is the interruption.

Once the command is done, a SIGINT changes nothing: the guard records it and raises nothing.  Called
by the program's main module (the console script, ``python -m archcalc``), whose process ends when
it returns, it then ignores SIGINT: CPython's teardown puts the default action back
(``_PySignal_Fini``), and a Ctrl-C in those last milliseconds killed the finished command (exit -2,
as shells report 130, with no line); called from other code, it puts that code's handler back."""

from __future__ import annotations

import signal
import sys
from types import FrameType


def main(argv: list[str] | None = None) -> int:
    program = sys._getframe(1).f_globals.get("__name__") == "__main__"  # the process ends when this returns
    interrupted: list[int] = []
    holding = [True]

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        interrupted.append(signum)
        if not holding[0]:
            raise KeyboardInterrupt  # as Python's own handler does

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread: Python's handling stays
        previous = None
        holding[0] = False
    try:
        try:
            import pydantic_core  # noqa: F401  (see the module docstring)
        except ImportError:  # (a broken install is cli's to report)
            pass
        finally:
            holding[0] = False
        if interrupted:
            raise KeyboardInterrupt
        from .cli import main as run

        return run(argv)
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt) or (interrupted and not isinstance(e, SystemExit)):
            print("archcalc: interrupted", file=sys.stderr)
            return 130  # 128 + SIGINT, as shells report it
        raise
    finally:
        holding[0] = True  # done: a SIGINT from here on is recorded, not raised
        if previous is not None:
            signal.signal(signal.SIGINT, signal.SIG_IGN if program else previous)
