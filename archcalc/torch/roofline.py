"""Machine limits, measured, and the per-layer roofline.

**The probe** measures what this machine attains, not what a datasheet promises:

* *peak FLOP/s*: the best of square GEMMs (``torch.mm``) of growing size in the run's dtype (and
  in float32 for a low-precision run: autocast leaves some work in float32, and a CPU without
  native half arithmetic is faster there) and of 3x3 convolutions (cuDNN / oneDNN may beat a
  GEMM by Winograd or a better kernel), each the best of N timed samples;
* *bandwidth by level*: a tensor copy (bytes read + written), a full reduction and a GEMV (bytes
  read) over working sets from cache-resident to far beyond the last-level cache; each point is the
  median of many short samples (its spread, the interquartile range over the median, is kept), so
  a figure repeats from run to run, and the first calibrating samples, whose timer overhead once
  read as 0.5 GB/s, are left out.  The *levels* are these medians made monotonic: the bandwidth of
  a working set of ``n`` bytes is the best median among the points of at least ``n`` bytes (a
  bigger working set never streams faster).  ``bandwidth`` (the smallest level: cache) and
  ``dram_bandwidth`` (the largest: DRAM) are its two ends.

On CUDA, float32 runs probe with TF32 allowed when cuDNN allows it (the default), since the
convolutions of the model then run on TF32 tensor cores.

Results are cached per device/dtype/threads/torch version in ``probe.json`` under
``$ARCHCALC_CACHE_DIR`` (default ``$XDG_CACHE_HOME/archcalc`` or ``~/.cache/archcalc``).  A
stronger probe (``strength=2``: more repeats, bigger sizes) merges into the cache keeping the
best figure of each kind, so the roof only ever rises.

**The roofline** of one layer: predicted time = max(FLOPs / peak, bytes / bandwidth), where the
FLOPs are the analytic ``torch``-convention count and bytes = input activations + output
activation + weights and buffers, all at the run's dtype width (the minimum traffic: each tensor
touched once).  The bandwidth is that of the level the layer's working set (those same bytes)
lives in: AlexNet's fc6 streams 151 MB of weights from DRAM, not from a cache that holds 32 MB, so
at batch 8 (about 4 FLOP per byte) it is memory-bound although the cache's bandwidth would call it
compute-bound.  Layers that return a view of their input (identity, flatten, eval dropout,
subsample) move nothing and predict 0.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..conventions import dtype_bytes
from ..dims import as_int, prod
from ..graph import INPUT
from ..output import atomic_write
from ..report import Report

CACHE_ENV = "ARCHCALC_CACHE_DIR"
CACHE_FILE = "probe.json"
CACHE_VERSION = 2  # 2: bandwidth by level (medians); 1 kept one best-of figure

VIEW_TYPES = frozenset({"identity", "flatten", "dropout", "subsample"})
"""Layer types that, in eval mode, return their input (or a view of it): no data moves."""

TORCH_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# -- device helpers ----------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """A human name for ``device``: the GPU's name, or the CPU model."""
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def tf32_in_use(device: torch.device, dtype: str) -> bool:
    """Whether a float32 run on ``device`` may use TF32 tensor cores (cuDNN's or cuBLAS's switch)."""
    return device.type == "cuda" and dtype == "float32" and bool(torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)


def time_calls(fn: Callable[[], object], device: torch.device, *, inner: int = 1, repeats: int = 5) -> list[float]:
    """Seconds per call of ``fn``: one sample per ``inner`` back-to-back calls, ``repeats`` samples.

    CUDA: events around the calls on an idle device (synchronised before and after each sample).
    CPU: ``time.perf_counter``.
    """
    out: list[float] = []
    if device.type == "cuda":
        for _ in range(repeats):
            start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            torch.cuda.synchronize(device)
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            end.synchronize()
            out.append(start.elapsed_time(end) / 1e3 / inner)
        return out
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        out.append((time.perf_counter() - t0) / inner)
    return out


