"""Measured throughput and the roofline: ``archcalc bench SPEC``.

    r = bench_spec("specs/resnet18.json", device="cpu", batch=1, repeat=30)
    print(render_bench(r, "text"))

What one bench does, in order:

1. builds the spec's module (:func:`archcalc.torch.build.build_module`), eval mode, a random
   input of ``(batch, *input)``; ``channels_last`` converts both, ``compile`` wraps the module in
   ``torch.compile``; ``float16``/``bfloat16`` run under AMP (``torch.autocast``, weights stay
   float32);
2. times the forward in ``torch.inference_mode``: ``warmup`` untimed runs, then ``repeat`` timed
   runs, each on its own (CPU: ``time.perf_counter``; CUDA: CUDA events on a synchronised
   device, ``cudnn.benchmark`` on).  Images/s: median, p25, p75; the coefficient of variation of
   the run times (a CV above 10% is reported in ``warnings``);
3. achieved FLOP/s = the analytic FLOPs per image (``torch`` convention: 2 x conv/linear MACs)
   x the median images/s, against the probed peak (:mod:`archcalc.torch.roofline`);
4. per layer (``per_layer``): ``repeat`` more runs with synchronised pre/post forward hooks on
   every spec layer (``perf_counter``; ``torch.cuda.synchronize`` in each hook on CUDA), the mean
   time of each layer beside its roofline time max(FLOPs / peak, bytes / bandwidth).  Hooked runs
   are separate from the timed runs so that the hooks' overhead and synchronisations never
   touch the throughput figures; a layer's measured time includes its hooks' overhead, so its
   share of the roofline is, if anything, understated.  The whole network's share is the sum of
   the layers' roofline times over the median (unhooked) run time;
5. ``train``: the same timing for a training step (forward, mean of the output as the loss,
   backward, SGD step with momentum; GradScaler for float16 on CUDA) beside the analytic
   estimate of 3 x the forward FLOPs (forward 1x, backward 2x: gradients of the inputs and of
   the weights; training-only heads run forward only and count 1x).

Every roofline share must be <= 1: a layer faster than its roofline means the probe
underestimated the machine.  If that happens the probe is measured again, stronger (longer,
bigger, best-of-N), merged into the cache, and the roofline recomputed; a share still above 1 is
reported in ``warnings``, never hidden.

This module imports torch lazily: ``add_bench_parser`` costs the CLI nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from ..options import check_set_names, parse_set, whole_number
from ..output import format_for, write_output

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..report import Report
    from ..spec import Architecture
    from .roofline import LayerRoof, Probe

DTYPES = ("float32", "float16", "bfloat16")
FORMATS = ("text", "json", "markdown")
CV_LIMIT = 0.10
"""A run whose coefficient of variation exceeds this is flagged in ``warnings``."""
BUSY_LIMIT = 0.25
"""Warn when other processes kept more than this share of the CPUs busy just before a CPU bench."""
PROGRESS_AFTER_S = 2.0
"""Show a progress line on stderr when the timed runs are expected to take longer than this."""
TRAIN_FACTOR = 3
FLOPS_CONVENTION = "torch"
TRAIN_CONVENTION = (
    "training step = 3 x forward FLOPs (forward 1x, backward 2x: input and weight gradients), "
    "torch convention; training-only heads count 1x (forward only); optimizer and loss not counted"
)


class BenchError(RuntimeError):
    """Torch failed while benchmarking (the message says in which phase)."""


# -- statistics --------------------------------------------------------------------------------


def _quantiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(p25, median, p75), linear interpolation between order statistics."""
    if len(values) == 1:
        v = float(values[0])
        return v, v, v
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[1], q[2]


