"""benchmarks/gpu_check.sh, the script for the day a GPU machine is lent, checked without one.

Its dry run (ARCHCALC_GPU_CHECK_DRY=1) runs the same steps on the CPU with tiny repeats: the
environment, the install of missing wheels, the CUDA tests (skipped here), the benches and the
summary. A fixed probe in the cache keeps the probe's timing out of this test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from archcalc.torch import roofline as rl  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def test_the_script_is_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    r = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout


def test_dry_run_on_cpu_writes_every_step_and_the_summary(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    # a roof far above this CPU: every fraction stays under 1, so bench never re-probes (no timing here)
    points = [rl.BandwidthPoint("copy", 1 << 20, 1e15, 1e15, 1e15, 5), rl.BandwidthPoint("copy", 1 << 30, 1e14, 1e14, 1e14, 5)]
    probe = rl.Probe(rl.probe_key(torch.device("cpu"), "float32"), "cpu", "test", "float32", torch.get_num_threads(), "t", 1e15, 1e15, 1e14,
                     bandwidth_points=points)  # fmt: skip
    rl.save_cache({probe.key: probe}, cache)
    out = tmp_path / "results"
    env = {
        **os.environ,
        "OUT": str(out),
        "PYTHON": sys.executable,
        "ARCHCALC_GPU_CHECK_DRY": "1",
        "ARCHCALC_GPU_CHECK_NETS": "lenet5",
        "ARCHCALC_GPU_CHECK_DTYPES": "float32",
        "ARCHCALC_CACHE_DIR": str(cache),
        "ARCHCALC_WHEELS": str(tmp_path / "no-wheels"),  # nothing is missing here: none is needed
    }
    r = subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False)
    steps = [line.split("\t") for line in (out / "steps.tsv").read_text().splitlines()]
    assert r.returncode == 0, (r.stderr, steps)
    assert [s[:2] for s in steps] == [
        ["step", "exit"],
        ["env", "0"],
        ["install", "0"],
        ["cuda_tests", "0"],
        ["bench_lenet5_float32", "0"],
        ["memory_lenet5", "0"],
        ["summary", "0"],
    ]
    assert "nothing to install" in (out / "install.log").read_text()
    assert (out / "cuda_tests.xml").exists()  # the CUDA tests ran (and skipped: no CUDA here)
    bench = json.loads((out / "bench_lenet5_float32.json").read_text())
    assert bench["device"] == "cpu" and bench["repeat"] == 2 and bench["batch"] == 1
    summary = json.loads((out / "summary.json").read_text())
    (row,) = summary["bench"]
    assert row["network"] == "lenet5" and row["images_per_s"] == bench["images_per_s"]["median"]
    assert row["fraction_of_peak"] == bench["fraction_of_peak"] and 0 < row["fraction_of_peak"] < 1
    assert "| lenet5 | float32 | 1 |" in (out / "summary.md").read_text()
    # archcalc memory's peak beside the allocator's (none on a CPU)
    memory = json.loads((out / "memory_lenet5.json").read_text())
    peak = json.loads(subprocess.run([sys.executable, "-m", "archcalc", "memory", "specs/lenet5.json", "--batch", "1", "--format", "json"],
                                     cwd=ROOT, capture_output=True, text=True, check=True).stdout)["totals"]["peak_bytes"]  # fmt: skip
    assert memory == {"network": "lenet5", "batch": 1, "device": "cpu", "archcalc_bytes": peak, "measured_bytes": None}
    assert summary["memory"] == [memory]


def test_a_missing_wheel_stops_the_run_with_the_download_hint(tmp_path: Path) -> None:
    # a python without pydantic, as on the GPU machine: a sitecustomize on its path hides the package
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['pydantic'] = None\n")
    env = {
        **os.environ,
        "OUT": str(tmp_path / "r"),
        "PYTHON": sys.executable,
        "PYTHONPATH": str(hide),
        "ARCHCALC_GPU_CHECK_DRY": "1",
        "ARCHCALC_WHEELS": str(tmp_path / "none"),
    }
    r = subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 2, r.stderr
    log = (tmp_path / "r" / "install.log").read_text()
    assert "no wheel for pydantic" in log and "fetch the wheels" in log, log