def _best_rate(fn: Callable[[], object], device: torch.device, work: float, *, budget_s: float, sample_s: float) -> tuple[float, float]:
    """(best work/s over many short samples, the best seconds per call).

    Best-of-N over short samples (about ``sample_s`` each) until ``budget_s`` of wall time has
    passed (at least 3 samples): on a shared machine some samples land in a quiet moment, and the
    first few hundred milliseconds after a switch of kernel are often disturbed (worker threads of
    the previous library still spinning); a long average would keep all of that.
    """
    fn()  # warm-up: allocation, page faults, kernel selection, caches
    synchronize(device)
    best, count, inner = float("inf"), 0, 1
    deadline = time.perf_counter() + budget_s
    while count < 3 or (time.perf_counter() < deadline and count < 2000):
        best = min(best, time_calls(fn, device, inner=inner, repeats=1)[0])
        inner = max(1, min(10_000, int(sample_s / max(best, 1e-7))))
        count += 1
    return work / max(best, 1e-12), best


def _sample_rates(fn: Callable[[], object], device: torch.device, work: float, *, budget_s: float, sample_s: float) -> list[float]:
    """work/s of each of many short samples (about ``sample_s`` each, at least 5, for ``budget_s``).

    The first calls calibrate how many back-to-back calls make one sample; they are not kept (a
    single call of a cache-sized copy is mostly timer overhead).
    """
    fn()  # warm-up: allocation, page faults, kernel selection, caches
    synchronize(device)
    inner = 1
    for _ in range(3):  # calibrate
        t = time_calls(fn, device, inner=inner, repeats=1)[0]
        inner = max(1, min(10_000, int(sample_s / max(t, 1e-7))))  # t: seconds per call
    rates: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(rates) < 5 or (time.perf_counter() < deadline and len(rates) < 2000):
        rates.append(work / max(time_calls(fn, device, inner=inner, repeats=1)[0], 1e-12))
    return rates


@dataclass(frozen=True)
class BandwidthPoint:
    """One bandwidth measurement: a kernel over a working set, the median of its samples and their spread."""

    kernel: str
    """'copy' (reads and writes), 'sum' or 'gemv' (read only)."""
    bytes: int
    """Working set: the bytes one call touches (a copy: source + destination)."""
    median: float
    """Bytes/s, the median of the samples."""
    p25: float
    p75: float
    samples: int

    @property
    def spread(self) -> float:
        """Interquartile range over the median."""
        return (self.p75 - self.p25) / self.median if self.median else 0.0

    @classmethod
    def of(cls, kernel: str, nbytes: int, rates: Sequence[float]) -> BandwidthPoint:
        q = sorted(rates)

        def at(f: float) -> float:
            return q[min(len(q) - 1, int(f * (len(q) - 1) + 0.5))]

        return cls(kernel, nbytes, statistics.median(q), at(0.25), at(0.75), len(q))


def bandwidth_levels(points: Sequence[BandwidthPoint]) -> list[tuple[int, float]]:
    """(working set bytes, bytes/s) ascending in size, the bandwidth never rising with the size: the
    level of ``n`` bytes is the best median among the points of at least ``n`` bytes."""
    sizes = sorted({p.bytes for p in points})
    return [(n, max(p.median for p in points if p.bytes >= n)) for n in sizes]


def level_bandwidth(levels: Sequence[tuple[int, float]], nbytes: int) -> float:
    """The bandwidth of the level a working set of ``nbytes`` lives in: the smallest level at least
    that big (beyond the largest level measured: the largest, which is DRAM)."""
    if not levels:
        raise ValueError("no bandwidth levels")
    for size, bw in levels:
        if nbytes <= size:
            return bw
    return levels[-1][1]


# -- the probe ---------------------------------------------------------------------------------


