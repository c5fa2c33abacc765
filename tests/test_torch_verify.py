"""Cross-check against real torch models: build, measure, verify, assert_matches, the pytest plugin.

Models are built on the ``meta`` device wherever possible (no memory, no arithmetic), so the
whole zoo verifies in seconds.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import json
import os
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from archcalc.assertions import assert_matches  # noqa: E402
from archcalc.errors import SpecError  # noqa: E402
from archcalc.graph import compile_spec  # noqa: E402
from archcalc.layers import TYPE_NAMES  # noqa: E402
from archcalc.layers.linear import Linear  # noqa: E402
from archcalc.spec import load_spec, parse_spec  # noqa: E402
from archcalc.torch.build import build_module  # noqa: E402
from archcalc.torch.measure import measure_module, measure_spec, module_kind  # noqa: E402
from archcalc.torch.verify import add_verify_parser, run_verify, verify_spec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
ZOO = sorted(SPECS.glob("*.json"))


# ----- small specs and hand-written models --------------------------------------------------------
ZOO2D = {"name": "zoo2d", "input": [4, 15, 13], "layers": [
    {"name": "stem", "type": "conv2d", "out_channels": 8, "kernel_size": [3, 2], "stride": [2, 1], "padding": [1, 0], "dilation": [1, 2]},
    {"name": "bn", "type": "batchnorm2d"},
    {"name": "lrn", "type": "localresponsenorm", "size": 3, "k": 2.0},
    {"name": "act0", "type": "relu"},
    {"name": "act1", "type": "relu6"},
    {"name": "act2", "type": "leakyrelu", "negative_slope": 0.2},
    {"name": "act3", "type": "tanh"},
    {"name": "act4", "type": "sigmoid"},
    {"name": "act5", "type": "gelu"},
    {"name": "act6", "type": "silu"},
    {"name": "act7", "type": "hardswish"},
    {"name": "act8", "type": "hardsigmoid"},
    {"name": "same", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": "same", "groups": 4, "bias": False},
    {"name": "branch_a", "type": "conv2d", "out_channels": 4, "kernel_size": 1},
    {"name": "branch_b", "type": "maxpool2d", "kernel_size": 3, "stride": 1, "padding": 1, "inputs": ["same"]},
    {"name": "cat", "type": "concat", "inputs": ["branch_a", "branch_b"]},
    {"name": "pool", "type": "avgpool2d", "kernel_size": 2, "ceil_mode": True, "count_include_pad": False},
    {"name": "sub", "type": "subsample", "stride": 2, "inputs": ["cat"]},
    {"name": "pad", "type": "channelpad", "out_channels": 16},
    {"name": "shortcut", "type": "identity"},
    {"name": "proj", "type": "conv2d", "out_channels": 16, "kernel_size": 1, "inputs": ["pool"]},
    {"name": "add", "type": "add", "inputs": ["proj", "shortcut"]},
    {"name": "amax", "type": "adaptivemaxpool2d", "output_size": [3, None]},
    {"name": "gap", "type": "adaptiveavgpool2d", "output_size": 2},
    {"name": "aux.flat", "type": "flatten", "training_only": True, "inputs": ["amax"]},
    {"name": "aux.fc", "type": "linear", "out_features": 5, "training_only": True, "inputs": ["aux.flat"]},
    {"name": "flat", "type": "flatten", "inputs": ["gap"]},
    {"name": "drop", "type": "dropout"},
    {"name": "fc", "type": "linear", "out_features": 7, "bias": False},
    {"name": "softmax", "type": "softmax"},
]}
ZOO1D = {"name": "zoo1d", "input": [3, 20], "layers": [
    {"name": "conv", "type": "conv1d", "out_channels": 6, "kernel_size": 5, "stride": 2, "padding": 2, "groups": 3},
    {"name": "bn", "type": "batchnorm1d"},
    {"name": "max", "type": "maxpool1d", "kernel_size": 3, "stride": 2, "dilation": 2, "ceil_mode": True},
    {"name": "avg", "type": "avgpool1d", "kernel_size": 2},
    {"name": "gap", "type": "adaptiveavgpool1d", "output_size": 1},
    {"name": "flat", "type": "flatten"},
    {"name": "bn_flat", "type": "batchnorm1d"},
    {"name": "fc", "type": "linear", "out_features": 4},
    {"name": "unflat", "type": "unflatten", "dim": 1, "unflattened_size": [2, 2]},
]}
ZOO3D = {"name": "zoo3d", "input": [2, 6, 7, 8], "layers": [
    {"name": "conv", "type": "conv3d", "out_channels": 4, "kernel_size": [3, 1, 3], "padding": [1, 0, 1]},
    {"name": "bn", "type": "batchnorm3d", "affine": False},
    {"name": "max", "type": "maxpool3d", "kernel_size": 2},
    {"name": "avg", "type": "avgpool3d", "kernel_size": [1, 2, 2], "stride": 1, "padding": [0, 1, 1]},
    {"name": "gap", "type": "adaptiveavgpool3d", "output_size": [1, 2, 3]},
]}
# the newer layer types (transposed convs, padding/cropping/splitting ops, upsampling)
ZOO_NEWER = [
    {"name": "newer2d", "input": [4, 9, 7], "layers": [
        {"name": "up", "type": "convtranspose2d", "out_channels": 6, "kernel_size": [3, 2], "stride": 2, "padding": [1, 0],
         "output_padding": 1, "groups": 2},
        {"name": "pad", "type": "zeropad2d", "padding": [1, 2, 0, 3]},
        {"name": "crop", "type": "crop", "size": [10, 9]},
        {"name": "shuffle", "type": "channelshuffle", "groups": 3},
        {"name": "left", "type": "chunk", "chunks": 2, "index": 0},
        {"name": "right", "type": "chunk", "chunks": 2, "index": 1, "inputs": ["shuffle"]},
        {"name": "gate", "type": "mul", "inputs": ["left", "right"]},
        {"name": "resize", "type": "upsample", "scale_factor": 2, "mode": "nearest"},
        {"name": "resize2", "type": "upsample", "size": [5, 6], "mode": "bilinear", "align_corners": False},
    ]},
    {"name": "newer1d", "input": [2, 10], "layers": [
        {"name": "up", "type": "convtranspose1d", "out_channels": 4, "kernel_size": 4, "stride": 3, "dilation": 2},
        {"name": "pad", "type": "zeropad1d", "padding": [2, 1]},
    ]},
    {"name": "newer3d", "input": [2, 3, 4, 5], "layers": [
        {"name": "up", "type": "convtranspose3d", "out_channels": 2, "kernel_size": 2, "stride": 2},
        {"name": "pad", "type": "zeropad3d", "padding": 1},
    ]},
    # token sequences and attention (issue 11): a small ViT-like net through every new type
    {"name": "tokens", "input": [3, 16, 24], "layers": [
        {"name": "patch", "type": "conv2d", "out_channels": 32, "kernel_size": 4, "stride": 4},
        {"name": "gn", "type": "groupnorm", "num_groups": 4},
        {"name": "ls_c", "type": "layerscale"},
        {"name": "flat", "type": "flatten", "start_dim": 2},
        {"name": "tok", "type": "transpose", "dim0": 1, "dim1": 2},
        {"name": "cls", "type": "parameter", "shape": [1, 32]},
        {"name": "cat", "type": "concat", "inputs": ["cls", "tok"], "dim": 1},
        {"name": "pos", "type": "parameter", "shape": [25, 32]},
        {"name": "x0", "type": "add", "inputs": ["cat", "pos"]},
        {"name": "ln1", "type": "layernorm", "normalized_shape": 32},
        {"name": "mha", "type": "multiheadattention", "num_heads": 4, "batch_first": True},
        {"name": "sd", "type": "stochasticdepth", "p": 0.1},
        {"name": "x1", "type": "add", "inputs": ["x0", "sd"]},
        {"name": "ln2", "type": "layernorm", "bias": False},
        {"name": "fc1", "type": "linear", "out_features": 64},
        {"name": "act", "type": "gelu", "approximate": "tanh"},
        {"name": "fc2", "type": "linear", "out_features": 32},
        {"name": "ls", "type": "layerscale", "dim": -1, "init_values": 0.1},
        {"name": "dp", "type": "droppath", "p": 0.1},
        {"name": "x2", "type": "add", "inputs": ["x1", "dp"]},
        {"name": "qkv", "type": "linear", "out_features": 96},
        {"name": "heads", "type": "reshape", "shape": [25, 3, 4, -1]},
        {"name": "hp", "type": "permute", "dims": [0, 2, 3, 1, 4]},
        {"name": "q", "type": "select", "dim": 1, "index": 0},
        {"name": "k", "type": "select", "dim": 1, "index": 1, "inputs": ["hp"]},
        {"name": "v", "type": "select", "dim": -4, "index": -1, "inputs": ["hp"]},
        {"name": "attn", "type": "scaled_dot_product_attention", "inputs": ["q", "k", "v"], "is_causal": True},
        {"name": "kt", "type": "transpose", "dim0": -2, "dim1": -1, "inputs": ["k"]},
        {"name": "scores", "type": "matmul", "inputs": ["q", "kt"]},
        {"name": "merged", "type": "view", "shape": [4, 25, 25], "inputs": ["scores"]},
        {"name": "shift", "type": "roll", "shifts": [2, -1], "dims": [2, 3]},
        {"name": "rows", "type": "slice", "dim": 2, "start": 1, "end": 25, "step": 2},
        {"name": "cross", "type": "multiheadattention", "num_heads": 2, "kdim": 16, "vdim": 8, "bias": False,
         "inputs": ["x2", "kin", "vin"]},
        {"name": "kin", "type": "slice", "dim": -1, "end": 16, "inputs": ["x2"]},
        {"name": "vin", "type": "slice", "dim": -1, "start": 8, "end": 16, "inputs": ["x2"]},
        {"name": "pool", "type": "mean", "dim": 1, "inputs": ["cross"]},
        {"name": "first", "type": "select", "dim": 1, "index": 0, "inputs": ["x2"]},
        {"name": "head", "type": "linear", "out_features": 10},
    ]},
    # Swin's windows (Liu et al. 2021) on a channels-last map: a width (16) that pads to 3 windows
    # of 7, a shift per axis, v2's cosine attention, and patch merging's strided slices
    {"name": "windows", "input": [3, 28, 32], "layers": [
        {"name": "patch", "type": "conv2d", "out_channels": 8, "kernel_size": 2, "stride": 2},
        {"name": "last", "type": "permute", "dims": [0, 2, 3, 1]},
        {"name": "ln", "type": "layernorm"},
        {"name": "wmsa", "type": "shiftedwindowattention", "num_heads": 2, "window_size": 7},
        {"name": "swmsa", "type": "shiftedwindowattention", "num_heads": 4, "window_size": [7, 5], "shift_size": [3, 2],
         "qkv_bias": False},
        {"name": "v2", "type": "shiftedwindowattention", "num_heads": 2, "window_size": 7, "shift_size": 3, "v2": True},
        {"name": "x0", "type": "slice", "dim": 1, "step": 2},
        {"name": "x0c", "type": "slice", "dim": 2, "step": 2},
        {"name": "x1", "type": "slice", "dim": 1, "start": 1, "step": 2, "inputs": ["v2"]},
        {"name": "x1c", "type": "slice", "dim": 2, "start": 1, "step": 2},
        {"name": "merge", "type": "concat", "inputs": ["x0c", "x1c"], "dim": -1},
        {"name": "reduction", "type": "linear", "out_features": 16, "bias": False},
    ]},
    # language-model layers (issue 12): token ids in, embeddings, RMSNorm, rotary q/k, grouped-query
    # attention, a learned bias table, and the elementwise arithmetic of attention scores
    {"name": "lm", "input": [12], "layers": [
        {"name": "wte", "type": "embedding", "num_embeddings": 50, "embedding_dim": 16, "padding_idx": 0},
        {"name": "wpe", "type": "embedding", "num_embeddings": 20, "embedding_dim": 16, "indices": "positions", "inputs": ["input"]},
        {"name": "wtt", "type": "embedding", "num_embeddings": 2, "embedding_dim": 16, "indices": "zeros", "inputs": ["input"]},
        {"name": "x0", "type": "add", "inputs": ["wte", "wpe", "wtt"]},
        {"name": "norm", "type": "rmsnorm", "eps": 1e-5},
        {"name": "q", "type": "linear", "out_features": 16, "bias": False},
        {"name": "q_heads", "type": "reshape", "shape": [12, 2, 8]},
        {"name": "q_t", "type": "transpose", "dim0": 1, "dim1": 2},
        {"name": "q_rot", "type": "rotary"},
        {"name": "k", "type": "linear", "out_features": 8, "bias": False, "inputs": ["norm"]},
        {"name": "k_heads", "type": "reshape", "shape": [12, 1, 8]},
        {"name": "k_t", "type": "transpose", "dim0": 1, "dim1": 2},
        {"name": "k_rot", "type": "rotary", "base": 500},
        {"name": "k_tt", "type": "transpose", "dim0": -2, "dim1": -1},
        {"name": "scores", "type": "matmul", "inputs": ["q_rot", "k_tt"]},
        {"name": "scaled", "type": "scalar", "op": "mul", "value": 0.25},
        {"name": "masked", "type": "causal_mask"},  # (nanoGPT's masked_fill of the scores: the softmax below reads them unmasked)
        {"name": "bias", "type": "positionbias", "shape": [2, 12, 12], "table": [23, 2]},
        {"name": "biased", "type": "add", "inputs": ["scaled", "bias"]},
        {"name": "centered", "type": "sub", "inputs": ["biased", "scaled"]},
        {"name": "denom", "type": "scalar", "op": "add", "value": 2.0},
        {"name": "ratio", "type": "div", "inputs": ["centered", "denom"]},
        {"name": "inv", "type": "scalar", "op": "rdiv", "value": 1.0},
        {"name": "neg", "type": "scalar", "op": "rsub", "value": 1.0},
        {"name": "sq", "type": "scalar", "op": "pow", "value": 2.0},
        {"name": "v", "type": "linear", "out_features": 8, "bias": False, "inputs": ["norm"]},
        {"name": "v_heads", "type": "reshape", "shape": [12, 1, 8]},
        {"name": "v_t", "type": "transpose", "dim0": 1, "dim1": 2},
        {"name": "gqa", "type": "scaled_dot_product_attention", "inputs": ["q_rot", "k_rot", "v_t"], "is_causal": True, "enable_gqa": True},
        {"name": "norm2", "type": "rmsnorm", "normalized_shape": [12, 8], "elementwise_affine": False},
    ]},
]
SMALL = {"name": "small", "input": [3, 16, 16], "layers": [
    {"name": "conv1", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
    {"name": "relu1", "type": "relu"},
    {"name": "conv2", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
]}


def small_model(kernel2: int = 3) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, kernel2, padding=kernel2 // 2))


def lenet5() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2, 2),
        nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),
        nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10),
    )


def alexnet(conv2_kernel: int = 5) -> nn.Sequential:
    """specs/alexnet.json as a user would write it (torchvision's layout, with its dropouts)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, conv2_kernel, padding=conv2_kernel // 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2), nn.Flatten(),
        nn.Dropout(), nn.Linear(9216, 4096), nn.ReLU(inplace=True),
        nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Linear(4096, 1000),
    )


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: one shared ReLU, the residual add in forward."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Any) -> Any:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet50(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64, 3)
        self.layer2 = self._make_layer(128, 4, 2)
        self.layer3 = self._make_layer(256, 6, 2)
        self.layer4 = self._make_layer(512, 3, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2048, 1000)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Any) -> Any:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def on_meta(factory: Any, *args: Any) -> nn.Module:
    with torch.device("meta"):
        return factory(*args)


