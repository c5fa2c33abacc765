"""archcalc bench: measured throughput, the machine probe and the roofline (issue 5).

The probe is measured once per session into a temporary cache directory (never ~/.cache).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from archcalc import SpecError, analyze, parse_spec  # noqa: E402
from archcalc.torch import roofline as rl  # noqa: E402
from archcalc.torch.bench import (  # noqa: E402
    TimeStats,
    add_bench_parser,
    bench_spec,
    render_bench,
    run_bench,
)
from archcalc.torch.build import build_module  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LENET = ROOT / "specs" / "lenet5.json"
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available (torch.cuda.is_available() is false)")

SMALL = {
    "name": "small",
    "input": [3, 48, 48],
    "layers": [
        {"type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1},
        {"type": "batchnorm2d"},
        {"type": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "conv2d", "out_channels": 64, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "adaptiveavgpool2d", "output_size": 1},
        {"type": "flatten"},
        {"type": "linear", "out_features": 10},
    ],
}


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A probe cache directory for the session, filled by one CPU float32 probe."""
    d = tmp_path_factory.mktemp("archcalc-cache")
    rl.get_probe("cpu", "float32", cache=d)
    return d


@pytest.fixture(scope="session")
def lenet(cache: Path) -> Any:
    return bench_spec(LENET, warmup=2, repeat=5, cache_dir=cache, progress=False)


def test_json_has_every_figure(lenet: Any, cache: Path) -> None:
    data = json.loads(render_bench(lenet, "json"))
    for key in (
        "name",
        "device",
        "device_name",
        "torch_version",
        "threads",
        "batch",
        "dtype",
        "amp",
        "channels_last",
        "compile",
        "warmup",
        "repeat",
        "params",
        "flops_convention",
        "flops_per_image",
        "time_s",
        "images_per_s",
        "cv",
        "achieved_flops",
        "peak_flops",
        "fraction_of_peak",
        "probe",
        "roofline",
        "train",
        "warnings",
        "notes",
        "environment",
    ):
        assert key in data, key
    assert data["threads"] == torch.get_num_threads()
    assert data["torch_version"] == str(torch.__version__)
    assert data["flops_convention"] == "torch"
    assert data["flops_per_image"] == analyze(LENET, convention="torch").totals["flops"] == 833_040
    assert data["params"] == 61_706
    ips = data["images_per_s"]
    assert 0 < ips["p25"] <= ips["median"] <= ips["p75"]
    assert len(data["time_s"]["runs"]) == 5
    assert data["cv"] >= 0
    assert data["achieved_flops"] == pytest.approx(data["flops_per_image"] * ips["median"])
    for key in (
        "peak_flops",
        "bandwidth",
        "dram_bandwidth",
        "ridge_intensity",
        "gemm_flops",
        "conv_flops",
        "copy_bandwidth",
        "read_bandwidth",
        "cached",
    ):
        assert key in data["probe"], key
    roof = data["roofline"]
    for key in ("peak_flops", "bandwidth", "ridge_intensity", "predicted_s", "measured_s", "fraction", "bytes_per_batch", "layers"):
        assert key in roof, key
    assert [layer["name"] for layer in roof["layers"]] == [r.name for r in analyze(LENET).rows]
    for layer in roof["layers"]:
        for key in ("flops", "bytes", "intensity", "bound", "predicted_s", "measured_s", "fraction"):
            assert key in layer, key
        assert layer["measured_s"] > 0
        assert layer["bound"] in ("compute", "memory", "none")


def test_nothing_above_the_roof(lenet: Any) -> None:
    assert lenet.probe is not None
    assert 0 < lenet.fraction_of_peak <= 1
    assert 0 < lenet.roofline_fraction <= 1
    for layer in lenet.layers:
        assert layer.fraction is not None and 0 <= layer.fraction <= 1, layer.name
    assert lenet.violations() == []