@dataclass
class Probe:
    """What this machine attains (see the module docstring)."""

    key: str
    device: str
    device_name: str
    dtype: str
    threads: int
    torch_version: str
    peak_flops: float
    """FLOP/s: the best of every GEMM and convolution probe."""
    bandwidth: float
    """Bytes/s of the smallest level (cache-resident working sets): the best the machine streams."""
    dram_bandwidth: float
    """Bytes/s of the largest level (working sets beyond the caches)."""
    gemm_flops: dict[str, float] = field(default_factory=dict)
    conv_flops: dict[str, float] = field(default_factory=dict)
    copy_bandwidth: dict[str, float] = field(default_factory=dict)
    """Median copy bytes/s by buffer size (bytes of the source)."""
    read_bandwidth: dict[str, float] = field(default_factory=dict)
    """Median read bytes/s by 'sum SIZE' / 'gemv SIZE'."""
    bandwidth_points: list[BandwidthPoint] = field(default_factory=list)
    tf32: bool = False
    strength: int = 1
    seconds: float = 0.0
    measured_at: str = ""
    runs: int = 1

    @property
    def ridge(self) -> float:
        """Arithmetic intensity (FLOP/byte) where the two roofs meet (at the cache level)."""
        return self.peak_flops / self.bandwidth

    @property
    def levels(self) -> list[tuple[int, float]]:
        """Bandwidth by working set (:func:`bandwidth_levels`); one level of ``bandwidth`` if none was measured."""
        return bandwidth_levels(self.bandwidth_points) if self.bandwidth_points else [(0, self.bandwidth)]

    def bandwidth_for(self, nbytes: int) -> float:
        """Bytes/s for a working set of ``nbytes``: the level it lives in."""
        return level_bandwidth(self.levels, nbytes)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ridge_intensity"] = self.ridge
        out["bandwidth_levels"] = [{"bytes": n, "bandwidth": bw} for n, bw in self.levels]
        for point, raw in zip(self.bandwidth_points, out["bandwidth_points"], strict=True):
            raw["spread"] = point.spread
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Probe:
        names = set(cls.__dataclass_fields__)
        fields = {k: v for k, v in data.items() if k in names}
        point_names = set(BandwidthPoint.__dataclass_fields__)
        fields["bandwidth_points"] = [BandwidthPoint(**{k: v for k, v in p.items() if k in point_names}) for p in data.get("bandwidth_points", [])]
        return cls(**fields)


