#!/usr/bin/env bash
# GPU readiness check for archcalc: run it once on the day a GPU machine is lent, then commit the
# figures it writes (summary.md) to reports/.
#
#   benchmarks/gpu_check.sh                              # results in $OUT, else ./gpu_results
#   ARCHCALC_GPU_CHECK_DRY=1 benchmarks/gpu_check.sh     # the same steps on the CPU, tiny repeats
#
# Steps, each under its own timeout and all within 8 minutes (a step that fails is recorded in
# steps.tsv and the next one runs):
#   1. environment: python, torch, the GPU (nvidia-smi) -> env.txt
#   2. install what is missing (pydantic and our other pure dependencies) from wheels carried beside
#      this script, with `pip install --no-index --no-deps --target` (no network there)
#   3. the CUDA tests (tests/test_bench.py -k cuda) -> cuda_tests.xml
#   4. bench of five zoo networks on cuda in float32 and bfloat16 -> bench_NET_DTYPE.json; the
#      images/s and the fraction of the probed peak of each -> summary.md, summary.json
#   5. if `archcalc memory` exists: its peak against torch.cuda.max_memory_allocated -> memory_NET.json
#
# The machine lent has Python 3.12 with torch 2.11, torchvision and timm, but no pydantic and no
# package index. Fetch the wheels here, on a machine with one, into benchmarks/.whl/ (ignored by git:
# pass it along, e.g. the device tool's carry=["benchmarks/.whl"]):
#
#   pip download --only-binary=:all: --python-version 3.12 --platform manylinux_2_17_x86_64 \
#       --implementation cp --abi cp312 --no-deps -d benchmarks/.whl \
#       pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
#       typing-extensions==4.16.0 tabulate==0.10.0 pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 \
#       packaging==26.4
#
# (networkx, sympy and mpmath come with torch; on a machine without them add networkx==3.6.1 sympy==1.14.0
# mpmath==1.3.0 to the list.) Settings, all optional: OUT (results folder), PYTHON
# (default python3), ARCHCALC_WHEELS (default benchmarks/.whl), ARCHCALC_GPU_CHECK_NETS,
# ARCHCALC_GPU_CHECK_DTYPES, ARCHCALC_GPU_CHECK_BATCH, ARCHCALC_CACHE_DIR (the probe cache;
# default OUT/probe_cache), ARCHCALC_GPU_CHECK_BUDGET (seconds for everything, default 470; dry 3000).

# shellcheck disable=SC2317  # the step functions run through `bash -c` (exported), which shellcheck cannot follow
set -uo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
root=$(cd -- "$here/.." && pwd)
out=${OUT:-$PWD/gpu_results}
wheels=${ARCHCALC_WHEELS:-$here/.whl}
py=${PYTHON:-python3}
dry=${ARCHCALC_GPU_CHECK_DRY:-0}
nets=${ARCHCALC_GPU_CHECK_NETS:-"resnet50 vgg16 mobilenet_v2 densenet121 alexnet"}
dtypes=${ARCHCALC_GPU_CHECK_DTYPES:-"float32 bfloat16"}

if [ "$dry" = 1 ]; then  # a CPU (maybe a busy one): each cold probe alone takes a minute
    device=cpu batch=${ARCHCALC_GPU_CHECK_BATCH:-1} warmup=1 repeat=2 bench_limit=300 test_limit=300 env_limit=300
    budget=${ARCHCALC_GPU_CHECK_BUDGET:-3000}
else
    device=cuda batch=${ARCHCALC_GPU_CHECK_BATCH:-64} warmup=5 repeat=20 bench_limit=30 test_limit=100 env_limit=60
    budget=${ARCHCALC_GPU_CHECK_BUDGET:-470}
fi

mkdir -p "$out" || exit 2
out=$(cd -- "$out" && pwd)
site=${TMPDIR:-/tmp}/archcalc-gpu-site
export ARCHCALC_CACHE_DIR=${ARCHCALC_CACHE_DIR:-$out/probe_cache}
export PYTHONPATH="$root:$site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
deadline=$((SECONDS + budget))
failed=0
printf 'step\texit\tseconds\n' >"$out/steps.tsv"

say() { printf 'gpu_check: %s\n' "$*" | tee -a "$out/log.txt" >&2; }