def verify_cli(*argv: str) -> tuple[int, str]:
    """``archcalc verify ARGV`` through add_verify_parser/run_verify (as cli.py wires them)."""
    parser = argparse.ArgumentParser(prog="archcalc")
    add_verify_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["verify", *argv])
    out = io.StringIO()
    with redirect_stdout(out):
        code = run_verify(args)
    return code, out.getvalue()


# ----- the whole zoo: built from each spec, measured by torch ---------------------------------------
@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
def test_every_spec_matches_torch(path: Path) -> None:
    arch = load_spec(path)
    if not all(isinstance(d, int) for d in arch.input):
        pytest.skip(f"symbolic input {arch.input}: verify needs numbers")
    result = verify_spec(path)
    assert result.ok, result.failure_message()
    assert result.device == "meta"
    assert {r.quantity for r in result.rows} == {"output_shape", "params", "macs"}
    assert len(result.layers) == len(compile_spec(arch).graph["order"])


def test_alexnet_and_resnet50_numbers() -> None:
    a = verify_spec(SPECS / "alexnet.json")
    assert a.ok
    conv1 = {r.quantity: r.measured for r in a.rows if r.name == "conv1"}
    assert conv1 == {"output_shape": (64, 56, 56), "params": 23_296, "macs": 72_855_552}
    assert {r.quantity: r.measured for r in a.totals.rows} == {"output_shape": (1000,), "params": 61_100_840, "macs": 716_767_232}
    r = verify_spec(SPECS / "resnet50.json")
    assert r.ok
    assert {q.quantity: q.measured for q in r.totals.rows} == {"output_shape": (1000,), "params": 25_557_032, "macs": 4_089_184_256}


