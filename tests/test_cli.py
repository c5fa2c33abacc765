"""The CLI contract: table, quick, schema; flags."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest
from conftest import SPECS, cli


def test_schema_is_json_schema_with_every_layer_type() -> None:
    r = cli("schema")
    assert r.code == 0
    schema = json.loads(r.out)
    text = json.dumps(schema)
    for t in (
        "conv2d",
        "maxpool2d",
        "avgpool2d",
        "adaptiveavgpool2d",
        "linear",
        "flatten",
        "relu",
        "tanh",
        "sigmoid",
        "batchnorm2d",
        "localresponsenorm",
        "dropout",
        "softmax",
        "identity",
        "add",
        "concat",
        "block",
    ):
        assert f'"{t}"' in text, t
    assert schema["title"] == "Architecture"


def test_quick_exam_question() -> None:
    # "3x227x227, 64 filters 11x11 stride 4 pad 2" -> 64x56x56, 23,296 params, 784 KB
    r = cli("quick", "3x227x227", "conv 64 11x11 s4 p2", "--format", "json")
    assert r.code == 0, r.err
    row = json.loads(r.out)["layers"][0]
    assert row["output_shape"] == [64, 56, 56]
    assert row["params"] == 64 * 3 * 11 * 11 + 64
    assert row["activation_bytes"] == 64 * 56 * 56 * 4


def test_quick_forms_agree() -> None:
    a = cli("quick", "3x32x32", "conv 8 3x3 s=2 padding=1 bias=false", "--format", "json").out
    b = cli(
        "quick",
        "3,32,32",
        '{"name": "conv1", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1, "bias": false}',
        "--format",
        "json",
    ).out
    assert json.loads(a)["layers"] == json.loads(b)["layers"]


def test_quick_bad_word() -> None:
    r = cli("quick", "3x32x32", "fc 10 20")
    assert r.code == 2 and "cannot read '20'" in r.err


def test_table_flags() -> None:
    r = cli("table", str(SPECS / "alexnet.json"), "--convention", "torch", "--dtype", "float16", "--batch", "2", "--format", "json")
    data = json.loads(r.out)
    assert data["convention"] == "torch" and data["dtype"] == "float16" and data["batch"] == 2
    conv1 = data["layers"][0]
    assert conv1["activation_bytes"] == 2 * 64 * 56 * 56 * 2
    pool1 = next(x for x in data["layers"] if x["name"] == "pool1")
    assert pool1["macs"] == 0 and pool1["ops"]["pool"] == 2 * 64 * 27 * 27 * 9


def test_input_override_and_set() -> None:
    r = cli("table", str(SPECS / "alexnet.json"), "--input", "3,H,W", "--set", "H=227", "--set", "W=227", "--format", "json")
    assert json.loads(r.out)["totals"]["params"] == 61_100_840


def test_quick_gap_is_global_average_pooling() -> None:
    data = json.loads(cli("quick", "64x7x7", "gap", "flatten", "fc 10", "--format", "json").out)
    assert data["layers"][0]["output_shape"] == [64, 1, 1]
    assert data["layers"][2]["params"] == 64 * 10 + 10


def test_output_to_a_pipe_or_device_writes_into_it_and_never_replaces_it(tmp_path: Path) -> None:
    # -o /dev/null once renamed a temp file over /dev/null; a FIFO stands in for any non-regular file
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = cli("table", str(SPECS / "lenet5.json"), "--format", "json", "-o", str(fifo))
    reader.join(timeout=30)
    assert r.code == 0, r.err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode), "the pipe is still a pipe"
    assert json.loads(got[0])["totals"]["params"] == 61_706
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"], "no temp file left behind"


def test_output_to_a_directory_or_a_missing_one_is_a_clean_error(tmp_path: Path) -> None:
    r = cli("table", str(SPECS / "lenet5.json"), "-o", str(tmp_path))
    assert r.code == 2 and "field '--output'" in r.err and "is a directory" in r.err
    r = cli("table", str(SPECS / "lenet5.json"), "-o", str(tmp_path / "missing" / "t.md"))
    assert r.code == 2 and "cannot write" in r.err and "No such file or directory" in r.err
    assert list(tmp_path.iterdir()) == []


def test_output_format_follows_the_file_extension(tmp_path: Path) -> None:
    formats = (("t.json", "{"), ("t.md", "*AlexNet"), ("t.csv", "name,type"), ("t.tex", "\\begin"))
    formats += (("t.out", "AlexNet (Krizhevsky et al. 2012): input"),)
    for name, start in formats:
        assert cli("table", "specs/alexnet.json", "-o", str(tmp_path / name)).code == 0
        assert (tmp_path / name).read_text().startswith(start), name
    # an explicit --format wins over the extension
    assert cli("table", "specs/alexnet.json", "--format", "csv", "-o", str(tmp_path / "x.json")).code == 0
    assert (tmp_path / "x.json").read_text().startswith("name,type")


def test_python_api_as_the_readme_shows_it() -> None:
    from archcalc import analyze

    rep = analyze("specs/resnet50.json", input_shape=[3, "H", "W"], values={"H": 448, "W": 448})
    assert rep.row("layer4.2.conv3").output_shape == (2048, 14, 14)  # 448 / 32
    assert str(rep).startswith("ResNet-50 v1.5 (He et al. 2015; torchvision): input 3\u00d7448\u00d7448")
    assert rep.render("csv").startswith("name,type")
    # a spec as Python data: 8*3*3*3 + 8 = 224 params
    small = analyze({"name": "n", "input": [3, 32, 32], "layers": [{"type": "conv2d", "out_channels": 8, "kernel_size": 3}]})
    assert small.totals["params"] == 224


def test_every_zoo_spec_validates_against_the_published_schema() -> None:
    # editors and CI linters check specs with `archcalc schema`: it must accept every real spec and refuse bad ones
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(cli("schema").out)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted(SPECS.glob("*.json")):
        errors = [e.message for e in validator.iter_errors(json.loads(path.read_text()))]
        assert not errors, (path.name, errors[:3])
    missing_kernel = {"name": "x", "input": [3, 8, 8], "layers": [{"type": "conv2d", "out_channels": 4}]}
    unknown_field = {"name": "x", "input": [3, 8, 8], "layers": [{"type": "relu", "bogus": 1}]}
    assert not validator.is_valid(missing_kernel) and not validator.is_valid(unknown_field)