@dataclass(frozen=True)
class TimeStats:
    """Seconds per run (one run = one batch)."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return _quantiles(self.runs)[1]

    @property
    def p25(self) -> float:
        return _quantiles(self.runs)[0]

    @property
    def p75(self) -> float:
        return _quantiles(self.runs)[2]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.runs)

    @property
    def stdev(self) -> float:
        return statistics.stdev(self.runs) if len(self.runs) > 1 else 0.0

    @property
    def cv(self) -> float:
        """Coefficient of variation: standard deviation / mean of the run times."""
        return self.stdev / self.mean if self.mean > 0 else 0.0

    def rates(self, batch: int) -> tuple[float, float, float]:
        """Images/s (p25, median, p75), quantiles of the per-run rates."""
        return _quantiles([batch / t for t in self.runs])

    def to_json(self, batch: int) -> dict[str, Any]:
        p25, med, p75 = self.rates(batch)
        return {
            "time_s": {
                "median": self.median,
                "p25": self.p25,
                "p75": self.p75,
                "mean": self.mean,
                "stdev": self.stdev,
                "min": min(self.runs),
                "max": max(self.runs),
                "n": len(self.runs),
                "runs": list(self.runs),
            },
            "images_per_s": {"median": med, "p25": p25, "p75": p75},
            "cv": self.cv,
        }


# -- the result --------------------------------------------------------------------------------


@dataclass
class TrainResult:
    stats: TimeStats
    batch: int
    flops_per_image: int
    """Analytic: 3 x the forward FLOPs (see ``TRAIN_CONVENTION``)."""
    forward_flops_per_image: int
    peak_flops: float | None = None
    """The probe's peak (set once the probe has run)."""
    optimizer: str = "SGD(lr=1e-3, momentum=0.9)"
    loss: str = "mean of the output (float32)"
    grad_scaler: bool = False

    @property
    def images_per_s(self) -> float:
        return self.stats.rates(self.batch)[1]

    @property
    def achieved_flops(self) -> float:
        return self.flops_per_image * self.images_per_s

    @property
    def fraction_of_peak(self) -> float | None:
        return self.achieved_flops / self.peak_flops if self.peak_flops else None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.stats.to_json(self.batch),
            "analytic_flops_per_image": self.flops_per_image,
            "analytic_flops_per_batch": self.flops_per_image * self.batch,
            "forward_flops_per_image": self.forward_flops_per_image,
            "convention": TRAIN_CONVENTION,
            "achieved_flops": self.achieved_flops,
            "fraction_of_peak": self.fraction_of_peak,
            "optimizer": self.optimizer,
            "loss": self.loss,
            "grad_scaler": self.grad_scaler,
        }


@dataclass
class BenchResult:
    """Everything one bench measured (``to_json`` has every figure)."""

    name: str
    device: str
    device_name: str
    torch_version: str
    threads: int
    batch: int
    dtype: str
    amp: bool
    channels_last: bool
    compile: bool
    warmup: int
    repeat: int
    params: int
    flops_per_image: int
    stats: TimeStats
    probe: Probe | None = None
    probe_cached: bool = False
    layers: list[LayerRoof] = field(default_factory=list)
    hooked_stats: TimeStats | None = None
    train: TrainResult | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)

    # -- throughput --
    @property
    def images_per_s(self) -> float:
        return self.stats.rates(self.batch)[1]

    @property
    def cv(self) -> float:
        return self.stats.cv

    @property
    def achieved_flops(self) -> float:
        """FLOP/s: analytic FLOPs per image (torch convention) x median images/s."""
        return self.flops_per_image * self.images_per_s

    @property
    def peak_flops(self) -> float | None:
        return self.probe.peak_flops if self.probe else None

    @property
    def fraction_of_peak(self) -> float | None:
        return self.achieved_flops / self.probe.peak_flops if self.probe else None

    # -- roofline --
    @property
    def predicted_s(self) -> float | None:
        """The whole network's roofline time: the sum of its layers' (layers run one after another)."""
        return sum(lr.predicted_s for lr in self.layers) if self.layers else None

    @property
    def roofline_fraction(self) -> float | None:
        """Roofline time / median measured time of the whole network (<= 1)."""
        p = self.predicted_s
        return p / self.stats.median if p is not None and self.stats.median > 0 else None

    @property
    def bytes_per_batch(self) -> int:
        return sum(lr.bytes for lr in self.layers)

    def violations(self) -> list[str]:
        """Figures above the roof (each means the probe underestimated the machine)."""
        out = []
        if self.fraction_of_peak is not None and self.fraction_of_peak > 1:
            out.append(f"achieved {_gflops(self.achieved_flops)} is {self.fraction_of_peak:.2f}x the probed peak")
        tf = self.train.fraction_of_peak if self.train is not None else None
        if self.train is not None and tf is not None and tf > 1:
            out.append(f"training achieved {_gflops(self.train.achieved_flops)} is {tf:.2f}x the probed peak")
        f = self.roofline_fraction
        if f is not None and f > 1:
            out.append(f"the whole network reaches {f:.2f}x its roofline")
        out.extend(f"layer {lr.name!r} reaches {lr.fraction:.2f}x its roofline" for lr in self.layers if lr.fraction is not None and lr.fraction > 1)
        return out

    def to_json(self) -> dict[str, Any]:
        p25, med, p75 = self.stats.rates(self.batch)
        roof: dict[str, Any] | None = None
        if self.probe is not None and self.layers:
            roof = {
                "peak_flops": self.probe.peak_flops,
                "bandwidth": self.probe.bandwidth,
                "ridge_intensity": self.probe.ridge,
                "predicted_s": self.predicted_s,
                "measured_s": self.stats.median,
                "fraction": self.roofline_fraction,
                "bytes_per_batch": self.bytes_per_batch,
                "intensity": self.flops_per_image * self.batch / self.bytes_per_batch if self.bytes_per_batch else None,
                "per_layer_measured_total_s": sum(lr.measured_s or 0.0 for lr in self.layers),
                "hooked_run_median_s": self.hooked_stats.median if self.hooked_stats else None,
                "layers": [lr.to_json() for lr in self.layers],
            }
        return {
            "name": self.name,
            "device": self.device,
            "device_name": self.device_name,
            "torch_version": self.torch_version,
            "threads": self.threads,
            "batch": self.batch,
            "dtype": self.dtype,
            "amp": self.amp,
            "channels_last": self.channels_last,
            "compile": self.compile,
            "mode": "inference",
            "warmup": self.warmup,
            "repeat": self.repeat,
            "params": self.params,
            "flops_convention": FLOPS_CONVENTION,
            "flops_per_image": self.flops_per_image,
            "flops_per_batch": self.flops_per_image * self.batch,
            **self.stats.to_json(self.batch),
            "images_per_s": {"median": med, "p25": p25, "p75": p75},
            "achieved_flops": self.achieved_flops,
            "peak_flops": self.peak_flops,
            "fraction_of_peak": self.fraction_of_peak,
            "probe": ({**self.probe.to_json(), "cached": self.probe_cached} if self.probe else None),
            "roofline": roof,
            "train": self.train.to_json() if self.train else None,
            "environment": self.environment,
            "warnings": self.warnings,
            "notes": self.notes,
        }

    def plot(self, path: str | Path) -> int:
        """Write the roofline PNG; return the number of layers shown (ImportError without matplotlib)."""
        from .roofline import plot_roofline

        if self.probe is None:
            raise ValueError("no probe: the roofline plot needs the machine's limits")
        whole = None
        if self.bytes_per_batch:
            whole = (self.flops_per_image * self.batch / self.bytes_per_batch, self.achieved_flops)
        title = f"{self.name}, {self.device_name}, batch {self.batch}, {self.dtype}"
        return plot_roofline(
            path,
            self.layers,
            peak_flops=self.probe.peak_flops,
            bandwidth=self.probe.bandwidth,
            dram_bandwidth=self.probe.dram_bandwidth,
            whole=whole,
            title=title,
        )


