"""``archcalc import``: torch.fx traces of nn.Modules into specs (archcalc/torch/fx_import.py).

Round trip: every zoo spec, built as a torch module (on the ``meta`` device: no memory) and
imported back, analyses identically to the spec.  Hand-written models check each module type
(against torch itself, with ``verify_spec`` in module mode), the functional forms, names, and the
errors.  Nothing here runs a real forward except ``verify_spec`` on tiny inputs.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import uuid
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from test_torch_verify import ZOO1D, ZOO2D, ZOO3D, ZOO_NEWER  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from archcalc import analyze  # noqa: E402
from archcalc.errors import SpecError  # noqa: E402
from archcalc.graph import compile_spec  # noqa: E402
from archcalc.layers import TYPE_NAMES  # noqa: E402
from archcalc.report import Report, report_from_graph  # noqa: E402
from archcalc.spec import Architecture, load_spec, parse_spec  # noqa: E402
from archcalc.torch import extra_modules, modules  # noqa: E402
from archcalc.torch.build import SpecModule, build_module  # noqa: E402
from archcalc.torch.fx_import import add_import_parser, dumps_spec, run_import, spec_from_module  # noqa: E402
from archcalc.torch.verify import verify_spec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ZOO = sorted((ROOT / "specs").glob("*.json"))
CONVENTIONS = ("lecture", "torch")


def imported(model: nn.Module, shape: Any, name: str | None = None) -> Architecture:
    """Import ``model`` and read the spec back through its JSON text, as a file would be."""
    return parse_spec(json.loads(dumps_spec(spec_from_module(model, shape, name))))


def layers_of(model: nn.Module, shape: Any) -> list[dict[str, Any]]:
    return list(spec_from_module(model, shape)["layers"])


def types_of(model: nn.Module, shape: Any) -> list[str]:
    return [d["type"] for d in layers_of(model, shape)]


def expected_report(arch: Architecture, module: SpecModule, convention: str, values: dict[str, int] | None = None) -> Report:
    """The spec's report, each layer's ``inplace`` flag taken from the module built for it.

    ``build_torch`` of some layer types does not pass ``inplace`` on to the torch module
    (``nn.ReLU()`` for a spec's in-place ReLU), so the built module itself says nothing about
    it and fx cannot see it.  Where the flags do reach the module this is the spec's own report.
    """
    G = compile_spec(arch, values=values)
    for name in G.graph["order"]:
        layer = G.nodes[name]["layer"]
        if "inplace" in type(layer).model_fields:
            held = bool(getattr(module.layer(name), "inplace", False))
            if held != layer.inplace:
                G.nodes[name]["layer"] = layer.model_copy(update={"inplace": held})
    return report_from_graph(G, convention=convention)


def assert_same_analysis(got: Report, want: Report) -> None:
    rows = [r for r in want.rows if not r.training_only]  # eval mode: auxiliary heads do not run
    assert got.totals == want.totals
    assert [(r.type, r.output_shape) for r in got.rows] == [(r.type, r.output_shape) for r in rows]
    assert [(r.params, r.macs, r.flops, r.activation_bytes) for r in got.rows] == [(r.params, r.macs, r.flops, r.activation_bytes) for r in rows]


# ----- the zoo round trip ----------------------------------------------------------------------------
# a symbolic zoo spec is built at small sizes (torch needs numbers)
SIZES = {"transformer_lm": {"s": 64, "h": 32, "l": 2, "a": 4, "V": 100}}


@pytest.mark.parametrize("path", ZOO, ids=lambda p: p.stem)
def test_zoo_round_trip(path: Path) -> None:
    arch = load_spec(path)
    values = SIZES.get(path.stem)
    G = compile_spec(arch, values=values)
    module = build_module(G, device="meta")
    back = imported(module, list(G.graph["input_shape"]))
    for convention in CONVENTIONS:
        want = expected_report(arch, module, convention, values)
        got = analyze(back, convention=convention)
        assert_same_analysis(got, want)
        # a built spec module keeps its spec names, and inputs are written only where needed
        assert [r.name for r in got.rows] == [r.name for r in want.rows if not r.training_only]
        assert [r.inputs for r in got.rows] == [r.inputs for r in want.rows if not r.training_only]
    assert back.name == arch.name


@pytest.mark.parametrize("spec", [ZOO1D, ZOO2D, ZOO3D, *ZOO_NEWER], ids=lambda s: s["name"])
def test_small_zoo_round_trip(spec: dict[str, Any]) -> None:
    """The torch zoo of tests/test_torch_verify.py (every layer type), built and imported back."""
    arch = parse_spec(spec)
    module = build_module(compile_spec(arch), device="meta")
    back = imported(module, spec["input"])
    for convention in CONVENTIONS:
        assert_same_analysis(analyze(back, convention=convention), expected_report(arch, module, convention))


def test_round_trip_params_macs_flops_need_no_normalising() -> None:
    """Only activation memory depends on the ``inplace`` flags; the rest equals the spec as written."""
    arch = load_spec(ROOT / "specs" / "resnet18.json")
    back = imported(build_module(compile_spec(arch), device="meta"), [3, 224, 224])
    for convention in CONVENTIONS:
        want, got = analyze(arch, convention=convention).totals, analyze(back, convention=convention).totals
        assert {k: got[k] for k in ("params", "macs", "flops")} == {k: want[k] for k in ("params", "macs", "flops")}


def test_training_only_heads_are_not_imported() -> None:
    spec = {
        "name": "aux",
        "input": [3, 16, 16],
        "layers": [
            {"name": "conv", "type": "conv2d", "out_channels": 4, "kernel_size": 3},
            {"name": "aux.fc", "type": "linear", "out_features": 3, "inputs": ["conv"], "training_only": True},
            {"name": "relu", "type": "relu", "inputs": ["conv"]},
        ],
    }
    arch = parse_spec(spec)
    module = build_module(compile_spec(arch), device="meta")
    assert module.training  # a fresh module is in training mode; the import traces in eval mode
    back = imported(module, [3, 16, 16])
    assert [layer.name for layer in back.layers] == ["conv", "relu"]
    assert module.training and all(m.training for m in module.modules())  # flags restored


# ----- module types, checked against torch -----------------------------------------------------------
class Zoo2d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(4, 8, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2))
        self.bn = nn.BatchNorm2d(8, eps=1e-3, momentum=None)
        self.lrn = nn.LocalResponseNorm(3, k=2.0)
        self.acts = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.ReLU6(),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Tanh(),
            nn.Sigmoid(),
            nn.GELU(),
            nn.SiLU(),
            nn.Hardswish(),
            nn.Hardsigmoid(),
        )
        self.same = nn.Conv2d(8, 8, 3, padding="same", groups=4, bias=False)
        self.maxpool = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
        self.avgpool = nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False)
        self.bn_plain = nn.BatchNorm2d(8, affine=False, track_running_stats=False)
        self.gap = nn.AdaptiveAvgPool2d((2, 1))
        self.gmp = nn.AdaptiveMaxPool2d(1)
        self.drop = nn.Dropout(0.3)
        self.keep = nn.Identity()
        self.flat = nn.Flatten()
        self.fc = nn.Linear(8, 5, bias=False)
        self.bn1 = nn.BatchNorm1d(5)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.acts(self.lrn(self.bn(self.stem(x))))
        x = self.avgpool(self.maxpool(self.same(x)))
        x = self.gmp(self.gap(self.bn_plain(x)))
        return self.softmax(self.bn1(self.fc(self.flat(self.keep(self.drop(x))))))


class Zoo1d3d(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        conv, bn = (nn.Conv1d, nn.BatchNorm1d) if n == 1 else (nn.Conv3d, nn.BatchNorm3d)
        mp, ap, gap = (nn.MaxPool1d, nn.AvgPool1d, nn.AdaptiveAvgPool1d) if n == 1 else (nn.MaxPool3d, nn.AvgPool3d, nn.AdaptiveAvgPool3d)
        self.conv = conv(3, 6, 3, padding="valid", dilation=2)
        self.bn = bn(6)
        self.relu = nn.ReLU(inplace=True)
        self.mp = mp(2, ceil_mode=True)
        self.ap = ap(2, stride=1, padding=1)
        self.gap = gap(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flat(self.gap(self.ap(self.mp(self.relu(self.bn(self.conv(x))))))))


@pytest.mark.parametrize(
    ("model", "shape"),
    [
        (Zoo2d(), (4, 15, 13)),
        (Zoo1d3d(1), (3, 19)),
        (Zoo1d3d(3), (3, 9, 10, 11)),
    ],
    ids=["2d", "1d", "3d"],
)
def test_modules_match_torch(model: nn.Module, shape: tuple[int, ...]) -> None:
    """Every imported layer has torch's output shape, params and MACs (verify, module mode)."""
    arch = imported(model, shape)
    result = verify_spec(arch, model, shape)
    assert result.ok, result.render_text()
    assert not result.not_compared
    assert len(arch.layers) == sum(1 for m in model.modules() if not list(m.children()))


def test_module_fields_are_read() -> None:
    got = {d["name"]: d for d in layers_of(Zoo2d(), (4, 15, 13))}
    assert got["stem"] == {
        "name": "stem",
        "type": "conv2d",
        "out_channels": 8,
        "kernel_size": [3, 2],
        "stride": [2, 1],
        "padding": [1, 0],
        "dilation": [1, 2],
    }
    assert got["bn"] == {"name": "bn", "type": "batchnorm2d", "eps": 1e-3, "momentum": None}
    assert got["lrn"] == {"name": "lrn", "type": "localresponsenorm", "size": 3, "k": 2.0}
    assert got["acts.0"] == {"name": "acts.0", "type": "relu", "inplace": True}
    assert got["acts.2"] == {"name": "acts.2", "type": "leakyrelu", "negative_slope": 0.2, "inplace": True}
    assert [got[f"acts.{i}"]["type"] for i in range(9)] == [
        "relu",
        "relu6",
        "leakyrelu",
        "tanh",
        "sigmoid",
        "gelu",
        "silu",
        "hardswish",
        "hardsigmoid",
    ]
    assert got["same"] == {"name": "same", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": "same", "groups": 4, "bias": False}
    assert got["maxpool"] == {"name": "maxpool", "type": "maxpool2d", "kernel_size": 3, "stride": 1, "padding": 1, "ceil_mode": True}
    assert got["avgpool"] == {"name": "avgpool", "type": "avgpool2d", "kernel_size": 2, "stride": 2, "ceil_mode": True, "count_include_pad": False}
    assert got["bn_plain"] == {"name": "bn_plain", "type": "batchnorm2d", "affine": False, "track_running_stats": False}
    assert got["gap"]["output_size"] == [2, 1] and got["gmp"]["output_size"] == 1
    assert got["drop"] == {"name": "drop", "type": "dropout", "p": 0.3}
    assert got["keep"]["type"] == "identity" and got["flat"]["type"] == "flatten"
    assert got["fc"] == {"name": "fc", "type": "linear", "out_features": 5, "bias": False}
    assert got["bn1"]["type"] == "batchnorm1d" and got["softmax"] == {"name": "softmax", "type": "softmax"}
    assert all("inputs" not in d for d in got.values())  # a chain: every input is the layer before


NEWER = ("convtranspose2d", "upsample", "channelshuffle", "zeropad2d")


@pytest.mark.skipif(not all(t in TYPE_NAMES for t in NEWER), reason="layer types not in this archcalc")
def test_newer_module_types_match_torch() -> None:
    model = nn.Sequential(
        nn.ZeroPad2d((1, 2, 0, 1)),
        nn.Conv2d(4, 8, 3),
        nn.ChannelShuffle(2),
        nn.ConvTranspose2d(8, 4, 2, stride=2, output_padding=1, bias=False),
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Upsample(size=(7, 9)),
    )
    layers = layers_of(model, (4, 6, 5))
    assert [d["type"] for d in layers] == ["zeropad2d", "conv2d", "channelshuffle", "convtranspose2d", "upsample", "upsample"]
    assert layers[0]["padding"] == [1, 2, 0, 1]
    assert layers[3] == {"name": "3", "type": "convtranspose2d", "out_channels": 4, "kernel_size": 2, "stride": 2, "output_padding": 1, "bias": False}
    assert layers[4] == {"name": "4", "type": "upsample", "scale_factor": 2, "mode": "bilinear", "align_corners": False}
    assert layers[5] == {"name": "5", "type": "upsample", "size": [7, 9]}
    result = verify_spec(imported(model, (4, 6, 5)), model, (4, 6, 5))
    assert result.ok, result.render_text()


def test_custom_archcalc_modules_map_back() -> None:
    """archcalc's own modules (merges, option-A shortcuts, mul/chunk/crop) are leaves mapped to their types."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 8, 3, padding=1)
            self.sub = modules.Subsample((2, 2))
            self.pad = modules.ChannelPad(4, 4)
            self.add = modules.Add()
            self.cat = modules.Concat(1)
            self.mul = extra_modules.Mul()
            self.first = extra_modules.Chunk(2, 0, 1)
            self.crop = extra_modules.Crop((3, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            s = self.pad(self.sub(y))
            z = self.add(s, s)
            z = self.cat(z, s)
            z = self.mul(z, z)
            return self.crop(self.first(z))

    layers = layers_of(Net(), (4, 10, 10))
    assert [(d["name"], d["type"]) for d in layers] == [
        ("conv", "conv2d"),
        ("sub", "subsample"),
        ("pad", "channelpad"),
        ("add", "add"),
        ("cat", "concat"),
        ("mul", "mul"),
        ("first", "chunk"),
        ("crop", "crop"),
    ]
    by = {d["name"]: d for d in layers}
    assert "stride" not in by["sub"] and by["pad"]["out_channels"] == 16  # stride 2 is the default
    assert by["add"]["inputs"] == ["pad", "pad"] and by["cat"]["inputs"] == ["add", "pad"]
    assert by["first"] == {"name": "first", "type": "chunk", "chunks": 2, "index": 0}
    assert by["crop"] == {"name": "crop", "type": "crop", "size": 3}
    rep = analyze(imported(Net(), (4, 10, 10)))
    assert rep.rows[-1].output_shape == (16, 3, 3)


def test_user_module_named_like_a_layer_type_is_traced_through() -> None:
    class Add(nn.Module):  # a user class, not archcalc's: its forward is what counts
        def forward(self, a: torch.Tensor) -> torch.Tensor:
            return torch.relu(a)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = Add()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.block(x)

    assert types_of(Net(), (3, 4, 4)) == ["relu"]


def test_user_subclass_of_a_torch_layer_is_that_layer() -> None:
    class MyConv(nn.Conv2d):
        pass

    assert layers_of(nn.Sequential(MyConv(3, 5, 3, bias=False)), (3, 8, 8)) == [
        {"name": "0", "type": "conv2d", "out_channels": 5, "kernel_size": 3, "bias": False}
    ]


# ----- functions and methods ---------------------------------------------------------------------------
class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv(x))
        x = self.relu(x)  # the shared module, called again
        a = F.max_pool2d(x, 2)
        b = F.avg_pool2d(x, 2, ceil_mode=True, count_include_pad=False)
        x = torch.cat([a, b], 1)
        y = F.relu(x, inplace=True)
        x = x + y
        x += y
        x = torch.add(x, y)
        x = x.add(y)
        x = torch.relu(x).relu()
        x = F.leaky_relu(torch.sigmoid(torch.tanh(x)), 0.1)
        x = F.hardsigmoid(F.hardswish(F.silu(F.gelu(F.relu6(x)))))
        p1, p2 = x.chunk(2, dim=1)
        z = F.pad(p1 + p2, (0, 0, 0, 0, 4, 4))
        z = z[:, :, ::2, ::2]
        g = F.adaptive_avg_pool2d(z, 1)
        h = g.view(g.size(0), -1) + torch.flatten(g, 1) + g.reshape(g.shape[0], -1) + g.flatten(1) + g.view(-1, 16)
        h = F.dropout(h, 0.5, self.training)
        return F.softmax(self.fc(h), dim=1)


def test_functional_forms() -> None:
    layers = layers_of(Functional(), (3, 8, 8))
    assert [(d["name"], d["type"]) for d in layers] == [
        ("conv", "conv2d"),
        ("relu", "relu"),
        ("relu_1", "relu"),
        ("max_pool2d", "maxpool2d"),
        ("avg_pool2d", "avgpool2d"),
        ("cat", "concat"),
        ("relu_2", "relu"),
        ("add", "add"),
        ("add_1", "add"),
        ("add_2", "add"),
        ("add_3", "add"),
        ("relu_3", "relu"),
        ("relu_4", "relu"),
        ("tanh", "tanh"),
        ("sigmoid", "sigmoid"),
        ("leaky_relu", "leakyrelu"),
        ("relu6", "relu6"),
        ("gelu", "gelu"),
        ("silu", "silu"),
        ("hardswish", "hardswish"),
        ("hardsigmoid", "hardsigmoid"),
        ("getitem", "chunk"),
        ("getitem_1", "chunk"),
        ("add_4", "add"),
        ("pad", "channelpad"),
        ("getitem_2", "subsample"),
        ("adaptive_avg_pool2d", "adaptiveavgpool2d"),
        ("view", "flatten"),
        ("flatten", "flatten"),
        ("add_5", "add"),
        ("reshape", "flatten"),
        ("add_6", "add"),
        ("flatten_1", "flatten"),
        ("add_7", "add"),
        ("view_1", "flatten"),
        ("add_8", "add"),
        ("dropout", "dropout"),
        ("fc", "linear"),
        ("softmax", "softmax"),
    ]
    by = {d["name"]: d for d in layers}
    assert by["avg_pool2d"] == {
        "name": "avg_pool2d",
        "type": "avgpool2d",
        "inputs": ["relu_1"],
        "kernel_size": 2,
        "ceil_mode": True,
        "count_include_pad": False,
        "function": "F.avg_pool2d",  # thop counts the call 0 (the module: its outputs), ptflops once (the module: twice)
    }
    assert by["max_pool2d"] == {"name": "max_pool2d", "type": "maxpool2d", "kernel_size": 2, "function": "F.max_pool2d"}
    assert by["cat"] == {"name": "cat", "type": "concat", "inputs": ["max_pool2d", "avg_pool2d"]}
    assert by["relu_2"]["inplace"] is True and by["add"]["inputs"] == ["cat", "relu_2"]
    assert by["leaky_relu"]["negative_slope"] == 0.1
    assert by["getitem"] == {"name": "getitem", "type": "chunk", "chunks": 2, "index": 0}
    assert by["getitem_1"] == {"name": "getitem_1", "type": "chunk", "inputs": ["hardsigmoid"], "chunks": 2, "index": 1}
    assert by["pad"]["out_channels"] == 16 and by["getitem_2"] == {"name": "getitem_2", "type": "subsample"}  # stride 2: the default
    assert by["adaptive_avg_pool2d"]["output_size"] == 1
    assert by["dropout"] == {"name": "dropout", "type": "dropout"}
    assert "dim" not in by["softmax"]  # dim=1 is the default
    rep = analyze(parse_spec(json.loads(dumps_spec(spec_from_module(Functional(), (3, 8, 8))))))
    assert rep.rows[-1].output_shape == (10,)


def torch_shapes(model: nn.Module, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Per-sample output shape of every fx node, from a real forward (fx's ShapeProp) on a tiny input.

    Keyed like the importer names layers: a module's first call by its qualified name, any other
    node by its fx name.
    """
    from torch.fx.passes.shape_prop import ShapeProp

    gm = torch.fx.symbolic_trace(model.eval())
    ShapeProp(gm).propagate(torch.zeros(1, *shape))
    out: dict[str, tuple[int, ...]] = {}
    for node in gm.graph.nodes:
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            continue
        key = str(node.target) if node.op == "call_module" and str(node.target) not in out else node.name
        out[key] = tuple(meta.shape)[1:]
    return out


def assert_shapes_match_torch(model: nn.Module, shape: tuple[int, ...]) -> list[dict[str, Any]]:
    spec = spec_from_module(model, shape)
    want = torch_shapes(model, shape)
    rows = analyze(parse_spec(spec)).rows
    compared = [(r.name, r.output_shape, want[r.name]) for r in rows if r.name in want]
    assert [(n, s) for n, s, _ in compared] == [(n, t) for n, _, t in compared]
    assert len(compared) == len(rows)  # every layer is an fx node
    return list(spec["layers"])


def test_functional_shapes_match_torch() -> None:
    assert_shapes_match_torch(Functional(), (3, 8, 8))


@pytest.mark.skipif(not all(t in TYPE_NAMES for t in NEWER), reason="layer types not in this archcalc")
def test_more_functional_forms_match_torch() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.drop = nn.Dropout2d(0.1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.drop(self.conv(x))
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
            y = F.interpolate(y, size=(9, 7))
            y = F.channel_shuffle(y, 2)
            y = F.pad(y, (1, 1, 2, 0))
            y = F.pad(y, (1, 1))
            y = y[:, :, 2:9, 3:8]  # a center crop
            y = y[..., ::3]
            y = F.max_pool2d(y, kernel_size=(2, 1), stride=[])
            y = torch.mean(y, dim=(-1, -2), keepdim=True)
            y = F.softmax(y, dim=1)
            return F.adaptive_max_pool2d(y, 1)

    layers = assert_shapes_match_torch(Net(), (3, 6, 6))
    assert layers == [
        {"name": "conv", "type": "conv2d", "out_channels": 4, "kernel_size": 3},
        {"name": "drop", "type": "dropout", "p": 0.1},
        # (function: the calls thop counts 0 and ptflops once, where their modules count otherwise)
        {"name": "interpolate", "type": "upsample", "scale_factor": 2, "mode": "bilinear", "align_corners": False, "function": "F.interpolate"},
        {"name": "interpolate_1", "type": "upsample", "size": [9, 7], "function": "F.interpolate"},
        {"name": "channel_shuffle", "type": "channelshuffle", "groups": 2},
        {"name": "pad", "type": "zeropad2d", "padding": [1, 1, 2, 0]},
        {"name": "pad_1", "type": "zeropad2d", "padding": [1, 1, 0, 0]},
        {"name": "getitem", "type": "crop", "size": [7, 5]},
        {"name": "getitem_1", "type": "subsample", "stride": [1, 3]},
        {"name": "max_pool2d", "type": "maxpool2d", "kernel_size": [2, 1], "function": "F.max_pool2d"},
        {"name": "mean", "type": "adaptiveavgpool2d", "output_size": 1, "as_mean": True},
        {"name": "softmax", "type": "softmax", "function": "F.softmax"},
        {"name": "adaptive_max_pool2d", "type": "adaptivemaxpool2d", "output_size": 1, "function": "F.adaptive_max_pool2d"},
    ]


class Plain(nn.Module):
    """The same network as Modules, written with functions."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        x = x + F.dropout(x, 0.5, self.training)
        return self.fc(x.view(x.size(0), -1))


class Modules(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout()
        self.add = modules.Add()
        self.flat = nn.Flatten()
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.conv(x)))
        return self.fc(self.flat(self.add(x, self.drop(x))))


def test_functions_and_modules_analyse_alike() -> None:
    for convention in CONVENTIONS:
        a, b = analyze(imported(Plain(), (3, 8, 8)), convention=convention), analyze(imported(Modules(), (3, 8, 8)), convention=convention)
        assert a.totals == b.totals
        assert [(r.type, r.output_shape) for r in a.rows] == [(r.type, r.output_shape) for r in b.rows]


def test_reshape_forms() -> None:
    class Net(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n, c, h, w = x.size()
            y = x.view(n, c, h * w)  # merge the spatial axes: flatten
            return y.reshape(n, c, h, w)  # split them again: unflatten

    assert layers_of(Net(), (3, 4, 5)) == [
        {"name": "view", "type": "flatten", "start_dim": 2},
        {"name": "reshape", "type": "unflatten", "dim": 2, "unflattened_size": [4, 5]},
    ]

    class Shuffle(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.view(x.size(0), 3, 20).reshape(x.size(0), 6, 10)  # neither merges nor splits: a general reshape

    assert layers_of(Shuffle(), (3, 4, 5))[-1] == {"name": "reshape", "type": "reshape", "shape": [6, 10]}

    class Windows(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.view(-1, 2, 10)  # folds the batch into the first axis (Swin's window partition)

    with pytest.raises(SpecError, match=r"node 'view' \(call_method Tensor.view\) has no archcalc layer type: reshape to \(-1, 2, 10\) does"):
        spec_from_module(Windows(), (3, 4, 5))


def test_squeeze_excitation_with_linear_layers_imports_and_verifies() -> None:
    # SE as tutorials write it: pool, view(b, c), Linear, ReLU, Linear, Sigmoid, view(b, c, 1, 1), x * y.expand_as(x)
    from archcalc.torch.verify import verify_spec

    class SE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3, padding=1)
            self.fc = nn.Sequential(nn.Linear(16, 4, bias=False), nn.ReLU(), nn.Linear(4, 16, bias=False), nn.Sigmoid())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.conv(x)
            b, c, _, _ = x.size()
            y = self.fc(F.adaptive_avg_pool2d(x, 1).view(b, c)).view(b, c, 1, 1)
            return x * y.expand_as(x)

    spec = spec_from_module(SE(), (3, 8, 8))
    assert [lay["type"] for lay in spec["layers"]][-3:] == ["sigmoid", "unflatten", "mul"]
    assert analyze(parse_spec(spec)).totals["params"] == sum(p.numel() for p in SE().parameters())  # 448 + 64 + 64
    r = verify_spec(spec, SE())
    assert r.ok, r.failure_message()

    class Merge(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.view(x.size(0), x.size(1), -1).contiguous().view(x.shape[0], 3, 20).reshape(-1, 60)

    layers = layers_of(Merge(), (3, 4, 5))
    assert layers == [{"name": "view", "type": "flatten", "start_dim": 2}, {"name": "reshape", "type": "flatten"}]  # view_1: same shape


def test_channel_shuffle_view_transpose_view() -> None:
    """torchvision's channel_shuffle (view, transpose, contiguous, view) is one channelshuffle layer."""

    def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
        batchsize, num_channels, height, width = x.size()
        x = x.view(batchsize, groups, num_channels // groups, height, width)
        x = torch.transpose(x, 1, 2).contiguous()
        return x.view(batchsize, num_channels, height, width)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 12, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return channel_shuffle(self.conv(x), 3).mean([2, 3])

    layers = layers_of(Net(), (3, 4, 4))
    assert [(d["type"], d.get("groups")) for d in layers] == [("conv2d", None), ("channelshuffle", 3), ("adaptiveavgpool2d", None), ("flatten", None)]
    assert analyze(imported(Net(), (3, 4, 4))).rows[-1].output_shape == (12,)


def test_output_that_is_not_the_last_layer_gets_an_identity() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.a(x)
            self.b(x)  # computed, unused: it still runs, so it stays
            return y

    layers = layers_of(Net(), (3, 5, 5))
    assert [(d["name"], d["type"], d.get("inputs")) for d in layers] == [
        ("a", "conv2d", None),
        ("b", "conv2d", ["input"]),
        ("output", "identity", ["a"]),
    ]


def test_symbolic_input_shape() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    spec = spec_from_module(model, "3,H,W")
    assert spec["input"] == [3, "H", "W"]
    rep = analyze(parse_spec(spec), convention="torch")
    assert str(rep.totals["macs"]) == "216*H*W + 16"


def test_forward_flags_take_their_defaults() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x: torch.Tensor, features_only: bool = False, scale: float | None = None) -> torch.Tensor:
            x = self.conv(x)
            return x if features_only else x.relu()

    assert types_of(Net(), (3, 4, 4)) == ["conv2d", "relu"]


# ----- errors ------------------------------------------------------------------------------------------
def test_unsupported_node_names_node_op_and_target() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return torch.erf(y * y)

    with pytest.raises(SpecError) as e:
        spec_from_module(Net(), (3, 8, 8))
    assert str(e.value).startswith("node 'erf' (call_function torch.erf) has no archcalc layer type")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("module", "pattern"),
    [
        (nn.Sequential(nn.Conv2d(3, 4, 3), nn.Softplus()), r"node '_1' \(call_module 1: Softplus\) has no archcalc layer type"),
        (nn.Sequential(nn.Conv2d(3, 4, 3), nn.ELU()), r"node '_1' \(call_module 1: ELU\) has no archcalc layer type"),
        (nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(2, return_indices=True)), r"return_indices"),
        (nn.Sequential(nn.Conv2d(5, 4, 3)), r"in_channels=5 but its input 3×8×8 has 3 channel\(s\)"),
        (nn.Sequential(nn.Flatten(), nn.Linear(10, 2)), r"in_features=10 but its input 192 has 192 feature\(s\)"),
        (nn.Sequential(nn.Conv2d(3, 4, 9)), r"node '_0' \(call_module 0: Conv2d\): conv2d layer '0': kernel extent 9"),
    ],
    ids=["softplus", "elu", "return_indices", "in_channels", "in_features", "kernel"],
)
def test_module_errors(module: nn.Module, pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern):
        spec_from_module(module, (3, 8, 8))


def _forward_error(forward: Any, shape: Any = (3, 8, 8)) -> str:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.weight = nn.Parameter(torch.zeros(4, 4, 1, 1))

    Net.forward = forward  # type: ignore[method-assign]
    with pytest.raises(SpecError) as e:
        spec_from_module(Net(), shape)
    text = str(e.value)
    assert "\n" not in text
    return text


def test_untraceable_model_is_one_line() -> None:
    def forward(self: Any, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * len(x)

    assert _forward_error(forward).startswith("field 'factory': torch.fx cannot trace Net: RuntimeError: 'len' is not supported in symbolic tracing")


def test_a_python_test_of_tensor_values_is_refused() -> None:
    """A Python ``if`` on a traced value is traced as true, then checked: tensor values cannot be (tests/test_lm_import.py has sizes)."""

    def forward(self: Any, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y if y.sum() > 0 else -y

    assert _forward_error(forward).startswith("node 'sum_1' (call_method Tensor.sum) has no archcalc layer type")


@pytest.mark.parametrize(
    ("forward", "pattern"),
    [
        (lambda self, x: F.conv2d(self.conv(x), self.weight * 2),
         r"node 'conv2d' \(call_function torch.conv2d\) has no archcalc layer type: weight is not a parameter or buffer of the model"),
        (lambda self, x: (self.conv(x), x), r"the model returns 2 values"),
        (lambda self, x: self.conv(x) + x.size(0), r"node 'add' \(call_function operator\.add\) .*: add of a tensor and the batch size"),
        (lambda self, x: torch.cat([self.conv(x)] * 2, 0), r"node 'cat' .*cannot concatenate along the batch axis"),
        (lambda self, x: self.conv(x) + self.conv(x), r"node 'conv_1' .*calls 'conv' a second time: its weights are shared"),
        (lambda self, x: torch.flatten(self.conv(x)), r"node 'flatten' .*start_dim 0"),
        (lambda self, x: self.conv(x).permute(1, 0, 2, 3), r"the model returns a permute of 'conv' that moves the batch axis"),
        (lambda self, x: self.conv(x)[0], r"indexing the batch axis"),
        (lambda self, x: x.view(-1), r"does not keep the batch axis"),
    ],
    ids=["functional_weights", "tuple", "constant", "batch_cat", "shared_weights", "flatten_batch", "batch_permute", "batch_index", "view_all"],
)
def test_node_errors(forward: Any, pattern: str) -> None:
    def fwd(self: Any, x: torch.Tensor) -> Any:
        return forward(self, x)

    import re

    assert re.search(pattern, _forward_error(fwd)), _forward_error(fwd)


def test_more_than_one_input_is_an_error() -> None:
    class Net(nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return x + y

    with pytest.raises(SpecError, match="more than one input"):
        spec_from_module(Net(), (3, 4, 4))
    with pytest.raises(SpecError, match=r"expected a torch\.nn\.Module"):
        spec_from_module("not a model", (3, 4, 4))  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="positive"):
        spec_from_module(nn.ReLU(), (3, 0, 4))


# ----- the CLI -------------------------------------------------------------------------------------------
FACTORY = """
import torch
from torch import nn


def make() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


class Bad(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return torch.erf(self.conv(x))


def not_a_model():
    return 42
"""


@pytest.fixture
def factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable module with model factories, in the current directory (as the CLI imports)."""
    name = f"fx_models_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(FACTORY, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def ns(factory: str, **kw: Any) -> argparse.Namespace:
    return argparse.Namespace(factory=factory, input=kw.pop("input", "3,16,16"), output=kw.pop("output", None), name=kw.pop("name", None), **kw)


def test_cli_writes_the_spec(factory_module: str, tmp_path: Path) -> None:
    out = tmp_path / "net.json"
    assert run_import(ns(f"{factory_module}:make", output=str(out), name="tiny")) == 0
    arch = load_spec(out)
    assert arch.name == "tiny" and arch.input == [3, 16, 16]
    assert [layer.kind for layer in arch.layers] == ["conv2d", "relu", "adaptiveavgpool2d", "flatten", "linear"]
    assert analyze(arch, convention="torch").totals["params"] == 3 * 8 * 9 + 8 + 8 * 4 + 4
    text = out.read_text(encoding="utf-8")
    assert text.count("\n") == 12 and '    {"name": "0", "type": "conv2d"' in text  # one layer per line
    assert not list(tmp_path.glob(".archcalc-*"))  # no temp file left


def test_cli_stdout(factory_module: str) -> None:
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert run_import(ns(f"{factory_module}:make", output="-")) == 0
    spec = json.loads(buf.getvalue())
    assert spec["name"] == "Sequential" and parse_spec(spec).layers[1].kind == "relu"


@pytest.mark.parametrize(
    ("factory", "pattern"),
    [
        ("no_colon_here", r"field 'factory': the model must be given as PKG.MODULE:FACTORY"),
        ("{mod}:", r"PKG.MODULE:FACTORY"),
        ("no_such_module_xyz:make", r"field 'factory': cannot import 'no_such_module_xyz'"),
        ("{mod}:missing", r"has no attribute 'missing'"),
        ("{mod}:not_a_model", r"gave a int, not a torch.nn.Module"),
        ("{mod}:Bad", r"node 'erf' \(call_function torch.erf\) has no archcalc layer type"),
    ],
    ids=["no_colon", "no_attr", "no_module", "missing", "not_module", "unsupported"],
)
def test_cli_errors_write_nothing(factory_module: str, tmp_path: Path, factory: str, pattern: str) -> None:
    out = tmp_path / "out.json"
    out.write_text("keep me", encoding="utf-8")
    with pytest.raises(SpecError, match=pattern):
        run_import(ns(factory.format(mod=factory_module), output=str(out)))
    assert out.read_text(encoding="utf-8") == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".json" or p.name.startswith(".archcalc-")) == ["out.json"]


def test_cli_bad_input_shape(factory_module: str) -> None:
    with pytest.raises(SpecError, match="input"):
        run_import(ns(f"{factory_module}:make", input="3,x-,16"))
    with pytest.raises(SpecError, match="--input"):
        run_import(ns(f"{factory_module}:make", input=""))


def test_import_parser() -> None:
    parser = argparse.ArgumentParser(prog="archcalc")
    sub = parser.add_subparsers(dest="command", required=True)
    add_import_parser(sub)
    args = parser.parse_args(["import", "pkg.mod:make", "--input", "3,224,224", "-o", "x.json", "--name", "n"])
    assert (args.command, args.factory, args.input, args.output, args.name) == ("import", "pkg.mod:make", "3,224,224", "x.json", "n")
    assert args.func is run_import
    with pytest.raises(SystemExit), redirect_stdout(io.StringIO()), pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "stderr", io.StringIO())
        parser.parse_args(["import", "pkg.mod:make"])  # --input is required


# ----- torchvision ---------------------------------------------------------------------------------------
TORCHVISION = [  # (model, zoo spec, input, totals that must agree)
    ("resnet18", "resnet18", (3, 224, 224), ("params", "macs", "flops", "activation_bytes")),
    ("vgg11", "vgg11", (3, 224, 224), ("params", "macs", "flops", "activation_bytes")),
    ("resnet50", "resnet50", (3, 224, 224), ("params", "macs", "flops", "activation_bytes")),
    ("mobilenet_v2", "mobilenet_v2", (3, 224, 224), ("params", "macs", "flops", "activation_bytes")),
    ("densenet121", "densenet121", (3, 224, 224), ("params", "macs", "flops", "activation_bytes")),
    ("squeezenet1_0", "squeezenet1_0", (3, 224, 224), ("params", "macs", "flops", "activation_bytes")),
    ("shufflenet_v2_x1_0", "shufflenet_v2_x1_0", (3, 224, 224), ("params", "macs", "flops", "activation_bytes")),
    ("inception_v3", "inception_v3", (3, 299, 299), ("params", "macs", "flops", "activation_bytes")),
    # torchvision's AlexNet adds an adaptive 6x6 average pool (the identity at 227) and dropout the
    # lecture's table leaves out: same params and torch-convention MACs; the lecture convention
    # also counts the pool's window reads, and the pool's output takes memory
    ("alexnet", "alexnet", (3, 227, 227), ("params", "macs", "flops")),
]


@pytest.mark.parametrize(("model", "spec", "shape", "keys"), TORCHVISION, ids=[t[0] for t in TORCHVISION])
def test_torchvision_models_match_the_zoo(model: str, spec: str, shape: tuple[int, ...], keys: tuple[str, ...]) -> None:
    tv_models = pytest.importorskip("torchvision.models")
    kwargs: dict[str, Any] = {"init_weights": False} if model == "inception_v3" else {}
    with torch.device("meta"):
        net = getattr(tv_models, model)(**kwargs)
    back = imported(net, shape)
    for convention in CONVENTIONS:
        want = analyze(ROOT / "specs" / f"{spec}.json", convention=convention).totals
        got = analyze(back, convention=convention).totals
        if model == "alexnet" and convention == "lecture":
            keys = ("params",)
        assert {k: got[k] for k in keys} == {k: want[k] for k in keys}, convention


# ----- structure: one leaf rule, one handler table ---------------------------------------------------
def test_leaf_rule() -> None:
    from archcalc.torch.leaves import Leaf, classify

    class MyConv(nn.Conv2d):  # keeps torch's forward: a conv2d
        pass

    class BNAct(nn.BatchNorm2d):  # timm's BatchNormAct2d: a BatchNorm2d subclass with children and its own forward
        def __init__(self, n: int) -> None:
            super().__init__(n)
            self.act = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(super().forward(x))

    assert classify(nn.Conv2d(3, 4, 3)) == Leaf("conv2d")
    assert classify(MyConv(3, 4, 3)) == Leaf("conv2d")
    assert classify(nn.ReLU6()) == Leaf("relu6")  # forward inherited from nn.Hardtanh
    assert classify(nn.Dropout2d()) == Leaf("dropout")
    assert classify(nn.ELU()) == Leaf(None)  # a torch layer archcalc has no type for: refused by name, not traced
    assert classify(BNAct(4)) is None  # traced into
    assert classify(nn.Sequential(nn.ReLU())) is None


def test_registering_a_handler_twice_is_an_error() -> None:
    from archcalc.torch.registry import handles, register

    @handles("test.only.twice")
    def h(imp: Any, node: Any) -> None: ...

    with pytest.raises(ValueError, match=r"'test\.only\.twice' registered twice"):
        register("test.only.twice", h)
    with pytest.raises(ValueError, match=r"'Tensor\.relu' registered twice"):
        register("Tensor.relu", h)


def test_every_refused_node_is_reported_in_one_line() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.elu = nn.ELU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.elu(self.conv(x))  # refused
            z = y.relu()  # depends only on a refused node: not reported again
            w = self.elu(x)  # refused again
            return z + w + torch.erf(x)  # torch.erf: refused

    with pytest.raises(SpecError) as e:
        spec_from_module(Net(), (3, 8, 8))
    text = str(e.value)
    assert text.startswith("node 'elu' (call_module elu: ELU) has no archcalc layer type; 2 more node(s) refused: ")
    assert text.endswith("refused: ELU, torch.erf")
    assert "\n" not in text


def test_batchnorm_subclass_with_its_own_forward_keeps_its_activation() -> None:
    """timm's BatchNormAct2d subclasses nn.BatchNorm2d, runs F.batch_norm, dropout and an activation
    in its own forward; it was imported as a plain batchnorm2d and the activation vanished (33 SiLUs
    lost from timm's efficientnet_b0, exit 0)."""
    from archcalc.torch.verify import verify_spec

    class BNAct(nn.BatchNorm2d):
        def __init__(self, n: int) -> None:
            super().__init__(n)
            self.drop = nn.Identity()
            self.act = nn.SiLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training, 0.1, self.eps)
            return self.act(self.drop(x))

    net = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), BNAct(8), nn.Conv2d(8, 4, 1), BNAct(4))
    layers = layers_of(net, (3, 8, 8))
    assert [d["type"] for d in layers] == ["conv2d", "batchnorm2d", "identity", "silu", "conv2d", "batchnorm2d", "identity", "silu"]
    result = verify_spec(imported(net, (3, 8, 8)), module=net)
    assert result.ok, result.failure_message()
    assert result.totals.analytic["params"] == 3 * 8 * 3 * 3 + 2 * 8 + (8 * 4 + 4) + 2 * 4  # conv, bn (weight, bias), conv + bias, bn


def test_timm_batchnormact2d_keeps_its_activation() -> None:
    layers_mod = pytest.importorskip("timm.layers")
    net = nn.Sequential(nn.Conv2d(3, 8, 3), layers_mod.BatchNormAct2d(8, act_layer=nn.SiLU))
    assert [d["type"] for d in layers_of(net, (3, 8, 8))][-1] == "silu"


def test_auxiliary_heads_are_imported_as_training_only() -> None:
    """GoogLeNet's aux1/aux2 run only in a training forward; the spec holds them marked training_only,
    so its total params are the model's (6,624,904 without the heads, 13,004,888 with them: the
    parameters torchvision's googlenet(aux_logits=True) holds, as sum(p.numel() for p in m.parameters()))."""
    tv_models = pytest.importorskip("torchvision.models")
    from archcalc.torch.verify import verify_spec

    with torch.device("meta"):
        net = tv_models.googlenet(weights=None, aux_logits=True, init_weights=False)
    spec = spec_from_module(net, (3, 224, 224))
    aux = [d["name"] for d in spec["layers"] if d.get("training_only")]
    assert "aux1.conv.conv" in aux and "aux2.fc2" in aux and len(aux) == 2 * 9  # pool, conv, bn, relu, flatten, fc1, relu, dropout, fc2
    assert "training_only" in spec["description"]
    result = verify_spec(spec, module=net)
    assert result.ok, result.failure_message()
    assert sum(r.params for r in analyze(parse_spec(spec)).rows) == sum(p.numel() for p in net.parameters())  # heads included


def test_dict_output_takes_the_only_tensor_or_the_named_key() -> None:
    class Seg(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)
            self.aux = nn.Conv2d(3, 2, 1)

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"out": self.conv(x), "size": x.shape[-1]}

    class Two(Seg):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"out": self.conv(x), "aux": self.aux(x)}

    spec = spec_from_module(Seg(), (3, 4, 4))
    assert [d["type"] for d in spec["layers"]] == ["conv2d"]
    assert "its only tensor, 'out', is the spec's output" in spec["description"]
    with pytest.raises(SpecError, match=r"returns a dict of 2 tensors \('out', 'aux'\); pick the spec's output with --output-key KEY"):
        spec_from_module(Two(), (3, 4, 4))
    assert spec_from_module(Two(), (3, 4, 4), output_key="out")["layers"][-1] == {"name": "output", "type": "identity", "inputs": ["conv"]}
    with pytest.raises(SpecError, match=r"has no key 'main'"):
        spec_from_module(Two(), (3, 4, 4), output_key="main")


