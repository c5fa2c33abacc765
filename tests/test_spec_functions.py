"""A spec's ``function`` is data: a closed list of spellings, checked at spec load; nothing named by it is imported.

Review s8 #13: ``"function": "pwn.go"`` beside a ``pwn.py`` ran that file under ``verify``, and ``"code.interact"`` opened
a Python prompt inside ``archcalc verify`` that ran its standard input.  Every such spec is refused by every command
(``table`` reads the spec; ``verify`` builds its model) with one line naming the file, the layer and the field, exit 2,
before anything runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from archcalc import parse_spec
from archcalc.errors import SpecError
from archcalc.functions import FUNCTIONS, OWNERS, split

ROOT = Path(__file__).resolve().parents[1]

_PAYLOAD = "import pathlib; pathlib.Path(__file__).with_name('RAN').write_text('ran')\ndef go(x):\n    return x\n"


def _spec(function: str) -> dict[str, object]:
    # a 1x1x1 input: code.interact(tensor) would print it as its banner and read stdin
    return {"name": "fn", "input": [1, 1, 1], "layers": [
        {"name": "c", "type": "conv2d", "out_channels": 1, "kernel_size": 1},
        {"name": "r", "type": "relu", "function": function}]}


@pytest.mark.parametrize("function", ["pwn.go", "code.interact", "os.system", "builtins.eval", "F.no_such_pool",
                                      "torch.nn.functional.relu", "subprocess.run"])
@pytest.mark.parametrize("command", ["table", "verify"])
def test_a_function_outside_the_closed_list_is_refused_and_nothing_runs(tmp_path: Path, command: str, function: str) -> None:
    (tmp_path / "pwn.py").write_text(_PAYLOAD)  # a module beside the spec: python -m archcalc has the cwd on sys.path
    (tmp_path / "spec.json").write_text(json.dumps(_spec(function)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    probe = "import pathlib; pathlib.Path('RAN').write_text('ran')\n"  # what code.interact / eval would run
    p = subprocess.run([sys.executable, "-m", "archcalc", command, "spec.json"], cwd=tmp_path, env=env, input=probe,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith(f"archcalc: error: spec.json: layer 'r': field 'function': {function!r} is not a function "
                               "archcalc knows"), p.stderr
    assert p.stdout == ""
    assert not (tmp_path / "RAN").exists()


def test_the_closed_list_is_what_import_writes_and_the_conventions_know() -> None:
    """Every handler of a call that makes a layer, spelled as import writes it, and every function a convention counts,
    and nothing else (the calls that only compute a size or check a flag make no layer, so no layer names them)."""
    pytest.importorskip("torch")
    from archcalc.conventions import CONVENTIONS
    from archcalc.torch import ops  # noqa: F401
    from archcalc.torch.importer import spelled
    from archcalc.torch.registry import HANDLERS

    values_only = {"Tensor.size", "Tensor.dim", "builtins.getattr", "math.ceil", "math.floor", "math.sqrt",
                   "operator.eq", "operator.ne", "operator.ge", "operator.gt", "operator.le", "operator.lt",
                   "torch._assert", "torch.fx._symbolic_trace._assert_is_none", "torch.arange",
                   # k and v repeated to every query head: folded into the attention that reads them (enable_gqa), no layer of their own
                   "torch.repeat_interleave", "Tensor.repeat_interleave",
                   # heads tiled (x.repeat(1, n, 1, 1), torch.tile): written as the plain concat of n copies they compute, no function
                   "Tensor.repeat", "torch.tile", "Tensor.tile"}
    known = {f for c in CONVENTIONS.values() if c.functions for f in c.functions}
    own = {n for n, h in HANDLERS.items() if h.__module__.startswith("archcalc.")}  # (not a test's registration)
    assert {spelled(n) for n in own if n not in values_only} | known == FUNCTIONS


def test_the_builder_maps_every_owner_through_its_own_table_and_imports_nothing_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torchvision")
    import importlib

    from archcalc.graph import compile_spec
    from archcalc.torch import build

    assert all(build._owner(o) is not None for o in OWNERS)
    assert build._owner("os") is None and build._owner("code") is None
    # a layer made without validation (model_construct) is refused by the builder too, and nothing is imported
    G = compile_spec(parse_spec(_spec("F.relu")))
    layer = G.nodes["r"]["layer"]
    sneaked = layer.model_copy(update={"function": "os.system"})

    def no_import(*a: object, **k: object) -> None:
        raise AssertionError(f"imported {a}")

    monkeypatch.setattr(importlib, "import_module", no_import)
    with pytest.raises(SpecError, match=r"layer 'r'.*field 'function'.*'os\.system' is not a function archcalc knows"):
        build.called_as(layer.build_torch([(1, 1, 1)]), sneaked, "r")
    # an allowed spelling: the torch function itself, through the table
    called = build.called_as(layer.build_torch([(1, 1, 1)]), layer, "r")
    import torch

    owner, attr = split("F.relu")
    assert called.__dict__["_call"].owner is torch.nn.functional and attr == "relu" and owner == "F"
    assert float(called(torch.tensor([-1.0, 2.0])).sum()) == 2.0  # relu(-1) + relu(2) = 0 + 2
