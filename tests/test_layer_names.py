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