class _Interp(nn.Module):
    def __init__(self, **kw: Any) -> None:
        super().__init__()
        self.c = nn.Conv2d(3, 4, 1)
        self.kw = kw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.c(x), **self.kw)


def test_fractional_scale_factor_is_torch_output_size_never_truncated() -> None:
    """Review s7 #9: scale_factor=1.5 was imported as 1 and 2.5 as 2 (int() of the float), with
    wrong shapes and costs downstream and exit 0.  torch's output size is floor(in * scale)
    (F.interpolate); with it, the size samples as the factor does where 1/scale == in/out."""
    up = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Upsample(scale_factor=1.5))
    assert layers_of(up, (3, 8, 8))[1] == {"name": "1", "type": "upsample", "size": [8 * 3 // 2, 8 * 3 // 2]}  # 12
    assert verify_spec(imported(up, (3, 8, 8)), up).ok
    i25 = _Interp(scale_factor=2.5, mode="bilinear")
    layer = layers_of(i25, (3, 8, 8))[1]
    assert (layer["size"], layer["mode"]) == ([8 * 5 // 2, 8 * 5 // 2], "bilinear")  # 20, torch 4x20x20 (not 4x16x16)
    assert analyze(imported(i25, (3, 8, 8))).rows[-1].output_shape == (4, 20, 20)
    assert verify_spec(imported(i25, (3, 8, 8)), i25).ok
    down = _Interp(scale_factor=0.5)  # was refused as "must be positive, got 0"
    assert layers_of(down, (3, 8, 8))[1]["size"] == [8 // 2, 8 // 2]
    # 1.5 on 7 pixels: torch gives floor(10.5) = 10 but samples in steps of 1/1.5, a size of 10 in steps of 7/10: refused
    with pytest.raises(SpecError, match=r"scale_factor 1.5 on 4×7×7 gives 4×10×10 .*recompute_scale_factor=True"):
        spec_from_module(_Interp(scale_factor=1.5), (3, 7, 7))
    rc = _Interp(scale_factor=1.5, recompute_scale_factor=True)  # torch itself then uses the size
    assert layers_of(rc, (3, 7, 7))[1]["size"] == [7 * 3 // 2, 7 * 3 // 2]  # floor(10.5) = 10
    assert verify_spec(imported(rc, (3, 7, 7)), rc).ok
    assert layers_of(_Interp(scale_factor=(2.0, 1.0)), (3, 8, 8))[1]["scale_factor"] == [2, 1]  # integral factors stay factors


def test_weight_norm_refused_not_dropped() -> None:
    """Review s7 #10: a weight-normalised conv was imported as a plain conv2d: 516 params where
    model.parameters() sums 524 (g, one per output channel, dropped), exit 0.  Refused naming the
    tensors: weight_v C_out*C_in*k*k + weight_g C_out + bias C_out = 8*3*3*3 + 8 + 8 = 232 against
    the conv2d layer's 8*3*3*3 + 8 = 224.  spectral_norm's u and v are buffers: imported as before."""
    from torch.nn.utils import parametrizations

    new = nn.Sequential(parametrizations.weight_norm(nn.Conv2d(3, 8, 3)), nn.ReLU(), nn.Conv2d(8, 4, 3))
    assert sum(p.numel() for p in new.parameters()) == (8 * 3 * 3 * 3 + 8 + 8) + (4 * 8 * 3 * 3 + 4)  # 524
    with pytest.raises(SpecError, match=r"holds 232 parameters \(bias 8, parametrizations.weight.original0 8, "
                       r"parametrizations.weight.original1 216\) where a conv2d layer holds 224 .*weight normalisation.*off by 8\)"):
        spec_from_module(new, (3, 8, 8))
    with pytest.warns(FutureWarning):
        old = nn.Sequential(nn.Flatten(), nn.utils.weight_norm(nn.Linear(12, 5)))
    with pytest.raises(SpecError, match=r"holds 70 parameters \(bias 5, weight_g 5, weight_v 60\) where a linear layer holds 65 "):
        spec_from_module(old, (3, 2, 2))  # weight_v 5*12 + weight_g 5 + bias 5 = 70; the layer: 5*12 + 5 = 65
    sn = nn.Sequential(parametrizations.spectral_norm(nn.Conv2d(3, 8, 3)), nn.ReLU(), nn.Conv2d(8, 4, 3))
    assert analyze(imported(sn, (3, 8, 8))).totals["params"] == sum(p.numel() for p in sn.parameters()) == 8 * 27 + 8 + 4 * 72 + 4


@pytest.mark.parametrize("mode", ["reflect", "circular"])
def test_padding_mode_is_written_into_the_spec(mode: str) -> None:
    """Review s7 #11: import wrote padding 1 and a note, and archcalc memory did not count the padded
    copy torch's conv saves (autograd: 3,248 B against 2,816).  The spec now says padding_mode, and
    memory counts the copy: (3*10*10 + 8*8*8) * 4 = 3,248 B (tests/test_padding_mode.py)."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, padding_mode=mode), nn.Conv2d(8, 4, 3))
    spec = spec_from_module(model, (3, 8, 8))
    assert spec["layers"][0]["padding_mode"] == mode and "padding_mode" not in spec.get("description", "")
    from archcalc.training import training_memory

    assert training_memory(spec, batch=1).totals["saved_bytes"] == (3 * 10 * 10 + 8 * 8 * 8) * 4
