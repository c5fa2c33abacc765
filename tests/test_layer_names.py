"""Layer names that check and explain could not address are refused when the spec is read (review
s6, finding 19): one line naming the file, layer and field, exit 2, as 'input' is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli


def _spec(tmp_path: Path, name: str) -> str:
    doc = {"name": "n", "input": [3, 8, 8], "layers": [
        {"name": name, "type": "conv2d", "out_channels": 4, "kernel_size": 3},
        {"name": "head", "type": "conv2d", "out_channels": 4, "kernel_size": 1}]}
    path = tmp_path / "n.json"
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.mark.parametrize(("name", "why"), [
    ("total", "'total' is reserved for the network's total"),  # check total.params would judge the network's 4*3*9+4 + 4*4+4 = 132, not its 112
    ("a..b", "'..' marks a range of layers"),  # check a..b.params: "no layer named 'a'"
    (".a", "'..' marks a range of layers"),  # inside a block 'blk', '.a' becomes 'blk..a'
    ("a.", "'..' marks a range of layers"),
])
def test_a_name_check_cannot_address_is_refused(tmp_path: Path, name: str, why: str) -> None:
    r = cli("table", _spec(tmp_path, name))
    assert r.code == 2 and r.out == ""
    assert len(r.err.splitlines()) == 1 and "Traceback" not in r.err
    assert f"n.json: layer '{name}': field 'name': layer name '{name}': " in r.err and why in r.err


def test_names_with_dots_and_underscores_stay_valid(tmp_path: Path) -> None:
    # torchvision's module paths (features.0, layer1.0.conv1) are names check reaches: features.0.params
    r = cli("check", _spec(tmp_path, "features.0"), "features.0.params=112")  # 4*3*3*3 + 4 = 112
    assert r.code == 0 and r.out.startswith("correct features.0.params=112")
    assert cli("table", _spec(tmp_path, "total_conv")).code == 0


def test_import_renames_a_module_called_total(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.total = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.total(x)

    from archcalc.torch.importer import spec_from_module

    spec = spec_from_module(Net(), (3, 8, 8))
    names = [layer["name"] for layer in spec["layers"]]
    assert "total" not in names and names == ["total_2"]


# ----- review s7: names with a space, '=', '<', '>' or a quote are addressed in quotes --------------------


@pytest.mark.parametrize("name", ["conv one", "a=b", "x<y", "x>y", "a <= b", "it's", 'say "hi"', "both ' and \""])
def test_a_name_check_must_quote_is_addressed_in_quotes(tmp_path: Path, name: str) -> None:
    from archcalc.check import claim_name, parse_claim

    quoted = claim_name(name)
    assert quoted[0] in "'\"" and parse_claim(f"{quoted}.params=1").target == name
    spec = _spec(tmp_path, name)
    r = cli("check", spec, f"{quoted}.params=112", f"{quoted}..head.params=112+20", f"{quoted}.output=4x6x6")
    # the conv: 4*3*3*3 + 4 = 112 params, output 4x6x6; the range adds head's 4*4*1*1 + 4 = 20
    assert r.code == 0 and r.out.rstrip().endswith("3 correct, 0 wrong"), r.out
    assert r.out.startswith(f"correct {quoted}.params=112: exact 112")


def test_a_budget_on_a_quoted_name_and_an_unclosed_quote(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "a=b")
    r = cli("check", spec, "'a=b'.params<=200", '"a=b".params>200')
    assert r.code == 1 and "1 correct, 1 wrong" in r.out, r.out
    r = cli("check", spec, "'a=b.params=112")  # the quote never closes
    assert r.code == 2 and len(r.err.splitlines()) == 1 and "cannot read" in r.err, r.err
    r = cli("check", spec, "a=b.params=112")  # unquoted, the '=' ends the claim's left side: check says how to write it
    assert r.code == 2 and "(a name with a space, '=', '<', '>' or a quote is written in quotes: 'a=b'.params=112)" in r.out, r.out
    r = cli("check", spec, "conv one.params=112")
    assert r.code == 2 and "written in quotes: 'conv one'.params=112)" in r.out, r.out


def test_import_keeps_module_names_check_reaches_in_quotes(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from archcalc.torch.importer import spec_from_module

    model = torch.nn.Sequential()
    model.add_module("conv one", torch.nn.Conv2d(3, 4, 3))
    model.add_module("x=y", torch.nn.ReLU())
    spec = spec_from_module(model, (3, 8, 8))
    assert [layer["name"] for layer in spec["layers"]] == ["conv one", "x=y"]
    path = tmp_path / "imported.json"
    path.write_text(json.dumps(spec))
    r = cli("check", str(path), "'conv one'.params=112", "'x=y'.output=4x6x6")  # 4*3*3*3 + 4
    assert r.code == 0 and "2 correct, 0 wrong" in r.out, r.out
