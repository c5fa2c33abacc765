"""A hostile student's review of ``explain`` and ``verify``: token tensors named as tokens and
features (not channels and H, W), attention's general formulas, every name the CLI shows
explainable, and ``verify --output-key`` for models that return a dict."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
from conftest import SPECS, cli

RESNET50 = str(SPECS / "resnet50.json")


def _step(out: str, quantity: str) -> tuple[str, str]:
    """(formula, worked line) of one quantity of a text explanation."""
    lines = out.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(quantity + "  "))
    return lines[i][len(quantity) :].strip(), lines[i + 1].strip()


# ----- 3. names the CLI shows are explainable --------------------------------------------------------


def test_a_name_that_prefixes_layers_is_explained_as_their_sum() -> None:
    # `memory --checkpoint` lists layer1.0.downsample among its blocks: the 1x1 projection conv
    # (64 -> 256, no bias) and its batchnorm, written downsample.0 and downsample.1 in the block
    r = cli("explain", RESNET50, "layer1.0.downsample")
    assert r.code == 0, r.err
    assert r.out.startswith("layer1.0.downsample (block, 2 layers)")
    conv_params, bn_params = 64 * 256, 2 * 256
    assert _step(r.out, "params") == ("layer1.0.downsample.0 16.4K + layer1.0.downsample.1 512", f"= {conv_params + bn_params:,} (16.9K)")
    macs = 256 * 56 * 56 * 64  # output elements x C_in (a 1x1 window)
    assert _step(r.out, "MACs (lecture)")[1] == f"= {macs:,} (51.4M)"
    # check judges the same sum
    assert cli("check", RESNET50, f"layer1.0.downsample.params={conv_params + bn_params}").code == 0


# ----- 4. verify --output-key ------------------------------------------------------------------------

DICT_MODEL = '''
from torch import nn


class DictNet(nn.Module):
    """A segmentation-style model: {"aux": ..., "out": ...}, as torchvision's FCN returns."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.aux = nn.Conv2d(4, 2, 1)
        self.head = nn.Conv2d(4, 5, 1)

    def forward(self, x):
        y = self.conv(x)
        return {"aux": self.aux(y), "out": self.head(y)}
'''
DICT_SPEC = {
    "name": "dictnet",
    "input": [3, 8, 8],
    "layers": [
        {"name": "conv", "type": "conv2d", "out_channels": 4, "kernel_size": 3},
        {"name": "aux", "type": "conv2d", "out_channels": 2, "kernel_size": 1},
        {"name": "head", "type": "conv2d", "inputs": ["conv"], "out_channels": 5, "kernel_size": 1},
    ],
}


def _dict_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    pytest.importorskip("torch")
    (tmp_path / "archcalc_dictnet.py").write_text(DICT_MODEL)
    spec = tmp_path / "dictnet.json"
    spec.write_text(json.dumps(DICT_SPEC))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "archcalc_dictnet", raising=False)
    return str(spec)


def test_verify_output_key_picks_the_dicts_tensor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _dict_model(tmp_path, monkeypatch)
    # the spec's output is head, 5 x 6 x 6 (8 - 3 + 1 = 6); params 4*3*3*3 + 4 + 2*4 + 2 + 5*4 + 5 = 147
    r = cli("verify", spec, "--module", "archcalc_dictnet:DictNet", "--output-key", "out")
    assert r.code == 0, r.out + r.err
    assert "OK: 3 layers match torch" in r.out
    total = next(line for line in r.out.splitlines() if "(total)" in line)
    assert "5×6×6" in total and f"{4 * 27 + 4 + 2 * 4 + 2 + 5 * 4 + 5}" in total
    # the other key is the aux head's 2 x 6 x 6: a wrong output, exit 1
    r = cli("verify", spec, "--module", "archcalc_dictnet:DictNet", "--output-key", "aux")
    assert r.code == 1 and "output shape is 5×6×6 in the spec, 2×6×6 in torch" in r.out


def test_verify_dict_output_without_a_key_is_refused_as_import_refuses_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _dict_model(tmp_path, monkeypatch)
    r = cli("verify", spec, "--module", "archcalc_dictnet:DictNet")
    assert r.code == 2 and r.out == ""
    assert "dictnet.json: field '--output-key': the model returns a dict of 2 tensors ('aux', 'out'); pick the spec's output" in r.err
    r = cli("verify", spec, "--module", "archcalc_dictnet:DictNet", "--output-key", "logits")
    assert r.code == 2 and "it has no key 'logits'" in r.err
    r = cli("verify", spec, "--output-key", "out")  # the module built from the spec returns one tensor
    assert r.code == 2 and "field '--output-key'" in r.err


def test_assert_matches_takes_the_output_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _dict_model(tmp_path, monkeypatch)
    from archcalc.assertions import assert_matches

    model = importlib.import_module("archcalc_dictnet").DictNet()
    assert assert_matches(spec, model, output_key="out").ok
    with pytest.raises(AssertionError, match=r"output shape is 5×6×6 in the spec, 2×6×6 in torch"):
        assert_matches(spec, model, output_key="aux")