# -- running -----------------------------------------------------------------------------------


class _Progress:
    """One stderr line, rewritten in place, for runs expected to take longer than ~2 s."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label, self.enabled, self.last, self.shown = label, enabled, 0.0, False
        self.tty = enabled and sys.stderr.isatty()

    def update(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if not self.tty:  # a log, not a terminal: one line, no carriage returns
            if not self.shown:
                sys.stderr.write(f"{self.label}: {total} runs\n")
                sys.stderr.flush()
                self.shown = True
            return
        now = time.perf_counter()
        if done < total and now - self.last < 0.1:
            return
        self.last, self.shown = now, True
        width = 24
        fill = width * done // max(total, 1)
        sys.stderr.write(f"\r{self.label} [{'#' * fill}{'.' * (width - fill)}] {done}/{total}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.shown and self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.shown = False


def _timed_runs(fn: Callable[[], object], device: torch.device, n: int, progress: _Progress | None = None) -> list[float]:
    """Seconds of each of ``n`` runs of ``fn``, each on its own (see :func:`roofline.time_calls`)."""
    from .roofline import time_calls

    out: list[float] = []
    for i in range(n):
        out.append(time_calls(fn, device, inner=1, repeats=1)[0])
        if progress is not None:
            progress.update(i + 1, n)
    if progress is not None:
        progress.close()
    return out


@contextlib.contextmanager
def _layer_hooks(model: nn.Module, device: torch.device) -> Iterator[dict[str, list[float]]]:
    """Synchronised pre/post forward hooks on every spec layer: seconds of each call, by name."""
    from .roofline import synchronize

    times: dict[str, list[float]] = {}
    started: list[float] = []
    handles = []
    named_layers = getattr(model, "named_layers", None)  # a SpecModule: one entry per spec layer
    named = named_layers() if callable(named_layers) else model.named_children()
    for name, mod in named:

        def pre(_m: nn.Module, _args: Any) -> None:
            synchronize(device)
            started.append(time.perf_counter())

        def post(_m: nn.Module, _args: Any, _out: Any, name: str = name) -> None:
            synchronize(device)
            times.setdefault(name, []).append(time.perf_counter() - started.pop())

        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post))
    try:
        yield times
    finally:
        for h in handles:
            h.remove()


def _amp(device: torch.device, dtype: str) -> contextlib.AbstractContextManager[Any]:
    import torch

    from .roofline import TORCH_DTYPES

    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=TORCH_DTYPES[dtype])


def _check_options(device: str, batch: int, dtype: str, warmup: int, repeat: int) -> None:
    """The options' own checks (no torch: see :func:`bench_spec`)."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise SpecError(f"device must be cpu or cuda (cuda:N), got {device!r}", field="--device")
    if dtype not in DTYPES:
        raise SpecError(f"bench runs {', '.join(DTYPES)}, got {dtype!r}", field="--dtype")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise SpecError(f"--batch must be a positive integer, got {batch!r}", field="--batch")
    if warmup < 0:
        raise SpecError(f"--warmup must be >= 0, got {warmup}", field="--warmup")
    if repeat < 1:
        raise SpecError(f"--repeat must be >= 1, got {repeat}", field="--repeat")


