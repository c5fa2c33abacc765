"""Bad input: one line on stderr naming file, layer and field; exit 2; no traceback; no output file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli


def spec(*layers: dict, input: list = [3, 8, 8], **extra: object) -> str:  # noqa: B006
    return json.dumps({"name": "bad", "input": input, "layers": list(layers), **extra})


def conv(name: str = "c", **kw: object) -> dict:
    return {"name": name, "type": "conv2d", "out_channels": 4, "kernel_size": 3, **kw}


CASES = [
    # (id, spec text, substrings the one-line message must contain)
    ("invalid-json", '{"name": "x", "input": [3, 8, 8],\n "layers": [ {"name": "c", } ]}', ["line 2, column", "invalid JSON"]),
    ("not-an-object", "[1, 2]", ["must be a JSON object"]),
    ("unknown-type", spec({"name": "c", "type": "conv2e"}), ["layer 'c'", "unknown layer type 'conv2e'", "conv2d", "maxpool2d"]),
    ("missing-type", spec({"name": "c", "out_channels": 4}), ["layer 'c'", "missing 'type'"]),
    ("entry-not-an-object", spec(conv(), 5), ["layer 'layers[1]'", "object with a 'type'"]),
    (
        "unknown-field-in-block",
        spec({"name": "s", "type": "block", "block": "b", "nope": 1}),
        ["layer 's'", "field 'nope'", "unknown field of block", "repeat"],
    ),
    ("missing-field", spec({"name": "c", "type": "conv2d", "kernel_size": 3}), ["layer 'c'", "field 'out_channels'", "missing"]),
    ("wrong-type-float", spec(conv(out_channels=4.5)), ["layer 'c'", "field 'out_channels'", "integer"]),
    ("wrong-type-bool", spec(conv(bias="yes")), ["layer 'c'", "field 'bias'", "boolean"]),
    ("unknown-field", spec({"name": "r", "type": "relu", "out_channels": 4}), ["layer 'r'", "field 'out_channels'", "unknown field", "inplace"]),
    ("zero-size", spec(conv(out_channels=0)), ["layer 'c'", "field 'out_channels'", "positive, got 0"]),
    ("negative-padding", spec(conv(padding=-1)), ["layer 'c'", "field 'padding'", "at least 0"]),
    ("negative-input", spec(conv(), input=[3, -8, 8]), ["field 'input'", "positive"]),
    ("zero-stride-symbolic", spec(conv(stride="S - S")), ["layer 'c'", "field 'stride'", "positive"]),
    ("kernel-too-large", spec(conv(kernel_size=11, padding=1)), ["layer 'c'", "field 'kernel_size'", "kernel extent 11", "padded input 8+1+1=10"]),
    ("groups", spec(conv(groups=2)), ["layer 'c'", "field 'groups'", "in_channels 3 is not divisible by groups 2"]),
    ("same-strided", spec(conv(padding="same", stride=2)), ["layer 'c'", "field 'padding'", "strided"]),
    (
        "add-mismatch",
        spec(conv("a", padding=1), conv("b", out_channels=8, padding=1, inputs=["input"]), {"name": "s", "type": "add", "inputs": ["a", "b"]}),
        ["layer 's'", "field 'inputs'", "a 4×8×8", "b 8×8×8"],
    ),
    (
        "concat-mismatch",
        spec(conv("a"), conv("b", padding=1, inputs=["input"]), {"name": "s", "type": "concat", "inputs": ["a", "b"]}),
        ["layer 's'", "field 'inputs'", "a 4×6×6", "b 4×8×8"],
    ),
    ("add-one-input", spec(conv("a"), {"name": "s", "type": "add"}), ["layer 's'", "field 'inputs'", "at least 2"]),
    (
        "unknown-reference",
        spec(conv("conv"), {"name": "s", "type": "add", "inputs": ["conv", "cnv"]}),
        ["layer 's'", "field 'inputs'", "unknown reference 'cnv'", "did you mean 'conv'"],
    ),
    ("duplicate-name", spec(conv("c"), {"name": "c", "type": "relu"}), ["layer 'c'", "field 'name'", "duplicate"]),
    ("reserved-name", spec({"name": "input", "type": "relu"}), ["field 'name'", "reserved"]),
    (
        "cycle",
        spec({"name": "a", "type": "relu", "inputs": ["b"]}, {"name": "b", "type": "relu", "inputs": ["a"]}),
        ["field 'inputs'", "cycle: a -> b -> a"],
    ),
    (
        "absurd-repeat",
        spec({"name": "s", "type": "block", "block": "b", "repeat": 10**9}, blocks={"b": {"layers": [{"name": "r", "type": "relu"}]}}),
        ["layer 's'", "field 'repeat'", "between 1 and"],
    ),
    (
        "nested-repeat-explosion",
        spec(
            {"name": "s", "type": "block", "block": "outer", "repeat": 50_000},
            blocks={
                "b": {"layers": [{"name": "r", "type": "relu"}]},
                "outer": {"layers": [{"name": "q", "type": "block", "block": "b", "repeat": 50_000}]},
            },
        ),
        ["layer 's'", "field 'repeat'", "refusing to expand"],
    ),
    (
        "recursive-block",
        spec({"name": "s", "type": "block", "block": "b"}, blocks={"b": {"layers": [{"name": "q", "type": "block", "block": "b"}]}}),
        ["uses itself"],
    ),
    ("unknown-block", spec({"name": "s", "type": "block", "block": "nope"}), ["layer 's'", "field 'block'", "unknown block 'nope'"]),
    (
        "missing-block-arg",
        spec({"name": "s", "type": "block", "block": "b"}, blocks={"b": {"params": {"n": None}, "layers": [conv(out_channels="n")]}}),
        ["layer 's'", "field 'args'", "needs a value for parameter 'n'"],
    ),
    (
        "unknown-block-arg",
        spec({"name": "s", "type": "block", "block": "b", "args": {"m": 2}}, blocks={"b": {"params": {"n": 1}, "layers": [conv()]}}),
        ["field 'args'", "no parameter 'm'"],
    ),
    ("expr-call", spec(conv(out_channels='__import__("os").system("true")')), ["field 'out_channels'", "uses Call"]),
    ("expr-attribute", spec(conv(out_channels="C.real")), ["field 'out_channels'", "uses Attribute"]),
    ("expr-power", spec(conv(out_channels="C**2")), ["field 'out_channels'", "uses Pow"]),
    ("expr-true-division", spec(conv(out_channels="C/2")), ["field 'out_channels'", "uses Div"]),
    ("expr-float", spec(conv(out_channels="2.5*C")), ["field 'out_channels'", "uses Constant"]),
    ("expr-dunder", spec(conv(out_channels="__class__")), ["field 'out_channels'"]),
    ("expr-too-long", spec(conv(out_channels="+".join(["C"] * 200))), ["field 'out_channels'", "longer than"]),
    ("expr-syntax", spec(conv(out_channels="2*(C")), ["field 'out_channels'", "not an expression"]),
    (
        "flag-not-a-size",
        spec({"name": "s", "type": "block", "block": "b"}, blocks={"b": {"params": {"f": True}, "layers": [conv(out_channels="f")]}}),
        ["field 'out_channels'", "true/false"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_spec(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    out_file = tmp_path / "out.csv"
    r = cli("table", str(path), "--format", "csv", "-o", str(out_file))
    assert r.code == 2
    assert r.out == ""
    assert not out_file.exists(), "nothing is written on error"
    assert list(tmp_path.iterdir()) == [path], "no temp files left behind"
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith(f"archcalc: error: {path}: "), lines[0]
    for piece in expected:
        assert piece in lines[0], (piece, lines[0])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--set", "H"], "--set needs SYMBOL=POSITIVE_INTEGER"),
        (["--set", "H=0"], "--set needs SYMBOL=POSITIVE_INTEGER"),
        (["--convention", "fvcorez"], "unknown convention 'fvcorez'"),
        (["--dtype", "float8"], "unknown dtype 'float8'"),
        (["--batch", "0"], "--batch must be positive"),
        (["--batch", "N**2"], "uses Pow"),
        (["--input", "3,0,8"], "input sizes must be positive"),
    ],
)
def test_bad_flags(args: list[str], expected: str) -> None:
    r = cli("table", "specs/alexnet.json", *args)
    assert r.code == 2
    assert expected in r.err and len(r.err.strip().splitlines()) == 1


def test_missing_file() -> None:
    r = cli("table", "no/such/spec.json")
    assert r.code == 2 and "no/such/spec.json: cannot read spec" in r.err


def test_huge_dims_stay_exact() -> None:
    # 10^11 x 10^11 input: exact big integers, no float rounding
    r = cli("quick", "3x100000000000x100000000000", "conv 4096 3 bias=false", "--format", "json")
    assert r.code == 0
    row = json.loads(r.out)["layers"][0]
    side = 100_000_000_000 - 3 + 1
    assert row["macs"] == 4096 * side * side * 3 * 9
    assert row["activation_bytes"] == 4096 * side * side * 4


def test_no_traceback_in_a_real_process(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(spec(conv(kernel_size=99)))
    p = subprocess.run([sys.executable, "-m", "archcalc", "table", str(path)], capture_output=True, text=True)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    # --debug shows the traceback for developers
    p = subprocess.run([sys.executable, "-m", "archcalc", "--debug", "table", str(path)], capture_output=True, text=True)
    assert "Traceback" in p.stderr