def cache_dir() -> Path:
    """``$ARCHCALC_CACHE_DIR``, else ``$XDG_CACHE_HOME/archcalc``, else ``~/.cache/archcalc``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "archcalc"


def cache_path(directory: str | Path | None = None) -> Path:
    return (Path(directory) if directory is not None else cache_dir()) / CACHE_FILE


def probe_key(device: torch.device, dtype: str) -> str:
    parts = [device.type, device_name(device), dtype]
    if device.type == "cpu":
        parts.append(f"threads={torch.get_num_threads()}")
    if tf32_in_use(device, dtype):
        parts.append("tf32")
    parts.append(f"torch={torch.__version__}")
    return "|".join(parts)


def _sizes(device: torch.device, strength: int) -> tuple[list[int], list[int], list[tuple[int, int, int]]]:
    """(GEMM sizes, bytes per tensor for the bandwidth probes, conv (batch, channels, side))."""
    if device.type == "cuda":
        gemm = [2048, 4096, 8192] + ([16384] if strength >= 2 else [])
        free = torch.cuda.mem_get_info(device)[0]
        mem = [m for m in [1 << 20, 8 << 20, 64 << 20, 512 << 20, 2 << 30][: 4 + (strength >= 2)] if 3 * m < free]
        conv = [(32, 128, 56), (32, 256, 28)] + ([(64, 256, 56)] if strength >= 2 else [])
    else:
        gemm = [256, 512, 1024, 2048] + ([3072] if strength >= 2 else [])
        mem = [256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20] + ([256 << 20] if strength >= 2 else [])
        conv = [(1, 128, 56), (1, 256, 28)] + ([(4, 128, 56)] if strength >= 2 else [])
    return gemm, mem, conv


def measure_probe(
    device: str | torch.device = "cpu", dtype: str = "float32", *, strength: int = 1, log: Callable[[str], None] | None = None
) -> Probe:
    """Measure peak FLOP/s and bandwidth on ``device`` in ``dtype`` (not cached: see :func:`get_probe`)."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    tdtype = TORCH_DTYPES[dtype]
    t_start = time.perf_counter()
    budget = 0.25 if strength <= 1 else 1.0  # seconds per probe point, best of its samples
    sample = 0.002 if dev.type == "cpu" else 0.005
    max_single = 0.5 if strength <= 1 else 2.0  # stop growing a probe once one call takes this long
    gemm_sizes, mem_sizes, conv_shapes = _sizes(dev, strength)
    tf32 = tf32_in_use(dev, dtype)
    say = log or (lambda _msg: None)

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True
    gemm: dict[str, float] = {}
    conv: dict[str, float] = {}
    copy: dict[str, float] = {}
    read: dict[str, float] = {}
    points: list[BandwidthPoint] = []
    try:
        with torch.inference_mode():
            # compute roof: GEMMs, in the run's dtype and (low precision) in float32
            for dt_name in dict.fromkeys([dtype, "float32"]):
                dt = TORCH_DTYPES[dt_name]
                for i, n in enumerate(gemm_sizes):
                    a = torch.randn(n, n, device=dev, dtype=dt)
                    b = torch.randn(n, n, device=dev, dtype=dt)
                    c = torch.empty(n, n, device=dev, dtype=dt)
                    rate, per_call = _best_rate(functools.partial(torch.mm, a, b, out=c), dev, 2.0 * n**3, budget_s=budget, sample_s=sample)
                    gemm[f"{dt_name} {n}x{n}"] = rate
                    del a, b, c
                    if i + 1 < len(gemm_sizes) and per_call * (gemm_sizes[i + 1] / n) ** 3 > max_single:
                        break  # the next size would take too long (a dtype without native kernels)
            say("gemm done")
            # compute roof: 3x3 convolutions (Winograd / direct kernels may beat a GEMM), both memory formats
            slow = False
            for nb, ch, side in conv_shapes:
                if slow:
                    break
                x = torch.randn(nb, ch, side, side, device=dev, dtype=tdtype)
                w = torch.randn(ch, ch, 3, 3, device=dev, dtype=tdtype)
                work = 2.0 * nb * ch * ch * 9 * side * side
                dtype_gemm = max((v for k, v in gemm.items() if k.startswith(dtype + " ")), default=0.0)
                if dtype_gemm and work / dtype_gemm > max_single:
                    break  # no fast kernels for this dtype here: a conv would take seconds and lose to float32
                for fmt_name, fmt in (("nchw", torch.contiguous_format), ("nhwc", torch.channels_last)):
                    xf, wf = x.contiguous(memory_format=fmt), w.contiguous(memory_format=fmt)
                    try:
                        rate, per_call = _best_rate(
                            functools.partial(torch.nn.functional.conv2d, xf, wf, padding=1), dev, work, budget_s=budget, sample_s=sample
                        )
                    except RuntimeError:  # no kernel for this dtype/format here
                        continue
                    conv[f"{dtype} {nb}x{ch}x{side}x{side} 3x3 {fmt_name}"] = rate
                    if per_call > max_single / 4:
                        slow = True
                        break
            say("conv done")
            # memory roofs by level: copy (read + write), reduction and GEMV (read), cache-resident to DRAM
            # working sets; the median of each point's samples, not the best (see the module docstring)
            width = dtype_bytes(dtype)
            for nbytes in mem_sizes:
                numel = nbytes // width
                src = torch.randn(numel, device=dev, dtype=tdtype)
                dst = torch.empty_like(src)
                side = int(numel**0.5)
                m, v = src[: side * side].view(side, side), torch.randn(side, device=dev, dtype=tdtype)
                for kernel, fn, moved in (
                    ("copy", functools.partial(dst.copy_, src), 2 * nbytes),
                    ("sum", functools.partial(torch.sum, src), nbytes),
                    ("gemv", functools.partial(torch.mv, m, v), side * side * width),
                ):
                    rates = _sample_rates(fn, dev, float(moved), budget_s=budget, sample_s=sample)
                    points.append(BandwidthPoint.of(kernel, moved, rates))
                    (copy if kernel == "copy" else read)[str(nbytes) if kernel == "copy" else f"{kernel} {nbytes}"] = points[-1].median
                del src, dst, m, v
            say("bandwidth done")
    finally:
        if dev.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark = saved
            torch.cuda.empty_cache()
    return Probe(
        key=probe_key(dev, dtype),
        device=dev.type,
        device_name=device_name(dev),
        dtype=dtype,
        threads=torch.get_num_threads(),
        torch_version=str(torch.__version__),
        peak_flops=max([*gemm.values(), *conv.values()]),
        bandwidth=bandwidth_levels(points)[0][1],
        dram_bandwidth=bandwidth_levels(points)[-1][1],
        gemm_flops=gemm,
        conv_flops=conv,
        copy_bandwidth=copy,
        read_bandwidth=read,
        bandwidth_points=points,
        tf32=tf32,
        strength=strength,
        seconds=time.perf_counter() - t_start,
        measured_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    )