def cpu_busy(interval: float = 0.25) -> float | None:
    """Share of all CPUs busy over ``interval`` seconds while this process sleeps (Linux ``/proc/stat``).

    Measured before any run: what other processes take from the machine.  None where unknown.
    """

    def sample() -> tuple[int, int] | None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        if len(fields) < 4:
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]), idle

    a = sample()
    if a is None:
        return None
    time.sleep(interval)
    b = sample()
    if b is None or b[0] <= a[0]:
        return None
    return 1.0 - (b[1] - a[1]) / (b[0] - a[0])


def _environment(device: torch.device) -> dict[str, Any]:
    import platform

    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "interop_threads": torch.get_num_interop_threads(),
    }
    with contextlib.suppress(OSError, AttributeError):
        env["load_average_1min"] = os.getloadavg()[0]
    busy = cpu_busy()
    if busy is not None:
        env["cpu_busy_before"] = busy
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()  # type: ignore[no-untyped-call]
        env["cudnn_benchmark"] = True
        env["tf32_conv"] = bool(torch.backends.cudnn.allow_tf32)
        env["tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
    return env


def bench_spec(
    spec: Architecture | str | Path,
    device: str = "cpu",
    batch: int = 1,
    dtype: str = "float32",
    channels_last: bool = False,
    compile: bool = False,
    warmup: int = 5,
    repeat: int = 30,
    train: bool = False,
    per_layer: bool = True,
    *,
    probe: bool | Probe = True,
    refresh_probe: bool = False,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    values: Mapping[str, int] | None = None,
    input_shape: Sequence[int | str] | None = None,
    module: nn.Module | None = None,
    threads: int | None = None,
) -> BenchResult:
    """Benchmark a spec with torch (see the module docstring for what is measured and how).

    ``probe``: True measures (or reads from the cache) the machine's limits; False skips the
    probe and the roofline; a :class:`Probe` is used as given.  ``cache_dir`` overrides the probe
    cache directory (default ``$ARCHCALC_CACHE_DIR`` or ``~/.cache/archcalc``).  ``module``: an
    already-built module of the same spec (``build_module``) to bench instead of building one;
    ``train`` updates its weights.  ``threads``: ``torch.set_num_threads`` first.
    """
    from types import SimpleNamespace

    from ..graph import compile_spec
    from ..report import gc_paused, report_from_graph
    from ..spec import Architecture, load_spec
    from .limits import check_fits, check_int64

    # what needs no torch first (torch's import alone takes seconds and ~650 MB): the options, the
    # spec, its sizes and, on CPU, whether it fits in memory (review s7 #30)
    _check_options(device, batch, dtype, warmup, repeat)
    if threads is not None and threads < 1:
        raise SpecError(f"--threads must be positive, got {threads}", field="--threads")
    file = None if isinstance(spec, Architecture) else str(spec)
    try:
        with gc_paused():
            arch = spec if isinstance(spec, Architecture) else load_spec(spec)
            G = compile_spec(arch, values=values, input_shape=input_shape)
            report = report_from_graph(G, convention=FLOPS_CONVENTION, dtype=dtype, batch=batch)
        if report.symbolic:
            raise SpecError("the spec has symbolic sizes; give them numbers (--input/--set) to run it")
        check_int64(report)  # torch's sizes are int64: refuse a 10**30 dimension here, not with a C++ frame dump
        if device == "cpu":  # too big for this machine: refused before allocating (CUDA's free memory needs torch)
            check_fits(report, SimpleNamespace(type="cpu"), train=train, weights=module is None)
    except SpecError as e:
        raise e.located(file=file) from None

    import torch

    from . import roofline as rl
    from .build import build_module

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SpecError("CUDA is not available here (torch.cuda.is_available() is false)", field="--device")
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        if dev.type != "cpu":
            check_fits(report, dev, train=train, weights=module is None)
        model = module if module is not None else build_module(G, device=dev)
    except SpecError as e:
        raise e.located(file=file) from None

    warnings: list[str] = []
    notes: list[str] = [
        f"FLOPs: the analytic '{FLOPS_CONVENTION}' convention (2 x conv/linear MACs; bias, pooling, normalisation, activations and adds not counted)",
        "images/s: quantiles of the per-run rates; CV: standard deviation / mean of the run times",
    ]
    env = _environment(dev)
    cpus = os.cpu_count() or 1
    if dev.type == "cpu" and torch.get_num_threads() > cpus:
        warnings.append(f"{torch.get_num_threads()} threads on {cpus} CPUs: the threads contend, and the timings measure that")
    busy = env.get("cpu_busy_before")
    if dev.type == "cpu" and isinstance(busy, float) and busy > BUSY_LIMIT:
        warnings.append(
            f"the machine was busy: other processes used {busy:.0%} of its {os.cpu_count()} CPUs just before the runs; timings may be slow and noisy"
        )

    was_training = model.training
    model = model.to(dev)
    model.eval()
    input_shape_t = tuple(int(d) for d in getattr(model, "input_shape", report.input_shape))
    x = torch.randn(batch, *input_shape_t, device=dev)
    if channels_last:
        if x.dim() in (4, 5):
            fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
            model = model.to(memory_format=fmt)
            x = x.contiguous(memory_format=fmt)
        else:
            warnings.append(f"channels_last ignored: the input has {x.dim()} dimensions (needs 4 or 5)")
            channels_last = False  # the result reports what ran
    runner: Callable[..., Any] = model
    if compile:
        runner = torch.compile(model)
        if warmup == 0:
            warnings.append("compile with no warm-up: the first timed run includes compilation")
    amp = dtype != "float32"
    if amp:
        notes.append(f"{dtype}: AMP (torch.autocast on {dev.type}); weights stay float32, roofline bytes are counted at {dtype} width")

    flops_fwd = int(report.totals["flops"])
    flops_aux = sum(int(r.flops) for r in report.rows if r.training_only)
    prog_label = f"bench {report.name}"
    saved_benchmark = torch.backends.cudnn.benchmark
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    result: BenchResult
    try:
        # 1. inference throughput: warm-up, then timed runs (no hooks)
        def infer() -> None:
            runner(x)

        try:
            with torch.inference_mode(), _amp(dev, dtype):
                warm = _timed_runs(infer, dev, warmup)
                estimate = (min(warm) if warm else _timed_runs(infer, dev, 1)[0]) * repeat * (1 + per_layer + 2 * train)
                show = progress and estimate > PROGRESS_AFTER_S
                runs = _timed_runs(infer, dev, repeat, _Progress(prog_label + " (forward)", show))
        except Exception as e:
            raise BenchError(f"{report.name}: forward pass failed: {type(e).__name__}: {e}") from e
        stats = TimeStats(tuple(runs))
        if stats.cv > CV_LIMIT:
            warnings.append(
                f"noisy timing: CV {stats.cv:.1%} of the run times exceeds {CV_LIMIT:.0%} (a busy machine? more --warmup/--repeat may help)"
            )

        result = BenchResult(
            name=report.name,
            device=str(dev),
            device_name=rl.device_name(dev),
            torch_version=str(torch.__version__),
            threads=torch.get_num_threads(),
            batch=batch,
            dtype=dtype,
            amp=amp,
            channels_last=channels_last,
            compile=compile,
            warmup=warmup,
            repeat=repeat,
            params=int(report.totals["params"]),
            flops_per_image=flops_fwd // batch,
            stats=stats,
            warnings=warnings,
            notes=notes,
            environment=env,
        )

        # 2. per-layer times: separate hooked runs on the eager module
        measured: dict[str, float] = {}
        medians: dict[str, float] = {}
        if per_layer:
            if compile:
                notes.append("per-layer times are of the eager (uncompiled) module: torch.compile fuses across layers")
            with torch.inference_mode(), _amp(dev, dtype), _layer_hooks(model, dev) as times:
                model(x)  # warm the hooked path
                times.clear()
                hooked = _timed_runs(lambda: model(x), dev, repeat, _Progress(prog_label + " (per layer)", show))
            # medians, as the headline latency: a mean lets one descheduled run on a busy host inflate a layer 40-fold
            medians = {n: statistics.median(ts) for n, ts in times.items()}
            measured = medians
            result.hooked_stats = TimeStats(tuple(hooked))
            notes.append(
                "per-layer times: median over separate runs with synchronised pre/post forward hooks (hook overhead included); "
                "whole-network figures come from the unhooked runs"
            )

        # 3. training step
        if train:
            result.train = _bench_train(
                model, runner, x, dev, dtype, batch, warmup, repeat, flops_fwd, flops_aux, _Progress(prog_label + " (train)", show)
            )
            if result.train.stats.cv > CV_LIMIT:
                warnings.append(f"noisy training timing: CV {result.train.stats.cv:.1%} exceeds {CV_LIMIT:.0%}")
    finally:
        torch.backends.cudnn.benchmark = saved_benchmark
        model.train(was_training)

    # 4. the machine's limits and the roofline
    if probe is not False:
        if isinstance(probe, rl.Probe):
            result.probe, result.probe_cached = probe, False
        else:
            log = (lambda m: print(f"archcalc: {m}", file=sys.stderr)) if progress else None
            result.probe, result.probe_cached = rl.get_probe(dev, dtype, refresh=refresh_probe, cache=cache_dir, log=log)
        _place(result, report, measured, medians)
        if result.violations() and probe is True:
            # a layer above its roof: the probe is too weak.  Measure again, stronger, keep the best.
            first = result.violations()
            if progress:
                print(f"archcalc: {first[0]}: probing again, stronger", file=sys.stderr)
            result.probe, result.probe_cached = rl.get_probe(dev, dtype, refresh=True, strength=2, cache=cache_dir)
            _place(result, report, measured, medians)
            notes.append(f"the probe was measured again at strength 2 because {first[0]}")
        warnings.extend(f"{v}: the probe underestimates this machine (run with --refresh-probe on an idle machine)" for v in result.violations())
        notes.append(
            "roofline: layer time >= max(FLOPs / peak, bytes / bandwidth), bytes = inputs + output + weights and buffers at the dtype width, "
            "bandwidth = the probe's level for a working set of those bytes (cache or DRAM: the median copy/read rate, monotonic in size); "
            "the network's roofline time is the sum over its layers; peak is the best FLOP/s the probe measured"
        )
    return result


def _place(result: BenchResult, report: Report, measured: dict[str, float], medians: dict[str, float]) -> None:
    from .roofline import roofline_layers

    assert result.probe is not None
    if result.train is not None:
        result.train.peak_flops = result.probe.peak_flops
    result.layers = roofline_layers(
        report,
        result.probe.peak_flops,
        result.probe.bandwidth,
        dtype=result.dtype,
        batch=result.batch,
        measured=measured,
        measured_median=medians,
        levels=result.probe.levels,
    )


def _bench_train(
    model: nn.Module,
    runner: Callable[..., Any],
    x: torch.Tensor,
    dev: torch.device,
    dtype: str,
    batch: int,
    warmup: int,
    repeat: int,
    flops_fwd: int,
    flops_aux: int,
    progress: _Progress,
) -> TrainResult:
    import torch

    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler(dev.type) if dtype == "float16" and dev.type == "cuda" else None

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with _amp(dev, dtype):
            out = runner(x)
            loss = out.float().mean()
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    try:
        _timed_runs(step, dev, max(warmup, 1))  # at least one: the optimizer's state is created on the first step
        runs = _timed_runs(step, dev, repeat, progress)
    except Exception as e:
        raise BenchError(f"training step failed: {type(e).__name__}: {e}") from e
    finally:
        opt.zero_grad(set_to_none=True)
    per_batch = TRAIN_FACTOR * flops_fwd + flops_aux
    return TrainResult(
        stats=TimeStats(tuple(runs)),
        batch=batch,
        flops_per_image=per_batch // batch,
        forward_flops_per_image=flops_fwd // batch,
        grad_scaler=scaler is not None,
    )


# -- rendering ---------------------------------------------------------------------------------


def _gflops(v: float | None) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v / 1e9:,.2f} GFLOP/s"