# step NAME LIMIT COMMAND...: run COMMAND under min(LIMIT, time left), output to NAME.log, record it
step() {
    local name=$1 limit=$2 left rc start
    shift 2
    left=$((deadline - SECONDS))
    if [ "$left" -lt 5 ]; then
        say "$name: skipped, the ${budget} s budget is spent"
        printf '%s\tskipped\t0\n' "$name" >>"$out/steps.tsv"
        failed=1
        return 124
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    start=$SECONDS
    # a fresh bash runs the step (timeout runs programs, not functions: the functions are exported)
    timeout --kill-after=5 "$limit" bash -c '"$@"' step "$@" >"$out/$name.log" 2>&1
    rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" >>"$out/steps.tsv"
    if [ "$rc" -ne 0 ]; then
        failed=1
        say "$name: exit $rc$([ "$rc" -eq 124 ] && printf ' (timed out after %s s)' "$limit") - see $name.log"
    else
        say "$name: ok in $((SECONDS - start)) s"
    fi
    return "$rc"
}

environment() {
    "$py" - "$device" <<'PY'
import platform, sys
print("python", sys.version.split()[0], platform.platform())
try:
    import torch
except ImportError:
    sys.exit("no torch")
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
from importlib import metadata
for name in ("torchvision", "timm", "pydantic"):  # versions without importing them (timm takes seconds)
    try:
        print(name, metadata.version(name))
    except metadata.PackageNotFoundError:
        print(name, "missing")
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        print(f"cuda:{i}", torch.cuda.get_device_name(i), f"{free / 2**30:.1f} of {total / 2**30:.1f} GiB free")
elif sys.argv[1] == "cuda":
    sys.exit("CUDA is not available: nothing to check on this machine")
PY
    if command -v nvidia-smi >/dev/null; then nvidia-smi; fi
}

# the modules archcalc and its tests import, and the wheels that provide them
install_missing() {
    local missing files=() name
    missing=$("$py" - <<'PY'
import importlib.util
mods = ["pydantic", "pydantic_core", "annotated_types", "typing_inspection", "typing_extensions", "tabulate",
        "networkx", "sympy", "mpmath", "pytest", "pluggy", "iniconfig", "packaging"]
missing = [m for m in mods if importlib.util.find_spec(m) is None]
if "pydantic" in missing:  # pydantic needs a newer typing_extensions than torch may bring
    missing += [m for m in ("pydantic_core", "annotated_types", "typing_inspection", "typing_extensions") if m not in missing]
print(" ".join(missing))
PY
    ) || return 2
    if [ -z "$missing" ]; then
        echo "nothing to install"
        return 0
    fi
    echo "missing: $missing"
    for name in $missing; do
        local found=("$wheels/$name"-*.whl)
        if [ ! -e "${found[0]}" ]; then
            echo "no wheel for $name in $wheels: fetch the wheels as the header of $here/gpu_check.sh says"
            return 2
        fi
        files+=("${found[0]}")
    done
    mkdir -p "$site"
    if "$py" -m pip --version >/dev/null 2>&1; then
        "$py" -m pip install --no-index --no-deps --target "$site" --upgrade "${files[@]}"
    else  # no pip: a wheel is a zip of the files to import
        "$py" -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' "$site" "${files[@]}"
    fi
    "$py" -c 'import archcalc, pydantic, tabulate; print("archcalc from", archcalc.__file__, "pydantic", pydantic.VERSION)'
}

cuda_tests() {
    cd -- "$root" && "$py" -m pytest -q -p no:cacheprovider -rs tests/test_bench.py -k cuda --junitxml="$out/cuda_tests.xml"
}

bench_one() {
    local net=$1 dtype=$2
    cd -- "$root" && "$py" -m archcalc bench "specs/$net.json" --device "$device" --dtype "$dtype" --batch "$batch" \
        --warmup "$warmup" --repeat "$repeat" --quiet --format json -o "$out/bench_${net}_${dtype}.json"
}

memory_one() {
    cd -- "$root" && "$py" "$here/gpu_memory.py" "specs/$1.json" --device "$device" --batch "$batch" -o "$out/memory_$1.json"
}

export py device batch warmup repeat root here out site wheels
export -f environment install_missing cuda_tests bench_one memory_one

say "results in $out ($([ "$dry" = 1 ] && echo 'dry run on cpu' || echo cuda); budget ${budget} s)"
step env "$env_limit" environment || { say "no usable torch/CUDA here: stopping"; exit 2; }
step install 60 install_missing || { say "dependencies missing: stopping"; exit 2; }
step cuda_tests "$test_limit" cuda_tests
for net in $nets; do
    for dtype in $dtypes; do
        step "bench_${net}_${dtype}" "$bench_limit" bench_one "$net" "$dtype"
    done
done
if (cd -- "$root" && "$py" -m archcalc memory --help >/dev/null 2>&1); then
    for net in $nets; do
        step "memory_$net" 60 memory_one "$net"
    done
else
    say "memory: no 'archcalc memory' command yet: peak memory not compared"
fi
step summary 30 "$py" "$here/gpu_summary.py" "$out"
say "done in ${SECONDS} s: $out/summary.md"
exit "$failed"