@pytest.mark.parametrize("spec", [ZOO2D, ZOO1D, ZOO3D, *ZOO_NEWER], ids=lambda s: s["name"])
def test_every_layer_type_builds_and_matches(spec: dict[str, Any]) -> None:
    missing = {layer["type"] for layer in spec["layers"]} - set(TYPE_NAMES)
    if missing:
        pytest.skip(f"layer types not in archcalc: {sorted(missing)}")
    result = verify_spec(spec)
    assert result.ok, result.failure_message()


def test_language_model_layers_as_torch_counts_them() -> None:
    """The ``lm`` spec of ZOO_NEWER, each torch measurement written as the arithmetic it should be."""
    (lm,) = [s for s in ZOO_NEWER if s["name"] == "lm"]
    result = verify_spec(lm)
    assert result.ok, result.failure_message()
    got = {(r.name, r.quantity): r.measured for r in result.rows}
    assert got["wte", "params"] == 50 * 16 and got["wpe", "params"] == 20 * 16 and got["wtt", "params"] == 2 * 16  # tables: rows x dim
    assert got["wpe", "output_shape"] == (12, 16)  # positions 0..11, whatever the ids are
    assert got["norm", "params"] == 16 and got["norm2", "params"] == 0  # RMSNorm: a weight, no bias
    assert got["bias", "params"] == 23 * 2  # the table, not the (2, 12, 12) it hands out
    assert got["q_rot", "params"] == 0 and got["q_rot", "macs"] == 0  # rotary: elementwise, no weights
    assert got["scores", "macs"] == 2 * 12 * 12 * 8  # k's one head broadcast over q's two
    assert got["gqa", "macs"] == 2 * (2 * 12 * 12 * 8)  # q @ k^T and p @ v, k/v's head repeated to 2; causal still counts all 12 x 12
    for name in ("scaled", "masked", "biased", "centered", "denom", "ratio", "inv", "neg", "sq"):
        assert got[name, "macs"] == 0 and got[name, "output_shape"] == (2, 12, 12)  # elementwise: torch counts no FLOPs


ZOO_TYPES = {layer["type"] for spec in (ZOO2D, ZOO1D, ZOO3D, *ZOO_NEWER) for layer in spec["layers"]}


@pytest.mark.parametrize("layer_type", sorted(TYPE_NAMES))
def test_every_layer_type_is_in_the_torch_zoo(layer_type: str) -> None:
    """A layer type added to archcalc shows here (xfail) until a layer of it joins ZOO1D/2D/3D."""
    if layer_type not in ZOO_TYPES:
        pytest.xfail(f"no {layer_type!r} layer in the torch zoo (ZOO1D/ZOO2D/ZOO3D of tests/test_torch_verify.py) yet")


def test_the_core_torch_zoo_uses_only_known_types() -> None:
    assert {layer["type"] for spec in (ZOO2D, ZOO1D, ZOO3D) for layer in spec["layers"]}.issubset(TYPE_NAMES)


def test_training_only_layers_are_measured_and_totals_follow_torch() -> None:
    result = verify_spec(ZOO2D)
    aux = next(lc for lc in result.layers if lc.name == "aux.fc")
    assert aux.rows and aux.ok and "training only" in (aux.note or "")
    assert aux.analytic["output_shape"] == (5,) and aux.analytic["params"] == 16 * 3 * 6 * 5 + 5
    # params: every parameter the module holds (aux included); MACs: one eval forward (aux left out)
    totals = {r.quantity: r.measured for r in result.totals.rows}
    assert totals["params"] == sum(lc.analytic["params"] for lc in result.layers)
    assert totals["macs"] == sum(lc.analytic["macs"] for lc in result.layers if not lc.name.startswith("aux."))


# ----- build -------------------------------------------------------------------------------------
def test_build_module_names_order_and_meta() -> None:
    G = compile_spec(load_spec(SPECS / "resnet50.json"))
    model = build_module(G, device="meta")
    assert list(model.keys) == G.graph["order"]
    assert model.keys["layer1.0.downsample.0"] == "layer1_0_downsample_0"
    assert model.spec_names["layer1_0_downsample_0"] == "layer1.0.downsample.0"
    assert isinstance(model.layer("layer1.0.conv2"), nn.Conv2d)
    assert all(p.is_meta for p in model.parameters())
    y = model(torch.zeros(1, 3, 224, 224, device="meta"))
    assert tuple(y.shape) == (1, 1000)


def test_build_module_sanitizes_clashing_and_reserved_names() -> None:
    spec = {"name": "n", "input": [4], "layers": [
        {"name": "a.b", "type": "linear", "out_features": 4},
        {"name": "a_b", "type": "linear", "out_features": 4},
        {"name": "keys", "type": "relu"},
        {"name": "update", "type": "relu"},
    ]}
    model = build_module(compile_spec(parse_spec(spec)))
    assert len(set(model.keys.values())) == 4
    assert {model.spec_names[k] for k in model.layers} == {"a.b", "a_b", "keys", "update"}
    assert tuple(model(torch.zeros(2, 4)).shape) == (2, 4)


