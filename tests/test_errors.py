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
    ("unknown-type", spec({"name": "c", "type": "conv2e"}), ["layer 'c'", "field 'type'", "unknown layer type 'conv2e'; did you mean 'conv2d'"]),
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
    (
        "name-clashes-with-expanded-block",  # 'b.r' written out, and block call 'b' expanding its layer 'r' to 'b.r'
        spec(
            {"name": "b.r", "type": "relu"},
            {"name": "b", "type": "block", "block": "x"},
            blocks={"x": {"layers": [{"name": "r", "type": "relu"}]}},
        ),
        ["layer 'b.r'", "field 'name'", "duplicate layer name 'b.r'"],
    ),
    (
        "name-clashes-with-a-later-copy",
        spec(
            {"name": "b", "type": "block", "block": "x", "repeat": 2},
            {"name": "b.1.r", "type": "relu"},
            blocks={"x": {"layers": [{"name": "r", "type": "relu"}]}},
        ),
        ["layer 'b.1.r'", "duplicate layer name 'b.1.r'"],
    ),
    (
        "concat-dim-out-of-range",  # torch.cat on a 4-D (batch-first) tensor takes dim -4..3; 7 used to wrap around
        spec(conv("a", padding=1), {"name": "s", "type": "concat", "inputs": ["a", "input"], "dim": 7}),
        ["layer 's'", "field 'dim'", "dim 7 is out of range for a 4-D tensor", "-4..3"],
    ),
    ("padding-same-capitalised", spec(conv(padding="Same")), ["layer 'c'", "field 'padding'", "did you mean 'same'"]),
    ("dropout-p-above-1", spec({"name": "d", "type": "dropout", "p": 2}), ["layer 'd'", "field 'p'", "less than or equal to 1"]),
    ("symbolic-division-by-zero", spec(conv(out_channels="C//(C-C)"), input=["C", 8, 8]), ["field 'out_channels'", "division by zero"]),
    ("not-utf8", '{"name": "caf\udce9"}', ["not UTF-8 text: byte 0xe9"]),
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
    ("expr-call", spec(conv(out_channels='__import__("os").system("true")')), ["field 'out_channels'", "uses a function call", "only names"]),
    ("expr-attribute", spec(conv(out_channels="C.real")), ["field 'out_channels'", "uses '.' (attribute access)"]),
    ("expr-power", spec(conv(out_channels="C**2")), ["field 'out_channels'", "uses '**'"]),
    ("expr-true-division", spec(conv(out_channels="C/2")), ["field 'out_channels'", "uses '/' (write // for whole-number division)"]),
    ("expr-float", spec(conv(out_channels="2.5*C")), ["field 'out_channels'", "'2.5*C' uses '2.5', which is not a whole number"]),
    # said plainly (it read "'__class__' uses Name; only names ... are allowed")
    ("expr-dunder", spec(conv(out_channels="__class__")), ["field 'out_channels'", "the name '__class__', which starts with '_'", "not starting"]),
    ("expr-too-long", spec(conv(out_channels="+".join(["C"] * 200))), ["field 'out_channels'", "longer than"]),
    ("expr-syntax", spec(conv(out_channels="2*(C")), ["field 'out_channels'", "not an expression"]),
    (
        "flag-not-a-size",
        spec({"name": "s", "type": "block", "block": "b"}, blocks={"b": {"params": {"f": True}, "layers": [conv(out_channels="f")]}}),
        ["field 'out_channels'", "true/false"],
    ),
    # review s7 #23: json keeps the last of two equal keys (kernel 5 was analysed, RF 5x5, without a word)
    (
        "duplicate-key",
        '{"name": "d", "input": [3, 8, 8], "layers": [{"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "kernel_size": 5}]}',
        ["layer 'c'", "field 'kernel_size'", "given twice (3 and 5)"],
    ),
    (
        "duplicate-key-nameless",
        '{"name": "d", "input": [3, 8, 8], "layers": [{"type": "relu", "type": "tanh"}]}',
        ["'type' given twice in a relu layer"],
    ),
    (
        "duplicate-key-top",
        '{"name": "d", "input": [3, 8, 8], "input": [3, 9, 9], "layers": []}',
        ["'input' given twice in the object named 'd'", "([3, 8, 8] and [3, 9, 9])"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_spec(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))  # '\udce9': a raw 0xe9 byte, not UTF-8
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
        (["--batch", "N**2"], "uses '**'"),
        (["--input", "3,0,8"], "input sizes must be positive"),
        (["--set", "X=3"], "--set X: the spec uses no symbol 'X' (it has no symbols)"),  # a typo is not a no-op
        (["--input", "3,H,W", "--set", "h=227"], "--set h: the spec uses no symbol 'h'; did you mean 'H'?"),
    ],
)
def test_bad_flags(args: list[str], expected: str) -> None:
    r = cli("table", "specs/alexnet.json", *args)
    assert r.code == 2
    assert expected in r.err and len(r.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["table", "specs/alexnet.json", "--format", "pdf"], "invalid choice: 'pdf'"),
        (["table", "specs/alexnet.json", "--bogus"], "unrecognized arguments: --bogus"),
        (["tabel", "specs/alexnet.json"], "invalid choice: 'tabel'"),
        (["table", "specs/alexnet.json", "-o", ""], "empty output path"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], expected: str) -> None:
    r = cli(*args)
    assert r.code == 2 and expected in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_debug_anywhere_on_the_line() -> None:
    assert cli("table", "specs/alexnet.json", "--debug").code == 0