def merge_probes(old: Probe, new: Probe) -> Probe:
    """Best of both (best-of-N across probe runs): every figure keeps its maximum."""

    def best(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        return {k: max(a.get(k, 0.0), b.get(k, 0.0)) for k in dict.fromkeys([*a, *b])}

    by_point: dict[tuple[str, int], BandwidthPoint] = {}
    for p in [*old.bandwidth_points, *new.bandwidth_points]:
        kept = by_point.get((p.kernel, p.bytes))
        if kept is None or p.median > kept.median:
            by_point[(p.kernel, p.bytes)] = p
    points = sorted(by_point.values(), key=lambda p: (p.bytes, p.kernel))

    return Probe(
        key=new.key,
        device=new.device,
        device_name=new.device_name,
        dtype=new.dtype,
        threads=new.threads,
        torch_version=new.torch_version,
        peak_flops=max(old.peak_flops, new.peak_flops),
        bandwidth=bandwidth_levels(points)[0][1] if points else max(old.bandwidth, new.bandwidth),
        dram_bandwidth=bandwidth_levels(points)[-1][1] if points else max(old.dram_bandwidth, new.dram_bandwidth),
        gemm_flops=best(old.gemm_flops, new.gemm_flops),
        conv_flops=best(old.conv_flops, new.conv_flops),
        copy_bandwidth=best(old.copy_bandwidth, new.copy_bandwidth),
        read_bandwidth=best(old.read_bandwidth, new.read_bandwidth),
        bandwidth_points=points,
        tf32=new.tf32,
        strength=max(old.strength, new.strength),
        seconds=old.seconds + new.seconds,
        measured_at=new.measured_at,
        runs=old.runs + new.runs,
    )


def load_cache(directory: str | Path | None = None) -> dict[str, Probe]:
    path = cache_path(directory)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("probes"), dict):
        return {}
    out: dict[str, Probe] = {}
    for key, raw in data["probes"].items():
        try:
            out[key] = Probe.from_json(raw)
        except TypeError:
            continue
    return out


def save_cache(probes: dict[str, Probe], directory: str | Path | None = None) -> Path:
    """Write the cache atomically (temp file renamed into place)."""
    path = cache_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"version": CACHE_VERSION, "probes": {k: p.to_json() for k, p in probes.items()}}, indent=2) + "\n"
    atomic_write(path, text, field="probe cache")
    return path