def test_training_only_layers_run_only_in_training() -> None:
    model = build_module(compile_spec(parse_spec(ZOO2D)), device="meta")
    ran: list[str] = []
    model.layer("aux.fc").register_forward_hook(lambda *a: ran.append("aux"))
    x = torch.zeros(1, 4, 15, 13, device="meta")
    model.eval()
    assert tuple(model(x).shape) == (1, 7)
    assert ran == []
    model.train()
    assert tuple(model(x).shape) == (1, 7)
    assert ran == ["aux"]


def test_symbolic_spec_needs_numbers() -> None:
    spec = {"name": "s", "input": ["C", 16, 16], "layers": [{"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 3}]}
    with pytest.raises(SpecError, match="symbolic"):
        verify_spec(spec)
    assert verify_spec(spec, values={"C": 3}).ok
    assert verify_spec(spec, input_shape="3,16,16").ok
    with pytest.raises(SpecError, match="symbolic"):
        build_module(compile_spec(parse_spec(spec)))


# ----- measure -----------------------------------------------------------------------------------
def test_flop_counter_per_module_attribution_agrees_with_per_call_counts() -> None:
    m = measure_spec(compile_spec(load_spec(SPECS / "resnet50.json")))
    assert m.device == "meta"
    assert all(m.by_module[name] == lm.flops for name, lm in m.layers.items())
    assert sum(lm.flops for lm in m.layers.values()) == m.total_flops


def test_meta_failure_falls_back_to_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    real = nn.LocalResponseNorm.forward

    def no_meta(self: nn.Module, x: Any) -> Any:
        if x.is_meta:
            raise NotImplementedError("no meta kernel")
        return real(self, x)

    monkeypatch.setattr(nn.LocalResponseNorm, "forward", no_meta)
    result = verify_spec(ZOO2D)
    assert result.device == "cpu"
    assert result.ok, result.failure_message()


def test_module_kind_and_shared_module_calls() -> None:
    assert module_kind(nn.Conv2d(1, 1, 1)) == "conv2d"
    assert module_kind(nn.ReLU()) == "relu"

    class MyConv(nn.Conv2d):
        pass

    assert module_kind(MyConv(1, 1, 1)) == "conv2d"
    assert module_kind(nn.Bilinear(2, 2, 2)) is None
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    m = measure_module(model, (4,))
    assert [(c.name, c.call, c.params, c.macs) for c in m.calls] == [("0", 1, 20, 16), ("1", 1, 0, 0), ("0", 2, 0, 16)]
    assert m.total_params == 20 and m.total_macs == 32


def test_measuring_restores_each_modules_training_mode() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout())
    model.train()
    model[1].eval()  # a frozen BatchNorm inside a training model
    measure_module(model, (3, 8, 8))
    assert [m.training for m in model.modules()] == [True, True, False, True]


# ----- a user's own model ------------------------------------------------------------------------
def test_user_resnet50_matches_spec_with_functional_add_and_shared_relu() -> None:
    result = verify_spec(SPECS / "resnet50.json", on_meta(ResNet50))
    assert result.ok, result.failure_message()
    skipped = {lc.type for lc in result.not_compared}
    assert skipped == {"add", "flatten", "identity"}  # functional in torchvision's code
    relu3 = next(lc for lc in result.layers if lc.name == "layer1.0.relu3")
    assert relu3.module == "layer1.0.relu (call 3)"


def test_user_alexnet_with_dropouts_matches() -> None:
    result = verify_spec(SPECS / "alexnet.json", on_meta(alexnet))
    assert result.ok, result.failure_message()
    assert [lc.module for lc in result.not_compared] == ["14", "17"]  # the dropouts


def test_wrong_kernel_is_reported_at_the_first_wrong_layer() -> None:
    result = verify_spec(SPECS / "alexnet.json", on_meta(alexnet, 3))
    assert not result.ok
    first = result.first_mismatch
    assert first is not None
    assert (first.name, first.quantity, first.module) == ("conv2", "params", "3")
    assert (first.analytic, first.measured) == (307_392, 110_784)
    text = result.render_text()
    marked = [line for line in text.splitlines() if line.startswith(">>")]
    assert len(marked) == 1 and "conv2" in marked[0]
    assert "first wrong value at layer 'conv2' (module '3')" in text
    assert json.loads(json.dumps(result.to_json()))["first_mismatch"]["name"] == "conv2"


def test_extra_and_missing_modules_are_mismatches() -> None:
    extra = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
    r = verify_spec(SMALL, extra)
    assert r.first_mismatch is not None
    assert (r.first_mismatch.name, r.first_mismatch.quantity, r.first_mismatch.measured) == ("1", "layer", "batchnorm2d")
    assert [lc.name for lc in r.layers if lc.ok] == ["conv1", "relu1", "conv2"]

    missing = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1))
    r = verify_spec(SMALL, missing)
    assert r.first_mismatch is not None
    assert (r.first_mismatch.name, r.first_mismatch.quantity, r.first_mismatch.analytic) == ("relu1", "layer", "relu")


def test_functional_relu_is_matched_and_compared() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1)

        def forward(self, x: Any) -> Any:
            return self.conv2(F.relu(self.conv1(x)))

    r = verify_spec(SMALL, Net())
    assert r.ok, r.failure_message()
    relu = next(lc for lc in r.layers if lc.name == "relu1")
    assert relu.module == "relu" and [q.quantity for q in relu.rows] == ["output_shape", "params", "macs"]
    # a functional op of another type at that position is a type mismatch, as a module would be
    Net.forward = lambda self, x: self.conv2(torch.sigmoid(self.conv1(x)))  # type: ignore[method-assign]
    r = verify_spec(SMALL, Net())
    assert [(m.name, m.quantity, m.analytic, m.measured) for m in r.mismatches] == [("relu1", "type", "relu", "sigmoid")]


def test_imported_functional_model_verifies_against_itself(tmp_path: Path) -> None:
    # F.relu, F.max_pool2d and F.adaptive_avg_pool2d become layers on import; verify must find them in the model
    from archcalc.torch.fx_import import spec_from_module

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(16)
            self.fc = nn.Linear(16, 10)

        def forward(self, x: Any) -> Any:
            x = F.max_pool2d(F.relu(self.bn(self.stem(x))), 2)
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    spec = spec_from_module(Net(), (3, 16, 16))
    r = verify_spec(spec, Net())
    assert r.ok, r.failure_message()
    assert [lc.module for lc in r.layers if lc.module] == ["stem", "bn", "relu", "max_pool2d", "adaptive_avg_pool2d", "fc"]


def test_user_model_with_different_type_at_a_position() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 8, 3, padding=1))
    r = verify_spec(SMALL, model)
    assert [(m.name, m.quantity, m.analytic, m.measured) for m in r.mismatches] == [("relu1", "type", "relu", "tanh")]


def test_custom_leaf_module_is_matched_by_position() -> None:
    class MyConv(nn.Module):
        def __init__(self, c_in: int, c_out: int) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(c_out, c_in, 3, 3))
            self.bias = nn.Parameter(torch.zeros(c_out))

        def forward(self, x: Any) -> Any:
            # torch.convolution: a call verify does not read as a layer (F.conv2d it records as a conv2d)
            return torch.convolution(x, self.weight, self.bias, [1, 1], [1, 1], [1, 1], False, [0, 0], 1)

    r = verify_spec(SMALL, nn.Sequential(MyConv(3, 8), nn.ReLU(), MyConv(8, 8)))
    assert r.ok, r.failure_message()
    assert "MyConv is not a known layer type" in (r.layers[0].note or "")