def test_probe_cache_written_to_the_given_dir(cache: Path, lenet: Any) -> None:
    data = json.loads((cache / "probe.json").read_text())
    key = rl.probe_key(torch.device("cpu"), "float32")
    assert key in data["probes"]
    assert data["probes"][key]["peak_flops"] == lenet.probe.peak_flops
    assert lenet.probe_cached  # the session fixture measured it; the bench read it back


def test_cache_dir_env_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(rl.CACHE_ENV, str(tmp_path / "c"))
    assert rl.cache_path() == tmp_path / "c" / "probe.json"
    # a cached probe is used as is: nothing is measured
    fake = rl.Probe(rl.probe_key(torch.device("cpu"), "bfloat16"), "cpu", "x", "bfloat16", 1, "t", 1e12, 1e11, 1e10)
    rl.save_cache({fake.key: fake})
    t0 = time.perf_counter()
    got, cached = rl.get_probe("cpu", "bfloat16")
    assert cached and got.peak_flops == 1e12 and time.perf_counter() - t0 < 1


def test_merge_keeps_the_best() -> None:
    a = rl.Probe("k", "cpu", "x", "float32", 1, "t", 10.0, 5.0, 2.0, gemm_flops={"a": 10.0}, copy_bandwidth={"1": 2.0})
    b = rl.Probe("k", "cpu", "x", "float32", 1, "t", 8.0, 6.0, 1.0, gemm_flops={"a": 8.0, "b": 7.0}, copy_bandwidth={"1": 3.0})
    m = rl.merge_probes(a, b)
    assert (m.peak_flops, m.bandwidth, m.dram_bandwidth) == (10.0, 6.0, 2.0)
    assert m.gemm_flops == {"a": 10.0, "b": 7.0} and m.copy_bandwidth == {"1": 3.0} and m.runs == 2


def test_roofline_arithmetic() -> None:
    rep = analyze(parse_spec(SMALL), convention="torch", batch=2)
    layers = {lr.name: lr for lr in rl.roofline_layers(rep, 1e9, 1e8, dtype="float32", batch=2, measured={"conv2d0": 1.0})}
    c = layers["conv2d0"]
    assert c.input_bytes == 2 * 3 * 48 * 48 * 4
    assert c.output_bytes == 2 * 32 * 48 * 48 * 4
    assert c.weight_bytes == (32 * 3 * 3 * 3 + 32) * 4  # weight + bias
    assert c.flops == rep.row("conv2d0").flops == 2 * 2 * 32 * 48 * 48 * 27
    assert c.predicted_s == max(c.flops / 1e9, c.bytes / 1e8)
    assert c.bound == ("compute" if c.flops / c.bytes >= 10 else "memory")
    assert c.fraction == pytest.approx(c.predicted_s / 1.0)
    bn = layers["batchnorm2d1"]
    assert bn.flops == 0 and bn.bound == "memory" and bn.weight_bytes == (2 * 32 + 2 * 32 + 1) * 4
    relu = layers["relu2"]  # in place or not, it reads and writes the tensor
    assert relu.input_bytes == relu.output_bytes == 2 * 32 * 48 * 48 * 4
    flat = layers["flatten7"]
    assert (flat.bytes, flat.predicted_s, flat.bound) == (0, 0.0, "none")


def test_a_weak_probe_is_reported_not_hidden(cache: Path) -> None:
    weak = rl.Probe("weak", "cpu", "x", "float32", 1, "t", 1e3, 1e3, 1e3)
    r = bench_spec(LENET, warmup=1, repeat=3, probe=weak, progress=False)
    assert r.violations()
    assert any("underestimates" in w for w in r.warnings)


def test_train_step(cache: Path) -> None:
    r = bench_spec(parse_spec(SMALL), batch=2, warmup=1, repeat=3, train=True, per_layer=False, cache_dir=cache, progress=False)
    t = json.loads(render_bench(r, "json"))["train"]
    assert t["analytic_flops_per_image"] == 3 * t["forward_flops_per_image"] == 3 * r.flops_per_image
    assert "3 x forward" in t["convention"]
    assert t["images_per_s"]["median"] > 0 and len(t["time_s"]["runs"]) == 3
    assert 0 < t["fraction_of_peak"] <= 1
    assert t["achieved_flops"] == pytest.approx(t["analytic_flops_per_image"] * t["images_per_s"]["median"])