def _gbs(v: float) -> str:
    return f"{v / 1e9:,.2f} GB/s"


def _secs(v: float | None) -> str:
    if v is None:
        return "n/a"
    if v >= 1:
        return f"{v:,.3f} s"
    if v >= 1e-3:
        return f"{v * 1e3:,.3f} ms"
    return f"{v * 1e6:,.1f} µs"


def _pct(v: float | None) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:.1%}"


def _count(v: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:,.2f}{unit}"
    return f"{v:,.0f}"


def _summary(r: BenchResult) -> list[tuple[str, str]]:
    p25, med, p75 = r.stats.rates(r.batch)
    rows = [
        ("device", f"{r.device} ({r.device_name}), {r.threads} threads, torch {r.torch_version}"),
        (
            "run",
            f"batch {r.batch}, {r.dtype}{' (AMP)' if r.amp else ''}, eval{', channels_last' if r.channels_last else ''}"
            f"{', torch.compile' if r.compile else ''}; {r.warmup} warm-up + {r.repeat} timed runs",
        ),
        ("throughput", f"{med:,.2f} images/s median (p25 {p25:,.2f}, p75 {p75:,.2f}), CV {r.cv:.1%}"),
        ("latency", f"{_secs(r.stats.median)} per batch median (p25 {_secs(r.stats.p25)}, p75 {_secs(r.stats.p75)})"),
        ("FLOPs", f"{_count(r.flops_per_image)} per image ({FLOPS_CONVENTION} convention: 2 x conv/linear MACs)"),
        ("achieved", f"{_gflops(r.achieved_flops)}" + (f" = {_pct(r.fraction_of_peak)} of the probed peak" if r.probe else "")),
    ]
    if r.probe:
        p = r.probe
        src = "cached" if r.probe_cached else f"measured in {p.seconds:.1f} s"
        rows.append(
            (
                "probe",
                f"peak {_gflops(p.peak_flops)}, bandwidth {_gbs(p.bandwidth)} (cache) to {_gbs(p.dram_bandwidth)} (DRAM), "
                f"ridge {p.ridge:,.2f} to {p.peak_flops / p.dram_bandwidth:,.2f} FLOP/B ({src})",
            )
        )
        if p.bandwidth_points:
            from ..render import units

            levels = ", ".join(f"{units.size(n)} {_gbs(bw)}" for n, bw in p.levels)
            worst = max(p.bandwidth_points, key=lambda q: q.spread)
            spread = f"widest spread {worst.spread:.0%} IQR, {worst.kernel} of {units.size(worst.bytes)}"
            rows.append(("bandwidth", f"by working set, up to: {levels} (medians, monotonic; {spread})"))
    if r.layers:
        rows.append(
            ("roofline", f"{_secs(r.predicted_s)} predicted vs {_secs(r.stats.median)} measured: {_pct(r.roofline_fraction)} of the roofline")
        )
        nc = sum(lr.bound == "compute" for lr in r.layers)
        nm = sum(lr.bound == "memory" for lr in r.layers)
        rows.append(("layers", f"{nc} compute-bound, {nm} memory-bound, {len(r.layers) - nc - nm} views (no work)"))
    if r.train:
        t = r.train
        tp25, tmed, tp75 = t.stats.rates(t.batch)
        rows.append(
            ("train step", f"{tmed:,.2f} images/s median (p25 {tp25:,.2f}, p75 {tp75:,.2f}), CV {t.stats.cv:.1%}, {_secs(t.stats.median)} per step")
        )
        rows.append(
            (
                "train FLOPs",
                f"{_count(t.flops_per_image)} per image (3 x forward, analytic); "
                f"achieved {_gflops(t.achieved_flops)} = {_pct(t.fraction_of_peak)} of peak",
            )
        )
    return rows