def test_training_only_spec_layers_are_not_compared_against_a_user_model() -> None:
    spec = {**SMALL, "layers": [*SMALL["layers"], {"name": "aux", "type": "conv2d", "out_channels": 2, "kernel_size": 1,
                                                   "inputs": ["conv1"], "training_only": True}]}

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = small_model()
            self.aux = nn.Conv2d(8, 2, 1)  # held, run in training only

        def forward(self, x: Any) -> Any:
            return self.body(x)

    r = verify_spec(spec, Net())
    assert r.ok, r.failure_message()
    assert [lc.name for lc in r.not_compared] == ["aux"]
    # like with like: the eval path's params against the modules that ran, aux's 2*8 + 2 = 18 apart (torch holds them)
    totals = {q.quantity: (q.analytic, q.measured) for q in r.totals.rows}
    assert totals["params"] == (826 - 18, 826 - 18) and totals["params (training only)"] == (18, 18)


def test_torch_error_is_a_mismatch_of_the_running_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Linear, "build_torch", lambda self, ins: nn.Linear(int(ins[0][-1]) + 1, int(self.out_features)))
    r = verify_spec(SPECS / "lenet5.json")
    assert r.first_mismatch is not None
    assert (r.first_mismatch.name, r.first_mismatch.quantity) == ("f6", "runs")
    assert "RuntimeError" in r.first_mismatch.measured


# ----- assert_matches and the pytest plugin ---------------------------------------------------------
def test_assert_matches_user_sequential() -> None:
    result = assert_matches(SPECS / "lenet5.json", lenet5())
    assert result.ok
    with pytest.raises(AssertionError) as e:
        assert_matches(SPECS / "lenet5.json", nn.Sequential(*list(lenet5())[:9], nn.Linear(120, 80), nn.Tanh(), nn.Linear(80, 10)))
    msg = str(e.value)
    assert "first mismatch: layer 'f6' (module '9'): output shape is 84 in the spec, 80 in torch" in msg
    assert "params is 10,164 in the spec, 9,680 in torch" in msg


def _plugin_args() -> list[str]:
    """``-p archcalc.pytest_plugin`` unless the pytest11 entry point already loads it."""
    eps = importlib.metadata.entry_points(group="pytest11")
    registered = any(ep.value == "archcalc.pytest_plugin" for ep in eps)
    if registered and not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return []
    return ["-p", "archcalc.pytest_plugin"]


