"""Timing helpers shared by the benchmarks (never timed tests: machines here are shared and noisy).

Each in-process target is judged on the best (minimum) of N runs, with the median printed beside
it.  Python's own documentation gives the reason (timeit, "Note" under ``Timer.repeat``): "the
lowest value gives a lower bound for how fast your machine can run the given code snippet; higher
values in the result vector are typically not caused by variability in Python's speed, but by other
processes interfering with your timing accuracy."  On this shared 2-core host the median of the same
code swings about 2x between phases within minutes (the calibration loop below reads 12-51 ms), while
the best of N moves far less; the median and the calibration are printed so that a reader sees which
phase a figure was taken in.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """(best, median) seconds of ``fn()`` over ``runs`` calls."""
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), statistics.median(ts)


def host_speed() -> float:
    """Milliseconds for a fixed pure-Python loop (best of 5): this host's speed swings ~2x within
    minutes, and printing this beside the figures says which phase they were taken in."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        x = 0
        for i in range(300_000):
            x += i * i
        best = min(best, time.perf_counter() - t0)
    return best * 1e3