def test_output_file_permissions_and_symlinks(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        new = tmp_path / "new.md"
        assert cli("table", "specs/alexnet.json", "-o", str(new)).code == 0
        assert stat.S_IMODE(new.stat().st_mode) == 0o644  # as open() would make it, not mkstemp's 0600
        new.chmod(0o640)
        assert cli("table", "specs/alexnet.json", "-o", str(new)).code == 0
        assert stat.S_IMODE(new.stat().st_mode) == 0o640  # an existing file keeps its mode
        target, link = tmp_path / "target.md", tmp_path / "link.md"
        target.write_text("old")
        link.symlink_to(target)
        assert cli("table", "specs/alexnet.json", "-o", str(link)).code == 0
        assert link.is_symlink() and target.read_text().startswith("*AlexNet (Krizhevsky et al. 2012): input 3\u00d7227\u00d7227")  # .md: markdown
    finally:
        os.umask(old)


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


def test_results_past_python_str_digit_limit_print_exactly(tmp_path: Path) -> None:
    # Python 3.11 refuses int <-> str beyond 4,300 digits by default.  Inputs are bounded to 100
    # digits (tests/test_limits.py), but a product of 45 such sizes has 4,455 digits: it prints exactly
    default = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(4300)  # as a fresh interpreter has it
    try:
        side_text = "9" * 99  # 10^99 - 1, written without converting an int
        path = tmp_path / "big.json"
        layer = '{"name": "r", "type": "relu"}'
        path.write_text(f'{{"name": "big", "input": [2, {", ".join([side_text] * 45)}], "layers": [{layer}]}}')
        r = cli("table", str(path), "--format", "json")
        text = cli("table", str(path)).out
        sys.set_int_max_str_digits(0)  # for this test's own arithmetic on the result
        assert r.code == 0, r.err
        side = 10**99 - 1
        memory = 2 * side**45 * 4  # float32 output of 2 x side^45
        assert json.loads(r.out)["totals"]["activation_bytes"] == memory
        assert f"{memory:,}" in text  # exact digits: no float in the way
    finally:
        sys.set_int_max_str_digits(default)


def test_human_units_round_exactly_half_up() -> None:
    from archcalc.render.units import count, size

    # three significant digits, trailing zeros kept: 72,855,552 -> 72.9M; 4,097,000 -> 4.10M;
    # 802,816 B = 802816/1024 = 784 KiB (binary units say so)
    assert count(72_855_552) == "72.9M" and size(802_816) == "784 KiB"
    assert count(4_097_000) == "4.10M" and count(307_392) == "307K" and count(23_296) == "23.3K"
    assert count(1_015) == "1.02K"  # 1.015 exactly: half up (a float would print 1.01)
    assert size(6_272) == "6.13 KiB"  # 32*7*7*4 B = 6.125 KiB exactly
    assert count(999_999) == "1.00M"  # 999.999K rounds to 1,000K: the next unit
    assert size(1_000) == "0.977 KiB"  # 1000/1024 = 0.9766: three digits, never "1000 B"
    assert size(186_624) == "182 KiB"  # AlexNet pool1: 64*27*27*4 = 182.25 KiB
    assert count(243 * 10**30 + 75_497_472) == "243,000,000,000,000,000,000T"


def test_no_traceback_in_a_real_process(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(spec(conv(kernel_size=99)))
    p = subprocess.run([sys.executable, "-m", "archcalc", "table", str(path)], capture_output=True, text=True)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    # --debug shows the traceback for developers
    p = subprocess.run([sys.executable, "-m", "archcalc", "--debug", "table", str(path)], capture_output=True, text=True)
    assert "Traceback" in p.stderr


def test_the_input_is_not_a_layer_and_no_suggestion_points_at_it() -> None:
    # before: "no layer named 'input'; did you mean 'input'?" (explain) and a bare "no layer or block" (check)
    r = cli("explain", "specs/alexnet.json", "input")
    assert r.code == 2 and r.err.count("\n") == 1
    assert "'input' is the network's input (3\u00d7227\u00d7227), not a layer: explain a layer that reads it, such as 'conv1'" in r.err
    r = cli("check", "specs/alexnet.json", "input.shape=3x227x227", "conv1.shape=64x56x56")
    assert r.code == 2  # one claim not read, the other still judged
    assert "'input' is the network's input (3\u00d7227\u00d7227), not a layer" in r.out and "1 correct, 0 wrong, 1 not read" in r.out
    r = cli("explain", "specs/alexnet.json", "inptu")
    assert r.code == 2 and "did you mean 'input'" not in r.err


@pytest.mark.parametrize("kind", ["layernorm", "rmsnorm"])
def test_normalized_shape_must_be_the_trailing_axes(tmp_path: Path, kind: str) -> None:
    # torch: nn.LayerNorm(8) on a (16, 12) input raises; both norms share the rule (layers/norm.py normalized_axes)
    path = tmp_path / "n.json"
    path.write_text(json.dumps({"name": "n", "input": [16, 12], "layers": [{"name": "ln", "type": kind, "normalized_shape": 8}]}))
    r = cli("table", str(path))
    assert r.code == 2 and r.err.count("\n") == 1
    assert "layer 'ln'" in r.err and "field 'normalized_shape'" in r.err
    assert "normalized_shape 8 is not the trailing axes of the input 16\u00d712" in r.err
    path.write_text(json.dumps({"name": "n", "input": [16, 12], "layers": [{"name": "ln", "type": kind, "normalized_shape": 12}]}))
    assert cli("table", str(path)).code == 0
