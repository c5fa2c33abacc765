"""Shared helpers: build small specs inline, run the CLI in-process."""

from __future__ import annotations

import io
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from archcalc import Report, analyze, parse_spec
from archcalc.cli import main

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
ZOO = sorted(SPECS.glob("*.json"))


def net(layers: list[dict[str, Any]], input: Sequence[int | str] = (3, 32, 32), **kw: Any) -> Report:
    """Analyse a small inline spec."""
    return analyze(parse_spec({"name": "t", "input": list(input), "layers": layers}), **kw)


def conv(n: int | str, k: Any, **kw: Any) -> dict[str, Any]:
    return {"type": "conv2d", "out_channels": n, "kernel_size": k, **kw}


class CLIResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


def cli(*args: str) -> CLIResult:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse usage errors
            code = int(e.code or 0)
    return CLIResult(code, out.getvalue(), err.getvalue())


def write_json(tmp_path: Path, doc: Any, name: str = "spec.json") -> str:
    """Write ``doc`` as JSON to ``tmp_path / name``; its path."""
    import json

    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.fixture
def spec_file(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write text to a spec file and return its path."""

    def write(text: str, name: str = "spec.json") -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p

    return write


def checkpointed(G: Any, model: Any, blocks: Sequence[str], *, reentrant: bool, free: bool = False) -> Any:
    """``model`` (built from graph ``G``) run with each block call in ``blocks`` under
    torch.utils.checkpoint, as a user checkpoints them; ``free`` drops each value after its last
    reader (so that a measured peak holds only what a real forward holds)."""
    import torch
    from torch.utils.checkpoint import checkpoint

    order, nodes, output = G.graph["order"], G.nodes, G.graph["output"]
    seg_of = {n: b for b in blocks for n in order if n.startswith(b + ".")}
    last = {s: i for i, n in enumerate(order) for s in nodes[n]["inputs"]}

    def run_segment(members: list[str], ins: list[str], outs: list[str]) -> Any:
        def run(*args: Any) -> Any:
            vals = dict(zip(ins, args, strict=True))
            for n in members:
                vals[n] = model.layer(n)(*[vals[s] for s in nodes[n]["inputs"]])
            return tuple(vals[o] for o in outs)

        return run

    class Checkpointed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: Any) -> Any:
            values, done = {"input": x}, set()
            for i, name in enumerate(order):
                seg = seg_of.get(name)
                if seg is None:
                    values[name] = model.layer(name)(*[values[s] for s in nodes[name]["inputs"]])
                elif seg not in done:
                    done.add(seg)
                    members = [n for n in order if seg_of.get(n) == seg]
                    ins = list(dict.fromkeys(s for n in members for s in nodes[n]["inputs"] if seg_of.get(s) != seg))
                    outs = [n for n in members if any(n in nodes[m]["inputs"] for m in order if seg_of.get(m) != seg)]
                    got = checkpoint(run_segment(members, ins, outs), *[values[s] for s in ins], use_reentrant=reentrant)
                    values.update(zip(outs, got, strict=True))
                if free:
                    for s in [s for s, at in last.items() if at == i and s in values and s not in (output, "input")]:
                        del values[s]
            return values[output]

    return Checkpointed()