def test_channels_last_and_bfloat16_amp(cache: Path) -> None:
    r = bench_spec(parse_spec(SMALL), warmup=1, repeat=3, dtype="bfloat16", channels_last=True, probe=False, progress=False)
    assert r.amp and r.channels_last and r.images_per_s > 0 and r.probe is None and r.layers == []


def test_text_and_markdown(lenet: Any) -> None:
    text = render_bench(lenet, "text")
    for word in ("images/s", "CV", "GFLOP/s", "probed peak", "of the roofline", "c1", "compute"):
        assert word in text, word
    md = render_bench(lenet, "markdown")
    assert md.startswith("### lenet5") and "| layer" in md


def test_median_agrees_with_a_plain_perf_counter_loop() -> None:
    """The bench's median against an independent loop around the same module, interleaved."""
    arch = parse_spec({**SMALL, "input": [3, 128, 128]})  # ~10 ms a call: long enough to rise above timer jitter
    from archcalc.graph import compile_spec

    model = build_module(compile_spec(arch)).eval()
    x = torch.randn(1, 3, 128, 128)
    ours, plain, cvs = [], [], []
    for _ in range(5):
        r = bench_spec(arch, warmup=3, repeat=15, per_layer=False, probe=False, progress=False, module=model)
        ours.append(r.stats.median)
        cvs.append(r.cv)
        runs = []
        with torch.inference_mode():
            for _ in range(3):
                model(x)
            for _ in range(15):
                t0 = time.perf_counter()
                model(x)
                runs.append(time.perf_counter() - t0)
        plain.append(statistics.median(runs))
        cvs.append(statistics.stdev(runs) / statistics.fmean(runs))
    if statistics.median(cvs) > 0.3:
        pytest.skip(f"machine too busy to compare timings: median CV {statistics.median(cvs):.0%}")
    # other processes slow individual rounds down, never up: the fastest round of each method is
    # the least disturbed, so compare those (a systematic bias in bench would still show)
    a, b = min(ours), min(plain)
    assert abs(a - b) / b <= 0.2, (ours, plain)


def test_stats_quantiles() -> None:
    s = TimeStats((0.1, 0.2, 0.3, 0.4, 0.5))
    assert (s.p25, s.median, s.p75) == pytest.approx((0.2, 0.3, 0.4))
    assert s.cv == pytest.approx(statistics.stdev(s.runs) / 0.3)
    p25, med, p75 = s.rates(2)
    assert med == pytest.approx(2 / 0.3) and p25 < med < p75


def test_bad_options() -> None:
    with pytest.raises(SpecError, match="device"):
        bench_spec(LENET, device="tpu", probe=False)
    with pytest.raises(SpecError, match="dtype"):
        bench_spec(LENET, dtype="int8", probe=False)
    with pytest.raises(SpecError, match="batch"):
        bench_spec(LENET, batch=0, probe=False)
    if not torch.cuda.is_available():
        with pytest.raises(SpecError, match="CUDA is not available"):
            bench_spec(LENET, device="cuda", probe=False)


def _parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="archcalc")
    add_bench_parser(p.add_subparsers(dest="command"))
    return p.parse_args(["bench", *argv])


