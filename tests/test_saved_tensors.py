"""Saved tensors (training memory): what each layer's backward keeps, proved against autograd.

Expected numbers are written as the arithmetic a reader can check: per-sample elements x bytes x
batch.  The proof runs the torch model built from each spec under
``torch.autograd.graph.saved_tensors_hooks`` (archcalc.torch.saved), on the meta device for the
whole zoo (nothing is computed, so U-Net and C3D at their real inputs take a fraction of a
second; the hooks see the same saved tensors as on CPU, which the CPU cases below confirm).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from archcalc.graph import compile_graph
from archcalc.layers import LAYER_TYPES
from archcalc.passes import params, saved_tensors, shapes
from archcalc.spec import load_spec, parse_spec

ROOT = Path(__file__).resolve().parent.parent
ZOO = sorted((ROOT / "specs").glob("*.json"))


def saved_of(layers: list[dict[str, Any]], input: list[int | str], batch: Any = 2, dtype_bytes: int = 4, device: str = "cpu") -> dict[str, Any]:
    G = compile_graph(parse_spec({"name": "t", "input": input, "layers": layers}))
    shapes(G)
    params(G)
    saved_tensors(G, dtype_bytes, batch, device)
    return {n: G.nodes[n]["saved_bytes"] for n in G.graph["order"]}


def test_every_layer_type_says_what_its_backward_saves() -> None:
    # a new layer type must implement Layer.saved (archcalc/layers/base.py): without it the
    # training memory of any network using it is reported as unknown
    silent = [cls.__name__ for cls in LAYER_TYPES if "saved" not in {k for c in cls.__mro__[:-1] if c.__name__ != "Layer" for k in vars(c)}]
    assert silent == []


# fp32, batch 2; one layer after a conv (the conv makes the input require grad; it saves the
# network input, 3*8*8 elements per sample, counted in its own row)
X = 2 * 3 * 8 * 8 * 4  # the conv's input, fp32, batch 2
C = 2 * 4 * 8 * 8 * 4  # the conv's output (4 channels, 8x8), fp32, batch 2
CASES: list[tuple[str, dict[str, Any], int]] = [
    ("relu keeps its output", {"type": "relu"}, C),
    ("relu in place keeps its output, the conv's output storage", {"type": "relu", "inplace": True}, C),
    ("relu6 keeps its input", {"type": "relu6"}, C),
    ("relu6 in place keeps a copy of its input", {"type": "relu6", "inplace": True}, C),
    ("leaky relu in place keeps its result", {"type": "leakyrelu", "inplace": True}, C),
    ("tanh keeps its output", {"type": "tanh"}, C),
    ("sigmoid keeps its output", {"type": "sigmoid"}, C),
    ("gelu keeps its input", {"type": "gelu"}, C),
    ("silu in place keeps a copy", {"type": "silu", "inplace": True}, C),
    ("hardswish keeps its input", {"type": "hardswish"}, C),
    ("batch norm: input + save_mean + save_invstd, 4 channels fp32 each", {"type": "batchnorm2d"}, C + 4 * 4 + 4 * 4),
    ("max pool: input + int64 indices of its 4x4x4 output", {"type": "maxpool2d", "kernel_size": 2}, C + 2 * 4 * 4 * 4 * 8),
    ("avg pool keeps its input", {"type": "avgpool2d", "kernel_size": 2}, C),
    ("global average pool is a mean: nothing", {"type": "adaptiveavgpool2d", "output_size": 1}, 0),
    ("adaptive average pool to 2x2 keeps its input", {"type": "adaptiveavgpool2d", "output_size": 2}, C),
    ("adaptive max pool: input + int64 indices", {"type": "adaptivemaxpool2d", "output_size": 1}, C + 2 * 4 * 8),
    ("dropout keeps its mask, fp32 on CPU", {"type": "dropout", "p": 0.5}, C),
    ("dropout p=0 returns its input", {"type": "dropout", "p": 0.0}, 0),
    ("dropout p=1 multiplies by a 0-d zero", {"type": "dropout", "p": 1.0}, 4),
    ("softmax keeps its output", {"type": "softmax", "dim": 1}, C),
    # LRN size 3: x (counted by the conv? no: the conv saves *its* input), x^2 padded to 4+2
    # channels, k + alpha*avg and its power beta
    ("local response norm", {"type": "localresponsenorm", "size": 3}, C + 2 * 6 * 8 * 8 * 4 + C + C),
    ("flatten is a view: nothing", {"type": "flatten"}, 0),
    ("upsample saves nothing", {"type": "upsample", "scale_factor": 2}, 0),
    ("zero padding saves nothing", {"type": "zeropad2d", "padding": 1}, 0),
    ("channel shuffle saves nothing", {"type": "channelshuffle", "groups": 2}, 0),
    ("identity saves nothing", {"type": "identity"}, 0),
    ("a conv keeps its input", {"type": "conv2d", "out_channels": 2, "kernel_size": 1}, C),
    ("a transposed conv keeps its input", {"type": "convtranspose2d", "out_channels": 2, "kernel_size": 2, "stride": 2}, C),
]


@pytest.mark.parametrize(("what", "layer", "expected"), CASES, ids=[c[0] for c in CASES])
def test_saved_bytes_per_layer(what: str, layer: dict[str, Any], expected: int) -> None:
    got = saved_of([{"name": "conv", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}, {"name": "l", **layer}], [3, 8, 8])
    assert got == {"conv": X, "l": expected}


def test_a_storage_saved_twice_counts_once() -> None:
    # relu keeps its output; the two convs that read it keep it too: counted once, at the relu
    got = saved_of(
        [
            {"name": "c0", "type": "conv2d", "out_channels": 4, "kernel_size": 1},
            {"name": "r", "type": "relu"},
            {"name": "a", "type": "conv2d", "out_channels": 4, "kernel_size": 1},
            {"name": "b", "type": "conv2d", "out_channels": 4, "kernel_size": 1, "inputs": ["r"]},
            {"name": "s", "type": "add", "inputs": ["a", "b"]},
        ],
        [3, 8, 8],
    )
    assert got == {"c0": X, "r": C, "a": 0, "b": 0, "s": 0}


def test_a_saved_view_keeps_its_whole_tensor() -> None:
    # a conv on one chunk of r keeps r's storage, all 4 channels, not just its 2
    got = saved_of(
        [
            {"name": "c0", "type": "conv2d", "out_channels": 4, "kernel_size": 1},
            {"name": "r", "type": "relu"},
            {"name": "half", "type": "chunk", "chunks": 2, "index": 1},
            {"name": "c1", "type": "conv2d", "out_channels": 4, "kernel_size": 1},
        ],
        [3, 8, 8],
    )
    assert got == {"c0": X, "r": C, "half": 0, "c1": 0}


def test_layers_before_any_parameter_save_nothing() -> None:
    # the input does not require grad: a max pool on it builds no autograd node
    pool = {"name": "p", "type": "maxpool2d", "kernel_size": 2}
    got = saved_of([pool, {"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 1}], [3, 8, 8])
    assert got == {"p": 0, "c": 2 * 3 * 4 * 4 * 4}


def test_a_parameter_read_in_forward_is_not_saved_activation_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # a layer whose output is a parameter (ViT's class token): what keeps it keeps nothing new
    from archcalc.layers.activation import Identity

    monkeypatch.setattr(Identity, "output_storage", lambda self, ins: "param")
    layers = [{"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 1}, {"name": "p", "type": "identity"}, {"name": "g", "type": "gelu"}]
    assert saved_of(layers, [3, 8, 8]) == {"c": X, "p": 0, "g": 0}  # gelu keeps its input: the parameter


def test_a_fused_kernel_is_a_named_option(monkeypatch: pytest.MonkeyPatch) -> None:
    # a layer type with a fused variant (flash attention keeps a logsumexp, not the probabilities):
    # used by default, the unfused one with --attention math
    from archcalc.layers.activation import Softmax
    from archcalc.layers.base import Saved

    monkeypatch.setattr(Softmax, "saved_fused", lambda self, ins, out: [Saved.new("lse", (1,), "logsumexp per row", "float32")])
    layers = [{"name": "fc", "type": "linear", "out_features": 10}, {"name": "sm", "type": "softmax", "dim": 1}]
    assert saved_of(layers, [5])["sm"] == 2 * 1 * 4  # one fp32 logsumexp per sample, batch 2
    fused = cli_memory_json(layers)["layers"][1]
    assert fused["saved_bytes"] == 4 and fused["saved"][0]["tensor"] == "lse"
    assert cli_memory_json(layers, "--attention", "math")["layers"][1]["saved_bytes"] == 10 * 4  # the fp32 output


def cli_memory_json(layers: list[dict[str, Any]], *args: str) -> dict[str, Any]:
    import json
    import tempfile

    from tests.conftest import cli

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"name": "t", "input": [5], "layers": layers}, f)
    r = cli("memory", f.name, "--format", "json", *args)
    assert r.code == 0, r.err
    doc: dict[str, Any] = json.loads(r.out)
    return doc


def test_dropout_mask_is_one_byte_on_cuda() -> None:
    layers = [{"name": "fc", "type": "linear", "out_features": 10}, {"name": "d", "type": "dropout"}]
    assert saved_of(layers, [5], device="cuda")["d"] == 2 * 10 * 1
    assert saved_of(layers, [5], device="cpu")["d"] == 2 * 10 * 4


def test_symbolic_batch_is_a_plus_b_n() -> None:
    from archcalc.dims import symbol

    N = symbol("N")
    c = {"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}
    got = saved_of([c, {"name": "bn", "type": "batchnorm2d"}], [3, 8, 8], batch=N)
    assert got["c"] == 3 * 8 * 8 * 4 * N
    assert got["bn"] == 4 * 8 * 8 * 4 * N + 2 * 4 * 4  # the per-channel statistics do not grow with the batch


def test_a_layer_that_does_not_say_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    from archcalc.layers.activation import ReLU
    from archcalc.layers.base import Layer

    monkeypatch.setattr(ReLU, "saved", Layer.saved)
    got = saved_of([{"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 1}, {"name": "r", "type": "relu"}], [3, 8, 8])
    assert got == {"c": X, "r": None}


# ----- proof against autograd ------------------------------------------------------------------

torch = pytest.importorskip("torch")


def _analytic(G: Any, batch: int, fused: bool = True) -> int:
    shapes(G)
    params(G)
    saved_tensors(G, 4, batch, fused=fused)
    values = [G.nodes[n]["saved_bytes"] for n in G.graph["order"]]
    assert None not in values
    return sum(values)


def _measured(G: Any, batch: int, device: str) -> int:
    from archcalc.torch.build import build_module
    from archcalc.torch.saved import measure_saved

    model = build_module(G, device=device)
    dtype = model.input_dtype or torch.float32  # token ids: long
    return measure_saved(model, torch.zeros(batch, *G.graph["input_shape"], device=device, dtype=dtype)).total


@pytest.mark.torch
@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
def test_zoo_saved_bytes_equal_autograd(path: Path) -> None:
    # batch 2, fp32, train mode, meta device (see the module docstring), where attention runs the
    # unfused math path (CPU and CUDA pick flash attention: Layer.saved_fused); a symbolic spec at small sizes
    small = {"s": 64, "h": 32, "l": 2, "a": 4, "V": 100} if path.stem == "transformer_lm" else None
    G = compile_graph(load_spec(path), values=small)
    assert _analytic(G, 2, fused=False) == _measured(G, 2, "meta")  # (_analytic fails on a layer that does not say)


@pytest.mark.torch
@pytest.mark.parametrize("name", ["lenet5", "alexnet_2012", "resnet20", "conv1d_text", "squeezenet1_0"])
def test_saved_bytes_equal_autograd_on_cpu(name: str) -> None:
    # real tensors: dropout's mask, LRN's intermediates and max pooling's indices as CPU makes them
    G = compile_graph(load_spec(ROOT / "specs" / f"{name}.json"))
    assert _analytic(G, 2) == _measured(G, 2, "cpu")


@pytest.mark.torch
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # measured with torch 2.14.1 on CPU, batch 2, fp32, train mode (issue 13)
        ("resnet18", 44_398_080),
        ("resnet50", 172_031_488),
    ],
)
def test_torchvision_resnets_saved_bytes(name: str, expected: int) -> None:
    torchvision = pytest.importorskip("torchvision")
    from archcalc.torch.saved import measure_saved

    model = getattr(torchvision.models, name)().to("meta")
    assert measure_saved(model, torch.zeros(2, 3, 224, 224, device="meta")).total == expected
    assert _analytic(compile_graph(load_spec(ROOT / "specs" / f"{name}.json")), 2) == expected


@pytest.mark.torch
def test_torchvision_vit_b_16_saved_bytes() -> None:
    # measured with torch 2.14.1, batch 2, fp32, train mode: on the meta device (attention's math
    # path: q, k, the probabilities, the packed projection...) 309,851,216 bytes; on CPU, where
    # torch picks flash attention (a logsumexp per query instead of 12 x 197 x 197 probabilities
    # per block), 236,321,360 (at 224 x 224: here at 64 x 64, where CPU is quick)
    torchvision = pytest.importorskip("torchvision")
    from archcalc.torch.saved import measure_saved

    spec = load_spec(ROOT / "specs" / "vit_b_16.json")
    with torch.device("meta"):
        model = torchvision.models.vit_b_16()
    assert measure_saved(model, torch.zeros(2, 3, 224, 224, device="meta")).total == 309_851_216
    assert _analytic(compile_graph(spec), 2, fused=False) == 309_851_216
    small = torchvision.models.vit_b_16(image_size=64)
    measured = measure_saved(small, torch.randn(2, 3, 64, 64)).total
    assert _analytic(compile_graph(spec, input_shape=[3, 64, 64]), 2) == measured


def _conv(n: int) -> dict[str, Any]:
    return {"type": "conv2d", "out_channels": n, "kernel_size": 3, "padding": 1}


# every layer type and flag the zoo leaves out, layer by layer against autograd on CPU
ODD_NETS: list[dict[str, Any]] = [
    {"name": "activations", "input": [3, 12, 12], "layers": [
        {"name": "c0", **_conv(8)}, {"name": "a1", "type": "gelu"}, {"name": "a2", "type": "silu", "inplace": True},
        {"name": "a3", "type": "hardswish"}, {"name": "a4", "type": "hardsigmoid", "inplace": True},
        {"name": "a5", "type": "relu6", "inplace": True}, {"name": "a6", "type": "leakyrelu", "inplace": True},
        {"name": "a7", "type": "tanh"}, {"name": "a8", "type": "sigmoid"}, {"name": "a9", "type": "softmax", "dim": 1},
        {"name": "a10", "type": "leakyrelu"}, {"name": "a11", "type": "relu6"}, {"name": "a12", "type": "silu"},
        {"name": "a13", "type": "hardsigmoid"}, {"name": "a14", "type": "hardswish", "inplace": True},
        {"name": "up", "type": "upsample", "scale_factor": 2, "mode": "bilinear"}, {"name": "pad", "type": "zeropad2d", "padding": 1},
        {"name": "sh", "type": "channelshuffle", "groups": 2}, {"name": "c1", **_conv(8)},
        # a crop is a strided view: flatten copies it, and the linear layer keeps the copy
        {"name": "crop", "type": "crop", "size": 8}, {"name": "fl", "type": "flatten"}, {"name": "fc", "type": "linear", "out_features": 16},
        {"name": "d0", "type": "dropout", "p": 0.0}, {"name": "d1", "type": "dropout", "p": 1.0},
        {"name": "d2", "type": "dropout", "p": 0.3, "inplace": True},
    ]},
    {"name": "pools_and_views", "input": [3, 12, 12], "layers": [
        {"name": "c0", **_conv(8)}, {"name": "amp", "type": "adaptivemaxpool2d", "output_size": 2},
        {"name": "aap", "type": "adaptiveavgpool2d", "output_size": [2, 3], "inputs": ["c0"]},
        {"name": "aap1", "type": "adaptiveavgpool2d", "output_size": 1, "inputs": ["c0"]},
        {"name": "g0", "type": "conv2d", "out_channels": 8, "kernel_size": 1, "inputs": ["aap1"]},
        {"name": "m", "type": "mul", "inputs": ["c0", "g0", "aap1"]},
        {"name": "sub", "type": "subsample", "stride": 2}, {"name": "cp", "type": "channelpad", "out_channels": 12},
        # a channel range is one block per sample: flatten views it, the linear layer keeps all of cp
        {"name": "ch", "type": "chunk", "chunks": 3, "index": 1}, {"name": "fl", "type": "flatten"},
        {"name": "fc", "type": "linear", "out_features": 4}, {"name": "sq", "type": "unflatten", "dim": 1, "unflattened_size": [2, 2]},
        {"name": "lin3", "type": "linear", "out_features": 5}, {"name": "bn1", "type": "batchnorm1d"},
    ]},
    {"name": "three_d", "input": [2, 4, 8, 8], "layers": [
        {"name": "c", "type": "conv3d", "out_channels": 4, "kernel_size": 3, "padding": 1}, {"name": "bn", "type": "batchnorm3d"},
        {"name": "mp", "type": "maxpool3d", "kernel_size": 2}, {"name": "ap", "type": "avgpool3d", "kernel_size": 2, "inputs": ["bn"]},
        {"name": "aa", "type": "adaptiveavgpool3d", "output_size": 1, "inputs": ["bn"]},
        {"name": "ct", "type": "convtranspose3d", "out_channels": 2, "kernel_size": 2, "stride": 2, "inputs": ["mp"]},
    ]},
    {"name": "one_d", "input": [3, 16], "layers": [
        {"name": "c", "type": "conv1d", "out_channels": 4, "kernel_size": 3}, {"name": "mp", "type": "maxpool1d", "kernel_size": 2},
        {"name": "ap", "type": "avgpool1d", "kernel_size": 2}, {"name": "aa", "type": "adaptiveavgpool1d", "output_size": 3},
        {"name": "lrn", "type": "localresponsenorm", "size": 3}, {"name": "bn", "type": "batchnorm1d"},
    ]},
]  # fmt: skip


@pytest.mark.torch
@pytest.mark.parametrize("spec", ODD_NETS, ids=[n["name"] for n in ODD_NETS])
def test_every_layer_type_equals_autograd_layer_by_layer(spec: dict[str, Any]) -> None:
    from archcalc.torch.build import build_module
    from archcalc.torch.saved import measure_saved

    G = compile_graph(parse_spec(spec))
    _analytic(G, 2)
    model = build_module(G)
    measured = measure_saved(model, torch.randn(2, *G.graph["input_shape"]))
    got = {n: measured.per_module.get("layers." + model.keys[n], 0) for n in G.graph["order"]}
    assert got == {n: G.nodes[n]["saved_bytes"] for n in G.graph["order"]}


# ----- mixed precision: torch.autocast("cpu", torch.bfloat16) ------------------------------------


def test_resnet18_under_autocast_by_hand() -> None:
    from archcalc.training import training_memory

    m = training_memory(ROOT / "specs" / "resnet18.json", batch=2, dtype="bfloat16", amp=True)
    # the activations halve; batch norm's statistics (fp32: 2 x 4 bytes x 4,800 channels) and max
    # pooling's int64 indices (2 x 64x56x56 x 8 bytes) do not; conv and fc keep the bf16 copies of
    # their weights they computed with: all params but batch norm's 2 x 4,800 and fc's 1,000 biases
    stats, indices = 2 * 4 * 4800, 2 * 64 * 56 * 56 * 8
    weights16 = 2 * (11_689_512 - 2 * 4800 - 1000)
    assert m.totals["saved_bytes"] == (44_398_080 - stats - indices) // 2 + stats + indices + weights16  # 47,181,696
    assert m.totals["param_bytes"] == m.totals["grad_bytes"] == 4 * 11_689_512  # fp32 master weights and gradients


def test_local_response_norm_under_autocast_is_unknown() -> None:
    from archcalc.training import training_memory

    m = training_memory(ROOT / "specs" / "alexnet_2012.json", dtype="bfloat16", amp=True)
    assert m.totals["saved_bytes"] is None and "norm1" in m.unknown


AMP_NETS = [
    *ODD_NETS[:1],
    ODD_NETS[2],
    {"name": "resnet18_64", "file": "resnet18.json", "input": [3, 64, 64]},
    {"name": "convnext_tiny_64", "file": "convnext_tiny.json", "input": [3, 64, 64]},  # permutes (channels last); layer scale promotes
    {"name": "tied_head", "input": [8], "layers": [  # the head casts the embedding's fp32 weight it shares to bf16, and keeps the cast
        {"name": "wte", "type": "embedding", "num_embeddings": 50, "embedding_dim": 16}, {"name": "ln", "type": "layernorm"},
        {"name": "head", "type": "linear", "out_features": 50, "bias": False, "tie_weight": "wte"},
    ]},
    {"name": "lenet5", "file": "lenet5.json"},
    {"name": "conv1d_text", "file": "conv1d_text.json"},
    # attention under autocast: the projections and flash attention run in bf16 (q, k, v, the output
    # bf16, the logsumexp fp32); the flash output takes q's layout, so the merge of the heads is a view
    {"name": "gpt2_16", "file": "gpt2.json", "input": [16]},
    {"name": "bert_16", "file": "bert_base.json", "input": [16]},
    {"name": "vit_b_16_64", "file": "vit_b_16.json", "input": [3, 64, 64]},  # nn.MultiheadAttention
]


@pytest.mark.torch
@pytest.mark.parametrize("spec", AMP_NETS, ids=[n["name"] for n in AMP_NETS])
def test_autocast_equals_autograd_layer_by_layer(spec: dict[str, Any]) -> None:
    # the first conv keeps a bf16 copy of the fp32 input; 3-D pooling runs in fp32 on CPU (autocast's
    # float32 list), so the conv after it keeps another copy
    from archcalc.torch.build import build_module
    from archcalc.torch.saved import measure_saved
    from archcalc.training import training_memory_from_graph

    arch = load_spec(ROOT / "specs" / spec["file"]) if "file" in spec else parse_spec(spec)
    G = compile_graph(arch, input_shape=spec.get("input") if "file" in spec else None)
    m = training_memory_from_graph(G, batch=2, dtype="bfloat16", amp=True)
    model = build_module(G)
    x = torch.zeros(2, *G.graph["input_shape"], dtype=torch.long) if model.input_dtype == torch.long else torch.randn(2, *G.graph["input_shape"])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        measured = measure_saved(model, x)
    got = {r.name: measured.per_module.get("layers." + model.keys[r.name], 0) for r in m.rows}
    assert got == {r.name: r.saved_bytes for r in m.rows}


# ----- Korthikanti et al. 2022: a transformer layer's activations, 34sbh + 5as^2b bytes ----------


class _MegatronLayer(torch.nn.Module):
    """The transformer layer of Korthikanti et al. 2022 (arXiv:2205.05198, Fig. 2 and Sec. 4.1),
    as Megatron-LM runs it: pre-LayerNorm, unfused attention (scores, softmax, dropout, times V),
    dropout after the projection and after the MLP, GELU MLP of 4h; input (s, b, h)."""

    def __init__(self, h: int, a: int) -> None:
        super().__init__()
        from torch import nn

        self.a = a
        self.ln1, self.ln2 = nn.LayerNorm(h), nn.LayerNorm(h)
        self.qkv, self.proj = nn.Linear(h, 3 * h), nn.Linear(h, h)
        self.fc1, self.fc2 = nn.Linear(h, 4 * h), nn.Linear(4 * h, h)

    def forward(self, x: Any) -> Any:
        from torch.nn import functional as F

        s, b, h = x.shape
        d = h // self.a
        q, k, v = self.qkv(self.ln1(x)).view(s, b * self.a, 3 * d).transpose(0, 1).chunk(3, dim=-1)
        scores = torch.bmm(q, k.transpose(1, 2)) * d**-0.5
        ctx = torch.bmm(F.dropout(torch.softmax(scores, -1), 0.1), v).transpose(0, 1).reshape(s, b, h)
        x = x + F.dropout(self.proj(ctx), 0.1)
        return x + F.dropout(self.fc2(F.gelu(self.fc1(self.ln2(x)))), 0.1)


@pytest.mark.torch
@pytest.mark.parametrize(("s", "b", "h", "a"), [(16, 2, 128, 4), (24, 3, 64, 8)])
def test_korthikanti_transformer_layer(s: int, b: int, h: int, a: int) -> None:
    # Sec. 4.1 counts, in 16-bit: attention 11sbh + 5as^2b (QKV input 2sbh; Q, K, V 6sbh; softmax
    # output 2as^2b; its dropout mask as^2b; dropout output 2as^2b; projection input 2sbh; its
    # dropout mask sbh), MLP 19sbh (2sbh + GELU input 8sbh + its output 8sbh + mask sbh), the two
    # LayerNorms' inputs 4sbh: 34sbh + 5as^2b.  What autograd keeps differs by exactly:
    #   + 16sb: each LayerNorm also keeps its fp32 mean and 1/std per token (2 x 2 x 4 bytes x sb)
    #   + sbh + sbh + as^2b on CPU: a dropout mask there has the activations' 2 bytes (1 on CUDA)
    from archcalc.torch.saved import measure_saved

    model = _MegatronLayer(h, a).to("meta", torch.float16)
    measured = measure_saved(model, torch.zeros(s, b, h, device="meta", dtype=torch.float16, requires_grad=True)).total
    korthikanti = s * b * h * 34 + 5 * a * s * s * b
    assert measured == korthikanti + 16 * s * b + (2 * s * b * h + a * s * s * b)


# ----- attention: matmul, scaled_dot_product_attention, multiheadattention, layer by layer ------


def _heads(x: str, src: str, a: int = 4) -> list[dict[str, Any]]:
    # GPT-2's split of a (L, E) projection into (heads, L, E/heads): chunk, reshape, transpose
    return [
        {"name": x, "type": "chunk", "chunks": 3, "index": "qkv".index(x), "dim": -1, "inputs": [src]},
        {"name": x + "_h", "type": "reshape", "shape": [8, a, -1]}, {"name": x + "_t", "type": "transpose", "dim0": 1, "dim1": 2},
    ]  # fmt: skip


def _gpt_attention(**sdpa: Any) -> list[dict[str, Any]]:
    return [
        {"name": "fc0", "type": "linear", "out_features": 32}, {"name": "qkv", "type": "linear", "out_features": 96},
        *_heads("q", "qkv"), *_heads("k", "qkv"), *_heads("v", "qkv"),
        {"name": "sdpa", "type": "scaled_dot_product_attention", "inputs": ["q_t", "k_t", "v_t"], **sdpa},
        {"name": "merge_t", "type": "transpose", "dim0": 1, "dim1": 2}, {"name": "merge", "type": "reshape", "shape": [8, 32]},
        {"name": "proj", "type": "linear", "out_features": 32},
    ]  # fmt: skip


ATTENTION_NETS: list[dict[str, Any]] = [
    # flash (CPU, the default): the output takes q's (L, heads, d) layout, so merging the heads back is a view
    {"name": "gpt_causal", "input": [8, 16], "layers": _gpt_attention(is_causal=True)},
    {"name": "gpt_dropout", "input": [8, 16], "layers": _gpt_attention(dropout_p=0.25)},  # the math path, mask and all
    # nanoGPT's attention written out: masked_fill keeps its (L, L) bool mask, one for every head and sample
    {"name": "written_out_causal", "input": [8, 16], "layers": [
        {"name": "fc0", "type": "linear", "out_features": 32},
        {"name": "q", "type": "linear", "out_features": 32}, {"name": "qh", "type": "reshape", "shape": [4, 8, 8]},
        {"name": "k", "type": "linear", "out_features": 32, "inputs": ["fc0"]}, {"name": "kh", "type": "reshape", "shape": [4, 8, 8]},
        {"name": "kt", "type": "transpose", "dim0": -2, "dim1": -1}, {"name": "scores", "type": "matmul", "inputs": ["qh", "kt"]},
        {"name": "scaled", "type": "scalar", "op": "mul", "value": 0.125}, {"name": "mask", "type": "causal_mask"},
        {"name": "p", "type": "softmax", "dim": -1}, {"name": "ctx", "type": "matmul", "inputs": ["p", "kh"]},
    ]},
    {"name": "contiguous_heads", "input": [8, 16], "layers": [
        {"name": "fc0", "type": "linear", "out_features": 32},
        {"name": "q", "type": "linear", "out_features": 32}, {"name": "qh", "type": "reshape", "shape": [4, 8, 8]},
        {"name": "k", "type": "linear", "out_features": 32, "inputs": ["fc0"]}, {"name": "kh", "type": "reshape", "shape": [4, 8, 8]},
        {"name": "v", "type": "linear", "out_features": 16, "inputs": ["fc0"]}, {"name": "vh", "type": "reshape", "shape": [4, 8, 4]},
        # Ev != E: the math path on CPU too; v contiguous: bmm keeps v itself
        {"name": "sdpa", "type": "scaled_dot_product_attention", "inputs": ["qh", "kh", "vh"]},
        {"name": "k2", "type": "linear", "out_features": 16, "inputs": ["fc0"]}, {"name": "k2h", "type": "reshape", "shape": [2, 8, 8]},
        {"name": "gqa", "type": "scaled_dot_product_attention", "enable_gqa": True, "inputs": ["qh", "k2h", "k2h"]},
        {"name": "one_head", "type": "scaled_dot_product_attention", "inputs": ["fc0", "fc0", "fc0"]},
        {"name": "kt", "type": "transpose", "dim0": -2, "dim1": -1, "inputs": ["kh"]},
        {"name": "scores", "type": "matmul", "inputs": ["qh", "kt"]},  # k^T's transpose merges with the batch: a view
        {"name": "ctx", "type": "matmul", "inputs": ["scores", "vh"]},
        {"name": "tq", "type": "transpose", "dim0": 1, "dim1": 2, "inputs": ["qh"]},
        {"name": "tqt", "type": "transpose", "dim0": -2, "dim1": -1},
        {"name": "mixed", "type": "matmul", "inputs": ["tq", "tqt"]},  # the rows of q's storage are not outermost: both copied
        {"name": "rank2", "type": "reshape", "shape": [32, 8], "inputs": ["k"]},
        {"name": "mm2", "type": "matmul", "inputs": ["fc0", "rank2"]},  # (8, 32) x (32, 8): bmm keeps both as they are
        {"name": "rdiv", "type": "scalar", "op": "rdiv", "value": 2.0},
    ]},
    {"name": "mha_self", "input": [8, 16], "layers": [
        {"name": "fc0", "type": "linear", "out_features": 32}, {"name": "mha", "type": "multiheadattention", "num_heads": 4, "batch_first": True},
        {"name": "mha_nb", "type": "multiheadattention", "num_heads": 2, "bias": False, "inputs": ["fc0"]},
        {"name": "s", "type": "add", "inputs": ["mha", "mha_nb"]}, {"name": "fl", "type": "flatten"},
    ]},
    {"name": "mha_dropout_cross", "input": [8, 16], "layers": [
        {"name": "fc0", "type": "linear", "out_features": 32}, {"name": "mem", "type": "linear", "out_features": 12},
        {"name": "mha", "type": "multiheadattention", "num_heads": 4, "dropout": 0.25, "batch_first": True, "inputs": ["fc0"]},
        {"name": "cross", "type": "multiheadattention", "num_heads": 4, "kdim": 12, "vdim": 12, "batch_first": True,
         "inputs": ["mha", "mem", "mem"]},
        {"name": "cross_p", "type": "multiheadattention", "num_heads": 2, "dropout": 0.5, "batch_first": True, "inputs": ["fc0", "mha", "cross"]},
    ]},
    # where a linear layer keeps a copy of its input rather than the input's storage (which gelu keeps too)
    {"name": "linear_copies", "input": [8, 16], "layers": [
        {"name": "fc0", "type": "linear", "out_features": 32}, {"name": "g", "type": "gelu"},
        {"name": "t", "type": "transpose", "dim0": 1, "dim1": 2, "inputs": ["fc0"]}, {"name": "fc1", "type": "linear", "out_features": 5},
        {"name": "tt", "type": "transpose", "dim0": 1, "dim1": 2}, {"name": "fc2", "type": "linear", "out_features": 5},  # transposed back: a view
        # multi-head attention's output is (L, N, E) in memory: a linear copies it, the next attention reads it as it is
        {"name": "m", "type": "multiheadattention", "num_heads": 2, "batch_first": True, "inputs": ["fc0"]}, {"name": "g2", "type": "gelu"},
        {"name": "fc3", "type": "linear", "out_features": 5, "inputs": ["m"]},
        {"name": "d", "type": "dropout", "p": 0.0, "inputs": ["m"]}, {"name": "m2", "type": "multiheadattention", "num_heads": 2},
    ]},
    # normalisation statistics: fp32 in fp32, and in pure 16-bit on CPU 16-bit (batch, layer and
    # group norm); RMS norm computes in fp32 (a 16-bit input is cast up, and the copy kept)
    {"name": "norms", "input": [8, 16], "layers": [
        {"name": "fc0", "type": "linear", "out_features": 16}, {"name": "ln", "type": "layernorm"}, {"name": "rms", "type": "rmsnorm"},
        {"name": "rms_plain", "type": "rmsnorm", "elementwise_affine": False, "inputs": ["fc0"]},
        {"name": "r", "type": "reshape", "shape": [8, 4, 4]}, {"name": "bn", "type": "batchnorm2d"},
        {"name": "gn", "type": "groupnorm", "num_groups": 2},
    ]},
    # Swin's shifted-window attention on a 7 x 7 map in 4 x 4 windows (padded to 8 x 8), v1 and v2
    {"name": "swin", "input": [7, 7, 8], "layers": [
        {"name": "fc0", "type": "linear", "out_features": 16},
        {"name": "w", "type": "shiftedwindowattention", "num_heads": 2, "window_size": 4},
        {"name": "ws", "type": "shiftedwindowattention", "num_heads": 2, "window_size": 4, "shift_size": 2, "inputs": ["fc0"]},
        {"name": "w2", "type": "shiftedwindowattention", "num_heads": 2, "window_size": 4, "v2": True, "inputs": ["fc0"]},
        {"name": "w2s", "type": "shiftedwindowattention", "num_heads": 4, "window_size": [4, 2], "shift_size": [2, 1], "v2": True,
         "qkv_bias": False, "inputs": ["fc0"]},
    ]},
]  # fmt: skip


def _per_layer(spec: dict[str, Any], dtype: Any, fused: bool, device: str = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from archcalc.torch.build import build_module
    from archcalc.torch.saved import measure_saved

    G = compile_graph(parse_spec(spec))
    shapes(G)
    params(G)
    saved_tensors(G, torch.tensor([], dtype=dtype).element_size(), 2, fused=fused)
    model = build_module(G, device=device, dtype=dtype)
    with contextlib.nullcontext() if fused else sdpa_kernel(SDPBackend.MATH):
        measured = measure_saved(model, torch.randn(2, *G.graph["input_shape"], device=device, dtype=dtype))
    def within(key: str) -> int:  # the layer's module and its submodules (Swin v2's position-bias MLP)
        return sum(v for k, v in measured.per_module.items() if k == key or k.startswith(key + "."))

    got = {n: within("layers." + model.keys[n]) for n in G.graph["order"]}
    return got, {n: G.nodes[n]["saved_bytes"] for n in G.graph["order"]}


@pytest.mark.torch
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("path", ["fused", "math"])
@pytest.mark.parametrize("spec", ATTENTION_NETS, ids=[n["name"] for n in ATTENTION_NETS])
def test_attention_and_norms_equal_autograd_layer_by_layer(spec: dict[str, Any], path: str, dtype: str) -> None:
    # CPU: flash attention where torch picks it (no dropout, one head size), else the math path,
    # which casts 16-bit q, k, v up to fp32; "math" forces that path (sdpa_kernel(MATH))
    measured, analytic = _per_layer(spec, getattr(torch, dtype), path == "fused")
    assert measured == analytic


# ----- Korthikanti et al. 2022 from the transformer spec, symbolically --------------------------


def _lm_small(dtype: Any, fused: bool, device: str) -> tuple[int, int]:
    from archcalc.torch.build import build_module
    from archcalc.torch.saved import measure_saved

    G = compile_graph(load_spec(ROOT / "specs" / "transformer_lm.json"), values={"s": 16, "h": 32, "l": 2, "a": 4, "V": 50})
    shapes(G)
    params(G)
    saved_tensors(G, torch.tensor([], dtype=dtype).element_size(), 2, device, fused=fused)  # meta: layer norm's statistics in fp32, as CUDA
    analytic = sum(G.nodes[n]["saved_bytes"] for n in G.graph["order"])
    model = build_module(G, device=device, dtype=dtype)
    return analytic, measure_saved(model, torch.zeros(2, 16, dtype=torch.long, device=device)).total


@pytest.mark.torch
@pytest.mark.parametrize(
    ("dtype", "fused", "device"),
    [("float16", False, "meta"), ("bfloat16", False, "meta"), ("float16", True, "cpu"), ("float32", True, "cpu")],
    ids=["fp16-math-meta", "bf16-math-meta", "fp16-flash-cpu", "fp32-flash-cpu"],
)
def test_transformer_spec_in_16_bit_equals_autograd(dtype: str, fused: bool, device: str) -> None:
    # the 16-bit math path keeps fp32 q, k, v and probabilities (torch casts them up); flash keeps
    # the 16-bit q, k, v, output and an fp32 logsumexp; layer norm's mean and 1/std are fp32 on the
    # meta device (as on CUDA), 16-bit on CPU
    analytic, measured = _lm_small(getattr(torch, dtype), fused, device)
    assert analytic == measured


def test_korthikanti_per_layer_formula_from_the_spec() -> None:
    # Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models"
    # (arXiv:2205.05198), Sec. 4.1 / eq. 1: activations per transformer layer, 16-bit, no
    # parallelism: s*b*h*(34 + 5*a*s/h) = 34sbh + 5as^2b bytes.  Here derived from
    # specs/transformer_lm.json (GPT-2's layer: pre-LayerNorm, no dropout) by the saved-tensors
    # pass, unfused attention (--attention math, which the paper counts), on CUDA (the paper's
    # GPUs: layer norm's statistics in fp32), batch b symbolic.
    from archcalc.dims import expand, symbol
    from archcalc.training import training_memory

    s, h, a, b = (symbol(x) for x in "shab")
    m = training_memory(ROOT / "specs" / "transformer_lm.json", batch=b, dtype="float16", attention="math", device="cuda")
    count, per_layer = m.per_copy["transformer.h"]
    assert count == symbol("l")
    korthikanti = 34 * s * b * h + 5 * a * s**2 * b
    assert per_layer == 38 * s * b * h + 4 * a * s**2 * b + 16 * s * b  # archcalc's: s*b*h*(38 + 4*a*s/h) + 16sb

    # row by row, against the paper's terms (Sec. 4.1, attention 11sbh + 5as^2b, MLP 19sbh, LayerNorms 4sbh)
    rows = {r.name.removeprefix("transformer.h.*."): r.saved_bytes for r in m.rows if r.repeat != 1}
    assert {k: expand(v) for k, v in rows.items() if v != 0} == {
        "ln_1": 2 * s * b * h + 8 * s * b,  # paper: LayerNorm input 2sbh; + fp32 mean and rstd per token, 2 x 4sb
        "attn.c_attn": 2 * s * b * h,  # paper: QKV input 2sbh
        # paper: Q, K 4sbh, V 2sbh, softmax output 2as^2b, its dropout mask as^2b and output 2as^2b;
        # torch's math path casts 16-bit q, k, v up: fp32 q and k (scaled), an fp32 copy of v, fp32 probabilities
        "attn.sdpa": 3 * 4 * s * b * h + 4 * a * s**2 * b,
        "attn.c_proj": 2 * s * b * h,  # paper: projection input 2sbh (a copy: the heads merged back)
        "ln_2": 2 * s * b * h + 8 * s * b,  # paper: 2sbh; + mean and rstd
        "mlp.c_fc": 2 * s * b * h,  # paper: 2sbh
        "mlp.gelu": 8 * s * b * h,  # paper: GELU input 8sbh
        "mlp.c_proj": 8 * s * b * h,  # paper: the second linear's input (GELU output) 8sbh
    }

    # the exact difference, term by term, each with the tensors responsible
    difference = {
        "q, k, v in fp32 (the math path casts 16-bit inputs up): 12sbh kept where the paper has 6sbh": 6 * s * b * h,
        "the softmax output in fp32: 4as^2b where the paper has 2as^2b": 2 * a * s**2 * b,
        "no attention dropout in the spec (GPT-2's layer as torch runs it, p = 0): no mask as^2b, no dropped output 2as^2b": -3 * a * s**2 * b,
        "no dropout after the attention projection: no mask sbh": -s * b * h,
        "no dropout after the MLP: no mask sbh": -s * b * h,
        "each LayerNorm's fp32 mean and rstd per token (the paper leaves them out): 2 x 2 x 4sb": 16 * s * b,
    }
    assert expand(per_layer - korthikanti) == expand(sum(difference.values()))  # +4sbh - as^2b + 16sb

    # the default (CPU flash attention): no s^2 term at all, an fp32 logsumexp per query and head instead
    fused = training_memory(ROOT / "specs" / "transformer_lm.json", batch=b, dtype="float16", device="cuda").per_copy["transformer.h"][1]
    # q, k, v 6sbh (one storage: the QKV projection) + output 2sbh, which the projection keeps as its input
    assert fused == 32 * s * b * h + 4 * a * s * b + 16 * s * b
    # on CPU in pure 16-bit, layer norm's mean and 1/std are 16-bit too: 8sb, not 16sb
    cpu = training_memory(ROOT / "specs" / "transformer_lm.json", batch=b, dtype="float16").per_copy["transformer.h"][1]
    assert cpu == 32 * s * b * h + 4 * a * s * b + 8 * s * b


def test_a_symbolic_repeat_counts_every_copy() -> None:
    # transformer_lm repeats its block "l" times: the totals are l copies, as --set l=2 expands them
    from archcalc.dims import expand, symbol
    from archcalc.training import training_memory, training_memory_from_graph

    b, layers = symbol("b"), symbol("l")
    opts: dict[str, Any] = {"batch": b, "dtype": "float16", "attention": "math", "optimizer": "adam"}
    sym = training_memory(ROOT / "specs" / "transformer_lm.json", **opts)
    two = training_memory_from_graph(compile_graph(load_spec(ROOT / "specs" / "transformer_lm.json"), values={"l": 2}), **opts)
    for key in ("saved_bytes", "param_bytes", "grad_bytes", "optimizer_bytes", "peak_bytes"):
        assert expand(sym.totals[key].subs(layers, 2)) == expand(two.totals[key]), key


@pytest.mark.torch
@pytest.mark.parametrize("name", ["bert_base", "gpt2"])
def test_zoo_transformers_with_flash_attention_on_cpu(name: str) -> None:
    # the default path (--attention fused): what torch picks on CPU, at 64 tokens
    G = compile_graph(load_spec(ROOT / "specs" / f"{name}.json"), input_shape=[64])
    assert _analytic(G, 2) == _measured(G, 2, "cpu")


def test_memory_markdown_shows_one_transformer_layer() -> None:
    from tests.conftest import cli

    r = cli("memory", str(ROOT / "specs" / "transformer_lm.json"), "--batch", "b", "--dtype", "float16", "--attention", "math",
            "--device", "cuda", "--format", "markdown")  # fmt: skip
    assert r.code == 0, r.err
    # Korthikanti et al.'s per-layer term, as archcalc derives it (test_korthikanti_per_layer_formula_from_the_spec)
    assert "one copy of transformer.h (×l): 4\\*a\\*b\\*s\\*\\*2 + 38\\*b\\*h\\*s + 16\\*b\\*s bytes" in r.out
    assert "| transformer.h.\\*.attn.sdpa (×l) " in r.out  # a row per layer of the block, marked with its count


def test_attention_on_the_math_path_under_autocast_is_unknown_not_a_crash() -> None:
    # flash attention under autocast is worked out (test_autocast_equals_autograd_layer_by_layer);
    # the math path, whose fp32 copies of 16-bit q, k, v under autocast are not, is reported as
    # unknown with the reason; so are Swin's shifted-window attention and RMS norm
    from archcalc.training import training_memory

    assert training_memory(ROOT / "specs" / "gpt2.json", dtype="bfloat16", amp=True).unknown == []
    m = training_memory(ROOT / "specs" / "gpt2.json", dtype="bfloat16", amp=True, attention="math")
    assert m.totals["saved_bytes"] is None
    assert m.unknown == [f"transformer.h.{i}.attn.sdpa" for i in range(12)]
    assert "for autocast" in next(r for r in m.rows if r.name == "transformer.h.0.attn.sdpa").describe(str)
    swin = training_memory(ROOT / "specs" / "swin_t.json", dtype="bfloat16", amp=True)
    assert swin.unknown and all(".attn" in n for n in swin.unknown)


@pytest.mark.torch
def test_llama_layout_rotary_keeps_its_inputs_layout_so_o_proj_saves_a_view_on_cpu() -> None:
    # review s9 #6: the zoo's llama2_7b block at small sizes (vocabulary 100, 2 layers, h 64, 8 heads of 8, ffn 128, 16
    # tokens), batch 2, fp32, CPU flash attention.  rotary's x*cos + rotate_half(x)*sin follows the layout of its
    # transposed input (TensorIterator: strides (L*h, d, h, 1), physically (B, L, heads, d)), so flash's output, laid out
    # as q, is too, and merge_t + merge are views: o_proj keeps sdpa's output, not a copy.  Measured with
    # archcalc.torch.saved.measure_saved (torch 2.14.1, CPU): 326,528 B; archcalc said 342,912 = 326,528 + 2 layers *
    # (16*64*4*2 = 8,192 B, o_proj's input counted again).  Without the rotary layers both said 322,432.
    import json

    spec = json.loads((ROOT / "specs" / "llama2_7b.json").read_text())
    spec["input"] = [16]
    spec["layers"][0].update(num_embeddings=100, embedding_dim=64)
    spec["layers"][1].update(repeat=2, args={"h": 64, "a": 8, "kv": 8, "d": 8, "ffn": 128})
    spec["layers"][3]["out_features"] = 100
    G = compile_graph(parse_spec(spec))
    assert _measured(G, 2, "cpu") == 326_528
    assert _analytic(compile_graph(parse_spec(spec)), 2) == 326_528
    G = compile_graph(parse_spec(spec))
    _analytic(G, 2)
    kept = G.nodes["model.layers.0.self_attn.o_proj"]["saved"]
    assert [(s.storage, s.first) for s in kept] == [("model.layers.0.self_attn.sdpa", False)]  # a view of sdpa's output