LAYER_HEADERS = ["layer", "type", "FLOPs", "bytes", "FLOP/B", "bound", "roofline", "measured", "of roofline"]


def _layer_rows(r: BenchResult) -> list[list[str]]:
    out = []
    for lr in r.layers:
        out.append(
            [
                lr.name,
                lr.type,
                _count(lr.flops),
                _count(lr.bytes),
                "" if lr.intensity is None else f"{lr.intensity:,.2f}",
                lr.bound,
                _secs(lr.predicted_s),
                _secs(lr.measured_s),
                _pct(lr.fraction),
            ]
        )
    return out


def render_bench(r: BenchResult, fmt: str = "text") -> str:
    """The result as ``text``, ``markdown`` or ``json`` (every figure)."""
    from tabulate import tabulate

    if fmt == "json":
        return json.dumps(r.to_json(), indent=2, allow_nan=False, default=_json_default) + "\n"
    summary = _summary(r)
    if fmt == "markdown":
        lines = [f"### {r.name}: measured on {r.device_name}", "", tabulate([[k, v] for k, v in summary], ["figure", "value"], tablefmt="github")]
        if r.layers:
            lines += ["", tabulate(_layer_rows(r), LAYER_HEADERS, tablefmt="github", disable_numparse=True)]
        if r.warnings:
            lines += ["", "**Warnings**", "", *[f"- {w}" for w in r.warnings]]
        if r.notes:
            lines += ["", "*Notes*", "", *[f"- {n}" for n in r.notes]]
        return "\n".join(lines) + "\n"
    if fmt != "text":
        raise SpecError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}", field="--format")
    width = max(len(k) for k, _ in summary)
    lines = [f"{r.name}: measured throughput and roofline", *[f"{k:<{width}}  {v}" for k, v in summary]]
    if r.layers:
        align = ("left", "left", "right", "right", "right", "left", "right", "right", "right")
        lines += ["", tabulate(_layer_rows(r), LAYER_HEADERS, tablefmt="simple", colalign=align, disable_numparse=True)]
    if r.warnings:
        lines += ["", "warnings:", *[f"  {w}" for w in r.warnings]]
    if r.notes:
        lines += ["", "notes:", *[f"  {n}" for n in r.notes]]
    return "\n".join(lines) + "\n"