def test_cli_json_and_plot(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    monkeypatch.setenv(rl.CACHE_ENV, str(cache))
    out, png = tmp_path / "b.json", tmp_path / "roof.png"
    args = _parse(str(LENET), "--repeat", "3", "--warmup", "1", "--format", "json", "-o", str(out), "--plot", str(png), "--quiet")
    assert run_bench(args) == 0
    data = json.loads(out.read_text())
    assert data["repeat"] == 3 and data["probe"]["cached"] is True
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_plot_without_matplotlib(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(rl.CACHE_ENV, str(cache))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    png = tmp_path / "roof.png"
    args = _parse(str(LENET), "--repeat", "2", "--warmup", "1", "--no-layers", "--plot", str(png), "--quiet", "-o", str(tmp_path / "b.txt"))
    assert run_bench(args) == 2
    assert "matplotlib" in capsys.readouterr().err and not png.exists()


@cuda
def test_cuda_bench_amp(tmp_path: Path) -> None:
    r = bench_spec(
        parse_spec(SMALL), device="cuda", batch=8, dtype="float16", channels_last=True, warmup=3, repeat=10, cache_dir=tmp_path, progress=False
    )
    assert r.device.startswith("cuda") and r.amp and r.images_per_s > 0
    assert r.environment["cudnn_benchmark"] is True
    assert r.fraction_of_peak is not None and r.fraction_of_peak <= 1
    assert r.roofline_fraction is not None and r.roofline_fraction <= 1
    assert all(lr.fraction is None or lr.fraction <= 1 for lr in r.layers), r.violations()
    assert (tmp_path / "probe.json").exists()


@cuda
def test_cuda_train_float32(tmp_path: Path) -> None:
    r = bench_spec(LENET, device="cuda", batch=4, warmup=2, repeat=5, train=True, per_layer=False, cache_dir=tmp_path, progress=False)
    assert r.train is not None and r.train.images_per_s > 0
    assert r.train.fraction_of_peak is not None and r.train.fraction_of_peak <= 1


def test_bench_refuses_plot_without_probe_before_timing_and_checks_set(tmp_path: Path) -> None:
    from conftest import cli

    start = time.perf_counter()
    r = cli("bench", str(LENET), "--plot", str(tmp_path / "p.png"), "--no-probe", "-o", str(tmp_path / "b.json"))
    assert r.code == 2 and "--plot needs the probe" in r.err
    assert not (tmp_path / "b.json").exists() and time.perf_counter() - start < 5  # refused up front, nothing timed
    r = cli("bench", str(LENET), "--set", "X=3", "--quiet")
    assert r.code == 2 and "the spec uses no symbol 'X'" in r.err


def test_bench_warns_of_more_threads_than_cpus_and_reports_what_ran(tmp_path: Path) -> None:
    import os

    import torch

    before = torch.get_num_threads()
    try:
        r = bench_spec(
            parse_spec(json.loads((ROOT / "specs" / "conv1d_text.json").read_text())),
            channels_last=True, threads=(os.cpu_count() or 1) + 1, warmup=1, repeat=2, per_layer=False, probe=False, progress=False,
        )  # fmt: skip
    finally:
        torch.set_num_threads(before)
    assert any("threads on" in w and "contend" in w for w in r.warnings)
    assert any("channels_last ignored" in w for w in r.warnings) and r.channels_last is False  # a 1-D net: not applied


# ----- sizes torch cannot hold, and runs the machine cannot hold: refused before allocating -------------
HUGE = 10**30  # a valid size for archcalc's arithmetic, past torch's int64 (2**63 - 1, about 9.2e18)


@pytest.mark.parametrize(
    ("layers", "input", "where"),
    [
        ([{"name": "fc", "type": "linear", "out_features": 2}], [HUGE], "field 'input': the input"),
        ([{"name": "fc", "type": "linear", "out_features": HUGE}], [4], "layer 'fc': field 'output_shape': the output"),
    ],
)
@pytest.mark.parametrize("command", ["verify", "bench"])
def test_sizes_past_int64_are_one_line_exit_2(tmp_path: Path, command: str, layers: Any, input: Any, where: str) -> None:
    # torch failed in empty() with "Overflow when unpacking long long" and a 16-line C++ frame dump, exit 3
    from conftest import cli

    spec = tmp_path / "huge.json"
    spec.write_text(json.dumps({"name": "huge", "input": input, "layers": layers}))
    extra = ["--no-probe", "--repeat", "1", "--warmup", "0", "--quiet"] if command == "bench" else []
    r = cli(command, str(spec), *extra)
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert r.err.startswith(f"archcalc: error: {spec}: {where} {HUGE} has {HUGE:,} elements: past torch's int64 limit"), r.err


MLP = {
    "name": "mlp",
    "input": [192],
    "layers": [
        {"name": "fc1", "type": "linear", "out_features": 64},
        {"name": "relu1", "type": "relu", "inplace": True},
        {"name": "relu2", "type": "relu"},
        {"name": "fc2", "type": "linear", "out_features": 10},
    ],
}


def test_the_least_memory_a_run_holds() -> None:
    from archcalc.torch.limits import required_bytes

    rep = analyze(parse_spec(MLP), convention="torch", batch=2, dtype="float32")
    weights = ((192 * 64 + 64) + (64 * 10 + 10)) * 4  # float32 weights and biases
    x = 192 * 2 * 4  # the float32 input at batch 2, alive throughout
    # while a layer runs: its new output (0 for the in-place relu1) and the tensors it reads
    running = {"fc1": 64 * 2 * 4, "relu1": 0 + 64 * 2 * 4, "relu2": 64 * 2 * 4 + 64 * 2 * 4, "fc2": 10 * 2 * 4 + 64 * 2 * 4}
    assert required_bytes(rep) == weights + x + max(running.values())  # relu2: 1,024 B
    assert required_bytes(rep, weights=False) == x + 1024
    # training: weights and their gradients, and every new output kept for the backward pass
    assert required_bytes(rep, train=True) == 2 * weights + x + (64 * 2 * 4 + 0 + 64 * 2 * 4 + 10 * 2 * 4)


def test_bench_refuses_a_model_bigger_than_free_memory_before_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    from archcalc.torch import build, limits

    built: list[Any] = []
    monkeypatch.setattr(build, "build_module", lambda *a, **kw: built.append(a) or pytest.fail("allocated"))
    rep = analyze(parse_spec(MLP), convention="torch", batch=2, dtype="float32")
    need = limits.required_bytes(rep)
    monkeypatch.setattr(limits, "available_bytes", lambda device: need - 1)
    with pytest.raises(SpecError, match=r"needs at least .* on cpu .* at batch 2, float32\) but .* is free: refused before allocating"):
        bench_spec(parse_spec(MLP), batch=2, probe=False, progress=False)
    assert built == []
    monkeypatch.undo()
    monkeypatch.setattr(limits, "available_bytes", lambda device: need)  # exactly enough: it runs
    assert bench_spec(parse_spec(MLP), batch=2, warmup=0, repeat=1, probe=False, progress=False, per_layer=False).images_per_s > 0


def test_free_memory_is_read_from_meminfo() -> None:
    from archcalc.torch.limits import available_bytes

    free = available_bytes(torch.device("cpu"))
    if not Path("/proc/meminfo").exists():
        assert free is None
        return
    kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemAvailable:"))
    assert free is not None and abs(free - kb * 1024) < 2**30  # read twice, a moment apart


# ----- the roofline's bandwidth by level (a fixed probe result: no timing here) ------------------------
MiB = 1 << 20


def _point(kernel: str, nbytes: int, bw: float) -> Any:
    return rl.BandwidthPoint(kernel, nbytes, bw, 0.9 * bw, 1.1 * bw, 50)


# what this machine's probe read (issue 14): copies of cache-sized buffers ~130 GB/s, of DRAM-sized ones
# ~16 GB/s, and one small size 0.5 GB/s (a timing artefact, not a slower memory)
POINTS = [_point("copy", 1 * MiB, 0.5e9), _point("copy", 4 * MiB, 130e9), _point("sum", 32 * MiB, 60e9), _point("copy", 256 * MiB, 16e9)]


def test_bandwidth_levels_are_monotonic_in_the_working_set() -> None:
    # the level of n bytes: the best median among points of at least n bytes (a bigger working set never streams faster)
    assert rl.bandwidth_levels(POINTS) == [(1 * MiB, 130e9), (4 * MiB, 130e9), (32 * MiB, 60e9), (256 * MiB, 16e9)]
    levels = rl.bandwidth_levels(POINTS)
    assert rl.level_bandwidth(levels, 100) == 130e9  # smaller than any level: the smallest
    assert rl.level_bandwidth(levels, 4 * MiB + 1) == 60e9  # just past a level: the next one
    assert rl.level_bandwidth(levels, 10**12) == 16e9  # past every level: DRAM
    p = rl.Probe("k", "cpu", "x", "float32", 1, "t", 100e9, 130e9, 16e9, bandwidth_points=POINTS)
    assert p.levels == levels and p.bandwidth_for(151 * 10**6) == 16e9
    back = rl.Probe.from_json(json.loads(json.dumps(p.to_json())))  # the cache round trip
    assert back.bandwidth_points == POINTS and back.levels == levels
    assert p.to_json()["bandwidth_points"][0]["spread"] == pytest.approx((1.1 - 0.9) * 0.5e9 / 0.5e9)


def test_alexnet_fc6_is_memory_bound_at_the_dram_level() -> None:
    rep = analyze(ROOT / "specs" / "alexnet.json", convention="torch", batch=8)
    peak, levels = 100e9, rl.bandwidth_levels(POINTS)
    layers = {lr.name: lr for lr in rl.roofline_layers(rep, peak, 130e9, dtype="float32", batch=8, levels=levels)}
    fc6 = layers["fc6"]
    # 9216 -> 4096 at batch 8, float32: weights and bias, input, output
    assert fc6.bytes == (9216 * 4096 + 4096) * 4 + 8 * 9216 * 4 + 8 * 4096 * 4 == 151_437_312  # > 32 MiB of L3: DRAM
    assert fc6.flops == 2 * 8 * 9216 * 4096  # about 4 FLOP per byte, under the DRAM ridge of 100 / 16 = 6.25
    assert fc6.bandwidth == 16e9 and fc6.bound == "memory"
    assert fc6.predicted_s == max(fc6.flops / peak, fc6.bytes / 16e9) == fc6.bytes / 16e9
    # conv5 (5.1 MB: weights 256*256*9+256, input and output 8*256*13*13, float32) lives in L3's level,
    # relu5 (its 1.4 MB input and output) in the cache-sized one
    assert layers["conv5"].bytes == (256 * 256 * 9 + 256) * 4 + 2 * 8 * 256 * 13 * 13 * 4 and layers["conv5"].bandwidth == 60e9
    assert layers["conv5"].bound == "compute"  # 2*8*256*256*9*169 FLOPs on 5.1 MB: ~311 FLOP/B
    assert layers["relu5"].bandwidth == 130e9
    # one roof for every layer (the cache's best copy) called fc6 compute-bound: 4 FLOP/B over a ridge of 100 / 130
    flat = {lr.name: lr for lr in rl.roofline_layers(rep, peak, 130e9, dtype="float32", batch=8)}
    assert flat["fc6"].bound == "compute"


def test_merging_probes_keeps_each_points_better_median() -> None:
    a = rl.Probe("k", "cpu", "x", "float32", 1, "t", 1e9, 1e9, 1e9, bandwidth_points=[_point("copy", MiB, 50e9), _point("copy", 256 * MiB, 10e9)])
    b = rl.Probe("k", "cpu", "x", "float32", 1, "t", 1e9, 1e9, 1e9, bandwidth_points=[_point("copy", MiB, 40e9), _point("copy", 256 * MiB, 12e9)])
    m = rl.merge_probes(a, b)
    assert m.levels == [(MiB, 50e9), (256 * MiB, 12e9)] and (m.bandwidth, m.dram_bandwidth) == (50e9, 12e9)