def get_probe(
    device: str | torch.device = "cpu",
    dtype: str = "float32",
    *,
    refresh: bool = False,
    strength: int = 1,
    cache: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[Probe, bool]:
    """The probe for ``device``/``dtype``: (probe, True if it came from the cache).

    Measures and caches it when absent (or ``refresh``: measure again, merged with the cached
    figures so the roof never drops because a later run was disturbed).
    """
    dev = torch.device(device)
    key = probe_key(dev, dtype)
    cached = load_cache(cache)
    old = cached.get(key)
    if old is not None and not refresh and old.strength >= strength:
        return old, True
    if log:
        log(f"probing {dev.type} {dtype}: peak FLOP/s and bandwidth (once; cached in {cache_path(cache)})")
    new = measure_probe(dev, dtype, strength=strength)
    probe = merge_probes(old, new) if old is not None else new
    cached = load_cache(cache)  # re-read: another process may have written meanwhile
    cached[key] = probe
    try:
        save_cache(cached, cache)
    except OSError as e:
        print(f"archcalc: warning: cannot write the probe cache {cache_path(cache)}: {e.strerror}", file=sys.stderr)
    return probe, False


# -- the roofline ------------------------------------------------------------------------------


@dataclass
class LayerRoof:
    """One layer on the roofline."""

    name: str
    type: str
    flops: int
    input_bytes: int
    output_bytes: int
    weight_bytes: int
    predicted_s: float
    measured_s: float | None = None
    """Mean seconds per call over the hooked runs."""
    bound: str = "memory"
    """'compute', 'memory' or 'none' (a view: nothing to compute or move)."""
    measured_median_s: float | None = None
    bandwidth: float | None = None
    """Bytes/s of the level this layer's working set (its bytes) lives in."""

    @property
    def bytes(self) -> int:
        return self.input_bytes + self.output_bytes + self.weight_bytes

    @property
    def intensity(self) -> float | None:
        """FLOPs per byte moved (None when nothing moves)."""
        return self.flops / self.bytes if self.bytes else None

    @property
    def fraction(self) -> float | None:
        """Predicted / measured time: the share of the roofline reached (<= 1 on a sound probe)."""
        if self.measured_s is None or self.measured_s <= 0:
            return None
        return self.predicted_s / self.measured_s

    @property
    def achieved_flops(self) -> float | None:
        if self.measured_s is None or self.measured_s <= 0:
            return None
        return self.flops / self.measured_s

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "flops": self.flops,
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
            "weight_bytes": self.weight_bytes,
            "bytes": self.bytes,
            "intensity": self.intensity,
            "bound": self.bound,
            "bandwidth": self.bandwidth,
            "predicted_s": self.predicted_s,
            "measured_s": self.measured_s,
            "measured_median_s": self.measured_median_s,
            "fraction": self.fraction,
            "achieved_flops": self.achieved_flops,
        }


def _elements(shape: Sequence[Any], what: str) -> int:
    n = as_int(prod(shape))
    if n is None:
        raise ValueError(f"{what}: symbolic shape; the roofline needs numbers")
    return n


def roofline_layers(
    report: Report,
    peak_flops: float,
    bandwidth: float,
    *,
    dtype: str,
    batch: int,
    measured: dict[str, float] | None = None,
    measured_median: dict[str, float] | None = None,
    levels: Sequence[tuple[int, float]] | None = None,
) -> list[LayerRoof]:
    """Each layer that runs in eval mode (training-only heads left out), on the roofline.

    ``report`` must use the ``torch`` convention (FLOPs = 2 x conv/linear MACs); ``measured``:
    mean seconds per call by layer name (``measured_median``: the medians).  ``levels``: bandwidth
    by working set (:attr:`Probe.levels`); each layer gets the level of its bytes (inputs + output +
    weights), and is compute-bound when FLOPs / peak >= bytes / that bandwidth.  Without
    ``levels``, every layer gets ``bandwidth``.
    """
    width = dtype_bytes(dtype)
    out_elems = {INPUT: _elements(report.input_shape, INPUT)}
    for r in report.rows:
        out_elems[r.name] = _elements(r.output_shape, r.name)
    layers: list[LayerRoof] = []
    for r in report.rows:
        if r.training_only:
            continue
        flops = as_int(r.flops)
        if flops is None:
            raise ValueError(f"{r.name}: symbolic FLOPs; the roofline needs numbers")
        if r.type in VIEW_TYPES:
            in_b = out_b = w_b = 0
        else:
            in_b = sum(out_elems[i] for i in r.inputs) * batch * width
            out_b = out_elems[r.name] * batch * width
            w_elems = sum(_elements(s, r.name) for s in r.weights.values()) + (as_int(r.buffers) or 0)
            w_b = w_elems * width
        total = in_b + out_b + w_b
        bw = level_bandwidth(levels, total) if levels else bandwidth
        predicted = max(flops / peak_flops, total / bw)
        if total == 0 and flops == 0:
            bound = "none"
        elif total == 0 or flops / total >= peak_flops / bw:  # the ridge of this layer's level
            bound = "compute"
        else:
            bound = "memory"
        layers.append(
            LayerRoof(
                r.name, r.type, flops, in_b, out_b, w_b, predicted, (measured or {}).get(r.name), bound, (measured_median or {}).get(r.name), bw
            )
        )
    return layers