def _json_default(o: object) -> Any:
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# -- the command -------------------------------------------------------------------------------


def add_bench_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bench`` on an ``add_subparsers()`` object (torch is not imported)."""
    b: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="run the spec with torch: images/s, achieved FLOP/s, and each layer on a measured roofline",
        description="Measure throughput with torch and place every layer on a roofline of this machine's measured peak FLOP/s and bandwidth.",
    )
    b.add_argument("spec", help="spec file (JSON)")
    b.add_argument("--device", default="cpu", help="cpu (default) or cuda (cuda:N)")
    b.add_argument("--batch", type=whole_number, default=1, help="batch size (default 1)")
    b.add_argument("--dtype", default="float32", choices=DTYPES, help="float32 (default); float16/bfloat16 run under AMP")
    b.add_argument("--channels-last", action="store_true", help="channels-last memory format for the model and input")
    b.add_argument("--compile", action="store_true", help="torch.compile the module first")
    b.add_argument("--warmup", type=whole_number, default=5, help="untimed runs first (default 5)")
    b.add_argument("--repeat", type=whole_number, default=30, help="timed runs (default 30)")
    b.add_argument("--train", action="store_true", help="also time a training step (forward + backward + SGD step)")
    b.add_argument("--no-layers", dest="per_layer", action="store_false", help="skip the per-layer (hooked) runs")
    b.add_argument("--plot", metavar="PNG", help="write the roofline plot (needs matplotlib)")
    b.add_argument("--threads", type=whole_number, help="torch.set_num_threads first (CPU)")
    b.add_argument("--refresh-probe", action="store_true", help="measure the machine's peak and bandwidth again (merged into the cache)")
    b.add_argument("--no-probe", dest="probe", action="store_false", help="skip the probe and the roofline")
    b.add_argument("--input", help="override the input shape, e.g. 3,224,224")
    b.add_argument("--set", action="append", default=[], metavar="SYM=VALUE", help="give a symbol a number (repeatable)")
    b.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    b.add_argument("--format", choices=FORMATS, help="default: from -o's extension (.json, .md), else text")
    b.set_defaults(formats=FORMATS)
    b.add_argument("-o", "--output", help="write to this file (atomically) instead of stdout")
    return b


def run_bench(args: argparse.Namespace) -> int:
    """Run ``archcalc bench``: 0 ok; 2 bad input, torch missing, or torch failed (one line on stderr)."""
    import importlib.util

    debug = bool(getattr(args, "debug", False))
    if importlib.util.find_spec("torch") is None:  # (not imported: refusals that need no torch come first)
        print("archcalc: error: bench needs torch: pip install 'archcalc[torch]'", file=sys.stderr)
        return 2
    from ..options import parse_input
    from ..spec import load_spec

    if args.plot and not getattr(args, "probe", True):  # before minutes of timing, not after
        print("archcalc: error: --plot needs the probe (drop --no-probe)", file=sys.stderr)
        return 2
    shape = parse_input(args.input) if args.input else None
    if args.set:
        check_set_names(parse_set(args.set), load_spec(args.spec), args.spec, args)
    try:
        result = bench_spec(
            args.spec,
            device=args.device,
            batch=args.batch,
            dtype=args.dtype,
            channels_last=args.channels_last,
            compile=args.compile,
            warmup=args.warmup,
            repeat=args.repeat,
            train=args.train,
            per_layer=args.per_layer,
            probe=bool(getattr(args, "probe", True)),
            refresh_probe=args.refresh_probe,
            progress=not args.quiet,
            values=parse_set(args.set),
            input_shape=shape,
            threads=args.threads,
        )
    except BenchError as e:
        if debug:
            raise
        print(f"archcalc: error: {args.spec}: {e}", file=sys.stderr)
        return 2
    write_output(render_bench(result, args.format or format_for(args.output, FORMATS)), args.output)
    if args.plot:
        if result.probe is None:
            print("archcalc: error: --plot needs the probe (drop --no-probe)", file=sys.stderr)
            return 2
        try:
            shown = result.plot(args.plot)
        except ImportError as e:
            print(f"archcalc: error: no plot written: {e}", file=sys.stderr)
            return 2
        print(f"archcalc: roofline plot of {shown} layers written to {args.plot}", file=sys.stderr)
    return 0


__all__ = [
    "BenchError",
    "BenchResult",
    "TimeStats",
    "TrainResult",
    "add_bench_parser",
    "bench_spec",
    "render_bench",
    "run_bench",
]