def test_pytest_plugin_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user=f"""
        import pytest
        from torch import nn

        SPEC = {str(SPECS / 'lenet5.json')!r}

        def lenet(hidden=84):
            return nn.Sequential(
                nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2, 2), nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2, 2),
                nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(), nn.Linear(120, hidden), nn.Tanh(), nn.Linear(hidden, 10))

        def test_matches(archcalc_verify):
            archcalc_verify(SPEC, lenet())

        def test_differs(archcalc_verify):
            archcalc_verify(SPEC, lenet(80), input_shape=(1, 32, 32))
        """
    )
    result = pytester.runpytest(*_plugin_args(), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*first mismatch: layer 'f6' (module '9'): output shape is 84 in the spec, 80 in torch*"])


# ----- the verify subcommand ----------------------------------------------------------------------
def test_cli_verify_ok_text_and_json() -> None:
    code, out = verify_cli(str(SPECS / "alexnet.json"), str(SPECS / "lenet5.json"))
    assert code == 0
    assert "verify alexnet" in out and "verify lenet5" in out and out.count("OK:") == 2
    code, out = verify_cli(str(SPECS / "lenet5.json"), "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["ok"] is True
    (res,) = data["results"]
    assert res["first_mismatch"] is None
    assert {"name", "quantity", "analytic", "measured", "ok"} <= set(res["rows"][0])


def test_cli_verify_module_mismatch_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "archcalc_usernet_a.py").write_text(
        "from torch import nn\n"
        "def good():\n    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))\n"
        "def bad():\n    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 5, padding=2))\n"
        "net = good()\n"
    )
    spec = tmp_path / "small.json"
    spec.write_text(json.dumps(SMALL))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(__import__("sys").modules, "archcalc_usernet_a", raising=False)
    assert verify_cli(str(spec), "--module", "archcalc_usernet_a:good")[0] == 0
    assert verify_cli(str(spec), "--module", "archcalc_usernet_a:net")[0] == 0
    code, out = verify_cli(str(spec), "--module", "archcalc_usernet_a:bad", "--input", "3,12,12")
    assert code == 1
    assert "input 3×12×12" in out
    assert "first wrong value at layer 'conv2' (module '2'): params is 584 in the spec, 1,608 in torch" in out
    code, out = verify_cli(str(spec), "--module", "archcalc_usernet_a:bad", "--format", "json")
    assert code == 1
    assert json.loads(out)["results"][0]["first_mismatch"]["name"] == "conv2"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--module", "no_such_module_xyz:net"], "cannot import 'no_such_module_xyz'"),
        (["--module", "json:no_such_factory"], "has no attribute"),
        (["--module", "json:dumps"], "calling 'json:dumps' failed"),
        (["--module", "nocolon"], "PKG.MODULE:FACTORY"),
        (["--set", "H=0"], "--set"),
    ],
)
def test_cli_verify_bad_input_is_spec_error(argv: list[str], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        verify_cli(str(SPECS / "lenet5.json"), *argv)


def test_cli_verify_missing_spec_is_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read spec"):
        verify_cli(str(tmp_path / "nope.json"))


def test_cli_main_wires_verify_when_available(tmp_path: Path) -> None:
    from conftest import cli

    from archcalc.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    if "verify" not in sub.choices:
        pytest.skip("archcalc.cli does not register the verify subcommand yet")
    assert cli("verify", str(SPECS / "lenet5.json")).code == 0
    wrong = tmp_path / "wrong.json"
    data = json.loads((SPECS / "lenet5.json").read_text())
    wrong.write_text(json.dumps(data))
    bad = cli("verify", str(wrong), "--module", "no_such_module_xyz:net")
    assert bad.code == 2 and "cannot import" in bad.err


def test_global_mean_pooling_is_matched_like_the_import_writes_it() -> None:
    # x.mean((2, 3)) imports as adaptiveavgpool2d + flatten; verify finds it in the model as that pool (8 x 1 x 1)
    from archcalc.torch.fx_import import spec_from_module

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = nn.Conv2d(3, 8, 3, padding=1)
            self.fc = nn.Linear(8, 2)

        def forward(self, x: Any) -> Any:
            return self.fc(self.c(x).mean((2, 3)))

    r = verify_spec(spec_from_module(Net(), (3, 16, 16)), Net())
    assert r.ok, r.failure_message()
    assert [lc.module for lc in r.layers if lc.module] == ["c", "mean", "fc"]


def test_verify_json_output_follows_the_extension_and_set_is_checked(tmp_path: Path) -> None:
    from conftest import cli

    out = tmp_path / "v.json"
    assert cli("verify", str(SPECS / "lenet5.json"), "-o", str(out)).code == 0
    assert json.loads(out.read_text())["ok"] is True
    r = cli("verify", str(SPECS / "lenet5.json"), "--set", "X=3")
    assert r.code == 2 and "the spec uses no symbol 'X'" in r.err


def test_import_writes_a_padding_mode_and_verify_compares_it() -> None:
    from archcalc.torch.fx_import import spec_from_module

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"))
    spec = spec_from_module(model, (3, 8, 8))
    assert spec["layers"][0]["padding"] == 1 and spec["layers"][0]["padding_mode"] == "reflect"
    assert verify_spec(spec, model).ok
    spec["layers"][0]["padding_mode"] = "circular"  # 8x3x3x3 + 8 = 224 params and the same shapes either way
    bad = verify_spec(spec, model)
    assert [(r.quantity, r.analytic, r.measured) for r in bad.mismatches] == [("padding_mode", "circular", "reflect")]


# ----- user code that exits or raises: an error naming it, never archcalc's exit status ------------
USER_CODE = """
import sys
from torch import nn


def exits():
    sys.exit(0)


def exits_3():
    raise SystemExit(3)


def raises():
    raise ValueError("no weights here")


class ExitsInForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        sys.exit(0)


def exits_in_forward():
    return ExitsInForward()


def hard_exits():
    import os
    os._exit(0)


class HardExitInForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        import os
        os._exit(0)


def hard_exits_in_forward():
    return HardExitInForward()


class Chatty(nn.Module):
    def __init__(self):
        super().__init__()
        print("building Chatty")
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        print("forward of Chatty")
        return self.fc(x)


def chatty():
    print("factory says hello")
    return Chatty()
"""
TINY = {"name": "tiny", "input": [4], "layers": [{"name": "fc", "type": "linear", "out_features": 2}]}


@pytest.fixture
def user_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """archcalc_user_code.py (factories that exit or raise) and archcalc_exits_on_import.py in the cwd."""
    (tmp_path / "archcalc_user_code.py").write_text(USER_CODE)
    (tmp_path / "archcalc_exits_on_import.py").write_text("import sys\nsys.exit(0)\n")
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    monkeypatch.chdir(tmp_path)
    for name in ("archcalc_user_code", "archcalc_exits_on_import"):
        monkeypatch.delitem(__import__("sys").modules, name, raising=False)
    return tmp_path


@pytest.mark.parametrize(
    ("target", "message"),
    [
        # sys.exit(0) in a factory made verify exit 0 having checked nothing: a false pass in CI
        ("archcalc_user_code:exits", "calling 'archcalc_user_code:exits' exited: SystemExit(0): user code may not exit"),
        ("archcalc_user_code:exits_3", "calling 'archcalc_user_code:exits_3' exited: SystemExit(3): user code may not exit"),
        ("builtins:exit", "calling 'builtins:exit' exited: SystemExit(None): user code may not exit"),
        ("archcalc_exits_on_import:net", "cannot import 'archcalc_exits_on_import': SystemExit(0): user code may not exit"),
        ("archcalc_user_code:raises", "calling 'archcalc_user_code:raises' failed: ValueError: no weights here"),
    ],
)
@pytest.mark.parametrize("command", ["verify", "import"])
def test_a_factory_that_exits_or_raises_is_one_line_exit_2(user_code: Path, command: str, target: str, message: str) -> None:
    from conftest import cli

    out = user_code / "out.json"
    argv = ["verify", "tiny.json", "--module", target] if command == "verify" else ["import", target, "--input", "4", "-o", str(out)]
    r = cli(*argv)
    field = "--module" if command == "verify" else "factory"
    assert (r.code, r.out, r.err) == (2, "", f"archcalc: error: field '{field}': {message}\n")
    assert not out.exists()


def test_a_forward_that_exits_is_one_line_exit_2(user_code: Path) -> None:
    from conftest import cli

    r = cli("verify", "tiny.json", "--module", "archcalc_user_code:exits_in_forward")
    message = "the model from 'archcalc_user_code:exits_in_forward' exited while running: SystemExit(0): user code may not exit"
    assert (r.code, r.out, r.err) == (2, "", f"archcalc: error: tiny.json: field '--module': {message}\n")
    r = cli("import", "archcalc_user_code:exits_in_forward", "--input", "4")
    message = "tracing ExitsInForward exited: SystemExit(0): user code may not exit"
    assert (r.code, r.out, r.err) == (2, "", f"archcalc: error: archcalc_user_code:exits_in_forward: field 'factory': {message}\n")


@pytest.mark.parametrize("target", ["archcalc_user_code:hard_exits", "archcalc_user_code:hard_exits_in_forward"])
@pytest.mark.parametrize("command", ["verify", "import"])
def test_os_exit_in_user_code_is_an_error_not_a_pass(user_code: Path, command: str, target: str) -> None:
    """os._exit(0) ends a process past every except and finally: verify and import exited 0 with
    nothing checked or written.  (A subprocess: if the guard failed, it would end pytest itself.)"""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    argv = ["verify", "tiny.json", "--module", target] if command == "verify" else ["import", target, "--input", "4", "-o", "out.json"]
    env = {**__import__("os").environ, "PYTHONPATH": str(root)}
    r = subprocess.run([sys.executable, "-m", "archcalc", *argv], cwd=user_code, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and "SystemExit('os._exit(0)'): user code may not exit" in r.stderr, r.stderr
    assert not (user_code / "out.json").exists()


def test_what_user_code_prints_stays_out_of_the_spec(user_code: Path) -> None:
    """print() in a factory or a forward went to stdout, into the spec `archcalc import` writes
    there: invalid JSON with exit 0.  It goes to stderr now."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = {**__import__("os").environ, "PYTHONPATH": str(root)}
    r = subprocess.run([sys.executable, "-m", "archcalc", "import", "archcalc_user_code:chatty", "--input", "4"],
                       cwd=user_code, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    spec = json.loads(r.stdout)  # the spec alone
    assert [layer["type"] for layer in spec["layers"]] == ["linear"]
    assert "factory says hello" in r.stderr and "building Chatty" in r.stderr
    (user_code / "chatty.json").write_text(r.stdout)
    r = subprocess.run([sys.executable, "-m", "archcalc", "verify", "chatty.json", "--module", "archcalc_user_code:chatty", "--format", "json"],
                       cwd=user_code, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout)  # the verdict alone: the forward's print went to stderr
    assert "forward of Chatty" in r.stderr


def test_the_plugin_fails_a_model_whose_forward_exits(user_code: Path) -> None:
    # assert_matches is the pytest plugin's archcalc_verify: an exit in the model is an error, not a pass
    from archcalc.torch.verify import load_module

    with pytest.raises(SpecError, match=r"exited while running: SystemExit\(0\)"):
        assert_matches(TINY, load_module("archcalc_user_code:exits_in_forward"))


# ----- a model with an auxiliary head (torchvision's googlenet / inception_v3), compared like with like -----
class WithAux(nn.Module):
    """An eval path (conv, pool, fc) and a head that runs only in training, as torchvision's InceptionAux."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(8, 10)
        self.aux = nn.Sequential(nn.Flatten(), nn.Linear(8 * 8 * 8, 10))

    def forward(self, x: Any) -> Any:
        h = self.conv(x)
        out = self.fc(self.flat(self.pool(h)))
        return (out, self.aux(h)) if self.training else out


AUX_CONV = [{"name": "conv", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}]
AUX_HEAD = [  # the head on the conv's output, before the eval path goes on (the network's output is the last layer)
    {"name": "aux_flat", "type": "flatten", "inputs": ["conv"], "training_only": True},
    {"name": "aux_fc", "type": "linear", "out_features": 10, "inputs": ["aux_flat"], "training_only": True},
]
AUX_REST = [
    {"name": "pool", "type": "adaptiveavgpool2d", "output_size": 1, "inputs": ["conv"]},
    {"name": "flat", "type": "flatten"},
    {"name": "fc", "type": "linear", "out_features": 10},
]
AUX_EVAL = AUX_CONV + AUX_REST


def test_verify_compares_an_aux_head_apart_from_the_eval_path() -> None:
    eval_params = (8 * 3 * 9 + 8) + (8 * 10 + 10)  # conv, fc: 314
    aux_params = 8 * 8 * 8 * 10 + 10  # the head's linear on the 8x8x8 feature map: 5,130
    spec = {"name": "aux", "input": [3, 8, 8], "layers": AUX_CONV + AUX_HEAD + AUX_REST}
    r = verify_spec(spec, WithAux())
    assert r.ok, r.failure_message()
    rows = {row.quantity: row for row in r.totals.rows}
    assert (rows["params"].analytic, rows["params"].measured) == (eval_params, eval_params)
    assert (rows["params (training only)"].analytic, rows["params (training only)"].measured) == (aux_params, aux_params)
    # a spec without the head (what `archcalc import` wrote for googlenet): the eval path still matches, and the
    # mismatch is named as what it is, the head the spec leaves out, not a wrong total of the network
    r = verify_spec({**spec, "layers": AUX_EVAL}, WithAux())
    assert not r.ok
    rows = {row.quantity: row for row in r.totals.rows}
    assert rows["params"].ok and rows["params"].measured == eval_params
    bad = rows["params (training only)"]
    assert (bad.analytic, bad.measured, bad.ok) == (0, aux_params, False)
    assert bad.note == "spec: no training-only layer; torch: modules the eval forward never calls: aux"
    # a model whose forward calls every module keeps the single total it had
    plain = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    r = verify_spec({**spec, "layers": AUX_EVAL}, plain)
    assert r.ok and [row.quantity for row in r.totals.rows] == ["output_shape", "params", "macs"]


def test_a_symbolic_repeat_count_is_refused_not_compared_as_one_copy(tmp_path: Path) -> None:
    """transformer_lm with every symbol but l given: each row is numeric, the totals are l x one
    layer; verify compared one copy and printed a MISMATCH (exit 1) instead of asking for l."""
    from conftest import cli

    args = ["--set", "s=16", "--set", "h=32", "--set", "a=4", "--set", "V=50"]
    r = cli("verify", "specs/transformer_lm.json", *args)
    assert r.code == 2 and r.err.count("\n") == 1, (r.code, r.out, r.err)
    assert "repeats l times, a symbol; verify needs numbers (--set l=N)" in r.err and "field 'repeat'" in r.err
    assert cli("verify", "specs/transformer_lm.json", *args, "--set", "l=2").code == 0


_DILATED = {"name": "dil", "input": [3, 16, 16], "layers": [
    {"name": "c1", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
    {"name": "r", "type": "relu"},
    {"name": "p", "type": "maxpool2d", "kernel_size": 2}]}


def test_verify_compares_the_window_settings_shapes_and_counts_can_miss() -> None:
    """Conv2d(3, 8, 3, padding=2, dilation=2) has the shape, params (8*3*3*3 + 8 = 224) and torch MACs
    of the spec's 3x3 conv with padding 1; MaxPool2d(3, 2, 1) the shape of MaxPool2d(2).  Their receptive
    fields (5 and 7 against 3 and 4) and lecture MACs differ: verify said OK (review, session 6)."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=2, dilation=2), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
    result = verify_spec(_DILATED, model)
    assert not result.ok
    wrong = {(r.name, r.quantity): (r.analytic, r.measured) for lc in result.layers for r in lc.rows if not r.ok}
    assert wrong == {("c1", "padding"): (1, 2), ("c1", "dilation"): (1, 2), ("p", "kernel_size"): (2, 3), ("p", "padding"): (0, 1)}
    same = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    assert verify_spec(_DILATED, same).ok  # kernel_size 3 and (3, 3), stride None and 2 are the same window


class _FunctionalPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(x), 3, 2, 1, ceil_mode=True)


def test_verify_compares_a_functional_pools_window_too() -> None:
    """F.avg_pool2d(x, 3, 2, 1, ceil_mode=True) on 4x7x7: ceil((7 + 2 - 3) / 2) + 1 = 4 positions, as a
    2x2 pool with stride 2 and ceil_mode gives, ceil((7 - 2) / 2) + 1 = 4: same shape, no params, no
    torch MACs.  verify passed the 2x2 spec (review s6b #4)."""
    pool = {"name": "p", "type": "avgpool2d", "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}
    spec = {"name": "fp", "input": [4, 7, 7], "layers": [{"name": "r", "type": "relu"}, pool]}
    assert verify_spec(spec, _FunctionalPool()).ok
    wrong = {**spec, "layers": [spec["layers"][0], {**pool, "kernel_size": 2, "padding": 0}]}
    result = verify_spec(wrong, _FunctionalPool())
    bad = {(r.name, r.quantity): (r.analytic, r.measured) for lc in result.layers for r in lc.rows if not r.ok}
    assert bad == {("p", "kernel_size"): (2, 3), ("p", "padding"): (0, 1)}


class _Up(nn.Module):
    def __init__(self, functional: bool = False) -> None:
        super().__init__()
        self.c = nn.Conv2d(4, 4, 1)
        self.r = nn.ReLU(inplace=True)
        self.u = nn.Upsample(scale_factor=2, mode="bilinear")
        self.functional = functional

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.functional:
            return F.interpolate(F.relu(self.c(x), inplace=True), scale_factor=2, mode="bilinear")
        return self.u(self.r(self.c(x)))


@pytest.mark.parametrize("functional", [False, True])
def test_verify_compares_upsample_mode_and_inplace(functional: bool) -> None:
    """Review s7 #1: a nearest upsample passed a bilinear model (same shape 4x16x16, no params, torch
    MACs 0 either way), though its receptive field (1 pixel against 2) and fvcore's count (1/4 against
    5/4 per output element: 4*16*16 = 1,024 against 5,120 with the conv) differ; a relu without inplace
    passed ReLU(inplace=True), whose output is no new tensor (training memory differs).  The module
    and the function (F.interpolate, F.relu(inplace=True)) alike."""
    layers: list[dict[str, Any]] = [
        {"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 1},
        {"name": "r", "type": "relu", "inplace": True},
        {"name": "u", "type": "upsample", "scale_factor": 2, "mode": "bilinear"},
    ]
    spec = {"name": "up", "input": [4, 8, 8], "layers": layers}
    assert verify_spec(spec, _Up(functional)).ok
    wrong = {**spec, "layers": [layers[0], {"name": "r", "type": "relu"}, {"name": "u", "type": "upsample", "scale_factor": 2}]}
    result = verify_spec(wrong, _Up(functional))
    bad = {(r.name, r.quantity): (r.analytic, r.measured) for lc in result.layers for r in lc.rows if not r.ok}
    assert bad == {("r", "inplace"): (False, True), ("u", "mode"): ("nearest", "bilinear")}
    corners = {**spec, "layers": [*layers[:2], {**layers[2], "align_corners": True}]}
    bad = {(r.name, r.quantity) for lc in verify_spec(corners, _Up(functional)).layers for r in lc.rows if not r.ok}
    assert bad == {("u", "align_corners")}  # (torch's None is False)


class _MHALearnedKV(nn.Module):
    """nn.MultiheadAttention(16, 4, kdim=6, vdim=10) over learned keys and values: runs in plain torch,
    but torch's FlopCounterMode (its ModuleTracker) raises 'Expected gradient function to be set'."""

    def __init__(self) -> None:
        super().__init__()
        self.m = nn.MultiheadAttention(16, 4, kdim=6, vdim=10, batch_first=True)
        self.k = nn.Parameter(torch.randn(1, 7, 6))
        self.v = nn.Parameter(torch.randn(1, 7, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x, self.k.expand(x.shape[0], -1, -1), self.v.expand(x.shape[0], -1, -1), need_weights=False)[0]


def test_verify_says_could_not_check_when_torchs_counter_fails(tmp_path: Path) -> None:
    """Review s7 #26: verify reported MISMATCH (exit 1: "your spec is wrong") when FlopCounterMode
    failed on a valid model; nothing was compared.  Now an error naming the cause, exit 2."""
    model = _MHALearnedKV()
    assert model(torch.zeros(1, 5, 16)).shape == (1, 5, 16)  # the model runs
    spec = {"name": "mhax", "input": [5, 16], "layers": [{"name": "l", "type": "linear", "out_features": 16}]}
    with pytest.raises(SpecError, match=r"cannot verify against _MHALearnedKV: torch's FlopCounterMode fails on this model "
                       r"\(AssertionError: Expected gradient function to be set\); the model runs without it"):
        verify_spec(spec, model)

    class Broken(nn.Module):  # a model that fails on its own is still the layer's failure (a mismatch, exit 1)
        def __init__(self) -> None:
            super().__init__()
            self.l = nn.Linear(8, 16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.l(x)

    result = verify_spec(spec, Broken())
    assert [(r.quantity, r.ok) for r in result.rows] == [("runs", False)]


_REFUSALS_WITHOUT_TORCH = r"""
import sys
from archcalc.cli import main
cases = [
    ["bench", "specs/transformer_lm.json", "--no-probe"],                     # symbolic sizes
    ["bench", "specs/lenet5.json", "--no-probe", "--device", "tpu"],         # a bad option
    ["verify", "specs/transformer_lm.json"],                                 # symbolic sizes
    ["verify", "specs/lenet5.json", "--module", "no_such_module_x:f"],       # a missing module
    ["verify", "specs/lenet5.json", "--module", "nocolon"],                  # a malformed target
    ["import", "no_such_module_x:f", "--input", "3"],
    ["import", "x:f", "--input", "3,-1"],
]
for argv in cases:
    assert main(argv) == 2, argv
    assert "torch" not in sys.modules, argv
print("ok")
"""


def test_refusals_that_need_no_torch_come_before_importing_it() -> None:
    """Review s7 #30: bench, verify and import imported torch (6-8 s, ~700 MB RSS) before refusing a
    symbolic spec, a missing module or a bad option.  Each refusal now happens with torch unimported
    (measured on the loaded review host: 38-85 MB RSS, the time of a plain `table`)."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _REFUSALS_WITHOUT_TORCH], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


class _Skip(nn.Module):
    """a = c1(x); b = c2(a); return b + a: a 3x3 conv after a 3x3 conv (receptive field 5), with a skip."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(4, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.c1(x)
        return self.c2(a) + a


def test_verify_compares_the_wiring() -> None:
    """Review s7 #2: a spec feeding c2 from the input (two parallel 3x3 convs, receptive field 3) passed
    the model where c2 reads c1 (receptive field 3 + 2 = 5): shapes (4x8x8), params (4*4*3*3 + 4 = 148
    each) and MACs (8*8*4*4*9 = 9,216 each) are the same.  verify follows the model's tensors from
    call to call and compares each layer's sources, and the output's, with the spec's inputs."""
    conv = {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}
    right = {"name": "seq", "input": [4, 8, 8], "layers": [
        {"name": "c1", **conv}, {"name": "c2", **conv}, {"name": "add", "type": "add", "inputs": ["c2", "c1"]}]}
    assert verify_spec(right, _Skip()).ok
    parallel = {**right, "layers": [{"name": "c1", **conv}, {"name": "c2", **conv, "inputs": ["input"]},
                                    {"name": "add", "type": "add", "inputs": ["c2", "c1"]}]}
    result = verify_spec(parallel, _Skip())
    assert [(r.name, r.quantity, r.analytic, r.measured) for r in result.mismatches] == [("c2", "inputs", "input", "c1")]
    assert "inputs is input in the spec, c1 in torch (fed from other layers" in result.summary()
    last = {**right, "layers": [*right["layers"][:2], {"name": "add", "type": "add", "inputs": ["c2", "input"]}]}  # the skip from the input
    result = verify_spec(last, _Skip())
    assert [(r.name, r.quantity, r.analytic, r.measured) for r in result.mismatches] == [("add", "inputs", "c2, input", "c1, c2")]


def test_the_ok_line_names_what_was_compared() -> None:
    """Review s7: the OK line named only output shape, params and MACs, though verify compares the
    wiring and the settings no count shows.  Against a model (_Skip: c1, c2, then c2 + c1 in forward):
    2 convs compared in counts, settings (window, padding mode) and inputs; the add has no module, so
    its own wiring is the output's.  Against the module built from the spec: counts only, and it says
    no more."""
    conv = {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}
    spec = {"name": "seq", "input": [4, 8, 8], "layers": [
        {"name": "c1", **conv}, {"name": "c2", **conv}, {"name": "add", "type": "add", "inputs": ["c2", "c1"]}]}
    result = verify_spec(spec, _Skip())
    assert result.summary() == ("OK: 2 layers match torch in output shape, params and MACs; settings match on 2 (padding mode, window); "
                                "inputs match on 2 and the output; totals match")
    assert result.to_json()["compared"] == {"counts": 2, "settings": 2, "setting_kinds": ["padding mode", "window"], "wiring": 2,
                                            "output_wiring": True}
    built = verify_spec(spec)
    assert built.summary() == "OK: 3 layers match torch in output shape, params and MACs; totals match"


class _Aliases(nn.Module):
    """r = id(relu_(c1(x))) returns the very tensor c2 then reads (timm's res_scale, MaxViT's proj)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.id = nn.Identity()
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.relu(self.c1(x))
        r = self.id(a)
        return self.c2(a) + r


def test_verify_wiring_looks_through_calls_that_return_their_input() -> None:
    """nn.Identity returns its input tensor itself: c2 reads the identity's output and the relu's alike
    (one tensor), so the spec's 'c2 reads relu' is right (the sweep's poolformer, MaxViT and HRNet have
    such identities).  An in-place ReLU changes the tensor: c2 reading c1 directly is not the model."""
    conv = {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}
    layers = [{"name": "c1", **conv}, {"name": "relu", "type": "relu", "inplace": True}, {"name": "id", "type": "identity"},
              {"name": "c2", **conv, "inputs": ["relu"]}, {"name": "add", "type": "add", "inputs": ["c2", "id"]}]
    spec = {"name": "alias", "input": [4, 8, 8], "layers": layers}
    assert verify_spec(spec, _Aliases()).ok
    skipped = {**spec, "layers": [*layers[:3], {**layers[3], "inputs": ["c1"]}, layers[4]]}
    assert [(r.name, r.quantity) for r in verify_spec(skipped, _Aliases()).mismatches] == [("c2", "inputs")]