def plot_roofline(
    path: str | Path,
    layers: Sequence[LayerRoof],
    *,
    peak_flops: float,
    bandwidth: float,
    dram_bandwidth: float | None = None,
    whole: tuple[float, float] | None = None,
    title: str = "",
) -> int:
    """Write a roofline PNG (log-log: FLOP/byte against FLOP/s); return how many layers it shows.

    ``whole``: (intensity, achieved FLOP/s) of the whole network.  Needs matplotlib (the
    ``plot`` extra): raises ImportError with the install hint when it is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("the roofline plot needs matplotlib: pip install 'archcalc[plot]'") from e

    pts = [(lr.intensity, lr.achieved_flops, lr) for lr in layers if lr.flops > 0 and lr.intensity and lr.achieved_flops]
    xs = [p[0] for p in pts if p[0] is not None]
    ridge = peak_flops / bandwidth
    lo = min([*xs, ridge / 100, 0.1]) / 2
    hi = max([*xs, ridge * 100]) * 2
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(
        grid,
        [min(peak_flops, bandwidth * x) for x in grid],
        color="black",
        lw=2,
        label=f"roof: {peak_flops / 1e9:,.1f} GFLOP/s, {bandwidth / 1e9:,.1f} GB/s",
    )
    if dram_bandwidth and dram_bandwidth < bandwidth:
        ax.plot(
            grid,
            [min(peak_flops, dram_bandwidth * x) for x in grid],
            color="gray",
            lw=1,
            ls="--",
            label=f"DRAM copy {dram_bandwidth / 1e9:,.1f} GB/s",
        )
    colors = {"compute": "tab:red", "memory": "tab:blue"}
    for bound in ("compute", "memory"):
        sel = [(x, y) for x, y, lr in pts if lr.bound == bound]
        if sel:
            ax.scatter([p[0] for p in sel], [p[1] for p in sel], s=18, color=colors[bound], alpha=0.75, label=f"{bound}-bound layers ({len(sel)})")
    if whole is not None and whole[0] > 0 and whole[1] > 0:
        ax.scatter([whole[0]], [whole[1]], marker="*", s=180, color="tab:green", edgecolor="black", zorder=5, label="whole network")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("arithmetic intensity (FLOP / byte)")
    ax.set_ylabel("achieved FLOP/s")
    left_out = len(layers) - len(pts)
    note = f" ({left_out} layers without FLOPs not shown)" if left_out else ""
    ax.set_title(f"{title}{note}", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(str(path))
    plt.close(fig)
    return len(pts)


__all__ = [
    "CACHE_ENV",
    "VIEW_TYPES",
    "BandwidthPoint",
    "LayerRoof",
    "Probe",
    "bandwidth_levels",
    "cache_dir",
    "cache_path",
    "device_name",
    "get_probe",
    "level_bandwidth",
    "measure_probe",
    "merge_probes",
    "plot_roofline",
    "probe_key",
    "roofline_layers",
    "synchronize",
    "time_calls",
]
