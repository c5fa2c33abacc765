"""quick refuses what it cannot read (issue 16 item 2, issue 14): an unknown word is an error with a
did-you-mean, never a new symbol; people's spellings of layer names are read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli


@pytest.mark.parametrize(
    ("layer", "says"),
    [
        ("conv 8 3 pdding 1", "did you mean 'padding'?"),
        ("conv 8 3 padd 1", "did you mean 'pad'?"),
        ("conv 8 3 stride2", "did you mean 'stride 2'?"),
        ("conv 8 3 s 2", "did you mean 's2'?"),
        ("conv 8 3 P1", "did you mean 'p1'?"),
        ("conv 8 3 x 3", "3x3, not '3 x 3'"),
        ("conv 8 3 stride", "'stride' needs a value"),  # issue 14: it became a symbol 'stride'
        ("maxpool 3 s2 same", "takes a number"),  # issue 14: 'same' became a symbol on a pooling layer
        ("conv C 3", "a symbol must be in the input shape"),  # C is no symbol of 3x32x32
        ("cnv 8 3", "did you mean 'conv'?"),
        ("conv8 3", "did you mean 'conv 8'?"),  # the type and its first value run together (was 'conv')
        ("fc10", "did you mean 'fc 10'?"),
        ("relu7", "did you mean 'relu'?"),  # relu takes no value: no 'relu 7'
        ("conv2 3", "did you mean 'conv2d'?"),  # conv2 is as likely conv2d
    ],
)
def test_unknown_words_are_errors_not_symbols(layer: str, says: str) -> None:
    r = cli("quick", "3x32x32", layer)
    assert r.code == 2 and says in r.err and len(r.err.splitlines()) == 1, r.err
    assert r.out == ""


def test_unquoted_layers_get_a_hint() -> None:
    r = cli("quick", "3x32x32", "conv", "8", "3")
    assert r.code == 2 and "quote each layer" in r.err


def test_names_as_people_write_them() -> None:
    out = cli("quick", "3x32x32", "conv 8 3X3", "max pool 2", "BatchNorm", "leaky relu", "relu6", "global avg pool", "dense 10").out
    # conv: 8*3*3*3 + 8 = 224 params, (32 - 3) + 1 = 30; max pool 2: 15; BN: 2*8; dense on the pooled 8: 8*10 + 10 = 90
    rows = {line.split()[0]: line.split() for line in out.splitlines()[4:-3] if line.strip()}
    assert rows["conv1"][1:4] == ["conv2d", "8\u00d730\u00d730", "224"]
    assert rows["maxpool1"][2] == "8\u00d715\u00d715" and rows["bn1"][3] == "16"
    assert "leakyrelu1" in rows and "relu6_1" in rows  # ReLU6 is not named relu61
    assert rows["gap1"][1] == "adaptiveavgpool2d" and rows["dense1"][3] == "90"


def test_symbols_only_where_asked() -> None:
    r = cli("quick", "CxHxW", "conv C 3 p1", "conv 8 k=K")
    assert r.code == 0 and "K" in r.out  # the input's C and an asked-for K=... are symbols


def test_two_axis_input_is_said_to_be_c_by_l() -> None:
    r = cli("quick", "32x32", "conv 8 3")
    assert r.code == 0 and "read as C\u00d7L" in r.err and "conv1d" in r.out


def test_save_writes_a_spec_table_reads(tmp_path: Path) -> None:
    path = tmp_path / "design.json"
    quick = cli("quick", "3x32x32", "conv 8 3 p1", "relu", "fc 10", "--save", str(path))
    assert quick.code == 0 and json.loads(path.read_text())["name"] == "design"
    table = cli("table", str(path))
    # 8*3*9 + 8 = 224; fc: 8*32*32*10 + 10 = 81,930; 224 + 81,930 = 82,154
    assert table.code == 0 and "total params 82,154," in table.out and table.out.splitlines()[-1] == quick.out.splitlines()[-1]


@pytest.mark.parametrize(
    ("layer", "says"),
    [
        ("conv 64 3 stride=2 s3", "stride given twice (stride=2 and s3)"),  # review s7 #20: was stride 3, 64x10x10
        ("conv 64 3 k5", "kernel_size given twice (3 and k5)"),  # was kernel 5, the bare 3 dropped
        ("conv 64 3 bias=false bias=true", "bias given twice (bias=false and bias=true)"),
        ("conv 64 3 p1 same", "padding given twice (p1 and same)"),
        ("conv 64 3 stride 2 s1", "stride given twice (stride 2 and s1)"),
    ],
)
def test_contradictory_settings_are_refused(layer: str, says: str) -> None:
    r = cli("quick", "3x32x32", layer)
    assert r.code == 2 and says in r.err and "'conv1'" in r.err and len(r.err.splitlines()) == 1, r.err
    assert r.out == ""


def test_a_setting_repeated_with_the_same_value_is_read() -> None:
    # s2 and stride=2 agree: (32 - 3)//2 + 1 = 15
    r = cli("quick", "3x32x32", "conv 64 3 s2 stride=2")
    assert r.code == 0 and "64\u00d715\u00d715" in r.out


def test_a_json_layer_with_a_key_twice_is_refused() -> None:
    r = cli("quick", "3x8x8", '{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "kernel_size": 5}')  # review s7 #23
    assert r.code == 2 and "layer '#1'" in r.err and "'kernel_size' given twice in a conv2d layer (3 and 5)" in r.err, r.err
